"""Finite elements on dolfinx: the only part of snmech that needs dolfinx.

``dolfinx_solver`` (the ``dolfinx-solver-real`` wheel) must be imported before
dolfinx or petsc4py: it loads ``mpi4py.MPI`` ahead of the compiled bindings.
A dolfinx from conda or a source build has no such package; then dolfinx is
used as it is.
"""

from __future__ import annotations

try:
    import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py; see module docstring)
except ImportError:  # dolfinx installed another way (conda, spack, source)
    pass

import dolfinx  # noqa: F401  (fail here, clearly, if there is no dolfinx at all)

from snmech.fem.boundary import (
    Clamp,
    Gravity,
    MovingLoad,
    PrescribedDisplacement,
    PrescribedVelocity,
    Traction,
)
from snmech.fem.mass import lumped_mass
from snmech.fem.mesh_io import read_mesh, write_mesh
from snmech.fem.mesh_quality import check_mesh, distort
from snmech.fem.meshes import TaggedMesh, beam_mesh, bridge_mesh
from snmech.fem.result import SimulationError, SimulationResult
from snmech.fem.solver import ExplicitSolver, UnsafeTimeStepError
from snmech.fem.static import CantileverCheck, cantilever_check, solve_linear_elastic
from snmech.fem.timestep import TimeStepReport, stable_time_step

__all__ = [
    "CantileverCheck",
    "Clamp",
    "ExplicitSolver",
    "Gravity",
    "MovingLoad",
    "PrescribedDisplacement",
    "PrescribedVelocity",
    "SimulationError",
    "SimulationResult",
    "TaggedMesh",
    "TimeStepReport",
    "Traction",
    "UnsafeTimeStepError",
    "beam_mesh",
    "bridge_mesh",
    "cantilever_check",
    "check_mesh",
    "distort",
    "lumped_mass",
    "read_mesh",
    "solve_linear_elastic",
    "stable_time_step",
    "write_mesh",
]
