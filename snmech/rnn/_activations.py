"""Activations that do not squash memory: modReLU, and the choice among modReLU/GroupSort/tanh."""

from __future__ import annotations

import torch
from torch import nn

from snmech.spectral import GroupSort

ACTIVATIONS = ("modrelu", "groupsort", "tanh")


class ModReLU(nn.Module):
    r"""Real modReLU (Arjovsky et al., 2016): :math:`f(z) = \operatorname{sign}(z)\max(|z| + b, 0)`.

    For ``b <= 0`` it is 1-Lipschitz with slope exactly 1 wherever ``|z| > -b``,
    so it passes the recurrent signal through unshrunk (tanh loses a factor
    ``1 - tanh^2`` per step). ``b`` is initialized in ``[-0.01, 0.01]`` as in expRNN.

    Args:
        features: size of the last dimension.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(features).uniform_(-0.01, 0.01))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Apply to ``z`` of shape ``(..., features)``."""
        return torch.sign(z) * torch.relu(z.abs() + self.bias)

    def lipschitz_factor(self, input_shape: tuple[int, ...] | None = None) -> float:
        """1 while every ``b <= 0``; a positive ``b`` makes ``f`` jump at 0 (infinite)."""
        return 1.0 if bool((self.bias <= 0).all()) else float("inf")


def make_activation(name: str, hidden_size: int) -> nn.Module:
    """Build ``"modrelu"``, ``"groupsort"`` (groups of 2) or ``"tanh"`` for ``hidden_size`` units.

    Raises:
        ValueError: unknown ``name``, or an odd ``hidden_size`` for GroupSort.
    """
    if name == "modrelu":
        return ModReLU(hidden_size)
    if name == "groupsort":
        if hidden_size % 2:
            raise ValueError(f"groupsort needs an even hidden_size, got {hidden_size}")
        return GroupSort(2, dim=1)  # states are (batch, hidden)
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
