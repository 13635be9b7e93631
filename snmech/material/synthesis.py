"""Synthetic stress-strain data from a reference law: random states and loading paths."""

from __future__ import annotations

import math
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from snmech.material.data import StressStrainData
from snmech.material.kinematics import Kinematics

Array = npt.NDArray[np.float64]
Sampling = Literal["random", "uniaxial", "shear", "cyclic", "mixed"]
SAMPLINGS: tuple[str, ...] = ("random", "uniaxial", "shear", "cyclic", "mixed")


class StressLaw(Protocol):
    """Anything with a kinematics and a vectorized ``stress``."""

    kinematics: Kinematics

    def stress(self, strain: Array) -> Array:  # noqa: D102
        ...


def _unit(kin: Kinematics, name: str) -> Array:
    e = np.zeros(kin.size)
    e[list(kin.components).index(name)] = 1.0 if name[0] == name[1] else np.sqrt(2.0)
    return e


def strain_states(
    kinematics: Kinematics,
    n: int,
    sampling: Sampling = "random",
    strain_range: float = 3e-3,
    rng: np.random.Generator | None = None,
) -> tuple[Array, npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None]:
    """Mandel strain states ``(n, size)``, with path ids and steps for path samplings.

    * ``random``: uniformly random directions, Frobenius norm uniform in ``[0, range]``;
    * ``uniaxial``: ``eps_11`` from ``-range`` to ``range`` (one path);
    * ``shear``: ``eps_12`` from ``-range`` to ``range`` (one path);
    * ``cyclic``: 4 paths along random directions, 3 cycles of growing amplitude;
    * ``mixed``: 80 % random, 10 % uniaxial, 10 % shear.
    """
    rng = rng or np.random.default_rng(0)
    k = kinematics.size
    if sampling == "random":
        d = rng.normal(size=(n, k))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return d * (strain_range * rng.uniform(size=(n, 1))), None, None
    if sampling in ("uniaxial", "shear"):
        name = "11" if sampling == "uniaxial" else "12"
        t = np.linspace(-strain_range, strain_range, n)
        return t[:, None] * _unit(kinematics, name), np.zeros(n, np.int64), np.arange(n)
    if sampling == "cyclic":
        n_paths = 4
        per = max(n // n_paths, 2)
        s = np.linspace(0.0, 1.0, per)
        amplitude = strain_range * (0.3 + 0.7 * s) * np.sin(2 * np.pi * 3 * s)
        d = rng.normal(size=(n_paths, k))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        strain = (amplitude[None, :, None] * d[:, None, :]).reshape(-1, k)
        paths = np.repeat(np.arange(n_paths), per)
        return strain, paths, np.tile(np.arange(per), n_paths)
    if sampling == "mixed":
        n_path = max(n // 10, 2)
        a, _, _ = strain_states(kinematics, n - 2 * n_path, "random", strain_range, rng)
        b, _, _ = strain_states(kinematics, n_path, "uniaxial", strain_range, rng)
        c, _, _ = strain_states(kinematics, n_path, "shear", strain_range, rng)
        return np.vstack([a, b, c]), None, None
    raise ValueError(f"unknown sampling {sampling!r}; choose one of {SAMPLINGS}")


def generate_data(
    law: StressLaw,
    n: int,
    *,
    sampling: Sampling = "mixed",
    strain_range: float = 3e-3,
    noise: float = 0.0,
    seed: int = 0,
) -> StressStrainData:
    """Sample strains and evaluate ``law`` there.

    Args:
        law: a reference law (or any law with ``stress`` and ``kinematics``).
        n: number of samples (>= 8).
        sampling: see :func:`strain_states`.
        strain_range: largest strain norm (dimensionless).
        noise: Gaussian noise on stress, relative to the stress standard deviation.
        seed: random seed.

    Returns:
        The data, SI Mandel.
    """
    if n < 8:
        raise ValueError(f"n must be >= 8, got {n}")
    if not (strain_range > 0 and math.isfinite(strain_range) and 0 <= noise < math.inf):
        raise ValueError(f"need strain_range > 0 and noise >= 0, got {strain_range}, {noise}")
    rng = np.random.default_rng(seed)
    strain, path, step = strain_states(law.kinematics, n, sampling, strain_range, rng)
    stress = law.stress(strain)
    if noise > 0:
        stress = stress + noise * stress.std() * rng.normal(size=stress.shape)
    return StressStrainData(
        strain,
        stress,
        law.kinematics,
        path,
        step,
        source=f"{type(law).__name__} ({sampling}, n={n}, seed={seed})",
    )
