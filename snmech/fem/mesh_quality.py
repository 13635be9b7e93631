"""Mesh quality: reject broken meshes with a named reason, and distort meshes for tests.

:func:`check_mesh` runs on every mesh :func:`~snmech.fem.mesh_io.read_mesh`
reads; :func:`distort` moves interior vertices reproducibly on any number of ranks.
"""

from __future__ import annotations

from typing import NamedTuple

import basix
import basix.ufl
import numpy as np
import ufl
from dolfinx import la, mesh
from dolfinx.mesh import Mesh
from mpi4py import MPI

from snmech.fem.meshes import TaggedMesh, _bounding_box


class MeshQuality(NamedTuple):
    """What :func:`check_mesh` measured, global over ranks.

    Attributes:
        min_volume: smallest cell volume (area in 2D), m^3 (m^2).
        min_h: shortest cell edge, m.
    """

    min_volume: float
    min_h: float


def _reference_geometry(domain: Mesh[np.float64]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell node coordinates (n, nodes, gdim), Jacobians (n, points, gdim, tdim), weights.

    The sample points are the reference vertices followed by a Gauss rule exact
    for the Jacobian determinant of degree-1 cells; ``weights`` covers the rule.
    """
    gdim = domain.geometry.dim
    cmap = domain.geometry.cmaps[0]
    cell = domain.basix_cell()
    element = basix.create_element(
        basix.ElementFamily.P, cell, cmap.degree, basix.LagrangeVariant(cmap.variant)
    )
    qpoints, weights = basix.make_quadrature(cell, 2 * cmap.degree)
    points = np.vstack([basix.geometry(cell), qpoints])
    dphi = np.asarray(element.tabulate(1, points))[1:, :, :, 0]  # (tdim, points, nodes)
    nodes = domain.geometry.x[domain.geometry.dofmaps[0], :gdim]
    jacobians: np.ndarray = np.einsum("cki,jpk->cpij", nodes, dphi)
    return nodes, jacobians, np.asarray(weights)


def _folded_facets(domain: Mesh[np.float64], centroids: np.ndarray) -> np.ndarray:
    """Interior facets whose two cells' centroids lie on the same side of the facet."""
    tdim, gdim = domain.topology.dim, domain.geometry.dim
    f2c = domain.topology.connectivity(tdim - 1, tdim)
    interior = np.flatnonzero(np.diff(f2c.offsets) == 2).astype(np.int32)
    if len(interior) == 0:
        return interior
    pair = f2c.array[f2c.offsets[interior][:, None] + np.arange(2)]
    p = domain.geometry.x[mesh.entities_to_geometry(domain, tdim - 1, interior), :gdim]
    n_vertices = 2 if tdim == 2 else (3 if domain.topology.cell_type.name == "tetrahedron" else 4)
    if n_vertices == 2:
        normal = (p[:, 1] - p[:, 0]) @ np.array([[0.0, -1.0], [1.0, 0.0]])
    elif n_vertices == 3:
        normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    else:  # quadrilateral facet, tensor order: cross the diagonals
        normal = np.cross(p[:, 3] - p[:, 0], p[:, 2] - p[:, 1])
    middle = p[:, :n_vertices].mean(axis=1)  # vertex nodes come first
    side = np.einsum("fi,fci->fc", normal, centroids[pair] - middle[:, None, :])
    folded: np.ndarray = interior[side[:, 0] * side[:, 1] >= 0]
    return folded


def check_mesh(domain: Mesh[np.float64]) -> MeshQuality:
    r"""Raise ``ValueError`` naming what is wrong with a mesh; else measure it.

    Checks, on every rank and collectively: the mesh has cells; coordinates are
    finite; no cell is degenerate (:math:`|\det J| \le 10^{-10} h_{max}^d` at a
    reference vertex or Gauss point); no tensor-product cell is tangled
    (:math:`\det J` changes sign inside it); no cell is folded over a neighbour
    (two cells on the same side of their shared facet, which a perturbed or
    inverted vertex causes; simplices may be oriented either way).

    Args:
        domain: a mesh with ``gdim == tdim``.

    Returns:
        The smallest cell volume and shortest edge, global over ranks.

    Raises:
        ValueError: with the problem, counts and an example location.
    """
    comm, tdim, gdim = domain.comm, domain.topology.dim, domain.geometry.dim
    if domain.topology.index_map(tdim).size_global == 0:
        raise ValueError("mesh has no cells")
    if gdim != tdim:
        raise ValueError(f"check_mesh needs gdim == tdim, got gdim={gdim}, tdim={tdim}")
    domain.topology.create_connectivity(tdim - 1, tdim)  # collective: before any branching
    problems: list[str] = []
    volume, h = np.array([np.inf]), np.array([np.inf])
    x = domain.geometry.x[:, :gdim]
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        problems.append(
            f"{bad.sum()} node(s) with NaN/inf coordinates, e.g. {x[bad][0]} (rank {comm.rank})"
        )
    elif domain.geometry.dofmaps[0].shape[0] > 0:
        nodes, jac, weights = _reference_geometry(domain)
        det = np.linalg.det(jac)  # (cells, points)
        edges = np.array(basix.topology(domain.basix_cell())[1])
        lengths = np.linalg.norm(nodes[:, edges[:, 0]] - nodes[:, edges[:, 1]], axis=-1)
        h = lengths.min(axis=1)
        n_corners = len(basix.geometry(domain.basix_cell()))
        volume = np.abs(det[:, n_corners:] @ weights)
        where = nodes[:, :n_corners].mean(axis=1)
        for label, mask in (
            ("degenerate (zero-volume)", np.abs(det).min(axis=1) <= 1e-10 * lengths.max(1) ** tdim),
            ("tangled (det J changes sign)", det.min(axis=1) * det.max(axis=1) < 0),
        ):
            if mask.any():
                problems.append(
                    f"{mask.sum()} {label} cell(s), e.g. cell {np.argmax(mask)} at "
                    f"{where[mask][0]} (rank {comm.rank})"
                )
        folded = _folded_facets(domain, where)
        if len(folded):
            at = mesh.compute_midpoints(domain, tdim - 1, folded[:1])[0, :gdim]
            problems.append(
                f"{len(folded)} facet(s) with both cells on one side (inverted/folded cells), "
                f"e.g. facet {folded[0]} at {at} (rank {comm.rank})"
            )
    problems = [p for rank_problems in comm.allgather(problems) for p in rank_problems]
    if problems:
        raise ValueError("broken mesh: " + "; ".join(problems))
    return MeshQuality(
        min_volume=float(comm.allreduce(volume.min(initial=np.inf), op=MPI.MIN)),
        min_h=float(comm.allreduce(h.min(initial=np.inf), op=MPI.MIN)),
    )


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = z ^ (z >> np.uint64(31))
    return mixed


def _hashed_uniform(x: np.ndarray, seed: int, lo: np.ndarray, scale: float) -> np.ndarray:
    """Uniform numbers in [-1, 1), shape of ``x``, a pure function of (coordinates, seed)."""
    q = np.round((x - lo) / scale * 2.0**32).astype(np.int64).astype(np.uint64)
    key = _splitmix64(np.full(len(x), seed, dtype=np.uint64))
    for k in range(x.shape[1]):
        key = _splitmix64(key ^ q[:, k])
    bits = np.stack([_splitmix64(key + np.uint64(k + 1)) for k in range(x.shape[1])], axis=1)
    return (bits >> np.uint64(11)).astype(np.float64) / 2.0**52 - 1.0


def distort(tagged: TaggedMesh, amount: float = 0.2, seed: int = 0) -> TaggedMesh:
    r"""Move interior vertices randomly by up to ``amount`` times the local cell size.

    Each interior vertex moves by ``amount * h_v * u / sqrt(gdim)`` with ``u``
    uniform in ``[-1, 1)^gdim``, so at most ``amount * h_v``; ``h_v`` is a soft
    minimum, :math:`(\sum_c h_c^{-16})^{-1/16} \le \min_c h_c`, of the shortest
    edges ``h_c`` of the cells around it. ``u`` is a hash of the vertex's
    coordinates and ``seed``, so a vertex moves the same way on every rank and
    for every partition. Boundary vertices stay, so the facet tags remain valid
    and the volume is unchanged. ``amount <= 0.3`` keeps the structured meshes
    of this module valid; the result goes through :func:`check_mesh`, which
    raises if larger moves folded a cell.

    Args:
        tagged: a mesh with a degree-1 geometry.
        amount: relative perturbation, in ``[0, 0.5]``.
        seed: random seed.

    Returns:
        A new mesh sharing ``tagged``'s topology, with new coordinates and the same tags.

    Raises:
        ValueError: ``amount`` out of range, a curved geometry, or a folded result.
    """
    if not 0.0 <= amount <= 0.5:
        raise ValueError(f"amount must be in [0, 0.5], got {amount}")
    domain = tagged.mesh
    comm, tdim, gdim = domain.comm, domain.topology.dim, domain.geometry.dim
    geometry, cmap = domain.geometry, domain.geometry.cmaps[0]
    if cmap.degree != 1:
        raise ValueError(f"distort needs a degree-1 geometry, got degree {cmap.degree}")
    x, dofmap, imap = geometry.x, geometry.dofmaps[0], geometry.index_map()
    domain.topology.create_connectivity(tdim - 1, tdim)
    on_boundary = la.vector(imap, 1)
    on_boundary.array[:] = 0.0
    facets = mesh.exterior_facet_indices(domain.topology)
    on_boundary.array[mesh.entities_to_geometry(domain, tdim - 1, facets).ravel()] = 1.0
    on_boundary.scatter_reverse(la.InsertMode.add)
    on_boundary.scatter_forward()
    # soft minimum of h over cells, summed once per cell (owned cells only) across ranks
    owned = dofmap[: domain.topology.index_map(tdim).size_local]
    edges = np.array(basix.topology(domain.basix_cell())[1])
    nodes = x[owned, :gdim]
    h_cell = np.linalg.norm(nodes[:, edges[:, 0]] - nodes[:, edges[:, 1]], axis=-1).min(axis=1)
    h_max = comm.allreduce(h_cell.max(initial=0.0), op=MPI.MAX)
    weight = la.vector(imap, 1)
    weight.array[:] = 0.0
    np.add.at(weight.array, owned.ravel(), np.repeat((h_cell / h_max) ** -16.0, owned.shape[1]))
    weight.scatter_reverse(la.InsertMode.add)
    weight.scatter_forward()
    h_vertex = h_max * weight.array ** (-1.0 / 16.0)
    lo, hi = _bounding_box(domain)
    u = _hashed_uniform(x[:, :gdim], seed, lo, float(np.max(hi - lo)))
    step = u * (amount * h_vertex / np.sqrt(gdim))[:, None]
    step[on_boundary.array > 0] = 0.0
    moved = np.ascontiguousarray(x[:, :gdim] + step)  # (nodes, gdim): sets the geometric dimension
    new_geometry = mesh.create_geometry(imap, dofmap, cmap, moved, geometry.input_global_indices)
    cpp_mesh = type(domain._cpp_object)(comm, domain.topology._cpp_object, new_geometry._cpp_object)
    ufl_domain = domain.ufl_domain()
    assert ufl_domain is not None
    new: Mesh[np.float64] = mesh.Mesh(cpp_mesh, ufl.Mesh(ufl_domain.ufl_coordinate_element()))  # type: ignore[no-untyped-call]
    new.name = domain.name
    check_mesh(new)
    tags = mesh.meshtags(new, tdim - 1, tagged.facet_tags.indices, tagged.facet_tags.values)
    tags.name = tagged.facet_tags.name
    return TaggedMesh(new, tags, dict(tagged.names))
