"""Whole-network certificates: composition rules, refusal to guess, and >= lower bound."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from snmech.spectral import (
    GroupSort,
    MaxMin,
    Residual,
    lipschitz_bound,
    lipschitz_lower_bound,
    operator_norm,
    spectral_norm,
)


def diag_linear(values):
    layer = nn.Linear(len(values), len(values), bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.diag(torch.tensor(values, dtype=torch.float32)))
    return layer


def test_product_of_known_factors():
    net = nn.Sequential(
        diag_linear([2.0, 1.0]),
        nn.Sigmoid(),
        diag_linear([3.0, 0.5]),
        nn.LeakyReLU(0.1),
        nn.Dropout(0.3),
        nn.Flatten(),
    )
    cert = lipschitz_bound(net)
    assert cert.value == pytest.approx(2.0 * 0.25 * 3.0, rel=1e-10)
    assert [f.kind for f in cert.factors] == [
        "Linear",
        "Sigmoid",
        "Linear",
        "LeakyReLU",
        "Dropout",
        "Flatten",
    ]


def test_linear_network_bound_is_exact():
    """Two diagonal layers: the product of norms is the true Lipschitz constant."""
    net = nn.Sequential(diag_linear([3.0, 1.0]), diag_linear([2.0, 0.5]))
    assert lipschitz_bound(net).value == pytest.approx(6.0, rel=1e-10)
    assert lipschitz_lower_bound(net, torch.randn(4, 2)) == pytest.approx(6.0, rel=1e-6)


def test_residual_block_is_one_plus_branch():
    net = nn.Sequential(Residual(nn.Sequential(diag_linear([0.5, 0.25]), nn.ReLU())), nn.Tanh())
    cert = lipschitz_bound(net)
    assert cert.value == pytest.approx(1.5, rel=1e-10)
    assert any(f.name == "0.branch.0" for f in cert.factors)


def test_batchnorm_eval_and_pooling():
    bn = nn.BatchNorm1d(3).eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
        bn.weight.copy_(torch.tensor([1.0, 1.0, 1.0]))
    cert = lipschitz_bound(nn.Sequential(bn))
    assert cert.value == pytest.approx(1 / math.sqrt(0.25 + bn.eps), rel=1e-9)
    pool = nn.Sequential(nn.AvgPool2d(2), nn.MaxPool2d(3, stride=1))
    assert lipschitz_bound(pool, (1, 8, 8)).value == pytest.approx(0.5 * 3.0)
    gap = nn.AdaptiveAvgPool2d(1)
    assert lipschitz_bound(nn.Sequential(gap), (2, 4, 4)).value == pytest.approx(0.25, rel=1e-9)


def test_batchnorm_without_running_stats_is_refused():
    with pytest.raises(ValueError, match="running statistics"):
        lipschitz_bound(nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False)))


def test_unknown_module_is_named_not_guessed():
    class Mystery(nn.Module):
        def forward(self, x):
            return x**2

    with pytest.raises(TypeError, match=r"'1' \(Mystery\)"):
        lipschitz_bound(nn.Sequential(nn.Linear(2, 2), Mystery()))


def test_conv_network_needs_and_uses_input_shape():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 2),
    )
    with pytest.raises(ValueError, match="input_shape"):
        lipschitz_bound(net)
    cert = lipschitz_bound(net, (1, 8, 8))
    expected = (
        operator_norm(net[0], (1, 8, 8)) * operator_norm(net[2], (4, 8, 8)) * operator_norm(net[4])
    )
    assert cert.value == pytest.approx(expected, rel=1e-12)


def test_certificate_restores_training_flags_and_buffers():
    net = nn.Sequential(spectral_norm(nn.Linear(4, 4)), nn.ReLU()).train()
    u = net[0].parametrizations.weight[0]._u.clone()
    lipschitz_bound(net)
    assert net.training and net[0].training
    assert torch.equal(u, net[0].parametrizations.weight[0]._u)


ACTIVATIONS = [
    nn.ReLU(),
    nn.Tanh(),
    nn.ELU(),
    nn.Softplus(),
    nn.GELU(),
    nn.SiLU(),
    nn.LeakyReLU(0.2),
    GroupSort(4),
    MaxMin(),
]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), act=st.sampled_from(ACTIVATIONS), width=st.sampled_from([8, 16]))
def test_certificate_exceeds_lower_bound(seed, act, width):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, width), act, nn.Linear(width, width), act, nn.Linear(width, 6))
    cert = lipschitz_bound(net).value
    lower = lipschitz_lower_bound(net, torch.randn(8, 6), steps=10)
    assert lower <= cert


def test_lower_bound_of_a_cnn_stays_below_certificate():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), GroupSort(2), nn.Conv2d(4, 2, 3, padding=1))
    cert = lipschitz_bound(net, (2, 8, 8)).value
    lower = lipschitz_lower_bound(net, torch.randn(3, 2, 8, 8), steps=5)
    assert 0.3 * cert < lower <= cert


def test_groupsort_is_a_piecewise_permutation():
    x = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    assert torch.equal(GroupSort(2)(x), torch.tensor([[1.0, 3.0, 0.0, 2.0]]))
    assert torch.equal(GroupSort(4)(x), torch.tensor([[0.0, 1.0, 2.0, 3.0]]))
    assert torch.equal(MaxMin()(x), torch.tensor([[3.0, 1.0, 2.0, 0.0]]))
    with pytest.raises(ValueError, match="divisible"):
        GroupSort(3)(x)


def test_lower_bound_rejects_bad_inputs():
    with pytest.raises(ValueError, match="NaN"):
        lipschitz_lower_bound(nn.Linear(2, 2), torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="non-empty"):
        lipschitz_lower_bound(nn.Linear(2, 2), torch.zeros(0, 2))
