"""Pictures of generated samples (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

from pathlib import Path

import torch

from snmech._plot import pyplot, save


def save_samples_png(
    samples: torch.Tensor, path: str | Path, *, modes: torch.Tensor | None = None, title: str = ""
) -> Path:
    """Scatter ``(n, 2)`` samples over the mixture's modes, or tile ``(n, 1, H, W)`` images.

    Args:
        samples: generated samples.
        path: the PNG to write.
        modes: ``(K, 2)`` mode centres to mark (2-D samples only).
        title: figure title.
    """
    plt = pyplot()

    x = samples.detach().cpu()
    if x.dim() == 2:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, color="tab:blue", label="generated")
        if modes is not None:
            ax.scatter(modes[:, 0], modes[:, 1], s=25, marker="x", color="tab:red", label="modes")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=7)
    else:
        n = min(64, len(x))
        side = int(n**0.5)
        imgs = x[: side * side, 0]
        h, w = imgs.shape[1:]
        grid = imgs.reshape(side, side, h, w).permute(0, 2, 1, 3).reshape(side * h, side * w)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(grid, cmap="gray_r", vmin=-1, vmax=1)
        ax.axis("off")
    ax.set_title(title, fontsize=9)
    return save(fig, path, dpi=110)
