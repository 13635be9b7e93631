r"""The one-command demo: data -> law -> certificate -> time step -> bridge crossing.

Steps (each writes into the output directory):

1. synthesize plane-strain stress-strain data from the saturating reference law
   (steel, softening shear) -- ``data.csv``;
2. train a :class:`~snmech.material.PotentialLaw` and export it, certified --
   ``law.safetensors``, ``metrics.json``, ``fit.png``, ``paths.png``;
3. reload it (the certificate is recomputed from the weights and must match);
4. compute the stable time step of the bridge mesh: certified (element) and
   the estimates -- ``timestep.json``;
5. run the bridge: the plane-strain side elevation of a 20 m steel girder
   bridge (P2 triangles), pinned at x = 0, on a roller at x = 20 m; its
   self-weight is ramped in and settles (mass-proportional damping), then a
   vehicle crosses at constant speed -- ``bridge/`` (VTX fields for ParaView,
   ``probes.csv``, ``energy.csv``, ``summary.json``, ``probes.png``,
   ``energy.png``) and the case file ``bridge.toml`` that reruns it with
   ``snmech simulate``;
6. compare the settled mid-span deflection under self-weight with beam theory,
   :math:`\delta = 5 w L^4 / (384 E' I) + w L^2 / (8 \kappa G A)` (bending plus
   shear, plane strain ``E' = E / (1 - nu^2)``), and write ``summary.json``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

E_STEEL, NU_STEEL, RHO_STEEL, GRAVITY = 210e9, 0.3, 7850.0, 9.81


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs; the defaults take about two minutes on two cores.

    Attributes:
        samples: stress-strain samples to synthesize.
        epochs: training epochs.
        law: ``"potential"`` (train a neural law) or ``"linear"`` (the linear
            elastic reference law, no training: the beam-theory check).
        span: bridge span (m).
        size: bridge mesh size (``"coarse"``, ``"medium"``, ``"fine"`` or metres).
        degree: displacement degree (2: no shear locking in bending).
        settle: time (s) for the self-weight to be ramped in and settle.
        vehicle: vehicle load per metre of bridge width (N/m, plane strain).
        speed: vehicle speed (m/s).
        damping_ratio: damping ratio of the first bending mode (mass proportional).
        output_interval: field and energy output interval (s).
        seed: seed of data synthesis and training.
    """

    samples: int = 4096
    epochs: int = 300
    law: str = "potential"
    span: float = 20.0
    size: str | float = "coarse"
    degree: int = 2
    settle: float = 0.4
    vehicle: float = 1.0e5
    speed: float = 30.0
    damping_ratio: float = 0.3
    output_interval: float = 0.005
    seed: int = 0

    @property
    def end_time(self) -> float:
        """Settling, then the vehicle from fully before to fully after the deck (s)."""
        return self.settle + (self.span + 2 * 0.5 + 2 * self.vehicle_length) / self.speed

    @property
    def vehicle_length(self) -> float:
        """Length of the moving load patch (m)."""
        return 2.0


def bridge_beam_theory(span: float, depth: float) -> dict[str, float]:
    """Plane-strain simply supported beam under self-weight: frequency and deflection.

    Returns:
        ``first_frequency_hz``, ``omega1`` (rad/s), ``deflection_m`` (bending +
        shear, per unit width), ``bending_m``, ``shear_m``.
    """
    e_prime = E_STEEL / (1 - NU_STEEL**2)
    g_mod = E_STEEL / (2 * (1 + NU_STEEL))
    inertia, area = depth**3 / 12, depth
    w = RHO_STEEL * GRAVITY * area
    bending = 5 * w * span**4 / (384 * e_prime * inertia)
    shear = w * span**2 / (8 * (5 / 6) * g_mod * area)
    omega1 = (math.pi / span) ** 2 * math.sqrt(e_prime * inertia / (RHO_STEEL * area))
    return {
        "first_frequency_hz": omega1 / (2 * math.pi),
        "omega1": omega1,
        "bending_m": bending,
        "shear_m": shear,
        "deflection_m": bending + shear,
    }


def bridge_case(settings: DemoSettings, law_file: str | None, out_dir: str) -> str:
    """The TOML case file of the demo's bridge crossing."""
    s = settings
    depth = _bridge_depth()
    theory = bridge_beam_theory(s.span, depth)
    alpha = 2 * s.damping_ratio * theory["omega1"]
    material = (
        f'law = "{law_file}"'
        if law_file is not None
        else f'reference = "linear"\nE = {_f(E_STEEL)}\nnu = {_f(NU_STEEL)}'
    )
    tol = 1e-6 * s.span
    start = -0.5 - s.vehicle_length - s.speed * s.settle  # off the deck until t = settle
    return f"""# The demo's bridge crossing: rerun with `snmech simulate bridge.toml --overwrite`.
[mesh]
generator = "bridge"
span = {_f(s.span)}
size = {json.dumps(s.size)}
dim = 2
cell = "triangle"
degree = {s.degree}

[material]
{material}
density = {_f(RHO_STEEL)}

[time]
end = {_f(s.end_time)}
safety = 0.9
damping = {_f(alpha)}   # 1/s: damping ratio {s.damping_ratio} in the first bending mode

[[bc]]   # pin at the left bearing centre (a point in the elevation)
type = "clamp"
where = {{min = [{_f(-tol)}, {_f(-tol)}], max = [{_f(tol)}, {_f(tol)}]}}

[[bc]]   # roller at the right bearing centre
type = "clamp"
where = {{min = [{_f(s.span - tol, 12)}, {_f(-tol)}], max = [{_f(s.span + tol, 12)}, {_f(tol)}]}}
components = [1]

[[load]]   # self-weight, ramped in over half the settling time
type = "gravity"
acceleration = [0.0, {_f(-GRAVITY)}]
ramp = {_f(s.settle / 2)}

[[load]]   # the vehicle, N per metre of width, entering the deck at t = {s.settle}
type = "moving"
where = "deck"
force = [0.0, {_f(-s.vehicle)}]
speed = {_f(s.speed)}
length = {_f(s.vehicle_length)}
start = {_f(start)}

[probes]
midspan = [{_f(s.span / 2)}, {_f(depth / 2)}]
quarter = [{_f(s.span / 4)}, {_f(depth / 2)}]

[output]
directory = "{out_dir}"
interval = {_f(s.output_interval)}
format = "vtx"
"""


def _f(x: float, digits: int = 6) -> str:
    """A float as TOML, short."""
    return f"{float(x):.{digits}g}"


def _bridge_depth() -> float:
    from snmech.fem.meshes import BridgeSection

    return BridgeSection().equivalent_depth


def run_demo(
    out: str | Path, settings: DemoSettings | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Run the whole pipeline into ``out``; returns (and writes) the summary.

    Raises:
        snmech.fem.SimulationError: the run failed (the partial output is kept).
    """
    from mpi4py import MPI

    import snmech.fem  # noqa: F401  (dolfinx_solver first)
    from snmech.fem.case import run_case
    from snmech.fem.output import write_json
    from snmech.fem.timestep import format_reports, stable_time_step
    from snmech.material import (
        SaturatingElastic,
        TrainingConfig,
        generate_data,
        load_law,
        reference_law,
        save_data,
    )
    from snmech.material.report import train_and_report

    s = settings or DemoSettings()
    out = Path(out)
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    clock = time.perf_counter()
    summary: dict[str, Any] = {"settings": asdict(s)}

    # 1-3: data, training, certified export (rank 0 trains; everyone loads the file)
    law_file: str | None = None
    if s.law == "potential":
        law_path = out / "law.safetensors"
        if comm.rank == 0:
            ref = SaturatingElastic(E_STEEL, NU_STEEL, kinematics="plane_strain")
            data = generate_data(ref, s.samples, sampling="mixed", strain_range=3e-3, seed=s.seed)
            save_data(data, out / "data.csv")
            metrics = train_and_report(
                data,
                law_path,
                config=TrainingConfig(epochs=s.epochs, seed=s.seed),
                report_dir=out,
                progress=progress,
            )
            summary["training"] = {
                k: metrics[k]
                for k in (
                    "exported_val_rel_rmse",
                    "lipschitz_bound_pa",
                    "bound_over_lower",
                    "samples_per_second",
                )
            }
        comm.barrier()
        law = load_law(law_path)  # recomputes the certificate; refuses a mismatch
        law_file = law_path.name
    elif s.law == "linear":
        law = reference_law("linear", E=E_STEEL, nu=NU_STEEL, kinematics="plane_strain")
    else:
        raise ValueError(f"law must be 'potential' or 'linear', got {s.law!r}")
    summary["certificate"] = {
        "lipschitz_bound_pa": law.lipschitz_bound(),
        "loewner_bound_pa": np.asarray(law.loewner_bound()).tolist(),
    }

    # 4: time step of the bridge mesh for this law
    from snmech.fem.meshes import bridge_mesh

    mesh = bridge_mesh(s.span, size=s.size, dim=2, cell="triangle").mesh
    reports = [
        stable_time_step(mesh, RHO_STEEL, law, method=m, degree=s.degree)
        for m in ("element", "global", "courant")
    ]
    summary["time_step"] = {r.method: r.to_dict() for r in reports}
    table = format_reports(reports)
    if comm.rank == 0:
        write_json(out / "timestep.json", summary["time_step"])

    # 5: the bridge crossing, from a case file the user can rerun
    case_path = out / "bridge.toml"
    if comm.rank == 0:
        case_path.write_text(bridge_case(s, law_file, "bridge"))
    comm.barrier()
    solver, result = run_case(case_path, progress=progress, comm=comm, overwrite=True)

    # 6: beam theory for the settled self-weight deflection
    theory = bridge_beam_theory(s.span, _bridge_depth())
    if comm.rank == 0:
        t = result.probes["time"]
        mid = result.probes["midspan"][:, 1]
        settled = -float(np.mean(mid[(t > 0.8 * s.settle) & (t <= s.settle)]))
        summary["bridge"] = {
            "dofs": solver.V.dofmap.index_map.size_global * solver.gdim,
            "steps": result.steps,
            "dt_s": result.dt,
            "seconds_per_step": sum(v for k, v in result.timings.items() if k != "output"),
            "self_weight_deflection_m": settled,
            "beam_theory_deflection_m": theory["deflection_m"],
            "deflection_ratio": settled / theory["deflection_m"],
            "max_deflection_m": -float(mid[t > s.settle].min()),
            "vehicle_deflection_m": -float(mid[t > s.settle].min()) - settled,
            "max_energy_balance_error": float(np.abs(result.energy[:, 7]).max()),
            "files": result.files,
        }
        summary["wall_time_s"] = time.perf_counter() - clock
        summary["time_step_table"] = table
        write_json(out / "summary.json", summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The short table ``make demo`` prints."""
    lines = []
    if "training" in summary:
        t = summary["training"]
        lines.append(
            f"law        PotentialLaw, held-out relative RMSE {t['exported_val_rel_rmse']:.4f}, "
            f"{t['samples_per_second']:.0f} samples/s"
        )
    c = summary["certificate"]
    lines.append(f"certified  ||tangent|| <= {c['lipschitz_bound_pa']:.4e} Pa (and C_bar)")
    lines.append("time step  " + summary["time_step_table"].replace("\n", "\n           "))
    b = summary["bridge"]
    lines.append(
        f"bridge     {b['dofs']} dofs, {b['steps']} steps of {b['dt_s']:.3e} s, "
        f"{b['seconds_per_step'] * 1e3:.2f} ms/step, energy balance error "
        f"<= {b['max_energy_balance_error']:.1e}"
    )
    lines.append(
        f"deflection self-weight {b['self_weight_deflection_m'] * 1e3:.3f} mm "
        f"(beam theory {b['beam_theory_deflection_m'] * 1e3:.3f} mm, ratio "
        f"{b['deflection_ratio']:.3f}); vehicle adds {b['vehicle_deflection_m'] * 1e3:.3f} mm"
    )
    lines.append(f"wall time  {summary['wall_time_s']:.0f} s")
    return "\n".join(lines)
