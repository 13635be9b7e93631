r"""Certified l2 radii and certified accuracy from a network's Lipschitz certificate.

If ``f`` is ``L``-Lipschitz in l2, each logit difference ``z_i - z_j`` is
``sqrt(2) L``-Lipschitz, so the prediction cannot change within

.. math:: r(x) = \frac{z_{(1)}(x) - z_{(2)}(x)}{\sqrt{2}\, L}

of ``x`` (top-two logits). ``L`` comes from
:func:`snmech.spectral.lipschitz_bound` of the exported model, never from a
training estimate.

Note [Pairwise certificate]
    For a network ``z = W f(x) + b`` ending in a linear layer, each logit
    difference ``z_c - z_j = (W_c - W_j) . f(x) + b_c - b_j`` is
    ``K_cj = ||W_c - W_j||_2 Lip(f)``-Lipschitz, so the predicted class ``c``
    cannot change within

    .. math:: r(x) = \min_{j \ne c} \frac{z_c(x) - z_j(x)}{K_{cj}}

    (a pair with ``K_cj = 0`` has a constant difference: radius infinite if it
    is positive). Since ``||W_c - W_j|| <= sqrt(2) ||W||_2`` this radius is never
    smaller than the global one, and equal when ``W`` has orthonormal rows; it
    is larger for a head whose rows are not orthogonal (unit-norm rows,
    :func:`snmech.robust.models.lipschitz_mlp` with ``head="rows"``).
    ``Lip(f)`` is :func:`snmech.spectral.lipschitz_bound` of the layers before
    the head and the row norms are float64, inflated by Note [Rounding slack].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.robust.data import check_batch
from snmech.robust.functional import logit_margin
from snmech.spectral import Certificate, lipschitz_bound
from snmech.spectral._norms import ROUNDING_RTOL


@dataclass(frozen=True)
class Certification:
    """Predictions of a certified model on a labelled batch.

    Attributes:
        predictions: ``(B,)`` predicted classes.
        radii: ``(B,)`` certified l2 radii (float64, >= 0).
        correct: ``(B,)`` bool.
        certificate: the certificate ``L`` of the whole model.
        pairwise: ``(K, K)`` float64 Lipschitz bounds of the logit differences when the
            radii are pairwise (Note [Pairwise certificate]); ``None`` for the global radii.
    """

    predictions: torch.Tensor
    radii: torch.Tensor
    correct: torch.Tensor
    certificate: Certificate
    pairwise: torch.Tensor | None = None

    def accuracy(self, eps: float = 0.0) -> float:
        """Fraction correct with radius ``> eps`` (``eps = 0``: clean accuracy)."""
        return certified_accuracy(self.radii, self.correct, eps)


def certified_radii(logits: torch.Tensor, lipschitz: float) -> torch.Tensor:
    """``(top1 - top2) / (sqrt(2) L)`` per row of ``logits`` ``(B, K)``, in float64."""
    if not (lipschitz > 0 and math.isfinite(lipschitz)):
        raise ValueError(f"lipschitz must be positive and finite, got {lipschitz}")
    return logit_margin(logits.detach().double()) / (math.sqrt(2.0) * lipschitz)


def pairwise_radii(logits: torch.Tensor, pair_lipschitz: torch.Tensor) -> torch.Tensor:
    """``min_{j != c} (z_c - z_j) / K_cj`` per row of ``logits`` ``(B, K)``, ``c`` the top class.

    Args:
        logits: ``(B, K)``.
        pair_lipschitz: ``(K, K)`` certified Lipschitz bounds of ``z_i - z_j`` (>= 0).

    Returns:
        ``(B,)`` float64 radii (Note [Pairwise certificate]).
    """
    k = logits.shape[-1]
    if logits.dim() != 2 or k < 2 or pair_lipschitz.shape != (k, k):
        raise ValueError(
            f"need logits (B, K) with K >= 2 and pair_lipschitz (K, K), got "
            f"{tuple(logits.shape)} and {tuple(pair_lipschitz.shape)}"
        )
    if not (torch.isfinite(pair_lipschitz).all() and (pair_lipschitz >= 0).all()):
        raise ValueError("pair_lipschitz must be finite and >= 0")
    z = logits.detach().double()
    top = z.argmax(dim=1)
    gap = z.gather(1, top[:, None]) - z  # (B, K), >= 0
    lip = pair_lipschitz.to(z)[top]  # (B, K)
    inf = torch.full_like(gap, math.inf)
    r = torch.where(lip > 0, gap / lip.clamp_min(1e-300), torch.where(gap > 0, inf, 0.0 * gap))
    r[torch.arange(len(z), device=z.device), top] = math.inf
    return r.min(dim=1).values


def pairwise_lipschitz(
    model: nn.Sequential, *, input_shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Certified ``(K, K)`` Lipschitz bounds ``||W_i - W_j|| Lip(features)`` of logit differences.

    Args:
        model: an exported ``nn.Sequential`` whose last module is ``nn.Linear``.
        input_shape: per-sample shape for networks with convolutions.

    Returns:
        ``(K, K)`` float64 tensor on the CPU, zero diagonal (Note [Pairwise certificate]).

    Raises:
        ValueError: not a ``Sequential`` ending in ``Linear``, or non-finite weights.
    """
    if not isinstance(model, nn.Sequential) or not isinstance(model[-1], nn.Linear):
        raise ValueError(
            "the pairwise certificate needs an nn.Sequential ending in nn.Linear, got "
            f"{type(model).__name__}"
        )
    features = lipschitz_bound(model[:-1], input_shape=input_shape).value
    w = model[-1].weight.detach().to("cpu", torch.float64)
    if not torch.isfinite(w).all():
        raise ValueError("the last layer's weight contains NaN or inf")
    rows: torch.Tensor = torch.linalg.vector_norm(w[:, None, :] - w[None, :, :], dim=-1)
    return rows * (features * (1.0 + ROUNDING_RTOL))


def certify(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    input_shape: tuple[int, ...] | None = None,
    certificate: Certificate | None = None,
    pairwise: bool | None = None,
) -> Certification:
    """Certify ``model`` (exported: plain layers) on ``x`` ``(B, *s)`` with labels ``y``.

    Args:
        model: an exported model (:func:`snmech.robust.models.export`).
        x: inputs ``(B, *s)``.
        y: labels ``(B,)``.
        input_shape: per-sample shape for networks with convolutions.
        certificate: reuse a certificate already computed for ``model``.
        pairwise: radii from the pairwise bounds (Note [Pairwise certificate]);
            ``None``: pairwise when ``model`` is a ``Sequential`` ending in ``Linear``,
            global ``margin / (sqrt(2) L)`` otherwise.

    Returns:
        A :class:`Certification`.

    Raises:
        ValueError: ``model`` still has parametrizations (export it first),
            ``pairwise=True`` for a model that does not end in a linear layer, an
            empty or non-finite batch, labels of the wrong shape, or inputs the
            model cannot take (their shape is named).
    """
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise ValueError("certify needs an exported model (plain layers); call export(model) first")
    check_batch(x, y)
    if pairwise is None:
        pairwise = isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Linear)
    cert = certificate or lipschitz_bound(model, input_shape=input_shape)
    pair = pairwise_lipschitz(model, input_shape=input_shape) if pairwise else None  # type: ignore[arg-type]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:  # a shape mismatch deep inside the model
        raise ValueError(
            f"the model cannot be applied to inputs of shape {tuple(x.shape)}: {err}"
        ) from err
    finally:
        model.train(was_training)
    if logits.shape[:1] != x.shape[:1] or logits.dim() != 2:
        raise ValueError(f"the model must return logits (B, K), got {tuple(logits.shape)}")
    pred = logits.argmax(dim=1)
    if pair is None:
        return Certification(pred, certified_radii(logits, cert.value), pred == y, cert)
    radii = pairwise_radii(logits, pair.to(logits.device))
    return Certification(pred, radii, pred == y, cert, pair)


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
