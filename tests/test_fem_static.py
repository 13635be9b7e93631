"""Static linear elasticity on dolfinx: beam theory, and 1 rank vs 2 ranks."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.fem


def test_cantilever_matches_euler_bernoulli():
    from snmech.fem import cantilever_check

    result = cantilever_check()
    assert result.ratio == pytest.approx(1.0, abs=0.02)


def test_bad_material_constants_are_rejected():
    from dolfinx import mesh
    from mpi4py import MPI

    from snmech.fem import solve_linear_elastic

    domain = mesh.create_unit_square(MPI.COMM_SELF, 2, 2)
    with pytest.raises(ValueError, match="nu"):
        solve_linear_elastic(domain, 1e9, 0.5)
    with pytest.raises(ValueError, match="body_force"):
        solve_linear_elastic(domain, 1e9, 0.3, body_force=(0.0, 0.0, 1.0))


def _solve_beam(comm):
    from dolfinx import mesh

    from snmech.fem import solve_linear_elastic

    domain = mesh.create_box(
        comm, [np.zeros(3), np.array([1.0, 0.1, 0.1])], [12, 3, 3], mesh.CellType.hexahedron
    )
    uh = solve_linear_elastic(domain, 210e9, 0.3, body_force=(0.0, 0.0, -7.7e4))
    V = uh.function_space
    n_owned = V.dofmap.index_map.size_local
    coords = V.tabulate_dof_coordinates()[:n_owned]
    values = uh.x.array.reshape(-1, 3)[:n_owned]
    return coords, values


@pytest.mark.mpi
def test_two_ranks_match_serial_to_round_off():
    from mpi4py import MPI
    from scipy.spatial import cKDTree

    comm = MPI.COMM_WORLD
    coords, values = _solve_beam(comm)
    ref_coords, ref_values = _solve_beam(MPI.COMM_SELF)
    dist, idx = cKDTree(ref_coords).query(coords)
    assert dist.max() < 1e-12
    scale = np.abs(ref_values).max()
    err = comm.allreduce(
        float(np.abs(values - ref_values[idx]).max()) if len(idx) else 0.0, op=MPI.MAX
    )
    assert err / scale < 1e-10
    owned = comm.allreduce(len(coords), op=MPI.SUM)
    assert owned == len(ref_coords)
