"""Every example runs (reduced where the full run is long) and checks its number;
every case file runs through `snmech simulate`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.fem

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cantilever_impact_rings_at_the_euler_bernoulli_frequency(tmp_path):
    m = load("cantilever_impact").main(tmp_path, end=0.025, progress=False)
    assert m["ratio"] == pytest.approx(1.0, abs=0.03)
    assert m["max_energy_balance_error"] < 0.02


def test_cantilever_step_load_settles_at_the_static_deflection(tmp_path):
    m = load("cantilever_step_load").main(tmp_path, end=0.05, progress=False)
    assert m["ratio"] == pytest.approx(1.0, abs=0.05)
    assert 1.5 < m["peak_over_static"] < 2.05  # a suddenly applied load nearly doubles it


def test_bridge_self_weight_matches_beam_theory(tmp_path):
    m = load("bridge_crossing").main(tmp_path, end=0.45, progress=False)
    assert m["ratio"] == pytest.approx(1.0, abs=0.05)
    assert m["max_energy_balance_error"] < 1e-3


def test_train_surrogate_is_accurate_and_tight(tmp_path):
    m = load("train_surrogate").main(tmp_path, samples=4096, epochs=100, progress=False)
    assert m["test_rel_rmse"] < 0.03
    assert 1.0 <= m["bound_over_lower"] < 1.5
    assert m["min_loewner_eigenvalue_pa"] > 0


def test_cantilever_cyclic_plasticity_recurrent_law_follows_j2(tmp_path):
    m = load("cantilever_cyclic_plasticity").main(
        tmp_path, end=0.02, epochs=25, paths=24, progress=False
    )
    assert m["plastic_points_j2"] > 0  # the root yields within the first half cycle
    assert m["state_lipschitz_bound"] == 1.0
    assert 0.8 < m["law_L_over_j2"] < 1.2  # a trained law: its own certificate, near J2's C
    assert m["tip_history_rel_diff"] < 0.25  # a briefly trained law already follows J2
    assert m["max_energy_balance_error"] < 0.01
    assert (tmp_path / "recurrent_law.safetensors").exists()


@pytest.mark.parametrize(
    "case",
    [
        "cantilever_impact",
        "cantilever_step_load",
        "bridge_crossing",
        "bridge_crossing_3d",
        "cantilever_cyclic_plasticity",
    ],
)
def test_case_files_run_with_snmech_simulate(case, tmp_path):
    from snmech.cli import cli

    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(EXAMPLES / f"{case}.toml"),
            "--out",
            str(tmp_path),
            "--end",
            "2e-4",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "max energy balance error" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["time_step"]["certified"]


def test_snmech_timestep_prints_certified_and_estimates(tmp_path):
    from snmech.cli import cli

    mesh = EXAMPLES.parent / "meshes" / "beam_coarse.xdmf"
    args = ["timestep", "--mesh", str(mesh), "--reference", "linear", "--density", "7850"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "critical cell" in result.output and "courant" in result.output
    reports = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    element = next(r for r in reports if r["method"] == "element")
    assert element["certified"] and element["dt"] > 0
    missing = CliRunner().invoke(cli, ["timestep", "--mesh", str(mesh), "--density", "7850"])
    assert missing.exit_code != 0 and "exactly one of --law" in missing.output


def test_snmech_simulate_restarts_from_a_checkpoint(tmp_path):
    from snmech.cli import cli

    case = tmp_path / "case.toml"
    text = (EXAMPLES / "cantilever_impact.toml").read_text()
    text = text.replace('directory = "../results/cantilever_impact"', 'directory = "out"')
    text = text.replace("[output]\n", "[output]\ncheckpoint_every = 50\n")
    case.write_text(text)
    first = CliRunner().invoke(cli, ["simulate", str(case), "--end", "2e-4", "--no-progress"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(case),
            "--end",
            "3e-4",
            "--restart",
            str(tmp_path / "out" / "checkpoint"),
            "--no-progress",
        ],
    )
    assert again.exit_code == 0, again.output
    restarted = json.loads(
        (tmp_path / "out" / "restart_from_step_100" / "summary.json").read_text()
    )
    assert restarted["status"] == "completed" and restarted["steps"] > 100
    assert (tmp_path / "out" / "summary.json").exists()  # the first run's files are kept


def test_simulate_out_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    # --out and --restart are command-line paths: both relative to where the user runs,
    # while [output] directory inside the file stays relative to the case file
    from snmech.cli import cli

    cases, work = tmp_path / "cases", tmp_path / "work"
    cases.mkdir()
    work.mkdir()
    text = (EXAMPLES / "cantilever_impact.toml").read_text()
    text = text.replace('directory = "../results/cantilever_impact"', 'directory = "in_file"')
    text = text.replace("[output]\n", "[output]\ncheckpoint_every = 50\n")
    (cases / "case.toml").write_text(text)
    monkeypatch.chdir(work)
    run = ["simulate", str(cases / "case.toml"), "--no-progress"]
    first = CliRunner().invoke(cli, [*run, "--out", "OUT", "--end", "2e-4"])
    assert first.exit_code == 0, first.output
    assert (work / "OUT" / "summary.json").exists() and not (cases / "OUT").exists()
    again = CliRunner().invoke(
        cli, [*run, "--out", "OUT", "--end", "3e-4", "--restart", "OUT/checkpoint"]
    )
    assert again.exit_code == 0, again.output
    assert (work / "OUT" / "restart_from_step_100" / "summary.json").exists()

    missing = CliRunner().invoke(cli, [*run, "--end", "3e-4", "--restart", "nowhere/checkpoint"])
    assert missing.exit_code != 0
    assert "no checkpoint there" in missing.output and "rank<r>of<n>.npz" in missing.output
    # a checkpoint written by another number of ranks is named as such
    (work / "OUT" / "checkpoint.rank0of1.npz").rename(work / "OUT" / "checkpoint.rank0of2.npz")
    other = CliRunner().invoke(cli, [*run, "--end", "3e-4", "--restart", "OUT/checkpoint"])
    assert other.exit_code != 0 and "written by 2 ranks" in other.output, other.output
    # a checkpoint cut short is named, not a zip-file traceback
    (work / "OUT" / "checkpoint.rank0of2.npz").rename(work / "OUT" / "checkpoint.rank0of1.npz")
    ckpt = work / "OUT" / "checkpoint.rank0of1.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    cut = CliRunner().invoke(cli, [*run, "--end", "3e-4", "--restart", "OUT/checkpoint"])
    assert cut.exit_code == 1 and "cannot read the checkpoint" in cut.output, cut.output


def test_simulate_never_mixes_a_new_run_into_a_finished_one(tmp_path):
    from snmech.cli import cli

    case = tmp_path / "case.toml"
    text = (EXAMPLES / "cantilever_impact.toml").read_text()
    text = text.replace("[output]\n", "[output]\ncheckpoint_every = 100\n")
    case.write_text(text)
    out = tmp_path / "OUT"
    run = ["simulate", str(case), "--out", str(out), "--end", "2e-4", "--no-progress"]
    first = CliRunner().invoke(cli, run)
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "checkpoint.rank0of1.npz" in before
    (out / "notes.txt").write_text("mine")
    again = CliRunner().invoke(cli, [*run[:-1], "--end", "1e-4", "--no-progress"])
    assert again.exit_code == 1 and "already holds a run" in again.output, again.output
    assert {
        p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "notes.txt"
    } == before
    replaced = CliRunner().invoke(cli, [*run[:-2], "1e-4", "--overwrite", "--no-progress"])
    assert replaced.exit_code == 0, replaced.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["time_s"] == pytest.approx(1e-4, rel=0.05)
    assert not (out / "checkpoint.rank0of1.npz").exists()  # the old run's, gone with it
    assert (out / "notes.txt").read_text() == "mine"  # not the run's: kept
