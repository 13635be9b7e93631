"""The training loop: Adam or NAdam with a cosine schedule over all steps, seeded minibatches."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

OPTIMIZERS = ("adam", "nadam")  # the ``optimizer`` choices of train_classifier


@dataclass(frozen=True)
class TrainResult:
    """What a training run did.

    Attributes:
        losses: mean loss per epoch.
        cpu_seconds: process CPU time of the loop (all threads).
        wall_seconds: wall-clock time of the loop.
    """

    losses: tuple[float, ...]
    cpu_seconds: float
    wall_seconds: float


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[..., torch.Tensor],
    *,
    epochs: int = 150,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
    penalty: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    per_sample: torch.Tensor | None = None,
    on_step: Callable[[float], None] | None = None,
    optimizer: Literal["adam", "nadam"] = "adam",
    ema_decay: float = 0.0,
    ema_start: float = 0.5,
) -> TrainResult:
    """Train ``model`` in place with Adam (or NAdam), cosine-annealed from ``lr`` to 0.

    Args:
        model: the classifier; moved to ``device``.
        x: ``(N, *s)`` training inputs.
        y: ``(N,)`` labels.
        loss_fn: ``loss_fn(logits, y) -> scalar``, or ``loss_fn(logits, y, s)`` with
            ``per_sample``.
        epochs: passes over the data (>= 1).
        batch_size: minibatch size (>= 1).
        lr: initial learning rate (> 0).
        seed: seeds the minibatch order (the model's initialization is the caller's).
        device: where to train; default: the model's device.
        penalty: ``penalty(model, x_batch) -> scalar`` added to the loss of each
            minibatch (e.g. the SE gate's L1 term, :func:`snmech.robust.se.gate_l1`).
        per_sample: ``(N, ...)`` data the loss needs per training point (e.g. the far
            flags of :class:`snmech.robust.losses.FarMarginCrossEntropy`); its
            minibatch rows are passed as the loss's third argument.
        on_step: called before each step with the fraction of the run done,
            ``step / n_steps`` in ``[0, 1)`` (e.g.
            :meth:`snmech.robust.losses.FarMarginCrossEntropy.set_progress`).
        optimizer: ``"adam"`` (torch's fused Adam) or ``"nadam"`` (Adam with
            Nesterov momentum, ``torch.optim.NAdam`` with its defaults).
        ema_decay: ``d`` in ``[0, 1)``; above 0 the model ends with an
            exponential moving average of its parameters, ``a <- d a + (1 - d) p``
            after every step once ``ema_start`` of the run is done (before
            that ``a`` follows ``p``). Buffers are left as trained.
        ema_start: that fraction, in ``[0, 1]``.

    Returns:
        A :class:`TrainResult`. The model is left in eval mode.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(
            f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}"
        )
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty with equal lengths, got {len(x)} and {len(y)}")
    check_optimizer(optimizer, ema_decay, ema_start)
    if per_sample is not None and len(per_sample) != len(x):
        raise ValueError(f"per_sample must have {len(x)} rows, got {len(per_sample)}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev).train()
    x, y = x.to(dev), y.to(dev)
    if per_sample is not None:
        per_sample = per_sample.to(dev)
    opt: torch.optim.Optimizer
    if optimizer == "nadam":
        opt = torch.optim.NAdam(model.parameters(), lr=lr)
    else:
        # fused: one kernel for all parameters (deep stacks have many small tensors)
        opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    n_steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    average = [p.detach().clone() for p in params] if ema_decay > 0 else None
    gen = torch.Generator().manual_seed(seed)
    losses = []
    step = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen).to(dev)
        total = torch.zeros((), device=dev)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            progress = step / n_steps
            if on_step is not None:
                on_step(progress)
            step += 1
            if per_sample is None:
                loss = loss_fn(model(x[idx]), y[idx])
            else:
                loss = loss_fn(model(x[idx]), y[idx], per_sample[idx])
            if penalty is not None:
                loss = loss + penalty(model, x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if average is not None:
                _update_average(average, params, ema_decay if progress >= ema_start else 0.0)
            total += loss.detach() * len(idx)
        losses.append(float(total) / len(x))
    if average is not None:
        with torch.no_grad():
            for p, a in zip(params, average, strict=True):
                p.copy_(a)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    result = TrainResult(tuple(losses), time.process_time() - cpu0, time.perf_counter() - wall0)
    model.eval()
    return result


def check_optimizer(optimizer: str, ema_decay: float, ema_start: float) -> None:
    """Raise ``ValueError`` unless :func:`train_classifier` accepts these three settings."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not (0 <= ema_decay < 1 and 0 <= ema_start <= 1):
        raise ValueError(
            f"need 0 <= ema_decay < 1 and 0 <= ema_start <= 1, got {ema_decay}, {ema_start}"
        )


@torch.no_grad()
def _update_average(average: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """``a <- decay a + (1 - decay) p`` for each pair (``decay = 0`` copies ``p``)."""
    for a, p in zip(average, params, strict=True):
        a.lerp_(p, 1.0 - decay)
