"""The regularization form: a differentiable penalty on exact layer norms."""

from __future__ import annotations

import torch
from torch import nn

from snmech.spectral._conv import ConvGeometry, conv_norm_bound
from snmech.spectral._norms import dense_norm

_CONV = nn.Conv1d | nn.Conv2d | nn.Conv3d


def layer_norms(
    model: nn.Module, input_shape: tuple[int, ...] | None = None
) -> dict[str, torch.Tensor]:
    """Differentiable operator norms of every Linear and ConvNd layer of ``model``.

    Dense layers give their exact largest singular value (SVD), convolutions
    the FFT bound of Note [Convolution bound] on the size they see when the
    model runs on ``input_shape``. Computed in the weights' dtype.

    Args:
        model: any module.
        input_shape: per-sample input shape; required if there are convolutions.

    Returns:
        ``{qualified name: 0-dim tensor}``, gradients flowing to the weights.
    """
    shapes: dict[nn.Module, tuple[int, ...]] = {}
    convs = [m for m in model.modules() if isinstance(m, _CONV)]
    if convs:
        if input_shape is None:
            raise ValueError("layer_norms: the model has convolutions; pass input_shape")
        handles = [
            c.register_forward_pre_hook(lambda m, a: shapes.__setitem__(m, tuple(a[0].shape[1:])))
            for c in convs
        ]
        try:
            ref = next(model.parameters())
            with torch.no_grad():
                model(torch.zeros((1, *input_shape), dtype=ref.dtype, device=ref.device))
        finally:
            for h in handles:
                h.remove()
    norms: dict[str, torch.Tensor] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            norms[name] = dense_norm(m.weight)
        elif isinstance(m, _CONV):
            norms[name] = conv_norm_bound(m.weight, ConvGeometry.of(m, shapes[m]))
    return norms


def spectral_penalty(
    model: nn.Module, target: float = 1.0, *, input_shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Penalty ``sum_i max(0, ||W_i|| - target)^2`` over Linear and ConvNd layers.

    The article's "regularization" use: add ``lambda * spectral_penalty(model)``
    to a loss to pull every layer's exact norm below ``target`` without a hard
    constraint. With ``target=0`` it is ``sum_i ||W_i||^2``.

    Args:
        model: any module.
        target: norm above which a layer is penalized (>= 0).
        input_shape: per-sample input shape, required if there are convolutions.

    Returns:
        A differentiable 0-dim tensor.
    """
    if target < 0:
        raise ValueError(f"target must be >= 0, got {target}")
    norms = layer_norms(model, input_shape)
    if not norms:
        raise ValueError("spectral_penalty: the model has no Linear or ConvNd layer")
    return sum((torch.relu(n - target) ** 2 for n in norms.values()), torch.zeros(()))
