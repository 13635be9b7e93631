"""Reference (ground-truth) laws with exact stress, tangent and Lipschitz bound.

Every law here takes Mandel strains of shape ``(n, size)`` (SI, dimensionless)
and returns Mandel stresses ``(n, size)`` in Pa, vectorized over points.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from snmech.material.kinematics import Kinematics

Array = npt.NDArray[np.float64]

_I6 = np.eye(6)
_M6 = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
_P_DEV = _I6 - np.outer(_M6, _M6) / 3.0  # deviatoric projector in Mandel form


def lame_parameters(E: float, nu: float) -> tuple[float, float]:
    """Return ``(lambda, mu)`` in Pa from Young's modulus ``E`` (Pa) and Poisson's ratio."""
    if not (E > 0 and -1.0 < nu < 0.5):
        raise ValueError(f"need E > 0 and -1 < nu < 0.5, got E={E}, nu={nu}")
    return E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))


def _check_strain(strain: Array, kinematics: Kinematics) -> Array:
    x = np.asarray(strain, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != kinematics.size:
        raise ValueError(
            f"strain must have shape (n, {kinematics.size}) for {kinematics.value}, got {x.shape}"
        )
    return x


class LinearElastic:
    """Isotropic linear elasticity, ``sigma = lambda tr(eps) I + 2 mu eps``.

    Args:
        E: Young's modulus in Pa.
        nu: Poisson's ratio.
        kinematics: 3D or plane strain.
    """

    name = "linear"

    def __init__(
        self, E: float, nu: float, kinematics: Kinematics | str = Kinematics.THREE_D
    ) -> None:
        self.E, self.nu = float(E), float(nu)
        self.kinematics = Kinematics.parse(kinematics)
        self.lmbda, self.mu = lame_parameters(self.E, self.nu)
        idx = self.kinematics.embedding
        full = self.lmbda * np.outer(_M6, _M6) + 2 * self.mu * _I6
        self._C = full[np.ix_(idx, idx)]

    def stress(self, strain: Array) -> Array:
        """Mandel stress (Pa), shape ``(n, size)``."""
        return _check_strain(strain, self.kinematics) @ self._C

    def tangent(self, strain: Array) -> Array:
        """Tangent ``d sigma / d eps`` (Pa), shape ``(n, size, size)``."""
        n = _check_strain(strain, self.kinematics).shape[0]
        return np.broadcast_to(self._C, (n, *self._C.shape)).copy()

    def lipschitz_bound(self) -> float:
        """Exact ``||C||_2`` in Pa (3K in 3D; 2(lambda + mu) in plane strain)."""
        return float(np.linalg.eigvalsh(self._C)[-1])

    def loewner_bound(self) -> Array:
        """``C`` itself: the tangent is constant."""
        return self._C.copy()

    @property
    def wave_modulus(self) -> float:
        """P-wave modulus ``lambda + 2 mu`` (Pa)."""
        return self.lmbda + 2 * self.mu


class SaturatingElastic:
    r"""Hyperelastic small-strain law with a convex energy and softening shear.

    .. math::
        \psi(\varepsilon) = \tfrac{K}{2} (\mathrm{tr}\,\varepsilon)^2 + \mu_\infty r^2
            + 2 (\mu_0 - \mu_\infty) r_0^2 \log\cosh(r / r_0),
        \qquad r = \|\mathrm{dev}\,\varepsilon\|

    The shear modulus falls from ``mu_0`` (small strain) to ``mu_inf`` when the
    deviatoric strain exceeds about ``r0``. ``psi`` is convex (a convex,
    non-decreasing function of a norm), so the tangent is symmetric positive
    semi-definite; its eigenvalues are ``3K`` and values in ``[2 mu_inf, 2 mu_0]``,
    so ``C(mu_0)`` bounds it in the Loewner order and the exact Lipschitz bound
    is that of the small-strain elasticity (attained at ``eps = 0``).

    Args:
        E: small-strain Young's modulus (Pa).
        nu: small-strain Poisson's ratio.
        softening: ``mu_inf / mu_0`` in (0, 1].
        strain_scale: ``r0`` (dimensionless), where the softening happens.
        kinematics: 3D or plane strain (``eps_33 = 0``).
    """

    name = "saturating"

    def __init__(
        self,
        E: float,
        nu: float,
        softening: float = 0.3,
        strain_scale: float = 2e-3,
        kinematics: Kinematics | str = Kinematics.THREE_D,
    ) -> None:
        if not 0 < softening <= 1:
            raise ValueError(f"softening must be in (0, 1], got {softening}")
        if strain_scale <= 0:
            raise ValueError(f"strain_scale must be > 0, got {strain_scale}")
        self.E, self.nu = float(E), float(nu)
        self.softening, self.strain_scale = float(softening), float(strain_scale)
        self.kinematics = Kinematics.parse(kinematics)
        lmbda, self.mu0 = lame_parameters(self.E, self.nu)
        self.K = lmbda + 2 * self.mu0 / 3
        self.mu_inf = self.softening * self.mu0
        self._small = LinearElastic(E, nu, self.kinematics)

    def _full(self, strain: Array) -> Array:
        x = _check_strain(strain, self.kinematics)
        if self.kinematics is Kinematics.THREE_D:
            return x
        full = np.zeros((x.shape[0], 6))
        full[:, self.kinematics.embedding] = x
        return full

    def _split(self, strain: Array) -> tuple[Array, Array, Array, Array]:
        e = self._full(strain)
        tr = e @ _M6
        dev = e @ _P_DEV
        r = np.linalg.norm(dev, axis=1)
        return e, tr, dev, r

    def _g(self, r: Array) -> tuple[Array, Array]:
        """``g = psi_dev'(r)`` and ``g / r`` (finite at r = 0)."""
        r0, dmu = self.strain_scale, self.mu0 - self.mu_inf
        t = r / r0
        g = 2 * self.mu_inf * r + 2 * dmu * r0 * np.tanh(t)
        small = t < 1e-6
        ratio = np.where(small, 2 * self.mu0, g / np.where(small, 1.0, r))
        return g, ratio

    def stress(self, strain: Array) -> Array:
        """Mandel stress (Pa), shape ``(n, size)``."""
        _, tr, dev, r = self._split(strain)
        _, ratio = self._g(r)
        sig = self.K * tr[:, None] * _M6 + ratio[:, None] * dev
        return sig[:, self.kinematics.embedding]

    def tangent(self, strain: Array) -> Array:
        """Exact tangent (Pa), shape ``(n, size, size)``, symmetric PSD."""
        _, _, dev, r = self._split(strain)
        _, ratio = self._g(r)
        t = r / self.strain_scale
        dg = 2 * self.mu_inf + 2 * (self.mu0 - self.mu_inf) / np.cosh(t) ** 2
        n = np.where(r[:, None] > 0, dev / np.where(r > 0, r, 1.0)[:, None], 0.0)
        nn = n[:, :, None] * n[:, None, :]
        C = (
            self.K * np.outer(_M6, _M6)[None]
            + ratio[:, None, None] * (_P_DEV[None] - nn)
            + dg[:, None, None] * nn
        )
        idx = self.kinematics.embedding
        return C[:, idx][:, :, idx]

    def lipschitz_bound(self) -> float:
        """Exact ``sup ||tangent||`` in Pa: attained at zero strain."""
        return self._small.lipschitz_bound()

    def loewner_bound(self) -> Array:
        """Small-strain elasticity tensor: ``tangent <= C(mu_0)`` everywhere."""
        return self._small.loewner_bound()
