"""Synthetic long-memory tasks: the adding problem and the copy task (data generators, baseline)."""

from __future__ import annotations

import math

import torch


def adding_problem(
    batch: int,
    length: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The adding problem (Hochreiter & Schmidhuber, 1997): add the two marked values.

    Channel 0 holds values uniform in ``[0, 1)``, channel 1 is 1 at one random
    step in each half of the sequence and 0 elsewhere. The target is the sum of
    the two marked values; always predicting 1 gives the baseline MSE

    .. math:: \operatorname{Var}(u_1 + u_2) = 2 \cdot \tfrac{1}{12} = \tfrac{1}{6}.

    Args:
        batch: number of sequences.
        length: ``T`` (>= 2).
        generator: random source (on ``device``'s type, or CPU).
        device: where the tensors are made.
        dtype: float dtype of the tensors.

    Returns:
        ``(x, y)``: ``x`` of shape ``(batch, length, 2)``, ``y`` of shape ``(batch, 1)``.

    Raises:
        ValueError: ``batch < 1`` or ``length < 2``.
    """
    if batch < 1 or length < 2:
        raise ValueError(f"need batch >= 1 and length >= 2, got batch={batch}, length={length}")
    half = length // 2
    values = torch.rand(batch, length, generator=generator, device=device, dtype=dtype)
    first = torch.randint(0, half, (batch,), generator=generator, device=device)
    second = torch.randint(half, length, (batch,), generator=generator, device=device)
    markers = torch.zeros(batch, length, device=device, dtype=dtype)
    rows = torch.arange(batch, device=device)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = (values * markers).sum(dim=1, keepdim=True)
    return torch.stack([values, markers], dim=-1), y


def copy_task(
    batch: int,
    delay: int,
    *,
    n_symbols: int = 8,
    copy_length: int = 10,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The copy task (Hochreiter & Schmidhuber, 1997), laid out as in uRNN (Arjovsky et al., 2016).

    Input classes: 0 is the blank, ``1..n_symbols`` the symbols, ``n_symbols + 1``
    the delimiter. A sequence is ``L = copy_length`` random symbols, ``T - 1``
    blanks, the delimiter, then ``L`` blanks (``T + 2L`` steps, ``T = delay``). The
    target is blank for the first ``T + L`` steps and then the ``L`` symbols. The
    memoryless baseline (blank, then a uniform guess among the symbols) has
    cross-entropy (:func:`copy_baseline`)

    .. math:: \frac{L \log n}{T + 2L}, \qquad n = \text{n\_symbols}.

    Args:
        batch: number of sequences.
        delay: ``T``, steps from the last symbol to the delimiter (>= 1).
        n_symbols: alphabet size (>= 2).
        copy_length: symbols to remember (>= 1).
        generator: random source.
        device: where the tensors are made.

    Returns:
        ``(x, y)``: one-hot input ``(batch, T + 2L, n_symbols + 2)`` (float32) and
        target classes in ``0..n_symbols``, ``(batch, T + 2L)`` (int64).

    Raises:
        ValueError: out-of-range sizes.

    Example:
        >>> x, y = copy_task(2, 5, n_symbols=3, copy_length=2)
        >>> x.shape, y.shape
        (torch.Size([2, 9, 5]), torch.Size([2, 9]))
        >>> x.argmax(-1)[:, 6].tolist(), bool((y[:, -2:] == x.argmax(-1)[:, :2]).all())
        ([4, 4], True)
    """
    _check_copy_sizes(delay, n_symbols, copy_length)
    if batch < 1:
        raise ValueError(f"need batch >= 1, got {batch}")
    total = delay + 2 * copy_length
    symbols = torch.randint(
        1, n_symbols + 1, (batch, copy_length), generator=generator, device=device
    )
    seq = torch.zeros(batch, total, dtype=torch.long, device=device)
    seq[:, :copy_length] = symbols
    seq[:, delay + copy_length - 1] = n_symbols + 1
    target = torch.zeros(batch, total, dtype=torch.long, device=device)
    target[:, -copy_length:] = symbols
    x = torch.nn.functional.one_hot(seq, n_symbols + 2).float()
    return x, target


def copy_baseline(delay: int, *, n_symbols: int = 8, copy_length: int = 10) -> float:
    r"""Cross-entropy per step of the memoryless copy-task predictor, :math:`L \log n / (T + 2L)`.

    It outputs blank with certainty for ``T + L`` steps and a uniform guess over
    the ``n`` symbols for the last ``L``: 0.173 for ``T = 100`` (Arjovsky et al.,
    2016: :math:`10 \log 8 / (T + 20)`).

    Args:
        delay: ``T`` as in :func:`copy_task`.
        n_symbols: alphabet size.
        copy_length: ``L``.

    Returns:
        The baseline in nats per step.

    Raises:
        ValueError: out-of-range sizes.

    Example:
        >>> round(copy_baseline(100), 4)
        0.1733
    """
    _check_copy_sizes(delay, n_symbols, copy_length)
    return copy_length * math.log(n_symbols) / (delay + 2 * copy_length)


def _check_copy_sizes(delay: int, n_symbols: int, copy_length: int) -> None:
    if delay < 1 or n_symbols < 2 or copy_length < 1:
        raise ValueError(
            "need delay >= 1, n_symbols >= 2, copy_length >= 1, got "
            f"delay={delay}, n_symbols={n_symbols}, copy_length={copy_length}"
        )
