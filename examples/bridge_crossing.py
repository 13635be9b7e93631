# # A vehicle crossing a girder bridge
#
# The side elevation of a 20 m steel girder bridge (plane strain, per metre of
# width; the depth 1.23 m has the radius of gyration of the 3D pi section), P2
# triangles, pinned at x = 0 and on a roller at x = 20 m. The self-weight is
# ramped in over 0.2 s and settles under mass-proportional damping (30 % of
# critical in the first bending mode); from t = 0.4 s a vehicle, a 2 m patch
# carrying 100 kN per metre of width, crosses at 30 m/s.
#
# Checks: the settled mid-span deflection against beam theory,
# 5 w L^4 / (384 E' I) + w L^2 / (8 kappa G A), and the extra deflection as the
# vehicle passes mid-span against the static P L^3 / (48 E' I) (the difference
# is the dynamic amplification of the crossing).
#
# Run it from the command line: `snmech simulate examples/bridge_crossing.toml`
# (or `examples/bridge_crossing_3d.toml` for the 3D bridge).

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import snmech.fem  # noqa: F401  (dolfinx_solver before dolfinx)
from snmech.demo import E_STEEL, NU_STEEL, bridge_beam_theory
from snmech.fem.case import run_case
from snmech.fem.meshes import BridgeSection

HERE = Path(__file__).resolve().parent
SPAN, VEHICLE, SETTLE, SPEED, START = 20.0, 1.0e5, 0.4, 30.0, -14.5


def main(
    out: str | Path = HERE / "../results/bridge_crossing",
    end: float | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Run the case; return the deflections and their beam-theory estimates (m)."""
    solver, result = run_case(
        HERE / "bridge_crossing.toml", output_dir=out, end=end, progress=progress, overwrite=True
    )
    depth = BridgeSection().equivalent_depth
    theory = bridge_beam_theory(SPAN, depth)
    t, mid = result.probes["time"], -result.probes["midspan"][:, 1]
    settled = float(mid[(t > 0.8 * SETTLE) & (t <= SETTLE)].mean())
    metrics = {
        "dofs": solver.V.dofmap.index_map.size_global * solver.gdim,
        "steps": result.steps,
        "dt_s": result.dt,
        "self_weight_deflection_m": settled,
        "beam_theory_m": theory["deflection_m"],
        "ratio": settled / theory["deflection_m"],
    }
    if t[-1] > SETTLE + (SPAN / 2 - START - SPEED * SETTLE) / SPEED:  # the vehicle reached mid-span
        e_prime = E_STEEL / (1 - NU_STEEL**2)
        static = VEHICLE * SPAN**3 / (48 * e_prime * depth**3 / 12)
        metrics["vehicle_deflection_m"] = float(mid[t > SETTLE].max()) - settled
        metrics["vehicle_static_m"] = static
        metrics["dynamic_amplification"] = metrics["vehicle_deflection_m"] / static
    metrics["max_energy_balance_error"] = float(np.abs(result.energy[:, 7]).max())
    return metrics


if __name__ == "__main__":
    metrics = main(progress="--quiet" not in sys.argv)
    for key, value in metrics.items():
        print(f"{key:26s} {value:.6g}")
