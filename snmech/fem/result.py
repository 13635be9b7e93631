"""What a run produces and how it fails: the result record, step timings, the error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from snmech.fem.timestep import TimeStepReport

Array = npt.NDArray[np.float64]


class SimulationError(RuntimeError):
    """The run failed (NaN/inf, energy error); the message names the step and the cause."""


@dataclass
class Timings:
    """Accumulated wall time (s) of each part of a step."""

    strain: float = 0.0
    material: float = 0.0
    assembly: float = 0.0
    update: float = 0.0
    output: float = 0.0
    steps: int = 0

    def per_step(self) -> dict[str, float]:
        """Seconds per step of each part."""
        n = max(self.steps, 1)
        parts = ("strain", "material", "assembly", "update", "output")
        return {k: getattr(self, k) / n for k in parts}


@dataclass
class SimulationResult:
    """What a run produced (histories on rank 0; energies on every rank)."""

    steps: int
    time: float
    dt: float
    time_step: TimeStepReport | None
    energy: Array
    probes: dict[str, Array] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    wall_time: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary."""
        last = self.energy[-1] if len(self.energy) else np.full(8, np.nan)
        return {
            "steps": self.steps,
            "time_s": self.time,
            "dt_s": self.dt,
            "time_step": None if self.time_step is None else self.time_step.to_dict(),
            "final_energy_j": {
                "kinetic": last[2],
                "internal": last[3],
                "external_work": last[4],
                "damping": last[5],
                "boundary_work": last[6],
            },
            "max_energy_balance_error": float(np.max(np.abs(self.energy[:, 7])))
            if len(self.energy)
            else None,
            "seconds_per_step": self.timings,
            "wall_time_s": self.wall_time,
            "files": self.files,
        }
