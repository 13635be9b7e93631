"""Boundary conditions and loads for the explicit solver.

Each is a small frozen dataclass saying *where* (a facet tag name of a
:class:`~snmech.fem.meshes.TaggedMesh`, a tag id, or a locator
``x -> bool array`` with ``x`` of shape ``(3, n)``) and *what* (a constant
vector or a function of time ``t`` in s returning one). A locator selects, for
a Dirichlet condition, the dofs at points satisfying it (so a point or a line
works: a pin support), and for a load the boundary facets whose vertices all
satisfy it. The solver turns them
into dof index arrays and UFL forms once; nothing here runs per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import ufl
from dolfinx import fem, mesh

Locator = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.bool_]]
Where = str | int | Locator
Vector = Sequence[float] | npt.NDArray[np.float64]
TimeVector = Vector | Callable[[float], Vector]


@dataclass(frozen=True)
class Clamp:
    """``u = 0`` (and ``v = 0``) on ``where``; ``components`` restricts it (e.g. a roller)."""

    where: Where
    components: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PrescribedDisplacement:
    """``u = value(t)`` (m) on ``where`` for the given components (default all)."""

    where: Where
    value: TimeVector
    components: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PrescribedVelocity:
    """``v = value(t)`` (m/s) on ``where`` for the given components (default all)."""

    where: Where
    value: TimeVector
    components: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Traction:
    """Surface traction ``value(t)`` (Pa, a force per area vector) on tagged facets."""

    where: Where
    value: TimeVector


@dataclass(frozen=True)
class MovingLoad:
    """A vehicle: a force (N) on a surface patch moving along ``axis`` at ``speed`` (m/s).

    ``force`` is the total force vector. The patch is a smooth ``cos^2`` window
    of length ``length`` (m) centred at ``start + speed * t``; its pressure is
    scaled so that the window, fully on the surface, carries exactly ``force``.
    """

    where: Where
    force: Vector
    speed: float
    length: float
    start: float = 0.0
    axis: int = 0


@dataclass(frozen=True)
class Gravity:
    """Body force ``density * acceleration`` (m/s^2, e.g. ``(0, 0, -9.81)``), times ``ramp(t)``."""

    acceleration: Vector
    ramp: Callable[[float], float] | None = None


Dirichlet = Clamp | PrescribedDisplacement | PrescribedVelocity
Load = Traction | MovingLoad | Gravity


def evaluate(value: TimeVector, t: float, size: int, what: str) -> npt.NDArray[np.float64]:
    """``value`` at time ``t`` as a float array of ``size`` entries (clear error otherwise)."""
    v = np.asarray(value(t) if callable(value) else value, dtype=np.float64)
    if v.shape != (size,):
        raise ValueError(f"{what} must have {size} entries, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} is not finite at t = {t:g} s: {v}")
    return v


def locate_facets(domain: mesh.Mesh, where: Where, tags: object | None) -> npt.NDArray[np.int32]:
    """Local facet indices for a tag name, a tag id, or a boundary locator."""
    fdim = domain.topology.dim - 1
    if callable(where):
        domain.topology.create_connectivity(fdim, domain.topology.dim)
        return mesh.locate_entities_boundary(domain, fdim, where)
    if tags is None:
        raise ValueError(
            f"boundary {where!r} is a tag but the mesh has no facet tags "
            "(pass a TaggedMesh or use a locator function)"
        )
    if isinstance(where, str):
        return tags.facets(where)  # type: ignore[attr-defined, no-any-return]
    return tags.facet_tags.find(int(where))  # type: ignore[attr-defined, no-any-return]


def dirichlet_dofs(
    V: fem.FunctionSpace, where: Where, tags: object | None, components: tuple[int, ...] | None
) -> npt.NDArray[np.int32]:
    """Unrolled (block-expanded) local dof indices of ``V`` on ``where``, selected components.

    A tag selects the dofs of its facets; a locator selects the dofs whose
    coordinates satisfy it, so it can also pick a point or a line (a pin support
    where beam theory puts it) and not only whole facets.
    """
    bs = V.dofmap.index_map_bs
    comps = tuple(range(bs)) if components is None else components
    if any(not 0 <= c < bs for c in comps):
        raise ValueError(f"components must be in [0, {bs}), got {comps}")
    if callable(where):
        blocks = fem.locate_dofs_geometrical(V, where)
    else:
        facets = locate_facets(V.mesh, where, tags)
        blocks = fem.locate_dofs_topological(V, V.mesh.topology.dim - 1, facets)
    return np.sort(np.concatenate([blocks * bs + c for c in comps])).astype(np.int32)


def moving_window(
    x: ufl.SpatialCoordinate, centre: fem.Constant, length: float, axis: int
) -> ufl.core.expr.Expr:
    """Smooth ``cos^2`` window of total length ``length`` centred at ``centre`` (UFL)."""
    s = (x[axis] - centre) / length
    return ufl.conditional(ufl.lt(abs(s), 0.5), ufl.cos(np.pi * s) ** 2, 0.0)
