r"""Margin losses for Lipschitz classifiers, as pure functions.

For an ``L``-Lipschitz (l2) logit map, the difference of two logits is
``sqrt(2) L``-Lipschitz, so a logit margin ``z_y - max_{j != y} z_j`` of
``sqrt(2) L r`` certifies radius ``r``. The losses below take the margin as
that radius ``r`` (for ``L = 1``, the networks of :mod:`snmech.robust.models`)
and ask for logit margins of ``sqrt(2) * margin``.

Note [Soft certified accuracy]
    A margin cross-entropy keeps pulling every point towards its margin: the
    points already far beyond it and the ones that cannot reach it take
    capacity from those near it. The sigmoid of ``(r_i - rho) / s``, with ``r_i``
    the pairwise certified radius, counts a point as certified at ``rho`` when
    ``r_i`` exceeds it by a few widths ``s``; its gradient lives on the points
    within a few ``s`` of ``rho``. Added to the far loss for the far points at
    1.05 (weight 0.3, width 0.1, warmed up with the far term), it raised the
    certified accuracy at 1.0 on digits from 18.3 to 21.4 % (means of six
    seeds), for 1.0 point at 0.25 and 2.9 at 0.5 (README "Certified
    robustness"). Near the radius-0.25 target it moved along the same frontier;
    the default recipe, which also centres its inputs, uses weight 0.0625.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snmech.robust._far_loss import _MIN_DISTANCE, FarMarginLoss


def margin_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: float = 1.0,
    temperature: float = 10.0,
) -> torch.Tensor:
    r"""Cross-entropy on logits with the true class offset down by ``sqrt(2) margin``.

    .. math:: \ell = \frac{1}{T}\,\mathrm{CE}\big(T (z - \sqrt{2}\, m\, e_y),\, y\big)

    Zero-ish only when the true logit leads every other by more than
    ``sqrt(2) m``; the temperature ``T`` sets how sharply the loss ignores
    points that already reach the margin.

    Args:
        logits: ``(B, K)``.
        target: ``(B,)`` class indices.
        margin: the l2 radius aimed for (>= 0).
        temperature: ``T > 0``.

    Returns:
        The mean loss (scalar).
    """
    _check(logits, target, margin, temperature)
    offset = math.sqrt(2.0) * margin * F.one_hot(target, logits.shape[1]).to(logits.dtype)
    return F.cross_entropy(temperature * (logits - offset), target) / temperature


def pairwise_margin_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    head_weight: torch.Tensor,
    *,
    margin: float | torch.Tensor = 1.0,
    temperature: float = 10.0,
) -> torch.Tensor:
    r"""Cross-entropy with each rival logit raised by ``margin * ||w_y - w_j||``.

    .. math:: \ell = \frac{1}{T}\,\mathrm{CE}\big(T (z_j + m \|w_y - w_j\|_2)_j,\, y\big)

    The pairwise form of :func:`margin_cross_entropy` for a 1-Lipschitz feature
    map under a head ``W`` (Note [Pairwise certificate]): near zero only when
    every pairwise radius exceeds ``m``. For an orthogonal head
    (``||w_y - w_j|| = sqrt(2)``) it equals :func:`margin_cross_entropy`.

    Args:
        logits: ``(B, K)``.
        target: ``(B,)`` class indices.
        head_weight: ``(K, F)`` the weight the head applies (gradients flow to it).
        margin: the l2 radius aimed for (>= 0): a number, or ``(B,)`` one per sample.
        temperature: ``T > 0``.

    Returns:
        The mean loss (scalar).
    """
    if isinstance(margin, torch.Tensor):
        if margin.shape != target.shape:
            raise ValueError(
                f"per-sample margins must be ({len(target)},), got {tuple(margin.shape)}"
            )
        _check(logits, target, float(margin.min()) if margin.numel() else 0.0, temperature)
        margin = margin.to(logits.dtype)[:, None]
    else:
        _check(logits, target, margin, temperature)
    rival = _rival_distances(logits, target, head_weight)
    return F.cross_entropy(temperature * (logits + margin * rival), target) / temperature


def far_margin_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    head_weight: torch.Tensor,
    far: torch.Tensor,
    *,
    margin: float = 0.6,
    far_margin: float = 1.0,
    far_weight: float = 1.5,
    temperature: float = 10.0,
    soft_weight: float = 0.0,
    soft_radius: float = 1.05,
    soft_width: float = 0.1,
) -> torch.Tensor:
    r"""Pairwise margin cross-entropy plus a weighted term with larger margins at far points.

    .. math:: \ell = \mathrm{PCE}_m + w\, \mathrm{PCE}_{m_i}
        + w_s\, (1 - \mathrm{SCA}_{far}),
        \qquad m_i = m_{far} \text{ at far points, } m \text{ elsewhere}

    (PCE: :func:`pairwise_margin_cross_entropy`; SCA: the
    :func:`soft_certified_accuracy` of the far points at ``soft_radius``, Note
    [Soft certified accuracy]). The far points come from
    :func:`snmech.robust.margins.far_samples` (Note [Far margins]). With a far
    or soft term the loss is one autograd node with a written-out backward
    (Note [Fused far-margin loss]): first-order gradients only.

    Args:
        logits: ``(B, K)``.
        target: ``(B,)`` class indices.
        head_weight: ``(K, F)`` the weight the head applies.
        far: ``(B,)`` bool, the far points of the batch.
        margin: the radius asked of every point (>= 0).
        far_margin: the radius asked of far points (> ``margin``).
        far_weight: ``w >= 0``.
        temperature: ``T > 0``.
        soft_weight: ``w_s >= 0``, weight of the soft certified accuracy term.
        soft_radius: the radius that term counts the far points at (> 0), in
            the input's l2 units.
        soft_width: its sigmoid's width (> 0), same units.

    Returns:
        The mean loss (scalar).
    """
    if far.shape != target.shape or far.dtype != torch.bool:
        raise ValueError(f"far must be a bool tensor of shape {tuple(target.shape)}")
    check_far_margins(margin, far_margin, far_weight)
    check_soft_term(soft_weight, soft_radius, soft_width)
    if far_weight == 0 and soft_weight == 0:
        return pairwise_margin_cross_entropy(
            logits, target, head_weight, margin=margin, temperature=temperature
        )
    _check(logits, target, margin, temperature)
    _check_head(logits, head_weight)
    loss: torch.Tensor = FarMarginLoss.apply(
        logits,
        target,
        head_weight,
        far,
        margin,
        far_margin,
        far_weight,
        temperature,
        soft_weight,
        soft_radius,
        soft_width,
    )
    return loss


def soft_certified_accuracy(
    logits: torch.Tensor,
    target: torch.Tensor,
    head_weight: torch.Tensor,
    *,
    radius: float,
    width: float = 0.1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""A differentiable stand-in for the pairwise certified accuracy at ``radius``.

    .. math:: \frac{1}{|S|} \sum_{i \in S} \sigma\Big(\frac{r_i - \rho}{s}\Big),
        \qquad r_i = \min_{j \ne y_i} \frac{z_{y_i} - z_j}{\|w_{y_i} - w_j\|_2}

    ``r_i`` is the pairwise certified radius of Note [Pairwise certificate] for a
    1-Lipschitz feature map under the head ``W`` (negative where the point is
    misclassified), so the sum tends to the count of points certified at
    ``rho`` as ``s -> 0`` (Note [Soft certified accuracy]).

    Args:
        logits: ``(B, K)``.
        target: ``(B,)`` class indices.
        head_weight: ``(K, F)`` the weight the head applies (gradients flow to it).
        radius: ``rho > 0``, in the input's l2 units.
        width: ``s > 0``, same units.
        mask: ``(B,)`` bool, the points ``S`` averaged over (all when ``None``);
            0 when it selects none.

    Returns:
        A scalar in ``[0, 1]``.
    """
    _check(logits, target)
    check_soft_term(1.0, radius, width)
    rival = _rival_distances(logits, target, head_weight)
    hits = _soft_hits(logits, target, rival, radius, width)
    if mask is None:
        return hits.mean()
    if mask.shape != target.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(target.shape)}")
    return _masked_mean(hits, mask)


def _soft_hits(
    logits: torch.Tensor, target: torch.Tensor, rival: torch.Tensor, radius: float, width: float
) -> torch.Tensor:
    """``(B,)`` sigmoids of each point's pairwise radius, given ``(B, K)`` rival distances."""
    lead = logits.gather(1, target[:, None]) - logits
    # the true class's own column (0 / 0) is replaced before the minimum
    radii = (lead / rival.scatter(1, target[:, None], 1.0)).scatter(
        1, target[:, None], float("inf")
    )
    return torch.sigmoid((radii.amin(dim=1) - radius) / width)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` holds; 0 (with a zero gradient) where it holds nowhere."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def check_soft_term(weight: float, radius: float, width: float) -> None:
    """Raise ``ValueError`` unless ``weight >= 0``, ``radius > 0`` and ``width > 0``."""
    if not (0 <= weight < math.inf and 0 < radius < math.inf and 0 < width < math.inf):
        raise ValueError(
            "need finite soft weight >= 0, radius > 0 and width > 0, "
            f"got {weight}, {radius}, {width}"
        )


def check_far_margins(margin: float, far_margin: float, far_weight: float) -> None:
    """Raise ``ValueError`` unless ``0 <= margin < far_margin`` and ``far_weight >= 0``."""
    if not (0 <= margin < far_margin < math.inf and 0 <= far_weight < math.inf):
        raise ValueError(
            "need 0 <= margin < far_margin and far_weight >= 0, all finite, "
            f"got {margin}, {far_margin}, {far_weight}"
        )


def head_row_distances(head_weight: torch.Tensor) -> torch.Tensor:
    """``(K, K)`` distances ``||w_i - w_j||`` between head rows, with a finite gradient at 0."""
    diff = head_weight[:, None, :] - head_weight[None, :, :]
    # sqrt of a clamped sum of squares: the diagonal (0) keeps a finite gradient
    return diff.pow(2).sum(dim=-1).clamp_min(_MIN_DISTANCE**2).sqrt()


def _rival_distances(
    logits: torch.Tensor, target: torch.Tensor, head_weight: torch.Tensor
) -> torch.Tensor:
    """``(B, K)``: ``||w_y - w_j||`` for each rival ``j`` of each target ``y``, 0 at ``j = y``."""
    _check_head(logits, head_weight)
    # scatter, not a one-hot mask: F.one_hot range-checks its input on every call
    return head_row_distances(head_weight)[target].scatter(1, target[:, None], 0.0)


def _check_head(logits: torch.Tensor, head_weight: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``head_weight`` is ``(K, F)`` for ``(B, K)`` logits."""
    if head_weight.dim() != 2 or head_weight.shape[0] != logits.shape[1]:
        raise ValueError(
            f"head_weight must be ({logits.shape[1]}, F), got {tuple(head_weight.shape)}"
        )


def hinge_kantorovich(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: float = 1.0,
    alpha: float = 10.0,
) -> torch.Tensor:
    r"""Multi-class hinge-Kantorovich-Rubinstein loss (Serrurier et al., 2021).

    With :math:`d_j = z_y - z_j` for :math:`j \ne y`:

    .. math:: \ell = \alpha\, \mathrm{mean}_j \max(0, \sqrt{2}\, m - d_j)
        - \mathrm{mean}_j\, d_j

    The hinge asks for the margin, the Kantorovich term keeps pushing classes apart.

    Args:
        logits: ``(B, K)``.
        target: ``(B,)`` class indices.
        margin: the l2 radius aimed for (>= 0).
        alpha: weight of the hinge term (>= 0).

    Returns:
        The mean loss (scalar).
    """
    _check(logits, target, margin)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    true = logits.gather(1, target[:, None])
    others = ~F.one_hot(target, logits.shape[1]).bool()
    d = (true - logits)[others].reshape(len(logits), -1)
    hinge = F.relu(math.sqrt(2.0) * margin - d).mean()
    return alpha * hinge - d.mean()


def logit_margin(logits: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample margin ``z_y - max_{j != y} z_j`` (or top-1 minus top-2 without target).

    Args:
        logits: ``(B, K)``, ``K >= 2``.
        target: ``(B,)`` class indices, or ``None`` for the predicted class.

    Returns:
        ``(B,)``; negative where ``target`` is not the predicted class.
    """
    if target is None:
        top = logits.topk(2, dim=1).values
        return top[:, 0] - top[:, 1]
    true = logits.gather(1, target[:, None])[:, 0]
    other = logits.masked_fill(F.one_hot(target, logits.shape[1]).bool(), float("-inf"))
    return true - other.max(dim=1).values


def _check(
    logits: torch.Tensor, target: torch.Tensor, margin: float = 0.0, temperature: float = 1.0
) -> None:
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (B, K) with K >= 2, got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must be ({logits.shape[0]},), got {tuple(target.shape)}")
    if not 0 <= margin < math.inf:
        raise ValueError(f"margin must be finite and >= 0, got {margin}")
    if not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be > 0, got {temperature}")
