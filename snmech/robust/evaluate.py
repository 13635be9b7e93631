"""Clean, certified and attacked accuracy of one exported classifier, as one report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from snmech.robust.attacks import attack_accuracy
from snmech.robust.certify import certify
from snmech.robust.data import validate_images


@dataclass(frozen=True)
class RobustnessReport:
    """Accuracies in [0, 1] of an exported classifier on a labelled set.

    Attributes:
        clean: plain accuracy.
        lipschitz: the certified Lipschitz bound used for the radii.
        eps: the l2 radii evaluated.
        certified: certified accuracy at each ``eps`` (a lower bound of robust accuracy).
        pgd: accuracy under PGD-l2 at each ``eps`` (an upper bound of robust accuracy).
        radii: ``(N,)`` certified radii (0 where misclassified counts as not certified).
        correct: ``(N,)`` bool.
    """

    clean: float
    lipschitz: float
    eps: tuple[float, ...]
    certified: tuple[float, ...]
    pgd: tuple[float, ...]
    radii: torch.Tensor
    correct: torch.Tensor


def evaluate_robustness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: Sequence[float],
    *,
    input_shape: tuple[int, ...],
    pgd_steps: int = 50,
    pgd_restarts: int = 5,
    seed: int = 0,
) -> RobustnessReport:
    """Certify ``model`` on ``(x, y)`` and attack it with PGD-l2 at each radius.

    Args:
        model: an exported model (:func:`snmech.robust.models.export`).
        x: ``(N, *input_shape)`` images in [0, 1].
        y: ``(N,)`` labels.
        eps: l2 radii, each > 0.
        input_shape: per-image shape.
        pgd_steps: PGD steps per restart.
        pgd_restarts: PGD restarts.
        seed: seeds PGD's random starts.

    Returns:
        A :class:`RobustnessReport`.

    Raises:
        ValueError: bad images or labels, or an ``eps <= 0``.
    """
    if not eps or any(not (e > 0 and math.isfinite(e)) for e in eps):
        raise ValueError(f"eps must be a non-empty list of finite radii > 0, got {list(eps)}")
    validate_images(x, input_shape, labels=y)
    result = certify(model, x, y, input_shape=input_shape)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    pgd_acc = tuple(
        attack_accuracy(
            model, x, y, float(e), norm="l2", steps=pgd_steps, restarts=pgd_restarts, generator=gen
        )
        for e in eps
    )
    return RobustnessReport(
        clean=result.accuracy(0.0),
        lipschitz=result.certificate.value,
        eps=tuple(float(e) for e in eps),
        certified=tuple(result.accuracy(float(e)) for e in eps),
        pgd=pgd_acc,
        radii=result.radii,
        correct=result.correct,
    )
