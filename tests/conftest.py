"""Shared markers: tests needing dolfinx, CUDA or 2 MPI ranks skip cleanly without them."""

from __future__ import annotations

import importlib.util

import pytest
import torch

HAVE_DOLFINX = importlib.util.find_spec("dolfinx") is not None


def _world_size() -> int:
    if not HAVE_DOLFINX:
        return 1
    from mpi4py import MPI

    import snmech.fem  # noqa: F401  (orders dolfinx_solver/mpi4py first)

    return MPI.COMM_WORLD.size


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    size = _world_size()
    for item in items:
        if "fem" in item.keywords and not HAVE_DOLFINX:
            item.add_marker(pytest.mark.skip(reason="dolfinx is not installed"))
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="no CUDA device"))
        if "mpi" in item.keywords and size < 2:
            item.add_marker(pytest.mark.skip(reason="run under mpirun -n 2 (make test does)"))
