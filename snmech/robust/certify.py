r"""Certified l2 radii and certified accuracy from a network's Lipschitz certificate.

If ``f`` is ``L``-Lipschitz in l2, each logit difference ``z_i - z_j`` is
``sqrt(2) L``-Lipschitz, so the prediction cannot change within

.. math:: r(x) = \frac{z_{(1)}(x) - z_{(2)}(x)}{\sqrt{2}\, L}

of ``x`` (top-two logits). ``L`` comes from
:func:`snmech.spectral.lipschitz_bound` of the exported model, never from a
training estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.robust.functional import logit_margin
from snmech.spectral import Certificate, lipschitz_bound


@dataclass(frozen=True)
class Certification:
    """Predictions of a certified model on a labelled batch.

    Attributes:
        predictions: ``(B,)`` predicted classes.
        radii: ``(B,)`` certified l2 radii (float64, >= 0).
        correct: ``(B,)`` bool.
        certificate: the certificate ``L`` used.
    """

    predictions: torch.Tensor
    radii: torch.Tensor
    correct: torch.Tensor
    certificate: Certificate

    def accuracy(self, eps: float = 0.0) -> float:
        """Fraction correct with radius ``> eps`` (``eps = 0``: clean accuracy)."""
        return certified_accuracy(self.radii, self.correct, eps)


def certified_radii(logits: torch.Tensor, lipschitz: float) -> torch.Tensor:
    """``(top1 - top2) / (sqrt(2) L)`` per row of ``logits`` ``(B, K)``, in float64."""
    if not (lipschitz > 0 and math.isfinite(lipschitz)):
        raise ValueError(f"lipschitz must be positive and finite, got {lipschitz}")
    return logit_margin(logits.detach().double()) / (math.sqrt(2.0) * lipschitz)


def certify(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    input_shape: tuple[int, ...] | None = None,
    certificate: Certificate | None = None,
) -> Certification:
    """Certify ``model`` (exported: plain layers) on ``x`` ``(B, *s)`` with labels ``y``.

    Args:
        model: an exported model (:func:`snmech.robust.models.export`).
        x: inputs ``(B, *s)``.
        y: labels ``(B,)``.
        input_shape: per-sample shape for networks with convolutions.
        certificate: reuse a certificate already computed for ``model``.

    Returns:
        A :class:`Certification`.

    Raises:
        ValueError: ``model`` still has parametrizations (export it first).
    """
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise ValueError("certify needs an exported model (plain layers); call export(model) first")
    cert = certificate or lipschitz_bound(model, input_shape=input_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        model.train(was_training)
    pred = logits.argmax(dim=1)
    return Certification(pred, certified_radii(logits, cert.value), pred == y, cert)


def certified_accuracy(radii: torch.Tensor, correct: torch.Tensor, eps: float) -> float:
    """Fraction of points that are correct with certified radius ``> eps`` (``eps >= 0``)."""
    if eps < 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    ok = correct & (radii > eps) if eps > 0 else correct
    return float(ok.double().mean())


def certified_accuracy_curve(
    radii: torch.Tensor, correct: torch.Tensor, eps: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Certified accuracy at each radius of ``eps`` (float64, same length)."""
    return torch.tensor(
        [certified_accuracy(radii, correct, float(e)) for e in eps], dtype=torch.float64
    )
