"""SpectralRNNCell / SpectralRNN: shapes, variable lengths, caching, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from snmech.rnn import ModReLU, SpectralRNN, SpectralRNNCell

variants = pytest.mark.parametrize(
    "activation, gated",
    [("modrelu", False), ("groupsort", False), ("tanh", False), ("modrelu", True)],
)


@variants
def test_sequence_equals_the_cell_applied_step_by_step(activation, gated):
    torch.manual_seed(0)
    rnn = SpectralRNN(3, 8, gamma_min=0.5, gamma_max=1.0, activation=activation, gated=gated)
    x, h0 = torch.randn(4, 6, 3), torch.randn(4, 8)
    out, h_n = rnn(x, h0)
    h = h0
    for t in range(6):
        h = rnn.cell(x[:, t], h)
        torch.testing.assert_close(out[:, t], h)
    torch.testing.assert_close(h_n, h)


def test_linear_activation_free_case_matches_the_matrix_power():
    # tanh on tiny states is the identity to first order: h_T ~ W^T h_0 with W orthogonal,
    # so ||h_T|| = ||h_0|| (no gain, no loss: the isometry).
    torch.manual_seed(1)
    rnn = SpectralRNN(1, 16, activation="tanh").double()
    with torch.no_grad():
        rnn.cell.input.weight.zero_()
    h0 = 1e-6 * torch.randn(1, 16, dtype=torch.float64)
    _, h_n = rnn(torch.zeros(1, 50, 1, dtype=torch.float64), h0)
    w = rnn.cell.weight_hh.detach()
    torch.testing.assert_close(h_n, h0 @ torch.linalg.matrix_power(w.T, 50), rtol=1e-6, atol=0)
    torch.testing.assert_close(h_n.norm(), h0.norm(), rtol=1e-6, atol=0)


def test_variable_lengths_equal_separate_runs():
    torch.manual_seed(2)
    rnn = SpectralRNN(2, 8, gated=True)
    x = torch.randn(3, 7, 2)
    lengths = torch.tensor([7, 4, 1])
    out, h_n = rnn(x, lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        out_i, h_i = rnn(x[i : i + 1, :n])
        torch.testing.assert_close(out[i, :n], out_i[0])
        torch.testing.assert_close(h_n[i], h_i[0])
        assert bool((out[i, n:] == 0).all())


def test_packed_sequence_round_trip():
    torch.manual_seed(3)
    rnn = SpectralRNN(2, 8)
    x = torch.randn(3, 5, 2)
    lengths = torch.tensor([2, 5, 3])
    packed_out, h_n = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    out, out_lengths = pad_packed_sequence(packed_out, batch_first=True)
    ref_out, ref_h = rnn(x, lengths=lengths)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h_n, ref_h)
    assert out_lengths.tolist() == lengths.tolist()


def test_time_loop_builds_w_hh_once(monkeypatch):
    rnn = SpectralRNN(2, 8)
    calls = []
    exp = torch.linalg.matrix_exp
    monkeypatch.setattr(torch.linalg, "matrix_exp", lambda a: calls.append(1) or exp(a))
    out, _ = rnn(torch.randn(2, 30, 2))
    assert len(calls) == 1  # one orthogonal factor, built once for 30 steps
    assert not parametrize._cache_enabled  # the cache is scoped to the call


def test_gradients_reach_every_parameter():
    rnn = SpectralRNN(2, 8, gamma_min=0.5, gamma_max=1.5, gated=True)
    rnn(torch.randn(2, 5, 2))[1].pow(2).sum().backward()
    for name, p in rnn.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name


def test_modrelu_is_sign_times_shifted_modulus():
    act = ModReLU(3)
    with torch.no_grad():
        act.bias.copy_(torch.tensor([-0.5, 0.0, -2.0]))
    z = torch.tensor([[1.5, -0.3, -1.0]])
    torch.testing.assert_close(act(z), torch.tensor([[1.0, -0.3, 0.0]]))
    assert act.lipschitz_factor() == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gamma_min": 2.0, "gamma_max": 1.0}, "gamma_min must be <= gamma_max"),
        ({"activation": "relu6"}, "activation must be one of"),
        ({"gamma_min": -1.0}, "positive"),
    ],
)
def test_bad_construction_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectralRNN(2, 8, **kwargs)


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (torch.full((2, 5, 2), float("nan")), {}, "NaN"),
        (torch.zeros(2, 5, 3), {}, "2 features"),
        (torch.zeros(5, 2), {}, "batch, time"),
        (torch.zeros(2, 5, 2), {"h0": torch.zeros(2, 4)}, "h0 must be"),
        (torch.zeros(2, 5, 2), {"lengths": torch.tensor([6, 1])}, r"lengths must lie in \[1, 5\]"),
        (torch.zeros(2, 5, 2), {"lengths": torch.tensor([2.0, 1.0])}, "integer"),
    ],
)
def test_bad_input_is_rejected(x, kwargs, match):
    with pytest.raises(ValueError if "integer" not in match else TypeError, match=match):
        SpectralRNN(2, 8)(x, **kwargs)


def test_cell_rejects_nan_and_wrong_state():
    cell = SpectralRNNCell(2, 4)
    with pytest.raises(ValueError, match="NaN"):
        cell(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="hidden state"):
        cell(torch.zeros(1, 2), torch.zeros(1, 5))


def test_recurrent_parameters_are_the_constrained_ones():
    rnn = SpectralRNN(2, 8, gamma_min=0.5, gamma_max=2.0)
    names = {
        n for n, p in rnn.named_parameters() if any(p is q for q in rnn.recurrent_parameters())
    }
    assert names == {f"cell.recurrent.parametrizations.weight.original{i}" for i in range(3)}
    assert isinstance(rnn.cell.recurrent, nn.Linear)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    torch.manual_seed(4)
    rnn = SpectralRNN(2, 16, gamma_min=0.5, gamma_max=1.0, gated=True)
    x = torch.randn(3, 20, 2)
    lengths = torch.tensor([20, 9, 3])
    ref_out, ref_h = rnn(x, lengths=lengths)
    out, h = rnn.cuda()(x.cuda(), lengths=lengths.cuda())
    torch.testing.assert_close(out.cpu(), ref_out, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(h.cpu(), ref_h, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("module", ["snmech.rnn._bounded", "snmech.rnn.sequence"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
