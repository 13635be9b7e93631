"""Certified robustness on sklearn's 8x8 digits (ANCHORS.md protocol): plain vs snmech.

Trains each model on the stratified 80/20 split (random_state 0), exports it,
certifies radii margin / (sqrt(2) L) with L from lipschitz_bound, attacks with
PGD-l2 (50 steps, 5 restarts, box [0, 1]) at 0.25 / 0.5 / 1.0, and writes a
table, results/robust.json and docs/img/robust_curve.png.

    OMP_NUM_THREADS=1 python benchmarks/bench_robust.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from _common import device_info, print_table, write_json

from snmech.robust import (
    certified_accuracy_curve,
    evaluate_robustness,
    export,
    lipschitz_cnn,
    load_digits_split,
    plain_mlp,
    train_classifier,
)
from snmech.robust.losses import MarginCrossEntropy
from snmech.robust.recipe import DigitsRecipe, train_digits

EPS = (0.25, 0.5, 1.0)
SHAPE = (1, 8, 8)


def run_plain(data, epochs):
    torch.manual_seed(0)
    model = plain_mlp(64, (256, 256), 10)
    res = train_classifier(
        model, data.x_train, data.y_train, torch.nn.functional.cross_entropy, epochs=epochs
    )
    return model, res


def run_cnn(data, epochs):
    torch.manual_seed(0)
    model = lipschitz_cnn(SHAPE, (32, 64), 10)
    res = train_classifier(
        model, data.x_train, data.y_train, MarginCrossEntropy(1.0, 10.0), epochs=epochs, lr=1e-2
    )
    return model, res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = load_digits_split()
    runs = {
        "plain MLP 64-256-256-10, CE (lr 1e-3)": lambda: run_plain(data, args.epochs),
    }
    for m in (0.7, 1.0, 1.5):
        r = DigitsRecipe(margin=m, epochs=args.epochs)
        runs[f"snmech MLP 64-512-10 GS, Bjorck 3, margin CE m={m}"] = lambda r=r: train_digits(
            data, r
        )
    runs["snmech CNN 32-64 GS (true conv norms), margin CE m=1"] = lambda: run_cnn(
        data, args.epochs
    )
    rows, payload, curves = [], {}, {}
    grid = torch.linspace(0.0, 2.0, 81)
    for name, fn in runs.items():
        model, res = fn()
        exported = export(model)
        x = data.x_test
        with torch.no_grad():
            same = bool(torch.equal(model.eval()(x), exported(x)))
        rep = evaluate_robustness(exported, x, data.y_test, EPS, input_shape=SHAPE)
        curves[name] = certified_accuracy_curve(rep.radii, rep.correct, grid[1:]).tolist()
        rows.append(
            [name, f"{100 * rep.clean:.1f}"]
            + [f"{100 * c:.1f}" for c in rep.certified]
            + [f"{100 * p:.1f}" for p in rep.pgd]
            + [f"{res.cpu_seconds:.1f}", f"{rep.lipschitz:.6f}", "yes" if same else "NO"]
        )
        payload[name] = {
            "clean": rep.clean,
            "certified": dict(zip(map(str, EPS), rep.certified, strict=True)),
            "pgd": dict(zip(map(str, EPS), rep.pgd, strict=True)),
            "train_cpu_s": res.cpu_seconds,
            "train_wall_s": res.wall_seconds,
            "lipschitz_bound": rep.lipschitz,
            "export_identical": same,
        }
        print(name, rows[-1][1:], flush=True)
    header = ["model", "clean", "cert .25", "cert .5", "cert 1", "PGD .25", "PGD .5", "PGD 1"]
    print_table("digits, l2 (%)", [*header, "train CPU s", "L", "export =="], rows)
    write_json(
        "robust.json",
        {
            "protocol": "load_digits/16, test 0.2 rs 0 stratified; Adam cosine bs 128 seed 0;"
            " PGD-l2 50 steps 5 restarts box [0,1]",
            "epochs": args.epochs,
            "device": device_info(torch.device("cpu")),
            "models": payload,
            "curve_eps": grid[1:].tolist(),
            "curves": curves,
        },
    )
    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, c in curves.items():
            ax.plot(grid[1:].numpy(), [100 * v for v in c], label=name)
        ax.set_xlabel("l2 radius eps")
        ax.set_ylabel("certified accuracy (%)")
        ax.set_title("digits: certified accuracy vs radius")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        out = Path(__file__).resolve().parents[1] / "docs" / "img" / "robust_curve.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(out, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
