"""Batched stress evaluation for a solver: one call per step for all points.

A solver holds strains of every quadrature point in one float64 array and
wants stresses back in another. :class:`MaterialEvaluator` does that round
trip for any material of DESIGN.md's protocol: torch laws run under
``no_grad`` in a chosen dtype and device (float32 and CUDA when present are
the fast path), in chunks so a wide network on a big mesh does not blow the
memory; other materials get numpy chunks. Output buffers are reused.

History-dependent materials (:func:`is_stateful`: ``update(strain, state) ->
(stress, new_state)``, ``initial_state(n)``, ``state_size``) go through
:meth:`MaterialEvaluator.update`, which also writes the new state into a
caller-owned array: the solver keeps one state row per quadrature point.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from snmech._threads import torch_threads


class Material(Protocol):
    """DESIGN.md's protocol: Mandel strain batch in, Mandel stress batch (Pa) out."""

    def stress(self, strain: Any) -> Any:  # noqa: D102
        ...

    def lipschitz_bound(self) -> float:  # noqa: D102
        ...


def evaluation_device(device: str | torch.device | None) -> torch.device:
    """Where a torch law is evaluated: ``None``/``"auto"`` mean CUDA when present."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def is_stateful(material: Any) -> bool:
    """True for a history-dependent material (it has ``update`` and ``initial_state``)."""
    return callable(getattr(material, "update", None)) and callable(
        getattr(material, "initial_state", None)
    )


class MaterialError(RuntimeError):
    """The material returned something unusable (NaN/inf or the wrong shape)."""


class MaterialEvaluator:
    """Evaluate ``material.stress`` on ``(n, size)`` float64 strains into a preallocated array.

    Args:
        material: a reference law (numpy) or a ``torch.nn.Module`` law such as
            :class:`~snmech.material.PotentialLaw`.
        size: Mandel size (6 in 3D, 3 in plane strain).
        device: torch device for torch laws; ``None``/``"auto"``: CUDA when present.
        dtype: torch dtype for torch laws (float32 is the fast path; float64
            reproduces the law bit-for-bit across runs and ranks).
        chunk_size: points per call, bounding the memory of wide networks.
        threads: torch CPU threads during a call (restored after it); ``None``
            keeps torch's setting. Default 1: inside a dolfinx process on this
            project's 2-core machines one thread was 1.8x faster than two
            (33 vs 61 ms for 262k points), and MPI ranks bring their own cores.
    """

    def __init__(
        self,
        material: Material,
        size: int,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        chunk_size: int = 8192,
        threads: int | None = 1,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.threads = threads
        self.material, self.size, self.chunk_size = material, int(size), int(chunk_size)
        self.is_torch = isinstance(material, torch.nn.Module)
        if self.is_torch:
            self.device, self.dtype = evaluation_device(device), dtype
            # A private plain-weight copy in the evaluation dtype/device: the user's
            # law is left as it is.
            copy_fn = getattr(material, "exported_copy", None)
            law = copy_fn() if callable(copy_fn) else copy.deepcopy(material)
            law = law.to(device=self.device, dtype=dtype).eval()
            fused = getattr(law, "inference_kernel", None)
            self.forward = fused(dtype, self.device) if callable(fused) else law
            self._step = getattr(law, "step", None)
            for p in law.parameters():
                p.requires_grad_(False)
            self.law = law
        self.stateful = is_stateful(material)
        self.state_size = int(getattr(material, "state_size", 0)) if self.stateful else 0
        law_size = getattr(getattr(material, "kinematics", None), "size", self.size)
        if law_size != self.size:
            raise ValueError(
                f"material works on Mandel vectors of size {law_size}, the mesh needs {self.size}"
            )

    @contextmanager
    def _torch_scope(self) -> Iterator[None]:
        """``no_grad``, and ``threads`` torch threads on the CPU, restored afterwards."""
        with torch_threads(self.threads if self.device.type == "cpu" else None), torch.no_grad():
            yield

    def _check_pair(self, strain: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None:
        if strain.shape != out.shape or strain.ndim != 2 or strain.shape[1] != self.size:
            raise ValueError(
                f"need matching (n, {self.size}) arrays, got {strain.shape}, {out.shape}"
            )

    def __call__(
        self, strain: npt.NDArray[np.float64], out: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Write the stress (Pa) for ``strain`` ``(n, size)`` into ``out`` ``(n, size)``."""
        self._check_pair(strain, out)
        n, step = strain.shape[0], self.chunk_size
        if self.is_torch:
            with self._torch_scope():
                for i in range(0, n, step):
                    e = torch.from_numpy(strain[i : i + step]).to(self.device, self.dtype)
                    s = self.forward(e)
                    out[i : i + step] = s.to("cpu", torch.float64).numpy()
        else:
            for i in range(0, n, step):
                s = np.asarray(self.material.stress(strain[i : i + step]), dtype=np.float64)
                if s.shape != (min(step, n - i), self.size):
                    raise MaterialError(
                        f"material returned stress of shape {s.shape} for strain of shape "
                        f"{strain[i : i + step].shape}"
                    )
                out[i : i + step] = s
        return out

    def update(
        self,
        strain: npt.NDArray[np.float64],
        state: npt.NDArray[np.float64],
        out: npt.NDArray[np.float64],
        state_out: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """Stress (Pa) into ``out`` and the new state into ``state_out`` (stateful materials).

        Args:
            strain: Mandel strain ``(n, size)`` at the new step.
            state: state ``(n, state_size)`` at the previous step (not modified).
            out: ``(n, size)`` stress buffer.
            state_out: ``(n, state_size)`` buffer for the new state (not ``state``).

        Returns:
            ``out``.
        """
        if not self.stateful:
            raise TypeError(f"{type(self.material).__name__} has no state (no update method)")
        self._check_pair(strain, out)
        n = strain.shape[0]
        want = (n, self.state_size)
        if state.shape != want or state_out.shape != want:
            raise ValueError(
                f"state arrays must have shape {want}, got {state.shape} and {state_out.shape}"
            )
        if np.shares_memory(state, state_out):
            raise ValueError("state_out must not share memory with state")
        step = self.chunk_size
        if self.is_torch:
            with self._torch_scope():
                for i in range(0, n, step):
                    e = torch.from_numpy(strain[i : i + step]).to(self.device, self.dtype)
                    h = torch.from_numpy(state[i : i + step]).to(self.device, self.dtype)
                    s, h2 = self._step(e, h)  # type: ignore[misc]
                    out[i : i + step] = s.to("cpu", torch.float64).numpy()
                    state_out[i : i + step] = h2.to("cpu", torch.float64).numpy()
        else:
            for i in range(0, n, step):
                m = min(step, n - i)
                s, h2 = self.material.update(strain[i : i + step], state[i : i + step])  # type: ignore[attr-defined]
                s, h2 = np.asarray(s, dtype=np.float64), np.asarray(h2, dtype=np.float64)
                if s.shape != (m, self.size) or h2.shape != (m, self.state_size):
                    raise MaterialError(
                        f"material returned stress {s.shape} and state {h2.shape} for "
                        f"{m} points (want ({m}, {self.size}) and ({m}, {self.state_size}))"
                    )
                out[i : i + step] = s
                state_out[i : i + step] = h2
        return out
