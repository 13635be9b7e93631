"""PNG plots of a run: the energy balance and the probe histories (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snmech._plot import pyplot, save
from snmech.fem.result import SimulationResult


def plot_energy(result: SimulationResult, path: str | Path) -> Path:
    """Kinetic, internal, external work, damping, boundary work (J) and the balance error."""
    plt = pyplot()
    e = result.energy
    fig, (ax, ax_err) = plt.subplots(
        2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    t = e[:, 1] * 1e3
    for col, label in (
        (2, "kinetic"),
        (3, "internal"),
        (4, "external work"),
        (5, "damping"),
        (6, "boundary work"),
    ):
        if np.any(e[:, col] != 0):
            ax.plot(t, e[:, col], label=label)
    ax.plot(t, e[:, 2] + e[:, 3] + e[:, 5], "k--", lw=1, label="kinetic + internal + damping")
    ax.set_ylabel("energy (J)")
    ax.legend(fontsize=8)
    ax_err.plot(t, e[:, 7], color="tab:red")
    ax_err.set_ylabel("balance error")
    ax_err.set_xlabel("time (ms)")
    fig.suptitle(f"energy balance, dt = {result.dt:.3g} s, {result.steps} steps")
    return save(fig, Path(path))


def plot_probes(result: SimulationResult, path: str | Path, component: int | None = None) -> Path:
    """Displacement (mm) of every probe vs time; ``component`` default: the vertical one."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    t = result.probes["time"] * 1e3
    for name, values in result.probes.items():
        if name == "time":
            continue
        c = values.shape[1] - 1 if component is None else component
        ax.plot(t, values[:, c] * 1e3, label=f"{name} (u{c})")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("displacement (mm)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, Path(path))
