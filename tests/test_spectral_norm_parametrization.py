"""spectral_norm as a parametrization: values, gradients, buffers, state, finalize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.spectral import (
    finalize,
    lipschitz_bound,
    operator_norm,
    spectral_norm,
    spectral_parametrizations,
)
from snmech.spectral.penalty import spectral_penalty


def exact_sigma(w: torch.Tensor) -> float:
    return float(
        np.linalg.svd(w.detach().double().reshape(w.shape[0], -1).numpy(), compute_uv=False)[0]
    )


def test_hard_mode_value_of_a_diagonal_matrix():
    layer = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.diag(torch.tensor([4.0, 2.0, 1.0])))
    spectral_norm(layer, target=2.0, n_power_iterations=30)
    assert torch.allclose(layer.weight, torch.diag(torch.tensor([2.0, 1.0, 0.5])), atol=1e-5)


def test_soft_mode_leaves_small_weights_alone():
    layer = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.diag(torch.tensor([0.5, 0.2, 0.1])))
    spectral_norm(layer, mode="soft")
    assert torch.allclose(layer.weight, torch.diag(torch.tensor([0.5, 0.2, 0.1])))


def test_register_then_remove_keeps_parameter_object_and_class():
    layer = nn.Linear(4, 5)
    original = layer.weight
    spectral_norm(layer)
    assert parametrize.is_parametrized(layer, "weight")
    assert layer.parametrizations.weight.original is original
    parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
    assert layer.weight is original and type(layer) is nn.Linear


def test_buffers_update_in_training_and_freeze_in_eval():
    torch.manual_seed(0)
    layer = spectral_norm(nn.Linear(8, 8))
    p = spectral_parametrizations(layer)[0]
    with torch.no_grad():
        layer.parametrizations.weight.original.add_(torch.randn(8, 8))
    u0 = p._u.clone()
    layer.eval()
    _ = layer.weight
    assert torch.equal(p._u, u0)
    layer.train()
    _ = layer.weight
    assert not torch.equal(p._u, u0)


def test_state_dict_round_trip():
    torch.manual_seed(1)
    a = spectral_norm(nn.Linear(6, 7))
    b = spectral_norm(nn.Linear(6, 7))
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    assert torch.equal(a.weight, b.weight)
    assert "parametrizations.weight.0._u" in a.state_dict()


def test_gradients_through_the_parametrization_gradcheck():
    torch.manual_seed(0)
    layer = spectral_norm(nn.Linear(4, 3).double(), n_power_iterations=20).eval()
    raw = layer.parametrizations.weight.original.detach().clone().requires_grad_(True)
    p = spectral_parametrizations(layer)[0]
    assert torch.autograd.gradcheck(p, (raw,))


def test_conv_estimate_follows_the_true_operator_norm_not_the_reshaped_kernel():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    shape = (3, 16, 16)
    spectral_norm(conv, input_shape=shape, n_power_iterations=1)
    conv.train()
    for _ in range(100):
        _ = conv.weight
    conv.eval()
    sigma = operator_norm(conv, shape)
    flat = exact_sigma(conv.weight)
    assert sigma == pytest.approx(1.0, abs=0.02)  # operator norm on 16x16, FFT bound
    assert abs(flat - 1.0) > 0.05  # torch's reshape-normalization would put this at 1


def test_training_overshoot_removed_by_finalize():
    """Adam at lr 1e-2 with one power iteration overshoots; finalize makes norms exact."""
    torch.manual_seed(0)
    net = nn.Sequential(
        spectral_norm(nn.Linear(6, 64)),
        nn.Tanh(),
        spectral_norm(nn.Linear(64, 64)),
        nn.Tanh(),
        spectral_norm(nn.Linear(64, 6)),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = torch.randn(256, 6), torch.randn(256, 6)
    for _ in range(50):
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    net.eval()
    finalize(net)
    for layer in (net[0], net[2], net[4]):
        assert not parametrize.is_parametrized(layer)
        assert exact_sigma(layer.weight) <= 1.0 + 1e-12
        assert exact_sigma(layer.weight) == pytest.approx(1.0, abs=1e-6)
    cert = lipschitz_bound(net)
    assert cert.value <= 1.0 and cert.value == pytest.approx(1.0, abs=1e-6)


def test_finalize_keeps_the_function_up_to_the_overshoot():
    torch.manual_seed(2)
    net = nn.Sequential(
        spectral_norm(nn.Linear(5, 16), n_power_iterations=50),
        nn.ReLU(),
        spectral_norm(nn.Linear(16, 2), n_power_iterations=50),
    ).eval()
    x = torch.randn(32, 5)
    before = net(x)
    finalize(net)
    assert torch.allclose(net(x), before, rtol=1e-4, atol=1e-5)


def test_finalize_conv_to_exact_target():
    torch.manual_seed(0)
    shape = (2, 10, 10)
    conv = spectral_norm(nn.Conv2d(2, 3, 3, padding=1, stride=2), target=0.5, input_shape=shape)
    finalize(conv)
    assert operator_norm(conv, shape) <= 0.5
    assert operator_norm(conv, shape) == pytest.approx(0.5, rel=1e-6)


def test_soft_finalize_shrinks_only():
    layer = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(0.3 * torch.eye(3))
    spectral_norm(layer, mode="soft")
    finalize(layer)
    assert exact_sigma(layer.weight) == pytest.approx(0.3, rel=1e-6)


def test_penalty_pulls_exact_norms_to_target():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(5)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    first = float(spectral_penalty(net, input_shape=(1, 8)).detach())
    for _ in range(500):
        opt.zero_grad()
        spectral_penalty(net, input_shape=(1, 8)).backward()
        opt.step()
    assert first > 1.0
    assert operator_norm(net[0], (1, 8)) < 1.02
    assert operator_norm(net[3]) < 1.02


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(target=0.0), ValueError, "target"),
        (dict(target=float("nan")), ValueError, "target"),
        (dict(n_power_iterations=0), ValueError, "n_power_iterations"),
        (dict(mode="medium"), ValueError, "mode"),
        (dict(name="bias"), ValueError, "bias"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        spectral_norm(nn.Linear(3, 3), **kwargs)


def test_bad_modules():
    with pytest.raises(TypeError, match="LSTM"):
        spectral_norm(nn.LSTM(3, 3))
    with pytest.raises(ValueError, match="input_shape"):
        spectral_norm(nn.Conv2d(3, 3, 3))


@pytest.mark.cuda
def test_cuda_path():
    net = nn.Sequential(
        spectral_norm(nn.Linear(6, 32)),
        nn.Tanh(),
        spectral_norm(nn.Conv1d(1, 2, 3, padding=1), input_shape=(1, 32)),
    ).cuda()
    conv_net = nn.Sequential(
        spectral_norm(nn.Conv2d(3, 8, 3, padding=1), input_shape=(3, 16, 16)), nn.ReLU()
    ).cuda()
    x = torch.randn(4, 3, 16, 16, device="cuda")
    conv_net(x).sum().backward()
    finalize(conv_net)
    assert lipschitz_bound(conv_net, (3, 16, 16)).value <= 1.0
    y = net[0](torch.randn(2, 6, device="cuda"))
    assert y.is_cuda


def test_sync_exact_makes_the_training_weight_exactly_normalized():
    """One power-iteration step per forward lets the weight drift above target;
    sync_exact_ after each step keeps it at the target up to float32 rounding."""
    from snmech.spectral import sync_exact_

    torch.manual_seed(0)
    layer = spectral_norm(nn.Linear(32, 32))
    opt = torch.optim.Adam(layer.parameters(), lr=5e-2)

    def step():
        x = torch.randn(64, 32)
        opt.zero_grad()
        (layer(x) - 3 * x).pow(2).mean().backward()  # asks for gain 3: pushes the norm up
        opt.step()

    drift, synced = 0.0, 0.0
    for _ in range(30):
        step()
        with torch.no_grad():
            layer(torch.zeros(1, 32))  # the training forward: one estimate step
            drift = max(drift, float(torch.linalg.matrix_norm(layer.weight, 2)))
    assert drift > 1.0 + 1e-4  # the estimate alone lets it drift
    for _ in range(30):
        step()
        raw = sync_exact_(layer)
        exact = float(torch.linalg.matrix_norm(layer.parametrizations.weight.original.detach(), 2))
        assert raw == pytest.approx(exact, rel=1e-6)
        layer.eval()
        synced = max(synced, float(torch.linalg.matrix_norm(layer.weight.double(), 2)))
        layer.train()
    assert synced <= 1.0 + 1e-5
    with pytest.raises(ValueError, match="dense layer"):
        sync_exact_(nn.Linear(3, 3))


@pytest.mark.parametrize("shape", [(40, 12), (12, 40), (1, 30), (30, 1), (24, 24)])
def test_sync_exact_pair_matches_the_svd_even_with_a_near_double_top(shape):
    """The pair sync_exact_ stores is a top singular pair of the raw weight
    (checked against a float64 SVD), for tall, wide and vector weights, and
    when the two largest singular values agree to 1e-9."""
    from snmech.spectral import sync_exact_

    torch.manual_seed(1)
    m, n = shape
    layer = spectral_norm(nn.Linear(n, m))
    q1, _ = torch.linalg.qr(torch.randn(m, m, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    k = min(m, n)
    s = torch.linspace(2.0, 0.1, k, dtype=torch.float64)
    if k > 1:
        s[1] = s[0] * (1 - 1e-9)
    w = q1[:, :k] @ torch.diag(s) @ q2[:, :k].t()
    with torch.no_grad():
        layer.parametrizations.weight.original.copy_(w.float())
    raw = layer.parametrizations.weight.original.detach().double()
    exact = float(torch.linalg.svdvals(raw)[0])
    sigma = sync_exact_(layer)
    assert sigma == pytest.approx(exact, rel=1e-12)
    p = layer.parametrizations.weight[0]
    u, v = p._u.double(), p._v.double()
    assert float(torch.linalg.vector_norm(raw @ v - exact * u)) <= 1e-6 * exact
    assert float(torch.linalg.vector_norm(raw.t() @ u - exact * v)) <= 1e-6 * exact
    # the training forward divides by u^T W v: the applied weight has norm 1 to float32 rounding
    layer.train()
    applied = layer.weight.detach().double()
    assert float(torch.linalg.matrix_norm(applied, 2)) == pytest.approx(1.0, abs=1e-6)


def _flat_top_weight(n: int, seed: int) -> torch.Tensor:
    """A weight whose top 12 singular values agree to 1 % (what hard normalization makes)."""
    g = torch.Generator().manual_seed(seed)
    q1, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    q2, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    s = torch.linspace(1.0, 0.05, n, dtype=torch.float64)
    s[:12] = 1.0 - 0.01 * torch.rand(12, dtype=torch.float64, generator=g)
    return q1 @ torch.diag(s) @ q2.t()


def test_sync_bound_is_a_proven_upper_bound_along_a_training_path():
    """Along a path of small weight changes (optimizer-like steps that reorder the
    flat top spectrum) the bound never falls below the exact norm (float64 SVD)
    and never exceeds it by more than sqrt(1 + rtol); the applied weight stays in
    [1/sqrt(1 + rtol), 1] x target, eval and training forwards alike."""
    from snmech.spectral import sync_bound_

    torch.manual_seed(0)
    n, rtol = 64, 1e-3
    layer = spectral_norm(nn.Linear(n, n))
    w = _flat_top_weight(n, 0)
    g = torch.Generator().manual_seed(1)
    original = layer.parametrizations.weight.original
    exact_calls = 0
    for _ in range(40):
        w = w + 2e-3 * torch.randn(n, n, dtype=torch.float64, generator=g)
        with torch.no_grad():
            original.copy_(w.float())
        raw = original.detach().double()
        exact = float(torch.linalg.svdvals(raw)[0])
        bound = sync_bound_(layer, rtol=rtol)
        p = layer.parametrizations.weight[0]
        exact_calls += float(p._scale) == 1.0
        assert exact * (1 - 1e-12) <= bound <= exact * (1 + rtol) ** 0.5
        for training in (False, True):
            layer.train(training)
            applied = float(torch.linalg.matrix_norm(layer.weight.detach().double(), 2))
            assert (1 + rtol) ** -0.5 - 1e-6 <= applied <= 1 + 1e-6
    assert "_block" in dict(p.named_buffers())
    assert exact_calls <= 5  # the first call (no block yet) and rare fallbacks


def test_sync_bound_falls_back_to_the_exact_pair_when_its_block_misses_the_top():
    from snmech.spectral import sync_bound_

    torch.manual_seed(0)
    n = 64
    layer = spectral_norm(nn.Linear(n, n))
    with torch.no_grad():
        layer.parametrizations.weight.original.copy_(_flat_top_weight(n, 2).float())
    sync_bound_(layer)
    p = layer.parametrizations.weight[0]
    raw = layer.parametrizations.weight.original.detach().double()
    _, vecs = torch.linalg.eigh(raw.t() @ raw)
    p._block.copy_(vecs[:, :16])  # the bottom of the spectrum: the Ritz value is far too small
    exact = float(torch.linalg.svdvals(raw)[0])
    assert sync_bound_(layer) == pytest.approx(exact, rel=1e-12)
    assert float(p._scale) == 1.0
    # and the block is refreshed: it holds the top eigenvector again
    assert float(torch.linalg.vector_norm(p._block.t() @ vecs[:, -1])) == pytest.approx(1.0)


def test_sync_bound_state_round_trips_and_older_files_still_load():
    from snmech.spectral import sync_bound_

    torch.manual_seed(0)
    layer = spectral_norm(nn.Linear(48, 48))
    sync_bound_(layer)  # exact, creates the block
    with torch.no_grad():
        layer.parametrizations.weight.original.add_(1e-3)
    sync_bound_(layer)
    state = layer.state_dict()
    assert any(k.endswith("_block") for k in state) and any(k.endswith("_scale") for k in state)
    twin = spectral_norm(nn.Linear(48, 48))
    twin.load_state_dict(state)
    x = torch.randn(5, 48)
    assert torch.equal(twin.eval()(x), layer.eval()(x))
    # a file written before _scale and _block existed loads, dividing by u^T W v alone
    old = {k: v for k, v in state.items() if not k.endswith(("_scale", "_block"))}
    layer.load_state_dict(old)
    p = layer.parametrizations.weight[0]
    assert float(p._scale) == 1.0 and "_block" not in dict(p.named_buffers())


def test_sync_bound_rejects_bad_arguments():
    from snmech.spectral import sync_bound_

    layer = spectral_norm(nn.Linear(8, 8))
    with pytest.raises(ValueError, match="rtol"):
        sync_bound_(layer, rtol=0.0)
    with pytest.raises(ValueError, match="block"):
        sync_bound_(layer, block=0)
    with pytest.raises(ValueError, match="dense layer"):
        sync_bound_(nn.Linear(3, 3))


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ),
    ],
)
def test_sync_bound_runs_where_the_layer_lives(device):
    from snmech.spectral import sync_bound_

    torch.manual_seed(0)
    layer = spectral_norm(nn.Linear(64, 64)).to(device)
    for _ in range(3):
        with torch.no_grad():
            layer.parametrizations.weight.original.add_(1e-3)
        bound = sync_bound_(layer)
        raw = layer.parametrizations.weight.original.detach().double()
        exact = float(torch.linalg.svdvals(raw)[0])
        assert exact * (1 - 1e-12) <= bound <= exact * (1 + 1e-3) ** 0.5
    p = layer.parametrizations.weight[0]
    assert p._block.device.type == device and p._scale.device.type == device
    assert float(torch.linalg.matrix_norm(layer.weight.detach().double(), 2)) <= 1 + 1e-6
