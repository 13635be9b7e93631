"""Benchmark of snmech.material: accuracy, certificate tightness, throughput.

Trains a PotentialLaw and a DirectLaw on data from the saturating reference law
(3D, random strains up to 5e-3), tests on held-out data from the same law, and
reports: relative RMSE of stress, certified bound L vs the empirical lower bound
of the trained law and vs the reference law's exact bound, training throughput
and inference throughput (points/s, float32, the FEM use). Writes
benchmarks/results/material[_cuda].json. Run: python benchmarks/bench_material.py
[--device cuda] [--epochs N]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import device_info, print_table, sync, write_json

from snmech.material import SaturatingElastic, TrainingConfig, generate_data, train_law
from snmech.material.neural import tangent_asymmetry
from snmech.material.training import relative_rmse
from snmech.spectral import lipschitz_lower_bound


def inference_rate(law: torch.nn.Module, device: torch.device, n: int = 200_000) -> float:
    law = law.to(device).float().eval()
    x = torch.randn(n, 6, device=device) * 1e-3
    with torch.no_grad():
        law(x)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(5):
            law(x)
        sync(device)
    return 5 * n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=None, help="default: each law's own")
    args = parser.parse_args()
    device = torch.device(args.device)
    ref = SaturatingElastic(210e9, 0.3)
    data = generate_data(ref, args.n, sampling="random", strain_range=5e-3, seed=0)
    test = generate_data(ref, 4000, sampling="random", strain_range=5e-3, seed=1)
    rows, out = [], {"device": device_info(device), "settings": vars(args)}
    for kind in ("potential", "direct"):
        cfg = TrainingConfig(epochs=args.epochs, device=args.device, seed=0)
        res = train_law(data, kind=kind, hidden=args.hidden, config=cfg, progress=False)
        law = res.law.exported_copy().cpu().double()
        pred = law.stress(test.strain)
        rel = relative_rmse(pred, test.stress)
        L = law.lipschitz_bound()
        lower = lipschitz_lower_bound(law, torch.as_tensor(test.strain[:128]), steps=30)
        rate = inference_rate(law.exported_copy(), device)
        entry = {
            "test_rel_rmse": rel,
            "lipschitz_bound_pa": L,
            "lower_bound_pa": lower,
            "bound_over_lower": L / lower,
            "bound_over_reference": L / ref.lipschitz_bound(),
            "train_samples_per_s": res.samples_per_second,
            "train_seconds": res.seconds,
            "inference_points_per_s": rate,
            "tangent_asymmetry": tangent_asymmetry(law, test.strain[:256]),
        }
        out[kind] = entry
        rows.append(
            [
                kind,
                f"{rel:.4f}",
                f"{L / lower:.3f}",
                f"{L / ref.lipschitz_bound():.3f}",
                f"{entry['tangent_asymmetry']:.1e}",
                f"{res.samples_per_second:,.0f}",
                f"{res.seconds:.1f}",
                f"{rate:,.0f}",
            ]
        )
    print_table(
        f"Neural laws on the saturating reference law ({args.n} samples, {args.epochs} epochs, "
        f"hidden {args.hidden}, {device}); targets: RMSE <= 0.01, L/lower <= 1.5, L/ref <= 1.5",
        [
            "law",
            "test rel RMSE",
            "L / lower",
            "L / L_ref",
            "asymmetry",
            "train samples/s",
            "train s",
            "eval points/s",
        ],
        rows,
    )
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    print(f"\nwrote {write_json(f'material{suffix}.json', out)}")


if __name__ == "__main__":
    main()
