"""Thin ``nn.Module`` wrappers around :mod:`snmech.robust.functional` (hyper-parameters only)."""

from __future__ import annotations

import torch
from torch import nn

from snmech.robust import functional


class MarginCrossEntropy(nn.Module):
    """The margin cross-entropy; see :func:`snmech.robust.functional.margin_cross_entropy`."""

    def __init__(self, margin: float = 1.0, temperature: float = 10.0) -> None:
        super().__init__()
        self.margin = float(margin)
        self.temperature = float(temperature)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean loss of ``logits`` ``(B, K)`` against ``target`` ``(B,)``."""
        return functional.margin_cross_entropy(
            logits, target, margin=self.margin, temperature=self.temperature
        )

    def extra_repr(self) -> str:  # noqa: D102
        return f"margin={self.margin}, temperature={self.temperature}"


class PairwiseMarginCrossEntropy(nn.Module):
    """:func:`snmech.robust.functional.pairwise_margin_cross_entropy` for a given head.

    Args:
        head: the model's last ``nn.Linear`` (kept out of this module's parameters;
            its current, possibly parametrized, weight is read at each call).
        margin: the l2 radius aimed for.
        temperature: ``T > 0``.
    """

    def __init__(self, head: nn.Linear, margin: float = 1.0, temperature: float = 10.0) -> None:
        super().__init__()
        if not isinstance(head, nn.Linear):
            raise TypeError(f"head must be nn.Linear, got {type(head).__name__}")
        self._head = (head,)  # a reference, not a submodule
        self.margin = float(margin)
        self.temperature = float(temperature)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean loss of ``logits`` ``(B, K)`` against ``target`` ``(B,)``."""
        return functional.pairwise_margin_cross_entropy(
            logits,
            target,
            self._head[0].weight,
            margin=self.margin,
            temperature=self.temperature,
        )

    def extra_repr(self) -> str:  # noqa: D102
        return f"margin={self.margin}, temperature={self.temperature}"


class HingeKantorovich(nn.Module):
    """:func:`snmech.robust.functional.hinge_kantorovich` with stored ``margin``, ``alpha``."""

    def __init__(self, margin: float = 1.0, alpha: float = 10.0) -> None:
        super().__init__()
        self.margin = float(margin)
        self.alpha = float(alpha)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean loss of ``logits`` ``(B, K)`` against ``target`` ``(B,)``."""
        return functional.hinge_kantorovich(logits, target, margin=self.margin, alpha=self.alpha)

    def extra_repr(self) -> str:  # noqa: D102
        return f"margin={self.margin}, alpha={self.alpha}"
