# # Cantilever under a step tip load
#
# The cantilever of `cantilever_impact.py`, now at rest until t = 0, when a
# downward traction of 1 MPa is switched on over its tip face (P = 10 kN) and
# held. Undamped, the tip would oscillate between 0 and twice the static
# deflection; with 5 % damping in the first bending mode (mass proportional,
# alpha = 2 zeta omega_1) it settles at the static deflection, which beam
# theory gives as
#
#     delta = P L^3 / (3 E I) + P L / (kappa G A)      (bending + shear).
#
# Run it from the command line: `snmech simulate examples/cantilever_step_load.toml`.

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import snmech.fem  # noqa: F401  (dolfinx_solver before dolfinx)
from snmech.fem.case import run_case

HERE = Path(__file__).resolve().parent
E, NU, LENGTH, DEPTH, LOAD = 210e9, 0.3, 1.0, 0.1, 1.0e6 * 0.01


def static_tip_deflection() -> float:
    """Timoshenko cantilever under a tip force: bending plus shear (m)."""
    inertia, area = DEPTH**4 / 12, DEPTH**2
    shear_modulus = E / (2 * (1 + NU))
    return LOAD * LENGTH**3 / (3 * E * inertia) + LOAD * LENGTH / (5 / 6 * shear_modulus * area)


def main(
    out: str | Path = HERE / "../results/cantilever_step_load",
    end: float | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Run the case; return the settled, peak and beam-theory tip deflections."""
    solver, result = run_case(
        HERE / "cantilever_step_load.toml",
        output_dir=out,
        end=end,
        progress=progress,
        overwrite=True,
    )
    t, tip = result.probes["time"], -result.probes["tip"][:, 2]
    last_period = t > t[-1] - 1 / 83.5  # average out what is left of the oscillation
    settled, static = float(tip[last_period].mean()), static_tip_deflection()
    return {
        "dofs": solver.V.dofmap.index_map.size_global * solver.gdim,
        "steps": result.steps,
        "settled_tip_deflection_m": settled,
        "beam_theory_m": static,
        "ratio": settled / static,
        "peak_over_static": float(tip.max()) / static,
        "max_energy_balance_error": float(np.abs(result.energy[:, 7]).max()),
    }


if __name__ == "__main__":
    metrics = main(progress="--quiet" not in sys.argv)
    for key, value in metrics.items():
        print(f"{key:26s} {value:.6g}")
