"""Image inputs: validation, and scikit-learn's offline 8x8 digits with the benchmark split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DigitsSplit:
    """The digits split of ANCHORS.md: pixels / 16, 80/20 stratified, ``random_state=0``.

    Attributes:
        x_train: ``(1437, 1, 8, 8)`` float32 in [0, 1].
        y_train: ``(1437,)`` int64.
        x_test: ``(360, 1, 8, 8)`` float32 in [0, 1].
        y_test: ``(360,)`` int64.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(*, test_size: float = 0.2, random_state: int = 0) -> DigitsSplit:
    """Load ``sklearn.datasets.load_digits`` (bundled, offline) and split it stratified.

    Args:
        test_size: fraction held out for testing.
        random_state: the split's seed.

    Returns:
        A :class:`DigitsSplit` of ``(N, 1, 8, 8)`` images in [0, 1].

    Raises:
        ImportError: scikit-learn is not installed (``pip install snmech[dev]``).
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the digits data needs scikit-learn (pip install scikit-learn)") from exc
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=random_state, stratify=y
    )
    return DigitsSplit(
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr.astype(np.int64)),
        torch.from_numpy(x_te),
        torch.from_numpy(y_te.astype(np.int64)),
    )


def check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    """Check a labelled batch ``(B, *s)``, ``(B,)`` of any range (certify, attacks).

    Raises:
        ValueError: an empty batch, labels of the wrong shape, NaN or inf inputs.
    """
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"inputs must be a non-empty batch (B, *s), got {tuple(x.shape)}")
    if y.shape != x.shape[:1]:
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("inputs contain NaN or inf")


def validate_images(
    x: torch.Tensor,
    shape: tuple[int, ...],
    *,
    labels: torch.Tensor | None = None,
    n_classes: int | None = None,
) -> None:
    """Check a batch of images (and labels) before a model sees it.

    Args:
        x: ``(B, *shape)`` images with values in [0, 1].
        shape: the per-image shape the model expects, e.g. ``(1, 8, 8)``.
        labels: optional ``(B,)`` integer labels.
        n_classes: labels must lie in ``[0, n_classes)``.

    Raises:
        TypeError: not tensors, or labels not integers.
        ValueError: wrong shape, non-finite values, values outside [0, 1], bad labels.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[1:]) != tuple(shape) or x.dim() != len(shape) + 1:
        raise ValueError(
            f"images must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError("images: empty batch")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"image values must lie in [0, 1] (digits: pixels / 16), got [{lo:.4g}, {hi:.4g}]"
        )
    if labels is None:
        return
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point:
        raise TypeError("labels must be an integer torch.Tensor")
    if labels.shape != x.shape[:1]:
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
    if n_classes is not None and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )
