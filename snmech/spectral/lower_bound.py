"""Empirical lower bound of a network's Lipschitz constant (an estimate, not a certificate)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.func import jvp, vjp


def _per_sample_normalize(x: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    norms = torch.linalg.vector_norm(x.flatten(1), dim=1).clamp_min(eps)
    return x / norms.view(-1, *([1] * (x.dim() - 1)))


def lipschitz_lower_bound(
    model: nn.Module,
    inputs: torch.Tensor,
    steps: int = 50,
    *,
    n_power_iterations: int = 10,
    step_size: float = 0.05,
    seed: int = 0,
) -> float:
    r"""Largest difference quotient found by gradient ascent on the Jacobian norm.

    Starting from each input ``x_i``, alternates power iteration for the top
    right singular vector ``v_i`` of the Jacobian ``J(x_i)`` with normalized
    gradient ascent of ``||J(x_i) v_i||`` in ``x_i``. The returned number is a
    realized quotient

    .. math:: \max_{i,t} \|f(x_i^t + h v_i^t) - f(x_i^t - h v_i^t)\| / (2h)

    over the starting points and every ascent iterate ``t``, evaluated in
    float64, so it is a true lower bound of the Lipschitz constant (up to
    float64 rounding) that :func:`lipschitz_bound` must exceed.
    The model is evaluated in eval mode on a float64 copy; samples must be
    independent (no batch statistics).

    Args:
        model: the network, mapping ``(B, *in)`` to ``(B, *out)``.
        inputs: starting points ``(B, *in)``.
        steps: ascent steps (0: only power iteration at the inputs).
        n_power_iterations: power-iteration steps per ascent step.
        step_size: ascent step as a fraction of the mean input norm (1 if all are 0).
        seed: seeds the initial singular-vector guesses.

    Returns:
        The largest quotient found, as a float.

    Raises:
        ValueError: empty or non-finite inputs.
    """
    if inputs.dim() < 2 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be a non-empty batch (B, ...), got {tuple(inputs.shape)}")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or inf")
    device = inputs.device
    f = copy.deepcopy(model).to(device=device, dtype=torch.float64).eval()
    for p in f.parameters():
        p.requires_grad_(False)
    x = inputs.detach().to(torch.float64).clone()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = _per_sample_normalize(torch.randn(x.shape, generator=gen, dtype=torch.float64).to(device))
    # Steps and differences are relative to the typical input size (strains are ~1e-3).
    scale = float(torch.linalg.vector_norm(x.flatten(1), dim=1).mean())
    if not scale > 0:
        scale = 1.0
    h = 1e-5 * scale

    def quotient(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            diff = f(x + h * v) - f(x - h * v)
            return torch.linalg.vector_norm(diff.flatten(1), dim=1) / (2 * h)

    best = torch.zeros(x.shape[0], dtype=torch.float64, device=device)
    with warnings.catch_warnings():
        # torch's forward-mode AD loads its jvp decompositions through the deprecated
        # torch.jit.script on first use: torch's own warning, not the caller's concern.
        warnings.filterwarnings("ignore", message=".*torch.jit.script", category=FutureWarning)
        return _ascend(f, x, v, best, steps, n_power_iterations, step_size * scale, quotient)


def _ascend(
    f: nn.Module,
    x: torch.Tensor,
    v: torch.Tensor,
    best: torch.Tensor,
    steps: int,
    n_power_iterations: int,
    step: float,
    quotient: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> float:
    def top_direction(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        _, pullback = vjp(f, x)
        for _ in range(n_power_iterations):
            _, jv = jvp(f, (x,), (v,))
            (jtjv,) = pullback(jv)
            v = _per_sample_normalize(jtjv)
        return v

    for _ in range(steps):
        v = top_direction(x, v)
        best = torch.maximum(best, quotient(x, v))
        xr = x.clone().requires_grad_(True)
        with torch.enable_grad():
            _, jv = jvp(f, (xr,), (v,))
            objective = (jv.flatten(1) ** 2).sum()
            (grad,) = torch.autograd.grad(objective, xr)
        x = x + step * _per_sample_normalize(grad)
    v = top_direction(x, v)
    return float(torch.maximum(best, quotient(x, v)).max())


__all__ = ["lipschitz_lower_bound"]
