"""bound_singular_values: the exact singular values stay in [gamma_min, gamma_max]."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.rnn import bound_singular_values, singular_value_bounds

intervals = pytest.mark.parametrize(
    "gamma_min, gamma_max", [(1.0, 1.0), (0.5, 2.0), (0.9, 1.0), (2.5, 2.5)]
)


def _inside(w: torch.Tensor, gamma_min: float, gamma_max: float, rtol: float = 1e-5) -> bool:
    s = torch.linalg.svdvals(w.detach().double())
    return bool(s.min() >= gamma_min * (1 - rtol) and s.max() <= gamma_max * (1 + rtol))


@intervals
def test_singular_values_stay_in_interval_through_training(gamma_min, gamma_max):
    torch.manual_seed(0)
    layer = bound_singular_values(nn.Linear(16, 16), "weight", gamma_min, gamma_max)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)  # large steps: push hard on the bounds
    x = torch.randn(32, 16)
    for _ in range(20):
        assert _inside(layer.weight, gamma_min, gamma_max)
        loss = (layer(x) - 10 * x.flip(1)).pow(2).mean() + layer.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _inside(layer.weight, gamma_min, gamma_max)


def test_isometry_is_gamma_times_orthogonal():
    layer = bound_singular_values(nn.Linear(12, 12), gamma_min=2.0, gamma_max=2.0)
    w = layer.weight.detach().double()
    torch.testing.assert_close(w.T @ w, 4.0 * torch.eye(12, dtype=torch.float64), atol=1e-5, rtol=0)


def test_right_inverse_keeps_a_matrix_already_in_the_interval():
    # W = Q diag(s) Q'^T with s inside the interval is reproduced exactly.
    torch.manual_seed(1)
    q1, _ = torch.linalg.qr(torch.randn(8, 8))
    q2, _ = torch.linalg.qr(torch.randn(8, 8))
    target = (q1 * torch.linspace(0.6, 1.8, 8)) @ q2.T
    layer = nn.Linear(8, 8)
    with torch.no_grad():
        layer.weight.copy_(target)
    bound_singular_values(layer, gamma_min=0.5, gamma_max=2.0)
    torch.testing.assert_close(layer.weight.detach(), target, atol=1e-5, rtol=0)


def test_values_outside_are_clipped_onto_the_interval():
    layer = nn.Linear(6, 6)
    with torch.no_grad():
        layer.weight.copy_(torch.diag(torch.tensor([10.0, 3.0, 1.0, 0.5, 0.1, 0.01])))
    bound_singular_values(layer, gamma_min=0.5, gamma_max=2.0)
    s = torch.linalg.svdvals(layer.weight.detach())
    torch.testing.assert_close(s, torch.tensor([2.0, 2.0, 1.0, 0.5, 0.5, 0.5]), atol=1e-4, rtol=0)


def test_register_then_remove_keeps_value_and_class():
    layer = bound_singular_values(nn.Linear(5, 5), gamma_min=0.5, gamma_max=1.5)
    w = layer.weight.detach().clone()
    assert singular_value_bounds(layer) == (0.5, 1.5)
    parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    assert type(layer) is nn.Linear
    torch.testing.assert_close(layer.weight.detach(), w)
    assert singular_value_bounds(layer) is None


def test_state_dict_round_trip_restores_the_base():
    torch.manual_seed(2)
    a = bound_singular_values(nn.Linear(7, 7), gamma_min=0.5, gamma_max=2.0)
    b = bound_singular_values(nn.Linear(7, 7), gamma_min=0.5, gamma_max=2.0)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.weight, b.weight)


@pytest.mark.parametrize(
    "gamma_min, gamma_max, match",
    [
        (2.0, 1.0, "gamma_min must be <= gamma_max"),
        (0.0, 1.0, "positive"),
        (1.0, float("inf"), "positive finite"),
    ],
)
def test_bad_interval_is_rejected(gamma_min, gamma_max, match):
    with pytest.raises(ValueError, match=match):
        bound_singular_values(nn.Linear(4, 4), gamma_min=gamma_min, gamma_max=gamma_max)


def test_non_square_matrix_is_rejected():
    with pytest.raises(ValueError, match="square"):
        bound_singular_values(nn.Linear(4, 3))
