# # A cantilever that yields: J2 plasticity vs a trained RecurrentLaw
#
# The plane-strain cantilever of `cantilever_cyclic_plasticity.toml` carries a
# cyclic tip load of 1.3 times its first-yield load. Its root yields in each
# half cycle, plastic strain stays behind, and the tip load vs tip deflection
# curve is a hysteresis loop.
#
# 1. Sample cyclic strain paths (uniaxial, shear, random multiaxial) and run
#    them through the J2 reference law: the training data.
# 2. Train a RecurrentLaw on them. Its two certificates: the tangent at a
#    fixed state lies below C_bar = G^T G (so the explicit solver's time step is
#    certified, as for an elastic law), and the state update is non-expansive.
# 3. Run the same case with the J2 law and with the trained law in the same
#    explicit solver; compare the tip histories, the permanent set and the
#    energy dissipated, and plot the two hysteresis loops.
#
# Run: python examples/cantilever_cyclic_plasticity.py

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import snmech.fem  # noqa: F401  (dolfinx_solver before dolfinx)
from snmech._plot import pyplot, save
from snmech.fem.case import load_case, run_case
from snmech.material import J2Plasticity, cyclic_paths, run_paths, save_law
from snmech.material.recurrent_training import RecurrentTrainingConfig, train_recurrent_law

HERE = Path(__file__).resolve().parent
CASE = HERE / "cantilever_cyclic_plasticity.toml"


def reference_law() -> J2Plasticity:
    """The case file's J2 law (plane strain)."""
    m = load_case(CASE).data["material"]
    return J2Plasticity(m["E"], m["nu"], m["yield_stress"], m["hardening"], "plane_strain")


def tip_load(t: np.ndarray) -> np.ndarray:
    """Tip load (N per m of thickness) at times ``t``: traction times tip height."""
    spec = load_case(CASE).data["load"][0]
    return -spec["value"][1] * 0.1 * np.sin(2 * np.pi * spec["frequency"] * t)


def main(
    out: str | Path = HERE / "../results/cantilever_cyclic_plasticity",
    end: float | None = None,
    epochs: int = 200,
    paths: int = 96,
    progress: bool = True,
    plot: Path | None = None,
) -> dict[str, float]:
    """Train, run both laws, compare; returns the metrics."""
    out = Path(out)
    j2 = reference_law()
    strain_amp = 5 * j2.yield_stress / j2.E
    strain = cyclic_paths("plane_strain", paths, 160, strain_amp, np.random.default_rng(0))
    stress, _ = run_paths(j2, strain)
    cfg = RecurrentTrainingConfig(units=2, epochs=epochs, seed=0)
    trained = train_recurrent_law(strain, stress, "plane_strain", config=cfg, progress=progress)
    law_file = save_law(trained.law, out / "recurrent_law.safetensors", training=trained.summary())

    runs = {}
    for name, material in (("j2", None), ("recurrent", trained.law)):
        extra = {} if material is None else {"material": material}
        solver, result = run_case(
            CASE, output_dir=out / name, end=end, progress=progress, overwrite=True, **extra
        )
        runs[name] = (solver, result)
    (s_ref, r_ref), (s_nn, r_nn) = runs["j2"], runs["recurrent"]
    t = r_ref.probes["time"]
    tip_ref, tip_nn = -r_ref.probes["tip"][:, 1], -r_nn.probes["tip"][:, 1]
    n = min(len(tip_ref), len(tip_nn))
    diff = np.linalg.norm(tip_nn[:n] - tip_ref[:n]) / np.linalg.norm(tip_ref[:n])
    # Work of the internal forces at the end = stored elastic energy + plastic dissipation.
    work_ref, work_nn = r_ref.energy[-1, 3], r_nn.energy[-1, 3]
    metrics = {
        "law_val_error": trained.summary()["val_mean_path_rel_error"],
        "law_L_over_j2": trained.law.lipschitz_bound() / j2.lipschitz_bound(),
        "state_lipschitz_bound": trained.law.state_lipschitz_bound(),
        "dt_ratio": s_nn.dt / s_ref.dt,
        "steps": r_ref.steps,
        "tip_history_rel_diff": float(diff),
        "max_tip_deflection_j2_m": float(np.abs(tip_ref).max()),
        "max_tip_deflection_recurrent_m": float(np.abs(tip_nn).max()),
        "internal_work_j2_J": float(work_ref),
        "internal_work_recurrent_J": float(work_nn),
        "plastic_points_j2": int((s_ref.state[:, 6] > 0).sum()),
        "max_energy_balance_error": float(
            max(np.abs(r_ref.energy[:, 7]).max(), np.abs(r_nn.energy[:, 7]).max())
        ),
    }
    if plot is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.plot(1e3 * tip_ref, tip_load(t) / 1e3, "k-", lw=2.5, label="J2 reference")
        ax.plot(
            1e3 * tip_nn,
            tip_load(r_nn.probes["time"]) / 1e3,
            "C1--",
            lw=1.5,
            label="trained RecurrentLaw",
        )
        ax.set_xlabel("tip deflection (mm)")
        ax.set_ylabel("tip load (kN per m)")
        ax.set_title("cantilever under a cyclic tip load: plastic hysteresis")
        ax.legend()
        save(fig, plot)
    print(f"law file: {law_file}")
    return metrics


if __name__ == "__main__":
    image = HERE.parent / "docs" / "img" / "cantilever_hysteresis.png"
    metrics = main(progress="--quiet" not in sys.argv, plot=image)
    for key, value in metrics.items():
        print(f"{key:32s} {value:.6g}")
