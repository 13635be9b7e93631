"""Cyclic strain paths for history-dependent laws, running a stateful law along them, path data.

A batch of paths is an array ``(n_paths, n_steps, size)`` of Mandel strains, each path
starting at zero strain. :func:`run_paths` drives a stateful law (such as
:class:`~snmech.material.plasticity.J2Plasticity`) along all paths at once, looping over
steps only; :func:`paths_to_data` and :func:`paths_from_data` convert to and from
:class:`~snmech.material.data.StressStrainData` with ``path`` and ``step`` columns, which
CSV, NPZ and HDF5 files keep.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from snmech.material.data import DataError, StressStrainData
from snmech.material.kinematics import Kinematics

Array = npt.NDArray[np.float64]
PathKind = Literal["uniaxial", "shear", "random", "mixed"]
PATH_KINDS: tuple[str, ...] = ("uniaxial", "shear", "random", "mixed")
ENVELOPES: tuple[str, ...] = ("growing", "decaying", "bell", "plateau")
MIN_STEPS_PER_CYCLE = 8


class StatefulLaw(Protocol):
    """A law with a per-point state: ``update(strain, state) -> (stress, new_state)``."""

    kinematics: Kinematics
    state_size: int

    def initial_state(self, n: int) -> Array:  # noqa: D102
        ...

    def update(self, strain: Array, state: Array) -> tuple[Array, Array]:  # noqa: D102
        ...


def _envelopes(s: Array, cycles: npt.NDArray[np.int64]) -> Array:
    """Amplitude envelopes ``(len(ENVELOPES), n_paths, n_steps)``, all zero at ``s = 0``."""
    ramp = np.minimum(1.0, 4.0 * cycles[:, None] * s[None, :])  # full after a quarter cycle
    shape = (cycles.size, s.size)
    return np.stack(
        [
            np.broadcast_to(s, shape),  # growing
            ramp * (1.0 - 0.8 * s),  # decaying to 20 %
            np.broadcast_to(np.sin(np.pi * s), shape),  # grow, then decay
            ramp,  # constant
        ]
    )


def _unit(kin: Kinematics, component: str) -> Array:
    """Mandel unit vector (Frobenius norm 1) along one tensor component."""
    e = np.zeros(kin.size)
    e[list(kin.components).index(component)] = 1.0
    return e


def cyclic_paths(
    kinematics: Kinematics | str,
    n_paths: int,
    n_steps: int,
    amplitude: float,
    rng: np.random.Generator | None = None,
    *,
    kind: PathKind = "mixed",
    cycles: tuple[int, int] = (2, 4),
) -> Array:
    r"""Cyclic Mandel strain paths ``(n_paths, n_steps, size)``, starting at zero strain.

    Each path is :math:`\varepsilon(s) = a\,A(s)\,[d_1 \sin(2\pi c s + \psi_1) + d_2
    \sin(2\pi c s + \psi_2)]`, :math:`s \in [0, 1]`, rescaled so that its peak Frobenius
    norm is ``amplitude`` times a random factor in ``[0.5, 1]``. The number of cycles ``c``
    is drawn from ``cycles`` and the envelope ``A`` (zero at ``s = 0``) from
    :data:`ENVELOPES`: growing, decaying, grow-then-decay, constant.

    * ``uniaxial``: uniaxial strain, ``eps_11`` only (random sign);
    * ``shear``: ``eps_12`` only (random sign);
    * ``random``: two orthonormal random directions ``d_1, d_2`` with random phases
      (non-proportional, multiaxial loading);
    * ``mixed``: paths ``i % 3 == 0, 1, 2`` are uniaxial, shear and random.

    For plastic loops, take ``amplitude`` several times the yield strain (about
    ``yield_stress / E``).

    Args:
        kinematics: 3D or plane strain.
        n_paths: number of paths, >= 1.
        n_steps: steps per path, including the zero first step; at least
            ``MIN_STEPS_PER_CYCLE * cycles[1] + 1``.
        amplitude: largest strain norm (dimensionless), > 0.
        rng: random generator (default: seeded with 0).
        kind: see above.
        cycles: ``(min, max)`` number of cycles per path, ``1 <= min <= max``.

    Returns:
        The strain paths, SI Mandel.

    Raises:
        ValueError: an unknown ``kind`` or out-of-range sizes (the message says which).
    """
    kin = Kinematics.parse(kinematics)
    if kind not in PATH_KINDS:
        raise ValueError(f"unknown path kind {kind!r}; choose one of {PATH_KINDS}")
    lo, hi = cycles
    if not 1 <= lo <= hi:
        raise ValueError(f"cycles must be (min, max) with 1 <= min <= max, got {cycles}")
    if n_paths < 1:
        raise ValueError(f"n_paths must be >= 1, got {n_paths}")
    if n_steps < MIN_STEPS_PER_CYCLE * hi + 1:
        raise ValueError(
            f"n_steps must be >= {MIN_STEPS_PER_CYCLE * hi + 1} for up to {hi} cycles "
            f"({MIN_STEPS_PER_CYCLE} steps per cycle), got {n_steps}"
        )
    if not (np.isfinite(amplitude) and amplitude > 0):
        raise ValueError(f"amplitude must be finite and > 0, got {amplitude}")
    rng = rng or np.random.default_rng(0)
    k = kin.size
    s = np.linspace(0.0, 1.0, n_steps)
    n_cycles = rng.integers(lo, hi + 1, size=n_paths)
    which = rng.integers(0, len(ENVELOPES), size=n_paths)
    envelope = _envelopes(s, n_cycles)[which, np.arange(n_paths)]
    codes = {"uniaxial": 0, "shear": 1, "random": 2}
    code = np.arange(n_paths) % 3 if kind == "mixed" else np.full(n_paths, codes[kind])

    d1 = rng.normal(size=(n_paths, k))
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    d2 = rng.normal(size=(n_paths, k))
    d2 -= np.sum(d2 * d1, axis=1, keepdims=True) * d1
    d2 /= np.linalg.norm(d2, axis=1, keepdims=True)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_paths, 2))
    sign = rng.choice([-1.0, 1.0], size=(n_paths, 1))
    for c, component in ((0, "11"), (1, "12")):
        mask = code == c
        d1[mask] = sign[mask] * _unit(kin, component)
        d2[mask] = 0.0
        phase[mask] = 0.0

    theta = 2 * np.pi * n_cycles[:, None] * s[None, :]
    wave = (
        np.sin(theta + phase[:, :1])[:, :, None] * d1[:, None, :]
        + np.sin(theta + phase[:, 1:])[:, :, None] * d2[:, None, :]
    )
    strain = envelope[:, :, None] * wave
    peak = np.linalg.norm(strain, axis=2).max(axis=1)
    scale = amplitude * rng.uniform(0.5, 1.0, size=n_paths) / peak
    out: Array = strain * scale[:, None, None]
    return out


def run_paths(law: StatefulLaw, paths: Array, state: Array | None = None) -> tuple[Array, Array]:
    """Drive a stateful law along strain paths, all paths at once (one update per step).

    Args:
        law: the law (``update``, ``initial_state``, ``kinematics``).
        paths: ``(n_paths, n_steps, size)`` Mandel strains.
        state: ``(n_paths, state_size)`` states before the first step (default: virgin).

    Returns:
        ``(stresses, final_state)``: ``(n_paths, n_steps, size)`` Mandel stress in Pa and
        ``(n_paths, state_size)``.

    Raises:
        ValueError: wrong shapes or NaN (from the law for states).
    """
    x = np.asarray(paths, dtype=np.float64)
    size = law.kinematics.size
    if x.ndim != 3 or x.shape[2] != size:
        raise ValueError(
            f"paths must have shape (n_paths, n_steps, {size}) for {law.kinematics.value}, "
            f"got {x.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError("paths have NaN or inf")
    current = law.initial_state(x.shape[0]) if state is None else state
    stresses = np.empty_like(x)
    for k in range(x.shape[1]):
        stresses[:, k], current = law.update(x[:, k], current)
    return stresses, current


def paths_to_data(
    paths: Array, stresses: Array, kinematics: Kinematics | str, *, source: str = "<memory>"
) -> StressStrainData:
    """Flatten ``(n_paths, n_steps, size)`` strains and stresses into path data.

    Sample ``i * n_steps + k`` is step ``k`` of path ``i``.
    """
    kin = Kinematics.parse(kinematics)
    x, y = np.asarray(paths, dtype=np.float64), np.asarray(stresses, dtype=np.float64)
    if x.ndim != 3 or x.shape != y.shape:
        raise ValueError(
            f"paths and stresses must have the same shape (n_paths, n_steps, size), "
            f"got {x.shape} and {y.shape}"
        )
    n_paths, n_steps, _ = x.shape
    return StressStrainData(
        x.reshape(-1, x.shape[2]),
        y.reshape(-1, y.shape[2]),
        kin,
        np.repeat(np.arange(n_paths, dtype=np.int64), n_steps),
        np.tile(np.arange(n_steps, dtype=np.int64), n_paths),
        source,
    )


def paths_from_data(data: StressStrainData) -> tuple[Array, Array]:
    """Strain and stress paths ``(n_paths, n_steps, size)`` from path data, in any row order.

    Paths are ordered by id and steps by index.

    Raises:
        DataError: no ``path``/``step`` columns, or paths of unequal length or with
            steps other than ``0 .. n_steps - 1``.
    """
    if data.path is None or data.step is None:
        raise DataError(f"{data.source}: path data need 'path' and 'step' columns")
    order = np.lexsort((data.step, data.path))
    ids, counts = np.unique(data.path, return_counts=True)
    if np.any(counts != counts[0]):
        raise DataError(
            f"{data.source}: paths have unequal lengths ({counts.min()} to {counts.max()} steps)"
        )
    n_steps = int(counts[0])
    steps = data.step[order].reshape(ids.size, n_steps)
    if np.any(steps != np.arange(n_steps)):
        raise DataError(f"{data.source}: each path needs steps 0 .. {n_steps - 1} exactly once")
    size = data.kinematics.size
    return (
        data.strain[order].reshape(ids.size, n_steps, size),
        data.stress[order].reshape(ids.size, n_steps, size),
    )


def cyclic_data(
    law: StatefulLaw,
    n_paths: int,
    n_steps: int,
    amplitude: float,
    *,
    kind: PathKind = "mixed",
    seed: int = 0,
) -> StressStrainData:
    """Cyclic paths (:func:`cyclic_paths`) run through ``law`` from the virgin state, as data."""
    rng = np.random.default_rng(seed)
    paths = cyclic_paths(law.kinematics, n_paths, n_steps, amplitude, rng, kind=kind)
    stresses, _ = run_paths(law, paths)
    source = f"{type(law).__name__} (cyclic {kind}, {n_paths} x {n_steps}, seed={seed})"
    return paths_to_data(paths, stresses, law.kinematics, source=source)
