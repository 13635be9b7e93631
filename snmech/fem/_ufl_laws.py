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
    return ufl.as_matrix(m.tolist())


def ufl_stress(material: Any, eps: Any) -> Any | None:
    """Mandel stress (Pa) as a UFL expression of the Mandel strain ``eps``, or ``None``."""
    if isinstance(material, LinearElastic):
        size = material.kinematics.size
        return ufl.dot(_matrix(np.asarray(material.tangent(np.zeros((1, size)))[0])), eps)
    if isinstance(material, PotentialLaw):
        return _potential(material, eps)
    return None


def _potential(law: PotentialLaw, eps: Any) -> Any:
    parts, cap_t = law.frozen_parts()
    W, b, a, A, Q, c = (t.numpy() for t in parts)
    cap = float(cap_t)
    e = eps / law.strain_scale
    z = _matrix(W) * e + ufl.as_vector(b.tolist())
    shift = np.tanh(b) if law.stress_free else np.zeros_like(b)
    h = ufl.as_vector([float(a[j]) * (ufl.tanh(z[j]) - float(shift[j])) for j in range(len(b))])
    s = _matrix(A) * e + _matrix(W.T) * h
    for k in range(Q.shape[0]):
        zk = _matrix(Q[k]) * e
        r2 = ufl.dot(zk, zk)
        r = ufl.sqrt(r2)
        # tanh(r) / r, by its series near 0 (the compiled ternary evaluates one branch)
        g = ufl.conditional(ufl.lt(r2, 1e-6), 1 - r2 / 3 + 2 * r2**2 / 15, ufl.tanh(r) / r)
        s = s + float(c[k]) * g * (_matrix(Q[k].T) * zk)
    return law.stress_scale * cap * s
