"""Gradient-flow diagnostics and the task generators, on problems with known answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snmech.rnn import (
    SpectralRNN,
    adding_problem,
    copy_task,
    hidden_jacobian_norm,
    loss_gradient_per_step,
)


def test_jacobian_of_a_linear_rnn_is_the_matrix_power():
    # nn.RNN with relu on positive states is linear: dh_T/dh_0 = W^T, whose norm is sigma^T
    # for W = sigma * I.
    rnn = nn.RNN(1, 4, nonlinearity="relu", batch_first=True, bias=False)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(0.9 * torch.eye(4))
        rnn.weight_ih_l0.fill_(1.0)
    norm = hidden_jacobian_norm(rnn, torch.ones(30, 1))
    assert norm == pytest.approx(0.9**30, rel=2e-6)  # 0.9 stored in float32


@pytest.mark.parametrize("gamma", [0.5, 1.0])
def test_isometric_linear_regime_keeps_gamma_to_the_t(gamma):
    # tanh at h ~ 0 with zero input: the Jacobian is W^T exactly, all singular values gamma^T.
    rnn = SpectralRNN(1, 8, gamma_min=gamma, gamma_max=gamma, activation="tanh").double()
    with torch.no_grad():
        rnn.cell.input.weight.zero_()
        rnn.cell.input.bias.zero_()
    norm = hidden_jacobian_norm(rnn, torch.zeros(40, 1))
    assert norm == pytest.approx(gamma**40, rel=1e-5)  # orthogonal to float32 rounding


def test_orthogonal_modrelu_keeps_memory_where_plain_rnn_loses_it():
    torch.manual_seed(0)
    x, _ = adding_problem(1, 1000, generator=torch.Generator().manual_seed(0))
    ours = hidden_jacobian_norm(SpectralRNN(2, 32), x)
    plain = hidden_jacobian_norm(nn.RNN(2, 32, batch_first=True), x)
    assert ours >= 1e-2  # the target at T = 1000
    assert ours <= 1.0 + 1e-4  # gamma_max^T bound (float32 weights: orthogonal to ~1e-7)
    assert plain < 1e-10


def test_jacobian_bound_gamma_max_to_the_t():
    torch.manual_seed(1)
    rnn = SpectralRNN(2, 16, gamma_min=0.5, gamma_max=0.97)
    x = torch.randn(50, 2)
    assert hidden_jacobian_norm(rnn, x) <= 0.97**50 * (1 + 1e-5)


def test_gated_jacobian_bound_from_the_gates():
    # per step ||J_t|| <= sqrt(max(1 - g_t) + gamma_max^2 max(g_t)) (SpectralRNNCell docstring)
    torch.manual_seed(2)
    gamma = 0.9
    rnn = SpectralRNN(2, 16, gamma_min=0.5, gamma_max=gamma, gated=True)
    x = torch.randn(30, 2)
    with torch.no_grad():
        g = torch.sigmoid(rnn.cell.gate(x)).double()
    bound = torch.sqrt(g.max(1).values * gamma**2 + (1 - g).max(1).values).prod()
    assert hidden_jacobian_norm(rnn, x) <= float(bound) * (1 + 1e-5)


def test_loss_gradient_per_step_for_a_linear_rnn():
    # h_T = a^(T-t) h_t + ...: dL/dh_t = a^(T-t) dL/dh_T for L = sum(h_T).
    a, steps = 0.8, 12
    rnn = nn.RNN(1, 3, nonlinearity="relu", batch_first=True, bias=False)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(a * torch.eye(3))
        rnn.weight_ih_l0.fill_(1.0)
    g = loss_gradient_per_step(rnn, torch.ones(2, steps, 1), lambda h: h.sum())
    expected = torch.tensor([a ** (steps - 1 - t) * math.sqrt(6) for t in range(steps)])
    torch.testing.assert_close(g, expected.double(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("model", [nn.LSTM(2, 6, batch_first=True), SpectralRNN(2, 6, gated=True)])
def test_loss_gradient_per_step_agrees_with_the_jacobian_at_the_last_step(model):
    g = loss_gradient_per_step(model, torch.randn(3, 9, 2), lambda h: h.sum())
    assert g.shape == (9,)
    assert g[-1] == pytest.approx(math.sqrt(3 * 6))  # dL/dh_T = ones


def test_diagnostics_reject_unsupported_models():
    with pytest.raises(TypeError, match="expected SpectralRNN"):
        hidden_jacobian_norm(nn.Linear(2, 2), torch.zeros(3, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="single-layer"):
        hidden_jacobian_norm(nn.RNN(2, 4, num_layers=2), torch.zeros(3, 2))


def test_torch_spectral_norm_after_training_gets_a_clear_error_then_works():
    """torch's hook-based spectral_norm keeps a non-leaf weight after a training pass."""
    torch.manual_seed(0)
    rnn = nn.utils.spectral_norm(nn.RNN(2, 4, batch_first=True), name="weight_hh_l0")
    x = torch.randn(1, 5, 2)
    rnn(x)[1].sum().backward()
    with pytest.raises(ValueError, match="model.eval"):
        hidden_jacobian_norm(rnn, x)
    rnn.eval()
    with torch.no_grad():
        rnn(x)
    # tanh' <= 1: the Jacobian of h_T w.r.t. h_0 has norm <= ||W_hh||^T
    bound = float(torch.linalg.matrix_norm(rnn.weight_hh_l0.double(), 2)) ** x.shape[1]
    assert 0.0 < hidden_jacobian_norm(rnn, x) <= bound * (1 + 1e-9)


def test_adding_problem_statistics():
    x, y = adding_problem(20000, 50, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20000, 50, 2) and y.shape == (20000, 1)
    markers = x[..., 1]
    assert bool((markers.sum(1) == 2).all())
    assert bool((markers[:, :25].sum(1) == 1).all())  # one marker in each half
    torch.testing.assert_close(y[:, 0], (x[..., 0] * markers).sum(1))
    # constant predictor 1: MSE = Var(u1 + u2) = 1/6
    assert float((y - 1).pow(2).mean()) == pytest.approx(1 / 6, abs=5e-3)


def test_copy_task_layout():
    x, y = copy_task(4, 20, n_symbols=8, copy_length=10)
    assert x.shape == (4, 40, 10) and y.shape == (4, 40)
    seq = x.argmax(-1)
    torch.testing.assert_close(y[:, -10:], seq[:, :10])
    assert bool((seq[:, 29] == 9).all())  # the recall marker, just before the output window
    assert bool((y[:, :30] == 0).all())


def test_tasks_reject_bad_sizes():
    with pytest.raises(ValueError):
        adding_problem(4, 1)
    with pytest.raises(ValueError):
        copy_task(4, 0)
