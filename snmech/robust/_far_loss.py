r"""The far-margin loss as one autograd node (Note [Fused far-margin loss]).

Note [Fused far-margin loss]
    :func:`snmech.robust.functional.far_margin_cross_entropy` works on ``(B, K)``
    logits (a batch of 128, ten classes): every operation is a few microseconds
    of kernel launch and autograd bookkeeping around almost no arithmetic.
    Written with autograd, its forward and backward were about 60 small
    kernels, a fifth of the digits model's training step on one CPU. Here the
    forward computes the loss without recording a graph, and the backward is
    written out: with ``p`` the softmax of the scaled base logits
    ``T (z + m d)`` (``d_ij = ||w_{y_i} - w_j||``), ``q`` that of the far logits
    (``m_far`` at far points), ``e`` the one-hot targets and ``c`` the weights of
    the two cross-entropies over ``B T``,

    .. math:: \partial z = T (c_1 (p - e) + c_2 (q - e)) + \partial z_{soft}, \quad
        \partial d = m T (c_1 (p - e) + c_2 (q - e))
        + (m_{far} - m) T\, c_2 (q - e) [far] + \partial d_{soft}

    The soft term's radius ``r_i = (z_{y_i} - z_j) / d_ij`` at its minimizing
    rival ``j`` passes ``dr_i / d_ij`` to ``z_{y_i}`` and ``-z_j``, and
    ``-dr_i r_i / d_ij`` to ``d_ij``. The row distances collect ``e^T \partial d``,
    and ``||w_a - w_b||`` passes ``(w_a - w_b) / ||w_a - w_b||`` times its
    gradient to ``w_a`` (``-`` to ``w_b``). Checked against the same loss built
    from the public pieces with autograd, and by ``gradcheck`` in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_MIN_DISTANCE = 1e-6  # head rows closer than this count as this far apart


class FarMarginLoss(torch.autograd.Function):
    """``far_margin_cross_entropy(logits, target, head_weight, far, ...)``, fused.

    ``forward(ctx, logits, target, head_weight, far, margin, far_margin, far_weight,
    temperature, soft_weight, soft_radius, soft_width)``; arguments checked by the
    caller. Gradients flow to ``logits`` and ``head_weight``; first order only.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        logits: torch.Tensor,
        target: torch.Tensor,
        head_weight: torch.Tensor,
        far: torch.Tensor,
        margin: float,
        far_margin: float,
        far_weight: float,
        temperature: float,
        soft_weight: float,
        soft_radius: float,
        soft_width: float,
    ) -> torch.Tensor:
        t, n = temperature, len(logits)
        col = target[:, None]
        # exact row distances (no Gram-matrix shortcut), clamped as the unfused loss did
        dist = torch.cdist(
            head_weight[None], head_weight[None], compute_mode="donot_use_mm_for_euclid_dist"
        )[0].clamp_min_(_MIN_DISTANCE)
        rival = dist[target].scatter_(1, col, 0.0)  # (B, K): ||w_y - w_j||, 0 at j = y
        base = torch.add(logits, rival, alpha=margin).mul_(t)
        base_log = F.log_softmax(base, dim=1)
        loss = F.nll_loss(base_log, target, reduction="sum")
        farf = far.to(logits.dtype)[:, None]
        far_log = base_log
        if far_weight > 0:
            far_logits = torch.addcmul(base, farf, rival, value=t * (far_margin - margin))
            far_log = F.log_softmax(far_logits, dim=1)
            loss = loss.add_(F.nll_loss(far_log, target, reduction="sum"), alpha=far_weight)
        loss = loss.mul_(1.0 / (n * t))
        soft: tuple[torch.Tensor, ...] = ()
        if soft_weight > 0:
            denom = rival.scatter(1, col, 1.0)
            radii = logits.gather(1, col).sub(logits).div_(denom).scatter_(1, col, math.inf)
            r_min, j_min = radii.min(dim=1)
            hits = r_min.sub(soft_radius).div_(soft_width).sigmoid_()
            far_share = farf[:, 0] / far.sum().clamp_min(1)  # 1 / (number of far points)
            loss = loss.add_(torch.dot(hits, far_share), alpha=-soft_weight).add_(soft_weight)
            soft = (denom, r_min, j_min, hits, far_share)
        ctx.save_for_backward(target, head_weight, dist, farf, base_log, far_log, *soft)
        ctx.numbers = (margin, far_margin, far_weight, soft_weight, soft_width)  # type: ignore[attr-defined]
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        target, head_weight, dist, farf, base_log, far_log, *soft = ctx.saved_tensors  # type: ignore[attr-defined]
        margin, far_margin, far_weight, soft_weight, soft_width = ctx.numbers  # type: ignore[attr-defined]
        n = len(target)
        col = target[:, None]
        onehot = torch.zeros_like(base_log).scatter_(1, col, 1.0)
        # for a unit upstream gradient (scaled by `grad` at the end): T c_1 = 1 / n
        g_logits = base_log.exp().sub_(onehot)
        g_far = None
        if far_weight > 0:
            g_far = far_log.exp().sub_(onehot)
            g_logits.add_(g_far, alpha=far_weight)
        g_logits.mul_(1.0 / n)
        g_rival = g_logits * margin
        if g_far is not None:
            g_rival.addcmul_(farf, g_far, value=(far_margin - margin) * far_weight / n)
        if soft:
            denom, r_min, j_min, hits, far_share = soft
            rival_col = j_min[:, None]
            g_lead = (hits * (1.0 - hits)).mul_(far_share).div_(denom.gather(1, rival_col)[:, 0])
            g_lead.mul_(-soft_weight / soft_width)
            g_logits.scatter_add_(1, col, g_lead[:, None])
            g_logits.scatter_add_(1, rival_col, g_lead.neg()[:, None])
            g_rival.scatter_add_(1, rival_col, g_lead.mul_(r_min).neg_()[:, None])
        # rival[i, j] = dist[y_i, j]; the diagonal (clamped) passes no gradient
        g_unit = torch.mm(onehot.T, g_rival).mul_(dist > _MIN_DISTANCE).div_(dist)
        g_pair = g_unit.add_(g_unit.T.clone())
        # d ||w_a - w_b|| / d w_a = (w_a - w_b) / ||w_a - w_b||: sum_b g_ab (w_a - w_b)
        g_weight = torch.addmm(
            head_weight * g_pair.sum(dim=1, keepdim=True), g_pair, head_weight, alpha=-1.0
        )
        return (
            g_logits.mul_(grad),
            None,
            g_weight.mul_(grad),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )
