"""Versions of the FEM stack, for ``snmech info``."""

from __future__ import annotations

import numpy as np

import snmech.fem  # noqa: F401  (orders dolfinx_solver first)


def stack_versions() -> dict[str, str]:
    """Return versions of dolfinx, PETSc, SLEPc and MPI, and the world size."""
    import dolfinx
    from mpi4py import MPI
    from petsc4py import PETSc

    info = {
        "dolfinx": dolfinx.__version__,
        "PETSc": ".".join(str(x) for x in PETSc.Sys.getVersion()),
        "PETSc scalar": np.dtype(PETSc.ScalarType).name,
        "MPI": MPI.Get_library_version().splitlines()[0].strip(),
        "MPI ranks": str(MPI.COMM_WORLD.size),
    }
    try:
        from slepc4py import SLEPc

        info["SLEPc"] = ".".join(str(x) for x in SLEPc.Sys.getVersion())
    except ImportError:
        info["SLEPc"] = "not installed"
    return info
