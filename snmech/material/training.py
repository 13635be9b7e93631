"""Training a neural law on stress-strain data: seeded, resumable, on CPU or CUDA."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from snmech._device import check_device_name, resolve_device
from snmech._model_file import read_checkpoint
from snmech.material.data import StressStrainData
from snmech.material.neural import LAW_KINDS, NeuralLaw, PotentialLaw

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of :func:`train_law`.

    Attributes:
        epochs: maximum number of passes over the training split.
        batch_size: samples per step.
        lr: peak Adam learning rate (cosine decay to 1 % of it).
        val_fraction: share of samples held out for validation / early stopping.
        patience: stop after this many epochs without a better validation error.
        seed: seeds the split, the initialization and the batches.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        dtype: ``"float32"`` or ``"float64"``.
        checkpoint_every: epochs between checkpoints (when a checkpoint path is given).
    """

    epochs: int = 400
    batch_size: int = 256
    lr: float = 3e-3
    val_fraction: float = 0.2
    patience: int = 80
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    checkpoint_every: int = 25

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"need epochs, batch_size >= 1 and lr > 0, got {self}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        check_device_name(self.device)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")


@dataclass
class TrainingResult:
    """What :func:`train_law` returns.

    Attributes:
        law: the best law (by validation error), in eval mode, still parametrized;
            :func:`snmech.material.save_law` exports it.
        history: per-epoch ``{"epoch", "train_rel_rmse", "val_rel_rmse"}``.
        val_rel_rmse: best validation relative RMSE of stress.
        best_epoch: the epoch it was reached.
        seconds: wall time of the training loop.
        samples_per_second: training throughput.
        device: where it ran.
        split_seed: the seed used for the split (validation indices are reproducible).
    """

    law: NeuralLaw
    history: list[dict[str, float]]
    val_rel_rmse: float
    best_epoch: int
    seconds: float
    samples_per_second: float
    device: str
    val_index: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))

    def summary(self) -> dict[str, Any]:
        """JSON-serializable summary (for the model file and metrics.json)."""
        return {
            "val_rel_rmse": self.val_rel_rmse,
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
            "device": self.device,
        }


def build_law(
    kind: str,
    data: StressStrainData,
    *,
    hidden: int | None = None,
    radial: int | None = None,
    lipschitz_max: float | None = None,
) -> NeuralLaw:
    """A fresh law of ``kind`` with scalings (and, for potentials, ``A``) fitted to ``data``."""
    if kind not in LAW_KINDS:
        raise ValueError(f"unknown law kind {kind!r}; choose one of {sorted(LAW_KINDS)}")
    strain_scale = float(np.sqrt(np.mean(data.strain**2)))
    stress_scale = float(np.sqrt(np.mean(data.stress**2)))
    if strain_scale == 0 or stress_scale == 0:
        raise ValueError(f"{data.source}: all strains or all stresses are zero")
    if radial is not None and kind != "potential":
        raise ValueError(f"radial units are for potential laws, not {kind!r}")
    width = {} if hidden is None else {"hidden": hidden}
    if radial is not None:
        width["radial"] = radial
    law = LAW_KINDS[kind](
        data.kinematics, strain_scale, stress_scale, lipschitz_max=lipschitz_max, **width
    )
    if isinstance(law, PotentialLaw):
        # Start A at half the best linear fit (PSD part): the network adds the rest.
        e, s = data.strain / strain_scale, data.stress / stress_scale
        C, *_ = np.linalg.lstsq(e, s, rcond=None)
        w, V = np.linalg.eigh(0.5 * (C + C.T))
        B = V * np.sqrt(np.clip(0.5 * w, 0.0, None))
        with torch.no_grad():
            law.B.copy_(torch.as_tensor(B, dtype=law.B.dtype))
    return law


def relative_rmse(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> float:
    """``sqrt(mean |pred - true|^2 / mean |true|^2)`` for numpy arrays or torch tensors."""
    return float(((pred - true) ** 2).mean() / (true**2).mean()) ** 0.5


def train_law(
    data: StressStrainData,
    *,
    kind: str = "potential",
    hidden: int | None = None,
    radial: int | None = None,
    lipschitz_max: float | None = None,
    config: TrainingConfig | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainingResult:
    """Train a neural law (mean squared stress error in scaled units, Adam, cosine schedule).

    Args:
        data: training data (split internally into train/validation by ``config.seed``).
        kind: ``"potential"`` (default) or ``"direct"``.
        hidden: hidden width (default: the law's own, 8 ridge units for a potential).
        radial: radial units of a potential law (default: the law's own, 3).
        lipschitz_max: optional certified cap on the tangent norm (Pa).
        config: hyper-parameters, device and seed.
        checkpoint: file to write every ``config.checkpoint_every`` epochs.
        resume: continue from ``checkpoint`` if it exists (same data and config).
        progress: show a progress bar.

    Returns:
        The best law and the training record.
    """
    cfg = config or TrainingConfig()
    device = resolve_device(cfg.device)
    dtype = getattr(torch, cfg.dtype)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n = len(data)
    perm = rng.permutation(n)
    n_val = max(1, int(round(cfg.val_fraction * n)))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    law = build_law(
        kind, data.subset(train_idx), hidden=hidden, radial=radial, lipschitz_max=lipschitz_max
    )
    law = law.to(device=device, dtype=dtype)

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.as_tensor(data.strain[idx] / law.strain_scale, dtype=dtype, device=device)
        s = torch.as_tensor(data.stress[idx] / law.stress_scale, dtype=dtype, device=device)
        return e, s

    e_tr, s_tr = tensors(train_idx)
    e_va, s_va = tensors(val_idx)
    opt = torch.optim.Adam(law.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda ep: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(ep, cfg.epochs) / cfg.epochs)),
    )
    start, history = 0, []
    best = (math.inf, 0, copy.deepcopy(law.state_dict()))
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt is not None and ckpt.exists():
        state = read_checkpoint(ckpt, map_location=device)
        if state.get("data_sha256") != data.sha256() or state.get("config") != asdict(cfg):
            raise ValueError(f"{ckpt}: checkpoint was made with other data or settings")
        law.load_state_dict(state["law"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = int(state["epoch"]), list(state["history"])
        best = (float(state["best_val"]), int(state["best_epoch"]), state["best_law"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        log.info("resumed from %s at epoch %d", ckpt, start)

    n_tr = e_tr.shape[0]
    bs = min(cfg.batch_size, n_tr)
    t0 = time.perf_counter()
    seen = 0
    bar = tqdm(
        range(start, cfg.epochs),
        disable=not progress,
        desc=f"train {kind} law",
        initial=start,
        total=cfg.epochs,
    )
    for epoch in bar:
        law.train()
        order = torch.randperm(n_tr, device=device)
        for i in range(0, n_tr - bs + 1, bs):
            idx = order[i : i + bs]
            opt.zero_grad(set_to_none=True)
            loss = ((law.scaled_stress(e_tr[idx]) - s_tr[idx]) ** 2).mean()
            loss.backward()
            opt.step()
            seen += bs
        sched.step()
        law.eval()
        with torch.no_grad():
            tr = relative_rmse(law.scaled_stress(e_tr), s_tr)
            va = relative_rmse(law.scaled_stress(e_va), s_va)
        if not (math.isfinite(tr) and math.isfinite(va)):
            raise FloatingPointError(
                f"training diverged at epoch {epoch + 1} (loss is NaN/inf); "
                f"last checkpoint: {ckpt if ckpt and ckpt.exists() else 'none'}"
            )
        history.append({"epoch": epoch + 1, "train_rel_rmse": tr, "val_rel_rmse": va})
        if va < best[0]:
            best = (va, epoch + 1, copy.deepcopy(law.state_dict()))
        bar.set_postfix(val=f"{va:.2e}", best=f"{best[0]:.2e}")
        if ckpt is not None and (
            (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs
        ):
            _save_checkpoint(ckpt, law, opt, sched, epoch + 1, history, best, data, cfg)
        if epoch + 1 - best[1] >= cfg.patience:
            log.info("early stop at epoch %d (best %d)", epoch + 1, best[1])
            break
    seconds = time.perf_counter() - t0
    law.load_state_dict(best[2])
    law.eval()
    return TrainingResult(
        law=law,
        history=history,
        val_rel_rmse=best[0],
        best_epoch=best[1],
        seconds=seconds,
        samples_per_second=seen / max(seconds, 1e-9),
        device=str(device),
        val_index=val_idx,
    )


def _device_of(law: NeuralLaw) -> torch.device:
    return next(law.parameters()).device


def _save_checkpoint(
    path: Path,
    law: NeuralLaw,
    opt: torch.optim.Optimizer,
    sched: Any,
    epoch: int,
    history: list[dict[str, float]],
    best: tuple[float, int, dict[str, torch.Tensor]],
    data: StressStrainData,
    cfg: TrainingConfig,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "law": law.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "history": history,
            "best_val": best[0],
            "best_epoch": best[1],
            "best_law": best[2],
            "torch_rng": torch.get_rng_state(),
            "data_sha256": data.sha256(),
            "config": asdict(cfg),
        },
        tmp,
    )
    tmp.replace(path)
