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
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import device_info, print_table, write_json  # noqa: E402

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
    for k in keys:
        vals = [float(m[k]) for m in met]  # type: ignore[index]
        out[k] = {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals), "all": vals}
    out["max_norm_product"] = max(float(r["max_norm_product"]) for r in mine)  # type: ignore[arg-type]
    out["max_layer_norm"] = max(max(r["max_layer_norms"]) for r in mine)  # type: ignore[arg-type]
    out["seconds_per_run"] = statistics.fmean(float(r["seconds"]) for r in mine)  # type: ignore[arg-type]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="generator steps")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", default="ring8,grid25")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="gan.json")
    args = ap.parse_args()
    datasets = args.datasets.split(",")
    variants = args.variants.split(",")
    jobs = [
        {"dataset": ds, "critic": v, "steps": args.steps, "seed": s, "checkpoint_every": 0}
        for s in range(args.seeds)
        for ds in datasets
        for v in variants
    ]
    t0 = time.perf_counter()
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
            f"{ds}: {args.steps} G steps x 5 critic steps, {args.seeds} seed(s)", head, rows
        )
    _plot(runs, datasets, variants)
    for r in runs:
        r.pop("samples", None)
        r.pop("product_trace", None)
    payload = {
        "protocol": "ANCHORS.md GANs on 2D mixtures: MLP 3x128 ReLU, latent 2, 5 critic steps, "
        "batch 256, Adam 1e-4 (0.5, 0.9), VEEGAN metrics on 2500 samples",
        "steps": args.steps,
        "seeds": args.seeds,
        "wall_seconds": wall,
        "device": device_info(torch.device("cpu")),
        "summary": summary,
        "runs": runs,
    }
    print(f"\nwrote {write_json(args.out, payload)} ({wall:.0f} s wall, {args.jobs} jobs)")


if __name__ == "__main__":
    main()
