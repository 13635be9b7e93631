"""Stress-strain data: loading, validation, unit conversion and saving.

Files hold tensor components (not Mandel, not engineering shear):

* CSV with a header ``eps_11 .. eps_12, sig_11 .. sig_12`` (3D) or
  ``eps_11, eps_22, eps_12, sig_11, sig_22, sig_12`` (plane strain), optional
  ``path`` and ``step`` columns. The stress unit is declared by a first line
  ``# stress_unit = MPa`` or by a suffix on every stress column (``sig_11[MPa]``).
* NPZ with arrays ``strain`` and ``stress`` of shape ``(n, 6)`` or ``(n, 3)``,
  optional ``path``, ``step`` and a string ``stress_unit``.
* HDF5 with datasets ``strain``, ``stress`` (same shapes), optional ``path``,
  ``step`` and an attribute ``stress_unit``.

Inside snmech everything is SI and Mandel: strain dimensionless, stress in Pa.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from snmech.material.kinematics import Kinematics, mandel_to_tensor, tensor_to_mandel

Array = npt.NDArray[np.float64]

STRESS_UNITS = {"Pa": 1.0, "kPa": 1e3, "MPa": 1e6, "GPa": 1e9}
MIN_SAMPLES = 8


class DataError(ValueError):
    """A data file or array is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class StressStrainData:
    """Strain and stress samples in SI Mandel form.

    Attributes:
        strain: ``(n, size)`` Mandel strain (dimensionless).
        stress: ``(n, size)`` Mandel stress in Pa.
        kinematics: 3D or plane strain.
        path: ``(n,)`` integer path id per sample, or ``None`` for unordered samples.
        step: ``(n,)`` step index along its path, or ``None``.
        source: where the data came from (file name or description).
    """

    strain: Array
    stress: Array
    kinematics: Kinematics
    path: npt.NDArray[np.int64] | None = None
    step: npt.NDArray[np.int64] | None = None
    source: str = "<memory>"
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_arrays(self.strain, self.stress, self.kinematics, self.source)

    def __len__(self) -> int:
        return int(self.strain.shape[0])

    def sha256(self) -> str:
        """Hash of the SI arrays (identifies the training data in a model file)."""
        h = hashlib.sha256()
        for a in (self.strain, self.stress):
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
        return h.hexdigest()

    def subset(self, index: npt.NDArray[np.intp]) -> StressStrainData:
        """The samples at ``index``."""
        return StressStrainData(
            self.strain[index],
            self.stress[index],
            self.kinematics,
            None if self.path is None else self.path[index],
            None if self.step is None else self.step[index],
            self.source,
        )


def validate_arrays(strain: Array, stress: Array, kinematics: Kinematics, source: str) -> None:
    """Raise :class:`DataError` on wrong shapes, NaN/inf or too few samples."""
    for name, a in (("strain", strain), ("stress", stress)):
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.shape[1] != kinematics.size:
            raise DataError(
                f"{source}: {name} must have shape (n, {kinematics.size}) for "
                f"{kinematics.value}, got {getattr(a, 'shape', type(a).__name__)}"
            )
        bad = ~np.isfinite(a)
        if bad.any():
            row = int(np.argwhere(bad)[0, 0])
            raise DataError(f"{source}: {name} has NaN or inf (first at sample {row})")
    if strain.shape[0] != stress.shape[0]:
        raise DataError(
            f"{source}: {strain.shape[0]} strain samples but {stress.shape[0]} stress samples"
        )
    if strain.shape[0] < MIN_SAMPLES:
        raise DataError(f"{source}: {strain.shape[0]} samples; at least {MIN_SAMPLES} are needed")


def _unit_factor(unit: str, source: str) -> float:
    try:
        return STRESS_UNITS[unit]
    except KeyError:
        raise DataError(
            f"{source}: unknown stress unit {unit!r}; use one of {sorted(STRESS_UNITS)}"
        ) from None


def _kinematics_of(size: int, source: str) -> Kinematics:
    for k in Kinematics:
        if k.size == size:
            return k
    raise DataError(f"{source}: expected 6 (3D) or 3 (plane strain) components, got {size}")


def load_data(path: str | Path, stress_unit: str | None = None) -> StressStrainData:
    """Load and validate a CSV, NPZ or HDF5 data file (see the module docstring).

    Args:
        path: the file; the format follows its suffix (.csv, .npz, .h5/.hdf5).
        stress_unit: the unit of the stress columns if the file does not declare
            one (``"Pa"``, ``"kPa"``, ``"MPa"``, ``"GPa"``). A file that declares a
            different unit than this is an error.

    Returns:
        The data in SI Mandel form.

    Raises:
        DataError: malformed content (the message names the file and problem).
        FileNotFoundError: no such file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        comps, sig, unit, paths, steps = _read_csv(p)
    elif suffix == ".npz":
        comps, sig, unit, paths, steps = _read_arrays(p, "npz")
    elif suffix in (".h5", ".hdf5"):
        comps, sig, unit, paths, steps = _read_arrays(p, "hdf5")
    else:
        raise DataError(f"{p}: unknown data format {suffix!r}; use .csv, .npz, .h5 or .hdf5")
    if unit is not None and stress_unit is not None and unit != stress_unit:
        raise DataError(f"{p}: file declares stress unit {unit!r} but {stress_unit!r} was given")
    unit = unit or stress_unit
    if unit is None:
        raise DataError(
            f"{p}: no stress unit declared; add '# stress_unit = MPa' (CSV), a 'stress_unit' "
            "entry (NPZ/HDF5), or pass stress_unit"
        )
    factor = _unit_factor(unit, str(p))
    kin = _kinematics_of(comps.shape[1] if comps.ndim == 2 else -1, str(p))
    if sig.ndim != 2 or sig.shape[1] != kin.size:
        raise DataError(f"{p}: stress must have shape (n, {kin.size}), got {sig.shape}")
    validate_arrays(comps, sig, kin, str(p))
    for name, column in (("path", paths), ("step", steps)):
        if column is not None and len(column) != len(comps):
            raise DataError(f"{p}: {name} has {len(column)} entries for {len(comps)} samples")
    return StressStrainData(
        tensor_to_mandel(comps, kin),
        tensor_to_mandel(sig * factor, kin),
        kin,
        paths,
        steps,
        str(p),
    )


_COL = re.compile(r"^(eps|sig)_(\d\d)(?:\[(\w+)\])?$")


def _read_csv(
    p: Path,
) -> tuple[Array, Array, str | None, npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None]:
    with p.open(newline="") as fh:
        lines = fh.read().splitlines()
    declared = None
    while lines and lines[0].lstrip().startswith("#"):
        m = re.match(r"#\s*stress_unit\s*[=:]\s*(\w+)", lines.pop(0).strip())
        if m:
            declared = m.group(1)
    rows = list(csv.reader(lines))
    if not rows:
        raise DataError(f"{p}: empty file")
    header = [h.strip() for h in rows[0]]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{p}: duplicate columns {dupes}")
    cols: dict[str, int] = {}
    units: set[str] = set()
    for i, h in enumerate(header):
        m = _COL.match(h)
        if m:
            key = f"{m.group(1)}_{m.group(2)}"
            if key in cols:
                raise DataError(f"{p}: duplicate columns [{key!r}]")
            cols[key] = i
            if m.group(1) == "sig" and m.group(3):
                units.add(m.group(3))
        elif h not in ("path", "step", "sig_33"):
            raise DataError(f"{p}: unknown column {h!r}")
    if len(units) > 1:
        raise DataError(f"{p}: mixed stress units in the header: {sorted(units)}")
    if units:
        unit = units.pop()
        if declared is not None and declared != unit:
            raise DataError(f"{p}: mixed stress units: header {unit!r}, comment {declared!r}")
        declared = unit
    kin = Kinematics.THREE_D if "eps_33" in cols else Kinematics.PLANE_STRAIN
    need = [f"{q}_{c}" for q in ("eps", "sig") for c in kin.components]
    missing = [n for n in need if n not in cols]
    if missing:
        raise DataError(f"{p}: missing columns {missing} for {kin.value} data")
    # a spreadsheet's trailing separators add empty cells past the header: not data
    body = [
        r[: len(header)] if all(not c.strip() for c in r[len(header) :]) else r for r in rows[1:]
    ]
    ragged = next((i for i, r in enumerate(body) if len(r) != len(header)), None)
    if ragged is not None:
        raise DataError(
            f"{p}: data row {ragged + 1} has {len(body[ragged])} values, "
            f"the header {len(header)} columns"
        )
    try:
        table = np.array([[float(r[cols[n]]) for n in need] for r in body], dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise DataError(f"{p}: a row is malformed or not numeric ({exc})") from None
    if table.ndim != 2 or table.shape[0] == 0:
        raise DataError(f"{p}: no data rows")
    k = kin.size
    paths = steps = None
    if "path" in header:
        paths = _index_column(p, "path", [r[header.index("path")] for r in body])
    if "step" in header:
        steps = _index_column(p, "step", [r[header.index("step")] for r in body])
    return table[:, :k], table[:, k:], declared, paths, steps


def _index_column(p: Path, name: str, values: Any) -> npt.NDArray[np.int64]:
    """A ``path``/``step`` column as whole numbers >= 0; anything else names the row."""
    try:
        column = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        column = np.array([_float_or_nan(v) for v in values])
    if column.ndim != 1:
        raise DataError(f"{p}: {name} must be one number per sample, got shape {column.shape}")
    bad = ~(np.isfinite(column) & (column >= 0) & (column == np.round(column)))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{p}: {name} must hold whole numbers >= 0; sample {i} has {values[i]!r:.30}"
        )
    return column.astype(np.int64)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_arrays(
    p: Path, fmt: str
) -> tuple[Array, Array, str | None, npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None]:
    if fmt == "npz":
        try:
            with np.load(p, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{p}: not a readable NPZ file ({exc or 'empty'})") from None
        unit = str(arrays["stress_unit"]) if "stress_unit" in arrays else None
    else:
        import h5py

        try:
            with h5py.File(p, "r") as f:
                arrays = {k: np.asarray(f[k]) for k in f.keys()}
                unit = f.attrs.get("stress_unit")
                unit = unit.decode() if isinstance(unit, bytes) else unit
        except OSError as exc:
            raise DataError(f"{p}: not a readable HDF5 file ({exc})") from None
    for key in ("strain", "stress"):
        if key not in arrays:
            raise DataError(f"{p}: missing array {key!r} (found {sorted(arrays)})")
    for key in ("strain", "stress", "path", "step"):
        if key in arrays and arrays[key].dtype.kind not in "iuf":
            raise DataError(
                f"{p}: array {key!r} must be real numbers, got dtype {arrays[key].dtype}"
            )
    strain = np.asarray(arrays["strain"], dtype=np.float64)
    stress = np.asarray(arrays["stress"], dtype=np.float64)
    paths = _index_column(p, "path", arrays["path"]) if "path" in arrays else None
    steps = _index_column(p, "step", arrays["step"]) if "step" in arrays else None
    return strain, stress, unit, paths, steps


def save_data(data: StressStrainData, path: str | Path, stress_unit: str = "Pa") -> Path:
    """Write ``data`` as CSV, NPZ or HDF5 (by suffix), in tensor components and ``stress_unit``."""
    p = Path(path)
    factor = _unit_factor(stress_unit, str(p))
    kin = data.kinematics
    eps = mandel_to_tensor(data.strain, kin)
    sig = mandel_to_tensor(data.stress, kin) / factor
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        header = [f"eps_{c}" for c in kin.components] + [f"sig_{c}" for c in kin.components]
        cols = [eps, sig]
        if data.path is not None:
            header.append("path")
            cols.append(data.path[:, None].astype(float))
        if data.step is not None:
            header.append("step")
            cols.append(data.step[:, None].astype(float))
        table = np.hstack(cols)
        fmt = ["%.17g"] * (2 * kin.size) + ["%d"] * (len(header) - 2 * kin.size)
        with p.open("w", newline="") as fh:
            fh.write(f"# stress_unit = {stress_unit}\n")
            np.savetxt(fh, table, delimiter=",", header=",".join(header), comments="", fmt=fmt)
    elif suffix == ".npz":
        extra = {k: v for k, v in (("path", data.path), ("step", data.step)) if v is not None}
        np.savez(p, strain=eps, stress=sig, stress_unit=np.array(stress_unit), **extra)
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "w") as f:
            f["strain"], f["stress"] = eps, sig
            f.attrs["stress_unit"] = stress_unit
            for k, v in (("path", data.path), ("step", data.step)):
                if v is not None:
                    f[k] = v
    else:
        raise DataError(f"{p}: unknown data format {suffix!r}; use .csv, .npz, .h5 or .hdf5")
    return p
