"""Data files: round trips in every format, unit conversion, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from snmech.material import DataError, Kinematics, generate_data, load_data, save_data
from snmech.material.reference import LinearElastic, SaturatingElastic


@pytest.fixture
def dataset():
    return generate_data(SaturatingElastic(210e9, 0.3), 64, sampling="mixed", seed=3)


@pytest.mark.parametrize("suffix", [".csv", ".npz", ".h5"])
@pytest.mark.parametrize("unit", ["Pa", "MPa"])
def test_round_trip(tmp_path, dataset, suffix, unit):
    path = save_data(dataset, tmp_path / f"d{suffix}", stress_unit=unit)
    back = load_data(path)
    assert back.kinematics is Kinematics.THREE_D
    np.testing.assert_allclose(back.strain, dataset.strain, rtol=1e-14, atol=0)
    np.testing.assert_allclose(back.stress, dataset.stress, rtol=1e-13)
    assert back.sha256() == pytest.approx(back.sha256())


def test_csv_holds_tensor_components_not_mandel(tmp_path):
    law = LinearElastic(1e9, 0.0, "plane_strain")  # sigma = 2 mu eps, mu = E/2
    path = tmp_path / "ps.csv"
    rows = "\n".join(f"{i * 1e-4},0,{1e-4},{i * 1e-4 * 1e9},0,{1e-4 * 1e9}" for i in range(10))
    path.write_text("# stress_unit = Pa\neps_11,eps_22,eps_12,sig_11,sig_22,sig_12\n" + rows)
    data = load_data(path)
    assert data.kinematics is Kinematics.PLANE_STRAIN
    np.testing.assert_allclose(law.stress(data.strain), data.stress, rtol=1e-12)
    assert data.strain[0, 2] == pytest.approx(np.sqrt(2) * 1e-4)


def _csv(tmp_path, header, rows=10, first="# stress_unit = MPa\n", value="1.0"):
    path = tmp_path / "bad.csv"
    n = len(header.split(","))
    path.write_text(first + header + "\n" + "\n".join(",".join([value] * n) for _ in range(rows)))
    return path


FULL = "eps_11,eps_22,eps_33,eps_23,eps_13,eps_12,sig_11,sig_22,sig_33,sig_23,sig_13,sig_12"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(header=FULL.replace(",sig_12", "")), "missing columns"),
        (dict(header=FULL + ",sig_11"), "duplicate"),
        (dict(header=FULL, value="nan"), "NaN"),
        (dict(header=FULL, rows=3), "at least"),
        (dict(header=FULL, first=""), "no stress unit"),
        (
            dict(header=FULL.replace("sig_11", "sig_11[MPa]").replace("sig_22", "sig_22[kPa]")),
            "mixed stress units",
        ),
        (dict(header=FULL, first="# stress_unit = psi\n"), "unknown stress unit"),
        (dict(header=FULL + ",temperature"), "unknown column"),
        (dict(header=FULL, value="abc"), "not numeric"),
    ],
)
def test_bad_csv(tmp_path, kwargs, match):
    with pytest.raises(DataError, match=match):
        load_data(_csv(tmp_path, **kwargs))


def test_bad_arrays(tmp_path):
    np.savez(
        tmp_path / "a.npz", strain=np.zeros((10, 5)), stress=np.zeros((10, 5)), stress_unit="Pa"
    )
    with pytest.raises(DataError, match="6 .3D. or 3"):
        load_data(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", strain=np.zeros((10, 6)))
    with pytest.raises(DataError, match="missing array 'stress'"):
        load_data(tmp_path / "b.npz", stress_unit="Pa")
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable NPZ"):
        load_data(tmp_path / "c.npz")
    with pytest.raises(DataError, match="unknown data format"):
        load_data(_csv(tmp_path, FULL).rename(tmp_path / "x.txt"))
    np.savez(
        tmp_path / "d.npz", strain=np.zeros((10, 6)), stress=np.zeros((10, 6)), stress_unit="MPa"
    )
    with pytest.raises(DataError, match="declares stress unit"):
        load_data(tmp_path / "d.npz", stress_unit="Pa")


def test_cut_short_ragged_and_odd_files_are_named(tmp_path, dataset):
    good = save_data(dataset, tmp_path / "good.npz")
    data = good.read_bytes()
    for name, content in [("cut.npz", data[: len(data) // 2]), ("empty.npz", b"")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=f"{name}: not a readable NPZ"):
            load_data(tmp_path / name)
    n, eps = 64, np.zeros((64, 6))

    def npz(name, **arrays):
        np.savez(tmp_path / name, stress_unit="Pa", **{"strain": eps, "stress": eps, **arrays})
        return tmp_path / name

    with pytest.raises(DataError, match="path has 10 entries for 64 samples"):
        load_data(npz("short.npz", path=np.zeros(10), step=np.arange(10)))
    with pytest.raises(DataError, match="'strain' must be real numbers, got dtype complex128"):
        load_data(npz("complex.npz", strain=eps + 1j))
    with pytest.raises(DataError, match="path must hold whole numbers >= 0; sample 3"):
        load_data(npz("nan.npz", path=np.where(np.arange(n) == 3, np.nan, 0.0), step=np.arange(n)))
    with pytest.raises(DataError, match="step must hold whole numbers >= 0"):
        load_data(npz("half.npz", path=np.zeros(n), step=np.arange(n) + 0.5))
    csv = tmp_path / "rows.csv"
    csv.write_text(_csv(tmp_path, FULL).read_text() + "\n" + ",".join(["1.0"] * 14))
    with pytest.raises(DataError, match="data row 11 has 14 values, the header 12 columns"):
        load_data(csv)
    # a spreadsheet's trailing separators (empty cells past the header) are not data
    text = _csv(tmp_path, FULL).read_text().splitlines()
    csv.write_text("\n".join([*text[:2], *(line + ",," for line in text[2:])]))
    assert len(load_data(csv).strain) == 10
    text = _csv(tmp_path, FULL + ",path,step").read_text().splitlines()
    text[3] = ",".join(["1.0"] * 12 + ["abc", "0"])
    csv.write_text("\n".join(text))
    with pytest.raises(DataError, match="path must hold whole numbers >= 0; sample 1 has 'abc'"):
        load_data(csv)


def test_paths_and_noise():
    law = LinearElastic(1e9, 0.3)
    clean = generate_data(law, 100, sampling="cyclic", seed=0)
    assert clean.path is not None and set(clean.path) == {0, 1, 2, 3}
    noisy = generate_data(law, 100, sampling="cyclic", noise=0.05, seed=0)
    rel = np.std(noisy.stress - clean.stress) / np.std(clean.stress)
    assert 0.03 < rel < 0.07
