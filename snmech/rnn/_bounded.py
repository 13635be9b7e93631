r"""``bound_singular_values``: every singular value of a square matrix held in an interval.

Note [Why the whole spectrum]
    Capping only the largest singular value (``spectral_norm``) shrinks all of
    them, so ``||dh_T/dh_0||`` of a recurrent net decays like ``prod sigma_min``
    and gradients vanish *faster* than without the cap (ANCHORS, "Recurrent
    networks"). Stability needs ``sigma_max <= gamma_max``, memory needs
    ``sigma_min >= gamma_min``; both hold by construction here:

    .. math::
        W = Q_U \operatorname{diag}(s) Q_V^T, \quad
        Q = B \exp(A - A^T), \quad
        s = \gamma_{min} + (\gamma_{max} - \gamma_{min}) \operatorname{sigmoid}(r)

    with ``B`` a fixed orthogonal base (a buffer, set by ``right_inverse``) and
    ``A`` the strictly upper triangle of a free parameter. ``exp`` of a
    skew-symmetric matrix is orthogonal, so the singular values of ``W`` are
    exactly ``s`` up to rounding (float32: ~1e-6 relative). For
    ``gamma_min == gamma_max = gamma`` the map is ``W = gamma B exp(A - A^T)``
    (one orthogonal factor, no ``r``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

# Keeps logit finite when right_inverse meets a singular value on the interval's edge.
_EDGE = 1e-6


def _skew(a: torch.Tensor) -> torch.Tensor:
    upper: torch.Tensor = a.triu(1)
    return upper - upper.transpose(-2, -1)


def _orthogonal_polar(w: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(w)
    q: torch.Tensor = u @ vh
    return q


class _Isometry(nn.Module):
    """Maps ``A`` to ``gamma * B exp(A - A^T)``: all singular values equal ``gamma``."""

    base: torch.Tensor

    def __init__(self, n: int, gamma: float, *, like: torch.Tensor) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("base", torch.eye(n, dtype=like.dtype, device=like.device))

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # noqa: D102
        q: torch.Tensor = self.base @ torch.linalg.matrix_exp(_skew(a))
        return q if self.gamma == 1.0 else self.gamma * q

    @torch.no_grad()
    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        # The nearest isometry (polar factor) becomes the base; A restarts at 0.
        self.base.copy_(_orthogonal_polar(w.detach()))
        return torch.zeros_like(w)

    def extra_repr(self) -> str:
        return f"gamma_min={self.gamma}, gamma_max={self.gamma}"


class _BoundedSingularValues(nn.Module):
    """Maps ``(A_U, A_V, r)`` to ``Q_U diag(s) Q_V^T`` with ``s`` in ``[gamma_min, gamma_max]``."""

    base_u: torch.Tensor
    base_v: torch.Tensor

    def __init__(self, n: int, gamma_min: float, gamma_max: float, *, like: torch.Tensor) -> None:
        super().__init__()
        self.gamma_min = float(gamma_min)
        self.gamma_max = float(gamma_max)
        eye = torch.eye(n, dtype=like.dtype, device=like.device)
        self.register_buffer("base_u", eye.clone())
        self.register_buffer("base_v", eye.clone())

    def singular_values(self, raw: torch.Tensor) -> torch.Tensor:
        """``s = gamma_min + (gamma_max - gamma_min) sigmoid(raw)``, shape ``(n,)``."""
        s: torch.Tensor = self.gamma_min + (self.gamma_max - self.gamma_min) * torch.sigmoid(raw)
        return s

    def forward(  # noqa: D102
        self, a_u: torch.Tensor, a_v: torch.Tensor, raw: torch.Tensor
    ) -> torch.Tensor:
        q_u = self.base_u @ torch.linalg.matrix_exp(_skew(a_u))
        q_v = self.base_v @ torch.linalg.matrix_exp(_skew(a_v))
        w: torch.Tensor = (q_u * self.singular_values(raw)) @ q_v.transpose(-2, -1)
        return w

    @torch.no_grad()
    def right_inverse(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # The SVD of w becomes the base; singular values outside the interval are clipped.
        u, s, vh = torch.linalg.svd(w.detach())
        self.base_u.copy_(u)
        self.base_v.copy_(vh.transpose(-2, -1))
        p = ((s - self.gamma_min) / (self.gamma_max - self.gamma_min)).clamp(_EDGE, 1 - _EDGE)
        return torch.zeros_like(w), torch.zeros_like(w), torch.logit(p)

    def extra_repr(self) -> str:
        return f"gamma_min={self.gamma_min}, gamma_max={self.gamma_max}"


def check_interval(gamma_min: float, gamma_max: float) -> None:
    """Raise ``ValueError`` unless ``0 < gamma_min <= gamma_max < inf``."""
    for name, g in (("gamma_min", gamma_min), ("gamma_max", gamma_max)):
        if not isinstance(g, int | float) or not math.isfinite(g) or g <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {g!r}")
    if gamma_min > gamma_max:
        raise ValueError(
            f"gamma_min must be <= gamma_max, got gamma_min={gamma_min}, gamma_max={gamma_max}"
        )


def bound_singular_values(
    module: nn.Module,
    name: str = "weight",
    gamma_min: float = 1.0,
    gamma_max: float = 1.0,
) -> nn.Module:
    r"""Hold every singular value of the square ``module.<name>`` in ``[gamma_min, gamma_max]``.

    A ``torch.nn.utils.parametrize`` parametrization (see Note [Why the whole
    spectrum]); ``gamma_min == gamma_max == 1`` makes the matrix orthogonal. The
    current value of the tensor is kept as far as the constraint allows: its SVD
    becomes the orthogonal base, and singular values outside the interval are
    clipped onto it (for an isometry, the polar factor times ``gamma`` is kept).

    .. math:: \gamma_{min} \le \sigma_i(W) \le \gamma_{max}, \quad i = 1..n

    Args:
        module: any module whose ``name`` is an ``(n, n)`` parameter.
        name: the parameter to constrain.
        gamma_min: lower bound on the singular values (> 0).
        gamma_max: upper bound (>= ``gamma_min``).

    Returns:
        ``module``, with the parametrization registered.

    Raises:
        ValueError: ``gamma_min > gamma_max``, a non-positive bound, or ``name``
            is not a square matrix parameter.

    Example:
        >>> import torch
        >>> layer = bound_singular_values(torch.nn.Linear(8, 8), gamma_min=0.5, gamma_max=2.0)
        >>> s = torch.linalg.svdvals(layer.weight.detach())
        >>> bool(s.min() >= 0.5 - 1e-5 and s.max() <= 2.0 + 1e-5)
        True
    """
    check_interval(gamma_min, gamma_max)
    weight = getattr(module, name, None)
    if (
        not isinstance(weight, torch.Tensor)
        or weight.dim() != 2
        or weight.shape[0] != weight.shape[1]
    ):
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
        raise ValueError(
            f"{type(module).__name__}.{name} must be a square matrix parameter, got shape {shape}"
        )
    n = weight.shape[0]
    constraint: nn.Module
    if gamma_min == gamma_max:
        constraint = _Isometry(n, gamma_min, like=weight)
    else:
        constraint = _BoundedSingularValues(n, gamma_min, gamma_max, like=weight)
    parametrize.register_parametrization(module, name, constraint)
    return module


def singular_value_bounds(module: nn.Module, name: str = "weight") -> tuple[float, float] | None:
    """``(gamma_min, gamma_max)`` of the constraint on ``module.<name>``, or ``None`` if none.

    Args:
        module: a module that may carry :func:`bound_singular_values` on ``name``.
        name: the parametrized tensor.
    """
    if not parametrize.is_parametrized(module, name):
        return None
    plist = getattr(module, "parametrizations")[name]  # noqa: B009 (typed as Tensor | Module)
    for p in plist:
        if isinstance(p, _Isometry):
            return p.gamma, p.gamma
        if isinstance(p, _BoundedSingularValues):
            return p.gamma_min, p.gamma_max
    return None
