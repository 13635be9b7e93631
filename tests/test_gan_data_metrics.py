"""Data sets and VEEGAN / digits metrics against sample sets with known scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snmech.gan import mixture, mode_metrics
from snmech.gan.data import DataStream
from snmech.gan.metrics import digits_metrics, frechet_distance

MIXES = pytest.mark.parametrize("name, k", [("ring8", 8), ("grid25", 25)])


@MIXES
def test_mixture_has_k_distinct_modes(name: str, k: int) -> None:
    mix = mixture(name)
    assert mix.modes.shape == (k, 2)
    d = torch.cdist(mix.modes, mix.modes) + torch.eye(k) * 10
    gap = 2 * math.sin(math.pi / 8) if name == "ring8" else 2.0
    assert float(d.min()) == pytest.approx(gap)


def test_ring8_modes_lie_on_the_unit_circle() -> None:
    assert torch.allclose(mixture("ring8").modes.norm(dim=1), torch.ones(8, dtype=torch.float64))


@MIXES
def test_the_data_itself_scores_the_rayleigh_hq_share(name: str, k: int) -> None:
    # |x - mode| / std is Rayleigh in 2-D: P(r <= 3) = 1 - exp(-9/2) = 98.89 %
    mix = mixture(name)
    m = mode_metrics(mix.sample(20000, torch.Generator().manual_seed(0)), mix)
    assert m.hq_percent == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.5)
    assert m.modes == k
    assert m.reverse_kl < 0.01


@MIXES
def test_one_mode_gives_log_k_reverse_kl(name: str, k: int) -> None:
    mix = mixture(name)
    m = mode_metrics(mix.modes[3].repeat(100, 1), mix)
    assert (m.hq_percent, m.modes) == (100.0, 1)
    assert m.reverse_kl == pytest.approx(math.log(k))


def test_two_modes_of_ring8_give_log_4() -> None:
    mix = mixture("ring8")
    x = torch.cat([mix.modes[0].repeat(50, 1), mix.modes[5].repeat(50, 1)])
    m = mode_metrics(x, mix)
    assert m.modes == 2
    assert m.reverse_kl == pytest.approx(math.log(4))


def test_far_samples_are_not_high_quality() -> None:
    mix = mixture("ring8")
    m = mode_metrics(mix.modes * 1.5, mix)  # every mode nearest once, none within 3 std
    assert (m.hq_percent, m.modes, m.reverse_kl) == (0.0, 0, pytest.approx(0.0, abs=1e-12))


def test_uniform_noise_over_grid25_matches_anchors() -> None:
    # ANCHORS: uniform noise over the grid square scores about 20.4/25 modes at 1.7 % HQ
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2500, 2, generator=gen) * 10 - 5
    m = mode_metrics(x, mixture("grid25"))
    assert 1.0 < m.hq_percent < 2.6
    assert 17 <= m.modes <= 24


def test_unknown_dataset_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="ring8, grid25, digits"):
        DataStream("ring9", torch.Generator())
    with pytest.raises(ValueError, match="not a 2-D mixture"):
        mixture("digits")


def test_bad_samples_are_refused() -> None:
    mix = mixture("ring8")
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        mode_metrics(torch.zeros(5, 3), mix)
    with pytest.raises(ValueError, match="NaN"):
        mode_metrics(torch.full((5, 2), float("nan")), mix)
    with pytest.raises(ValueError, match="positive integer"):
        mix.sample(0)


def test_frechet_distance_of_a_shift_is_its_squared_length() -> None:
    a = np.random.default_rng(0).normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + [3.0, 0, 4.0, 0]) == pytest.approx(25.0, rel=1e-6)


def test_real_digits_cover_ten_classes_and_noise_is_far() -> None:
    real = DataStream("digits", torch.Generator().manual_seed(0)).batch(1000)
    good = digits_metrics(real)
    noise = digits_metrics(
        torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    )
    assert good.classes == 10
    assert good.class_kl < 0.05
    assert good.confident_percent > 90
    assert noise.frechet > 10 * good.frechet
