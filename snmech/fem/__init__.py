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

from snmech.fem.static import CantileverCheck, cantilever_check, solve_linear_elastic

__all__ = ["CantileverCheck", "cantilever_check", "solve_linear_elastic"]
