"""Benchmark of snmech.rnn on the adding problem, against torch and geotorch peers.

Models (hidden 128, same step budget, batch 64, Adam 1e-3, gradient-norm clip 1.0,
a fresh batch every step, test MSE on 1000 held-out sequences every 100 steps):

- ``snmech``: :class:`snmech.rnn.SpectralRNN`, orthogonal ``W_hh`` (gamma_min = gamma_max = 1),
  modReLU; its recurrent parameters train at a 10x smaller rate (1e-4), as in uRNN/expRNN;
- ``snmech-gated``: the same with the input gate;
- ``rnn``: ``nn.RNN`` (tanh); ``rnn-sn``: ``nn.RNN`` with torch ``spectral_norm`` on ``W_hh``;
- ``geotorch``: ``nn.RNN`` (tanh) with geotorch-orthogonal ``W_hh`` (if importable);
- ``lstm``: ``nn.LSTM``.

Solved = test MSE < 0.01 (predicting 1 gives 1/6). Also measures ||dh_T/dh_0||_2 at
initialization and after training (T = 100, 500, 1000), and plots both
and ||dL/dh_t|| per step at initialization (T = 500), and plots them
(docs/img/rnn_adding.png, rnn_jacobian.png, rnn_gradient.png). Writes
benchmarks/results/rnn.json. Run: OMP_NUM_THREADS=1 python benchmarks/bench_rnn.py
[--lengths 100 200] [--steps 3000] [--models ...] [--stop-when-solved]. Long runs can be
split into processes (``--out part.json --no-jacobian-curves``) and merged with
``--combine part1.json part2.json ...`` (which also makes the plots).

The published results.json came from six such parts on 2 shared CPU cores: T = 100 with
2000 steps (all models), T = 200 with 3000 steps (all models), T = 500 with 3000 steps
(snmech-gated only, stopping when solved).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from _common import device_info, print_table, write_json
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from snmech.rnn import (
    SpectralRNN,
    adding_problem,
    hidden_jacobian_norm,
    loss_gradient_per_step,
)

HAVE_GEOTORCH = importlib.util.find_spec("geotorch") is not None
MODELS = ("snmech", "snmech-gated", "rnn", "rnn-sn", "geotorch", "lstm")
IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
COLORS = dict(zip(MODELS, ("C0", "C1", "C2", "C3", "C4", "C5"), strict=True))
HIDDEN = 128
SOLVED = 0.01


class Regressor(nn.Module):
    """A recurrent layer and a linear read-out of the final state."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind.startswith("snmech"):
            self.rnn: nn.Module = SpectralRNN(2, HIDDEN, gated=kind == "snmech-gated")
        elif kind == "lstm":
            self.rnn = nn.LSTM(2, HIDDEN, batch_first=True)
        else:
            self.rnn = nn.RNN(2, HIDDEN, batch_first=True)
            if kind == "rnn-sn":
                torch_spectral_norm(self.rnn, "weight_hh_l0")
            elif kind == "geotorch":
                import geotorch

                geotorch.orthogonal(self.rnn, "weight_hh_l0")
        self.head = nn.Linear(HIDDEN, 1)

    def final_state(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[1]
        if isinstance(out, tuple):  # LSTM (h, c)
            out = out[0]
        return out[0] if out.dim() == 3 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_state(x))

    def param_groups(self, lr: float) -> list[dict[str, object]]:
        if isinstance(self.rnn, SpectralRNN):
            slow = {id(p) for p in self.rnn.recurrent_parameters()}
            rest = [p for p in self.parameters() if id(p) not in slow]
            return [
                {"params": rest, "lr": lr},
                {"params": self.rnn.recurrent_parameters(), "lr": lr / 10},
            ]
        return [{"params": list(self.parameters()), "lr": lr}]


def jacobian_norms(model: Regressor, lengths: list[int], seed: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for t in lengths:
        x, _ = adding_problem(1, t, generator=gen)
        out[str(t)] = hidden_jacobian_norm(model.rnn, x)  # type: ignore[arg-type]
    return out


def train(
    kind: str, length: int, steps: int, seed: int, log_every: int, stop_when_solved: bool = False
) -> dict[str, object]:
    torch.manual_seed(seed)
    model = Regressor(kind)
    jac_lengths = [100, 500, 1000]
    jac_init = jacobian_norms(model, jac_lengths, seed)
    opt = torch.optim.Adam(model.param_groups(1e-3))  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed + 1)
    x_test, y_test = adding_problem(1000, length, generator=torch.Generator().manual_seed(12345))
    curve: list[tuple[int, float]] = []
    solved_at = None
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = adding_problem(64, length, generator=gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                mse = float(nn.functional.mse_loss(model(x_test), y_test))
            curve.append((step, mse))
            print(f"  {kind:13s} T={length:4d} step {step:5d} test MSE {mse:.4f}", flush=True)
            if mse < SOLVED and solved_at is None:
                solved_at = step
                if stop_when_solved:
                    break
            if not math.isfinite(mse):
                break
    seconds = time.perf_counter() - t0
    return {
        "model": kind,
        "T": length,
        "steps": steps,
        "steps_run": curve[-1][0],
        "final_mse": curve[-1][1],
        "best_mse": min(m for _, m in curve),
        "solved_at_step": solved_at,
        "train_seconds": seconds,
        "curve": curve,
        "jacobian_norm_init": jac_init,
        "jacobian_norm_trained": jacobian_norms(model, jac_lengths, seed),
    }


def plot(results: list[dict[str, object]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    lengths = sorted({int(r["T"]) for r in results})  # type: ignore[call-overload]
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths), 4), squeeze=False)
    for ax, t in zip(axes[0], lengths, strict=True):
        for r in results:
            if r["T"] == t:
                steps, mse = zip(*r["curve"], strict=True)  # type: ignore[call-overload]
                ax.semilogy(steps, mse, label=r["model"], color=COLORS[str(r["model"])])
        ax.axhline(1 / 6, color="gray", ls=":", label="constant (1/6)")
        ax.axhline(SOLVED, color="k", ls="--", label="solved (0.01)")
        ax.set(title=f"adding problem, T = {t}", xlabel="step", ylabel="test MSE")
        ax.legend(fontsize=7)
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / "rnn_adding.png", dpi=110)


def jacobian_curves(seed: int) -> dict[str, dict[str, float]]:
    """||dh_T/dh_0||_2 at initialization for T = 10..1000, every model."""
    grid = [10, 30, 100, 300, 1000]
    curves: dict[str, dict[str, float]] = {}
    for kind in MODELS:
        if kind == "geotorch" and not HAVE_GEOTORCH:
            continue
        torch.manual_seed(seed)
        curves[kind] = jacobian_norms(Regressor(kind), grid, seed)
    return curves


def gradient_curves(seed: int, length: int = 500) -> dict[str, list[float]]:
    """||dL/dh_t|| for t = 1..length at initialization (adding problem, batch 64), every model."""
    x, y = adding_problem(64, length, generator=torch.Generator().manual_seed(seed))
    x, y = x.double(), y.double()  # plain RNNs fall below float32's range
    curves: dict[str, list[float]] = {}
    for kind in MODELS:
        if kind == "geotorch" and not HAVE_GEOTORCH:
            continue
        torch.manual_seed(seed)
        model = Regressor(kind).double()
        g = loss_gradient_per_step(
            model.rnn,  # type: ignore[arg-type]
            x,
            lambda h, m=model: nn.functional.mse_loss(m.head(h), y),
        )
        curves[kind] = g.tolist()
    return curves


def plot_gradients(curves: dict[str, list[float]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, g in curves.items():
        ax.semilogy(
            range(1, len(g) + 1), [max(v, 1e-300) for v in g], color=COLORS[kind], label=kind
        )
    ax.set(
        xlabel="step t",
        ylabel="||dL/dh_t||",
        title=f"loss gradient reaching step t (T = {len(next(iter(curves.values())))}, init)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / "rnn_gradient.png", dpi=110)


def plot_jacobian(curves: dict[str, dict[str, float]], results: list[dict[str, object]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, c in curves.items():
        ts = [int(t) for t in c]
        ax.semilogy(
            ts,
            [max(v, 1e-300) for v in c.values()],
            "o-",
            color=COLORS[kind],
            label=f"{kind} (init)",
        )
    for r in results:
        if str(r["model"]).startswith("snmech"):
            c = r["jacobian_norm_trained"]  # type: ignore[assignment]
            ax.semilogy(
                [int(t) for t in c],
                list(c.values()),
                "*--",
                ms=10,
                color=COLORS[str(r["model"])],
                label=f"{r['model']} trained (T={r['T']})",
            )
    ax.axhline(1e-2, color="gray", ls=":", label="target 1e-2")
    ax.set(xlabel="T", ylabel="||dh_T/dh_0||_2", title="state Jacobian over T steps")
    ax.set_xscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / "rnn_jacobian.png", dpi=110)


def table(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        j0, j1 = r["jacobian_norm_init"], r["jacobian_norm_trained"]
        rows.append(
            [
                r["model"],
                r["T"],
                r["steps"],
                f"{r['final_mse']:.4f}",
                f"{r['best_mse']:.4f}",
                r["solved_at_step"] or "-",
                f"{j0['1000']:.1e}",
                f"{j1['1000']:.1e}",
                f"{r['train_seconds']:.0f}",
            ]
        )
    print_table(
        "Adding problem (solved: test MSE < 0.01; constant predictor 1/6)",
        [
            "model",
            "T",
            "steps",
            "final MSE",
            "best MSE",
            "solved at",
            "J1000 init",
            "J1000 trained",
            "s",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--jacobian-curves", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default="rnn.json")
    parser.add_argument("--stop-when-solved", action="store_true", help="save time on long T")
    parser.add_argument(
        "--combine", nargs="+", default=None, help="merge partial JSON files into --out and plot"
    )
    args = parser.parse_args()
    # Plain RNN/LSTM gradients decay into float32 denormals, which made their CPU steps 10x
    # slower (LSTM T = 200: 3 s vs 0.28 s per step); flushing them changes nothing visible.
    torch.set_flush_denormal(True)
    t_start = time.perf_counter()
    if args.combine:
        parts = [json.loads(Path(p).read_text()) for p in args.combine]
        payload = dict(parts[0])
        payload["adding"] = sorted(
            (r for p in parts for r in p["adding"]),
            key=lambda r: (r["T"], MODELS.index(r["model"])),
        )
        payload["jacobian_at_init"] = next(
            (p["jacobian_at_init"] for p in parts if p["jacobian_at_init"]), {}
        )
        payload["benchmark_seconds"] = sum(p["benchmark_seconds"] for p in parts)
        payload["parts"] = [str(p) for p in args.combine]
    else:
        curves = jacobian_curves(args.seed) if args.jacobian_curves else {}
        results: list[dict[str, Any]] = []
        payload = {
            "device": device_info(torch.device("cpu")),
            "protocol": {
                "hidden": HIDDEN,
                "batch": 64,
                "optimizer": "Adam 1e-3 (snmech W_hh: 1e-4)",
                "clip": 1.0,
                "test_sequences": 1000,
                "solved_mse": SOLVED,
                "seed": args.seed,
                "flush_denormal": True,
            },
            "jacobian_at_init": curves,
            "adding": results,
            "benchmark_seconds": 0.0,
        }
        for length in args.lengths:
            for kind in args.models:
                if kind == "geotorch" and not HAVE_GEOTORCH:
                    continue
                results.append(
                    train(
                        kind, length, args.steps, args.seed, args.log_every, args.stop_when_solved
                    )
                )
                payload["benchmark_seconds"] = time.perf_counter() - t_start
                write_json(args.out, payload)  # after each model: long runs keep partial results
    if args.jacobian_curves and not payload.get("gradient_per_step_at_init"):
        payload["gradient_per_step_at_init"] = gradient_curves(args.seed)
    table(payload["adding"])
    plot(payload["adding"])
    if payload["jacobian_at_init"]:
        plot_jacobian(payload["jacobian_at_init"], payload["adding"])
    if payload.get("gradient_per_step_at_init"):
        plot_gradients(payload["gradient_per_step_at_init"])
    print(f"\nwrote {write_json(args.out, payload)}")


if __name__ == "__main__":
    main()
