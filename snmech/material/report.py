"""Train, export, and report: metrics JSON and PNG plots for ``snmech train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snmech._plot import pyplot, save
from snmech.material.data import StressStrainData
from snmech.material.model_file import load_law, save_law
from snmech.material.neural import NeuralLaw, tangent_asymmetry
from snmech.material.synthesis import strain_states
from snmech.material.training import TrainingConfig, relative_rmse, train_law
from snmech.spectral import lipschitz_lower_bound


def train_and_report(
    data: StressStrainData,
    out: Path,
    *,
    kind: str = "potential",
    hidden: int | None = None,
    radial: int | None = None,
    lipschitz_max: float | None = None,
    config: TrainingConfig | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    report_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a law, write it to ``out``, and write ``metrics.json`` and plots to ``report_dir``.

    Returns:
        The metrics written to ``metrics.json``.
    """
    result = train_law(
        data,
        kind=kind,
        hidden=hidden,
        radial=radial,
        lipschitz_max=lipschitz_max,
        config=config,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
    )
    save_law(result.law, out, training=result.summary(), data_sha256=data.sha256())
    law = load_law(out)  # what users get: exported, certificate checked
    val = data.subset(result.val_index)
    pred = np.asarray(law.stress(val.strain))
    rel = relative_rmse(pred, val.stress)
    lower = lipschitz_lower_bound(law, torch.as_tensor(val.strain[:64]), steps=20)
    metrics = result.summary() | {
        "kind": kind,
        "exported_val_rel_rmse": rel,
        "lipschitz_bound_pa": law.lipschitz_bound(),
        "lipschitz_lower_bound_pa": lower,
        "bound_over_lower": law.lipschitz_bound() / lower,
        "tangent_asymmetry": tangent_asymmetry(law, val.strain[:256]),
        "data": data.source,
        "data_sha256": data.sha256(),
        "law_file": str(out),
    }
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_fit(law, val, pred, report_dir / "fit.png")
        plot_paths(law, data, report_dir / "paths.png")
    return metrics


def plot_fit(law: NeuralLaw, val: StressStrainData, pred: np.ndarray, path: Path) -> Path:
    """Predicted vs true stress (MPa) on the validation split."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    t, p = val.stress.ravel() / 1e6, pred.ravel() / 1e6
    ax.plot(t, p, ".", ms=2, alpha=0.4)
    lim = [min(t.min(), p.min()), max(t.max(), p.max())]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("true stress component (MPa, Mandel)")
    ax.set_ylabel("predicted (MPa)")
    ax.set_title(f"{law.kind} law on held-out data")
    return save(fig, path)


def plot_paths(law: NeuralLaw, data: StressStrainData, path: Path) -> Path:
    """The law's stress along uniaxial-strain and shear paths spanning the data range."""
    plt = pyplot()
    span = float(np.abs(data.strain).max())
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, sampling, comp in ((axes[0], "uniaxial", 0), (axes[1], "shear", -1)):
        strain, _, _ = strain_states(law.kinematics, 201, sampling, span)  # type: ignore[arg-type]
        stress = np.asarray(law.stress(strain))
        ax.plot(strain[:, comp], stress[:, comp] / 1e6, label="neural law")
        ax.set_xlabel(f"Mandel strain component {comp if comp >= 0 else law.kinematics.size - 1}")
        ax.set_ylabel("stress (MPa)")
        ax.set_title(f"{sampling} strain path")
    return save(fig, path)
