"""Certified robustness on sklearn's 8x8 digits (ANCHORS.md protocol): plain, snmech, peers.

Trains each model on the stratified 80/20 split (random_state 0), exports it,
certifies it with snmech's certifier (pairwise radii min_j (z_c - z_j) /
(||W_c - W_j|| Lip(features)), never below the protocol's margin / (sqrt(2) L);
both are in the JSON), attacks with PGD-l2 (50 steps, 5 restarts, box [0, 1])
at 0.25 / 0.5 / 1.0, and writes a table, results/robust.json and
docs/img/robust_curve.png. deel-torchlip and orthogonium run in the same
script when installed (pip install snmech[bench]), else their rows say
"skipped (not installed)". Last, the default and the plain MLP train in turn
--time-pairs times (default 5) for the median ratio of their CPU times.

--epochs is the protocol's 150 for the plain MLP, the peers and the MLP rows;
the CPL rows train their recipe's 135 (Note [Epochs] in snmech.robust.recipe),
scaled in proportion when --epochs is changed.

--device cuda trains and evaluates the plain and snmech rows on the GPU and
writes results/robust_cuda.json (no peers, no figure); its times and ratios
are wall-clock, since CPU time says little of GPU work.

    OMP_NUM_THREADS=1 python benchmarks/bench_robust.py
    python benchmarks/bench_robust.py --device cuda --time-pairs 3
    python benchmarks/bench_robust.py --plot-from benchmarks/results/robust.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch
from _common import device_info, print_table, write_json
from bench_robust_peers import available as available_peers

from snmech._plot import pyplot, save
from snmech.robust import (
    certified_accuracy_curve,
    certify,
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
PROTOCOL_EPOCHS = 150  # ANCHORS.md


def cpl_epochs(epochs: int) -> int:
    """The CPL recipe's epoch count for a run whose protocol length is ``epochs``."""
    return max(1, round(DigitsRecipe().epochs * epochs / PROTOCOL_EPOCHS))


def seconds(res, device: torch.device) -> float:
    """The training time compared: CPU time on the CPU, wall-clock time on a GPU."""
    return res.cpu_seconds if device.type == "cpu" else res.wall_seconds


def train_plain(data, epochs, device):
    """The plain MLP 64-256-256-10 trained with cross-entropy (seed 0): ``(model, result)``."""
    torch.manual_seed(0)
    model = plain_mlp(64, (256, 256), 10)
    res = train_classifier(
        model,
        data.x_train,
        data.y_train,
        torch.nn.functional.cross_entropy,
        epochs=epochs,
        device=device,
    )
    return model, res


def run_plain(data, epochs, device):
    # twice, keeping the faster: the first training in a process pays one-off
    # start-up costs that would flatter every ratio to it
    model, res = min(
        (train_plain(data, epochs, device) for _ in range(2)),
        key=lambda r: seconds(r[1], device),
    )
    return model, res, export(model)


def run_snmech(data, recipe, device):
    model, res = train_digits(data, recipe, device=device)
    return model, res, export(model)


def run_cnn(data, epochs, device):
    torch.manual_seed(0)
    model = lipschitz_cnn(SHAPE, (32, 64), 10)
    res = train_classifier(
        model,
        data.x_train,
        data.y_train,
        MarginCrossEntropy(1.0, 10.0),
        epochs=epochs,
        lr=1e-2,
        device=device,
    )
    return model, res, export(model)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=PROTOCOL_EPOCHS)
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--plot-from", help="redraw the figure from a results JSON and exit")
    ap.add_argument(
        "--time-pairs",
        type=int,
        default=5,
        help="interleaved (plain, default) trainings for the median CPU-time ratio (0: skip)",
    )
    args = ap.parse_args(argv)
    if args.plot_from:
        saved = json.loads(Path(args.plot_from).read_text())
        plot_curves(saved["curve_eps"], saved["curves"])
        return
    torch.set_num_threads(1)
    dev = torch.device(args.device)
    on_cpu = dev.type == "cpu"
    data = load_digits_split()
    runs = {"plain MLP 64-256-256-10, CE (lr 1e-3)": lambda: run_plain(data, args.epochs, dev)}
    default = DigitsRecipe(epochs=cpl_epochs(args.epochs))
    cpl = f"snmech CPL {default.depth}x{default.width}, unit-row head"
    mlp = DigitsRecipe.for_model("mlp", epochs=args.epochs)
    far = f"far margins m={default.margin}/{default.far_margin}"
    soft = f"soft cert. acc. at {default.far_soft_radius}"
    recipes = {  # every snmech row trained by train_digits, with its recipe in the JSON
        f"{cpl}, centred, {far} + {soft} W={default.far_soft_weight}, NAdam, EMA (default)": (
            default
        ),
        f"{cpl}, {far}, Adam (the earlier default)": replace(
            default, centered=False, optimizer="adam", far_soft_weight=0.0, ema_decay=0.0
        ),
        f"{cpl}, centred, pair CE m={default.margin}, NAdam, EMA": replace(
            default, far_weight=0.0, far_soft_weight=0.0
        ),
        f"{cpl}, centred, {far} + {soft} W=0.3, NAdam, EMA": replace(default, far_soft_weight=0.3),
    }
    for m in (0.6, 0.8, 1.0):
        recipes[f"snmech MLP 64-512-10 MaxMin, unit-row head, pair CE m={m}"] = replace(
            mlp, margin=m
        )
    recipes["snmech MLP 64-512-10 GS, orthogonal head, margin CE m=0.7"] = replace(
        mlp, activation="groupsort", head="orthogonal", margin=0.7
    )
    for name, recipe in recipes.items():
        runs[name] = lambda recipe=recipe: run_snmech(data, recipe, dev)
    runs["snmech CNN 32-64 GS (true conv norms), margin CE m=1"] = lambda: run_cnn(
        data, args.epochs, dev
    )
    skipped = []
    if not args.no_peers and on_cpu:
        for name, fn in available_peers().items():
            if fn is None:
                skipped.append(name)
            else:
                runs[name] = lambda fn=fn: fn(data, args.epochs)
    rows, payload, curves = [], {}, {}
    grid = torch.linspace(0.0, 2.0, 81)
    plain_s = None
    x, y = data.x_test.to(dev), data.y_test.to(dev)
    for name, fn in runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # peers' "not a Lipschitz layer" notes
            model, res, exported = fn()
        train_s = seconds(res, dev)
        plain_s = plain_s or train_s
        with torch.no_grad():
            drift = float((model.eval()(x) - exported(x)).abs().max())
        rep = evaluate_robustness(exported, x, y, EPS, input_shape=SHAPE)
        glob = certify(exported, x, y, input_shape=SHAPE, pairwise=False)
        curves[name] = certified_accuracy_curve(rep.radii, rep.correct, grid[1:]).tolist()
        ratio = train_s / plain_s
        rows.append(
            [name, f"{100 * rep.clean:.1f}"]
            + [f"{100 * c:.1f}" for c in rep.certified]
            + [f"{100 * glob.accuracy(e):.1f}" for e in EPS]
            + [f"{100 * p:.1f}" for p in rep.pgd]
            + [f"{train_s:.1f}", f"{ratio:.1f}", f"{rep.lipschitz:.4f}"]
            + ["yes" if drift == 0 else f"{drift:.0e}"]
        )
        payload[name] = {
            "clean": rep.clean,
            "certified": dict(zip(map(str, EPS), rep.certified, strict=True)),
            "certified_global": {str(e): glob.accuracy(e) for e in EPS},
            "pgd": dict(zip(map(str, EPS), rep.pgd, strict=True)),
            "train_cpu_s": res.cpu_seconds,
            "train_wall_s": res.wall_seconds,
            ("cpu" if on_cpu else "wall") + "_ratio_to_plain": ratio,
            "lipschitz_bound": rep.lipschitz,
            "export_identical": drift == 0,
            "export_max_abs_diff": drift,
        }
        if name in recipes:
            payload[name]["recipe"] = asdict(recipes[name])
        print(name, rows[-1][1:], flush=True)
    for name in skipped:
        rows.append([name, "skipped (not installed)"] + [""] * 12)
        payload[name] = "skipped (not installed)"
    header = ["model", "clean", "cert .25", "cert .5", "cert 1"]
    header += ["glob .25", "glob .5", "glob 1", "PGD .25", "PGD .5", "PGD 1"]
    header += ["train CPU s" if on_cpu else "train wall s", "x plain", "L (global)", "export =="]
    print_table(
        "digits, l2 (%); cert = pairwise certificate, glob = margin / (sqrt2 L)", header, rows
    )
    for name in skipped:
        print(f"{name}: skipped (not installed)")
    results = {
        "time_ratio_default_to_plain": None,
        "protocol": "load_digits/16, test 0.2 rs 0 stratified; Adam (snmech CPL: NAdam)"
        " cosine bs 128 seed 0; epochs (snmech CPL: epochs_cpl);"
        " PGD-l2 50 steps 5 restarts box [0,1]; lr 2e-2 for snmech CPL, 1e-2 for snmech"
        " MLP/CNN, 1e-3 otherwise; plain MLP time: the faster of two runs",
        "clock": "process CPU time" if on_cpu else "wall-clock time",
        "certificate": "certified: pairwise radii (never below global);"
        " certified_global: margin / (sqrt(2) L)",
        "epochs": args.epochs,
        "epochs_cpl": default.epochs,
        "device": device_info(dev),
        "models": payload,
        "curve_eps": grid[1:].tolist(),
        "curves": curves,
    }
    json_name = "robust.json" if on_cpu else f"robust_{dev.type}.json"
    write_json(json_name, results)  # now, so that a run stopped during the timing keeps the table
    if not args.no_plot and on_cpu:
        plot_curves(grid[1:].tolist(), curves)
    if args.time_pairs:
        timing = time_ratio(data, default, args.epochs, args.time_pairs, dev)
        low, high = min(timing["ratios"]), max(timing["ratios"])
        clock = "CPU" if on_cpu else "wall-clock"
        print(
            f"default / plain training {clock} time, median of {args.time_pairs} "
            f"interleaved pairs: {timing['median']:.2f}x (range {low:.2f}-{high:.2f})"
        )
        write_json(json_name, {**results, "time_ratio_default_to_plain": timing})


def time_ratio(data, recipe, epochs, pairs, device):
    """The default's training time over the plain MLP's, trained in turn ``pairs`` times.

    One run each is at the mercy of the machine's moment (20-40 % swings on a
    shared 2-core VM); alternating the two and taking the median of the
    ratios compares them under the same conditions.
    """
    ratios = []
    for _ in range(pairs):
        _, plain = train_plain(data, epochs, device)
        _, res = train_digits(data, recipe, device=device)
        ratios.append(seconds(res, device) / seconds(plain, device))
    return {"pairs": pairs, "ratios": ratios, "median": statistics.median(ratios)}


def plot_curves(eps: list[float], curves: dict[str, list[float]]) -> None:
    """docs/img/robust_curve.png: certified accuracy vs radius, the default drawn thick."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6.4))
    colors = plt.get_cmap("tab20").colors
    for i, (name, c) in enumerate(curves.items()):
        default = "(default)" in name
        ax.plot(
            eps,
            [100 * v for v in c],
            label=name,
            color="black" if default else colors[(2 * i) % 20 + (i // 10)],
            lw=2.4 if default else 1.2,
            zorder=3 if default else 2,
        )
    ax.set_xlabel("l2 radius eps")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_title("digits: certified accuracy vs radius (pairwise certificate)")
    ax.grid(alpha=0.3)
    # below the axes: the curves fill the upper left, the names are long
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)
    save(fig, Path(__file__).resolve().parents[1] / "docs" / "img" / "robust_curve.png")


if __name__ == "__main__":
    sys.exit(main())
