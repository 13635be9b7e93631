"""Benchmark of the RecurrentLaw on J2 plasticity: held-out cyclic loops, certificates.

Trains RecurrentLaws (1 and 2 cone units) on cyclic strain paths (uniaxial,
shear and random multiaxial, several cycles, growing/decaying amplitudes) of a
J2 steel with linear isotropic hardening, and tests them on held-out paths of
another seed. Reports the per-path relative stress error (||pred - true||_F /
||true||_F over all steps; mean and max over held-out paths), the training
time, the two certificates (L / J2's elastic bound, the state map's Lipschitz
bound), and a memoryless PotentialLaw trained on the same samples (what a law
without state can do on loops). Writes benchmarks/results/recurrent_law.json
and docs/img/recurrent_loops.png.

Run: python benchmarks/bench_recurrent_law.py [--epochs N] [--paths N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _common import device_info, print_table, write_json

from snmech._plot import pyplot, save
from snmech.material import J2Plasticity, TrainingConfig, cyclic_paths, run_paths, train_law
from snmech.material.paths import paths_to_data
from snmech.material.recurrent_training import (
    RecurrentTrainingConfig,
    path_relative_errors,
    train_recurrent_law,
)

IMG = Path(__file__).parents[1] / "docs" / "img" / "recurrent_loops.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--paths", type=int, default=160)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--kinematics", default="3d")
    args = parser.parse_args()
    torch.set_num_threads(1)
    j2 = J2Plasticity(210e9, 0.3, yield_stress=250e6, hardening=5e9, kinematics=args.kinematics)
    amp = 4 * 250e6 / 210e9 * 4  # about 4-5 times the yield strain
    train_paths = cyclic_paths(
        args.kinematics, args.paths, args.steps, amp, np.random.default_rng(0)
    )
    test_paths = cyclic_paths(args.kinematics, 60, args.steps, amp, np.random.default_rng(1))
    train_stress, _ = run_paths(j2, train_paths)
    test_stress, _ = run_paths(j2, test_paths)
    out: dict[str, object] = {"device": device_info(torch.device("cpu")), "settings": vars(args)}
    rows, preds = [], {}
    for units in (1, 2):
        cfg = RecurrentTrainingConfig(units=units, epochs=args.epochs, seed=0)
        res = train_recurrent_law(
            train_paths, train_stress, args.kinematics, config=cfg, progress=False
        )
        law = res.law
        with torch.no_grad():
            pred = law.sequence(torch.as_tensor(test_paths)).numpy()
        err = path_relative_errors(pred, test_stress)
        preds[f"recurrent ({units} unit{'s' * (units > 1)})"] = pred
        entry = {
            "held_out_mean_rel_error": float(err.mean()),
            "held_out_max_rel_error": float(err.max()),
            "train_seconds": res.seconds,
            "epochs": len(res.history),
            "L_over_j2_elastic": law.lipschitz_bound() / j2.lipschitz_bound(),
            "state_lipschitz_bound": law.state_lipschitz_bound(),
        }
        out[f"recurrent_{units}"] = entry
        print(f"recurrent, {units} unit(s): {entry}", flush=True)
        rows.append(
            [
                f"RecurrentLaw, {units} unit{'s' * (units > 1)}",
                f"{100 * entry['held_out_mean_rel_error']:.2f}",
                f"{100 * entry['held_out_max_rel_error']:.2f}",
                f"{entry['train_seconds']:.0f}",
                f"{entry['L_over_j2_elastic']:.3f}",
                f"{entry['state_lipschitz_bound']:.3f}",
            ]
        )
    # A law without memory on the same samples.
    data = paths_to_data(train_paths, train_stress, args.kinematics)
    res = train_law(data, config=TrainingConfig(epochs=200, seed=0), progress=False)
    flat = test_paths.reshape(-1, test_paths.shape[2])
    pred = np.asarray(res.law.stress(flat)).reshape(test_paths.shape)
    err = path_relative_errors(pred, test_stress)
    preds["PotentialLaw (no state)"] = pred
    out["potential_no_state"] = {
        "held_out_mean_rel_error": float(err.mean()),
        "held_out_max_rel_error": float(err.max()),
        "train_seconds": res.seconds,
    }
    rows.append(
        [
            "PotentialLaw (no state)",
            f"{100 * err.mean():.2f}",
            f"{100 * err.max():.2f}",
            f"{res.seconds:.0f}",
            "-",
            "-",
        ]
    )
    print_table(
        "RecurrentLaw on J2 cyclic loops (held-out paths, relative stress error)",
        ["law", "held-out mean err %", "max err %", "train s", "L / L_J2", "state Lip"],
        rows,
    )
    print(f"wrote {write_json('recurrent_law.json', out)}")
    plot_loops(test_paths, test_stress, preds, IMG)
    print(f"wrote {IMG}")


def plot_loops(
    paths: np.ndarray, true: np.ndarray, preds: dict[str, np.ndarray], path: Path
) -> None:
    """Stress-strain loops of three held-out paths (uniaxial, shear, random)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    comps = [(0, "11"), (paths.shape[2] - 1, "12"), (0, "11")]
    for ax, i, (c, name) in zip(axes, (0, 1, 2), comps, strict=True):
        ax.plot(paths[i, :, c], true[i, :, c] / 1e6, "k-", lw=2.5, label="J2 reference")
        for (label, pred), style in zip(preds.items(), ("C0--", "C1:", "C3-."), strict=False):
            ax.plot(paths[i, :, c], pred[i, :, c] / 1e6, style, lw=1.3, label=label)
        ax.set_xlabel(f"Mandel strain {name}")
        ax.set_ylabel(f"Mandel stress {name} (MPa)")
        ax.set_title(("uniaxial strain", "shear", "random multiaxial")[i] + " (held out)")
    axes[0].legend(fontsize=7)
    save(fig, path)


if __name__ == "__main__":
    main()
