"""Tagged meshes on disk: XDMF plus a ``.tags.json`` sidecar with the tag names, and Gmsh.

Gmsh ``.msh`` files are read through meshio on rank 0 (no gmsh module needed),
their physical names becoming tag names. Every mesh read is checked by
:func:`~snmech.fem.mesh_quality.check_mesh`.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import basix
import basix.ufl
import numpy as np
from dolfinx import mesh
from dolfinx.io import XDMFFile
from dolfinx.mesh import Mesh, MeshTags
from mpi4py import MPI

from snmech.fem.mesh_quality import check_mesh
from snmech.fem.meshes import TaggedMesh, _partitioner

logger = logging.getLogger(__name__)

TAGS_FORMAT = "snmech.mesh-tags"
TAGS_VERSION = 1


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
    try:
        root = ET.parse(path).getroot()
        grids = {grid.get("Name") for grid in root.iter("Grid")}
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not a readable XDMF (XML) file ({exc})") from None
    for key in ("mesh", "facet_tags"):
        if meta.get(key) not in grids:
            raise ValueError(f"{path} has no grid {meta.get(key)!r} ({key}); it has {grids}")
    # dolfinx aborts MPI on a cell that names a point the file does not have: look first
    problem = _topology_problem(path, root, str(meta["mesh"])) if comm.rank == 0 else None
    problem = comm.bcast(problem, root=0)
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    try:
        with XDMFFile(comm, path, "r") as xdmf:
            domain = xdmf.read_mesh(name=str(meta["mesh"]))
            domain.topology.create_connectivity(domain.topology.dim - 1, domain.topology.dim)
            tags = xdmf.read_meshtags(domain, name=str(meta["facet_tags"]))
    except RuntimeError as exc:  # dolfinx/HDF5: a missing or truncated .h5 beside the .xdmf
        raise ValueError(f"{path}: cannot read the mesh data ({exc})") from None
    names = meta["names"]
    assert isinstance(names, dict)  # checked by _read_sidecar
    return _checked(domain, tags, names, path)


def _topology_problem(path: Path, root: ET.Element, mesh_name: str) -> str | None:
    """What is wrong with the cell and facet lists of an XDMF mesh, or ``None``.

    Every topology entry must name one of the mesh grid's points; the heavy data
    is read from the ``.h5`` beside the file (a missing one is left to dolfinx).
    """
    import h5py

    def heavy(item: ET.Element | None) -> tuple[Path, str] | None:
        if item is None or item.get("Format") != "HDF" or not item.text or ":" not in item.text:
            return None
        file, dataset = item.text.strip().split(":", 1)
        return path.parent / file, dataset

    grids = {grid.get("Name"): grid for grid in root.iter("Grid")}
    geometry = heavy(grids[mesh_name].find("Geometry/DataItem"))
    if geometry is None or not geometry[0].is_file():
        return None
    try:
        with h5py.File(geometry[0], "r") as f:
            n_points = int(f[geometry[1]].shape[0])
            for name, grid in grids.items():
                topology = heavy(grid.find("Topology/DataItem"))
                if topology is None:
                    continue
                if topology[0] == geometry[0]:
                    cells = np.asarray(f[topology[1]])
                else:
                    with h5py.File(topology[0], "r") as g:
                        cells = np.asarray(g[topology[1]])
                if cells.size and (cells.min() < 0 or cells.max() >= n_points):
                    bad = int(np.argmax(((cells < 0) | (cells >= n_points)).any(axis=-1)))
                    return (
                        f"grid {name!r}: entry {bad} names point {cells[bad].tolist()} "
                        f"but the mesh has points 0..{n_points - 1}"
                    )
    except (OSError, KeyError) as exc:
        return f"cannot read the mesh data ({exc})"
    return None


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
