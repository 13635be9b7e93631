"""Centred inputs (Note [Centred inputs]), the NAdam option and the recipe that uses both."""

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


def test_recipe_centres_with_nadam_and_keeps_the_mlp_as_tuned(digits, tmp_path):
    recipe = DigitsRecipe(epochs=2, depth=2, width=16)
    assert recipe.centered and recipe.optimizer == "nadam" and recipe.far_soft_weight == 0.075
    mlp = DigitsRecipe.for_model("mlp")
    assert not mlp.centered and mlp.optimizer == "adam" and mlp.far_soft_weight == 0.0
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
