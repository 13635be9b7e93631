"""FGSM and PGD in l2 and linf balls, inside the image box, with random restarts.

The attacks maximize the margin loss ``max_{j != y} z_j - z_y`` (positive once
the point is misclassified), which, unlike cross-entropy, does not saturate on
confident Lipschitz networks. Points are clipped to the box after every step;
for a start inside the box this never leaves the ball (clipping is
coordinate-wise towards the box, hence towards the start).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from snmech.robust.data import check_batch
from snmech.robust.functional import logit_margin

Norm = Literal["l2", "linf"]
_NORMS = ("l2", "linf")


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    norm: Norm = "linf",
    box: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """One signed (linf) or normalized (l2) gradient step of size ``eps``.

    Args:
        model: the classifier (put in eval mode by the caller).
        x: ``(B, *s)`` inputs inside ``box``.
        y: ``(B,)`` labels.
        eps: radius, a float or ``(B,)`` per-sample radii, > 0.
        norm: ``"l2"`` or ``"linf"``.
        box: the valid input range.

    Returns:
        Adversarial inputs ``(B, *s)``, within ``eps`` of ``x`` and inside ``box``.

    Raises:
        ValueError: an ``eps <= 0``, labels of the wrong shape, inputs not finite
            or outside ``box`` (clipping would move them farther than ``eps``).
    """
    eps_t = _check(x, y, eps, norm, box)
    grad = _grad(model, x, y)
    step = _steepest(grad, norm) * eps_t
    return _project(x + step, x, eps_t, norm, box).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    norm: Norm = "l2",
    steps: int = 50,
    restarts: int = 5,
    step_size: float | None = None,
    box: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on the margin loss, keeping each sample's worst restart.

    The first restart starts at ``x``, the others uniformly in the ball.

    Args:
        model: the classifier (put in eval mode by the caller).
        x: ``(B, *s)`` inputs inside ``box``.
        y: ``(B,)`` labels.
        eps: radius, a float or ``(B,)`` per-sample radii, > 0.
        norm: ``"l2"`` or ``"linf"``.
        steps: ascent steps per restart (>= 1).
        restarts: number of starts (>= 1).
        step_size: relative step (times ``eps``); default ``2.5 / steps``.
        box: the valid input range.
        generator: for the random starts (on ``x``'s device).

    Returns:
        Adversarial inputs ``(B, *s)`` maximizing the margin loss over all restarts.

    Raises:
        ValueError: as :func:`fgsm`, or ``steps``/``restarts`` below 1.
    """
    eps_t = _check(x, y, eps, norm, box)
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
    alpha = (2.5 / steps if step_size is None else float(step_size)) * eps_t
    best = x.clone()
    best_loss = torch.full((len(x),), -math.inf, device=x.device, dtype=x.dtype)
    for r in range(restarts):
        adv = (
            x.clone()
            if r == 0
            else _project(x + _random_in_ball(x, eps_t, norm, generator), x, eps_t, norm, box)
        )
        for _ in range(steps):
            grad = _grad(model, adv, y)
            adv = _project(adv + alpha * _steepest(grad, norm), x, eps_t, norm, box)
        with torch.no_grad():
            loss = -logit_margin(model(adv), y)
        better = loss > best_loss
        best[better] = adv[better]
        best_loss = torch.where(better, loss, best_loss)
    return best.detach()


def attack_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    norm: Norm = "l2",
    steps: int = 50,
    restarts: int = 5,
    generator: torch.Generator | None = None,
) -> float:
    """Empirical robust accuracy: the fraction still correct after :func:`pgd` (an upper bound)."""
    adv = pgd(model, x, y, eps, norm=norm, steps=steps, restarts=restarts, generator=generator)
    with torch.no_grad():
        return float((model(adv).argmax(dim=1) == y).double().mean())


def _check(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    box: tuple[float, float],
) -> torch.Tensor:
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    lo, hi = box
    if not lo < hi:  # also refuses NaN; (-inf, inf) is no box
        raise ValueError(f"box must be (low, high) with low < high, got {box}")
    check_batch(x, y)
    # clipping to the box moves a point that starts outside it by more than eps
    x_lo, x_hi = float(x.min()), float(x.max())
    if x_lo < lo or x_hi > hi:
        raise ValueError(
            f"inputs must lie inside the box [{lo:g}, {hi:g}] the attack clips to, "
            f"got values in [{x_lo:.4g}, {x_hi:.4g}] (digits: pixels / 16)"
        )
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if e.dim() == 0:
        e = e.expand(len(x))
    if e.shape != x.shape[:1]:
        raise ValueError(f"eps must be a float or ({x.shape[0]},), got shape {tuple(e.shape)}")
    if not (torch.isfinite(e).all() and (e > 0).all()):
        raise ValueError(f"eps must be finite and > 0 in the images' dtype ({x.dtype}), got {eps}")
    return e.reshape(-1, *([1] * (x.dim() - 1)))


def _grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        loss = -logit_margin(model(xr), y).sum()
        (g,) = torch.autograd.grad(loss, xr)
    return g


def _steepest(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    n = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / n.reshape(-1, *([1] * (grad.dim() - 1)))


@torch.no_grad()
def _project(
    adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str, box: tuple[float, float]
) -> torch.Tensor:
    d = adv - x
    if norm == "linf":
        d = torch.maximum(torch.minimum(d, eps), -eps)
    else:
        n = d.flatten(1).norm(dim=1).reshape(eps.shape)
        d = d * torch.clamp(eps / n.clamp_min(1e-30), max=1.0)
    return (x + d).clamp(*box)


def _random_in_ball(
    x: torch.Tensor, eps: torch.Tensor, norm: str, generator: torch.Generator | None
) -> torch.Tensor:
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * eps
    g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    g = g / g.flatten(1).norm(dim=1).reshape(eps.shape).clamp_min(1e-30)
    dim = x[0].numel()
    r = torch.rand(eps.shape, generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / dim)
    return g * r * eps
