r"""A recurrent neural law for path-dependent (plastic) materials, with two certificates.

Note [Recurrent law]
    The law carries a hidden state ``h = (h_s, h_a)`` per material point
    (``h_s`` strain-like, ``m_s`` entries; ``h_a`` one hardening coordinate per
    unit). One step maps the scaled strain ``e`` at step ``n+1`` and the state at
    step ``n`` to the stress and the new state:

    .. math::
        y = (G e - h_s,\ -h_a), \qquad
        \tau = \nabla\phi(y) = y - \sum_k a_k P_k^T \bigl(z_k - \Pi_{K_k}(z_k)\bigr),
        \quad z_k = P_k y,

        \sigma = G^T \tau_s, \qquad h' = h + (y - \tau).

    ``K_k = {(u, t): ||u|| <= kappa_k (t + r_k)}`` is a second-order cone with
    its apex behind the origin (``r_k > 0``), ``Pi`` the Euclidean projection
    onto it, ``P_k`` a learned linear map, ``a_k >= 0``. Inside every cone (the
    elastic range) ``tau = y``: the stress is ``G^T (G e - h_s)`` and the state
    does not move; outside, the residual ``z - Pi(z)`` moves the state (plastic
    flow) and the hardening coordinates widen the cones. J2 plasticity with
    linear isotropic hardening is exactly of this form (its radial return is a
    closest-point projection onto a cone in suitably scaled stress/hardening
    coordinates).

    ``phi(y) = ||y||^2/2 - sum_k a_k d(P_k y, K_k)^2 / 2``. With
    ``S = sum_k a_k P_k^T P_k`` scaled so that ``lambda_max(S) <= 1``, ``phi`` is
    convex with ``0 <= Hess phi <= I`` (``d^2`` is convex and its Hessian is at
    most ``2I``). Hence

    1. ``d sigma / d e = G^T [Hess phi]_ss G`` at fixed state is symmetric and
       ``0 <= tangent <= G^T G =: C_bar`` in the Loewner order: the matrix
       certificate of the stable time step, exactly as for
       :class:`~snmech.material.PotentialLaw`;
    2. ``d h' / d h = Hess phi`` has norm ``<= 1``: the state update is
       non-expansive (errors in the state never grow) and equal to the identity
       in the elastic range (plastic strain is remembered, not forgotten).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.func import jacrev, vmap

from snmech.material.kinematics import Kinematics
from snmech.material.neural import ArrayOrTensor, NeuralLaw
from snmech.spectral._norms import ROUNDING_RTOL

# Safety factor on the cone-weight normalization: float32 rounding of
# lambda_max(S) must not push the applied S above I.
_S_MARGIN = 1e-5


def deviatoric_projector(size: int) -> torch.Tensor:
    """Deviatoric projector on Mandel vectors of ``size`` 6 (3D) or 4 (11, 22, 33, 12)."""
    if size not in (4, 6):
        raise ValueError(f"size must be 4 or 6, got {size}")
    P = torch.eye(size, dtype=torch.float64)
    P[:3, :3] -= 1.0 / 3.0
    return P


def cone_residual(
    u: torch.Tensor, s: torch.Tensor, kappa: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``z - Pi_K(z)`` for ``z = (u, s)`` and the cone ``K = {||u|| <= kappa s}``.

    Args:
        u: ``(..., K, p)`` cone-axis-orthogonal part.
        s: ``(..., K)`` coordinate along the axis, measured from the apex.
        kappa: ``(K,)`` positive slopes.

    Returns:
        ``(r_u, r_s)`` of the shapes of ``u`` and ``s``: zero inside the cone,
        ``z`` itself in the polar cone (projection onto the apex), and the
        residual of the projection onto the nearest generator otherwise.
    """
    nu = torch.sqrt((u * u).sum(dim=-1) + torch.finfo(u.dtype).tiny)
    inside = nu <= kappa * s
    apex = kappa * nu <= -s
    beta = (kappa * nu + s) / (1.0 + kappa * kappa)
    zero = torch.zeros_like(s)
    scale_u = torch.where(
        inside, zero, torch.where(apex, torch.ones_like(s), 1.0 - beta * kappa / nu)
    )
    r_s = torch.where(inside, zero, torch.where(apex, s, s - beta))
    return u * scale_u[..., None], r_s


class RecurrentLaw(NeuralLaw):
    """Stress from the strain at step ``n+1`` and a hidden state (Note [Recurrent law]).

    Args:
        kinematics: 3D or plane strain.
        strain_scale: typical strain magnitude (inputs are divided by it).
        stress_scale: typical stress magnitude in Pa (outputs are multiplied by it).
        units: number of cone units ``K`` (each brings one hardening coordinate).
        normalized: accepted for the model-file protocol; the cone weights are
            always normalized (the scaling is recomputed from the weights).

    The state has ``state_size = m_s + units`` entries per point (``m_s = 6`` in
    3D, 4 in plane strain: the out-of-plane component is part of the plastic
    strain); it is dimensionless and starts at zero (:meth:`initial_state`).
    """

    kind = "recurrent"

    def __init__(
        self,
        kinematics: Kinematics | str = Kinematics.THREE_D,
        strain_scale: float = 1e-3,
        stress_scale: float = 1e8,
        *,
        units: int = 2,
        normalized: bool = True,
    ) -> None:
        super().__init__(kinematics, strain_scale, stress_scale)
        if units < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        d = self.kinematics.size
        self.units = int(units)
        self.strain_state_size = 6 if self.kinematics is Kinematics.THREE_D else 4
        m_s, m = self.strain_state_size, self.strain_state_size + self.units
        # Embedding of the strain into the strain-like state (plane strain: 33 row is zero).
        embed = torch.zeros(m_s, d, dtype=torch.float64)
        rows = list(range(d)) if d == 6 else [0, 1, 3]
        embed[rows, torch.arange(d)] = 1.0
        self.G = nn.Parameter(embed.float())
        dev = deviatoric_projector(m_s)
        Pu = torch.zeros(self.units, m_s, m, dtype=torch.float64)
        Pu[:, :, :m_s] = dev
        Pu += 0.01 * torch.randn(Pu.shape, dtype=torch.float64)
        self.Pu = nn.Parameter(Pu.float())
        pt = torch.zeros(self.units, m, dtype=torch.float64)
        pt[torch.arange(self.units), m_s + torch.arange(self.units)] = 1.0
        self.pt = nn.Parameter(pt.float())
        self.a_raw = nn.Parameter(torch.full((self.units,), 2.0))
        # Cone k: ||u|| <= kappa_k t + rho_k (rho: radius of the elastic range, kappa:
        # how fast it grows with the hardening coordinate), both positive.
        self.kappa_raw = nn.Parameter(_softplus_inverse(torch.full((self.units,), 0.1)))
        self.rho_raw = nn.Parameter(_softplus_inverse(torch.linspace(1.0, 1.5, self.units)))

    @property
    def state_size(self) -> int:
        """Entries of the hidden state per material point."""
        return self.strain_state_size + self.units

    def architecture(self) -> dict[str, Any]:  # noqa: D102
        return super().architecture() | {"units": self.units}

    @staticmethod
    def _cone_matrix(a: torch.Tensor, Pu: torch.Tensor, pt: torch.Tensor) -> torch.Tensor:
        """``S = sum_k a_k P_k^T P_k`` with ``P_k = [Pu_k; pt_k]``."""
        return torch.einsum("k,kpi,kpj->ij", a, Pu, Pu) + (pt.T * a) @ pt

    def _parts(self) -> tuple[torch.Tensor, ...]:
        """``a, kappa, r`` as applied.

        ``a`` is scaled so that ``lambda_max(S) <= 1``; ``r = rho / kappa`` puts
        the apex of cone ``k`` at ``t = -r``.
        """
        softplus = nn.functional.softplus
        a = softplus(self.a_raw)
        lam = torch.linalg.eigvalsh(self._cone_matrix(a, self.Pu, self.pt))[-1]
        a = a / torch.clamp(lam * (1.0 + _S_MARGIN), min=1.0)
        kappa = softplus(self.kappa_raw)
        return a, kappa, softplus(self.rho_raw) / kappa

    def initial_state(self, n: int) -> npt.NDArray[np.float64]:
        """A virgin state of shape ``(n, state_size)`` (numpy float64)."""
        return np.zeros((n, self.state_size))

    def _cone_maps(self) -> torch.Tensor:
        """All ``P_k`` stacked: ``(K (p + 1), m)``, rows ``u`` then ``t`` of each unit."""
        return torch.cat([self.Pu, self.pt[:, None, :]], dim=1).flatten(0, 1)

    def _cell(
        self,
        y_trial: torch.Tensor,
        h: torch.Tensor,
        P: torch.Tensor,
        parts: tuple[torch.Tensor, ...],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tau_s, h')`` from the trial ``G e`` ``(n, m_s)`` and the state ``h`` ``(n, m)``."""
        a, kappa, r = parts
        m_s, K = self.strain_state_size, self.units
        y = torch.cat([y_trial - h[:, :m_s], -h[:, m_s:]], dim=1)
        z = (y @ P.T).unflatten(1, (K, -1))
        r_u, r_s = cone_residual(z[..., :-1], z[..., -1] + r, kappa)
        corr = (torch.cat([r_u, r_s[..., None]], dim=2) * a[:, None]).flatten(1) @ P
        return y[:, :m_s] - corr[:, :m_s], h + corr

    def scaled_step(
        self, e: torch.Tensor, h: torch.Tensor, parts: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step in scaled units: ``(f, h')`` for scaled strain ``e`` ``(n, size)``.

        ``parts`` (from ``_parts()``) may be passed in to reuse them over a time loop.
        """
        parts = self._parts() if parts is None else parts
        tau_s, h_new = self._cell(e @ self.G.T, h, self._cone_maps(), parts)
        return tau_s @ self.G, h_new

    def scaled_stress(self, e: torch.Tensor) -> torch.Tensor:
        """Scaled stress of a virgin point (zero state)."""
        h = torch.zeros(e.shape[0], self.state_size, dtype=e.dtype, device=e.device)
        return self.scaled_step(e, h)[0]

    def _check_state(self, state: ArrayOrTensor, n: int) -> torch.Tensor:
        ref = next(self.parameters())
        t = torch.as_tensor(np.asarray(state) if not isinstance(state, torch.Tensor) else state)
        if t.shape != (n, self.state_size):
            raise ValueError(
                f"state must have shape ({n}, {self.state_size}) for {n} points, "
                f"got {tuple(t.shape)}"
            )
        return t.to(device=ref.device, dtype=ref.dtype)

    def step(self, strain: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stress (Pa) ``(n, size)`` and new state for strain ``(n, size)`` and state (torch)."""
        f, h = self.scaled_step(strain / self.strain_scale, state)
        return self.stress_scale * f, h

    def update(self, strain: ArrayOrTensor, state: ArrayOrTensor) -> tuple[Any, Any]:
        """Stress (Pa) and new state; numpy in, numpy (float64) out, or torch in, torch out.

        The inputs are not modified.
        """
        t, is_numpy = self._to_tensor(strain)
        h = self._check_state(state, t.shape[0])
        if is_numpy:
            with torch.no_grad():
                s, h2 = self.step(t, h)
            return s.cpu().double().numpy(), h2.cpu().double().numpy()
        return self.step(t, h)

    def sequence(self, paths: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Stresses (Pa) ``(B, T, size)`` along strain paths ``(B, T, size)`` from ``state``."""
        if paths.dim() != 3 or paths.shape[2] != self.kinematics.size:
            raise ValueError(
                f"paths must have shape (B, T, {self.kinematics.size}), got {tuple(paths.shape)}"
            )
        if not torch.isfinite(paths).all():
            raise ValueError("paths contain NaN or inf")
        h = (
            torch.zeros(paths.shape[0], self.state_size, dtype=paths.dtype, device=paths.device)
            if state is None
            else state
        )
        parts, P = self._parts(), self._cone_maps()
        trial = (paths / self.strain_scale) @ self.G.T  # (B, T, m_s), one matmul
        taus = []
        for i in range(paths.shape[1]):
            tau_s, h = self._cell(trial[:, i], h, P, parts)
            taus.append(tau_s)
        return self.stress_scale * (torch.stack(taus, dim=1) @ self.G)

    def tangent_at(self, strain: ArrayOrTensor, state: ArrayOrTensor) -> ArrayOrTensor:
        """``d stress / d strain`` (Pa) at fixed state, ``(n, size, size)``, by autograd."""
        t, is_numpy = self._to_tensor(strain)
        h = self._check_state(state, t.shape[0])
        jac = vmap(jacrev(lambda x, hh: self.step(x[None], hh[None])[0][0]))(t, h)
        return jac.detach().cpu().double().numpy() if is_numpy else jac

    def state_jacobian(self, strain: ArrayOrTensor, state: ArrayOrTensor) -> ArrayOrTensor:
        """``d h' / d h`` at ``(strain, state)``, ``(n, state_size, state_size)``."""
        t, is_numpy = self._to_tensor(strain)
        h = self._check_state(state, t.shape[0])
        jac = vmap(jacrev(lambda hh, x: self.step(x[None], hh[None])[1][0]))(h, t)
        return jac.detach().cpu().double().numpy() if is_numpy else jac

    @torch.no_grad()
    def _float64_parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G, S)`` in float64: ``C_bar = G^T G`` (scaled) and the applied cone matrix."""
        G = self.G.detach().double().cpu()
        Pu, pt = self.Pu.detach().double().cpu(), self.pt.detach().double().cpu()
        # The applied a exactly as the law computes it (in its own dtype), then S in float64.
        a = self._parts()[0].detach().double().cpu()
        return G, self._cone_matrix(a, Pu, pt)

    def loewner_bound(self) -> npt.NDArray[np.float64]:
        """Certified ``C_bar = G^T G`` (Pa): ``0 <= tangent <= C_bar`` at every strain and state."""
        G, S = self._float64_parts()
        if float(torch.linalg.eigvalsh(S)[-1]) > 1.0 + 1e-6:
            # Not reachable through _parts; guards against hand-edited weights.
            raise ValueError("cone weights are not normalized: lambda_max(S) > 1")
        c_bar = (G.T @ G).numpy() * self.modulus_scale
        return 0.5 * (c_bar + c_bar.T) * (1.0 + ROUNDING_RTOL)

    def lipschitz_bound(self) -> float:
        """``||C_bar||_2`` in Pa: certified bound on the tangent at any fixed state."""
        return float(np.linalg.eigvalsh(self.loewner_bound())[-1]) * (1.0 + ROUNDING_RTOL)

    def state_lipschitz_bound(self) -> float:
        """Certified Lipschitz constant of ``h -> h'`` at fixed strain: 1 (non-expansive).

        ``d h'/d h = Hess phi`` lies between ``I - S`` and ``I``; with the applied
        ``S <= I`` this is exactly 1 (non-expansive, identity in the elastic range).
        """
        _, S = self._float64_parts()
        lam = float(torch.linalg.eigvalsh(S)[-1]) * (1.0 + ROUNDING_RTOL)
        return max(1.0, lam - 1.0)

    def export(self) -> RecurrentLaw:
        """Nothing to bake (no parametrization); returns self."""
        return self


def fit_elastic_init(
    law: RecurrentLaw, strain: npt.NDArray[np.float64], stress: npt.NDArray[np.float64]
) -> None:
    """Start ``G`` at the square root of the best linear fit on (small-strain) samples.

    In plane strain the out-of-plane row of ``G`` cannot be fitted (``eps_33 = 0``):
    it starts from the isotropic stiffness with the fitted ``lambda`` and ``mu``.

    Args:
        law: the law to initialize (modified in place).
        strain: Mandel strains ``(n, size)`` from the elastic range (e.g. first steps).
        stress: the matching stresses (Pa).
    """
    e, s = strain / law.strain_scale, stress / law.stress_scale
    C, *_ = np.linalg.lstsq(e, s, rcond=None)
    C = 0.5 * (C + C.T)
    d = law.kinematics.size
    if d == 3:
        lam, mu = C[0, 1], 0.5 * C[2, 2]
        C = lam * np.outer([1, 1, 1, 0], [1, 1, 1, 0]) + 2 * mu * np.eye(4)
    w, V = np.linalg.eigh(C)
    root = (V * np.sqrt(np.clip(w, 1e-6 * max(w.max(), 1e-12), None))) @ V.T
    G = root if d == 6 else root[:, [0, 1, 3]]
    with torch.no_grad():
        law.G.copy_(torch.as_tensor(G, dtype=law.G.dtype))


def fit_yield_init(
    law: RecurrentLaw,
    strain: npt.NDArray[np.float64],
    stress: npt.NDArray[np.float64],
    tolerance: float = 0.02,
) -> None:
    """Start the cone radii at the size of the elastic range seen in path data.

    On each path the first step whose stress leaves the linear response ``G^T G e``
    by more than ``tolerance`` (relative) marks first yield; the radius is the
    median over paths of the deviatoric trial size ``||dev(G e)||`` one step
    before (units ``k`` start at 1 to 1.5 times that).

    Args:
        law: the law, ``G`` already initialized (:func:`fit_elastic_init`).
        strain: Mandel strain paths ``(B, T, size)`` from the virgin state.
        stress: their stresses (Pa), same shape.
        tolerance: relative departure from linearity that counts as yield.
    """
    with torch.no_grad():
        G = law.G.double()
        e = torch.as_tensor(strain / law.strain_scale, dtype=torch.float64)
        f = torch.as_tensor(stress / law.stress_scale, dtype=torch.float64)
        y = e @ G.T
        linear = y @ G
        scale = torch.linalg.vector_norm(f, dim=2).amax(dim=1, keepdim=True)
        off = torch.linalg.vector_norm(f - linear, dim=2) > tolerance * scale
        yielded = off.any(dim=1)
        if not yielded.any():
            return  # an elastic data set: keep the default radii
        first = off.int().argmax(dim=1)[yielded]
        before = torch.clamp(first - 1, min=0)
        trial = y[yielded, before] @ deviatoric_projector(law.strain_state_size)
        radius = float(torch.linalg.vector_norm(trial, dim=1).median())
        radii = max(radius, 1e-6) * torch.linspace(1.0, 1.5, law.units, dtype=torch.float64)
        law.rho_raw.copy_(_softplus_inverse(radii).to(law.rho_raw.dtype))


def _softplus_inverse(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))
