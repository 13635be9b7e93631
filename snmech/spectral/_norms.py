"""Exact (dense) and certified (convolution) operator norms in float64.

Note [Rounding slack]
    Singular values computed in float64 are backward stable: the computed
    sigma is exact for a matrix within ``c * n * 2^-53 * ||W||`` of ``W``.
    For every size snmech certifies (n well below 10^5) that is far below
    ``ROUNDING_RTOL = 1e-12`` relative, so every certified norm is the float64
    value times ``1 + ROUNDING_RTOL``: an upper bound of the real-arithmetic
    norm of the weights as stored.
"""

from __future__ import annotations

import torch
from torch import nn

from snmech.spectral._conv import ConvGeometry, conv_norm_bound
from snmech.spectral._modes import eval_mode

ROUNDING_RTOL = 1e-12


def dense_norm(weight: torch.Tensor) -> torch.Tensor:
    """Largest singular value of a matrix, differentiable, in ``weight.dtype``.

    Args:
        weight: ``(m, n)``; higher-dimensional weights are flattened to ``(m, -1)``.
    """
    w = weight.reshape(weight.shape[0], -1) if weight.dim() != 2 else weight
    return torch.linalg.matrix_norm(w, ord=2)


def operator_norm(
    layer_or_weight: nn.Module | torch.Tensor,
    input_shape: tuple[int, ...] | torch.Size | None = None,
) -> float:
    r"""The l2 operator norm of a linear layer, in float64, certified.

    .. math:: \|W\|_2 = \sup_{x \ne 0} \|W x\|_2 / \|x\|_2

    Dense weights and ``nn.Linear`` give the largest singular value. ``nn.Conv1d``,
    ``nn.Conv2d`` and ``nn.Conv3d`` give the FFT bound of Note [Convolution bound]
    on ``input_shape``: an upper bound of the true operator norm for any padding,
    stride, dilation and groups, exact for circular padding. Both are inflated
    by Note [Rounding slack]. Biases do not enter a Lipschitz constant.

    Args:
        layer_or_weight: a 2-D tensor ``(out, in)``, ``nn.Linear`` or ``nn.ConvNd``.
            A parametrized layer is evaluated as its current (eval-mode) weight.
        input_shape: required for convolutions: ``(n_1..n_d)`` or ``(C, n_1..n_d)``.

    Returns:
        The norm as a Python float.

    Raises:
        TypeError: unsupported layer type.
        ValueError: missing or inconsistent ``input_shape``, or a non-finite weight.

    Example:
        >>> import torch
        >>> round(operator_norm(torch.diag(torch.tensor([3.0, -4.0, 1.0]))), 9)
        4.0
    """
    if isinstance(layer_or_weight, torch.Tensor):
        weight = layer_or_weight
        if weight.dim() != 2:
            raise ValueError(
                f"a weight tensor must be 2-D (out, in), got shape {tuple(weight.shape)}; "
                "pass the layer itself for convolutions"
            )
        return _certified(dense_norm(_checked64(weight, "weight")))
    if isinstance(layer_or_weight, nn.Linear):
        return _certified(dense_norm(_checked64(_weight_of(layer_or_weight), "nn.Linear weight")))
    if isinstance(layer_or_weight, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        if input_shape is None:
            raise ValueError(
                f"operator_norm of {type(layer_or_weight).__name__} needs input_shape: "
                "a convolution's norm depends on the input size"
            )
        geom = ConvGeometry.of(layer_or_weight, input_shape)
        weight = _checked64(_weight_of(layer_or_weight), f"{type(layer_or_weight).__name__} weight")
        return _certified(conv_norm_bound(weight, geom))
    raise TypeError(
        "operator_norm expects a 2-D tensor, nn.Linear or nn.Conv1d/2d/3d, "
        f"got {type(layer_or_weight).__name__}"
    )


def _weight_of(layer: nn.Module) -> torch.Tensor:
    # eval: a parametrized weight must not advance its power iteration here
    with eval_mode(layer), torch.no_grad():
        return layer.weight.detach().clone()


def _checked64(weight: torch.Tensor, what: str) -> torch.Tensor:
    w = weight.detach().to(torch.float64)
    if not torch.isfinite(w).all():
        raise ValueError(f"{what} contains NaN or inf; no finite norm to certify")
    return w


def _certified(sigma: torch.Tensor) -> float:
    return float(sigma) * (1.0 + ROUNDING_RTOL)
