"""The training loop: Adam or NAdam with a cosine schedule over all steps, seeded minibatches."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.optim.adam import adam

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
            Nesterov momentum: :class:`LeanNAdam`, ``torch.optim.NAdam``'s step
            with its defaults).
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
        opt = LeanNAdam(model.parameters(), lr=lr)
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
            # a parametrized weight used by the model and by the loss (a unit-row
            # head) is computed once per step, not once per use
            with parametrize.cached():
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
def _update_average(
    average: Sequence[torch.Tensor], params: Sequence[torch.Tensor], decay: float
) -> None:
    """``a <- decay a + (1 - decay) p`` for each pair (``decay = 0`` copies ``p``)."""
    torch._foreach_lerp_(list(average), list(params), 1.0 - decay)


class LeanNAdam(torch.optim.Optimizer):
    """``torch.optim.NAdam``'s step (Dozat 2016) with its defaults and fewer kernels.

    Same update as ``torch.optim.NAdam(params, lr)``: ``betas = (0.9, 0.999)``,
    ``eps = 1e-8``, ``momentum_decay = 4e-3``, no weight decay. Works on any device.

    Note [A lean NAdam step]
        torch's NAdam has no fused kernel, and its single-tensor CPU path keeps
        the step count and the momentum product in scalar tensors, converted on
        every step: for the digits CPL (4 parameter tensors, 66k numbers) about
        0.5 ms a step against fused Adam's 0.18 ms. NAdam's step is, with
        ``d = sqrt(v_t / (1 - beta2^t)) + eps``, ``-(c_g g + c_m m_t) / d`` where
        ``m_t = beta1 m + (1 - beta1) g``: a multiple ``k (b m + (1 - b) g)`` of
        another mix of the same two terms (``k = c_g + c_m``, ``b = c_m beta1 /
        k``). So one fused Adam step with ``beta1 = b`` and the learning rate
        that makes its bias-corrected step ``k`` moves the parameters and
        updates ``v`` exactly as NAdam does, and one multi-tensor ``lerp``
        turns Adam's stored average ``b m + (1 - b) g`` into NAdam's ``m_t``:
        two kernels per step instead of eight per tensor. The step count and
        the momentum product are Python floats and the coefficients float64
        (torch's momentum product is a float32 tensor), so parameters agree with
        ``torch.optim.NAdam`` to rounding, not bit for bit.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        momentum_decay: float = 4e-3,
    ) -> None:
        if not lr > 0 or not eps > 0 or not momentum_decay >= 0:
            raise ValueError(
                f"need lr > 0, eps > 0, momentum_decay >= 0; got {lr}, {eps}, {momentum_decay}"
            )
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "momentum_decay": momentum_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter with a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, psi = group["lr"], group["eps"], group["momentum_decay"]
            by_step: dict[int, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LeanNAdam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["mu_product"] = 1.0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["adam_step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["step"] += 1
                by_step.setdefault(state["step"], []).append(p)
            for t, params in by_step.items():
                self._nadam_step(params, t, lr, beta1, beta2, eps, psi)
        return loss

    def _nadam_step(
        self,
        params: list[torch.Tensor],
        t: int,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        psi: float,
    ) -> None:
        """NAdam's step ``t`` of ``params`` as one fused Adam step (Note [A lean NAdam step])."""
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        states = [self.state[p] for p in params]
        mu_product = states[0]["mu_product"] * mu
        for state in states:
            state["mu_product"] = mu_product
        c_grad = lr * (1.0 - mu) / (1.0 - mu_product)
        c_avg = lr * mu_next / (1.0 - mu_product * mu_next)
        # NAdam moves by (c_grad g + c_avg m_t) / d, m_t = beta1 m + (1 - beta1) g: a
        # combination k (b1 m + (1 - b1) g) of the old average and the gradient
        k = c_grad + c_avg
        b1 = c_avg * beta1 / k
        grads = [p.grad for p in params]
        avgs = [state["exp_avg"] for state in states]
        adam(
            params,
            grads,  # type: ignore[arg-type]
            avgs,
            [state["exp_avg_sq"] for state in states],
            [],
            [state["adam_step"] for state in states],
            fused=True,
            amsgrad=False,
            beta1=b1,
            beta2=beta2,
            lr=k * (1.0 - b1**t),  # Adam divides by 1 - b1^t
            weight_decay=0.0,
            eps=eps,
            maximize=False,
        )
        # Adam kept b1 m + (1 - b1) g; NAdam's m_t is the same two-term mix with beta1
        torch._foreach_lerp_(avgs, grads, 1.0 - beta1 / b1)  # type: ignore[arg-type]
