"""ExplicitSolver against analytic references: wave arrival, bending frequency,
energy conservation, loads, MPI equality, failures and restarts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.fem

pytest.importorskip("snmech.fem")  # imports dolfinx_solver before dolfinx

from dolfinx import mesh  # noqa: E402
from mpi4py import MPI  # noqa: E402

from snmech.fem.boundary import (  # noqa: E402
    Clamp,
    Gravity,
    MovingLoad,
    PrescribedVelocity,
    Traction,
)
from snmech.fem.solver import ExplicitSolver, SimulationError, UnsafeTimeStepError  # noqa: E402
from snmech.material import (  # noqa: E402
    LinearElastic,
    SaturatingElastic,
    TrainingConfig,
    generate_data,
    train_law,
)

E, NU, RHO = 210e9, 0.3, 7800.0
LAM = E * NU / ((1 + NU) * (1 - 2 * NU))
MU = E / (2 * (1 + NU))


def at(axis: int, value: float):
    return lambda x: np.isclose(x[axis], value)


def bar(comm=MPI.COMM_WORLD, n=100, cell=mesh.CellType.hexahedron):
    return mesh.create_box(comm, [[0, 0, 0], [1.0, 0.02, 0.02]], [n, 1, 1], cell)


def uniaxial_strain_rollers():
    return [
        Clamp(lambda x: np.isclose(x[1], 0) | np.isclose(x[1], 0.02), components=(1,)),
        Clamp(lambda x: np.isclose(x[2], 0) | np.isclose(x[2], 0.02), components=(2,)),
    ]


@pytest.fixture(scope="module")
def potential_law():
    data = generate_data(
        SaturatingElastic(E, NU), 1024, sampling="random", strain_range=5e-3, seed=0
    )
    return train_law(data, config=TrainingConfig(epochs=40, seed=0), progress=False).law


@pytest.mark.parametrize("ufl_stress", [True, False])
def test_wave_front_arrives_at_L_over_c(ufl_stress):
    """Velocity step at x = 0 of a laterally constrained bar (uniaxial strain):
    the front reaches the free end at L / c, c = sqrt((lambda + 2 mu) / rho), and
    the free end then moves at twice the imposed velocity."""
    c = math.sqrt((LAM + 2 * MU) / RHO)
    bcs = [PrescribedVelocity(at(0, 0.0), [1.0], components=(0,)), *uniaxial_strain_rollers()]
    solver = ExplicitSolver(
        bar(),
        LinearElastic(E, NU),
        RHO,
        dirichlet=bcs,
        probes={"end": [1.0, 0.01, 0.01]},
        ufl_stress=ufl_stress,
    )
    res = solver.run(2.7 / c, progress=False)
    t, u = res.probes["time"], res.probes["end"][:, 0]
    window = (t > 1.3 / c) & (t < 2.6 / c)  # after arrival, before the echo returns
    slope, intercept = np.polyfit(t[window], u[window], 1)
    arrival = -intercept / slope
    assert arrival == pytest.approx(1.0 / c, rel=0.02)
    assert slope == pytest.approx(2.0, rel=0.01)
    assert np.all(np.abs(u[t < 0.9 / c]) < 1e-3 * u[-1])  # nothing moves before the front


def test_cantilever_first_frequency_matches_euler_bernoulli():
    """Plane-strain P2 cantilever released with a first-mode-like velocity: the tip
    crosses zero at half the Euler-Bernoulli period (E' = E / (1 - nu^2))."""
    L, h = 1.0, 0.1
    f1 = 1.8751**2 / (2 * math.pi * L**2) * math.sqrt(E / (1 - NU**2) * h**2 / (12 * RHO))
    domain = mesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [L, h]], [20, 2])

    def mode_velocity(x):
        s = x[0] / L
        return np.vstack([np.zeros_like(s), 0.01 * s**2 * (3 - s) / 2])

    solver = ExplicitSolver(
        domain,
        LinearElastic(E, NU, "plane_strain"),
        RHO,
        degree=2,
        dirichlet=[Clamp(at(0, 0.0))],
        initial_velocity=mode_velocity,
        probes={"tip": [L, h / 2]},
    )
    res = solver.run(0.6 / f1, progress=False)
    t, u = res.probes["time"], res.probes["tip"][:, 1]
    i = np.flatnonzero((u[:-1] > 0) & (u[1:] <= 0))[0]
    t_zero = t[i] + (t[i + 1] - t[i]) * u[i] / (u[i] - u[i + 1])
    assert 1 / (2 * t_zero) == pytest.approx(f1, rel=0.03)


def test_undamped_energy_drift_over_10000_steps():
    """A neural PotentialLaw beam vibrating freely for 10,000 certified steps."""
    domain = mesh.create_rectangle(MPI.COMM_WORLD, [[0, 0], [0.2, 0.02]], [10, 2])
    plane = train_plane_strain_law()
    solver = ExplicitSolver(
        domain,
        plane,
        RHO,
        dirichlet=[Clamp(at(0, 0.0))],
        initial_velocity=lambda x: np.vstack([0 * x[0], 0.5 * x[0] / 0.2]),
        dtype=torch.float64,
    )
    res = solver.run(10_000 * solver.dt, progress=False, output_interval=50 * solver.dt)
    assert res.steps == 10_000
    assert np.abs(res.energy[:, 7]).max() < 0.005
    total = res.energy[:, 2] + res.energy[:, 3]
    assert np.abs(total / total[0] - 1).max() < 0.005


_PLANE_LAW = {}


def train_plane_strain_law():
    if "law" not in _PLANE_LAW:
        data = generate_data(
            SaturatingElastic(E, NU, kinematics="plane_strain"),
            1024,
            sampling="random",
            strain_range=5e-3,
            seed=0,
        )
        cfg = TrainingConfig(epochs=40, seed=0)
        _PLANE_LAW["law"] = train_law(data, config=cfg, progress=False).law
    return _PLANE_LAW["law"]


def test_certified_dt_is_default_and_larger_dt_is_refused():
    law = LinearElastic(E, NU)
    solver = ExplicitSolver(bar(n=10), law, RHO)
    assert solver.dt == solver.time_step.dt and solver.time_step.certified
    with pytest.raises(UnsafeTimeStepError, match=r"above the certified") as info:
        ExplicitSolver(bar(n=10), law, RHO, dt=3 * solver.dt)
    assert f"{solver.dt:.6g}" in str(info.value)  # both numbers are named
    forced = ExplicitSolver(bar(n=10), law, RHO, dt=3 * solver.dt, force_dt=True)
    assert forced.dt == 3 * solver.dt


def test_unstable_forced_step_stops_with_a_clear_error(tmp_path):
    solver = ExplicitSolver(
        bar(n=20),
        LinearElastic(E, NU),
        RHO,
        dt=None,
        dirichlet=[Clamp(at(0, 0.0))],
        initial_velocity=[1.0, 0.0, 0.0],
    )
    dt = 2.5 * solver.dt
    solver = ExplicitSolver(
        bar(n=20),
        LinearElastic(E, NU),
        RHO,
        dt=dt,
        force_dt=True,
        dirichlet=[Clamp(at(0, 0.0))],
        initial_velocity=[1.0, 0.0, 0.0],
    )
    with pytest.raises(SimulationError, match=r"step \d+ \(t = .*energy balance|NaN"):
        solver.run(2000 * dt, progress=False, output_dir=tmp_path, output_interval=5 * dt)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "step" in summary["error"]
    assert (tmp_path / "energy.csv").exists()  # the output so far is kept


class NaNAfter:
    """Linear elastic, but returns NaN once strains exceed a threshold."""

    def __init__(self, threshold):
        self.law, self.threshold = LinearElastic(E, NU), threshold

    def stress(self, strain):
        s = self.law.stress(strain)
        s[np.abs(strain).max(axis=1) > self.threshold] = np.nan
        return s

    def lipschitz_bound(self):
        return self.law.lipschitz_bound()


def test_nan_from_the_material_names_step_and_cause():
    solver = ExplicitSolver(
        bar(n=20), NaNAfter(1e-6), RHO, dirichlet=[PrescribedVelocity(at(0, 0.0), [1.0, 0, 0])]
    )
    with pytest.raises(SimulationError, match=r"step \d+ .*material returned NaN/inf"):
        solver.run(1000 * solver.dt, progress=False)


def test_traction_and_moving_load_carry_their_total_force():
    domain = mesh.create_box(MPI.COMM_WORLD, [[0, 0, 0], [4.0, 1.0, 0.2]], [16, 4, 1])
    top = at(2, 0.2)
    solver = ExplicitSolver(
        domain,
        LinearElastic(E, NU),
        RHO,
        loads=[
            Traction(top, lambda t: [0.0, 0.0, -1e3 * t]),
            MovingLoad(top, force=[0.0, 0.0, -5e4], speed=10.0, length=1.0, start=-1.0),
            Gravity([0.0, 0.0, -9.81]),
        ],
    )

    def total(t):
        solver._compute_external_force(t)
        n = solver.n_owned
        f = solver.f_ext.x.array[:n].reshape(-1, 3).sum(axis=0)
        return MPI.COMM_WORLD.allreduce(f, op=MPI.SUM)

    weight = RHO * 9.81 * 4.0 * 1.0 * 0.2  # traction: 1e3 t Pa on 4 m^2
    np.testing.assert_allclose(total(0.0), [0, 0, -weight], atol=1e-6 * weight)  # load off deck
    np.testing.assert_allclose(total(0.2), [0, 0, -weight - 800 - 5e4], rtol=1e-9)
    np.testing.assert_allclose(total(0.3), [0, 0, -weight - 1200 - 5e4], rtol=1e-9)
    half = total(0.5)[2] + weight + 2000  # window centred on the deck end: half on it
    assert half == pytest.approx(-2.5e4, rel=0.05)


def test_damping_dissipates_and_balances():
    solver = ExplicitSolver(
        bar(n=20),
        LinearElastic(E, NU),
        RHO,
        dirichlet=[Clamp(at(0, 0.0))],
        initial_velocity=[1.0, 0.0, 0.0],
        damping=2000.0,
    )
    res = solver.run(3000 * solver.dt, progress=False)
    kin, internal, damp = res.energy[-1, 2], res.energy[-1, 3], res.energy[-1, 5]
    e0 = 0.5 * RHO * 1.0 * 0.02 * 0.02 * 1.0**2
    assert damp > 0.5 * e0 and kin + internal < 0.5 * e0
    assert np.abs(res.energy[:, 7]).max() < 2e-3  # the impulsive start
    assert abs(res.energy[-1, 7]) < 1e-4


def test_checkpoint_restart_continues_exactly(tmp_path):
    def make():
        return ExplicitSolver(
            bar(n=20),
            LinearElastic(E, NU),
            RHO,
            dirichlet=[PrescribedVelocity(at(0, 0.0), [1.0, 0.0, 0.0])],
        )

    a = make()
    for _ in range(50):
        a.step()
    a.save_checkpoint(tmp_path / "ck")
    for _ in range(50):
        a.step()
    b = make()
    b.load_checkpoint(tmp_path / "ck")
    assert b.step_count == 50
    for _ in range(50):
        b.step()
    np.testing.assert_array_equal(a.u.x.array, b.u.x.array)
    np.testing.assert_allclose(a.energy_row(), b.energy_row(), rtol=1e-12)


def test_outputs_are_written_and_parse(tmp_path, potential_law):
    solver = ExplicitSolver(
        bar(n=10),
        potential_law,
        RHO,
        dirichlet=[Clamp(at(0, 0.0))],
        initial_velocity=[0.0, 0.0, 0.5],
        probes={"tip": [1.0, 0.01, 0.01]},
    )
    res = solver.run(200 * solver.dt, progress=False, output_dir=tmp_path)
    assert (tmp_path / "solution_displacement.bp").is_dir()
    assert (tmp_path / "solution_stress.bp").is_dir()
    probes = np.loadtxt(tmp_path / "probes.csv", delimiter=",", skiprows=1)
    assert probes.shape == (201, 4)
    energy = np.loadtxt(tmp_path / "energy.csv", delimiter=",", skiprows=1)
    assert energy.shape[1] == 8 and np.abs(energy[:, 7]).max() < 0.01
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 200
    assert set(res.timings) >= {"strain", "material", "assembly", "update"}


def test_xdmf_output(tmp_path):
    solver = ExplicitSolver(
        bar(n=10, cell=mesh.CellType.tetrahedron),
        LinearElastic(E, NU),
        RHO,
        dirichlet=[Clamp(at(0, 0.0))],
        initial_velocity=[0.0, 0.0, 0.5],
    )
    solver.run(20 * solver.dt, progress=False, output_dir=tmp_path, format="xdmf")
    assert (tmp_path / "solution.xdmf").exists() and (tmp_path / "solution.h5").exists()


@pytest.mark.mpi
def test_two_ranks_match_serial(potential_law):
    """Same run on COMM_SELF and on the 2-rank COMM_WORLD: same probe histories."""

    def run(comm):
        solver = ExplicitSolver(
            bar(comm, n=30),
            potential_law,
            RHO,
            dirichlet=[PrescribedVelocity(at(0, 0.0), [1.0, 0.0, 0.2])],
            probes={"mid": [0.5, 0.01, 0.01], "end": [1.0, 0.02, 0.02]},
            dtype=torch.float64,
            dt=2.0e-6,  # the certified step differs between partitions by round-off
        )
        res = solver.run(300 * solver.dt, progress=False)
        return res, solver

    par, sp = run(MPI.COMM_WORLD)
    ser, ss = run(MPI.COMM_SELF)
    assert sp.time_step.dt == pytest.approx(ss.time_step.dt, rel=1e-12)
    if MPI.COMM_WORLD.rank == 0:
        for name in ("mid", "end"):
            scale = np.abs(ser.probes[name]).max()
            np.testing.assert_allclose(par.probes[name], ser.probes[name], atol=1e-10 * scale)
    np.testing.assert_allclose(par.energy, ser.energy, rtol=1e-9, atol=1e-12)


def test_a_law_in_training_mode_is_certified_as_evaluated(potential_law):
    """The solver certifies and evaluates one exported copy; the user's law is untouched."""
    from snmech.material import PotentialLaw

    torch.manual_seed(0)
    training = PotentialLaw(hidden=8).train()  # spectral_norm still parametrized
    before = {k: v.clone() for k, v in training.state_dict().items()}
    solver = ExplicitSolver(bar(n=10), training, RHO)
    exported = training.exported_copy()
    assert solver.material is not training
    np.testing.assert_allclose(solver.material.loewner_bound(), exported.loewner_bound())
    for k, v in training.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    ("jit", "amplitude"), [("vector", 1.0), ("default", 1.0), ("vector", 300.0)]
)
def test_compiled_potential_law_gives_the_batched_law_force(potential_law, jit, amplitude):
    """The PotentialLaw written into the form (the CPU default with vector kernels) and
    the quadrature round trip (float64) assemble the same internal force: strains from
    zero (radial units' series branch) up to 1e-2, or 300x that (every unit saturated,
    exp overflowing to inf in the compiled tanh)."""
    from snmech.fem._jit import vector_jit_options

    options = vector_jit_options() if jit == "vector" else {}
    law = potential_law.exported_copy().double()  # one law: softplus etc. in float64 on both paths
    forces = []
    for ufl_stress in (True, False):
        solver = ExplicitSolver(
            bar(n=12, cell=mesh.CellType.tetrahedron),
            law,
            RHO,
            ufl_stress=ufl_stress,
            dtype=torch.float64,
            jit_options=options,
        )
        solver.u.interpolate(
            lambda x: (
                amplitude
                * np.vstack([3e-3 * x[0] ** 2, 1e-3 * np.sin(9 * x[0]), 2e-3 * x[0] * x[1]])
            )
        )
        solver._compute_internal_force()
        forces.append(solver.f_int.x.array.copy())
    scale = np.abs(forces[1]).max()
    assert scale > 0
    np.testing.assert_allclose(forces[0], forces[1], atol=1e-10 * scale)


def test_default_paths_and_nan_still_detected_with_vector_kernels(potential_law):
    from snmech.fem._jit import vector_jit_options

    solver = ExplicitSolver(bar(n=10), potential_law, RHO, dirichlet=[Clamp(at(0, 0.0))])
    assert solver.jit_options == vector_jit_options()
    if vector_jit_options():  # x86-64 Linux with libmvec: compiled law by default
        assert solver.ufl_stress
    solver.u.x.array[7] = np.nan  # NaN must survive the reassociated, vectorized kernel
    with pytest.raises(SimulationError, match="NaN"):
        solver.step()
