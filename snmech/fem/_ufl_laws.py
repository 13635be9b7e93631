"""Laws written straight into the internal-force form (no quadrature round trip).

A :class:`~snmech.material.LinearElastic` law is ``C eps``; a
:class:`~snmech.material.PotentialLaw` is closed form too (Note [Potential law]
in ``snmech.material.neural``): ridge units ``tanh``, radial units
``tanh(r) / r``. Written in UFL with the exported float64 weights as literals,
FFCx compiles the law into the assembly kernel, so one pass over the cells
computes strain, stress and internal force at every quadrature point: no
strain array, no batched call, no stress array. The result equals the law's
``forward`` in float64 to rounding (tested). Laws without a closed form (a
``DirectLaw``, any numpy or GPU law) take the quadrature round trip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ufl

from snmech.material.neural import PotentialLaw
from snmech.material.reference import LinearElastic


def _matrix(m: np.ndarray) -> Any:
    return ufl.as_matrix(np.asarray(m, dtype=np.float64).tolist())


def _vector(v: np.ndarray) -> Any:
    return ufl.as_vector(np.asarray(v, dtype=np.float64).tolist())


def ufl_stress(material: Any, eps: Any) -> Any | None:
    """Mandel stress (Pa) as a UFL expression of the Mandel strain ``eps``, or ``None``."""
    if isinstance(material, LinearElastic):
        size = material.kinematics.size
        return ufl.dot(_matrix(np.asarray(material.tangent(np.zeros((1, size)))[0])), eps)
    if isinstance(material, PotentialLaw):
        return _potential(material, eps)
    return None


def _potential(law: PotentialLaw, eps: Any) -> Any:
    # Everything that does not depend on the strain is folded into the literals, and
    # tanh is written through exp: libmvec's vector exp plus a division costs half
    # its vector tanh (2.4 vs 1.2 ns per value here), and the law's time is almost
    # all in these calls. tanh(x) = 1 - 2 p with p = 1 / (exp(2x) + 1), exact at
    # both ends (exp overflows to inf: p = 0; underflows to 0: p = 1) and NaN in,
    # NaN out. Its absolute error is a few ulp, far below the 1e-10 the tests ask.
    parts, cap_t = law.frozen_parts()
    W, b, a, A, Q, c = (t.numpy() for t in parts)
    out = law.stress_scale * float(cap_t)
    inv = 1.0 / law.strain_scale
    z2 = _matrix(2 * inv * W) * eps + _vector(2 * b)
    p = ufl.as_vector([1 / (ufl.exp(z2[j]) + 1) for j in range(len(b))])
    shift = np.tanh(b) if law.stress_free else np.zeros_like(b)
    # sum_j W_j a_j (tanh z_j - shift_j) = W^T (a (1 - shift)) - 2 W^T (a p)
    s = (
        _matrix(inv * out * A) * eps
        + _matrix(-2 * out * (W.T * a)) * p
        + _vector(out * (W.T @ (a * (1 - shift))))
    )
    for k in range(Q.shape[0]):
        # radial unit: c_k tanh(r) / r  M_k e  with  M_k = Q_k^T Q_k,  r^2 = e^T M_k e
        Me = _matrix(inv * (Q[k].T @ Q[k])) * eps
        r2 = inv * ufl.dot(eps, Me)
        r = ufl.sqrt(r2)
        q = ufl.exp(-2 * r)  # tanh(r) = (1 - q) / (1 + q), r >= 0
        # near 0 the series (the compiled ternary evaluates one branch per point)
        g = ufl.conditional(
            ufl.lt(r2, 1e-6), 1 - r2 * (1 / 3) + r2 * r2 * (2 / 15), (1 - q) / ((1 + q) * r)
        )
        s = s + g * (float(c[k]) * out * Me)
    return s
