r"""J2 (von Mises) small-strain plasticity with linear isotropic hardening.

The history-dependent reference law: the ground truth for recurrent neural laws.

Additive split and isotropic elasticity, von Mises yield function, associative flow:

.. math::
    \sigma = \mathbb{C} (\varepsilon - \varepsilon_p), \qquad
    f(\sigma, \alpha) = \|\mathrm{dev}\,\sigma\| - \sqrt{2/3}\,(\sigma_y + H \alpha),

    \dot\varepsilon_p = \dot\gamma\, n, \quad n = \mathrm{dev}\,\sigma / \|\mathrm{dev}\,\sigma\|,
    \quad \dot\alpha = \sqrt{2/3}\,\dot\gamma, \quad \dot\gamma \ge 0,\ f \le 0,\ \dot\gamma f = 0.

Backward Euler gives the radial return (Simo & Hughes, *Computational Inelasticity*, Box 3.2):
with the trial deviatoric stress :math:`s^{tr} = 2\mu\,\mathrm{dev}(\varepsilon_{n+1} -
\varepsilon_{p,n})` and :math:`f^{tr} = \|s^{tr}\| - \sqrt{2/3}(\sigma_y + H\alpha_n)`,
the step is elastic if :math:`f^{tr} \le 0`, else
:math:`\Delta\gamma = f^{tr} / (2\mu + 2H/3)`, :math:`\varepsilon_{p,n+1} = \varepsilon_{p,n} +
\Delta\gamma\, n`, :math:`\alpha_{n+1} = \alpha_n + \sqrt{2/3}\,\Delta\gamma` and
:math:`s_{n+1} = s^{tr} - 2\mu\Delta\gamma\, n`. Along a radial (proportional) path the
return is exact whatever the step size.

State per point (``state_size = 7``): the plastic strain as a full 3D Mandel vector (6
entries, also in plane strain, where :math:`\varepsilon_{p,33} \ne 0`) and the equivalent
plastic strain :math:`\alpha \ge 0`.

Note [J2 state update is non-expansive]:
    The radial return is the closest-point projection of the trial point
    :math:`(\sigma^{tr}, q_n)`, :math:`q = -H\alpha`, onto the convex elastic domain
    :math:`\{f \le 0\}` in the complementary-energy metric
    :math:`\delta\sigma^T \mathbb{C}^{-1} \delta\sigma + \delta q^2 / H`. At a fixed strain,
    the maps :math:`(\varepsilon_p, \alpha) \mapsto (\sigma^{tr}, q)` and back are isometries
    between that metric and the energy norm
    :math:`\|(\varepsilon_p, \alpha)\|^2 = \varepsilon_p^T \mathbb{C}\, \varepsilon_p + H\alpha^2`,
    and a projection onto a convex set is non-expansive. Hence, for two states at the same
    strain, :math:`\|\Delta\,\mathrm{state}_{n+1}\| \le \|\Delta\,\mathrm{state}_n\|`: errors
    in the state never grow, while plastic strain (permanent memory) is kept. With
    ``hardening = 0`` the norm is a semi-norm and :math:`\alpha` does not affect the stress.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from snmech.material.kinematics import Kinematics, volumetric_vector
from snmech.material.reference import LinearElastic, lame_parameters

Array = npt.NDArray[np.float64]

STATE_SIZE = 7
_SQRT_2_3 = math.sqrt(2.0 / 3.0)
_M6 = volumetric_vector(Kinematics.THREE_D)
_P_DEV = np.eye(6) - np.outer(_M6, _M6) / 3.0  # deviatoric projector in Mandel form


class J2Plasticity:
    """Von Mises plasticity with linear isotropic hardening (radial return), vectorized.

    Stateful material protocol: :meth:`initial_state`, :meth:`update` (stress at step n+1
    and the new state), :meth:`tangent` at fixed state; :meth:`stress` is the virgin
    material (zero state), so the plain protocol holds too.

    Args:
        E: Young's modulus (Pa).
        nu: Poisson's ratio.
        yield_stress: initial uniaxial yield stress ``sigma_y`` (Pa), > 0.
        hardening: linear isotropic hardening modulus ``H`` (Pa), >= 0; the yield radius
            in deviatoric stress is ``sqrt(2/3) (sigma_y + H alpha)``.
        kinematics: 3D or plane strain (``eps_33 = eps_13 = eps_23 = 0``).

    Raises:
        ValueError: ``E <= 0``, ``nu`` outside (-1, 0.5), ``yield_stress <= 0`` or
            ``hardening < 0`` (or either not finite).

    Example:
        >>> import numpy as np
        >>> law = J2Plasticity(200e9, 0.3, yield_stress=250e6, hardening=2e9)
        >>> strain = np.array([[0, 0, 0, 0, 0, np.sqrt(2) * 5e-3]])  # eps_12 = 5e-3
        >>> stress, state = law.update(strain, law.initial_state(1))
        >>> tau = stress[0, 5] / np.sqrt(2)  # yields at sigma_y / sqrt(3) = 144.3 MPa
        >>> print(f"{tau / 1e6:.1f} MPa, alpha = {state[0, 6]:.2e}")
        149.7 MPa, alpha = 4.65e-03
    """

    name = "j2"
    state_size = STATE_SIZE

    def __init__(
        self,
        E: float,
        nu: float,
        yield_stress: float,
        hardening: float,
        kinematics: Kinematics | str = Kinematics.THREE_D,
    ) -> None:
        self.E, self.nu = float(E), float(nu)
        self.lmbda, self.mu = lame_parameters(self.E, self.nu)
        if not (math.isfinite(yield_stress) and yield_stress > 0):
            raise ValueError(f"yield_stress must be finite and > 0 (Pa), got {yield_stress}")
        if not (math.isfinite(hardening) and hardening >= 0):
            raise ValueError(f"hardening must be finite and >= 0 (Pa), got {hardening}")
        self.yield_stress, self.hardening = float(yield_stress), float(hardening)
        self.kinematics = Kinematics.parse(kinematics)
        self._C3 = LinearElastic(self.E, self.nu).loewner_bound()  # state lives in 3D
        self._elastic = LinearElastic(self.E, self.nu, self.kinematics)
        self._idx = self.kinematics.embedding

    # -- validation -------------------------------------------------------------------
    def _check_strain(self, strain: Array) -> Array:
        x = np.asarray(strain, dtype=np.float64)
        k = self.kinematics
        if x.ndim != 2 or x.shape[1] != k.size:
            raise ValueError(f"strain must have shape (n, {k.size}) for {k.value}, got {x.shape}")
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(f"strain has NaN or inf (first at point {np.argwhere(bad)[0, 0]})")
        return x

    def _check_state(self, state: Array, n: int, *, name: str = "state") -> Array:
        s = np.asarray(state, dtype=np.float64)
        if s.shape != (n, STATE_SIZE):
            raise ValueError(
                f"{name} must have shape ({n}, {STATE_SIZE}) (plastic strain in 3D Mandel + "
                f"alpha), got {s.shape}"
            )
        bad = ~np.isfinite(s)
        if bad.any():
            raise ValueError(f"{name} has NaN or inf (first at point {np.argwhere(bad)[0, 0]})")
        return s

    def _check_alpha(self, state: Array) -> None:
        if state.shape[0] and state[:, 6].min() < 0:
            i = int(np.argmin(state[:, 6]))
            raise ValueError(
                f"equivalent plastic strain alpha (state[:, 6]) must be >= 0, got "
                f"{state[i, 6]} at point {i}"
            )

    # -- the return map ---------------------------------------------------------------
    def _return_map(self, strain: Array, state: Array) -> tuple[Array, Array, Array, Array]:
        """Stress (3D Mandel), new state, ``2 mu dgamma / ||s_tr||`` and the flow direction."""
        x = self._check_strain(strain)
        s0 = self._check_state(state, x.shape[0])
        self._check_alpha(s0)
        e = np.zeros((x.shape[0], 6))
        e[:, self._idx] = x
        sig_tr = (e - s0[:, :6]) @ self._C3
        s_tr = sig_tr @ _P_DEV
        norm = np.linalg.norm(s_tr, axis=1)
        f_tr = norm - _SQRT_2_3 * (self.yield_stress + self.hardening * s0[:, 6])
        plastic = f_tr > 0  # then norm > sqrt(2/3) sigma_y > 0
        safe = np.where(plastic, norm, 1.0)
        dgamma = np.where(plastic, f_tr, 0.0) / (2 * self.mu + 2 * self.hardening / 3)
        n = np.where(plastic[:, None], s_tr / safe[:, None], 0.0)
        new = s0.copy()
        new[plastic, :6] += dgamma[plastic, None] * n[plastic]
        new[plastic, 6] += _SQRT_2_3 * dgamma[plastic]
        sig = sig_tr - (2 * self.mu * dgamma)[:, None] * n
        return sig, new, 2 * self.mu * dgamma / safe, n

    def initial_state(self, n: int) -> Array:
        """Virgin state (no plastic strain), shape ``(n, state_size)``."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return np.zeros((n, STATE_SIZE))

    def update(self, strain: Array, state: Array) -> tuple[Array, Array]:
        """One backward-Euler step: stress at step n+1 and the new state.

        Args:
            strain: ``(n, size)`` Mandel strain at step n+1.
            state: ``(n, state_size)`` state at step n (not modified).

        Returns:
            ``(stress, new_state)``: ``(n, size)`` Mandel stress in Pa and
            ``(n, state_size)``. Points that stay elastic keep their state bit for bit.

        Raises:
            ValueError: wrong shapes, NaN/inf, or a negative ``alpha``.
        """
        sig, new, _, _ = self._return_map(strain, state)
        return sig[:, self._idx], new

    def stress(self, strain: Array) -> Array:
        """Mandel stress (Pa), ``(n, size)``, of the virgin material loaded in one step."""
        x = self._check_strain(strain)
        return self.update(x, self.initial_state(x.shape[0]))[0]

    def tangent(self, strain: Array, state: Array | None = None) -> Array:
        r"""Consistent algorithmic tangent ``d stress / d strain`` at fixed state, ``(n, k, k)``.

        .. math::
            \mathbb{C}^{alg} = \mathbb{C} - 2\mu (1 - \theta)(P_{dev} - n \otimes n)
                - \frac{6\mu^2}{3\mu + H}\, n \otimes n, \qquad
            \theta = 1 - \frac{2\mu\Delta\gamma}{\|s^{tr}\|},

        and ``C`` where the step is elastic. Both subtracted terms are positive
        semi-definite and ``0 <= C_alg``, so ``0 <= C_alg <= C`` in the Loewner order.

        Args:
            strain: ``(n, size)`` Mandel strain at step n+1.
            state: ``(n, state_size)`` state at step n; ``None`` for the virgin material.
        """
        x = self._check_strain(strain)
        s0 = self.initial_state(x.shape[0]) if state is None else state
        _, _, ratio, n = self._return_map(x, s0)
        nn = n[:, :, None] * n[:, None, :]
        beta = 6 * self.mu**2 / (3 * self.mu + self.hardening)
        T = self._C3[None] - 2 * self.mu * ratio[:, None, None] * (_P_DEV[None] - nn) - beta * nn
        return T[:, self._idx][:, :, self._idx]

    # -- bounds -----------------------------------------------------------------------
    def lipschitz_bound(self) -> float:
        """``||C||_2`` of the elasticity (Pa): bounds every algorithmic tangent."""
        return self._elastic.lipschitz_bound()

    def loewner_bound(self) -> Array:
        """Elastic ``C`` (``size x size``, Pa): ``0 <= tangent <= C`` at every strain and state."""
        return self._elastic.loewner_bound()

    def state_lipschitz_bound(self) -> float:
        """1.0: the state update is non-expansive in :meth:`state_norm` at fixed strain.

        See Note [J2 state update is non-expansive] in the module docstring.
        """
        return 1.0

    def state_norm(self, state: Array) -> Array:
        r"""Energy norm of states (or state differences), ``(n,)`` in ``sqrt(Pa)``.

        .. math::
            \|(\varepsilon_p, \alpha)\| = \sqrt{\varepsilon_p^T \mathbb{C}\,\varepsilon_p
                + H \alpha^2}

        with the 3D elastic ``C``. Negative ``alpha`` is allowed here (differences).

        Args:
            state: ``(n, state_size)``.
        """
        s = np.asarray(state, dtype=np.float64)
        s = self._check_state(s, s.shape[0] if s.ndim else -1)
        eps_p = s[:, :6]
        energy = np.einsum("ni,ij,nj->n", eps_p, self._C3, eps_p) + self.hardening * s[:, 6] ** 2
        norm: Array = np.sqrt(np.maximum(energy, 0.0))
        return norm

    def __repr__(self) -> str:
        return (
            f"J2Plasticity(E={self.E:g}, nu={self.nu:g}, yield_stress={self.yield_stress:g}, "
            f"hardening={self.hardening:g}, kinematics={self.kinematics.value!r})"
        )
