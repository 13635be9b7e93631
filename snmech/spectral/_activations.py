"""Lipschitz constants of element-wise activations: ``sup |f'|``, derived, not sampled."""

from __future__ import annotations

import math

from scipy.optimize import minimize_scalar
from torch import nn

# Slack for constants found by a 1-D optimizer to ~1e-15 relative.
_OPT_SLACK = 1e-12


def _gelu_erf() -> float:
    # f(x) = x Phi(x); f'(x) = Phi(x) + x phi(x); f''(x) = phi(x) (2 - x^2): the
    # extrema of f' are at +-sqrt(2), and |f'(-sqrt 2)| < f'(sqrt 2).
    x = math.sqrt(2.0)
    cdf = 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return cdf + x * pdf


def _max_abs_derivative(derivative: object, bracket: tuple[float, float]) -> float:
    # |f'| of SiLU and tanh-GELU is unimodal on the bracket, which contains the argmax;
    # outside it |f'| is monotone towards its limit 1 (x -> +inf) or 0 (x -> -inf).
    res = minimize_scalar(
        lambda x: -abs(derivative(x)),
        bounds=bracket,
        method="bounded",  # type: ignore[operator]
        options={"xatol": 1e-12},
    )
    return max(1.0, -float(res.fun)) * (1.0 + _OPT_SLACK)


def _silu_derivative(x: float) -> float:
    s = 1.0 / (1.0 + math.exp(-x))
    return s * (1.0 + x * (1.0 - s))


def _gelu_tanh_derivative(x: float) -> float:
    c = math.sqrt(2.0 / math.pi)
    inner = c * (x + 0.044715 * x**3)
    t = math.tanh(inner)
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)


def activation_constant(module: nn.Module) -> float | None:
    """The certified Lipschitz constant of a known activation, or ``None`` if unknown.

    Args:
        module: an activation module instance (its parameters matter: LeakyReLU's
            slope, ELU's alpha, GELU's approximation).
    """
    if isinstance(module, nn.ReLU | nn.Tanh | nn.Softplus | nn.Identity | nn.Hardtanh | nn.ReLU6):
        return 1.0  # Softplus' derivative is sigmoid(beta x) < 1 whatever beta
    if isinstance(module, nn.Sigmoid):
        return 0.25
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(float(module.negative_slope)))
    if isinstance(module, nn.ELU):
        return max(1.0, float(module.alpha))
    if isinstance(module, nn.GELU):
        if module.approximate == "tanh":
            return _max_abs_derivative(_gelu_tanh_derivative, (0.0, 4.0))
        return _gelu_erf() * (1.0 + _OPT_SLACK)
    if isinstance(module, nn.SiLU):
        return _max_abs_derivative(_silu_derivative, (0.0, 6.0))
    return None
