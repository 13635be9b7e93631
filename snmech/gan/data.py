"""Training data: PacGAN's 2-D Gaussian mixtures (ring8, grid25) and the 8x8 digits.

Note [PacGAN mixtures]
    ring8: 8 Gaussians centred on the unit circle at angles ``2 pi k / 8``
    (``endpoint=False``: a widely copied sampler uses ``linspace(0, 2 pi, 8)``
    and so draws only 7 distinct modes), standard deviation 0.01.
    grid25: 25 Gaussians at ``{-4, -2, 0, 2, 4}^2``, standard deviation 0.05.
    Each sample picks a mode uniformly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

DATASETS = ("ring8", "grid25", "digits")
MIXTURES = ("ring8", "grid25")


@dataclass(frozen=True)
class Mixture:
    """An isotropic Gaussian mixture with equal weights.

    Attributes:
        name: ``"ring8"`` or ``"grid25"``.
        modes: ``(K, 2)`` float64 centres.
        std: the common standard deviation.
    """

    name: str
    modes: torch.Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` float32 samples, ``(n, 2)``.

        Args:
            n: number of samples (>= 1).
            generator: the random stream (``torch.Generator``); global one if None.
        """
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        k = torch.randint(len(self.modes), (int(n),), generator=generator)
        noise = torch.randn(int(n), 2, generator=generator, dtype=torch.float64)
        return (self.modes[k] + self.std * noise).float()


def check_dataset(name: str) -> str:
    """Return ``name`` if it is one of :data:`DATASETS`; raise ``ValueError`` listing them."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return name


def mixture(name: str) -> Mixture:
    """The mixture ``"ring8"`` or ``"grid25"`` of Note [PacGAN mixtures].

    Raises:
        ValueError: any other name.
    """
    if name == "ring8":
        angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
        return Mixture("ring8", torch.stack([angles.cos(), angles.sin()], 1), 0.01)
    if name == "grid25":
        axis = torch.arange(-4.0, 5.0, 2.0, dtype=torch.float64)
        gx, gy = torch.meshgrid(axis, axis, indexing="ij")
        return Mixture("grid25", torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), 0.05)
    check_dataset(name)
    raise ValueError(f"{name!r} is not a 2-D mixture; choose one of {', '.join(MIXTURES)}")


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits as ``(1797, 1, 8, 8)`` float32 in [-1, 1] and labels.

    Raises:
        ImportError: scikit-learn is not installed (``pip install snmech[dev]``).
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as exc:  # pragma: no cover - dev dependency
        raise ImportError(
            "the digits data set needs scikit-learn: pip install snmech[dev]"
        ) from exc
    d = _load()
    x = torch.from_numpy(np.asarray(d.images, dtype=np.float32) / 8.0 - 1.0).unsqueeze(1)
    return x, torch.from_numpy(np.asarray(d.target, dtype=np.int64))


class DataStream:
    """Batches of real data for a named data set, drawn from one ``torch.Generator``.

    Args:
        name: one of :data:`DATASETS`.
        generator: the random stream; its state is what a checkpoint saves.
    """

    def __init__(self, name: str, generator: torch.Generator) -> None:
        self.name = check_dataset(name)
        self.generator = generator
        self._mixture = mixture(name) if name in MIXTURES else None
        self._images = None if self._mixture is not None else load_digits()[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(2,)`` or ``(1, 8, 8)``."""
        return (2,) if self._mixture is not None else (1, 8, 8)

    def batch(self, n: int) -> torch.Tensor:
        """``n`` real samples (with replacement for the digits)."""
        if self._mixture is not None:
            return self._mixture.sample(n, self.generator)
        assert self._images is not None
        idx = torch.randint(len(self._images), (int(n),), generator=self.generator)
        return self._images[idx]
