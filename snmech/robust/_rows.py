"""Unit-norm rows for a classifier head, certified by the pairwise bound.

Note [Unit-row head]
    A head ``z = W phi + b`` certified by Note [Pairwise certificate] needs no
    bound on ``||W||_2``: only the row differences ``||W_i - W_j||`` enter the
    radii, and each pair's radius is the distance from ``phi`` to the hyperplane
    ``z_i = z_j`` in feature space, whatever the scale of ``W``. Normalizing each
    row to unit length fixes the logit scale (so a loss temperature keeps its
    meaning) while leaving the angles between class directions free; an
    orthogonal head would force every ``||W_i - W_j||`` to ``sqrt(2)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


class _UnitRows(nn.Module):
    """Maps a weight ``(out, in)`` to the same rows scaled to unit l2 norm."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        norms: torch.Tensor = torch.linalg.vector_norm(weight, dim=1, keepdim=True)
        return weight / norms.clamp_min(self.eps)


def unit_row_norm(module: nn.Linear) -> nn.Linear:
    """Register unit-norm rows on ``module.weight`` (Note [Unit-row head]); returns ``module``.

    Raises:
        TypeError: ``module`` is not ``nn.Linear``.
    """
    if not isinstance(module, nn.Linear):
        raise TypeError(f"unit_row_norm supports nn.Linear, got {type(module).__name__}")
    parametrize.register_parametrization(module, "weight", _UnitRows())
    return module
