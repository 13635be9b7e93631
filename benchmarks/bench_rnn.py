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

``--task copy``: the copy task (:func:`snmech.rnn.copy_task`, uRNN layout: 10 symbols of 8,
T - 1 blanks, a delimiter, 10 blanks; a read-out at every step), same models and optimizer,
test cross-entropy and recall accuracy on 500 held-out sequences every 50 steps; solved =
recall accuracy >= 99 % on the 10 copied symbols (the memoryless baseline has cross-entropy
10 log 8 / (T + 20)); writes docs/img/rnn_copy.png. ``--task digits``: sklearn's 8x8 digits
pixel by pixel (T = 64, one feature, pixels / 16), the split of ANCHORS.md (robust section:
``train_test_split(test_size=0.2, random_state=0, stratify=y)``), a read-out of the final
state, test accuracy on the 360 held-out digits. Both merge their results (keys ``copy``,
``copy_protocol``, ``digits``, ``digits_protocol``) into --out, keeping the other tasks'.
Copy runs can go to a GPU (``--device cuda``), stop at a wall-clock limit (``--time-limit``,
recorded with ``steps_run``) and be merged from other files (``--task copy --combine ...``).

Published: copy T = 100 and 500 with 600 steps, digits with 1500 steps, one process at a time
on the 2 shared CPU cores; copy T = 1000 on an H200 (each model in its own process, 1500
steps or 400 s, whichever came first).
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
from _common import OUT_DIR, device_info, print_table, write_json
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from snmech import _plot
from snmech.rnn import (
    SpectralRNN,
    adding_problem,
    copy_task,
    hidden_jacobian_norm,
    loss_gradient_per_step,
)
from snmech.rnn.tasks import copy_baseline

HAVE_GEOTORCH = importlib.util.find_spec("geotorch") is not None
MODELS = ("snmech", "snmech-gated", "rnn", "rnn-sn", "geotorch", "lstm")
IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
COLORS = dict(zip(MODELS, ("C0", "C1", "C2", "C3", "C4", "C5"), strict=True))
HIDDEN = 128
SOLVED = 0.01
COPY_SYMBOLS, COPY_LENGTH, COPY_SOLVED = 8, 10, 0.99
TASK_KEYS = {
    "adding": ("adding", "jacobian_at_init", "gradient_per_step_at_init", "parts"),
    "copy": ("copy", "copy_protocol"),
    "digits": ("digits", "digits_protocol"),
}


def make_recurrent(kind: str, input_size: int) -> nn.Module:
    """One recurrent layer of ``kind`` (see the module docstring), hidden size ``HIDDEN``."""
    if kind.startswith("snmech"):
        return SpectralRNN(input_size, HIDDEN, gated=kind == "snmech-gated")
    if kind == "lstm":
        return nn.LSTM(input_size, HIDDEN, batch_first=True)
    rnn = nn.RNN(input_size, HIDDEN, batch_first=True)
    if kind == "rnn-sn":
        torch_spectral_norm(rnn, "weight_hh_l0")
    elif kind == "geotorch":
        import geotorch

        geotorch.orthogonal(rnn, "weight_hh_l0")
    return rnn


class Regressor(nn.Module):
    """A recurrent layer and a linear read-out of the final state."""

    def __init__(self, kind: str, input_size: int = 2, outputs: int = 1) -> None:
        super().__init__()
        self.kind = kind
        self.rnn = make_recurrent(kind, input_size)
        self.head = nn.Linear(HIDDEN, outputs)

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


class Tagger(Regressor):
    """The same layer with the read-out applied at every step: ``(B, T, in) -> (B, T, out)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.rnn(x)[0])
        return out


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


def _fit_step(model: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def copy_metrics(model: Tagger, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Cross-entropy per step (all T + 20 steps) and accuracy on the copied symbols."""
    with torch.no_grad():
        logits = model(x)
    ce = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    recall = logits[:, -COPY_LENGTH:].argmax(-1) == y[:, -COPY_LENGTH:]
    return float(ce), float(recall.float().mean())


def train_copy(
    kind: str,
    delay: int,
    steps: int,
    seed: int,
    log_every: int,
    stop_when_solved: bool = False,
    *,
    device: str = "cpu",
    time_limit: float | None = None,
) -> dict[str, object]:
    torch.manual_seed(seed)
    model = Tagger(kind, COPY_SYMBOLS + 2, COPY_SYMBOLS + 1).to(device)
    opt = torch.optim.Adam(model.param_groups(1e-3))  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed + 1)  # data are drawn on the CPU on every device
    test = copy_task(500, delay, generator=torch.Generator().manual_seed(12345))
    x_test, y_test = (t.to(device) for t in test)
    baseline = copy_baseline(delay, n_symbols=COPY_SYMBOLS, copy_length=COPY_LENGTH)
    curve: list[tuple[int, float, float]] = []
    solved_at = None
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, y = (t.to(device) for t in copy_task(64, delay, generator=gen))
        _fit_step(model, opt, nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()))
        out_of_time = time_limit is not None and time.perf_counter() - t0 > time_limit
        if step % log_every == 0 or step == steps or out_of_time:
            ce, acc = copy_metrics(model, x_test, y_test)
            curve.append((step, ce, acc))
            print(
                f"  {kind:13s} T={delay:4d} step {step:5d} test CE {ce:.4f} "
                f"({ce / baseline:.3f} of baseline) recall {acc:.3f}",
                flush=True,
            )
            if acc >= COPY_SOLVED and solved_at is None:
                solved_at = step
                if stop_when_solved:
                    break
            if not math.isfinite(ce) or out_of_time:
                break
    return {
        "model": kind,
        "T": delay,
        "device": str(device) if device == "cpu" else torch.cuda.get_device_name(device),
        "steps": steps,
        "steps_run": curve[-1][0],
        "baseline_ce": baseline,
        "final_ce": curve[-1][1],
        "final_recall_accuracy": curve[-1][2],
        "best_ce": min(c for _, c, _ in curve),
        "solved_at_step": solved_at,
        "train_seconds": time.perf_counter() - t0,
        "time_limit_s": time_limit,
        "curve": curve,
    }


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """sklearn digits as ``(n, 64, 1)`` pixel sequences in [0, 1]: the split of ANCHORS.md."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images / 16.0, labels, test_size=0.2, random_state=0, stratify=labels
    )
    seq = [torch.tensor(a, dtype=torch.float32)[..., None] for a in (x_tr, x_te)]
    return seq[0], torch.tensor(y_tr), seq[1], torch.tensor(y_te)


def train_digits(
    kind: str,
    data: tuple[torch.Tensor, ...],
    steps: int,
    seed: int,
    log_every: int,
) -> dict[str, object]:
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(seed)
    model = Regressor(kind, 1, 10)
    opt = torch.optim.Adam(model.param_groups(1e-3))  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed + 1)
    order = torch.randperm(len(x_tr), generator=gen)
    curve: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        if len(order) < 64:  # a new epoch
            order = torch.randperm(len(x_tr), generator=gen)
        idx, order = order[:64], order[64:]
        loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
        _fit_step(model, opt, loss)
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                acc = float((model(x_te).argmax(-1) == y_te).float().mean())
            curve.append((step, acc))
            print(f"  {kind:13s} digits step {step:5d} test accuracy {acc:.3f}", flush=True)
    with torch.no_grad():
        train_acc = float((model(x_tr).argmax(-1) == y_tr).float().mean())
    return {
        "model": kind,
        "steps": steps,
        "epochs": steps * 64 / len(x_tr),
        "final_test_accuracy": curve[-1][1],
        "best_test_accuracy": max(a for _, a in curve),
        "final_train_accuracy": train_acc,
        "train_seconds": time.perf_counter() - t0,
        "curve": curve,
    }


def plot_copy(results: list[dict[str, Any]]) -> None:
    try:
        plt = _plot.pyplot()
    except ImportError:
        return
    lengths = sorted({int(r["T"]) for r in results})
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths), 4), squeeze=False)
    for ax, t in zip(axes[0], lengths, strict=True):
        for r in results:
            if r["T"] == t:
                steps, ce, _ = zip(*r["curve"], strict=True)
                ax.semilogy(steps, ce, label=r["model"], color=COLORS[r["model"]])
        devices = sorted({r.get("device", "cpu") for r in results if r["T"] == t})
        ax.axhline(copy_baseline(t), color="gray", ls=":", label="memoryless baseline")
        ax.set(title=f"copy task, T = {t} ({', '.join(devices)})", xlabel="step")
        ax.set_ylabel("test cross-entropy")
        ax.legend(fontsize=7)
    _plot.save(fig, IMG / "rnn_copy.png", dpi=110)


def copy_table(results: list[dict[str, Any]]) -> None:
    rows = [
        [
            r["model"],
            r["T"],
            f"{r['steps_run']}/{r['steps']}",
            f"{r['final_ce']:.4f}",
            f"{r['final_ce'] / r['baseline_ce']:.3f}",
            f"{r['final_recall_accuracy']:.3f}",
            r["solved_at_step"] or "-",
            f"{r['train_seconds']:.0f}",
            r.get("device", "cpu"),
        ]
        for r in results
    ]
    print_table(
        "Copy task (solved: recall accuracy >= 0.99; baseline CE 10 log 8 / (T + 20))",
        ["model", "T", "steps", "test CE", "CE/baseline", "recall", "solved at", "s", "device"],
        rows,
    )


def digits_table(results: list[dict[str, Any]]) -> None:
    rows = [
        [
            r["model"],
            r["steps"],
            f"{r['final_test_accuracy']:.3f}",
            f"{r['best_test_accuracy']:.3f}",
            f"{r['final_train_accuracy']:.3f}",
            f"{r['train_seconds']:.0f}",
        ]
        for r in results
    ]
    print_table(
        "Sequential digits, pixel by pixel (T = 64)",
        ["model", "steps", "test acc", "best test acc", "train acc", "s"],
        rows,
    )


def merge_into(name: str, task: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (one task's keys) into results/``name``, keeping the other tasks' keys."""
    path = OUT_DIR / name
    merged = json.loads(path.read_text()) if path.exists() else {}
    for key in TASK_KEYS[task]:
        merged.pop(key, None)
    merged.update(payload)
    return write_json(name, merged)


def merge_runs(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of ``new`` replace those of ``old`` with the same model (and T)."""
    ids = {(r["model"], r.get("T")) for r in new}
    runs = [r for r in old if (r["model"], r.get("T")) not in ids] + new
    return sorted(runs, key=lambda r: (r.get("T", 0), MODELS.index(r["model"])))


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
    parser.add_argument("--task", choices=tuple(TASK_KEYS), default="adding")
    parser.add_argument("--lengths", type=int, nargs="+", help="adding: 100 200; copy: 100 500")
    parser.add_argument("--steps", type=int, help="adding: 3000; copy: 600; digits: 1500")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, help="adding, digits: 100; copy: 50")
    parser.add_argument("--jacobian-curves", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default="rnn.json")
    parser.add_argument("--stop-when-solved", action="store_true", help="save time on long T")
    parser.add_argument("--device", default="cpu", help="copy: where to train (cpu, cuda)")
    parser.add_argument("--time-limit", type=float, help="copy: stop a run after this many s")
    parser.add_argument(
        "--combine", nargs="+", default=None, help="merge partial JSON files into --out and plot"
    )
    args = parser.parse_args()
    # Plain RNN/LSTM gradients decay into float32 denormals, which made their CPU steps 10x
    # slower (LSTM T = 200: 3 s vs 0.28 s per step); flushing them changes nothing visible.
    torch.set_flush_denormal(True)
    defaults = {"adding": ([100, 200], 3000, 100), "copy": ([100, 500], 600, 50)}
    lengths, steps, log_every = defaults.get(args.task, (None, 1500, 100))
    args.lengths = args.lengths or lengths
    args.steps = args.steps or steps
    args.log_every = args.log_every or log_every
    args.models = [k for k in args.models if k != "geotorch" or HAVE_GEOTORCH]
    if args.task == "copy":
        run_copy(args)
    elif args.task == "digits":
        run_digits(args)
    else:
        run_adding(args)


def run_adding(args: argparse.Namespace) -> None:
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
                results.append(
                    train(
                        kind, length, args.steps, args.seed, args.log_every, args.stop_when_solved
                    )
                )
                payload["benchmark_seconds"] = time.perf_counter() - t_start
                merge_into(args.out, "adding", payload)  # after each model: keep partial results
    if args.jacobian_curves and not payload.get("gradient_per_step_at_init"):
        payload["gradient_per_step_at_init"] = gradient_curves(args.seed)
    table(payload["adding"])
    plot(payload["adding"])
    if payload["jacobian_at_init"]:
        plot_jacobian(payload["jacobian_at_init"], payload["adding"])
    if payload.get("gradient_per_step_at_init"):
        plot_gradients(payload["gradient_per_step_at_init"])
    print(f"\nwrote {merge_into(args.out, 'adding', payload)}")


def _previous(name: str, key: str) -> list[dict[str, Any]]:
    path = OUT_DIR / name
    return list(json.loads(path.read_text()).get(key, [])) if path.exists() else []


def _previous_protocol(name: str, key: str) -> dict[str, object]:
    path = OUT_DIR / name
    return dict(json.loads(path.read_text()).get(key, {})) if path.exists() else {}


def _protocol(args: argparse.Namespace, **extra: object) -> dict[str, object]:
    return {
        "device": device_info(torch.device("cpu")),
        "hidden": HIDDEN,
        "batch": 64,
        "optimizer": "Adam 1e-3 (snmech W_hh: 1e-4)",
        "clip": 1.0,
        "seed": args.seed,
        "flush_denormal": True,
        **extra,
    }


def run_copy(args: argparse.Namespace) -> None:
    results = _previous(args.out, "copy")
    protocol = _previous_protocol(args.out, "copy_protocol") or _protocol(
        args,
        n_symbols=COPY_SYMBOLS,
        copy_length=COPY_LENGTH,
        test_sequences=500,
        solved=f"recall accuracy >= {COPY_SOLVED} on the {COPY_LENGTH} copied symbols",
        stop_when_solved=args.stop_when_solved,
    )
    if args.combine:  # runs made elsewhere (another machine, parallel processes)
        parts = [json.loads(Path(p).read_text()).get("copy", []) for p in args.combine]
        results = merge_runs(results, [r for part in parts for r in part])
        merge_into(args.out, "copy", {"copy_protocol": protocol, "copy": results})
    for delay in [] if args.combine else args.lengths:
        for kind in args.models:
            run = train_copy(
                kind,
                delay,
                args.steps,
                args.seed,
                args.log_every,
                args.stop_when_solved,
                device=args.device,
                time_limit=args.time_limit,
            )
            results = merge_runs(results, [run])
            merge_into(args.out, "copy", {"copy_protocol": protocol, "copy": results})
    copy_table(results)
    plot_copy(results)
    print(f"\nwrote {OUT_DIR / args.out}")


def run_digits(args: argparse.Namespace) -> None:
    results = _previous(args.out, "digits")
    protocol = _protocol(
        args,
        data="sklearn load_digits / 16, pixel by pixel (T = 64, 1 feature)",
        split="train_test_split(test_size=0.2, random_state=0, stratify=y): 1437 / 360",
        readout="linear on the final state",
    )
    data = digits_split()
    for kind in args.models:
        run = train_digits(kind, data, args.steps, args.seed, args.log_every)
        results = merge_runs(results, [run])
        merge_into(args.out, "digits", {"digits_protocol": protocol, "digits": results})
    digits_table(results)
    print(f"\nwrote {OUT_DIR / args.out}")


if __name__ == "__main__":
    main()
