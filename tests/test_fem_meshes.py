"""Tagged meshes: tags where they belong, exact volumes, file round trips, broken meshes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.fem

MESHES = Path(__file__).resolve().parents[1] / "meshes"
CELLS = [("tetrahedron", 3), ("hexahedron", 3), ("triangle", 2), ("quadrilateral", 2)]


def _integral(tagged, name=None):
    """Volume (name None) or area of the facets tagged ``name``, summed over ranks."""
    import ufl
    from dolfinx import fem
    from mpi4py import MPI

    domain = tagged.mesh
    if name is None:
        measure = ufl.dx(domain=domain)
    else:
        measure = ufl.ds(domain=domain, subdomain_data=tagged.facet_tags)(tagged.names[name])
    one = fem.Constant(domain, 1.0)
    return domain.comm.allreduce(fem.assemble_scalar(fem.form(one * measure)), op=MPI.SUM)


def _tag_counts(tagged):
    """Global number of facets per tag name (owned facets only)."""
    from mpi4py import MPI

    domain = tagged.mesh
    n_owned = domain.topology.index_map(domain.topology.dim - 1).size_local
    local = {name: int(np.sum(tagged.facets(name) < n_owned)) for name in tagged.names}
    return {name: domain.comm.allreduce(count, op=MPI.SUM) for name, count in local.items()}


def _midpoints(tagged, name):
    from dolfinx import mesh

    return mesh.compute_midpoints(tagged.mesh, tagged.mesh.topology.dim - 1, tagged.facets(name))


@pytest.mark.parametrize("cell,dim", CELLS)
def test_beam_tags_lie_on_their_faces_and_volume_is_exact(cell, dim):
    from mpi4py import MPI

    from snmech.fem.meshes import beam_mesh

    L, H, W = 1.0, 0.1, 0.2
    tagged = beam_mesh(L, H, W, n=10, cell=cell, dim=dim, comm=MPI.COMM_SELF)
    v = dim - 1  # the vertical axis is the last coordinate
    assert np.allclose(_midpoints(tagged, "clamped")[:, 0], 0.0)
    assert np.allclose(_midpoints(tagged, "tip")[:, 0], L)
    assert np.allclose(_midpoints(tagged, "top")[:, v], H)
    assert np.allclose(_midpoints(tagged, "bottom")[:, v], 0.0)
    depth = W if dim == 3 else 1.0
    assert _integral(tagged) == pytest.approx(L * H * depth, rel=1e-12)
    assert _integral(tagged, "clamped") == pytest.approx(H * depth, rel=1e-12)
    assert _integral(tagged, "top") == pytest.approx(L * depth, rel=1e-12)


def test_beam_default_resolution_keeps_the_aspect_ratio():
    from mpi4py import MPI

    from snmech.fem.meshes import beam_mesh

    tagged = beam_mesh(cell="hexahedron", comm=MPI.COMM_SELF)
    assert tagged.mesh.topology.index_map(3).size_global == 20 * 2 * 2
    assert tagged.mesh.topology.index_map(0).size_global == 21 * 3 * 3


@pytest.mark.parametrize("cell,dim", CELLS)
def test_bridge_volume_and_tags_match_the_drawing(cell, dim):
    from mpi4py import MPI

    from snmech.fem.meshes import BridgeSection, bridge_mesh

    span, overhang, bearing, s = 20.0, 0.5, 0.4, BridgeSection()
    tagged = bridge_mesh(span, cell=cell, dim=dim, comm=MPI.COMM_SELF)
    length = span + 2 * overhang
    if dim == 3:
        area, top, bearing_width, deck_width = s.area, 1.25, 2 * s.girder_thickness, s.deck_width
    else:
        area, top, bearing_width, deck_width = s.equivalent_depth, s.equivalent_depth, 1.0, 1.0
    assert _integral(tagged) == pytest.approx(length * area, rel=1e-12)
    assert _integral(tagged, "deck") == pytest.approx(length * deck_width, rel=1e-12)
    assert _integral(tagged, "ends") == pytest.approx(2 * area, rel=1e-12)
    for name, centre in (("support_left", 0.0), ("support_right", span)):
        p = _midpoints(tagged, name)
        assert np.allclose(p[:, dim - 1], 0.0)
        assert np.all(np.abs(p[:, 0] - centre) < bearing / 2)
        assert _integral(tagged, name) == pytest.approx(bearing * bearing_width, rel=1e-12)
    assert np.allclose(_midpoints(tagged, "deck")[:, dim - 1], top)


def test_equivalent_depth_is_the_radius_of_gyration_times_sqrt12():
    from snmech.fem.meshes import BridgeSection

    # slab 4 x 0.25 (centroid 1.125) on webs 2 x 0.3 x 1.0 (centroid 0.5): A = 1.6, z_c = 0.890625
    inertia = 4 * 0.25**3 / 12 + 1.0 * 0.234375**2 + 0.6 / 12 + 0.6 * 0.390625**2
    assert BridgeSection().equivalent_depth == pytest.approx(np.sqrt(12 * inertia / 1.6))


@pytest.mark.parametrize(
    "size,dim,dofs", [("coarse", 3, 3588), ("medium", 3, 29028), ("coarse", 2, 276)]
)
def test_bridge_sizes_are_as_documented(size, dim, dofs):
    from mpi4py import MPI

    from snmech.fem.meshes import bridge_mesh

    tagged = bridge_mesh(size=size, dim=dim, cell="hexahedron", comm=MPI.COMM_SELF)
    assert dim * tagged.mesh.topology.index_map(0).size_global == dofs


def test_bad_builder_arguments_are_rejected():
    from mpi4py import MPI

    from snmech.fem.meshes import beam_mesh, bridge_mesh

    with pytest.raises(ValueError, match="cell must be one of"):
        beam_mesh(cell="prism", comm=MPI.COMM_SELF)
    with pytest.raises(ValueError, match="two-dimensional"):
        beam_mesh(cell="triangle", dim=3, comm=MPI.COMM_SELF)
    with pytest.raises(ValueError, match="n must be"):
        beam_mesh(n=(4, 1), comm=MPI.COMM_SELF)
    with pytest.raises(ValueError, match="size must be one of"):
        bridge_mesh(size="huge", comm=MPI.COMM_SELF)
    with pytest.raises(ValueError, match="overhang"):
        bridge_mesh(overhang=0.1, comm=MPI.COMM_SELF)


def test_facets_and_describe():
    from mpi4py import MPI

    from snmech.fem.meshes import beam_mesh

    tagged = beam_mesh(cell="hexahedron", comm=MPI.COMM_SELF)
    with pytest.raises(KeyError, match="known tags.*clamped"):
        tagged.facets("support")
    text = tagged.describe()
    assert "80 cells, 189 vertices, 567 P1 vector dofs" in text
    assert "'clamped': 4 facets" in text and "[0, 0.1]" in text


@pytest.mark.parametrize("build", ["beam_hex", "bridge2d"])
def test_write_read_round_trip(tmp_path, build):
    from mpi4py import MPI

    from snmech.fem.mesh_io import read_mesh, write_mesh
    from snmech.fem.meshes import beam_mesh, bridge_mesh

    if build == "beam_hex":
        tagged = beam_mesh(cell="hexahedron", comm=MPI.COMM_SELF)
    else:
        tagged = bridge_mesh(dim=2, comm=MPI.COMM_SELF)
    path = write_mesh(tmp_path / build, tagged)
    assert path.suffix == ".xdmf" and (tmp_path / f"{build}.tags.json").is_file()
    back = read_mesh(path, comm=MPI.COMM_SELF)
    tdim = tagged.mesh.topology.dim
    assert back.mesh.topology.cell_type == tagged.mesh.topology.cell_type
    sizes = [m.topology.index_map(tdim).size_global for m in (tagged.mesh, back.mesh)]
    assert sizes[0] == sizes[1]
    assert _integral(back) == pytest.approx(_integral(tagged), rel=1e-12)
    assert back.names == tagged.names
    assert _tag_counts(back) == _tag_counts(tagged)
    for name in tagged.names:
        assert _integral(back, name) == pytest.approx(_integral(tagged, name), rel=1e-12)


def test_read_errors_name_the_problem(tmp_path):
    from dolfinx.io import XDMFFile
    from mpi4py import MPI

    from snmech.fem.mesh_io import read_mesh, write_mesh
    from snmech.fem.meshes import beam_mesh

    comm = MPI.COMM_SELF
    with pytest.raises(FileNotFoundError, match="not found"):
        read_mesh(tmp_path / "absent.xdmf", comm=comm)
    with pytest.raises(ValueError, match=".xdmf or .msh"):
        read_mesh(tmp_path / "beam.vtk", comm=comm)
    tagged = beam_mesh(n=4, comm=comm)
    path = write_mesh(tmp_path / "beam", tagged)
    sidecar = tmp_path / "beam.tags.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps(meta | {"names": meta["names"] | {"load": 99}}))
    with pytest.raises(ValueError, match=r"absent from the facet tags: \{'load': 99\}"):
        read_mesh(path, comm=comm)
    sidecar.write_text(json.dumps(meta | {"version": 7}))
    with pytest.raises(ValueError, match="version 7"):
        read_mesh(path, comm=comm)
    sidecar.unlink()
    with pytest.raises(FileNotFoundError, match="tags.json"):
        read_mesh(path, comm=comm)
    with XDMFFile(comm, path, "w") as xdmf:  # a mesh without facet tags
        xdmf.write_mesh(tagged.mesh)
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="no grid 'facet_tags'"):
        read_mesh(path, comm=comm)
    # a cell naming a point the file does not have: dolfinx would abort MPI
    import h5py

    path = write_mesh(tmp_path / "beam", tagged)
    with h5py.File(path.with_suffix(".h5"), "r+") as f:
        f["/Mesh/mesh/topology"][0, 0] = 99999
    with pytest.raises(ValueError, match=r"grid 'mesh': entry 0 names point \[99999"):
        read_mesh(path, comm=comm)
    # the heavy data lives in a .h5 beside the .xdmf: missing or cut short, it is named
    path = write_mesh(tmp_path / "beam", tagged)
    h5 = path.with_suffix(".h5")
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"beam.xdmf: cannot read the mesh data"):
        read_mesh(path, comm=comm)
    h5.unlink()
    with pytest.raises(ValueError, match=r"cannot read the mesh data .*beam.h5"):
        read_mesh(path, comm=comm)
    path.write_text("<Xdmf><Domain>")  # cut-off XML
    with pytest.raises(ValueError, match="not a readable XDMF"):
        read_mesh(path, comm=comm)


GMSH_SQUARE = """$MeshFormat
2.2 0 8
$EndMeshFormat
$PhysicalNames
3
1 1 "left"
1 2 "bottom"
2 10 "plate"
$EndPhysicalNames
$Nodes
5
1 0 0 0
2 1 0 0
3 1 1 0
4 0 1 0
5 9 9 0
$EndNodes
$Elements
4
1 1 2 1 1 4 1
2 1 2 2 2 1 2
3 2 2 10 1 1 2 3
4 2 2 10 1 1 3 4
$EndElements
"""


def test_gmsh_msh_is_read_without_the_gmsh_module(tmp_path):
    from mpi4py import MPI

    from snmech.fem.mesh_io import read_mesh

    path = tmp_path / "square.msh"
    path.write_text(GMSH_SQUARE)  # node 5 is unused and must be dropped
    tagged = read_mesh(path, comm=MPI.COMM_SELF)
    assert tagged.names == {"left": 1, "bottom": 2}
    assert tagged.mesh.geometry.dim == 2
    assert _integral(tagged) == pytest.approx(1.0)
    assert np.allclose(_midpoints(tagged, "left")[:, 0], 0.0)
    assert _integral(tagged, "bottom") == pytest.approx(1.0)


def _triangles(points, cells):
    import basix.ufl
    from dolfinx import mesh
    from mpi4py import MPI

    element = basix.ufl.element("Lagrange", "triangle", 1, shape=(2,))
    return mesh.create_mesh(MPI.COMM_SELF, np.array(cells), element, np.array(points, float))


def test_check_mesh_measures_a_good_mesh():
    from snmech.fem.mesh_quality import check_mesh

    quality = check_mesh(_triangles([[0, 0], [2, 0], [0, 1], [2, 1]], [[0, 1, 2], [1, 3, 2]]))
    assert quality.min_volume == pytest.approx(1.0)
    assert quality.min_h == pytest.approx(1.0)


@pytest.mark.parametrize(
    "points,cells,problem",
    [
        # the second triangle's apex lies on the first one's side of the shared edge
        ([[0, 0], [1, 0], [0, 1], [0.2, 0.2]], [[0, 1, 2], [1, 2, 3]], "folded"),
        ([[0, 0], [1, 0], [2, 0], [0, 1]], [[0, 1, 2], [0, 1, 3]], "degenerate"),
    ],
)
def test_check_mesh_catches_inverted_and_flat_cells(points, cells, problem):
    from snmech.fem.mesh_quality import check_mesh

    with pytest.raises(ValueError, match=problem):
        check_mesh(_triangles(points, cells))


@pytest.mark.parametrize("cell,problem", [("tetrahedron", "folded"), ("hexahedron", "tangled")])
def test_check_mesh_catches_a_vertex_pushed_out_of_its_cells(cell, problem):
    from mpi4py import MPI

    from snmech.fem.mesh_quality import check_mesh
    from snmech.fem.meshes import beam_mesh

    tagged = beam_mesh(1.0, 1.0, 1.0, n=2, cell=cell, comm=MPI.COMM_SELF)
    x = tagged.mesh.geometry.x
    x[np.argmin(np.linalg.norm(x - 0.5, axis=1))] = [1.3, 0.6, 0.5]  # the centre, out of the cube
    with pytest.raises(ValueError, match=problem):
        check_mesh(tagged.mesh)


def test_check_mesh_catches_a_tangled_quadrilateral_nan_and_an_empty_mesh():
    import basix.ufl
    from dolfinx import mesh
    from mpi4py import MPI

    from snmech.fem.mesh_quality import check_mesh

    element = basix.ufl.element("Lagrange", "quadrilateral", 1, shape=(2,))
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)  # ccw: not tensor order
    bowtie = mesh.create_mesh(MPI.COMM_SELF, np.array([[0, 1, 2, 3]]), element, corners)
    with pytest.raises(ValueError, match="tangled"):
        check_mesh(bowtie)
    good = _triangles([[0, 0], [1, 0], [0, 1]], [[0, 1, 2]])
    good.geometry.x[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_mesh(good)
    square = mesh.create_unit_square(MPI.COMM_SELF, 2, 2)
    empty = mesh.create_submesh(square, 2, np.array([], dtype=np.int32))[0]
    with pytest.raises(ValueError, match="no cells"):
        check_mesh(empty)


@pytest.mark.parametrize("cell,dim", CELLS)
def test_distort_moves_only_interior_vertices(cell, dim):
    from dolfinx import mesh
    from mpi4py import MPI

    from snmech.fem.mesh_quality import check_mesh, distort
    from snmech.fem.meshes import beam_mesh

    tagged = beam_mesh(1.0, 0.5, 0.5, n=6, cell=cell, dim=dim, comm=MPI.COMM_SELF)
    moved = distort(tagged, amount=0.3, seed=3)
    x0, x1 = tagged.mesh.geometry.x, moved.mesh.geometry.x
    facets = mesh.exterior_facet_indices(tagged.mesh.topology)
    boundary = np.unique(mesh.entities_to_geometry(tagged.mesh, dim - 1, facets))
    interior = np.setdiff1d(np.arange(len(x0)), boundary)
    assert np.array_equal(x0[boundary], x1[boundary])
    shift = np.linalg.norm(x1[interior] - x0[interior], axis=1)
    h = 1 / 6  # the shortest edge of the undistorted mesh
    assert shift.min() > 0 and shift.max() <= 0.3 * h
    assert moved.mesh.geometry.dim == dim
    assert _integral(moved) == pytest.approx(0.25 if dim == 3 else 0.5, rel=1e-12)
    assert _tag_counts(moved) == _tag_counts(tagged)
    assert check_mesh(moved.mesh).min_h < check_mesh(tagged.mesh).min_h
    assert np.array_equal(distort(tagged, amount=0.3, seed=3).mesh.geometry.x, x1)
    assert not np.array_equal(distort(tagged, amount=0.3, seed=4).mesh.geometry.x, x1)


@pytest.mark.parametrize("stem", ["beam_coarse", "bridge_coarse", "bridge2d_coarse"])
def test_committed_meshes_match_their_generators(stem):
    from mpi4py import MPI

    from snmech.fem.mesh_io import read_mesh
    from snmech.fem.meshes import beam_mesh, bridge_mesh

    builders = {"beam_coarse": beam_mesh, "bridge_coarse": bridge_mesh}
    builders["bridge2d_coarse"] = lambda comm: bridge_mesh(dim=2, comm=comm)
    read = read_mesh(MESHES / f"{stem}.xdmf", comm=MPI.COMM_SELF)
    built = builders[stem](comm=MPI.COMM_SELF)
    assert _integral(read) == pytest.approx(_integral(built), rel=1e-12)
    assert _tag_counts(read) == _tag_counts(built)


def _ghosts_agree_with_owners(tagged):
    from dolfinx import la

    geometry = tagged.mesh.geometry
    x = geometry.x[:, : geometry.dim]
    copy = la.vector(geometry.index_map(), x.shape[1])
    copy.array[:] = x.ravel()
    copy.scatter_forward()
    return np.array_equal(copy.array, x.ravel())


def _owned_coordinates(tagged):
    """Owned geometry nodes of all ranks, keyed and sorted by input index."""
    from mpi4py import MPI

    geometry = tagged.mesh.geometry
    n = geometry.index_map().size_local
    index = tagged.mesh.comm.allgather(geometry.input_global_indices[:n])
    x = tagged.mesh.comm.allgather(geometry.x[:n])
    index, x = np.concatenate(index), np.concatenate(x)
    assert MPI.COMM_WORLD.size == 1 or len(np.unique(index)) == len(index)
    return x[np.argsort(index)]


@pytest.mark.mpi
@pytest.mark.parametrize("build", ["beam", "bridge", "bridge2d_hex", "committed"])
def test_two_ranks_match_serial(build):
    from mpi4py import MPI

    from snmech.fem.mesh_io import read_mesh
    from snmech.fem.mesh_quality import distort
    from snmech.fem.meshes import beam_mesh, bridge_mesh

    def make(comm):
        if build == "beam":
            return beam_mesh(n=(8, 3, 3), comm=comm)
        if build == "bridge":
            return bridge_mesh(comm=comm)
        if build == "bridge2d_hex":
            return bridge_mesh(dim=2, cell="quadrilateral", comm=comm)
        return read_mesh(MESHES / "bridge_coarse.xdmf", comm=comm)

    parallel, serial = make(MPI.COMM_WORLD), make(MPI.COMM_SELF)
    assert _integral(parallel) == pytest.approx(_integral(serial), rel=1e-12)
    assert _tag_counts(parallel) == _tag_counts(serial)
    # a vertex moves the same way whatever the partition (owned and ghost copies alike)
    if build != "committed":
        moved, reference = distort(parallel, seed=5), distort(serial, seed=5)
        assert np.allclose(_owned_coordinates(moved), _owned_coordinates(reference), atol=1e-14)
        assert _ghosts_agree_with_owners(moved)
        assert _integral(moved) == pytest.approx(_integral(serial), rel=1e-12)


@pytest.mark.mpi
def test_two_ranks_read_a_gmsh_file(tmp_path):
    from mpi4py import MPI

    from snmech.fem.mesh_io import read_mesh

    comm = MPI.COMM_WORLD
    path = comm.bcast(tmp_path / "square.msh", root=0)
    if comm.rank == 0:
        path.write_text(GMSH_SQUARE)
    comm.barrier()
    tagged = read_mesh(path, comm=comm)
    assert tagged.names == {"left": 1, "bottom": 2}
    assert _integral(tagged) == pytest.approx(1.0)
    assert _tag_counts(tagged) == {"left": 1, "bottom": 1}
