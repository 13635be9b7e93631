"""Benchmark of snmech.spectral against no normalization, torch's spectral_norm and deel-torchlip.

Prints tables and writes benchmarks/results/spectral[_<device>].json. All ratios are
measured in the same process, round-robin. Run: python benchmarks/bench_spectral.py
[--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time

import torch
import torch.nn.functional as F
from _common import device_info, print_table, time_interleaved, write_json
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from snmech.spectral import finalize, lipschitz_bound, operator_norm, spectral_norm
from snmech.spectral._conv import conv_adjoint, conv_apply
from snmech.spectral._power import normalize

HAVE_TORCHLIP = importlib.util.find_spec("deel") is not None and (
    importlib.util.find_spec("deel.torchlip") is not None
)


def mlp(kind: str, device: torch.device) -> nn.Module:
    sizes = [6, 128, 128, 128, 6]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if kind == "torchlip":
            from deel import torchlip

            layer: nn.Module = torchlip.SpectralLinear(a, b)
        else:
            layer = nn.Linear(a, b)
            if kind == "snmech":
                layer = spectral_norm(layer)
            elif kind == "torch":
                layer = torch_spectral_norm(layer)
        layers.append(layer)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).to(device)


def cnn(kind: str, device: torch.device) -> nn.Module:
    def conv(cin: int, cout: int, stride: int, n: int) -> nn.Module:
        if kind == "torchlip":
            from deel import torchlip

            return torchlip.SpectralConv2d(cin, cout, 3, stride=stride, padding=1)
        layer = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        if kind == "snmech":
            return spectral_norm(layer, input_shape=(cin, n, n))
        if kind == "torch":
            return torch_spectral_norm(layer)
        return layer

    return nn.Sequential(
        conv(3, 16, 1, 32),
        nn.ReLU(),
        conv(16, 32, 2, 32),
        nn.ReLU(),
        conv(32, 32, 2, 16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    ).to(device)


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        value = F.mse_loss(out, y) if loss == "mse" else F.cross_entropy(out, y)
        value.backward()
        opt.step()

    return step


def bench_steps(device: torch.device, quick: bool) -> dict[str, object]:
    kinds = ["none", "snmech", "torch"] + (["torchlip"] if HAVE_TORCHLIP else [])
    torch.manual_seed(0)
    x = torch.randn(4096, 6, device=device)
    y = torch.randn(4096, 6, device=device)
    fns = {k: train_step_fn(mlp(k, device), x, y, "mse") for k in kinds}
    mlp_times = time_interleaved(fns, device, repeats=5 if quick else 15, inner=10)
    xi = torch.randn(64, 3, 32, 32, device=device)
    yi = torch.randint(0, 10, (64,), device=device)
    fns = {k: train_step_fn(cnn(k, device), xi, yi, "ce") for k in kinds}
    cnn_times = time_interleaved(fns, device, repeats=3 if quick else 9, inner=3)
    rows = []
    for k in kinds:
        rows.append(
            [
                k,
                f"{mlp_times[k] * 1e3:.3f}",
                f"{mlp_times[k] / mlp_times['none']:.3f}",
                f"{cnn_times[k] * 1e3:.2f}",
                f"{cnn_times[k] / cnn_times['none']:.3f}",
            ]
        )
    print_table(
        f"Training step on {device} (MLP 6-128-128-128-6 batch 4096; CNN 3-16-32-32 on 32x32, "
        "batch 64); median of round-robin repeats",
        ["normalization", "MLP ms", "MLP / none", "CNN ms", "CNN / none"],
        rows,
    )
    return {
        "mlp_step_s": mlp_times,
        "cnn_step_s": cnn_times,
        "mlp_ratio_vs_none": {k: mlp_times[k] / mlp_times["none"] for k in kinds},
        "mlp_ratio_vs_torch": mlp_times["snmech"] / mlp_times["torch"],
        "cnn_ratio_vs_none": {k: cnn_times[k] / cnn_times["none"] for k in kinds},
    }


@torch.no_grad()
def true_conv_norm(conv: nn.Conv2d, shape: tuple[int, ...], steps: int) -> float:
    """Reference: power iteration through conv / conv_transpose in float64, many steps."""
    c = conv.double()
    v = normalize(torch.randn(1, *shape, dtype=torch.float64))
    sigma = 0.0
    for _ in range(steps):
        u = conv_apply(c, c.weight, v)
        sigma = float(torch.linalg.vector_norm(u))
        v = normalize(conv_adjoint(c, c.weight, u, shape))
    conv.float()
    return sigma


def bench_conv_bounds(quick: bool) -> dict[str, object]:
    rows, out = [], {}
    steps = 300 if quick else 2000
    for stride in (1, 2):
        ratios: dict[str, list[float]] = {
            "flat (torch)": [],
            "ceil(k/s) x flat (torchlip)": [],
            "snmech FFT bound": [],
        }
        cost = {}
        for seed in range(3 if quick else 5):
            torch.manual_seed(seed)
            conv = nn.Conv2d(16, 32, 3, stride=stride, padding=1)
            shape = (16, 32, 32)
            true = true_conv_norm(conv, shape, steps)
            flat = float(torch.linalg.matrix_norm(conv.weight.detach().double().flatten(1), 2))
            t0 = time.perf_counter()
            fft = operator_norm(conv, shape)
            cost["snmech FFT bound"] = time.perf_counter() - t0
            ratios["flat (torch)"].append(flat / true)
            ratios["ceil(k/s) x flat (torchlip)"].append(math.ceil(3 / stride) * flat / true)
            ratios["snmech FFT bound"].append(fft / true)
        for name, r in ratios.items():
            valid = "yes" if min(r) >= 1 - 1e-9 else "NO (under-estimates)"
            rows.append(
                [
                    name,
                    stride,
                    f"{min(r):.4f}-{max(r):.4f}",
                    valid,
                    f"{cost[name] * 1e3:.1f}" if name in cost else "-",
                ]
            )
            out[f"stride{stride}/{name}"] = {"min": min(r), "max": max(r)}
    print_table(
        "Conv 3x3 16->32 on 32x32, zero padding 1: value / true operator norm",
        ["method", "stride", "ratio", "upper bound?", "ms"],
        rows,
    )
    return out


def bench_overshoot(device: torch.device) -> dict[str, object]:
    """MLP 6-64-64-6 tanh, 50 Adam steps at lr 1e-2, one power iteration (ANCHORS protocol)."""
    torch.manual_seed(0)
    x, y = torch.randn(512, 6, device=device), torch.randn(512, 6, device=device)
    results = {}
    for kind in ("torch", "snmech"):
        torch.manual_seed(0)
        wrap = torch_spectral_norm if kind == "torch" else spectral_norm
        net = nn.Sequential(
            wrap(nn.Linear(6, 64)),
            nn.Tanh(),
            wrap(nn.Linear(64, 64)),
            nn.Tanh(),
            wrap(nn.Linear(64, 6)),
        ).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        worst = 0.0
        for _ in range(50):
            opt.zero_grad()
            F.mse_loss(net(x), y).backward()
            opt.step()
            net.eval()
            worst = max(worst, max(operator_norm(net[i].weight) for i in (0, 2, 4)))
            net.train()
        net.eval()
        entry = {"max_layer_norm_during_training": worst}
        if kind == "snmech":
            finalize(net)
            exact = [operator_norm(net[i].weight) for i in (0, 2, 4)]
            cert = lipschitz_bound(net).value
            entry.update(
                layer_norms_after_finalize=exact,
                certificate=cert,
                certificate_minus_product_of_exact_norms=cert - math.prod(exact),
            )
        results[kind] = entry
    rows = [
        [
            "torch spectral_norm",
            f"{results['torch']['max_layer_norm_during_training']:.4f}",
            "-",
            "-",
        ],
        [
            "snmech spectral_norm",
            f"{results['snmech']['max_layer_norm_during_training']:.4f}",
            f"{max(results['snmech']['layer_norms_after_finalize']):.12f}",
            f"{results['snmech']['certificate']:.12f}",
        ],
    ]
    print_table(
        "Exact layer norms, MLP 6-64-64-6, 50 Adam steps lr 1e-2 (target 1)",
        ["method", "max during training", "max after finalize", "certificate"],
        rows,
    )
    return results


def bench_certify_cnn(device: torch.device) -> dict[str, float]:
    net = cnn("snmech", device).eval()
    t0 = time.perf_counter()
    finalize(net)
    t1 = time.perf_counter()
    cert = lipschitz_bound(net, (3, 32, 32))
    t2 = time.perf_counter()
    print(
        f"\nfinalize CNN: {(t1 - t0) * 1e3:.1f} ms; certify CNN: {(t2 - t1) * 1e3:.1f} ms; "
        f"certificate {cert.value:.6f} (product of targets: 1 x 1 x 1 x ||W_fc||)"
    )
    return {"finalize_s": t1 - t0, "certify_s": t2 - t1, "certificate": cert.value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    args = parser.parse_args()
    device = torch.device(args.device)
    payload: dict[str, object] = {"device": device_info(device), "torchlip": HAVE_TORCHLIP}
    payload["train_step"] = bench_steps(device, args.quick)
    payload["conv_bounds"] = bench_conv_bounds(args.quick)
    payload["overshoot"] = bench_overshoot(device)
    payload["certify_cnn"] = bench_certify_cnn(device)
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    path = write_json(f"spectral{'_quick' if args.quick else ''}{suffix}.json", payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
