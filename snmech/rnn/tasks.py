"""Synthetic long-memory tasks: the adding problem and the copy task (data generators only)."""

from __future__ import annotations

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
    r"""The copy task (Hochreiter & Schmidhuber, 1997; as in uRNN/expRNN).

    Input: ``copy_length`` symbols drawn from ``1..n_symbols``, then ``delay``
    blanks (0) of which the last ``copy_length``-th from the end is the marker
    ``n_symbols + 1``; the net must output blanks until the marker and then the
    symbols. The memoryless baseline (blanks, then uniform guesses) has
    cross-entropy

    .. math:: \frac{L \log n}{T + 2L}, \qquad L = \text{copy\_length},\ n = \text{n\_symbols}.

    Args:
        batch: number of sequences.
        delay: ``T``, the number of blanks between the symbols and the recall (>= 1).
        n_symbols: alphabet size (>= 2).
        copy_length: symbols to remember (>= 1).
        generator: random source.
        device: where the tensors are made.

    Returns:
        ``(x, y)``: one-hot input ``(batch, T + 2L, n_symbols + 2)`` (float32) and
        target classes ``(batch, T + 2L)`` (int64).

    Raises:
        ValueError: out-of-range sizes.
    """
    if batch < 1 or delay < 1 or n_symbols < 2 or copy_length < 1:
        raise ValueError(
            "need batch >= 1, delay >= 1, n_symbols >= 2, copy_length >= 1, got "
            f"{batch}, {delay}, {n_symbols}, {copy_length}"
        )
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
