"""Centred inputs (Note [Centred inputs]), NAdam, the weight average, and the recipe using them."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from snmech.robust import (
    Centering,
    PairwiseMarginCrossEntropy,
    certify,
    convex_potential_mlp,
    export,
    lipschitz_mlp,
    load_digits_split,
    train_classifier,
)
from snmech.robust.model_file import load_classifier, save_classifier
from snmech.robust.recipe import DigitsRecipe, train_digits
from snmech.robust.train import LeanNAdam
from snmech.spectral import lipschitz_bound

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def test_centering_subtracts_the_training_mean_and_is_one_lipschitz(digits):
    layer = Centering(64).fit(digits.x_train)
    expected = digits.x_train.numpy().reshape(-1, 64).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(layer.mean.numpy(), expected, rtol=0, atol=1e-7)
    flat = digits.x_test.reshape(-1, 64)
    assert torch.equal(layer(flat), flat - layer.mean)
    model = nn.Sequential(nn.Flatten(), layer)
    cert = lipschitz_bound(model, input_shape=SHAPE)
    assert cert.value == 1.0 and cert.factors[-1].kind == "Centering"


def test_centred_cpl_is_the_uncentred_one_with_shifted_biases(digits):
    # x - mean through the stack equals the plain stack with biases b_l - W_l mean
    # (every layer's output moves by -mean) and a head bias b - W mean
    torch.manual_seed(3)
    centred = convex_potential_mlp(64, depth=3, width=32, centered=True).double()
    centred[1].fit(digits.x_train)
    stack, head = centred[2], centred[3]
    with torch.no_grad():
        stack.bias.normal_()
    centred.eval()
    folded = convex_potential_mlp(64, depth=3, width=32).double().eval()
    mean = centred[1].mean
    with torch.no_grad():
        folded[1].weight.copy_(stack.weight)
        folded[1].bias.copy_(stack.bias - stack.weight @ mean)
        folded[2].parametrizations.weight.original.copy_(head.weight)
        folded[2].bias.copy_(head.bias - head.weight @ mean)
        x = digits.x_test.double()
        torch.testing.assert_close(centred(x), folded(x), rtol=0, atol=1e-12)
    a = certify(export(centred), x, digits.y_test)
    b = certify(export(folded), x, digits.y_test)
    torch.testing.assert_close(a.radii, b.radii, rtol=0, atol=1e-10)


def test_centring_is_refused_bad_input():
    layer = Centering(4)
    with pytest.raises(ValueError, match="prod\\(s\\) == 4"):
        layer.fit(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="prod\\(s\\) == 4"):
        layer.fit(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="prod\\(s\\) == 4"):
        layer.fit(torch.zeros(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        layer.fit(torch.tensor([[0.0, 1.0, float("nan"), 0.0]]))
    assert torch.equal(layer.mean, torch.zeros(4))  # a refused fit leaves it as it was
    with pytest.raises(ValueError, match=">= 1"):
        Centering(0)


def test_nadam_option_takes_the_nadam_step(digits):
    torch.manual_seed(5)
    model = lipschitz_mlp(64, (16,), 10, head="rows", centered=True)
    reference = copy.deepcopy(model)
    x, y = digits.x_train[:64], digits.y_train[:64]
    loss = PairwiseMarginCrossEntropy(model[-1])
    # one epoch of one batch: the cosine schedule's first step uses lr itself
    train_classifier(model, x, y, loss, epochs=1, batch_size=64, lr=1e-2, optimizer="nadam")
    opt = torch.optim.NAdam(reference.parameters(), lr=1e-2)
    reference.train()
    PairwiseMarginCrossEntropy(reference[-1])(reference(x), y).backward()
    opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7, msg=name)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_classifier(model, x, y, loss, epochs=1, optimizer="sgd")  # type: ignore[arg-type]


def test_lean_nadam_follows_torch_nadam_over_a_scheduled_run():
    # Note [A lean NAdam step]: torch's maths with float64 coefficients
    torch.manual_seed(7)
    shapes = [(8, 128, 64), (8, 128), (10, 64), (10,)]
    start = [torch.randn(s) for s in shapes]
    runs = {name: [p.clone().requires_grad_() for p in start] for name in ("lean", "nadam", "adam")}
    frozen = torch.randn(3, requires_grad=True)  # no gradient: left alone
    before = frozen.detach().clone()
    opts = {
        "lean": LeanNAdam([*runs["lean"], frozen], lr=2e-2),
        "nadam": torch.optim.NAdam(runs["nadam"], lr=2e-2),
        "adam": torch.optim.Adam(runs["adam"], lr=2e-2),  # the check's teeth
    }
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, 400) for o in opts.values()]
    for _ in range(400):
        for k, shape in enumerate(shapes):
            grad = torch.randn(shape) * 10.0 ** torch.randint(-3, 2, ()).item()
            for params in runs.values():
                params[k].grad = grad.clone()
        for opt, sched in zip(opts.values(), scheds, strict=True):
            opt.step()
            sched.step()
    for p, q, r in zip(runs["lean"], runs["nadam"], runs["adam"], strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)
        assert float((r - q).detach().abs().max()) > 1e-2
    assert torch.equal(frozen, before)
    with pytest.raises(ValueError, match="lr > 0"):
        LeanNAdam(runs["lean"], lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        LeanNAdam(runs["lean"], betas=(0.9, 1.0))


def test_weight_average_is_the_moving_average_of_the_steps(digits):
    torch.manual_seed(6)
    model = lipschitz_mlp(64, (16,), 10, head="rows")
    start = copy.deepcopy(model)
    x, y = digits.x_train[:64], digits.y_train[:64]
    # reference: the same fused Adam and cosine schedule, one full batch per epoch
    reference = copy.deepcopy(start).train()
    opt = torch.optim.Adam(reference.parameters(), lr=1e-2, fused=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 4)
    average = [p.detach().clone() for p in reference.parameters()]
    for step in range(4):
        opt.zero_grad()
        PairwiseMarginCrossEntropy(reference[-1])(reference(x), y).backward()
        opt.step()
        sched.step()
        decay = 0.6 if step / 4 >= 0.5 else 0.0  # steps 2 and 3 average, 0 and 1 copy
        for a, p in zip(average, reference.parameters(), strict=True):
            a.copy_(decay * a + (1 - decay) * p.detach())
    loss = PairwiseMarginCrossEntropy(model[-1])
    train_classifier(model, x, y, loss, epochs=4, batch_size=64, lr=1e-2, ema_decay=0.6)
    for (name, p), a in zip(model.named_parameters(), average, strict=True):
        torch.testing.assert_close(p, a, rtol=0, atol=1e-6, msg=name)
    last = list(reference.parameters())  # the average is not the last iterate
    assert not all(torch.allclose(p, q) for p, q in zip(model.parameters(), last, strict=True))
    # starting after the last step: the average is the last iterate, bit for bit
    late = copy.deepcopy(start)
    loss = PairwiseMarginCrossEntropy(late[-1])
    train_classifier(late, x, y, loss, epochs=4, batch_size=64, lr=1e-2, ema_decay=0.6, ema_start=1)
    plain = copy.deepcopy(start)
    loss = PairwiseMarginCrossEntropy(plain[-1])
    train_classifier(plain, x, y, loss, epochs=4, batch_size=64, lr=1e-2)
    for p, q in zip(late.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p, q)
    for bad in ({"ema_decay": 1.0}, {"ema_decay": -0.1}, {"ema_start": 1.5}):
        with pytest.raises(ValueError, match="ema_decay"):
            train_classifier(model, x, y, loss, epochs=1, **bad)
    with pytest.raises(ValueError, match="ema_decay"):
        DigitsRecipe(ema_decay=1.0).check()


def test_recipe_centres_with_nadam_and_keeps_the_mlp_as_tuned(digits, tmp_path):
    recipe = DigitsRecipe(epochs=2, depth=2, width=16)
    assert recipe.centered and recipe.optimizer == "nadam" and recipe.far_soft_weight == 0.0625
    assert recipe.ema_decay == 0.995 and recipe.ema_start == 0.5
    assert DigitsRecipe().epochs == 135  # Note [Epochs]
    mlp = DigitsRecipe.for_model("mlp")
    assert not mlp.centered and mlp.optimizer == "adam" and mlp.far_soft_weight == 0.0
    assert mlp.ema_decay == 0.0 and mlp.epochs == 150
    assert DigitsRecipe.for_model("mlp", epochs=3).epochs == 3
    model, _ = train_digits(digits, recipe)
    assert isinstance(model[1], Centering)
    assert torch.equal(model[1].mean, Centering(64).fit(digits.x_train).mean)
    path = save_classifier(
        model,
        tmp_path / "c.safetensors",
        kind="cpl",
        architecture=recipe.architecture(),
        input_shape=SHAPE,
    )
    loaded, meta = load_classifier(path)  # the mean travels in the file
    assert meta["architecture"]["centered"] is True
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test), model(digits.x_test))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        DigitsRecipe(optimizer="sgd").check()  # type: ignore[arg-type]
