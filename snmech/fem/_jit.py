"""Compiler options for the solver's forms: vectorized kernels where the platform allows.

FFCx generates one scalar loop over quadrature points per cell; with its
default flags (``-O2``) nothing is vectorized, and a law's ``exp`` or ``tanh``
calls scalar libm once per unit and point. Measured here (112k-dof Q1
hexahedra, one core, AVX-512: the 8 Gauss points of a cell are one vector): the
linear-elastic internal force drops from 31 to 8 ms per step, and the default
compiled PotentialLaw (Note in ``snmech.fem._ufl_laws``) takes 16 ms, with

* ``-O3 -march=native``: vector instructions of this CPU;
* ``-fassociative-math -fno-signed-zeros -fno-trapping-math``: lets the
  compiler vectorize the sums over quadrature points (results change at
  rounding level only);
* ``-fno-math-errno`` and glibc's vector math library (``libmvec``), whose
  SIMD ``exp``/``tanh`` declarations glibc's ``math.h`` only makes visible under
  ``__FAST_MATH__`` (defined here for that purpose alone).

Not used: ``-ffinite-math-only`` (part of ``-ffast-math``), so NaN and inf
still propagate and the solver's NaN check still sees them. The options are
used on x86-64 Linux with ``libmvec``; elsewhere FFCx's defaults. A CPU tag
in the options keeps kernels compiled for one CPU out of another CPU's JIT
cache (a shared home directory on a heterogeneous cluster).
"""

from __future__ import annotations

import ctypes.util
import functools
import hashlib
import platform
from pathlib import Path
from typing import Any

VECTOR_FLAGS = [
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
    "-D__FAST_MATH__",
]


@functools.cache
def cpu_tag() -> str:
    """A short hash of this CPU's feature flags (``""`` where ``/proc/cpuinfo`` is unreadable).

    Part of the names of kernels compiled with ``-march=native``, so that one CPU's
    kernels never load on another (a shared home directory on a heterogeneous cluster).
    """
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


@functools.cache
def vector_jit_options() -> dict[str, Any]:
    """FFCx/CFFI options for vectorized kernels, or ``{}`` where they are not available."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return {}
    if ctypes.util.find_library("mvec") is None:
        return {}
    tag = cpu_tag()
    if not tag:
        return {}
    return {
        "cffi_extra_compile_args": [*VECTOR_FLAGS, f"-DSNMECH_CPU_{tag}"],
        "cffi_libraries": ["m", "mvec"],
    }
