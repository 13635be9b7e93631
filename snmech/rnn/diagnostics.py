"""Gradient-flow diagnostics: ``||dh_T/dh_0||_2`` and ``||dL/dh_t||`` per step.

Both are *estimates on one input*, returned as numbers (no printing, no
asserting). They accept :class:`~snmech.rnn.SpectralRNN` and single-layer
``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (the LSTM's cell state ``c_0`` is held
fixed at zero), so the normalized net and its plain peers are measured alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.rnn.sequence import SpectralRNN

Recurrent = SpectralRNN | nn.RNN | nn.GRU | nn.LSTM


def _check_model(model: nn.Module) -> None:
    if isinstance(model, SpectralRNN):
        return
    if isinstance(model, nn.RNN | nn.GRU | nn.LSTM):
        if model.num_layers != 1 or model.bidirectional:
            raise ValueError("diagnostics support single-layer, unidirectional torch RNNs")
        if getattr(model, "proj_size", 0):
            raise ValueError("diagnostics do not support LSTM proj_size")
        return
    raise TypeError(f"expected SpectralRNN, nn.RNN, nn.GRU or nn.LSTM, got {type(model).__name__}")


def _run(model: nn.Module, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Final state ``(B, H)`` from batch-first ``x`` ``(B, T, I)`` and ``h0`` ``(B, H)``."""
    h_t: torch.Tensor
    if isinstance(model, SpectralRNN):
        h_t = model(x, h0)[1]
        return h_t
    xs = x if model.batch_first else x.transpose(0, 1)
    if isinstance(model, nn.LSTM):
        h_t = model(xs, (h0[None], torch.zeros_like(h0)[None]))[1][0][0]
    else:
        h_t = model(xs, h0[None])[1][0]
    return h_t


def _as_batch(x: torch.Tensor, input_size: int) -> torch.Tensor:
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or x.shape[0] != 1 or x.shape[-1] != input_size:
        raise ValueError(
            f"x must be (T, {input_size}) or (1, T, {input_size}), got {tuple(x.shape)}"
        )
    return x


def hidden_jacobian_norm(
    model: Recurrent,
    x: torch.Tensor,
    h0: torch.Tensor | None = None,
    *,
    dtype: torch.dtype = torch.float64,
) -> float:
    r"""The spectral norm of the state Jacobian over a whole sequence.

    .. math:: \left\| \frac{\partial h_T}{\partial h_0} \right\|_2

    The ``H x H`` Jacobian comes from one backward pass: ``h_0`` is replicated
    ``H`` times, and row ``i`` of the batch contributes only ``h_T[i, i]``. The
    model is copied to ``dtype`` first (float64 by default: plain RNNs reach
    1e-100, below float32's range), so ``model`` itself is untouched.

    Args:
        model: a :class:`SpectralRNN` or a single-layer ``nn.RNN``/``nn.GRU``/``nn.LSTM``.
        x: one input sequence, ``(T, input_size)`` or ``(1, T, input_size)``.
        h0: the state ``(hidden_size,)`` to linearize at; zeros if ``None``.
        dtype: the dtype of the computation.

    Returns:
        ``||dh_T/dh_0||_2`` as a float.

    Raises:
        TypeError: an unsupported model.
        ValueError: wrong shapes.
    """
    _check_model(model)
    hidden = model.hidden_size
    x = _as_batch(x, model.input_size)
    work = _copy(model).to(dtype)
    x = x.to(dtype).expand(hidden, -1, -1)
    start = torch.zeros(hidden, dtype=dtype, device=x.device) if h0 is None else h0.to(dtype)
    if tuple(start.shape) != (hidden,):
        raise ValueError(f"h0 must be ({hidden},), got {tuple(start.shape)}")
    h0_rep = start.expand(hidden, hidden).clone().requires_grad_(True)
    with torch.enable_grad():
        h_t = _run(work, x, h0_rep)
        (jac,) = torch.autograd.grad(h_t.diagonal().sum(), h0_rep)
    return float(torch.linalg.matrix_norm(jac, ord=2))


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy, or a clear error where torch refuses one."""
    try:
        return copy.deepcopy(model)
    except RuntimeError as exc:
        # a parametrized nn.RNN keeps the weight it last computed (training pass, .to())
        raise ValueError(
            f"cannot copy the {type(model).__name__} ({exc.args[0].split('.')[0]}); a "
            "parametrized or spectral_norm weight computed with autograd on: call "
            "model.eval() and run one forward pass (and any .to()/.cpu()) under "
            "torch.no_grad() first"
        ) from exc


def _step_states(model: nn.Module, x: torch.Tensor, h0: torch.Tensor) -> list[torch.Tensor]:
    """Unroll step by step; returns leaf perturbations ``d_t`` (zeros) and ``h_T`` last.

    ``h_t`` is replaced by ``h_t + d_t`` before step ``t + 1``, so ``dL/dd_t``
    is the *total* derivative ``dL/dh_t`` through all later steps.
    """
    batch, steps, _ = x.shape
    deltas = [torch.zeros_like(h0, requires_grad=True) for _ in range(steps)]
    h = h0
    if isinstance(model, SpectralRNN):
        with parametrize.cached():
            w_hh = model.cell.weight_hh
            xs = model.cell.project_input(x).unbind(1)
            for t in range(steps):
                h = model.cell.step(xs[t], h, w_hh) + deltas[t]
        return [*deltas, h]
    c = torch.zeros_like(h0)
    for t in range(steps):
        xt = x[:, t : t + 1] if model.batch_first else x[:, t : t + 1].transpose(0, 1)
        if isinstance(model, nn.LSTM):
            _, (hn, cn) = model(xt, (h[None], c[None]))
            h, c = hn[0] + deltas[t], cn[0]
        else:
            h = model(xt, h[None])[1][0] + deltas[t]
    return [*deltas, h]


def loss_gradient_per_step(
    model: Recurrent,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    r"""How much the loss at the end still "hears" each step: :math:`\|\partial L/\partial h_t\|`.

    Args:
        model: a :class:`SpectralRNN` or a single-layer ``nn.RNN``/``nn.GRU``/``nn.LSTM``.
        x: a batch of inputs ``(B, T, input_size)``.
        loss_fn: maps the final state ``(B, hidden_size)`` to a scalar loss.

    Returns:
        ``(T,)`` float64 tensor: the Frobenius norm over batch and features of
        ``dL/dh_t`` for ``t = 1..T`` (index ``T-1`` is the last step).

    Raises:
        TypeError: an unsupported model.
        ValueError: wrong shapes.
    """
    _check_model(model)
    if x.dim() != 3 or x.shape[-1] != model.input_size:
        raise ValueError(f"x must be (B, T, {model.input_size}), got {tuple(x.shape)}")
    h0 = x.new_zeros(x.shape[0], model.hidden_size)
    with torch.enable_grad():
        *deltas, h_t = _step_states(model, x, h0)
        grads = torch.autograd.grad(loss_fn(h_t), deltas, allow_unused=True)
    return torch.tensor(
        [0.0 if g is None else float(torch.linalg.vector_norm(g)) for g in grads],
        dtype=torch.float64,
    )
