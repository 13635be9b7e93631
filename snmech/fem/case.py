"""Simulation case files (TOML): mesh, material, loads, time, output -> a solver run.

A case is plain data; :func:`load_case` validates it (every error names the
table and key) and :func:`run_case` builds the :class:`ExplicitSolver` and runs
it. Relative paths are relative to the case file. Example::

    [mesh]
    generator = "bridge"          # or file = "meshes/bridge_coarse.xdmf"
    size = "coarse"               # generator options: size, dim, cell, span, ...

    [material]
    law = "law.safetensors"       # or reference = "linear", E = 210e9, nu = 0.3
                                  # (reference = "j2" also takes yield_stress, hardening)
    density = 7850.0              # kg/m^3

    [time]
    end = 0.5                     # s
    safety = 0.9                  # dt = safety * certified critical step
    damping = 0.0                 # 1/s, mass proportional

    [[bc]]
    type = "clamp"                # clamp | displacement | velocity
    where = "support_left"
    [[bc]]
    type = "clamp"
    where = "support_right"
    components = [1, 2]           # a roller

    [[load]]
    type = "moving"               # moving | traction | gravity
    where = "deck"
    force = [0.0, 0.0, -2.0e5]    # N
    speed = 20.0                  # m/s
    length = 2.0                  # m
    start = -2.0                  # m

    [probes]
    midspan = [10.0, 0.0, 0.0]

    [output]
    directory = "results/bridge"
    interval = 0.005              # s
    format = "vtx"                # vtx | xdmf
"""

from __future__ import annotations

import math
import os
import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from snmech.fem.boundary import (
    Clamp,
    Dirichlet,
    Gravity,
    Load,
    MovingLoad,
    PrescribedDisplacement,
    PrescribedVelocity,
    Traction,
)
from snmech.fem.mesh_io import read_mesh
from snmech.fem.meshes import BridgeSection, TaggedMesh, beam_mesh, bridge_mesh
from snmech.fem.result import SimulationResult
from snmech.fem.solver import ExplicitSolver


class CaseError(ValueError):
    """A case file that cannot be run; the message names the table and key."""


_TABLES = {"mesh", "material", "time", "bc", "load", "initial", "probes", "output"}
_AMPLITUDE = {"ramp", "frequency", "start_time", "duration"}
# the keys each table knows ([mesh] with a generator passes its options on to it)
_KEYS: dict[str, set[str]] = {
    "mesh": {"file", "generator", "degree"},
    "material": {"law", "reference", "E", "nu", "yield_stress", "hardening", "density"},
    "time": {"end", "dt", "safety", "damping", "force_dt"},
    "bc": {"type", "where", "components", "value"} | _AMPLITUDE,
    "load": {"type", "where", "acceleration", "value", "force", "speed", "length", "start", "axis"}
    | _AMPLITUDE,
    "initial": {"velocity", "region"},
    "output": {"directory", "interval", "format", "checkpoint_every"},
}
_STRINGS = {
    "mesh": ("file", "generator"),
    "material": ("law", "reference"),
    "bc": ("type",),
    "load": ("type",),
    "output": ("directory", "format"),
}
_FORMATS = ("vtx", "xdmf")


@dataclass(frozen=True)
class Case:
    """A validated case file: raw tables plus the file's directory for relative paths."""

    path: Path
    data: Mapping[str, Any]

    def resolve(self, p: str) -> Path:
        """A path from the case file, relative to the case file's directory."""
        q = Path(p)
        return q if q.is_absolute() else Path(os.path.normpath(self.path.parent / q))


def load_case(path: str | Path) -> Case:
    """Read and check a TOML case file.

    Raises:
        CaseError: unreadable TOML, unknown tables, missing required keys.
    """
    p = Path(path)
    if not p.exists():
        raise CaseError(f"{p}: no such case file")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"{p}: not valid TOML: {exc}") from None
    unknown = set(data) - _TABLES
    if unknown:
        raise CaseError(f"{p}: unknown table(s) {sorted(unknown)}; known: {sorted(_TABLES)}")
    for table in ("mesh", "material", "time"):
        if table not in data:
            raise CaseError(f"{p}: missing the [{table}] table")
    for table in sorted(data):
        _check_table(p, table, data[table])
    if "density" not in data["material"]:
        raise CaseError(f"{p}: [material] needs density (kg/m^3)")
    if "end" not in data["time"]:
        raise CaseError(f"{p}: [time] needs end (s)")
    return Case(p, data)


def _check_table(p: Path, table: str, value: Any) -> None:
    """The shape of one table: a table (``bc``/``load``: a list of them), known keys, types."""
    if table in ("bc", "load"):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise CaseError(f"{p}: [[{table}]] must be a list of tables ([[{table}]] entries)")
        for i, entry in enumerate(value):
            _check_keys(p, f"{table} {i + 1}", table, entry)
        return
    if not isinstance(value, dict):
        raise CaseError(f"{p}: [{table}] must be a table, got {value!r:.60}")
    if table == "probes":
        return  # any names; each point is checked against the mesh's dimension
    if table == "mesh" and "file" not in value:
        known = _KEYS["mesh"]  # generator options are checked by the generator
        value = {k: v for k, v in value.items() if k in known}
    _check_keys(p, table, table, value)


def _check_keys(p: Path, name: str, table: str, spec: dict[str, Any]) -> None:
    unknown = set(spec) - _KEYS[table]
    if unknown:
        raise CaseError(
            f"{p}: [{name}] unknown key(s) {sorted(unknown)}; known: {sorted(_KEYS[table])}"
        )
    for key in _STRINGS.get(table, ()):
        if key in spec and not isinstance(spec[key], str):
            raise CaseError(f"{p}: [{name}] {key} must be a string, got {spec[key]!r:.60}")
    degree = spec.get("degree", 1)
    if table == "mesh" and (isinstance(degree, bool) or degree not in (1, 2)):
        raise CaseError(f"{p}: [mesh] degree must be 1 or 2, got {spec['degree']!r}")
    if table == "output":
        every = spec.get("checkpoint_every")
        if every is not None and (
            isinstance(every, bool)
            or not isinstance(every, int | float)
            or not (1 <= every < math.inf and every == int(every))
        ):
            raise CaseError(
                f"{p}: [output] checkpoint_every must be a whole number of steps >= 1, "
                f"got {every!r}"
            )
        if spec.get("format", "vtx") not in _FORMATS:
            raise CaseError(
                f"{p}: [output] format must be one of {_FORMATS}, got {spec['format']!r}"
            )
    if table == "time" and not isinstance(spec.get("force_dt", False), bool):
        raise CaseError(f"{p}: [time] force_dt must be true or false, got {spec['force_dt']!r}")
    if table == "load" and spec.get("axis", 0) not in (0, 1, 2):
        raise CaseError(f"{p}: [{name}] axis must be 0, 1 or 2, got {spec['axis']!r}")
    comps = spec.get("components")
    if comps is not None and (
        not isinstance(comps, list)
        or not comps
        or any(isinstance(c, bool) or c not in (0, 1, 2) for c in comps)
    ):
        raise CaseError(f"{p}: [{name}] components must be a list of 0, 1, 2, got {comps!r:.60}")


def _number(table: str, key: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CaseError(f"[{table}] {key} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise CaseError(f"[{table}] {key} must be > 0, got {value!r}")
    return float(value)


def build_mesh(case: Case, comm: MPI.Comm = MPI.COMM_WORLD) -> TaggedMesh:
    """The case's mesh: a file (XDMF + tags, or Gmsh .msh) or a named generator."""
    spec = dict(case.data["mesh"])
    if "file" in spec:
        return read_mesh(case.resolve(spec["file"]), comm=comm)
    generators: dict[str, Callable[..., TaggedMesh]] = {"beam": beam_mesh, "bridge": bridge_mesh}
    name = spec.pop("generator", None)
    spec.pop("degree", None)
    if name not in generators:
        raise CaseError(f"[mesh] needs file = PATH or generator = one of {sorted(generators)}")
    if "n" in spec and isinstance(spec["n"], list):
        spec["n"] = tuple(spec["n"])
    if isinstance(spec.get("section"), dict):  # bridge: section = {deck_width = ..., ...}
        try:
            spec["section"] = BridgeSection(**spec["section"])
        except TypeError as exc:
            raise CaseError(f"[mesh] bad section for generator {name!r}: {exc}") from None
    try:
        return generators[name](comm=comm, **spec)
    except TypeError as exc:
        raise CaseError(f"[mesh] bad option for generator {name!r}: {exc}") from None


def build_material(case: Case, kinematics: str) -> Any:
    """A law from a ``.safetensors`` file (certificate re-checked) or a reference law."""
    from snmech.material import load_law, reference_law

    spec = case.data["material"]
    if "law" in spec:
        law = load_law(case.resolve(spec["law"]))
        if law.kinematics.value != kinematics:
            raise CaseError(
                f"[material] law {spec['law']} is for {law.kinematics.value} strain, "
                f"the mesh needs {kinematics}"
            )
        return law
    if "reference" in spec:
        E = _number("material", "E", spec.get("E", 210e9), positive=True)
        nu = _number("material", "nu", spec.get("nu", 0.3))
        plastic = {
            key: _number("material", key, spec[key], positive=key == "yield_stress")
            for key in ("yield_stress", "hardening")
            if key in spec
        }
        if plastic and spec["reference"] != "j2":
            raise CaseError(
                f"[material] {sorted(plastic)} only apply to reference = 'j2', "
                f"not {spec['reference']!r}"
            )
        return reference_law(spec["reference"], E=E, nu=nu, kinematics=kinematics, **plastic)
    raise CaseError("[material] needs law = FILE or reference = NAME")


def _amplitude(table: str, spec: Mapping[str, Any]) -> Callable[[float], float]:
    """Time function: a ramp, an on/off window and an optional sine.

    Linear ramp over ``ramp`` s from ``start_time`` s, off after ``duration`` s,
    times ``sin(2 pi frequency (t - start_time))`` when a ``frequency`` (Hz) is
    given (cyclic loads).
    """
    ramp = _number(table, "ramp", spec.get("ramp", 0.0))
    freq = spec.get("frequency")
    omega = 0.0 if freq is None else 2 * math.pi * _number(table, "frequency", freq, True)
    start = _number(table, "start_time", spec.get("start_time", 0.0))
    duration = spec.get("duration")
    stop = math.inf if duration is None else start + _number(table, "duration", duration, True)

    def amplitude(t: float) -> float:
        if t < start or t > stop:
            return 0.0
        a = 1.0 if ramp <= 0 else min(1.0, (t - start) / ramp)
        return a * math.sin(omega * (t - start)) if omega else a

    return amplitude


def _vector(table: str, key: str, value: Any, gdim: int) -> list[float]:
    if not isinstance(value, list) or len(value) != gdim:
        raise CaseError(f"[{table}] {key} must be a list of {gdim} numbers, got {value!r}")
    return [_number(table, key, v) for v in value]


class _Box:
    """The points inside ``[lo, hi]`` (m): a case file's ``where = {min, max}``, named in errors."""

    def __init__(self, table: str, lo: np.ndarray, hi: np.ndarray) -> None:
        self.table, self.lo, self.hi = table, lo, hi

    def __call__(self, x: np.ndarray) -> np.ndarray:
        p = x[: self.lo.size]
        return np.all((p >= self.lo[:, None]) & (p <= self.hi[:, None]), axis=0)

    def __repr__(self) -> str:
        return f"[{self.table}] where = {{min = {self.lo.tolist()}, max = {self.hi.tolist()}}}"


def _where(table: str, spec: Mapping[str, Any]) -> Any:
    """A tag name, or ``{min = [...], max = [...]}``: the points inside that box (m)."""
    where = spec.get("where")
    if isinstance(where, str):
        return where
    if isinstance(where, dict) and {"min", "max"} <= set(where):
        lo = np.asarray([_number(table, "where.min", v) for v in where["min"]])
        hi = np.asarray([_number(table, "where.max", v) for v in where["max"]])
        if lo.shape != hi.shape or lo.size not in (2, 3):
            raise CaseError(f"[{table}] where.min and where.max need 2 or 3 numbers each")

        return _Box(table, lo, hi)
    raise CaseError(f"[{table}] needs where = TAG NAME or where = {{min = [...], max = [...]}}")


def build_conditions(case: Case, gdim: int) -> tuple[list[Dirichlet], list[Load]]:
    """The case's boundary conditions and loads."""
    bcs: list[Dirichlet] = []
    for i, spec in enumerate(case.data.get("bc", [])):
        table = f"bc {i + 1}"
        kind = spec.get("type")
        comps = spec.get("components")
        comps = None if comps is None else tuple(int(c) for c in comps)
        where = _where(table, spec)
        if kind == "clamp":
            bcs.append(Clamp(where, comps))
        elif kind in ("displacement", "velocity"):
            n = gdim if comps is None else len(comps)
            value = np.asarray(_vector(table, "value", spec.get("value"), n))
            amp = _amplitude(table, spec)
            cls = PrescribedDisplacement if kind == "displacement" else PrescribedVelocity
            bcs.append(cls(where, lambda t, v=value, a=amp: a(t) * v, comps))
        else:
            raise CaseError(f"[{table}] type must be clamp, displacement or velocity, got {kind!r}")
    loads: list[Load] = []
    for i, spec in enumerate(case.data.get("load", [])):
        table = f"load {i + 1}"
        kind = spec.get("type")
        if kind == "gravity":
            g = _vector(table, "acceleration", spec.get("acceleration"), gdim)
            loads.append(Gravity(g, _amplitude(table, spec)))
        elif kind == "traction":
            value = np.asarray(_vector(table, "value", spec.get("value"), gdim))
            amp = _amplitude(table, spec)
            loads.append(Traction(_where(table, spec), lambda t, v=value, a=amp: a(t) * v))
        elif kind == "moving":
            loads.append(
                MovingLoad(
                    _where(table, spec),
                    force=_vector(table, "force", spec.get("force"), gdim),
                    speed=_number(table, "speed", spec.get("speed")),
                    length=_number(table, "length", spec.get("length"), positive=True),
                    start=_number(table, "start", spec.get("start", 0.0)),
                    axis=int(spec.get("axis", 0)),
                )
            )
        else:
            raise CaseError(f"[{table}] type must be gravity, traction or moving, got {kind!r}")
    return bcs, loads


def _initial_velocity(case: Case, gdim: int) -> Any:
    spec = case.data.get("initial")
    if not spec:
        return None
    v = np.asarray(_vector("initial", "velocity", spec.get("velocity"), gdim))
    box = spec.get("region")
    if box is None:
        return v
    if not isinstance(box, dict):
        raise CaseError(f"[initial] region must be {{min = [...], max = [...]}}, got {box!r:.60}")
    lo = np.asarray(_vector("initial", "region.min", box.get("min"), gdim))
    hi = np.asarray(_vector("initial", "region.max", box.get("max"), gdim))

    def field(x: np.ndarray) -> np.ndarray:
        inside = np.all((x[:gdim].T >= lo) & (x[:gdim].T <= hi), axis=1)
        return v[:, None] * inside[None, :]

    return field


def build_solver(case: Case, comm: MPI.Comm = MPI.COMM_WORLD, **overrides: Any) -> ExplicitSolver:
    """The solver a case describes.

    ``overrides`` go to :class:`ExplicitSolver`; ``material=`` replaces the
    case's law (e.g. to run one case with two laws).
    """
    tagged = build_mesh(case, comm)
    gdim = tagged.mesh.geometry.dim
    material = overrides.pop("material", None)
    if material is None:
        material = build_material(case, "3d" if gdim == 3 else "plane_strain")
    bcs, loads = build_conditions(case, gdim)
    mat, tim = case.data["material"], case.data["time"]
    dt = tim.get("dt", "certified")
    probes = {
        name: _vector("probes", name, p, gdim) for name, p in case.data.get("probes", {}).items()
    }
    kwargs: dict[str, Any] = {
        "degree": int(case.data["mesh"].get("degree", 1)),
        "dirichlet": bcs,
        "loads": loads,
        "initial_velocity": _initial_velocity(case, gdim),
        "damping": _number("time", "damping", tim.get("damping", 0.0)),
        "dt": None if dt == "certified" else _number("time", "dt", dt, positive=True),
        "safety": _number("time", "safety", tim.get("safety", 0.9), positive=True),
        "force_dt": bool(tim.get("force_dt", False)),
        "probes": probes,
    }
    kwargs |= overrides
    density = _number("material", "density", mat["density"], positive=True)
    return ExplicitSolver(tagged, material, density, **kwargs)


def run_case(
    path: str | Path,
    *,
    output_dir: str | Path | None = None,
    end: float | None = None,
    progress: bool = True,
    comm: MPI.Comm = MPI.COMM_WORLD,
    plots: bool = True,
    restart: str | Path | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> tuple[ExplicitSolver, SimulationResult]:
    """Build and run a case file; writes fields, probes, energy, summary and plots.

    Args:
        path: the TOML file.
        output_dir: overrides ``[output] directory``; relative to the current
            directory (``[output] directory`` is relative to the case file's).
        end: overrides ``[time] end`` (s).
        progress: show a progress bar (rank 0).
        comm: MPI communicator.
        plots: write ``energy.png`` and ``probes.png`` (needs matplotlib).
        restart: continue from this checkpoint (written by ``[output]
            checkpoint_every``: ``<directory>/checkpoint``), same mesh and ranks;
            the output goes to ``<directory>/restart_from_step_<n>``.
        overwrite: replace a run already in the output directory (its
            ``summary.json``); without it such a directory is refused, so a new
            run never mixes its files with, or silently replaces, a finished one.
        overrides: keyword arguments for :class:`ExplicitSolver`.

    Raises:
        CaseError: a bad case file, or an output directory holding a run.
    """
    case = load_case(path)
    out_spec = case.data.get("output", {})
    # the caller's directory is relative to where it runs, the file's to the file
    if output_dir is not None:
        out: Path | None = Path(output_dir)
    elif out_spec.get("directory") is not None:
        out = case.resolve(str(out_spec["directory"]))
    else:
        out = None
    solver = build_solver(case, comm, **overrides)
    if restart is not None:
        solver.load_checkpoint(restart)
        if out is not None:  # never overwrite the interrupted run's files
            out = out / f"restart_from_step_{solver.step_count}"
    every = out_spec.get("checkpoint_every")
    if every is not None and out is None:
        raise CaseError(
            "[output] checkpoint_every needs an output directory: [output] directory or --out DIR"
        )
    if out is not None and (out / "summary.json").exists():
        if not overwrite:
            raise CaseError(
                f"{out} already holds a run (summary.json); --overwrite replaces it, "
                "--out DIR writes elsewhere"
            )
        if comm.rank == 0:
            _clear_run(out)
        comm.barrier()
    if end is None:
        end = _number("time", "end", case.data["time"]["end"], positive=True)
    interval = out_spec.get("interval")
    result = solver.run(
        end,
        output_dir=out,
        output_interval=None if interval is None else _number("output", "interval", interval),
        format=out_spec.get("format", "vtx"),
        progress=progress,
        checkpoint_every=None if every is None else int(every),
    )
    if plots and out is not None and comm.rank == 0:
        from snmech.fem.plots import plot_energy, plot_probes

        result.files["energy_plot"] = str(plot_energy(result, out / "energy.png"))
        if len(result.probes) > 1:
            result.files["probes_plot"] = str(plot_probes(result, out / "probes.png"))
    return solver, result


# what a run writes into its directory (ExplicitSolver.run, the plots, checkpoints)
_RUN_FILES = (
    "summary.json",
    "energy.csv",
    "probes.csv",
    "energy.png",
    "probes.png",
    "solution*.bp",
    "solution.xdmf",
    "solution.h5",
    "checkpoint.rank*of*.npz",
)


def _clear_run(out: Path) -> None:
    """Remove the files of the run in ``out``, nothing else (other files, restarts stay)."""
    for pattern in _RUN_FILES:
        for path in out.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
