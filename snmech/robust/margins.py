"""Which training points to ask a large certified radius of (Note [Far margins]).

Note [Far margins]
    One margin for every point trades accuracy at small radii against radius
    1.0: points close to another class cannot reach a large margin, and asking
    them pushes the decision boundary into the neighbouring class (on digits the
    central classes 8 and 9 lose most). So the large margin is asked only where
    the geometry of the training set allows it: of a point whose nearest
    training point of another class lies farther than ``margin + far_margin``
    (room for a boundary ``far_margin`` from it and ``margin`` from the other),
    and only in classes where at least ``share`` of the points lie farther than
    ``2 radius`` from every other class (the classes where certification at
    ``radius`` is possible for many points; the per-class form of ANCHORS.md's
    ceiling). Everything comes from the training set.
"""

from __future__ import annotations

import torch

_CHUNK = 2048


def nearest_other_class(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Distance from each point to the nearest point of another class (l2, float64).

    Args:
        x: ``(N, *s)`` inputs, flattened per point.
        y: ``(N,)`` labels.

    Returns:
        ``(N,)`` float64; ``inf`` where no other class exists.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have equal lengths, got {len(x)} and {len(y)}")
    flat = x.reshape(len(x), -1).double()
    out = torch.empty(len(x), dtype=torch.float64, device=x.device)
    for i in range(0, len(x), _CHUNK):  # chunks bound the (chunk, N) distance block
        dist = torch.cdist(flat[i : i + _CHUNK], flat)
        same = y[i : i + _CHUNK, None] == y[None, :]
        out[i : i + _CHUNK] = dist.masked_fill(same, float("inf")).min(dim=1).values
    return out


def far_samples(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    margin: float,
    far_margin: float,
    radius: float = 1.0,
    share: float = 0.3,
) -> torch.Tensor:
    """The training points asked for ``far_margin`` instead of ``margin`` (Note [Far margins]).

    Args:
        x: ``(N, *s)`` training inputs.
        y: ``(N,)`` labels.
        margin: the radius asked of every point.
        far_margin: the larger radius asked of the far points (> ``margin``).
        radius: the radius whose class-wise reachability selects the classes.
        share: fraction of a class's points that must lie beyond ``2 radius``.

    Returns:
        ``(N,)`` bool.
    """
    if not 0 <= margin < far_margin:
        raise ValueError(f"need 0 <= margin < far_margin, got {margin}, {far_margin}")
    if not radius > 0 or not 0 <= share <= 1:
        raise ValueError(f"need radius > 0 and 0 <= share <= 1, got {radius}, {share}")
    dist = nearest_other_class(x, y)
    classes, index = torch.unique(y, return_inverse=True)
    beyond = torch.zeros(len(classes), dtype=torch.float64, device=x.device)
    beyond.index_add_(0, index, (dist > 2 * radius).double())
    count = torch.bincount(index, minlength=len(classes)).double()
    far_class = beyond / count >= share
    return far_class[index] & (dist > margin + far_margin)
