r"""Squeeze-and-Excitation with spectrally normalized excitation, and its L1 sparsity terms.

For feature maps ``x`` of shape ``(N, C, H, W)`` the block computes

.. math::
    s = \mathrm{mean}_{HW}\, x \in \mathbb{R}^C, \qquad
    g = \sigma\big(W_2\, \mathrm{relu}(W_1 s + b_1) + b_2\big) \in (0, 1)^C, \qquad
    y_c = g_c\, x_c,

with :func:`snmech.spectral.spectral_norm` on ``W_1`` and ``W_2`` (the
article's robust attention). :func:`gate_l1` and :func:`excitation_l1` are the
sparsity terms of the article's hybrid: add ``lambda * gate_l1(g)`` (or the
weight form) to the loss of a normalized block.

Note [SE is not globally Lipschitz]
    The gate multiplies the features, so the block is not a chain of
    Lipschitz maps: along ``x = t a`` with the gate's pre-activation held
    constant, the Jacobian ``diag(g) + x (dg/dx)`` grows linearly in ``t``.
    No finite global constant exists, and
    :func:`snmech.spectral.lipschitz_bound` refuses the block (a ``TypeError``
    naming it) rather than certify something false. On a bounded set it is
    Lipschitz: for ``x, x'`` whose channels all have l2 norm
    ``||x_c||_2 <= R`` (over the ``H W`` pixels),

    .. math::
        y - y' = (x - x') \odot g(x) + x' \odot (g(x) - g(x')),

    where ``0 < g < 1`` bounds the first term by ``||x - x'||``;
    ``||x' \odot \Delta g||^2 = \sum_c \Delta g_c^2 ||x'_c||^2 <= R^2 ||\Delta g||^2``;
    ``sigma' <= 1/4``, ReLU is 1-Lipschitz and the mean over ``H W`` pixels
    has norm ``1 / sqrt(H W)``, so

    .. math::
        \mathrm{Lip}_R \le 1 + \frac{R}{4 \sqrt{H W}}\, \|W_1\|_2\, \|W_2\|_2 .

    Elementwise ``|x| <= B`` gives ``R = B sqrt(H W)``, i.e. ``1 + B ||W_1|| ||W_2|| / 4``.
    :func:`se_lipschitz_bound` returns this bound with the set it holds on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from snmech.spectral import operator_norm, spectral_norm
from snmech.spectral._norms import ROUNDING_RTOL

_SIGMOID_SLOPE = 0.25


class SqueezeExcitation(nn.Module):
    """SE block for ``(N, C, H, W)`` feature maps; excitation weights spectrally normalized.

    Args:
        channels: ``C``, the number of feature channels (>= 1).
        hidden: width of the excitation bottleneck; default ``max(1, C // 2)``.
        normalized: register :func:`snmech.spectral.spectral_norm` (target 1) on both
            excitation layers; ``False`` builds the ordinary SE block.
        gate_bias: initial bias of the gate's pre-activation (0: gates start near 1/2).

    Raises:
        ValueError: ``channels < 1`` or ``hidden < 1``.
    """

    def __init__(
        self,
        channels: int,
        hidden: int | None = None,
        *,
        normalized: bool = True,
        gate_bias: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = max(1, channels // 2) if hidden is None else hidden
        if channels < 1 or hidden < 1:
            raise ValueError(f"channels and hidden must be >= 1, got {channels}, {hidden}")
        self.channels = int(channels)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        with torch.no_grad():
            self.fc2.bias.fill_(float(gate_bias))
        self.normalized = bool(normalized)
        if normalized:
            spectral_norm(self.fc1)
            spectral_norm(self.fc2)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``g`` ``(N, C)`` in (0, 1) of feature maps ``x`` ``(N, C, H, W)``."""
        self._check(x)
        s = x.mean(dim=(2, 3))
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale each channel of ``x`` ``(N, C, H, W)`` by its gate; same shape."""
        return x * self.gate(x)[:, :, None, None]

    def lipschitz_factor(self, input_shape: tuple[int, ...] | None = None) -> float:
        """Refuse: the block has no global Lipschitz constant (Note [SE is not globally Lipschitz]).

        Raises:
            TypeError: always; use :func:`se_lipschitz_bound` with a bound on the inputs.
        """
        raise TypeError(
            "lipschitz_bound cannot bound a SqueezeExcitation block: its gate multiplies the "
            "features, so it has no global Lipschitz constant. Use "
            "snmech.robust.se_lipschitz_bound(block, input_shape, channel_norm=R) for inputs "
            "whose channels have l2 norm <= R."
        )

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"SqueezeExcitation expects (N, {self.channels}, H, W), got {tuple(x.shape)}"
            )

    def extra_repr(self) -> str:  # noqa: D102
        return f"channels={self.channels}, normalized={self.normalized}"


@dataclass(frozen=True)
class SEBound:
    """A certified Lipschitz bound of an SE block on a bounded set of inputs.

    Attributes:
        value: ``||SE(x) - SE(x')|| <= value * ||x - x'||`` whenever every channel of
            ``x`` and ``x'`` has l2 norm ``<= channel_norm``.
        channel_norm: ``R``, the per-channel l2 bound of the set.
        input_shape: ``(C, H, W)`` it holds for.
        excitation_norms: exact ``(||W_1||, ||W_2||)`` of the applied weights.
        method: the formula.
    """

    value: float
    channel_norm: float
    input_shape: tuple[int, int, int]
    excitation_norms: tuple[float, float]
    method: str

    def __float__(self) -> float:
        return self.value


def se_lipschitz_bound(
    block: SqueezeExcitation, input_shape: tuple[int, int, int], *, channel_norm: float
) -> SEBound:
    r"""Certified l2 Lipschitz bound of ``block`` on inputs with ``||x_c||_2 <= R``.

    .. math:: \mathrm{Lip}_R \le 1 + \frac{R}{4\sqrt{HW}} \|W_1\|_2 \|W_2\|_2

    (Note [SE is not globally Lipschitz]); the norms are the exact float64
    norms of the weights the block applies in eval mode, never a training estimate.

    Args:
        block: the SE block.
        input_shape: ``(C, H, W)`` of one input.
        channel_norm: ``R > 0``; for elementwise ``|x| <= B`` pass ``B * sqrt(H * W)``.

    Returns:
        An :class:`SEBound`.

    Raises:
        TypeError: ``block`` is not a :class:`SqueezeExcitation`.
        ValueError: ``input_shape`` does not match the block, or ``channel_norm`` is not
            finite and > 0.
    """
    if not isinstance(block, SqueezeExcitation):
        raise TypeError(f"se_lipschitz_bound needs a SqueezeExcitation, got {type(block).__name__}")
    if len(input_shape) != 3 or input_shape[0] != block.channels or min(input_shape) < 1:
        raise ValueError(
            f"input_shape must be ({block.channels}, H, W) with H, W >= 1, got {input_shape}"
        )
    if not (channel_norm > 0 and math.isfinite(channel_norm)):
        raise ValueError(f"channel_norm must be finite and > 0, got {channel_norm}")
    n1, n2 = operator_norm(block.fc1), operator_norm(block.fc2)
    pixels = input_shape[1] * input_shape[2]
    value = (1.0 + channel_norm * _SIGMOID_SLOPE * n1 * n2 / math.sqrt(pixels)) * (
        1.0 + ROUNDING_RTOL
    )
    return SEBound(
        value=value,
        channel_norm=float(channel_norm),
        input_shape=(int(input_shape[0]), int(input_shape[1]), int(input_shape[2])),
        excitation_norms=(n1, n2),
        method="1 + R ||W1|| ||W2|| / (4 sqrt(HW)) on {max_c ||x_c|| <= R} (float64 SVD)",
    )


def gate_l1(gate: torch.Tensor) -> torch.Tensor:
    r"""L1 mass of the gates, ``mean_n sum_c |g_{nc}|``: pushes unneeded channels to 0.

    Args:
        gate: ``(N, C)`` gate values (:meth:`SqueezeExcitation.gate`).

    Returns:
        A differentiable scalar.
    """
    if gate.dim() != 2:
        raise ValueError(f"gate must be (N, C), got {tuple(gate.shape)}")
    return gate.abs().sum(dim=1).mean()


def excitation_l1(block: SqueezeExcitation) -> torch.Tensor:
    """L1 norm of the applied (normalized) excitation weights ``sum |W_1| + sum |W_2|``.

    With spectral normalization on, this pushes sparsity at a fixed spectral norm
    (the normalized weights are scale-free), the weight form of the hybrid.

    Args:
        block: the SE block.

    Returns:
        A differentiable scalar.
    """
    if not isinstance(block, SqueezeExcitation):
        raise TypeError(f"excitation_l1 needs a SqueezeExcitation, got {type(block).__name__}")
    return block.fc1.weight.abs().sum() + block.fc2.weight.abs().sum()
