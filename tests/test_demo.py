"""The demo pipeline at its coarsest settings: files exist and parse, energy
balances, and the self-weight deflection matches beam theory."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.fem


@pytest.fixture(scope="module")
def quick_linear(tmp_path_factory):
    from snmech.demo import DemoSettings, run_demo

    out = tmp_path_factory.mktemp("demo_linear")
    settings = DemoSettings(law="linear", speed=100.0, output_interval=0.01)
    return out, run_demo(out, settings, progress=False)


def test_self_weight_deflection_matches_beam_theory(quick_linear):
    _, summary = quick_linear
    bridge = summary["bridge"]
    assert bridge["deflection_ratio"] == pytest.approx(1.0, abs=0.05)
    assert bridge["max_energy_balance_error"] < 1e-3
    assert bridge["vehicle_deflection_m"] > 0  # the crossing vehicle bends the deck further


def test_demo_outputs_exist_and_parse(quick_linear):
    out, summary = quick_linear
    written = json.loads((out / "summary.json").read_text())
    assert written["bridge"]["steps"] == summary["bridge"]["steps"]
    ts = json.loads((out / "timestep.json").read_text())
    assert ts["element"]["certified"] and ts["element"]["dt"] <= ts["global"]["dt"]
    bridge = out / "bridge"
    energy = np.loadtxt(bridge / "energy.csv", delimiter=",", skiprows=1)
    assert energy.shape[1] == 8 and len(energy) > 10
    probes = np.loadtxt(bridge / "probes.csv", delimiter=",", skiprows=1)
    assert probes.shape[1] == 5  # time, midspan u0 u1, quarter u0 u1
    for name in ("energy.png", "probes.png", "summary.json"):
        assert (bridge / name).stat().st_size > 0
    assert (bridge / "solution_displacement.bp").is_dir()
    assert (out / "bridge.toml").read_text().startswith("# The demo's bridge crossing")


def test_demo_with_a_trained_law(tmp_path):
    """The full pipeline with training (tiny settings): the law file is certified and
    the run uses its certified time step."""
    from snmech.demo import DemoSettings, run_demo
    from snmech.material import load_law

    settings = DemoSettings(samples=512, epochs=20, speed=200.0, settle=0.1, output_interval=0.01)
    summary = run_demo(tmp_path, settings, progress=False)
    law = load_law(tmp_path / "law.safetensors")
    assert law.lipschitz_bound() == pytest.approx(summary["certificate"]["lipschitz_bound_pa"])
    for name in ("data.csv", "metrics.json", "fit.png", "paths.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert summary["bridge"]["dt_s"] == pytest.approx(summary["time_step"]["element"]["dt"])
    assert summary["bridge"]["max_energy_balance_error"] < 1e-2
