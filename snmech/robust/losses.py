"""Thin ``nn.Module`` wrappers around :mod:`snmech.robust.functional` (hyper-parameters only).

Note [Far-term warm-up]
    The far term pulls the boundaries of the far classes outwards. Asked from
    the first step, it does so while the boundaries between the central
    classes are still forming; raised linearly over the run (with the weight
    at the end 2.5 instead of a constant 1.5), the central classes settle
    first. On digits (means of six seeds, README "Certified robustness") the
    clean / certified 0.25 / 0.5 / 1.0 accuracies went from 97.7 / 91.1 / 73.1
    / 17.4 % to 98.2 / 91.3 / 73.9 / 18.3 %.
"""

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


class FarMarginCrossEntropy(nn.Module):
    """:func:`snmech.robust.functional.far_margin_cross_entropy` for a given head.

    The training loop passes the far flags of each minibatch as the third
    argument (``train_classifier(..., per_sample=far)``, far from
    :func:`snmech.robust.margins.far_samples`).

    Args:
        head: the model's last ``nn.Linear`` (a reference, not a submodule).
        margin: the radius asked of every point (>= 0).
        far_margin: the radius asked of far points (> ``margin``).
        far_weight: weight of the far term (>= 0).
        temperature: ``T > 0``.
        warmup: fraction of the training run over which the far term's weight
            rises linearly from 0 to ``far_weight`` (Note [Far-term warm-up]); 0
            gives the full weight from the first step. The training loop reports
            its progress through :meth:`set_progress`.
        soft_weight: weight of the far points' soft certified accuracy at
            ``soft_radius`` (Note [Soft certified accuracy]; >= 0, 0 leaves it
            out); it warms up with the far term.
        soft_radius: the radius it counts the far points at (> 0).
        soft_width: its sigmoid's width (> 0).
    """

    def __init__(
        self,
        head: nn.Linear,
        margin: float = 0.6,
        far_margin: float = 1.0,
        far_weight: float = 1.5,
        temperature: float = 10.0,
        *,
        warmup: float = 0.0,
        soft_weight: float = 0.0,
        soft_radius: float = 1.05,
        soft_width: float = 0.1,
    ) -> None:
        super().__init__()
        if not isinstance(head, nn.Linear):
            raise TypeError(f"head must be nn.Linear, got {type(head).__name__}")
        functional.check_far_margins(margin, far_margin, far_weight)
        functional.check_soft_term(soft_weight, soft_radius, soft_width)
        if not 0 <= warmup <= 1:
            raise ValueError(f"warmup must be a fraction in [0, 1], got {warmup}")
        self._head = (head,)
        self.margin = float(margin)
        self.far_margin = float(far_margin)
        self.far_weight = float(far_weight)
        self.temperature = float(temperature)
        self.warmup = float(warmup)
        self.soft_weight = float(soft_weight)
        self.soft_radius = float(soft_radius)
        self.soft_width = float(soft_width)
        self.progress = 1.0

    def set_progress(self, progress: float) -> None:
        """Record the fraction of the training run done (0 at the first step, < 1 after)."""
        if not 0 <= progress <= 1:
            raise ValueError(f"progress must be in [0, 1], got {progress}")
        self.progress = float(progress)

    def current_far_weight(self) -> float:
        """``far_weight``, scaled by ``progress / warmup`` while the warm-up lasts."""
        return self._warmed_up(self.far_weight)

    def current_soft_weight(self) -> float:
        """``soft_weight``, scaled like the far weight."""
        return self._warmed_up(self.soft_weight)

    def _warmed_up(self, weight: float) -> float:
        if self.progress >= self.warmup:
            return weight
        return weight * self.progress / self.warmup

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, far: torch.Tensor
    ) -> torch.Tensor:
        """The mean loss of ``logits`` ``(B, K)``; ``far`` ``(B,)`` bool flags the far points."""
        return functional.far_margin_cross_entropy(
            logits,
            target,
            self._head[0].weight,
            far,
            margin=self.margin,
            far_margin=self.far_margin,
            far_weight=self.current_far_weight(),
            temperature=self.temperature,
            soft_weight=self.current_soft_weight(),
            soft_radius=self.soft_radius,
            soft_width=self.soft_width,
        )

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"margin={self.margin}, far_margin={self.far_margin}, "
            f"far_weight={self.far_weight}, temperature={self.temperature}, "
            f"warmup={self.warmup}"
            + (
                f", soft_weight={self.soft_weight}, soft_radius={self.soft_radius}, "
                f"soft_width={self.soft_width}"
                if self.soft_weight
                else ""
            )
        )


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
