"""Tagged meshes for the explicit solver: a beam, a girder bridge, file I/O, checks.

Conventions (every mesh here): SI metres, the **vertical axis is the last
coordinate** (``z`` in 3D, ``y`` in 2D), so gravity acts along ``-z`` in 3D and
``-y`` in 2D (plane strain, per metre of thickness). Boundary facets carry
integer tags; :class:`TaggedMesh` keeps the ``name -> id`` map beside them.
All builders work on ``comm`` in parallel and vectorize over cells and facets.
"""

from __future__ import annotations

import itertools
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import basix
import basix.ufl
import numpy as np
import numpy.typing as npt
import ufl
from dolfinx import la, mesh
from dolfinx.io import XDMFFile
from dolfinx.mesh import Mesh, MeshTags
from mpi4py import MPI

logger = logging.getLogger(__name__)

TAGS_FORMAT = "snmech.mesh-tags"
TAGS_VERSION = 1
_SIZES = {"coarse": 0.5, "medium": 0.18, "fine": 0.11}  # bridge element size, m
_SIMPLEX = {"tetrahedron": 3, "triangle": 2}
_TENSOR = {"hexahedron": 3, "quadrilateral": 2}
_CELL_NAME = {(True, 3): "tetrahedron", (True, 2): "triangle"}
_CELL_NAME.update({(False, 3): "hexahedron", (False, 2): "quadrilateral"})

_Rule = tuple[str, int, Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class TaggedMesh:
    """A dolfinx mesh with named facet tags.

    Attributes:
        mesh: the dolfinx mesh.
        facet_tags: integer ``MeshTags`` on facets (dimension ``tdim - 1``).
        names: physical name -> tag id, e.g. ``{"clamped": 1, "tip": 2}``.
    """

    mesh: Mesh[np.float64]
    facet_tags: MeshTags
    names: dict[str, int]

    def facets(self, name: str) -> npt.NDArray[np.int32]:
        """Local (owned and ghost) facet indices tagged ``name``.

        Raises:
            KeyError: ``name`` is not a tag of this mesh; the message lists the known names.
        """
        if name not in self.names:
            raise KeyError(f"no facet tag {name!r}; known tags: {sorted(self.names)}")
        return np.asarray(self.facet_tags.find(self.names[name]), dtype=np.int32)

    def describe(self) -> str:
        """Summary over all ranks: cells, vertices, P1 vector dofs, bounding box, tag sizes."""
        domain, comm = self.mesh, self.mesh.comm
        tdim, gdim = domain.topology.dim, domain.geometry.dim
        domain.topology.create_entities(tdim - 1)
        n_cells = domain.topology.index_map(tdim).size_global
        n_vertices = domain.topology.index_map(0).size_global
        lo, hi = _bounding_box(domain)
        n_owned = domain.topology.index_map(tdim - 1).size_local
        lines = [
            f"{gdim}D {domain.topology.cell_type.name} mesh on {comm.size} rank(s): "
            f"{n_cells} cells, {n_vertices} vertices, {gdim * n_vertices} P1 vector dofs",
            "bounding box [m]: "
            + " x ".join(f"[{a:.6g}, {b:.6g}]" for a, b in zip(lo, hi, strict=True)),
        ]
        for name, tag in sorted(self.names.items(), key=lambda item: item[1]):
            local = self.facet_tags.find(tag)
            count = comm.allreduce(int(np.count_nonzero(local < n_owned)), op=MPI.SUM)
            lines.append(f"  tag {tag:>3} {name!r}: {count} facets")
        return "\n".join(lines)


def _bounding_box(domain: Mesh[np.float64]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest coordinates of the geometry, over all ranks."""
    x = domain.geometry.x[:, : domain.geometry.dim]
    lo, hi = np.empty(x.shape[1]), np.empty(x.shape[1])
    domain.comm.Allreduce(x.min(axis=0, initial=np.inf), lo, op=MPI.MIN)
    domain.comm.Allreduce(x.max(axis=0, initial=-np.inf), hi, op=MPI.MAX)
    return lo, hi


class MeshQuality(NamedTuple):
    """What :func:`check_mesh` measured, global over ranks.

    Attributes:
        min_volume: smallest cell volume (area in 2D), m^3 (m^2).
        min_h: shortest cell edge, m.
    """

    min_volume: float
    min_h: float


@dataclass(frozen=True)
class BridgeSection:
    """Cross-section of the girder bridge of :func:`bridge_mesh` (metres).

    A deck slab of ``deck_width`` x ``deck_thickness`` sits on two steel webs
    (``girder_thickness`` wide, ``girder_depth`` deep) centred at
    ``y = +-girder_spacing / 2``: a pi-shaped section, symmetric about ``y = 0``.
    """

    deck_width: float = 4.0
    deck_thickness: float = 0.25
    girder_depth: float = 1.0
    girder_thickness: float = 0.3
    girder_spacing: float = 2.5

    @property
    def area(self) -> float:
        """Cross-section area, m^2."""
        return self.deck_width * self.deck_thickness + 2 * self.girder_thickness * self.girder_depth

    @property
    def equivalent_depth(self) -> float:
        r"""Depth of the rectangle with this section's radius of gyration, m.

        :math:`d = \sqrt{12 I / A}` about the centroidal horizontal axis, so an
        Euler-Bernoulli beam of depth ``d`` has the same bending frequencies per
        unit mass as the 3D section (1.2299 m for the defaults).
        """
        d, t, w = self.girder_depth, self.deck_thickness, self.deck_width
        a_slab, a_webs = w * t, 2 * self.girder_thickness * d
        z_c = (a_slab * (d + t / 2) + a_webs * d / 2) / self.area
        inertia = a_slab * (t**2 / 12 + (d + t / 2 - z_c) ** 2)
        inertia += a_webs * (d**2 / 12 + (d / 2 - z_c) ** 2)
        return float(np.sqrt(12 * inertia / self.area))


def _cell_kind(cell: str, dim: int) -> bool:
    """True for simplices; validates ``cell`` and ``dim``."""
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    names = {**_SIMPLEX, **_TENSOR}
    if cell not in names:
        raise ValueError(f"cell must be one of {sorted(names)}, got {cell!r}")
    if dim == 3 and names[cell] == 2:
        raise ValueError(f"cell {cell!r} is two-dimensional but dim=3")
    return cell in _SIMPLEX


def _partitioner(comm: MPI.Comm) -> Callable[..., object] | None:
    """Ghost shared facets, like ``create_box`` and ``XDMFFile.read_mesh`` do."""
    partitioner = mesh.create_cell_partitioner(mesh.GhostMode.shared_facet, 2)  # type: ignore[call-arg]
    return partitioner if comm.size > 1 else None


def _tag_exterior_facets(domain: Mesh[np.float64], rules: Sequence[_Rule]) -> TaggedMesh:
    """Tag exterior facets by their midpoints; the first matching rule wins.

    Each rule is ``(name, id, predicate)`` with ``predicate(midpoints (n, 3)) -> bool (n,)``.
    Names whose id tags no facet on any rank are dropped from ``names``.
    """
    tdim = domain.topology.dim
    domain.topology.create_connectivity(tdim - 1, tdim)
    exterior = mesh.exterior_facet_indices(domain.topology)
    midpoints = mesh.compute_midpoints(domain, tdim - 1, exterior)
    values = np.zeros(len(exterior), dtype=np.int32)
    for _, tag, predicate in reversed(rules):  # reversed: earlier rules overwrite later ones
        values[predicate(midpoints)] = tag
    keep = values > 0
    tags = mesh.meshtags(domain, tdim - 1, exterior[keep], values[keep])
    tags.name = "facet_tags"
    present = set().union(*domain.comm.allgather(set(np.unique(values[keep]).tolist())))
    names = {name: tag for name, tag, _ in rules if tag in present}
    return TaggedMesh(domain, tags, names)


def beam_mesh(
    length: float = 1.0,
    height: float = 0.1,
    width: float = 0.1,
    *,
    n: int | Sequence[int] = 20,
    cell: str = "tetrahedron",
    dim: int = 3,
    comm: MPI.Comm = MPI.COMM_WORLD,
) -> TaggedMesh:
    """Cantilever beam ``[0, length] x [0, width] x [0, height]``; 2D ``[0, length] x [0, height]``.

    Tags: ``clamped`` (x = 0) = 1, ``tip`` (x = length) = 2, ``top`` (vertical
    coordinate = height) = 3, ``bottom`` (vertical coordinate = 0) = 4. The
    defaults give 20 x 2 x 2 cells, 189 vertices, 567 P1 vector dofs.

    Args:
        length: along x, m.
        height: vertical extent (z in 3D, y in 2D), m.
        width: extent along y in 3D, m; unused in 2D (plane strain, unit thickness).
        n: cells per axis ``(nx, ny, nz)`` (2D ``(nx, ny)``) in coordinate order, or
            the number along the length, the others following the aspect ratio (at least 1).
        cell: ``"tetrahedron"`` or ``"hexahedron"``; in 2D also ``"triangle"`` or
            ``"quadrilateral"`` (the 3D names map to them).
        dim: 3, or 2 for a plane-strain rectangle.
        comm: MPI communicator.

    Returns:
        The tagged mesh.

    Raises:
        ValueError: non-positive dimensions or cell counts, unknown ``cell`` or ``dim``.
    """
    simplex = _cell_kind(cell, dim)
    extent = [length, width, height] if dim == 3 else [length, height]
    if min(extent) <= 0:
        raise ValueError(f"beam dimensions must be > 0, got {extent}")
    counts = [max(1, round(n * e / length)) for e in extent] if isinstance(n, int) else list(n)
    if len(counts) != dim or min(counts) < 1:
        raise ValueError(f"n must be a positive int or {dim} positive ints, got {n}")
    cell_type = mesh.CellType[_CELL_NAME[simplex, dim]]
    corners = (np.zeros(dim), np.array(extent, dtype=float))
    if dim == 3:
        domain = mesh.create_box(comm, list(corners), counts, cell_type)
    else:
        domain = mesh.create_rectangle(comm, np.array(corners), counts, cell_type)
    domain.name = "mesh"
    tol = 1e-9 * max(extent)
    vertical = dim - 1
    return _tag_exterior_facets(
        domain,
        [
            ("clamped", 1, lambda p: np.isclose(p[:, 0], 0.0, atol=tol)),
            ("tip", 2, lambda p: np.isclose(p[:, 0], length, atol=tol)),
            ("top", 3, lambda p: np.isclose(p[:, vertical], height, atol=tol)),
            ("bottom", 4, lambda p: np.isclose(p[:, vertical], 0.0, atol=tol)),
        ],
    )


def _grid_lines(breaks: Sequence[float], h: float) -> np.ndarray:
    """Coordinates through every break point, each stretch cut into ``round(length / h)``."""
    b = np.unique(np.asarray(breaks, dtype=float))
    counts = np.maximum(1, np.round(np.diff(b) / h)).astype(int)
    gaps = zip(b[:-1], b[1:], counts, strict=True)
    parts = [np.linspace(a, c, k, endpoint=False) for a, c, k in gaps]
    return np.concatenate([*parts, b[-1:]])


def _structured_arrays(
    lines: Sequence[np.ndarray], keep: Callable[[np.ndarray], np.ndarray], simplex: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Cells and points of a tensor grid, keeping cells whose centres pass ``keep``.

    Tensor cells use dolfinx's vertex order (x fastest). Simplices split each box
    into ``dim!`` Kuhn simplices around its main diagonal, conforming across boxes
    because every face is cut along the diagonal through its lowest corner; each
    is ordered to a positive Jacobian.
    """
    dim = len(lines)
    shape = [len(c) for c in lines]
    strides = np.cumprod([1, *shape[:-1]])
    corners = np.array(np.meshgrid(*[[0, 1]] * dim, indexing="ij")).reshape(dim, -1).T[:, ::-1]
    index = np.stack(np.meshgrid(*[np.arange(s - 1) for s in shape], indexing="ij"), -1)
    index = index.reshape(-1, dim)
    centres = np.stack([(c[:-1] + c[1:])[i] / 2 for c, i in zip(lines, index.T, strict=True)], -1)
    index = index[keep(centres)]
    boxes = (index[:, None, :] + corners[None, :, :]) @ strides  # (n, 2^dim) vertex ids
    if simplex:
        paths = np.array(list(itertools.permutations(range(dim))))  # the dim! axis orders
        kuhn = np.zeros((len(paths), dim + 1), dtype=int)
        kuhn[:, 1:] = np.cumsum(2 ** paths.astype(int), axis=1)
        edges = corners[kuhn[:, 1:]] - corners[kuhn[:, :1]]
        flip = np.linalg.det(edges.astype(float)) < 0
        kuhn[flip, -2:] = kuhn[flip, -1:-3:-1]
        boxes = boxes[:, kuhn].reshape(-1, dim + 1)
    used, cells = np.unique(boxes, return_inverse=True)
    grid = np.stack(np.meshgrid(*lines, indexing="ij"), -1)  # index (i, j, k)
    points = grid.transpose(*range(dim)[::-1], dim).reshape(-1, dim)[used]
    return cells.reshape(boxes.shape).astype(np.int64), points


def _structured_mesh(
    comm: MPI.Comm,
    lines: Sequence[np.ndarray],
    keep: Callable[[np.ndarray], np.ndarray],
    simplex: bool,
) -> Mesh[np.float64]:
    """Build on rank 0 (vectorized), then let dolfinx partition and distribute."""
    dim = len(lines)
    if comm.rank == 0:
        cells, points = _structured_arrays(lines, keep, simplex)
    else:
        cells = np.empty((0, (dim + 1) if simplex else 2**dim), dtype=np.int64)
        points = np.empty((0, dim))
    element = basix.ufl.element("Lagrange", _CELL_NAME[simplex, dim], 1, shape=(dim,))
    domain = mesh.create_mesh(comm, cells, element, points, partitioner=_partitioner(comm))  # type: ignore[arg-type]
    domain.name = "mesh"
    return domain


def bridge_mesh(
    span: float = 20.0,
    *,
    size: str | float = "coarse",
    cell: str = "tetrahedron",
    dim: int = 3,
    section: BridgeSection | None = None,
    overhang: float = 0.5,
    bearing: float = 0.4,
    comm: MPI.Comm = MPI.COMM_WORLD,
) -> TaggedMesh:
    """Two-girder bridge deck on two bearings, x in ``[-overhang, span + overhang]``.

    3D: the :class:`BridgeSection` (default: 4 m x 0.25 m slab on two 1.0 m x 0.3 m
    webs 2.5 m apart) swept along x, y across, z up from the girder bottoms (z = 0)
    to the deck top (z = 1.25 m). 2D: the side elevation, a plane-strain beam of the
    section's :attr:`~BridgeSection.equivalent_depth` (1.2299 m).

    Tags: ``support_left`` = 1 and ``support_right`` = 2, the girder bottoms
    (z = 0; 2D y = 0) over ``bearing`` metres centred at x = 0 and x = ``span``;
    ``deck`` = 3, the top surface where vehicles drive; ``ends`` = 4, the faces
    at the two ends. ``size`` is a target edge: each stretch between two break
    lines (web faces, bearing edges, slab/web interface) gets ``round(length / h)``
    cells, at least one. Measured P1 vector dofs for span 20 m, 3D [2D]:
    coarse (h = 0.5 m) 3,588 [276], medium (h = 0.18 m) 29,028 [1,888], fine
    (h = 0.11 m) 105,957 [4,632]; tetrahedra (6 per box) and hexahedra share the
    vertices. Shortest edges: 0.2, 0.15, 0.10 m (3D).

    Args:
        span: distance between the bearing centres, m.
        size: ``"coarse"``, ``"medium"``, ``"fine"``, or the target cell edge in metres.
        cell: ``"tetrahedron"`` or ``"hexahedron"`` (2D: triangles or quadrilaterals).
        dim: 3, or 2 for the plane-strain elevation.
        section: the cross-section; ``None`` for the defaults above.
        overhang: deck beyond each bearing centre, m (must exceed ``bearing / 2``).
        bearing: length of each support along x, m.
        comm: MPI communicator.

    Returns:
        The tagged mesh.

    Raises:
        ValueError: unknown ``size``/``cell``/``dim``, or inconsistent dimensions.
    """
    simplex = _cell_kind(cell, dim)
    s = section if section is not None else BridgeSection()
    if isinstance(size, str):
        if size not in _SIZES:
            raise ValueError(f"size must be one of {sorted(_SIZES)} or a length in m, got {size!r}")
        h = _SIZES[size]
    else:
        h = float(size)
    if not h > 0 or not span > 0 or not bearing > 0 or not overhang > bearing / 2:
        raise ValueError(
            f"need size > 0, span > 0, bearing > 0 and overhang > bearing / 2; got size={h}, "
            f"span={span}, bearing={bearing}, overhang={overhang}"
        )
    half_web, half_gap = s.girder_thickness / 2, s.girder_spacing / 2
    if min(s.deck_thickness, s.girder_depth) <= 0 or not (
        0 < half_web < half_gap and half_gap + half_web <= s.deck_width / 2
    ):
        raise ValueError(f"need positive sizes and webs apart, under the deck; got {s}")
    b = bearing / 2
    # Bearing centre lines are grid lines too: a pin support (a line in 3D, a point in
    # 2D) can then be placed exactly where beam theory puts it.
    x = _grid_lines([-overhang, -b, 0.0, b, span - b, span, span + b, span + overhang], h)
    if dim == 3:
        webs = [
            -half_gap - half_web,
            -half_gap + half_web,
            half_gap - half_web,
            half_gap + half_web,
        ]
        y = _grid_lines([-s.deck_width / 2, *webs, s.deck_width / 2], h)
        top = s.girder_depth + s.deck_thickness
        z = _grid_lines([0.0, s.girder_depth, top], h)

        def keep(c: np.ndarray) -> np.ndarray:
            in_web = np.abs(np.abs(c[:, 1]) - half_gap) < half_web
            return (c[:, 2] > s.girder_depth) | in_web

        domain = _structured_mesh(comm, [x, y, z], keep, simplex)
    else:
        top = s.equivalent_depth
        y = _grid_lines([0.0, top], h)
        domain = _structured_mesh(comm, [x, y], lambda c: np.ones(len(c), dtype=bool), simplex)
    tol = 1e-9 * (span + 2 * overhang)
    v = dim - 1

    def on_bearing(p: np.ndarray, centre: float) -> np.ndarray:
        mask: np.ndarray = np.isclose(p[:, v], 0.0, atol=tol) & (np.abs(p[:, 0] - centre) < b)
        return mask

    def on_ends(p: np.ndarray) -> np.ndarray:
        mask: np.ndarray = np.isclose(np.abs(p[:, 0] - span / 2), span / 2 + overhang, atol=tol)
        return mask

    return _tag_exterior_facets(
        domain,
        [
            ("support_left", 1, lambda p: on_bearing(p, 0.0)),
            ("support_right", 2, lambda p: on_bearing(p, span)),
            ("deck", 3, lambda p: np.isclose(p[:, v], top, atol=tol)),
            ("ends", 4, on_ends),
        ],
    )


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


def _sidecar(path: Path) -> Path:
    return path.with_name(path.stem + ".tags.json")


def write_mesh(path: str | Path, tagged: TaggedMesh) -> Path:
    """Write ``<stem>.xdmf`` (+ ``.h5``: mesh and facet tags) and ``<stem>.tags.json``.

    Collective over ``tagged.mesh.comm``. The sidecar holds the tag names, which
    XDMF cannot store: ``{"format": "snmech.mesh-tags", "version": 1, "mesh": ...,
    "facet_tags": ..., "names": {...}}``.

    Args:
        path: target; ``.xdmf`` is appended unless it is already the suffix.
        tagged: the mesh and its tags.

    Returns:
        The path of the ``.xdmf`` file.
    """
    path = Path(path)
    if path.suffix != ".xdmf":
        path = path.with_name(path.name + ".xdmf")
    domain, tags = tagged.mesh, tagged.facet_tags
    with XDMFFile(domain.comm, path, "w") as xdmf:
        xdmf.write_mesh(domain)
        geometry = f"/Xdmf/Domain/Grid[@Name='{domain.name}']/Geometry"
        xdmf.write_meshtags(tags, domain.geometry, geometry_xpath=geometry)
    if domain.comm.rank == 0:
        meta = {"format": TAGS_FORMAT, "version": TAGS_VERSION, "mesh": domain.name}
        meta |= {"facet_tags": tags.name, "names": tagged.names}
        _sidecar(path).write_text(json.dumps(meta, indent=2) + "\n")
        logger.info("wrote %s (+ .h5, .tags.json): tags %s", path, tagged.names)
    domain.comm.barrier()
    return path


def _read_sidecar(path: Path) -> dict[str, object]:
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise FileNotFoundError(
            f"{sidecar} not found: it holds the tag names of {path.name} "
            "(write meshes with snmech.fem.write_mesh)"
        )
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{sidecar} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != TAGS_FORMAT:
        raise ValueError(f"{sidecar}: expected format {TAGS_FORMAT!r}")
    if meta.get("version") != TAGS_VERSION:
        raise ValueError(f"{sidecar}: version {meta.get('version')}, expected {TAGS_VERSION}")
    names = meta.get("names")
    if not isinstance(names, dict) or not all(isinstance(v, int) for v in names.values()):
        raise ValueError(f"{sidecar}: 'names' must map tag names to integer ids, got {names!r}")
    return meta


def _checked(
    domain: Mesh[np.float64], tags: MeshTags, names: dict[str, int], path: Path
) -> TaggedMesh:
    """Validate tags against names, and the mesh itself."""
    if tags.dim != domain.topology.dim - 1:
        raise ValueError(f"{path}: tags are on dimension {tags.dim}, not on facets")
    present = set().union(*domain.comm.allgather(set(np.unique(tags.values).tolist())))
    absent = {name: tag for name, tag in names.items() if tag not in present}
    if absent:
        raise ValueError(f"{path}: tag names refer to ids absent from the facet tags: {absent}")
    check_mesh(domain)
    return TaggedMesh(domain, tags, dict(names))


def read_mesh(path: str | Path, comm: MPI.Comm = MPI.COMM_WORLD) -> TaggedMesh:
    """Read a mesh written by :func:`write_mesh` (XDMF + sidecar), or a Gmsh ``.msh``.

    ``.msh`` files (any version meshio reads, first-order cells of one type) are
    read with meshio on rank 0, without the gmsh module; their physical names of
    dimension ``tdim - 1`` become ``names``. The result passes :func:`check_mesh`.

    Args:
        path: a ``.xdmf`` or ``.msh`` file.
        comm: MPI communicator to distribute the mesh on.

    Returns:
        The tagged mesh.

    Raises:
        FileNotFoundError: the file or its ``.tags.json`` sidecar is missing.
        ValueError: an unknown suffix, a file without facet tags, names referring
            to absent ids, or a broken mesh.
    """
    path = Path(path)
    if path.suffix not in (".xdmf", ".msh"):
        raise ValueError(f"mesh files are .xdmf or .msh, got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"mesh file {path} not found")
    if path.suffix == ".msh":
        return _read_msh(path, comm)
    meta = _read_sidecar(path)
    grids = {grid.get("Name") for grid in ET.parse(path).getroot().iter("Grid")}
    for key in ("mesh", "facet_tags"):
        if meta.get(key) not in grids:
            raise ValueError(f"{path} has no grid {meta.get(key)!r} ({key}); it has {grids}")
    with XDMFFile(comm, path, "r") as xdmf:
        domain = xdmf.read_mesh(name=str(meta["mesh"]))
        domain.topology.create_connectivity(domain.topology.dim - 1, domain.topology.dim)
        tags = xdmf.read_meshtags(domain, name=str(meta["facet_tags"]))
    names = meta["names"]
    assert isinstance(names, dict)  # checked by _read_sidecar
    return _checked(domain, tags, names, path)


_MESHIO_CELLS = {"tetra": "tetrahedron", "hexahedron": "hexahedron"}
_MESHIO_CELLS |= {"triangle": "triangle", "quad": "quadrilateral"}
_MESHIO_FACETS = {"tetrahedron": "triangle", "hexahedron": "quad"}
_MESHIO_FACETS |= {"triangle": "line", "quadrilateral": "line"}


def _msh_arrays(
    path: Path,
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Rank 0: cells (dolfinx order), points, facets, facet ids and names of a .msh."""
    import meshio
    from dolfinx.io.gmsh import cell_perm_array

    msh = meshio.read(path)
    dims = {"tetra": 3, "hexahedron": 3, "triangle": 2, "quad": 2, "line": 1, "vertex": 0}
    tdim = max(dims.get(block.type, 3) for block in msh.cells)
    blocks = [b for b in msh.cells if dims.get(b.type, 3) == tdim]
    kinds = {b.type for b in blocks}
    if len(kinds) != 1 or not kinds <= set(_MESHIO_CELLS):
        raise ValueError(f"{path}: need first-order cells of one type, found {sorted(kinds)}")
    cell = _MESHIO_CELLS[kinds.pop()]
    cells = np.vstack([b.data for b in blocks]).astype(np.int64)
    cells = cells[:, cell_perm_array(mesh.CellType[cell], cells.shape[1])]
    physical = msh.cell_data.get("gmsh:physical", [None] * len(msh.cells))
    facet_type = _MESHIO_FACETS[cell]
    pairs = [(b.data, v) for b, v in zip(msh.cells, physical, strict=True) if b.type == facet_type]
    if not pairs or any(v is None for _, v in pairs):
        raise ValueError(f"{path} has no physical facet tags ({facet_type} elements)")
    facets = np.vstack([f for f, _ in pairs]).astype(np.int64)
    values = np.concatenate([v for _, v in pairs]).astype(np.int32)
    names = {k: int(v[0]) for k, v in msh.field_data.items() if int(v[1]) == tdim - 1}
    used, inverse = np.unique(cells, return_inverse=True)
    renumber = np.full(len(msh.points), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    facets = renumber[facets]
    keep = (facets >= 0).all(axis=1)
    points = msh.points[used, :tdim]
    if tdim == 2 and msh.points.shape[1] > 2 and np.abs(msh.points[used, 2:]).max() > 0:
        raise ValueError(f"{path}: 2D cells off the plane z = 0 (manifolds are not supported)")
    cells = inverse.reshape(cells.shape)
    return cell, cells, points, facets[keep], values[keep], names


def _read_msh(path: Path, comm: MPI.Comm) -> TaggedMesh:
    from dolfinx.graph import adjacencylist
    from dolfinx.io import distribute_entity_data

    payload, error = None, None
    if comm.rank == 0:
        try:
            payload = _msh_arrays(path)
        except (ValueError, KeyError, OSError) as err:
            error = f"cannot read {path}: {err}"
        except Exception as err:  # meshio raises its own ReadError for malformed files
            error = f"cannot read {path}: {type(err).__name__}: {err}"
    error = comm.bcast(error, root=0)
    if error is not None:
        raise ValueError(error)
    cell, tdim, names = comm.bcast(
        (payload[0], payload[2].shape[1], payload[5]) if payload else None, root=0
    )
    if payload is not None:
        _, cells, points, facets, values, _ = payload
    else:
        n_vertices = {"tetrahedron": 4, "hexahedron": 8, "triangle": 3, "quadrilateral": 4}
        cells = np.empty((0, n_vertices[cell]), dtype=np.int64)
        points = np.empty((0, tdim))
        facets = np.empty((0, {"tetrahedron": 3, "hexahedron": 4}.get(cell, 2)), dtype=np.int64)
        values = np.empty(0, dtype=np.int32)
    element = basix.ufl.element("Lagrange", cell, 1, shape=(tdim,))
    domain = mesh.create_mesh(comm, cells, element, points, partitioner=_partitioner(comm))  # type: ignore[arg-type]
    domain.name = "mesh"
    entities, local_values = distribute_entity_data(domain, tdim - 1, facets, values)
    domain.topology.create_connectivity(tdim - 1, tdim)
    tags = mesh.meshtags_from_entities(
        domain, tdim - 1, adjacencylist(entities), local_values.astype(np.int32)
    )
    tags.name = "facet_tags"
    present = set().union(*comm.allgather(set(np.unique(tags.values).tolist())))
    names = {name: tag for name, tag in names.items() if tag in present}
    return _checked(domain, tags, names, path)


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
