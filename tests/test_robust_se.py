"""The SE block: gates, normalized excitation, its bounded-set certificate, L1, clutter."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from snmech.robust import (
    ClutterSpec,
    MarginCrossEntropy,
    SqueezeExcitation,
    clutter_cnn,
    excitation_l1,
    export,
    gate_l1,
    make_clutter,
    se_lipschitz_bound,
    train_classifier,
)
from snmech.robust.clutter import channel_gates, clutter_attack_accuracy
from snmech.spectral import lipschitz_bound, lipschitz_lower_bound, operator_norm, sync_exact_

SHAPE = (6, 5, 5)


def _block(normalized=True, seed=0):
    torch.manual_seed(seed)
    block = SqueezeExcitation(SHAPE[0], 4, normalized=normalized)
    if not normalized:
        with torch.no_grad():  # make the plain excitation steep
            block.fc1.weight.mul_(4.0)
            block.fc2.weight.mul_(4.0)
    return block.eval()


def _in_set(n, radius, seed=1):
    # random maps, each channel scaled to l2 norm in (0, radius]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *SHAPE), generator=g) + 2.0 * torch.rand((n, SHAPE[0], 1, 1), generator=g)
    scale = radius * torch.rand((n, SHAPE[0], 1, 1), generator=g) ** 0.3
    return x / x.flatten(2).norm(dim=2)[..., None, None] * scale


def test_gate_lies_in_unit_interval_and_scales_channels():
    block = _block()
    x = 10 * torch.randn(7, *SHAPE)
    g = block.gate(x)
    assert g.shape == (7, SHAPE[0])
    assert (g > 0).all() and (g < 1).all()
    assert torch.allclose(block(x), x * g[:, :, None, None])


@pytest.mark.parametrize("normalized", [True, False])
def test_bounded_set_certificate_is_never_beaten(normalized):
    block = _block(normalized)
    radius = 3.0 * math.sqrt(SHAPE[1] * SHAPE[2])  # |x| <= 3 elementwise fits inside
    cert = se_lipschitz_bound(block, SHAPE, channel_norm=radius)
    n1, n2 = (operator_norm(block.fc1), operator_norm(block.fc2))
    expected = 1 + radius * n1 * n2 / (4 * math.sqrt(SHAPE[1] * SHAPE[2]))
    assert cert.value == pytest.approx(expected, rel=1e-9)
    # Jacobian norms at points of the set (power iteration, no steps out of it)
    x = 0.999 * _in_set(32, radius)
    lower = lipschitz_lower_bound(block, x, steps=0, n_power_iterations=20)
    assert lower <= cert.value
    assert lower > 0.25 * cert.value  # and the bound is not vacuous


def test_block_has_no_global_lipschitz_constant():
    # along x = t a with zero channel means the gate stays put, but a constant
    # perturbation moves it, and the change is multiplied by t a: slope ~ t
    block = _block(normalized=True)
    a = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(3))
    a = a - a.mean(dim=(2, 3), keepdim=True)
    v = torch.ones(1, *SHAPE) / math.sqrt(math.prod(SHAPE))
    h = 1e-3

    def quotient(t):
        with torch.no_grad():
            xa = (t * a).double()
            return float((block.double()(xa + h * v) - block(xa)).norm() / h)

    assert quotient(1000.0) > 50 * quotient(1.0)
    with pytest.raises(TypeError, match="no global Lipschitz constant"):
        lipschitz_bound(nn.Sequential(nn.Conv2d(6, 6, 1), block), input_shape=SHAPE)


def test_normalized_excitation_norms_after_training_steps():
    torch.manual_seed(0)
    block = SqueezeExcitation(8, 4)
    opt = torch.optim.Adam(block.parameters(), lr=0.05)
    x = torch.randn(32, 8, 4, 4)
    block.train()
    for _ in range(20):
        loss = (block(x) - 2 * x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    block.eval()
    # one power step per training step: the applied norm tracks 1 closely ...
    for layer in (block.fc1, block.fc2):
        assert 0.97 < operator_norm(layer) < 1.03
    # ... and after syncing the estimate to the exact top pair it is 1 up to rounding
    block.train()
    for layer in (block.fc1, block.fc2):
        sync_exact_(layer)
    block.eval()
    for layer in (block.fc1, block.fc2):
        assert operator_norm(layer) <= 1 + 1e-5


def test_l1_terms_hand_values():
    g = torch.tensor([[0.5, 0.25], [1.0, 0.0]])
    assert gate_l1(g).item() == pytest.approx((0.75 + 1.0) / 2)
    block = SqueezeExcitation(3, 2, normalized=False)
    with torch.no_grad():
        block.fc1.weight.fill_(-1.0)
        block.fc2.weight.fill_(0.5)
    assert excitation_l1(block).item() == pytest.approx(6 * 1.0 + 6 * 0.5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda b: b.gate(torch.zeros(2, 5, 5, 5)), r"\(N, 6, H, W\)"),
        (lambda b: b(torch.zeros(6, 5, 5)), r"\(N, 6, H, W\)"),
        (lambda b: se_lipschitz_bound(b, SHAPE, channel_norm=0.0), "channel_norm"),
        (lambda b: se_lipschitz_bound(b, (5, 5, 5), channel_norm=1.0), "input_shape"),
        (lambda b: gate_l1(torch.zeros(3)), r"\(N, C\)"),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call(_block())


# --- the clutter problem, small and fast --------------------------------------------------

SPEC = ClutterSpec(informative=2, spurious=2, noise=1, size=6, signal_noise=1.5)


def train_clutter_model(se, lam, *, n=600, epochs=20, device=None):
    """A seeded clutter CNN trained with the margin loss, plus ``lam`` times the gate L1."""
    train = make_clutter(n, SPEC, split="train", seed=1)
    torch.manual_seed(0)
    model = clutter_cnn(SPEC, se=se, width=8)

    def penalty(m, xb):
        return lam * gate_l1(channel_gates(m, xb))

    train_classifier(
        model,
        train.x,
        train.y,
        MarginCrossEntropy(0.1, 10.0),
        epochs=epochs,
        batch_size=32,
        lr=1e-2,
        penalty=penalty if lam else None,
        device=device,
    )
    return model


@pytest.fixture(scope="module")
def clutter_models():
    return {
        name: train_clutter_model(se, lam)
        for name, se, lam in [
            ("none", "none", 0.0),
            ("sn", "normalized", 0.0),
            ("hybrid", "normalized", 0.05),
        ]
    }


def test_clutter_data_roles_and_shift():
    tr = make_clutter(400, SPEC, split="train", seed=0)
    sh = make_clutter(400, SPEC, split="shift", seed=0)
    assert tr.x.shape == (400, 5, 6, 6) and tr.roles == SPEC.roles
    assert tr.x.dtype == torch.float32 and set(tr.y.tolist()) == set(range(SPEC.n_classes))
    assert sh.x[:, 4].std() > 3 * tr.x[:, 4].std()  # the noise channel is amplified
    with pytest.raises(ValueError, match="split"):
        make_clutter(4, SPEC, split="test", seed=0)


def test_l1_reduces_gate_mass_and_suppresses_clutter(clutter_models):
    shift = make_clutter(400, SPEC, split="shift", seed=5)
    with torch.no_grad():
        g_sn = channel_gates(clutter_models["sn"], shift.x).mean(0)
        g_hy = channel_gates(clutter_models["hybrid"], shift.x).mean(0)
    assert g_hy.sum() < 0.5 * g_sn.sum()
    informative, misleading = g_hy[:2].mean(), g_hy[2:].mean()
    assert misleading < 0.8 * informative


def test_hybrid_beats_no_se_under_clutter(clutter_models):
    shift = make_clutter(400, SPEC, split="shift", seed=5)
    iid = make_clutter(400, SPEC, split="iid", seed=6)
    with torch.no_grad():
        acc = {
            k: float((m(shift.x).argmax(1) == shift.y).double().mean())
            for k, m in clutter_models.items()
        }
    assert acc["hybrid"] > acc["none"] + 0.05
    attacked = {
        k: clutter_attack_accuracy(m, iid, 8.0, steps=10) for k, m in clutter_models.items()
    }
    assert attacked["hybrid"] > attacked["none"]


def test_export_of_an_se_model_is_exact_and_keeps_its_bound(clutter_models):
    model = clutter_models["hybrid"]
    plain = export(model)
    x = make_clutter(50, SPEC, split="shift", seed=7).x
    with torch.no_grad():
        assert torch.equal(model.eval()(x), plain(x))
    shape = (SPEC.channels, SPEC.size, SPEC.size)
    b1 = se_lipschitz_bound(model[0], shape, channel_norm=10.0).value
    b2 = se_lipschitz_bound(plain[0], shape, channel_norm=10.0).value
    assert b1 == b2


@pytest.mark.cuda
def test_se_hybrid_trains_exports_and_bounds_on_cuda():
    model = train_clutter_model("normalized", 0.05, n=200, epochs=2, device="cuda")
    plain = export(model)
    x = make_clutter(50, SPEC, split="shift", seed=7).x.cuda()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
        assert channel_gates(plain, x).is_cuda
    iid = make_clutter(50, SPEC, split="iid", seed=6)
    iid = dataclasses.replace(iid, x=iid.x.cuda(), y=iid.y.cuda())
    assert 0.0 <= clutter_attack_accuracy(plain, iid, 8.0, steps=2) <= 1.0
    shape = (SPEC.channels, SPEC.size, SPEC.size)
    on_gpu = se_lipschitz_bound(plain[0], shape, channel_norm=10.0).value
    on_cpu = se_lipschitz_bound(export(model.cpu())[0], shape, channel_norm=10.0).value
    assert on_gpu == pytest.approx(on_cpu, rel=1e-5)
