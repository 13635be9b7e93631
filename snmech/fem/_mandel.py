"""Mandel strain vectors in UFL.

The Euclidean dot of two Mandel vectors is the double contraction of the
tensors (DESIGN.md), so ``sigma . eps(v)`` is the virtual work density.
"""

from __future__ import annotations

import math

import ufl
from dolfinx import mesh

from snmech.material.kinematics import Kinematics

_SQRT2 = math.sqrt(2.0)


def kinematics_of(domain: mesh.Mesh) -> Kinematics:
    """3D for a 3D mesh, plane strain for a 2D one."""
    gdim = domain.geometry.dim
    if gdim == 3:
        return Kinematics.THREE_D
    if gdim == 2:
        return Kinematics.PLANE_STRAIN
    raise ValueError(f"need a 2D (plane strain) or 3D mesh, got geometric dimension {gdim}")


def mandel_strain(u: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """Small-strain Mandel vector of a displacement: shape (6,) in 3D, (3,) in 2D."""
    e = ufl.sym(ufl.grad(u))
    if ufl.shape(u) == (3,):
        return ufl.as_vector(
            [e[0, 0], e[1, 1], e[2, 2], _SQRT2 * e[1, 2], _SQRT2 * e[0, 2], _SQRT2 * e[0, 1]]
        )
    if ufl.shape(u) == (2,):
        return ufl.as_vector([e[0, 0], e[1, 1], _SQRT2 * e[0, 1]])
    raise ValueError(f"need a 2D or 3D vector displacement, got shape {ufl.shape(u)}")


def mandel_stress_tensor(s: ufl.core.expr.Expr) -> ufl.core.expr.Expr:
    """The symmetric stress tensor of a Mandel stress vector (3D or plane strain)."""
    if ufl.shape(s) == (6,):
        r = 1.0 / _SQRT2
        return ufl.as_matrix(
            [[s[0], r * s[5], r * s[4]], [r * s[5], s[1], r * s[3]], [r * s[4], r * s[3], s[2]]]
        )
    if ufl.shape(s) == (3,):
        r = 1.0 / _SQRT2
        return ufl.as_matrix([[s[0], r * s[2]], [r * s[2], s[1]]])
    raise ValueError(f"need a Mandel vector of size 3 or 6, got shape {ufl.shape(s)}")
