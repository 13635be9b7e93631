"""examples/timestep_matters.py, reduced: the certified step holds, the Courant guess does not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fem

pytest.importorskip("snmech.fem")  # imports dolfinx_solver before dolfinx

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "timestep_matters.py"
STEPS = 2000


def load_example():
    spec = importlib.util.spec_from_file_location("timestep_matters", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return load_example()


@pytest.fixture(scope="module")
def outcome(example):
    # 20 x 2 quadrilaterals, 1024 samples, 300 epochs: about 12 s on one core.
    return example.main(n_cells=20, n_steps=STEPS, n_samples=1024, epochs=300)


def test_networks_have_similar_accuracy(outcome):
    acc = outcome.accuracy
    assert acc["potential"] < 0.05 and acc["plain"] < 0.05
    assert 1 / 3 < acc["potential"] / acc["plain"] < 3


def test_bounds_are_above_the_tangents_found(outcome):
    bound, found = outcome.bound, outcome.tangent_found
    assert bound["potential"] >= found["potential"] > 0.9 * bound["reference"]
    assert bound["plain"] >= found["plain"] > 0.9 * bound["reference"]


def test_certified_step_is_below_the_courant_guess(outcome):
    dt = outcome.dt
    assert dt["certified"] < dt["courant"]
    # The Courant number overshoots the exact critical step of linear elasticity itself.
    assert dt["exact_linear"] < dt["courant"]


def test_potential_law_at_certified_dt_stays_bounded(outcome):
    run = outcome.runs["potential_certified"]
    assert run.error is None and run.steps == STEPS
    assert run.diverged_at is None
    assert run.max_balance_error < 0.01
    assert run.peak_strain > 1e-3  # the impact reaches the nonlinear range


def test_plain_network_at_courant_dt_diverges(outcome):
    run = outcome.runs["plain_courant"]
    assert run.error is not None or run.diverged_at is not None
    assert run.diverged_at is not None and run.diverged_at < 100


def test_courant_dt_is_no_guarantee_for_any_law(outcome):
    for name in ("potential_courant", "reference_courant"):
        assert outcome.runs[name].diverged_at is not None


def test_plot_is_written(example, outcome, tmp_path):
    pytest.importorskip("matplotlib")
    path = example.plot(outcome, tmp_path / "energy.png")
    assert path.stat().st_size > 10_000
