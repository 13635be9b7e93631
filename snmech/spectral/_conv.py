r"""Operator norm of a convolution on a given input size, by FFT.

Note [Convolution bound]
    A ``ConvNd`` layer on an input of spatial size ``n`` is ``y = S C P x``:
    ``P`` pads (an isometric embedding for zero padding; a selection matrix
    with repeated rows for reflect/replicate/circular), ``C`` is a "valid"
    stride-1 correlation on the padded grid and ``S`` keeps every ``s``-th
    output. The polyphase rewrite (space-to-depth by the stride) turns ``S C``
    into a stride-1 correlation with ``prod(s) * c_in`` input channels on a
    grid ``N = ceil((n + p_l + p_r) / s)``. No kept output reads past the end of
    that grid, so the valid correlation is a compression (rows and columns
    kept) of the *circular* correlation on ``N``, whose norm is the largest
    singular value of the kernel's DFT over all ``N^d`` frequencies. Hence

    .. math:: \|y\| \le \|P\|_2 \max_f \sigma_{max}(\hat K(f)) \|x\|,

    a true upper bound for any padding, stride, dilation and groups (block
    diagonal: max over groups). ``||P||_2`` is the square root of the largest
    number of times one input entry is copied. For circular padding that
    completes the period (``p_l + p_r = dilation*(k - 1)``) with ``s | n`` the
    layer *is* a circular correlation on ``n / s`` and the bound is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ConvModule = nn.Conv1d | nn.Conv2d | nn.Conv3d

_FUNCTIONAL_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@dataclass(frozen=True)
class ConvGeometry:
    """Everything but the weight that fixes a convolution as a linear operator.

    Attributes:
        spatial: input spatial size ``(n_1, ..., n_d)``.
        stride, dilation: per spatial dimension.
        padding: ``(left, right)`` per spatial dimension.
        groups: number of channel groups.
        padding_mode: ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
    """

    spatial: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str

    @classmethod
    def of(cls, conv: nn.Module, input_shape: tuple[int, ...] | torch.Size) -> ConvGeometry:
        """Geometry of ``conv`` applied to inputs of ``input_shape``.

        Args:
            conv: an ``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d``.
            input_shape: spatial size ``(n_1, .., n_d)``, or ``(C, n_1, .., n_d)``
                with ``C == conv.in_channels``.

        Raises:
            TypeError: ``conv`` is not a supported convolution.
            ValueError: the shape does not fit the layer.
        """
        if not isinstance(conv, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            raise TypeError(
                f"expected nn.Conv1d/2d/3d, got {type(conv).__name__} "
                "(transposed convolutions are not supported)"
            )
        d = len(conv.kernel_size)
        shape = tuple(int(n) for n in input_shape)
        if len(shape) == d + 1:
            if shape[0] != conv.in_channels:
                raise ValueError(
                    f"input_shape {shape} has {shape[0]} channels, the layer expects "
                    f"{conv.in_channels}"
                )
            shape = shape[1:]
        if len(shape) != d or min(shape) < 1:
            raise ValueError(
                f"input_shape for a {d}D convolution must be (n_1..n_{d}) or "
                f"(C, n_1..n_{d}) with positive sizes, got {tuple(input_shape)}"
            )
        k = tuple(int(x) for x in conv.kernel_size)
        dil = tuple(int(x) for x in conv.dilation)
        if isinstance(conv.padding, str):
            if conv.padding == "valid":
                pad = tuple((0, 0) for _ in range(d))
            else:  # "same": torch puts the odd extra element on the right
                total = [di * (ki - 1) for di, ki in zip(dil, k, strict=True)]
                pad = tuple((t // 2, t - t // 2) for t in total)
        else:
            pad = tuple((int(p), int(p)) for p in conv.padding)
        geom = cls(
            spatial=shape,
            stride=tuple(int(x) for x in conv.stride),
            padding=pad,
            dilation=dil,
            groups=int(conv.groups),
            padding_mode=str(conv.padding_mode),
        )
        out = geom.output_spatial(k)
        if min(out) < 1:
            raise ValueError(
                f"input_shape {tuple(input_shape)} is too small for kernel {k} with "
                f"padding {pad} and dilation {dil}: output size {out}"
            )
        return geom

    def output_spatial(self, kernel_size: tuple[int, ...]) -> tuple[int, ...]:
        """Output spatial size for a kernel of ``kernel_size``."""
        return tuple(
            (n + pl + pr - d * (k - 1) - 1) // s + 1
            for n, (pl, pr), d, k, s in zip(
                self.spatial, self.padding, self.dilation, kernel_size, self.stride, strict=True
            )
        )

    def is_circular_exact(self, kernel_size: tuple[int, ...]) -> bool:
        """True when the layer is exactly a circular correlation (see the note)."""
        return self.padding_mode == "circular" and all(
            pl + pr == d * (k - 1) and n % s == 0
            for n, (pl, pr), d, k, s in zip(
                self.spatial, self.padding, self.dilation, kernel_size, self.stride, strict=True
            )
        )


def padding_gain(geom: ConvGeometry) -> float:
    """Return ``||P||_2`` of the padding operator: sqrt of the largest copy count.

    Zero padding embeds isometrically (gain 1). Other modes copy entries; the
    count is separable over dimensions, so the maximum is a product of 1D maxima.
    """
    if geom.padding_mode == "zeros":
        return 1.0
    gain2 = 1
    for n, (pl, pr) in zip(geom.spatial, geom.padding, strict=True):
        if pl == pr == 0:
            continue
        idx = torch.arange(n, dtype=torch.float64).view(1, 1, n)
        copies = F.pad(idx, (pl, pr), mode=geom.padding_mode).round().long().flatten()
        gain2 *= int(torch.bincount(copies, minlength=n).max())
    return math.sqrt(gain2)


def _polyphase_symbol(weight: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """DFT of the polyphase kernel, one matrix per group and frequency.

    Returns:
        Complex tensor of shape ``(groups, n_freq, c_out/groups, c_in/groups * prod(s))``.
    """
    d = weight.dim() - 2
    c_out, c_in_g = weight.shape[:2]
    k = tuple(weight.shape[2:])
    s = geom.stride
    exact = geom.is_circular_exact(k)
    if exact:
        grid = tuple(n // si for n, si in zip(geom.spatial, s, strict=True))
        shift = tuple(-pl for pl, _ in geom.padding)
    else:
        grid = tuple(
            -(-(n + pl + pr) // si)
            for n, (pl, pr), si in zip(geom.spatial, geom.padding, s, strict=True)
        )
        shift = (0,) * d
    # tap position t = j*dilation (+ shift) = a*s + r; the phase r becomes a channel
    taps = torch.cartesian_prod(*[torch.arange(ki) for ki in k]).reshape(-1, d)
    index: list[torch.Tensor] = []
    phase_index: list[torch.Tensor] = []
    for i in range(d):
        t = taps[:, i] * geom.dilation[i] + shift[i]
        if exact:
            t = t % geom.spatial[i]
        phase_index.append(t % s[i])
        index.append((t // s[i]) % grid[i])
    values = weight.reshape(c_out, c_in_g, -1).permute(2, 0, 1)  # (taps, c_out, c_in_g)
    kernel = weight.new_zeros((*s, *grid, c_out, c_in_g))
    kernel = kernel.index_put((*phase_index, *index), values, accumulate=True)
    symbol = torch.fft.rfftn(kernel, dim=tuple(range(d, 2 * d)))
    # (*s, *freq, c_out, c_in_g) -> (freq, c_out, c_in_g * prod(s))
    n_phase = math.prod(s)
    symbol = symbol.reshape(n_phase, -1, c_out, c_in_g).permute(1, 2, 3, 0)
    symbol = symbol.reshape(-1, geom.groups, c_out // geom.groups, c_in_g * n_phase)
    return symbol.transpose(0, 1)


def conv_norm_bound(weight: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """Upper bound of the l2 operator norm of a convolution (Note [Convolution bound]).

    Differentiable in ``weight`` (so it also serves as an exact penalty); computed
    in ``weight.dtype``. Call it on a float64 weight for a certificate.

    Args:
        weight: ``(c_out, c_in/groups, k_1, .., k_d)``.
        geom: the layer's geometry on its input size.

    Returns:
        A 0-dim tensor, exact for circular padding that completes the period.
    """
    symbol = _polyphase_symbol(weight, geom)
    sigma = torch.linalg.matrix_norm(symbol, ord=2).max()
    if geom.is_circular_exact(tuple(weight.shape[2:])):
        return sigma
    return sigma * padding_gain(geom)


def _int_padding(conv: nn.Module) -> tuple[int, ...] | None:
    pad = conv.padding
    if isinstance(pad, str):
        return (0,) * len(conv.kernel_size) if pad == "valid" else None
    return tuple(int(p) for p in pad)


def conv_apply(conv: nn.Module, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply ``conv``'s linear part (no bias) with ``weight`` to a batch ``x``."""
    return conv._conv_forward(x, weight, None)  # type: ignore[operator]


def conv_adjoint(
    conv: nn.Module, weight: torch.Tensor, y: torch.Tensor, input_shape: tuple[int, ...]
) -> torch.Tensor:
    """Apply the adjoint of ``conv``'s linear part to ``y``.

    Uses ``conv_transposeNd`` for zero padding with numeric padding, and a
    vector-Jacobian product otherwise (reflect/replicate/circular/"same").

    Args:
        conv: the convolution module.
        weight: its weight.
        y: ``(B, c_out, *out_spatial)``.
        input_shape: ``(c_in, *spatial)`` of the forward input.
    """
    pad = _int_padding(conv)
    d = len(conv.kernel_size)
    if conv.padding_mode == "zeros" and pad is not None:
        out_sp = y.shape[2:]
        extra = tuple(
            n - ((o - 1) * s - 2 * p + di * (k - 1) + 1)
            for n, o, s, p, di, k in zip(
                input_shape[1:],
                out_sp,
                conv.stride,
                pad,
                conv.dilation,
                conv.kernel_size,
                strict=True,
            )
        )
        return _FUNCTIONAL_TRANSPOSE[d](
            y, weight, None, conv.stride, pad, extra, conv.groups, conv.dilation
        )
    x0 = torch.zeros((y.shape[0], *input_shape), dtype=y.dtype, device=y.device, requires_grad=True)
    with torch.enable_grad():
        out = conv_apply(conv, weight.detach(), x0)
        (grad,) = torch.autograd.grad(out, x0, grad_outputs=y)
    return grad
