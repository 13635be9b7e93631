"""Neural laws: PSD symmetric tangents, bounds that hold, exact files, training."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from snmech.cli import cli
from snmech.material import (
    CertificateMismatchError,
    DirectLaw,
    Kinematics,
    ModelFileError,
    PotentialLaw,
    SaturatingElastic,
    TrainingConfig,
    generate_data,
    load_data,
    load_law,
    save_law,
    train_law,
)
from snmech.spectral import lipschitz_lower_bound


@pytest.fixture(scope="module")
def data():
    return generate_data(
        SaturatingElastic(210e9, 0.3), 1024, sampling="random", strain_range=5e-3, seed=0
    )


@pytest.fixture(scope="module")
def trained(data):
    return train_law(data, config=TrainingConfig(epochs=60, seed=0), progress=False)


def random_potential(kin=Kinematics.THREE_D, seed=0, **kw):
    torch.manual_seed(seed)
    law = PotentialLaw(kin, 1e-3, 1e8, hidden=16, **kw).double().eval()
    with torch.no_grad():
        law.a_raw.normal_()
        law.B.normal_()
        law.c_raw.normal_()
        law.Q.mul_(3.0)
    return law


@pytest.mark.parametrize("kin", list(Kinematics))
def test_potential_tangent_is_symmetric_psd_and_bounded(kin):
    law = random_potential(kin)
    strain = np.random.default_rng(1).normal(size=(500, kin.size)) * 3e-3
    T = law.tangent(strain)
    assert np.allclose(T, T.transpose(0, 2, 1), rtol=0, atol=1e-6 * np.abs(T).max())
    assert np.linalg.eigvalsh(T).min() >= -1e-6 * np.abs(T).max()
    L = law.lipschitz_bound()
    assert np.linalg.norm(T, 2, axis=(1, 2)).max() <= L
    gap = law.loewner_bound()[None] - T  # tangent <= C_bar in the Loewner order
    assert np.linalg.eigvalsh(gap).min() >= -1e-9 * L


def test_closed_form_tangent_equals_autograd():
    law = random_potential()
    strain = torch.randn(7, 6, dtype=torch.float64) * 2e-3
    strain[0] = 0.0  # the radial units' r = 0 branch
    auto = torch.func.vmap(torch.func.jacrev(lambda x: law(x[None])[0]))(strain)
    assert torch.allclose(law.tangent(strain), auto, rtol=1e-10, atol=1e-3)


def test_batched_law_equals_pointwise():
    law = random_potential()
    strain = np.random.default_rng(2).normal(size=(20, 6)) * 1e-3
    batched = law.stress(strain)
    single = np.vstack([law.stress(strain[i : i + 1]) for i in range(20)])
    np.testing.assert_allclose(batched, single, rtol=1e-12)
    assert np.allclose(law.stress(np.zeros((1, 6))), 0.0)  # stress-free reference state


def test_lipschitz_cap_is_exact():
    law = random_potential(lipschitz_max=1e9)
    assert law.lipschitz_bound() <= 1e9 * (1 + 1e-9)
    strain = torch.randn(64, 6, dtype=torch.float64) * 1e-3
    assert lipschitz_lower_bound(law, strain, steps=10) <= 1e9 * (1 + 1e-9)


def test_direct_law_bound_exceeds_lower_bound():
    torch.manual_seed(0)
    law = DirectLaw(hidden=16).double().eval()
    law.export()
    strain = torch.randn(32, 6, dtype=torch.float64) * 1e-3
    assert lipschitz_lower_bound(law, strain, steps=20) <= law.lipschitz_bound()


def test_training_fits_and_certificate_is_tight(trained, data):
    law = trained.law
    assert trained.val_rel_rmse < 0.08
    ref = SaturatingElastic(210e9, 0.3)
    L = law.lipschitz_bound()
    # Softening laws are stiffest at zero strain: start the ascent there too.
    start = torch.cat([torch.zeros(1, 6, dtype=torch.float64), torch.as_tensor(data.strain[:32])])
    lower = lipschitz_lower_bound(law, start, steps=10)
    assert lower <= L <= 1.5 * lower
    assert L <= 1.5 * ref.lipschitz_bound()


def test_training_is_reproducible(data):
    cfg = TrainingConfig(epochs=3, seed=4)
    a = train_law(data, config=cfg, progress=False).law
    b = train_law(data, config=cfg, progress=False).law
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka


def test_resume_continues_where_it_stopped(data, tmp_path):
    ckpt = tmp_path / "c.ckpt"
    full = train_law(
        data, config=TrainingConfig(epochs=6, checkpoint_every=3), progress=False, checkpoint=ckpt
    )

    # an interrupted run: redo with 6 epochs but resume from the checkpoint written at 6
    def resume(epochs):
        config = TrainingConfig(epochs=epochs, checkpoint_every=3)
        return train_law(data, config=config, progress=False, checkpoint=ckpt, resume=True)

    again = resume(6)
    assert len(again.history) == 6 and again.history == full.history
    with pytest.raises(ValueError, match="other data or settings"):
        resume(7)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # a checkpoint cut short is named
    with pytest.raises(ValueError, match=r"c.ckpt: cannot read the checkpoint"):
        resume(6)


@pytest.mark.parametrize("noise", [float("nan"), float("inf"), -0.1])
def test_noise_must_be_a_finite_fraction(noise, tmp_path):
    with pytest.raises(ValueError, match="noise >= 0"):
        generate_data(SaturatingElastic(210e9, 0.3), 64, noise=noise)
    res = CliRunner().invoke(
        cli,
        ["data", "generate", "--n", "64", "--out", str(tmp_path / "x.csv"), "--noise", str(noise)],
    )
    assert res.exit_code == 1 and "noise >= 0" in res.output


def test_file_round_trip_is_exact(trained, tmp_path, data):
    path = save_law(trained.law, tmp_path / "law.safetensors", data_sha256=data.sha256())
    law = load_law(path)  # on the CPU; training may have run on a GPU, whose float32
    reference = copy.deepcopy(trained.law).cpu()  # sums round differently: compare on one device
    np.testing.assert_allclose(
        law.stress(data.strain[:50]), reference.stress(data.strain[:50]), rtol=1e-6, atol=1e-3
    )
    assert law.lipschitz_bound() == pytest.approx(reference.lipschitz_bound(), rel=1e-12)


def test_tampered_weights_fail_certification(trained, tmp_path):
    path = save_law(trained.law, tmp_path / "law.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors["B"] = tensors["B"] * 1.01
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CertificateMismatchError, match="stored Lipschitz bound"):
        load_law(path)
    result = CliRunner().invoke(cli, ["certify", str(path)])
    assert result.exit_code != 0 and "stored Lipschitz bound" in result.output


def test_corrupt_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ModelFileError, match="not a readable"):
        load_law(bad)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelFileError, match="not an snmech law"):
        load_law(foreign)
    with pytest.raises(FileNotFoundError):
        load_law(tmp_path / "missing.safetensors")


def _rewrite_metadata(path, edit):
    """Write ``path`` again with its metadata JSON changed by ``edit(meta) -> meta``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["snmech"])
    save_file(load_file(str(path)), str(path), metadata={"snmech": json.dumps(edit(meta))})


def _drop(meta, *keys):
    node = meta
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return meta


def _set(meta, value, *keys):
    node = meta
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return meta


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda m: [m], ModelFileError, "metadata is a JSON list, not an object"),
        (lambda m: _drop(m, "architecture"), ModelFileError, "'architecture' must be a JSON"),
        (lambda m: _set(m, "big", "architecture"), ModelFileError, "'architecture' must be"),
        (lambda m: _set(m, "foo", "dtype"), ModelFileError, "'dtype' must be one of"),
        (
            lambda m: _set(m, "abc", "architecture", "stress_free"),
            ModelFileError,
            "stress_free = 'abc' is not a valid value",
        ),
        (
            lambda m: _set(m, -3, "architecture", "hidden"),
            ModelFileError,
            "hidden = -3 is not a valid value",
        ),
        (lambda m: _drop(m, "certificate"), ModelFileError, "'certificate' must be a JSON"),
        (lambda m: _set(m, 3, "certificate"), ModelFileError, "'certificate' must be a JSON"),
        (
            lambda m: _drop(m, "certificate", "lipschitz_bound_pa"),
            CertificateMismatchError,
            "has no 'lipschitz_bound_pa'",
        ),
        (
            lambda m: _set(m, "abc", "certificate", "lipschitz_bound_pa"),
            ModelFileError,
            "'lipschitz_bound_pa' must be a finite number, got 'abc'",
        ),
        (
            lambda m: _set(m, float("nan"), "certificate", "lipschitz_bound_pa"),
            ModelFileError,
            "must be a finite number",
        ),
        (
            lambda m: _drop(m, "certificate", "loewner_bound_pa"),
            CertificateMismatchError,
            "has no 'loewner_bound_pa'",
        ),
        (
            lambda m: _set(m, [["x"]], "certificate", "loewner_bound_pa"),
            ModelFileError,
            "'loewner_bound_pa' must be a matrix of numbers",
        ),
    ],
)
def test_edited_metadata_is_refused_by_name(trained, tmp_path, edit, error, message):
    path = save_law(trained.law, tmp_path / "law.safetensors")
    _rewrite_metadata(path, edit)
    with pytest.raises(error, match=message):
        load_law(path)
    result = CliRunner().invoke(cli, ["certify", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert message.split("'")[0] in result.output


def test_cli_pipeline(tmp_path):
    runner = CliRunner()
    data = tmp_path / "d.npz"
    r = runner.invoke(
        cli, ["data", "generate", "--law", "linear", "--n", "256", "--out", str(data)]
    )
    assert r.exit_code == 0, r.output
    law = tmp_path / "law.safetensors"
    r = runner.invoke(
        cli, ["train", str(data), "--out", str(law), "--epochs", "5", "--device", "cpu"]
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["bound_over_lower"] >= 1.0
    assert (tmp_path / "fit.png").stat().st_size > 0 and (tmp_path / "paths.png").exists()
    r = runner.invoke(cli, ["certify", str(law)])
    assert r.exit_code == 0 and "matches the file" in r.output
    assert load_law(law).architecture()["radial"] == 3  # the default width: 8 ridge, 3 radial
    small = tmp_path / "small.safetensors"
    args = ["--epochs", "2", "--device", "cpu", "--hidden", "4", "--radial", "1"]
    r = runner.invoke(cli, ["train", str(data), "--out", str(small), *args])
    assert r.exit_code == 0, r.output
    assert {k: load_law(small).architecture()[k] for k in ("hidden", "radial")} == {
        "hidden": 4,
        "radial": 1,
    }
    r = runner.invoke(cli, ["train", str(data), "--out", str(small), "--kind", "direct", *args])
    assert r.exit_code != 0 and "--radial is for potential laws" in r.output
    with pytest.raises(ValueError, match="radial units are for potential laws"):
        train_law(load_data(data), kind="direct", radial=2, progress=False)
    r = runner.invoke(cli, ["data", "generate", "--law", "rubber", "--out", str(data)])
    assert r.exit_code != 0 and "unknown reference law" in r.output


def test_a_bad_report_dir_fails_before_anything_is_written(data, tmp_path):
    from snmech.material import save_data

    csv = save_data(data, tmp_path / "d.csv")
    out = tmp_path / "law.safetensors"
    args = ["train", str(csv), "--out", str(out), "--epochs", "1"]
    res = CliRunner().invoke(cli, [*args, "--report-dir", str(csv / "rep")])
    assert res.exit_code == 1 and "d.csv" in res.output and "Traceback" not in res.output
    assert not out.exists() and not out.with_suffix(".ckpt").exists()
    res = CliRunner().invoke(cli, [*args, "--seed", "-1"])
    assert res.exit_code == 2 and "--seed" in res.output
