"""The adding problem at long T on a GPU: the gated SpectralRNN of bench_rnn.py, same protocol.

Issue 14 asks for T = 1000 "on a GPU when one is lent". Same model, optimizer,
clip, batch and test set as ``bench_rnn.py`` (test MSE on 1000 held-out
sequences every ``--log-every`` steps; solved = MSE < 0.01), on ``--device``,
stopped when solved or after ``--time-limit`` seconds. Writes one JSON file and,
with ``--png``, the test-MSE curve. ``--plot-from A.json [B.json ...] --png P``
redraws saved runs without training.

Run: python benchmarks/bench_rnn_long.py --T 1000 --device cuda --out rnn_long.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from bench_rnn import SOLVED, Regressor
from torch import nn

from snmech.rnn import adding_problem, hidden_jacobian_norm


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Test MSE vs training step of each run, the constant predictor and the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for r in results:
        steps, mse = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
        solved = f", solved at step {r['solved_at_step']}" if r["solved_at_step"] else ""
        ax.plot(steps, mse, marker=".", label=f"{r['model']}, T = {r['T']} ({r['device']}{solved})")
    ax.axhline(1 / 6, color="gray", ls=":", label="constant predictor (1/6)")
    ax.axhline(SOLVED, color="k", ls="--", lw=0.8, label=f"solved (MSE < {SOLVED})")
    ax.set(xlabel="training step", ylabel="test MSE", yscale="log", title="adding problem")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--model", default="snmech-gated")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--time-limit", type=float, default=3600.0)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="rnn_long.json")
    parser.add_argument("--png", default=None, help="also draw the test-MSE curve here")
    parser.add_argument("--plot-from", nargs="+", default=None, help="saved JSON runs to draw")
    args = parser.parse_args()
    if args.plot_from:
        if not args.png:
            parser.error("--plot-from needs --png")
        plot([json.loads(Path(p).read_text()) for p in args.plot_from], Path(args.png))
        return
    device = torch.device(args.device)
    torch.set_flush_denormal(True)  # as bench_rnn.py: float32 denormals slow CPU RNNs 10x
    torch.manual_seed(args.seed)
    model = Regressor(args.model).to(device)
    opt = torch.optim.Adam(model.param_groups(1e-3))  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(args.seed + 1)
    test = adding_problem(1000, args.T, generator=torch.Generator().manual_seed(12345))
    x_test, y_test = (t.to(device) for t in test)
    curve, solved_at, t0 = [], None, time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = (t.to(device) for t in adding_problem(64, args.T, generator=gen))
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0:
            with torch.no_grad():
                mse = float(nn.functional.mse_loss(model(x_test), y_test))
            curve.append((step, mse))
            print(
                f"step {step:5d} test MSE {mse:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True
            )
            if mse < SOLVED:
                solved_at = step
                break
        if time.perf_counter() - t0 > args.time_limit:
            break
    # an nn.RNN with a parametrized weight (torch spectral_norm, geotorch) keeps the
    # weight it last computed in _flat_weights; computed with autograd on it is a
    # non-leaf that deepcopy (inside hidden_jacobian_norm) refuses: refresh it without
    model.eval()
    with torch.no_grad():
        model.cpu()  # whole model: a forward with only the RNN moved fails on CUDA runs
        model(test[0][:1])
    jac = hidden_jacobian_norm(model.rnn, test[0][:1])  # type: ignore[arg-type]
    result = {
        "model": args.model,
        "T": args.T,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "solved_at_step": solved_at,
        "steps_run": step,
        "seconds": time.perf_counter() - t0,
        "curve": curve,
        "jacobian_norm_trained": jac,
        "protocol": "bench_rnn.py adding protocol; stopped when solved or at the time limit",
        "flush_denormal": True,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    if args.png:
        plot([result], Path(args.png))
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}))


if __name__ == "__main__":
    main()
