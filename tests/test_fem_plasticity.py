"""History-dependent materials in ExplicitSolver: an elastic-plastic wave against its
analytic speeds and amplitudes, J2 vs its exact RecurrentLaw, state checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.fem

pytest.importorskip("snmech.fem")  # imports dolfinx_solver before dolfinx

from dolfinx import mesh  # noqa: E402
from mpi4py import MPI  # noqa: E402

from snmech.fem.boundary import Clamp, PrescribedVelocity  # noqa: E402
from snmech.fem.solver import ExplicitSolver  # noqa: E402
from snmech.material import J2Plasticity  # noqa: E402
from tests.test_recurrent_law import j2_as_recurrent  # noqa: E402

E, NU, RHO, SY, H = 210e9, 0.3, 7800.0, 250e6, 10e9
LAM = E * NU / ((1 + NU) * (1 - 2 * NU))
MU = E / (2 * (1 + NU))
K = LAM + 2 * MU / 3
LENGTH, V0 = 2.0, 30.0


def bar_solver(material, n=400, **kw):
    domain = mesh.create_box(
        MPI.COMM_SELF, [[0, 0, 0], [LENGTH, 0.01, 0.01]], [n, 1, 1], mesh.CellType.hexahedron
    )
    rollers = [
        Clamp(lambda x: np.isclose(x[1], 0) | np.isclose(x[1], 0.01), components=(1,)),
        Clamp(lambda x: np.isclose(x[2], 0) | np.isclose(x[2], 0.01), components=(2,)),
    ]
    return ExplicitSolver(
        domain,
        material,
        RHO,
        dirichlet=[*rollers, PrescribedVelocity(lambda x: np.isclose(x[0], 0.0), [V0, 0, 0])],
        probes={"p": [1.5, 0.005, 0.005]},
        **kw,
    )


def test_elastic_plastic_wave_has_the_analytic_precursor_and_plastic_front():
    """Uniaxial strain: an elastic precursor at c_e carrying the yield strain, then the
    plastic front at c_p = sqrt(K_p / rho), K_p = K + 4/3 mu H / (3 mu + H)."""
    solver = bar_solver(J2Plasticity(E, NU, SY, H))
    res = solver.run(420e-6, progress=False)
    t, u = res.probes["time"], res.probes["p"][:, 0]
    v = np.gradient(u, t)
    c_e = math.sqrt((LAM + 2 * MU) / RHO)
    c_p = math.sqrt((K + 4 / 3 * MU * H / (3 * MU + H)) / RHO)
    v_el = c_e * SY / (2 * MU)  # particle velocity behind the precursor
    t_e, t_p = 1.5 / c_e, 1.5 / c_p
    plateau = (t > t_e + 0.2 * (t_p - t_e)) & (t < t_p - 0.2 * (t_p - t_e))
    assert abs(np.median(v[plateau]) / v_el - 1) < 0.03
    late = (t > t_p + 40e-6) & (t < 2.0 / c_e + 1.5 / c_e - 20e-6)  # before the reflection
    assert abs(np.median(v[late]) / V0 - 1) < 0.03
    # Arrival of each front (half its jump) within 2 % of the analytic time.
    assert abs(t[np.argmax(v > 0.5 * v_el)] / t_e - 1) < 0.02
    assert abs(t[np.argmax(v > 0.5 * (v_el + V0))] / t_p - 1) < 0.02
    # Plastic strain stays behind: alpha > 0 near the loaded end, 0 beyond the front.
    assert solver.state[:, 6].max() > 0
    # Energy: kinetic + internal work (incl. dissipation) = boundary work.
    assert abs(res.energy[-1, 7]) < 1e-3


def test_recurrent_law_with_j2_weights_runs_like_j2_in_the_solver():
    j2 = J2Plasticity(E, NU, SY, H)
    law = j2_as_recurrent(j2, 2e-3, 3e8)
    b = bar_solver(law, n=100, dtype=torch.float64)
    a = bar_solver(j2, n=100, dt=b.dt)
    ra, rb = a.run(300e-6, progress=False), b.run(300e-6, progress=False)
    scale = np.abs(ra.probes["p"]).max()
    np.testing.assert_allclose(rb.probes["p"], ra.probes["p"], atol=1e-4 * scale)
    assert b.time_step.dt == pytest.approx(a.time_step.dt, rel=1e-6)


def test_checkpoint_restart_carries_the_material_state(tmp_path):
    def make():
        return bar_solver(J2Plasticity(E, NU, SY, H), n=60)

    a = make()
    for _ in range(80):
        a.step()
    a.save_checkpoint(tmp_path / "ck")
    for _ in range(80):
        a.step()
    b = make()
    b.load_checkpoint(tmp_path / "ck")
    for _ in range(80):
        b.step()
    assert a.state[:, 6].max() > 0
    np.testing.assert_array_equal(a.u.x.array, b.u.x.array)
    np.testing.assert_array_equal(a.state, b.state)


def test_plastic_state_is_written_per_cell(tmp_path):
    from snmech.fem._run import _StressOutput

    solver = bar_solver(J2Plasticity(E, NU, SY, H), n=60)
    solver.run(150e-6, progress=False, output_dir=tmp_path, output_interval=50e-6)
    assert (tmp_path / "solution_stress.bp").is_dir()
    out = _StressOutput(solver)
    out.update()
    alpha_cells = out.state.x.array.reshape(-1, 7)[:, 6]  # cell averages of alpha
    assert 0 < alpha_cells.max() <= solver.state[:, 6].max() * (1 + 1e-12)
    assert alpha_cells.min() == 0.0  # the far end has not yielded yet
