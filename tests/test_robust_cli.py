"""`snmech robust train/evaluate` and the classifier file's certificate check."""

import json

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from snmech.cli import cli
from snmech.robust.model_file import CertificateMismatchError, load_classifier


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("robust") / "model.safetensors"
    res = CliRunner().invoke(cli, ["robust", "train", "--out", str(path), "--epochs", "3"])
    assert res.exit_code == 0, res.output
    return path


def test_evaluate_reports_clean_certified_and_pgd(model_file):
    res = CliRunner().invoke(cli, ["robust", "evaluate", str(model_file), "--eps", "0.5"])
    assert res.exit_code == 0, res.output
    assert "clean accuracy" in res.output
    assert "eps 0.5: certified" in res.output and "PGD-l2" in res.output


def test_eps_must_be_positive(model_file):
    res = CliRunner().invoke(cli, ["robust", "evaluate", str(model_file), "--eps", "0"])
    assert res.exit_code != 0
    assert "eps must be > 0" in res.output


def test_tampered_weights_are_refused(model_file, tmp_path):
    tensors = load_file(str(model_file))
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
    tensors["1.weight"] = tensors["1.weight"] * 1.01
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(CertificateMismatchError, match="stored Lipschitz bound"):
        load_classifier(bad)
    res = CliRunner().invoke(cli, ["robust", "evaluate", str(bad)])
    assert res.exit_code != 0 and "stored Lipschitz bound" in res.output
    assert json.loads(meta["snmech"])["certificate"]["lipschitz_bound"] > 0
