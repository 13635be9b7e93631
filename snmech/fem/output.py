"""Simulation output: ParaView time series, point probes, energy log, JSON summary.

Rank 0 writes the CSV and JSON files; the field files are written collectively
by dolfinx (VTX via ADIOS2, or XDMF/HDF5).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from dolfinx import fem, geometry, io, mesh
from mpi4py import MPI

ENERGY_COLUMNS = (
    "step",
    "time",
    "kinetic",
    "internal",
    "external_work",
    "damping",
    "boundary_work",
    "balance_error",
)


class FieldWriter:
    """A ParaView time series of Functions (context manager).

    ``format="vtx"`` writes ``<stem>.bp`` (one ADIOS2 file per group of
    functions sharing an element); ``"xdmf"`` writes ``<stem>.xdmf``/``.h5``.
    """

    def __init__(
        self,
        directory: Path,
        stem: str,
        groups: Sequence[Sequence[fem.Function]],
        format: str = "vtx",
    ) -> None:
        if format not in ("vtx", "xdmf"):
            raise ValueError(f"output format must be 'vtx' or 'xdmf', got {format!r}")
        self.format, self.groups = format, [list(g) for g in groups]
        domain = self.groups[0][0].function_space.mesh
        self.paths: list[Path] = []
        self._writers: list[Any] = []
        if format == "vtx":
            for group in self.groups:
                kind = group[0].name
                path = directory / f"{stem}_{kind}.bp"
                self._writers.append(io.VTXWriter(domain.comm, str(path), group, engine="BP4"))
                self.paths.append(path)
        else:
            path = directory / f"{stem}.xdmf"
            writer = io.XDMFFile(domain.comm, str(path), "w")
            writer.write_mesh(domain)
            self._writers.append(writer)
            self.paths.append(path)

    def write(self, t: float) -> None:
        """Append every function at time ``t`` (s)."""
        if self.format == "vtx":
            for w in self._writers:
                w.write(t)
        else:
            for group in self.groups:
                for f in group:
                    self._writers[0].write_function(f, t)

    def close(self) -> None:
        """Flush and close the files."""
        for w in self._writers:
            w.close()
        self._writers = []

    def __enter__(self) -> FieldWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Probes:
    """Displacement histories at named points.

    Every point is evaluated on exactly one rank (the lowest rank whose cells
    contain it); :meth:`gather` collects the histories on rank 0.

    Args:
        u: the displacement Function.
        points: name -> coordinates (m), 2 or 3 entries.

    Raises:
        ValueError: a point outside the mesh.
    """

    def __init__(self, u: fem.Function, points: Mapping[str, Sequence[float]]) -> None:
        domain: mesh.Mesh = u.function_space.mesh
        comm = domain.comm
        self.u, self.names = u, list(points)
        self.gdim = domain.geometry.dim
        pts = np.zeros((len(self.names), 3))
        for i, name in enumerate(self.names):
            p = np.asarray(points[name], dtype=np.float64)
            if p.shape not in ((2,), (3,)) or not np.all(np.isfinite(p)):
                raise ValueError(f"probe {name!r}: need 2 or 3 finite coordinates, got {p}")
            pts[i, : p.size] = p
        cells = np.full(len(self.names), -1, dtype=np.int32)
        if self.names:
            tree = geometry.bb_tree(domain, domain.topology.dim)
            candidates = geometry.compute_collisions_points(tree, pts)
            colliding = geometry.compute_colliding_cells(domain, candidates, pts)
            n_local = domain.topology.index_map(domain.topology.dim).size_local
            for i in range(len(self.names)):  # a handful of probes, once
                links = colliding.links(i)
                owned = links[links < n_local]
                if owned.size:
                    cells[i] = owned[0]
        found = np.where(cells >= 0, comm.rank, comm.size).astype(np.int64)
        owner = np.empty_like(found)
        comm.Allreduce(found, owner, op=MPI.MIN)
        missing = [n for n, r in zip(self.names, owner, strict=True) if r == comm.size]
        if missing:
            raise ValueError(f"probe point(s) outside the mesh: {missing}")
        self.mine = np.flatnonzero(owner == comm.rank)
        self.points, self.cells = pts[self.mine], cells[self.mine]
        self.times: list[float] = []
        self.values: list[npt.NDArray[np.float64]] = []

    def sample(self, t: float) -> None:
        """Record the displacement at time ``t`` (s)."""
        self.times.append(t)
        if self.mine.size:
            vals = self.u.eval(self.points, self.cells)
            self.values.append(np.asarray(vals).reshape(len(self.mine), self.gdim))

    def gather(self) -> dict[str, npt.NDArray[np.float64]]:
        """On rank 0: ``{"time": (m,), name: (m, gdim)}``; on other ranks an empty dict."""
        comm = self.u.function_space.mesh.comm
        local = (
            np.stack(self.values, axis=1)
            if self.values
            else np.zeros((0, len(self.times), self.gdim))
        )
        parts = comm.gather((self.mine, local), root=0)
        if comm.rank != 0:
            return {}
        out: dict[str, npt.NDArray[np.float64]] = {"time": np.asarray(self.times)}
        for idx, vals in parts:  # type: ignore[union-attr]
            for j, i in enumerate(idx):
                out[self.names[i]] = vals[j]
        return out


def write_probes_csv(path: Path, histories: Mapping[str, npt.NDArray[np.float64]]) -> None:
    """One row per sample: ``time, <probe>_u0, <probe>_u1, ...`` (s, m)."""
    names = [k for k in histories if k != "time"]
    header = ["time"] + [f"{n}_u{c}" for n in names for c in range(histories[n].shape[1])]
    columns = [histories["time"][:, None]] + [histories[n] for n in names]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(np.hstack(columns).tolist())


def write_energy_csv(path: Path, rows: npt.NDArray[np.float64]) -> None:
    """The energy log (J): columns :data:`ENERGY_COLUMNS`."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ENERGY_COLUMNS)
        w.writerows(rows.tolist())


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Pretty JSON with numpy scalars and arrays converted."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serializable: {type(o).__name__}")

    path.write_text(json.dumps(payload, indent=2, default=default) + "\n")
