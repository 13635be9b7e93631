"""Adversarial clutter: does a spectrally normalized SE block (+ L1 on its gates) ignore it?

Feature maps with 2 informative, 3 spurious (a 90 %-reliable shortcut in
training, always a wrong class at test) and 2 noise channels (5x larger, with
offsets, at test); see snmech.robust.clutter. The same 1-Lipschitz CNN body is
trained with no SE block, an ordinary SE block and a normalized one, each with
and without the L1 gate term, over three seeds. Reports accuracy on the
training distribution (iid), under the test clutter (shift) and under PGD-l2
on the misleading channels only, and the mean gate of each channel under the
test clutter. Writes results/robust_se.json and docs/img/robust_se.png.

    OMP_NUM_THREADS=1 python benchmarks/bench_robust_se.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import device_info, print_table, write_json

from snmech._plot import pyplot, save
from snmech.robust import MarginCrossEntropy, train_classifier
from snmech.robust.clutter import (
    ClutterSpec,
    channel_gates,
    clutter_attack_accuracy,
    clutter_cnn,
    make_clutter,
)
from snmech.robust.se import SqueezeExcitation, gate_l1, se_lipschitz_bound

VARIANTS = {
    "no SE": ("none", 0.0),
    "SE": ("plain", 0.0),
    "SE + L1": ("plain", 1.0),
    "SN-SE": ("normalized", 0.0),
    "SN-SE + L1 (hybrid)": ("normalized", 1.0),
}
PGD_EPS = 16.0


def run_variant(spec, se, l1, seed, args):
    train = make_clutter(args.n_train, spec, split="train", seed=100 + seed)
    iid = make_clutter(args.n_test, spec, split="iid", seed=200 + seed)
    shift = make_clutter(args.n_test, spec, split="shift", seed=300 + seed)
    torch.manual_seed(seed)
    model = clutter_cnn(spec, se=se)
    lam = l1 * args.l1

    def penalty(m, xb):
        return lam * gate_l1(channel_gates(m, xb))

    res = train_classifier(
        model,
        train.x,
        train.y,
        MarginCrossEntropy(0.1, 10.0),
        epochs=args.epochs,
        lr=1e-2,
        seed=seed,
        penalty=penalty if lam > 0 else None,
    )
    with torch.no_grad():
        acc = {
            k: float((model(d.x).argmax(1) == d.y).double().mean())
            for k, d in (("iid", iid), ("shift", shift))
        }
        gates = channel_gates(model, shift.x).mean(0).tolist()
    gen = torch.Generator().manual_seed(seed)
    acc["pgd"] = clutter_attack_accuracy(model, iid, PGD_EPS, generator=gen)
    out = {**acc, "gates": gates, "train_cpu_s": res.cpu_seconds}
    if isinstance(model[0], SqueezeExcitation):
        # The SE bound holds on {max_c ||x_c|| <= R}; R here is the largest channel
        # norm of the training maps (a property of this data, not a proof about others).
        r = float(train.x.flatten(2).norm(dim=2).max())
        out["se_bound_R"] = r
        out["se_lipschitz_bound"] = se_lipschitz_bound(
            model[0], (spec.channels, spec.size, spec.size), channel_norm=r
        ).value
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--l1", type=float, default=0.05, help="weight of the gate L1 term")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    spec = ClutterSpec()
    roles = spec.roles
    t0 = time.perf_counter()
    results = {}
    for name, (se, l1) in VARIANTS.items():
        runs = [run_variant(spec, se, l1, s, args) for s in range(args.seeds)]
        results[name] = runs
        print(name, [round(r["shift"], 3) for r in runs], flush=True)
    rows, payload = [], {}
    for name, runs in results.items():
        mean = {k: statistics.mean(r[k] for r in runs) for k in ("iid", "shift", "pgd")}
        gates = [statistics.mean(r["gates"][c] for r in runs) for c in range(len(roles))]
        by_role = {
            role: statistics.mean(g for g, r in zip(gates, roles, strict=True) if r == role)
            for role in dict.fromkeys(roles)
        }
        bound = [r["se_lipschitz_bound"] for r in runs if "se_lipschitz_bound" in r]
        rows.append(
            [name]
            + [f"{100 * mean[k]:.1f}" for k in ("iid", "shift", "pgd")]
            + [f"{100 * min(r['shift'] for r in runs):.1f}"]
            + [f"{by_role[k]:.3f}" for k in by_role]
            + [f"{statistics.mean(bound):.3g}" if bound else "-"]
        )
        payload[name] = {
            "mean": mean,
            "gates_mean_by_channel": gates,
            "gates_mean_by_role": by_role,
            "runs": runs,
        }
    header = ["model", "iid", "shift", f"PGD {PGD_EPS:g}", "shift min"]
    header += [f"gate {k}" for k in dict.fromkeys(roles)] + ["SE Lip bound"]
    print_table(
        f"adversarial clutter, accuracy % (mean of {args.seeds} seeds); "
        "mean gate under the test clutter",
        header,
        rows,
    )
    wall = time.perf_counter() - t0
    print(f"\nwall {wall:.0f} s")
    write_json(
        "robust_se.json",
        {
            "spec": spec.__dict__,
            "roles": list(roles),
            "epochs": args.epochs,
            "seeds": args.seeds,
            "l1": args.l1,
            "pgd": f"l2 eps {PGD_EPS} on spurious+noise channels, 20 steps, 1 restart",
            "loss": "margin cross-entropy, margin 0.1, temperature 10; Adam 1e-2 cosine",
            "device": device_info(torch.device("cpu")),
            "wall_s": wall,
            "variants": payload,
        },
    )
    if not args.no_plot:
        plot(payload, roles, Path(__file__).resolve().parents[1] / "docs/img/robust_se.png")


def plot(payload, roles, path):
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.2), width_ratios=(1.6, 1))
    se_names = [n for n in payload if n != "no SE"]
    width = 0.8 / len(se_names)
    for i, name in enumerate(se_names):
        g = payload[name]["gates_mean_by_channel"]
        ax0.bar([c + (i - (len(se_names) - 1) / 2) * width for c in range(len(g))], g, width)
    short = {"informative": "info", "spurious": "spur", "noise": "noise"}
    ax0.set_xticks(range(len(roles)), [f"{short[r]} {c}" for c, r in enumerate(roles)], fontsize=7)
    ax0.set_ylabel("mean gate under test clutter")
    ax0.set_title("SE gate per input channel")
    ax0.legend(se_names, fontsize=7)
    names = list(payload)
    for j, key in enumerate(("iid", "shift", "pgd")):
        vals = [100 * payload[n]["mean"][key] for n in names]
        ax1.barh([k + (j - 1) * 0.27 for k in range(len(names))], vals, 0.27, label=key)
    ax1.set_yticks(range(len(names)), names, fontsize=7)
    ax1.set_xlabel("test accuracy (%)")
    ax1.set_xlim(0, 100)
    ax1.legend(
        ["iid", "clutter shift", f"PGD-l2 {PGD_EPS:g} on clutter"],
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
    )
    ax1.set_title("accuracy")
    save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
