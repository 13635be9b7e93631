"""Training a :class:`~snmech.material.recurrent.RecurrentLaw` on strain-stress paths.

Paths are arrays ``(B, T, size)`` (Mandel strain, and stress in Pa) that start
from a virgin state; the law is unrolled along each path (backpropagation
through the whole path) and fitted by Adam on the squared stress error in
scaled units.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from tqdm.auto import tqdm

from snmech.material.recurrent import RecurrentLaw, fit_elastic_init, fit_yield_init

Array = npt.NDArray[np.float64]


def path_relative_errors(pred: Array, true: Array) -> Array:
    """Per-path ``||pred - true||_F / ||true||_F`` over all steps, shape ``(B,)``."""
    num = np.sqrt(((pred - true) ** 2).sum(axis=(1, 2)))
    return num / np.maximum(np.sqrt((true**2).sum(axis=(1, 2))), np.finfo(float).tiny)


@dataclass
class RecurrentTrainingConfig:
    """Hyper-parameters of :func:`train_recurrent_law`."""

    units: int = 2
    epochs: int = 300
    lr: float = 2e-2
    batch_paths: int = 32
    val_fraction: float = 0.2
    seed: int = 0
    dtype: str = "float64"
    patience: int = 100

    def __post_init__(self) -> None:
        if self.units < 1 or self.epochs < 1 or self.batch_paths < 1:
            raise ValueError("units, epochs and batch_paths must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be finite and > 0, got {self.lr}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class RecurrentTrainingResult:
    """The best law (by validation error) and the record of its training."""

    law: RecurrentLaw
    history: list[dict[str, float]]
    val_errors: Array
    best_epoch: int
    seconds: float
    val_index: npt.NDArray[np.int64] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-serializable record for model files and reports."""
        return {
            "val_mean_path_rel_error": float(self.val_errors.mean()),
            "val_max_path_rel_error": float(self.val_errors.max()),
            "best_epoch": self.best_epoch,
            "seconds": self.seconds,
            "units": self.law.units,
        }


def train_recurrent_law(
    strain: Array,
    stress: Array,
    kinematics: str,
    *,
    config: RecurrentTrainingConfig | None = None,
    progress: bool = True,
) -> RecurrentTrainingResult:
    """Fit a recurrent law to strain paths ``(B, T, size)`` and their stresses (Pa).

    Args:
        strain: Mandel strain paths, each starting from the virgin state.
        stress: the stresses along them (Pa), same shape.
        kinematics: ``"3d"`` or ``"plane_strain"``.
        config: hyper-parameters; paths are split into train/validation by ``seed``.
        progress: show a progress bar.

    Returns:
        The best law by mean per-path relative error on the validation paths.
    """
    cfg = config or RecurrentTrainingConfig()
    strain, stress = np.asarray(strain, float), np.asarray(stress, float)
    if strain.ndim != 3 or strain.shape != stress.shape:
        raise ValueError(f"need matching (B, T, size) arrays, got {strain.shape}, {stress.shape}")
    if not (np.isfinite(strain).all() and np.isfinite(stress).all()):
        raise ValueError("strain or stress paths contain NaN or inf")
    B = strain.shape[0]
    if B < 2:
        raise ValueError(f"need at least 2 paths (train and validation), got {B}")
    dtype = getattr(torch, cfg.dtype)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(B)
    n_val = min(B - 1, max(1, int(round(cfg.val_fraction * B))))
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    law = RecurrentLaw(
        kinematics,
        float(np.sqrt(np.mean(strain[tr_idx] ** 2))),
        float(np.sqrt(np.mean(stress[tr_idx] ** 2))),
        units=cfg.units,
    )
    if law.kinematics.size != strain.shape[2]:
        raise ValueError(f"{kinematics} needs size {law.kinematics.size}, got {strain.shape[2]}")
    first = strain[tr_idx, :3].reshape(-1, strain.shape[2])
    fit_elastic_init(law, first, stress[tr_idx, :3].reshape(-1, strain.shape[2]))
    fit_yield_init(law, strain[tr_idx], stress[tr_idx])
    law = law.to(dtype)

    def tens(x: Array) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dtype)

    e_tr, s_tr = tens(strain[tr_idx]), tens(stress[tr_idx] / law.stress_scale)
    e_va = tens(strain[val_idx])
    opt = torch.optim.Adam(law.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda ep: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(ep, cfg.epochs) / cfg.epochs)),
    )
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] = (
        math.inf,
        0,
        copy.deepcopy(law.state_dict()),
    )
    bs = min(cfg.batch_paths, len(tr_idx))
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), disable=not progress, desc="train recurrent law")
    for epoch in bar:
        order = torch.randperm(len(tr_idx))
        for i in range(0, len(tr_idx) - bs + 1, bs):
            idx = order[i : i + bs]
            opt.zero_grad(set_to_none=True)
            pred = law.sequence(e_tr[idx]) / law.stress_scale
            loss = ((pred - s_tr[idx]) ** 2).sum() / (s_tr[idx] ** 2).sum()
            loss.backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            val = path_relative_errors(law.sequence(e_va).numpy(), stress[val_idx])
        if not np.isfinite(val).all():
            raise FloatingPointError(f"training diverged at epoch {epoch + 1} (NaN/inf stress)")
        history.append(
            {"epoch": epoch + 1, "val_mean": float(val.mean()), "val_max": float(val.max())}
        )
        if val.mean() < best[0]:
            best = (float(val.mean()), epoch + 1, copy.deepcopy(law.state_dict()))
        bar.set_postfix(val=f"{val.mean():.2e}", best=f"{best[0]:.2e}")
        if epoch + 1 - best[1] >= cfg.patience:
            break
    law.load_state_dict(best[2])
    law.eval()
    with torch.no_grad():
        val = path_relative_errors(law.sequence(e_va).numpy(), stress[val_idx])
    return RecurrentTrainingResult(
        law=law,
        history=history,
        val_errors=val,
        best_epoch=best[1],
        seconds=time.perf_counter() - t0,
        val_index=val_idx,
    )
