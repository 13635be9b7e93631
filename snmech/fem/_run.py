"""The time loop of :class:`~snmech.fem.solver.ExplicitSolver`: output, checks, checkpoints."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from dolfinx import fem
from tqdm import tqdm

from snmech.fem.output import FieldWriter, Probes, write_energy_csv, write_json, write_probes_csv
from snmech.fem.result import SimulationError, SimulationResult

Array = npt.NDArray[np.float64]
WARMUP_STEPS = 10  # steps before the energy balance is checked


class _StressOutput:
    """Mandel stress (Pa) per cell and its von Mises value, as DG0 Functions.

    The quadrature average, or the compiled law at the cell midpoint.
    """

    def __init__(self, solver: Any) -> None:  # an ExplicitSolver
        msh, k = solver.mesh, solver.kinematics.size
        self.solver = solver
        self.stress = fem.Function(fem.functionspace(msh, ("DG", 0, (k,))), name="stress")
        self.von_mises = fem.Function(fem.functionspace(msh, ("DG", 0)), name="von_mises")
        self.state: fem.Function | None = None
        if solver.ufl_stress:
            pts = self.stress.function_space.element.interpolation_points
            self._expr: fem.Expression | None = fem.Expression(solver.sigma, pts)
        else:
            self._expr = None
            self._q_dofs = solver.stress_q.function_space.dofmap.list  # (cells, points)
            self._c_dofs = self.stress.function_space.dofmap.list[:, 0]
        if getattr(solver, "stateful", False):
            # History variables per cell (quadrature average), e.g. J2's plastic strain
            # and equivalent plastic strain (its last entry).
            m = solver.state.shape[1]
            self.state = fem.Function(
                fem.functionspace(msh, ("DG", 0, (m,))), name="material_state"
            )

    def update(self) -> None:
        k = self.solver.kinematics.size
        if self._expr is not None:
            self.stress.interpolate(self._expr)
        else:
            q = self.solver.stress_q.x.array.reshape(-1, k)[self._q_dofs]  # (cells, points, k)
            self.stress.x.array.reshape(-1, k)[self._c_dofs] = q.mean(axis=1)
        if self.state is not None:
            m = self.solver.state.shape[1]
            per_cell = self.solver.state.reshape(len(self._c_dofs), -1, m).mean(axis=1)
            self.state.x.array.reshape(-1, m)[self._c_dofs] = per_cell
        s = self.stress.x.array.reshape(-1, k)
        trace = s[:, :3].sum(axis=1) if k == 6 else s[:, :2].sum(axis=1)
        dev = s.copy()
        dev[:, : (3 if k == 6 else 2)] -= trace[:, None] / (3 if k == 6 else 2)
        self.von_mises.x.array[:] = np.sqrt(1.5 * (dev**2).sum(axis=1))


def run(
    solver: Any,  # an ExplicitSolver (typed loosely: it imports this module)
    t_end: float,
    *,
    output_dir: str | Path | None,
    output_interval: float | None,
    format: str,
    progress: bool,
    checkpoint_every: int | None,
) -> SimulationResult:
    """See :meth:`ExplicitSolver.run`."""
    if not (math.isfinite(t_end) and t_end > solver.t):
        raise ValueError(f"t_end must be after the current time {solver.t:g} s, got {t_end}")
    comm, dt = solver.comm, solver.dt
    n_steps = max(1, math.ceil((t_end - solver.t) / dt - 1e-9))
    if output_interval is not None and not output_interval > 0:
        raise ValueError(f"output_interval must be > 0 s, got {output_interval}")
    if checkpoint_every is not None and (
        isinstance(checkpoint_every, bool)
        or not isinstance(checkpoint_every, int)
        or checkpoint_every < 1
    ):
        raise ValueError(
            f"checkpoint_every must be a whole number of steps >= 1, got {checkpoint_every!r}"
        )
    if checkpoint_every is not None and output_dir is None:
        raise ValueError("checkpoint_every needs an output_dir to write the checkpoints to")
    every = max(1, round(output_interval / dt)) if output_interval else max(1, n_steps // 100)
    out = Path(output_dir) if output_dir is not None else None
    if out is not None and comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    probes = Probes(solver.u, solver.probes_spec)
    probes.sample(solver.t)
    rows: list[Array] = []
    files: dict[str, str] = {}
    writer: FieldWriter | None = None
    stress_out: _StressOutput | None = None
    if out is not None:
        stress_out = _StressOutput(solver)
        cell_fields = [stress_out.stress, stress_out.von_mises]
        if stress_out.state is not None:
            cell_fields.append(stress_out.state)
        groups = [[solver.u, solver.v], cell_fields]
        if format == "xdmf":  # XDMF wants every function on the same mesh file: fine
            groups = [[solver.u, solver.v, *cell_fields]]
        writer = FieldWriter(out, "solution", groups, format=format)
        files["fields"] = ", ".join(str(p) for p in writer.paths)
    bar = tqdm(
        total=n_steps,
        disable=not progress or comm.rank != 0,
        desc="explicit dynamics",
        unit="step",
        mininterval=0.5,
    )
    t_wall = time.perf_counter()
    status, error = "completed", None

    def write_fields() -> None:
        if writer is not None and stress_out is not None:
            t0 = time.perf_counter()
            stress_out.update()
            writer.write(solver.t)
            solver.timings.output += time.perf_counter() - t0

    try:
        write_fields()
        for i in range(n_steps):
            solver.step()
            probes.sample(solver.t)
            if (i + 1) % every == 0 or i + 1 == n_steps:
                row = solver.energy_row()
                rows.append(row)
                # The first steps of an impulsive start have O(1) relative discretization
                # error on tiny energies; an instability needs far longer to show.
                if abs(row[7]) > solver.energy_tolerance and row[0] >= WARMUP_STEPS:
                    raise SimulationError(
                        f"step {int(row[0])} (t = {row[1]:.6g} s): energy balance error "
                        f"{row[7]:.3g} exceeds the tolerance {solver.energy_tolerance:g} "
                        f"(kinetic {row[2]:.4g} J, internal {row[3]:.4g} J, external work "
                        f"{row[4]:.4g} J); the time step or the material is suspect"
                    )
                write_fields()
                bar.set_postfix(t=f"{solver.t:.4g}s", err=f"{row[7]:.1e}", refresh=False)
            if checkpoint_every and out is not None and (i + 1) % checkpoint_every == 0:
                solver.save_checkpoint(out / "checkpoint")
            bar.update(1)
    except SimulationError as exc:
        status, error = "failed", str(exc)
        raise
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        histories = probes.gather()
        wall = time.perf_counter() - t_wall
        energy = np.array(rows) if rows else np.zeros((0, 8))
        result = SimulationResult(
            steps=solver.step_count,
            time=solver.t,
            dt=dt,
            time_step=solver.time_step,
            energy=energy,
            probes=histories,
            timings=solver.timings.per_step(),
            wall_time=wall,
            files=files,
        )
        if out is not None and comm.rank == 0:
            write_energy_csv(out / "energy.csv", energy)
            files["energy"] = str(out / "energy.csv")
            if histories and len(histories) > 1:
                write_probes_csv(out / "probes.csv", histories)
                files["probes"] = str(out / "probes.csv")
            summary = result.summary() | {"status": status, "error": error}
            summary["ranks"] = comm.size
            write_json(out / "summary.json", summary)
            files["summary"] = str(out / "summary.json")
    return result
