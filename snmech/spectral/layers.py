"""Layers that Lipschitz networks need: GroupSort, MaxMin and a residual block.

Each carries its own certified constant through ``lipschitz_factor(input_shape)``,
the hook :func:`snmech.spectral.lipschitz_bound` uses for modules it does not
know by type.
"""

from __future__ import annotations

import torch
from torch import nn


class GroupSort(nn.Module):
    """Sort features within consecutive groups along ``dim`` (Anil et al., 2019).

    A piecewise permutation, hence gradient-norm preserving and 1-Lipschitz in l2.

    Args:
        group_size: features per group (>= 2); must divide the size of ``dim``.
        dim: the feature dimension (1 for ``(B, C, ...)`` inputs).
    """

    def __init__(self, group_size: int = 2, dim: int = 1) -> None:
        super().__init__()
        if group_size < 2:
            raise ValueError(f"group_size must be >= 2, got {group_size}")
        self.group_size = group_size
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sort each group of ``x`` (any shape with groups along ``dim``) in ascending order."""
        n = x.shape[self.dim]
        if n % self.group_size:
            raise ValueError(
                f"GroupSort: size {n} of dim {self.dim} is not divisible by "
                f"group_size {self.group_size}"
            )
        shape = list(x.shape)
        grouped = x.reshape(
            *shape[: self.dim], n // self.group_size, self.group_size, *shape[self.dim + 1 :]
        )
        return grouped.sort(dim=self.dim + 1).values.reshape(shape)

    def lipschitz_factor(self, input_shape: tuple[int, ...] | None = None) -> float:
        """Exactly 1."""
        return 1.0

    def extra_repr(self) -> str:  # noqa: D102
        return f"group_size={self.group_size}, dim={self.dim}"


class MaxMin(nn.Module):
    """Split features in two halves ``a, b`` along ``dim`` and return ``[max(a,b), min(a,b)]``.

    GroupSort with groups of 2 pairing feature ``i`` with ``i + n/2``; 1-Lipschitz.
    """

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``[max(a, b), min(a, b)]`` of the two halves of ``x`` along ``dim``."""
        n = x.shape[self.dim]
        if n % 2:
            raise ValueError(f"MaxMin needs an even size along dim {self.dim}, got {n}")
        a, b = x.split(n // 2, dim=self.dim)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=self.dim)

    def lipschitz_factor(self, input_shape: tuple[int, ...] | None = None) -> float:
        """Exactly 1."""
        return 1.0

    def extra_repr(self) -> str:  # noqa: D102
        return f"dim={self.dim}"


class Residual(nn.Module):
    """``x + branch(x)``; certified as ``1 + Lip(branch)``.

    Args:
        branch: any module whose output has the input's shape.
    """

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + branch(x)``."""
        return x + self.branch(x)
