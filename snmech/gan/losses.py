"""Thin ``nn.Module`` wrappers: store the loss name and call :mod:`snmech.gan.functional`."""

from __future__ import annotations

import torch
from torch import nn

from snmech.gan.functional import loss_pair


class GANLoss(nn.Module):
    """A named GAN loss with a critic side (:meth:`forward`) and a generator side (:meth:`g`).

    Args:
        name: ``"non-saturating"``, ``"hinge"`` or ``"wasserstein"``.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self._d, self._g = loss_pair(name)
        self.name = name

    def forward(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        """The critic's loss."""
        return self._d(real_out, fake_out)

    def g(self, fake_out: torch.Tensor) -> torch.Tensor:
        """The generator's loss."""
        return self._g(fake_out)

    def extra_repr(self) -> str:  # noqa: D102
        return repr(self.name)
