"""Tagged meshes for the explicit solver: a beam and a girder bridge.

Conventions (every mesh here): SI metres, the **vertical axis is the last
coordinate** (``z`` in 3D, ``y`` in 2D), so gravity acts along ``-z`` in 3D and
``-y`` in 2D (plane strain, per metre of thickness). Boundary facets carry
integer tags; :class:`TaggedMesh` keeps the ``name -> id`` map beside them.
All builders work on ``comm`` in parallel and vectorize over cells and facets.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import basix
import basix.ufl
import numpy as np
import numpy.typing as npt
from dolfinx import mesh
from dolfinx.mesh import Mesh, MeshTags
from mpi4py import MPI

logger = logging.getLogger(__name__)

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
    if not all(0 < e < math.inf for e in extent):
        raise ValueError(f"beam dimensions must be finite and > 0, got {extent}")
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
    if (
        not all(0 < v < math.inf for v in (h, span, bearing, overhang))
        or not overhang > bearing / 2
    ):
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
