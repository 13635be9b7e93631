"""GANs on PacGAN's mixtures (and digits): every critic variant in the same loop and budget.

Protocol (ANCHORS.md, "GANs on 2D mixtures"): MLP generator and critic, 3 x 128
ReLU, 2-D latent, G steps x 5 critic steps, batch 256, Adam 1e-4 (0.5, 0.9);
VEEGAN metrics on 2500 samples. Losses: hinge for the two spectral critics,
Wasserstein for clipping and GP, non-saturating without normalization (the
peers' table). The exact norm of every critic layer is measured at every
critic step (snmech.spectral.operator_norm, float64) and the maximum over
steps of their product reported. Runs go to ``--jobs`` worker processes, one
thread each.

Usage::

    python benchmarks/bench_gan.py                       # 2000 G steps, 3 seeds, all variants
    python benchmarks/bench_gan.py --steps 200 --seeds 1 # quick look
    # add seeds 1 and 2 of three variants to results/gan.json, keeping every other run
    python benchmarks/bench_gan.py --seed-list 1,2 --variants clip,gp,none --merge

With ``--merge`` each finished run is added to the existing JSON at once (a run
with the same dataset, critic, seed and steps is replaced, all others and all
other keys are kept) and the summary is recomputed over every stored run of the
protocol, including those under other keys' ``runs`` (e.g. earlier 3-seed runs).
It does not redraw the plots: they need samples, which the JSON does not keep
(the plots show seed 0 from a full run).

The long runs of the quality targets (under 10 CPU minutes each) use fewer
critic steps per G step, add a generator weight average and a final
learning-rate decay, and record the exact norms every 10th or 20th critic step
(the normalization divides by a proven bound at every step, Note [Certified
critic])::

    python benchmarks/bench_gan.py --datasets ring8 --variants sn --steps 24000 --n-critic 1 \
        --ema 0.999 --lr-decay 0.3 --record-every 10 --seed-list 0,1,2 --merge --key ring8_quality
    # grid25: two critic steps for the first 30 % of the steps, then one; the critic
    # at twice the generator's rate
    python benchmarks/bench_gan.py --datasets grid25 --variants sn --steps 44000 --n-critic 2 \
        --late-n-critic 1 --late-from 0.3 --lr 2e-4 --critic-lr 4e-4 --ema 0.999 \
        --lr-decay 0.3 --record-every 20 --seed-list 0,1,2 --merge --key grid25_quality_g

With ``--merge --key NAME`` the runs go under ``NAME`` instead (its own ``runs``,
``steps`` and per-variant ``summary``; nothing else in the JSON is touched), and
digits runs also draw ``docs/img/gan_<NAME>.png`` (64 samples per variant)::

    python benchmarks/bench_gan.py --datasets digits --steps 1500 --seed-list 0 \
        --merge --key digits_1500_steps
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import OUT_DIR, device_info, print_table, write_json  # noqa: E402

VARIANTS = ("sn", "torch-sn", "clip", "gp", "none")
IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def _one(job: dict[str, object]) -> dict[str, object]:
    torch.set_num_threads(1)
    from snmech.gan import GANConfig, train_gan

    cfg = GANConfig(**job)  # type: ignore[arg-type]
    run = train_gan(cfg)
    with torch.no_grad():
        z = torch.randn(2500, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 3))
        samples = run.generator(z)
    out = run.as_dict()
    out["samples"] = samples[:1000].tolist() if cfg.dataset != "digits" else samples[:64].tolist()
    out["product_trace"] = run.product_trace
    return out


def _summary(runs: list[dict[str, object]], dataset: str, variant: str) -> dict[str, object]:
    mine = [
        r for r in runs if r["config"]["dataset"] == dataset and r["config"]["critic"] == variant
    ]  # type: ignore[index]
    met = [r["metrics"] for r in mine]
    keys = met[0].keys()  # type: ignore[union-attr]
    out: dict[str, object] = {"seeds": len(mine)}
    out["seed_ids"] = sorted(int(r["config"]["seed"]) for r in mine)  # type: ignore[index]
    for k in keys:
        vals = [float(m[k]) for m in met]  # type: ignore[index]
        out[k] = {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals), "all": vals}
    out["max_norm_product"] = max(float(r["max_norm_product"]) for r in mine)  # type: ignore[arg-type]
    out["max_layer_norm"] = max(max(r["max_layer_norms"]) for r in mine)  # type: ignore[arg-type]
    out["seconds_per_run"] = statistics.fmean(float(r["seconds"]) for r in mine)  # type: ignore[arg-type]
    cpu = [float(r["cpu_seconds"]) for r in mine if "cpu_seconds" in r]  # type: ignore[arg-type]
    if cpu:  # runs stored before CPU time was recorded have none
        out["cpu_seconds_max"] = max(cpu)
    cert = [r["certificate"] for r in mine if r["certificate"] is not None]
    out["certificate_max"] = max(cert) if cert else None  # type: ignore[type-var]
    return out


def _plot(runs: list[dict[str, object]], datasets: list[str], variants: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snmech.gan import mixture

    for ds in [d for d in datasets if d != "digits"]:
        fig, axes = plt.subplots(1, len(variants), figsize=(2.6 * len(variants), 2.8))
        modes = mixture(ds).modes
        for ax, v in zip(axes, variants, strict=True):
            r = next(r for r in runs if r["config"]["dataset"] == ds and r["config"]["critic"] == v)  # type: ignore[index]
            x = torch.tensor(r["samples"])
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
            ax.scatter(modes[:, 0], modes[:, 1], s=12, marker="x", color="tab:red")
            m = r["metrics"]
            ax.set_title(f"{v}: {m['modes']}/{m['n_modes']}, HQ {m['hq_percent']:.0f}%", fontsize=8)  # type: ignore[index]
            lim = 1.5 if ds == "ring8" else 5.5
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{ds}, seed 0, {runs[0]['config']['steps']} G steps", fontsize=9)  # type: ignore[index]
        fig.tight_layout()
        fig.savefig(IMG / f"gan_{ds}.png", dpi=110)
        plt.close(fig)
    # the certification claim: exact product of layer norms at every step
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ds0 = datasets[0]
    for v in ("sn", "torch-sn"):
        r = next(
            (r for r in runs if r["config"]["dataset"] == ds0 and r["config"]["critic"] == v), None
        )  # type: ignore[index]
        if r is not None:
            ax.plot(r["product_trace"], lw=0.7, label=f"{v} (max {r['max_norm_product']:.4f})")
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="target")
    ax.set_xlabel("generator step")
    ax.set_ylabel("exact product of critic layer norms")
    ax.set_title(f"{ds0}, seed 0: max over each step's 5 critic steps", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(IMG / "gan_norms.png", dpi=110)
    plt.close(fig)


def _key(run: dict[str, object]) -> tuple[object, ...]:
    c = run["config"]
    return (c["dataset"], c["critic"], c["seed"], c["steps"])  # type: ignore[index]


def _stored_runs(payload: dict[str, object], steps: int) -> list[dict[str, object]]:
    """Every run of the protocol in ``payload`` (top level and other keys' ``runs``), once."""
    pools = [payload.get("runs", [])]
    pools += [v["runs"] for v in payload.values() if isinstance(v, dict) and "runs" in v]
    seen: dict[tuple[object, ...], dict[str, object]] = {}
    for pool in pools:
        for r in pool:  # type: ignore[union-attr]
            if r["config"]["steps"] == steps and r["config"]["dataset"] in ("ring8", "grid25"):
                seen.setdefault(_key(r), r)
    return list(seen.values())


def _merge(path: Path, run: dict[str, object], steps: int) -> dict[str, object]:
    """Add ``run`` to the JSON at ``path`` (replacing only the same key) and rewrite its summary."""
    payload = json.loads(path.read_text())
    runs = [r for r in payload["runs"] if _key(r) != _key(run)]
    runs.append(run)
    payload["runs"] = runs
    stored = _stored_runs(payload, steps)
    pairs = sorted({(r["config"]["dataset"], r["config"]["critic"]) for r in stored})  # type: ignore[index]
    summary: dict[str, dict[str, object]] = {}
    for ds in ("ring8", "grid25"):
        for v in VARIANTS:
            if (ds, v) in pairs:
                summary.setdefault(ds, {})[v] = _summary(stored, ds, v)
    payload["summary"] = summary
    payload["seeds"] = min(int(s["seeds"]) for d in summary.values() for s in d.values())  # type: ignore[call-overload]
    payload["summary_note"] = (
        "summary over every stored run of this protocol (top-level runs and other keys' runs); "
        "'seeds' per variant is how many seeds it has"
    )
    path.write_text(json.dumps(payload, indent=2, sort_keys=False))
    return payload


def _merge_key(path: Path, key: str, run: dict[str, object], steps: int) -> None:
    """Add ``run`` under ``payload[key]`` (same-key runs replaced); rewrite that key's summary."""
    payload = json.loads(path.read_text())
    entry = payload.setdefault(key, {"steps": steps, "runs": []})
    if entry.get("steps", steps) != steps:
        raise SystemExit(f"--key {key} holds runs of {entry['steps']} steps, not {steps}")
    entry["steps"] = steps
    runs = [r for r in entry["runs"] if _key(r) != _key(run)]
    runs.append(run)
    entry["runs"] = runs
    pairs = {(r["config"]["dataset"], r["config"]["critic"]) for r in runs}  # type: ignore[index]
    entry["summary"] = {
        ds: {v: _summary(runs, ds, v) for v in VARIANTS if (ds, v) in pairs}
        for ds in sorted({d for d, _ in pairs})
    }
    entry["device"] = device_info(torch.device("cpu"))
    path.write_text(json.dumps(payload, indent=2, sort_keys=False))


def _plot_digits(samples: dict[str, list[object]], title: str, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vs = [v for v in VARIANTS if v in samples]
    fig, axes = plt.subplots(1, len(vs), figsize=(2.4 * len(vs), 2.7), squeeze=False)
    for ax, v in zip(axes[0], vs, strict=True):
        x = torch.tensor(samples[v]).reshape(-1, 8, 8)[:64]
        grid = x.reshape(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(64, 64)
        ax.imshow(grid.numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(v, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(IMG / f"gan_{name}.png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="generator steps")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", default="ring8,grid25")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="gan.json")
    ap.add_argument(
        "--seed-list", default=None, help="explicit seeds, e.g. 1,2 (overrides --seeds)"
    )
    ap.add_argument(
        "--merge", action="store_true", help="add each finished run to the existing --out JSON"
    )
    ap.add_argument(
        "--key", default=None, help="with --merge: store the runs under this top-level key"
    )
    ap.add_argument("--n-critic", type=int, default=5, help="critic steps per G step")
    ap.add_argument(
        "--late-n-critic", type=int, default=0, help="critic steps from --late-from on (0: off)"
    )
    ap.add_argument("--late-from", type=float, default=0.5, help="fraction where it starts")
    ap.add_argument("--lr", type=float, default=1e-4, help="Adam lr (the generator's)")
    ap.add_argument("--critic-lr", type=float, default=None, help="the critic's lr (default --lr)")
    ap.add_argument("--ema", type=float, default=0.0, help="generator weight average (0: off)")
    ap.add_argument(
        "--lr-decay", type=float, default=0.0, help="final fraction with a linear lr decay"
    )
    ap.add_argument(
        "--record-every", type=int, default=1, help="critic steps between exact norm records"
    )
    args = ap.parse_args()
    datasets = args.datasets.split(",")
    variants = args.variants.split(",")
    seeds = (
        [int(s) for s in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    )
    jobs = [
        {
            "dataset": ds,
            "critic": v,
            "steps": args.steps,
            "seed": s,
            "checkpoint_every": 0,
            "n_critic": args.n_critic,
            "late_n_critic": args.late_n_critic,
            "late_from": args.late_from,
            "lr": args.lr,
            "critic_lr": args.critic_lr,
            "ema": args.ema,
            "lr_decay": args.lr_decay,
            "record_every": args.record_every,
        }
        for s in seeds
        for ds in datasets
        for v in variants
    ]
    t0 = time.perf_counter()
    if args.merge:
        path = OUT_DIR / args.out
        if args.key is None and json.loads(path.read_text())["steps"] != args.steps:
            ap.error(f"--merge: {path} holds another protocol (steps), not {args.steps}")
        digit_samples: dict[tuple[int, str], list[object]] = {}
        with ProcessPoolExecutor(args.jobs) as pool:
            futs = {pool.submit(_one, j): j for j in jobs}
            for fut in as_completed(futs):
                r = fut.result()
                c = r["config"]
                samples = r.pop("samples", None)
                r.pop("product_trace", None)
                if c["dataset"] == "digits":  # type: ignore[index]
                    digit_samples[(c["seed"], c["critic"])] = samples  # type: ignore[index]
                if args.key is None:
                    _merge(path, r, args.steps)
                else:
                    _merge_key(path, args.key, r, args.steps)
                m = r["metrics"]
                score = (
                    f"{m['classes']} classes, Frechet {m['frechet']:.2f}"  # type: ignore[index]
                    if c["dataset"] == "digits"  # type: ignore[index]
                    else f"{m['modes']} modes, HQ {m['hq_percent']:.2f} %, "  # type: ignore[index]
                    f"rKL {m['reverse_kl']:.3f}"  # type: ignore[index]
                )
                print(
                    f"merged {c['dataset']} {c['critic']} seed {c['seed']}: {score}, "  # type: ignore[index]
                    f"max prod {r['max_norm_product']:.6f}, {r['seconds']:.0f} s wall, "
                    f"{r['cpu_seconds']:.0f} s CPU",
                    flush=True,
                )
        if args.key is not None and digit_samples:
            seed0 = min(s for s, _ in digit_samples)
            _plot_digits(
                {v: x for (s, v), x in digit_samples.items() if s == seed0},
                f"digits, seed {seed0}, {args.steps} G steps",
                args.key,
            )
        print(f"\nmerged {len(jobs)} runs into {path} ({time.perf_counter() - t0:.0f} s wall)")
        return
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(_one, jobs))
    wall = time.perf_counter() - t0
    summary = {ds: {v: _summary(runs, ds, v) for v in variants} for ds in datasets}
    for ds in datasets:
        rows = []
        for v in variants:
            s = summary[ds][v]
            if ds == "digits":
                cells = [
                    f"{s['classes']['mean']:.1f} ({s['classes']['min']:.0f})",
                    f"{s['frechet']['mean']:.2f}",
                    f"{s['class_kl']['mean']:.3f}",
                ]
            else:
                cells = [
                    f"{s['modes']['mean']:.2f} ({s['modes']['min']:.0f})",
                    f"{s['hq_percent']['mean']:.1f} ({s['hq_percent']['min']:.1f})",
                    f"{s['reverse_kl']['mean']:.3f}",
                ]
            rows.append([v, *cells, f"{s['max_norm_product']:.4f}", f"{s['seconds_per_run']:.0f}"])
        head = (
            ["variant", "classes", "Frechet", "class KL", "max prod ||W||", "s/run"]
            if ds == "digits"
            else [
                "variant",
                "modes mean (min)",
                "HQ % mean (min)",
                "rKL",
                "max prod ||W||",
                "s/run",
            ]
        )
        print_table(
            f"{ds}: {args.steps} G steps x 5 critic steps, {len(seeds)} seed(s)", head, rows
        )
    _plot(runs, datasets, variants)
    for r in runs:
        r.pop("samples", None)
        r.pop("product_trace", None)
    payload = {
        "protocol": "ANCHORS.md GANs on 2D mixtures: MLP 3x128 ReLU, latent 2, 5 critic steps, "
        "batch 256, Adam 1e-4 (0.5, 0.9), VEEGAN metrics on 2500 samples",
        "steps": args.steps,
        "seeds": len(seeds),
        "wall_seconds": wall,
        "device": device_info(torch.device("cpu")),
        "summary": summary,
        "runs": runs,
    }
    print(f"\nwrote {write_json(args.out, payload)} ({wall:.0f} s wall, {args.jobs} jobs)")


if __name__ == "__main__":
    main()
