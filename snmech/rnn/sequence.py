"""``SpectralRNN``: a batch-first sequence module over :class:`SpectralRNNCell`."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from snmech.rnn.cell import SpectralRNNCell, _check_features


def _check_lengths(lengths: torch.Tensor, batch: int, steps: int) -> torch.Tensor:
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > steps:
        raise ValueError(f"lengths must lie in [1, {steps}], got min {lo}, max {hi}")
    return lengths


class SpectralRNN(nn.Module):
    r"""A recurrent layer whose ``W_hh`` keeps its singular values in ``[gamma_min, gamma_max]``.

    Batch first: ``x`` is ``(B, T, input_size)``, the output ``(B, T, hidden_size)``
    and the final state ``(B, hidden_size)``. Variable lengths come as ``lengths``
    ``(B,)`` or as a ``PackedSequence``; each state then stops at its own last
    step and the output is zero beyond it (as ``pad_packed_sequence`` gives).

    The input projection of all steps is one batched product; the time loop runs
    inside ``parametrize.cached()``, so ``W_hh`` (two matrix exponentials) is
    built once per forward, not once per step. For the guarantees see
    :class:`SpectralRNNCell`:

    .. math:: \left\| \frac{\partial h_T}{\partial h_0} \right\|_2 \le \gamma_{max}^T
        \quad \text{(ungated)}

    Args:
        input_size: features per step.
        hidden_size: state size.
        gamma_min: lower bound on the singular values of ``W_hh`` (> 0).
        gamma_max: upper bound (>= ``gamma_min``).
        activation: ``"modrelu"`` (default), ``"groupsort"`` or ``"tanh"``.
        gated: use the input-gated cell.
        device: where the parameters live.
        dtype: their dtype.

    Example:
        >>> import torch
        >>> rnn = SpectralRNN(2, 16)
        >>> out, h = rnn(torch.randn(4, 10, 2), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape
        (torch.Size([4, 10, 16]), torch.Size([4, 16]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        gamma_min: float = 1.0,
        gamma_max: float = 1.0,
        activation: str = "modrelu",
        gated: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.cell = SpectralRNNCell(
            input_size,
            hidden_size,
            gamma_min=gamma_min,
            gamma_max=gamma_max,
            activation=activation,
            gated=gated,
            device=device,
            dtype=dtype,
        )

    @property
    def input_size(self) -> int:  # noqa: D102
        return self.cell.input_size

    @property
    def hidden_size(self) -> int:  # noqa: D102
        return self.cell.hidden_size

    def recurrent_parameters(self) -> list[nn.Parameter]:
        """The raw parameters of ``W_hh`` (see :meth:`SpectralRNNCell.recurrent_parameters`)."""
        return self.cell.recurrent_parameters()

    def forward(
        self,
        x: torch.Tensor | PackedSequence,
        h0: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | PackedSequence, torch.Tensor]:
        """Run the sequence.

        Args:
            x: ``(B, T, input_size)``, or a ``PackedSequence`` of such rows.
            h0: initial state ``(B, hidden_size)``; zeros if ``None``.
            lengths: ``(B,)`` integer lengths in ``[1, T]`` (not with a ``PackedSequence``).

        Returns:
            ``(output, h_n)``: output ``(B, T, hidden_size)`` (a ``PackedSequence``
            if ``x`` was one) and the state after each sequence's last step.

        Raises:
            ValueError: wrong shapes, NaN/inf in ``x`` or ``h0``, bad ``lengths``.
            TypeError: ``x`` is not a tensor or ``PackedSequence``.
        """
        packed = isinstance(x, PackedSequence)
        sorted_idx = unsorted_idx = None
        if packed:
            if lengths is not None:
                raise ValueError("pass lengths or a PackedSequence, not both")
            assert isinstance(x, PackedSequence)
            sorted_idx, unsorted_idx = x.sorted_indices, x.unsorted_indices
            x, lengths = pad_packed_sequence(x, batch_first=True)
        assert isinstance(x, torch.Tensor) or not packed
        _check_features(x, self.input_size, "input")  # type: ignore[arg-type]
        if x.dim() != 3:  # type: ignore[union-attr]
            raise ValueError(
                f"input must be (batch, time, {self.input_size}), got {tuple(x.shape)}"  # type: ignore[union-attr]
            )
        batch, steps, _ = x.shape  # type: ignore[union-attr]
        if h0 is None:
            h = x.new_zeros(batch, self.hidden_size)  # type: ignore[union-attr]
        else:
            if tuple(h0.shape) != (batch, self.hidden_size):
                raise ValueError(f"h0 must be ({batch}, {self.hidden_size}), got {tuple(h0.shape)}")
            if not bool(torch.isfinite(h0).all()):
                raise ValueError("h0 contains NaN or inf")
            h = h0
        alive = None
        if lengths is not None:
            lengths = _check_lengths(lengths, batch, steps).to(x.device)  # type: ignore[union-attr]
            alive = torch.arange(steps, device=x.device)[None, :] < lengths[:, None]  # type: ignore[union-attr]
        outputs = []
        with parametrize.cached():
            w_hh = self.cell.weight_hh
            # unbind, not xp[:, t]: each select's backward would allocate all of xp (O(T^2))
            xs = self.cell.project_input(x).unbind(1)  # type: ignore[arg-type]
            for t in range(steps):
                h_new = self.cell.step(xs[t], h, w_hh)
                h = h_new if alive is None else torch.where(alive[:, t, None], h_new, h)
                outputs.append(h)
        out = torch.stack(outputs, dim=1)
        if alive is not None:
            out = out * alive[..., None]
        if packed:
            assert lengths is not None
            out_packed = pack_padded_sequence(
                out, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out_packed = PackedSequence(
                out_packed.data, out_packed.batch_sizes, sorted_idx, unsorted_idx
            )
            return out_packed, h
        return out, h
