"""`snmech robust train/evaluate` and the classifier file's certificate check."""

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from snmech.cli import cli
from snmech.robust.model_file import (
    CertificateMismatchError,
    ClassifierFileError,
    load_classifier,
)


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
    assert "eps must be finite and > 0" in res.output
    for eps in ("inf", "nan", "-1"):
        res = CliRunner().invoke(cli, ["robust", "evaluate", str(model_file), f"--eps={eps}"])
        assert res.exit_code == 2 and "eps must be finite and > 0" in res.output
    # representable as a Python float but not in the images' float32: named, no traceback
    res = CliRunner().invoke(cli, ["robust", "evaluate", str(model_file), "--eps=1e-300"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "in the images' dtype (torch.float32)" in res.output


def test_tampered_weights_are_refused(model_file, tmp_path):
    tensors = load_file(str(model_file))
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
    # the head: its norm enters the certificate (a convex potential layer's factor
    # is 1 for any weight, so scaling one of those changes the function, not L)
    head = max((k for k in tensors if k.endswith(".weight")), key=lambda k: int(k.split(".")[0]))
    tensors[head] = tensors[head] * 1.01
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(CertificateMismatchError, match="stored Lipschitz bound"):
        load_classifier(bad)
    res = CliRunner().invoke(cli, ["robust", "evaluate", str(bad)])
    assert res.exit_code != 0 and "stored Lipschitz bound" in res.output
    assert json.loads(meta["snmech"])["certificate"]["lipschitz_bound"] > 0


def test_train_writes_the_chosen_model_kind(tmp_path):
    path = tmp_path / "mlp.safetensors"
    args = ["robust", "train", "--out", str(path), "--epochs", "2", "--model", "mlp"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    model, meta = load_classifier(path)
    assert meta["kind"] == "mlp" and meta["training"]["lr"] == 1e-2
    assert meta["training"]["epochs"] == 2
    assert meta["training"]["far_weight"] == 0.0  # the one-margin recipe unless asked
    assert not any(type(m).__name__.startswith("ConvexPotential") for m in model.modules())


def test_far_margin_below_margin_is_refused(tmp_path):
    args = ["robust", "train", "--out", str(tmp_path / "m.safetensors"), "--far-margin", "0.5"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0
    assert "far_margin must exceed margin" in res.output
    assert not (tmp_path / "m.safetensors").exists()


def test_far_warmup_is_recorded_and_checked(model_file, tmp_path):
    _, meta = load_classifier(model_file)
    assert meta["training"]["far_warmup"] == 1.0 and meta["training"]["far_weight"] == 2.5
    assert meta["training"]["far_soft_weight"] == 0.0625
    args = ["robust", "train", "--out", str(tmp_path / "m.safetensors"), "--far-warmup", "1.5"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0
    assert "far_warmup must be a fraction" in res.output
    assert not (tmp_path / "m.safetensors").exists()


def test_far_soft_term_is_recorded_and_checked(tmp_path):
    out = tmp_path / "soft.safetensors"
    args = ["robust", "train", "--out", str(out), "--epochs", "1", "--far-weight", "0"]
    res = CliRunner().invoke(cli, [*args, "--far-soft-weight", "0.5"])
    assert res.exit_code == 0, res.output
    _, meta = load_classifier(out)
    assert meta["training"]["far_soft_weight"] == 0.5
    assert meta["training"]["far_soft_radius"] == 1.05 and meta["training"]["far_weight"] == 0.0
    bad = tmp_path / "bad.safetensors"
    res = CliRunner().invoke(
        cli,
        ["robust", "train", "--out", str(bad), "--far-soft-weight", "1", "--far-soft-radius", "0"],
    )
    assert res.exit_code != 0
    assert "radius > 0" in res.output
    assert not bad.exists()
    for flag, message in [
        ("--far-weight", "far_weight must be finite"),
        ("--far-soft-weight", "need finite soft weight"),
        ("--margin", "must be finite"),
    ]:
        res = CliRunner().invoke(cli, ["robust", "train", "--out", str(bad), flag, "nan"])
        assert res.exit_code == 2 and message in res.output, (flag, res.output)
        assert not bad.exists()


def test_centring_and_optimizer_are_recorded(model_file, tmp_path):
    model, meta = load_classifier(model_file)
    assert meta["architecture"]["centered"] is True and meta["training"]["optimizer"] == "nadam"
    assert type(model[1]).__name__ == "Centering" and model[1].mean.abs().sum() > 0
    out = tmp_path / "plain.safetensors"
    args = ["robust", "train", "--out", str(out), "--epochs", "1", "--no-center"]
    res = CliRunner().invoke(cli, [*args, "--optimizer", "adam"])
    assert res.exit_code == 0, res.output
    model, meta = load_classifier(out)
    assert meta["architecture"]["centered"] is False and meta["training"]["optimizer"] == "adam"
    assert not any(type(m).__name__ == "Centering" for m in model.modules())
    res = CliRunner().invoke(cli, [*args, "--optimizer", "sgd"])
    assert res.exit_code != 0 and "sgd" in res.output


def _edited(model_file, tmp_path, edit):
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        meta = json.loads(f.metadata()["snmech"])
    bad = tmp_path / "edited.safetensors"
    save_file(load_file(str(model_file)), str(bad), metadata={"snmech": json.dumps(edit(meta))})
    return bad


def _with(key, value):
    def edit(meta):
        if value is None:
            del meta[key]
        else:
            meta[key] = value
        return meta

    return edit


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda m: [m], ClassifierFileError, "metadata is a JSON list, not an object"),
        (_with("input_shape", None), ClassifierFileError, "'input_shape' must be a list"),
        (_with("input_shape", 7), ClassifierFileError, "'input_shape' must be a list"),
        (_with("input_shape", [1, 0, 8]), ClassifierFileError, "'input_shape' must be a list"),
        (_with("input_shape", [1, 9, 9]), ClassifierFileError, "does not fit the model"),
        (lambda m: {**m, "kind": "rnn"}, ClassifierFileError, "unknown model kind 'rnn'"),
        (
            lambda m: {
                **m,
                "architecture": {k: v for k, v in m["architecture"].items() if k != "width"},
            },
            ClassifierFileError,
            r"'architecture' lacks \['width'\] for a cpl model",
        ),
        (
            lambda m: {**m, "architecture": {**m["architecture"], "centered": "abc"}},
            ClassifierFileError,
            "centered = 'abc' is not a valid value",
        ),
        (
            lambda m: {**m, "architecture": {**m["architecture"], "depth": 0}},
            ClassifierFileError,
            "depth = 0 is not a valid value",
        ),
        (_with("certificate", None), CertificateMismatchError, "no certificate"),
        (_with("certificate", 3), CertificateMismatchError, "no certificate"),
        (
            _with("certificate", {"lipschitz_bound": "abc"}),
            ClassifierFileError,
            "'lipschitz_bound' must be a finite number, got 'abc'",
        ),
    ],
)
def test_edited_metadata_is_refused_by_name(model_file, tmp_path, edit, error, message):
    bad = _edited(model_file, tmp_path, edit)
    with pytest.raises(error, match=message):
        load_classifier(bad)
    res = CliRunner().invoke(cli, ["robust", "evaluate", str(bad), "--eps", "0.5"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert message.split("'")[0] in res.output


def test_a_flat_input_shape_evaluates_the_same(model_file, tmp_path):
    # the CPL model flattens first: a file that says (64,) is the same model, and
    # evaluate feeds it the digits in that shape
    flat = _edited(model_file, tmp_path, _with("input_shape", [64]))
    args = ["robust", "evaluate", "--eps", "0.5"]
    a = CliRunner().invoke(cli, [*args[:2], str(model_file), *args[2:]])
    b = CliRunner().invoke(cli, [*args[:2], str(flat), *args[2:]])
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    assert a.output == b.output
    wrong = _edited(model_file, tmp_path, _with("input_shape", [2, 64]))
    res = CliRunner().invoke(cli, [*args[:2], str(wrong), *args[2:]])
    assert res.exit_code == 1
    assert "does not fit the model" in res.output or "the digits are (1, 8, 8)" in res.output


def test_library_errors_reach_the_user_without_a_traceback(tmp_path, monkeypatch):
    data = tmp_path / "d.csv"
    res = CliRunner().invoke(
        cli, ["data", "generate", "--law", "linear", "--n", "64", "--out", str(data)]
    )
    assert res.exit_code == 0, res.output
    args = ["train", str(data), "--out", str(tmp_path / "l.safetensors"), "--epochs", "1"]
    monkeypatch.setenv("SNMECH_DEBUG", "1")  # the traceback, for a developer
    res = CliRunner().invoke(cli, [*args, "--lipschitz-max", "nan"])
    assert isinstance(res.exception, ValueError)
    monkeypatch.delenv("SNMECH_DEBUG")
    res = CliRunner().invoke(cli, [*args, "--lipschitz-max", "nan"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "Error: lipschitz_max must be finite and > 0 (Pa), got nan" in res.output
    assert not (tmp_path / "l.safetensors").exists()


def test_cuda_without_a_gpu_is_refused_before_training(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "m.safetensors"
    res = CliRunner().invoke(cli, ["robust", "train", "--out", str(out), "--device", "cuda"])
    assert res.exit_code == 1 and "torch sees no CUDA device" in res.output
    assert not out.exists()


@pytest.mark.cuda
def test_train_and_evaluate_on_cuda_match_the_cpu(model_file, tmp_path):
    out = tmp_path / "gpu.safetensors"
    args = ["robust", "train", "--out", str(out), "--epochs", "3", "--device", "cuda"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "trained on cuda" in res.output
    model, meta = load_classifier(out)  # the stored certificate matches the CPU weights
    assert meta["training"]["epochs"] == 3
    assert next(model.parameters()).device.type == "cpu"
    # the same file certified on either device gives the same bound and accuracy,
    # and the CUDA run trained what the CPU run did (same initial weights and batches)
    reports = {}
    for device, path in (("cpu", model_file), ("cuda", model_file), ("cuda-trained", out)):
        dev = device.split("-")[0]
        res = CliRunner().invoke(cli, ["robust", "evaluate", str(path), "--device", dev])
        assert res.exit_code == 0, res.output
        lines = res.output.splitlines()
        reports[device] = (float(lines[0].split()[-1]), float(lines[1].split()[-2]))
    assert reports["cuda"][0] == pytest.approx(reports["cpu"][0], rel=1e-5)
    assert reports["cuda"][1] == reports["cpu"][1]
    assert abs(reports["cuda-trained"][1] - reports["cpu"][1]) <= 3.0
