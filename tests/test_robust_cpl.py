"""Convex potential layers, far margins and the deep certified classifier built from them.

The PGD check of the CPL model's radii is in test_robust_certify.py, beside the others.
"""

import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from snmech.robust import (
    FarMarginCrossEntropy,
    PairwiseMarginCrossEntropy,
    certify,
    convex_potential_mlp,
    export,
    far_margin_cross_entropy,
    far_samples,
    load_digits_split,
    margin_cross_entropy,
    nearest_other_class,
    pairwise_margin_cross_entropy,
    soft_certified_accuracy,
    train_classifier,
)
from snmech.robust import margins as margins_module
from snmech.robust.model_file import ClassifierFileError, load_classifier, save_classifier
from snmech.robust.recipe import DigitsRecipe
from snmech.spectral import (
    ConvexPotentialLayer,
    ConvexPotentialStack,
    lipschitz_bound,
    lipschitz_lower_bound,
)

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def far(digits):
    return far_samples(digits.x_train, digits.y_train, margin=0.6, far_margin=1.0)


@pytest.fixture(scope="module")
def trained(digits, far):
    torch.manual_seed(0)
    model = convex_potential_mlp(64, depth=4, width=64)
    loss = FarMarginCrossEntropy(model[-1], 0.6, 1.0, 1.5)
    train_classifier(
        model, digits.x_train, digits.y_train, loss, epochs=15, lr=2e-2, per_sample=far
    )
    return model


def _reference(layer: ConvexPotentialLayer, x: torch.Tensor) -> torch.Tensor:
    """x - 2 / sigma^2 W^T relu(W x + b) in float64 with sigma from an SVD."""
    w, b = layer.weight.detach().double(), layer.bias.detach().double()
    sigma = torch.linalg.svdvals(w)[0]
    return x.double() - (2.0 / sigma**2) * torch.relu(x.double() @ w.t() + b) @ w


def test_eval_forward_is_the_formula_with_the_exact_norm():
    torch.manual_seed(1)
    layer = ConvexPotentialLayer(24, 40).eval()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(50, 24)
    with torch.no_grad():
        out = layer(x)
    assert torch.allclose(out.double(), _reference(layer, x), rtol=1e-5, atol=1e-5)
    # inputs of any leading shape
    assert torch.equal(layer(x.reshape(5, 10, 24)).reshape(50, 24), out)


@pytest.mark.parametrize("hidden", [16, 40])
def test_jacobian_norm_never_exceeds_one(hidden):
    torch.manual_seed(2)
    layer = ConvexPotentialLayer(24, hidden).double().eval()
    with torch.no_grad():
        layer.bias.normal_(std=0.5)
    x = torch.randn(200, 24, dtype=torch.float64)
    jac = torch.func.vmap(torch.func.jacrev(layer))(x)  # (200, 24, 24)
    norms = torch.linalg.matrix_norm(jac, ord=2)
    assert norms.max() <= 1.0 + 1e-12
    assert norms.max() >= 1.0 - 1e-12  # the identity path: some direction keeps its length
    assert layer.lipschitz_factor() == pytest.approx(1.0, abs=1e-11)
    assert lipschitz_lower_bound(layer, x[:8]) <= layer.lipschitz_factor() * (1 + 1e-9)


class _Stepped(ConvexPotentialLayer):
    """A layer whose eval step is set by hand (to check the factor formula beyond 2 / s)."""

    def __init__(self, features, hidden, step):
        super().__init__(features, hidden)
        self._step = step

    def _eval_scale(self):
        return self._step


def test_factor_formula_is_attained_when_every_unit_is_active():
    torch.manual_seed(3)
    base = ConvexPotentialLayer(6, 10)
    s = float(torch.linalg.svdvals(base.weight.detach().double())[0] ** 2)
    layer = _Stepped(6, 10, 3.0 / s).double().eval()  # h s = 3: factor 2
    with torch.no_grad():
        layer.weight.copy_(base.weight)
        layer.bias.fill_(100.0)  # every ReLU active near 0: Jacobian I - h W^T W
    jac = torch.func.jacrev(layer)(torch.zeros(6, dtype=torch.float64)).detach()
    assert float(torch.linalg.matrix_norm(jac, ord=2)) == pytest.approx(2.0, rel=1e-9)
    assert layer.lipschitz_factor() == pytest.approx(2.0, rel=1e-9)


def test_eval_step_follows_the_weight_and_the_training_estimate_converges():
    torch.manual_seed(4)
    layer = ConvexPotentialLayer(8, 20)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    step0 = layer.eval_step().clone()
    layer(torch.randn(4, 8)).sum().backward()
    opt.step()
    step1 = layer.eval_step()
    assert not torch.equal(step0, step1)
    assert float(step1) * float(layer.certified_sq_norm()) <= 2.0  # rounded down
    with torch.no_grad():
        for _ in range(30):  # the warm power iteration converges on a fixed weight
            train_step = layer._training_step()
    assert float(train_step) == pytest.approx(float(step1), rel=1e-5)
    assert layer.double().eval_step().dtype == torch.float64  # .double() drops the cache
    fresh = ConvexPotentialLayer(8, 20)
    fresh.load_state_dict(layer.float().state_dict())
    assert torch.equal(fresh.eval_step(), layer.eval_step())


def _layers_of(stack: ConvexPotentialStack) -> nn.Sequential:
    """The same weights as ``stack``, one ConvexPotentialLayer each."""
    layers = nn.Sequential(
        *[ConvexPotentialLayer(stack.features, stack.hidden) for _ in range(stack.depth)]
    ).to(stack.weight.dtype)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            layer.weight.copy_(stack.weight[i])
            layer.bias.copy_(stack.bias[i])
            layer._v.copy_(stack._v[i])
    return layers


def test_stack_computes_what_its_layers_compute():
    torch.manual_seed(8)
    stack = ConvexPotentialStack(12, 20, 3)
    with torch.no_grad():
        stack.bias.normal_(std=0.5)
    layers = _layers_of(stack)
    x = torch.randn(40, 12)
    stack.eval(), layers.eval()
    with torch.no_grad():
        assert torch.equal(stack(x), layers(x))  # same eval steps, same kernels
    assert stack.lipschitz_factor() == pytest.approx(lipschitz_bound(layers).value, rel=1e-15)
    steps = torch.stack([layer.eval_step() for layer in layers])
    assert torch.equal(stack.eval_steps(), steps)
    stack.train(), layers.train()
    out, ref = stack(x), layers(x)  # one batched power step vs one per layer
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert torch.allclose(stack._v, torch.stack([layer._v for layer in layers]), atol=1e-6)
    grad = torch.autograd.grad(out.square().sum(), stack.weight)[0]
    ref_grads = torch.autograd.grad(ref.square().sum(), [layer.weight for layer in layers])
    assert torch.allclose(grad, torch.stack(ref_grads), rtol=1e-4, atol=1e-5)
    # initialized like `depth` single layers drawn in turn
    torch.manual_seed(9)
    fresh = ConvexPotentialStack(12, 20, 3)
    torch.manual_seed(9)
    singles = [ConvexPotentialLayer(12, 20) for _ in range(3)]
    assert all(torch.equal(fresh.weight[i], s.weight) for i, s in enumerate(singles))


def _fused_and_unfused(stack: ConvexPotentialStack, x: torch.Tensor):
    """Output and (x, weight, bias) gradients of one training forward, fused or not."""
    results = []
    for fused in (True, False):
        stack.fused = fused
        v = stack._v.clone()
        xx = x.clone().requires_grad_()
        out = stack(xx)
        stack._v.copy_(v)  # both forwards start from the same power-iteration vector
        grads = torch.autograd.grad((out.sin() * out).sum(), [xx, stack.weight, stack.bias])
        results.append((out.detach(), *grads))
    stack.fused = True
    return results


def test_fused_stack_backward_is_autograds():
    # Note [Fused stack backward]: the hand-written backward against autograd
    # through the unfused layers, and against finite differences (gradcheck)
    torch.manual_seed(21)
    stack = ConvexPotentialStack(6, 10, 3).double()
    with torch.no_grad():
        stack.bias.normal_(std=0.5)
    x = torch.randn(7, 6, dtype=torch.float64)
    fused, unfused = _fused_and_unfused(stack, x)
    for got, want in zip(fused, unfused, strict=True):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-13)
    assert fused[2].abs().max() > 1e-3 and fused[3].abs().max() > 1e-3  # not vacuous
    from snmech.spectral.convex_potential import _StackTraining

    v = stack._v.clone()
    inputs = (
        x.clone().requires_grad_(),
        stack.weight.detach().clone().requires_grad_(),
        stack.bias.detach().clone().requires_grad_(),
    )
    assert torch.autograd.gradcheck(lambda *a: _StackTraining.apply(*a, v), inputs)


def test_fused_stack_is_first_order_and_the_unfused_path_is_not():
    torch.manual_seed(22)
    stack = ConvexPotentialStack(5, 8, 2).double()
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(stack(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        g.square().sum().backward()
    stack.fused = False  # a gradient penalty through the stack needs the unfused path
    (g,) = torch.autograd.grad(stack(x).square().sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(g.square().sum(), stack.weight)
    assert second.abs().max() > 0
    # torch.func transforms take the unfused path on their own
    stack.fused = True
    v = stack._v.clone()
    rows = torch.func.vmap(stack)(x.detach())
    stack._v.copy_(v)
    assert torch.allclose(rows, stack(x.detach()), rtol=1e-12, atol=1e-13)


def test_stack_jacobian_norm_never_exceeds_one():
    torch.manual_seed(10)
    stack = ConvexPotentialStack(10, 16, 4).double().eval()
    with torch.no_grad():
        stack.bias.normal_(std=0.5)
    x = torch.randn(100, 10, dtype=torch.float64)
    jac = torch.func.vmap(torch.func.jacrev(stack))(x)
    assert torch.linalg.matrix_norm(jac, ord=2).max() <= 1.0 + 1e-12
    assert stack.lipschitz_factor() == pytest.approx(1.0, abs=1e-10)


def test_stack_eval_steps_follow_the_weight_and_the_estimates_converge():
    torch.manual_seed(11)
    stack = ConvexPotentialStack(8, 20, 3)
    opt = torch.optim.SGD(stack.parameters(), lr=0.1)
    before = stack.eval_steps().clone()
    stack(torch.randn(4, 8)).sum().backward()
    opt.step()
    after = stack.eval_steps()
    assert not torch.equal(before, after)
    sq = torch.tensor(stack.certified_sq_norms(), dtype=torch.float64)
    assert bool((after.double() * sq <= 2.0).all())  # rounded down, layer by layer
    with torch.no_grad():
        for _ in range(30):
            estimate = stack._training_steps()
    assert torch.allclose(estimate, after, rtol=1e-5)
    fresh = ConvexPotentialStack(8, 20, 3)
    fresh.load_state_dict(stack.state_dict())
    assert torch.equal(fresh.eval_steps(), stack.eval_steps())


def test_stack_refuses_bad_input():
    stack = ConvexPotentialStack(8, 4, 2)
    with pytest.raises(ValueError, match=r"\(\.\.\., 8\)"):
        stack(torch.zeros(3, 7))
    with pytest.raises(ValueError, match=">= 1"):
        ConvexPotentialStack(8, 4, 0)
    with pytest.raises(ValueError, match="n_power_iterations"):
        ConvexPotentialStack(8, 4, 2, n_power_iterations=0)
    with torch.no_grad():
        stack.weight[1, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        lipschitz_bound(nn.Sequential(stack))


def test_far_term_warm_up_scales_the_far_weight():
    torch.manual_seed(12)
    head = nn.Linear(5, 4)
    logits, y = torch.randn(9, 4), torch.randint(0, 4, (9,))
    far = torch.arange(9) % 2 == 0
    loss = FarMarginCrossEntropy(head, 0.6, 1.2, 2.0, warmup=0.5)
    full = FarMarginCrossEntropy(head, 0.6, 1.2, 2.0)(logits, y, far)
    assert torch.allclose(loss(logits, y, far), full)  # progress 1 outside training
    loss.set_progress(0.0)
    assert torch.allclose(loss(logits, y, far), PairwiseMarginCrossEntropy(head, 0.6)(logits, y))
    loss.set_progress(0.2)  # 0.2 / 0.5 of the way: weight 0.8
    part = FarMarginCrossEntropy(head, 0.6, 1.2, 0.8)(logits, y, far)
    assert loss.current_far_weight() == pytest.approx(0.8)
    assert torch.allclose(loss(logits, y, far), part)
    loss.set_progress(0.7)
    assert loss.current_far_weight() == 2.0
    with pytest.raises(ValueError, match="warmup"):
        FarMarginCrossEntropy(head, warmup=1.5)
    with pytest.raises(ValueError, match="progress"):
        loss.set_progress(-0.1)
    with pytest.raises(ValueError, match="far_warmup"):
        DigitsRecipe(far_warmup=2.0).check()


def test_training_reports_its_progress_before_each_step(digits):
    torch.manual_seed(13)
    model = convex_potential_mlp(64, depth=1, width=8)
    seen: list[float] = []
    x, y = digits.x_train[:50], digits.y_train[:50]
    train_classifier(
        model,
        x,
        y,
        PairwiseMarginCrossEntropy(model[-1]),
        epochs=3,
        batch_size=20,
        on_step=seen.append,
    )
    assert seen == [i / 9 for i in range(9)]  # 3 epochs of 3 batches


def test_export_is_exact_and_features_are_one_lipschitz(trained, digits):
    exported = export(trained)
    x = digits.x_test
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), exported(x))
    assert lipschitz_bound(exported[:-1]).value == pytest.approx(1.0, abs=1e-9)
    res = certify(exported, x, digits.y_test)
    assert res.pairwise is not None and res.accuracy(0.0) > 0.8


@pytest.fixture()
def cpl_file(trained, tmp_path):
    return save_classifier(
        trained,
        tmp_path / "cpl.safetensors",
        kind="cpl",
        architecture={"in_features": 64, "depth": 4, "width": 64, "n_classes": 10},
        input_shape=SHAPE,
    )


def test_a_file_that_could_not_be_loaded_is_not_written(trained, tmp_path):
    from snmech.robust.model_file import ClassifierFileError

    path = tmp_path / "cpl.safetensors"
    with pytest.raises(ClassifierFileError, match=r"lacks \['depth'\] for a cpl model"):
        save_classifier(
            trained,
            path,
            kind="cpl",
            architecture={"in_features": 64, "width": 64, "n_classes": 10},
            input_shape=SHAPE,
        )
    assert not path.exists()


def test_model_file_round_trip(trained, digits, cpl_file):
    loaded, meta = load_classifier(cpl_file)
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test), trained.eval()(digits.x_test))
    assert meta["kind"] == "cpl"


def test_model_file_of_one_module_per_layer_still_loads(trained, digits, cpl_file, tmp_path):
    # files written before ConvexPotentialStack: layers 1..depth, head at depth + 1
    tensors = load_file(str(cpl_file))
    with safe_open(str(cpl_file), framework="pt") as f:
        meta = f.metadata()
    old = {f"5.{name}": tensors[f"2.{name}"] for name in ("weight", "bias")}
    for i in range(4):
        old.update({f"{i + 1}.{n}": tensors[f"1.{n}"][i].clone() for n in ("weight", "bias", "_v")})
    save_file(old, str(tmp_path / "old.safetensors"), metadata=meta)
    loaded, _ = load_classifier(tmp_path / "old.safetensors")  # certificate re-checked too
    with torch.no_grad():
        assert torch.equal(loaded(digits.x_test), trained.eval()(digits.x_test))
    del old["3._v"]  # a layer short: refused, naming the mismatch
    save_file(old, str(tmp_path / "short.safetensors"), metadata=meta)
    with pytest.raises(ClassifierFileError, match="do not match the stored architecture"):
        load_classifier(tmp_path / "short.safetensors")


def test_nearest_other_class_and_far_samples_match_a_loop(monkeypatch):
    g = torch.Generator().manual_seed(5)
    x = torch.rand(60, 1, 2, 3, generator=g) * 3
    y = torch.randint(0, 3, (60,), generator=g)
    flat = x.flatten(1).double()
    ref = torch.tensor(
        [
            min(float((flat[i] - flat[j]).norm()) for j in range(60) if y[j] != y[i])
            for i in range(60)
        ],
        dtype=torch.float64,
    )
    assert torch.allclose(nearest_other_class(x, y), ref, rtol=1e-12)
    monkeypatch.setattr(margins_module, "_CHUNK", 7)  # the chunked path gives the same
    assert torch.allclose(nearest_other_class(x, y), ref, rtol=1e-12)
    flags = far_samples(x, y, margin=0.2, far_margin=0.3, radius=0.3, share=0.4)
    for i in range(60):
        same = y == y[i]
        share = float((ref[same] > 0.6).double().mean())
        assert bool(flags[i]) == (share >= 0.4 and float(ref[i]) > 0.5)


def test_far_samples_on_digits_pick_the_well_separated_classes(digits, far):
    # Note [Far margins]: classes 0, 2, 4, 6, 7 have >= 30 % of points beyond 2.0
    classes = sorted(set(digits.y_train[far].tolist()))
    assert classes == [0, 2, 4, 6, 7]
    assert 0.4 < float(far.double().mean()) < 0.55  # nearly all points of those classes


def test_far_margin_loss_reduces_to_the_pairwise_loss():
    torch.manual_seed(6)
    head = nn.Linear(5, 4)
    logits, y = torch.randn(9, 4), torch.randint(0, 4, (9,))
    none = torch.zeros(9, dtype=torch.bool)
    pce = PairwiseMarginCrossEntropy(head, 0.6)(logits, y)
    assert torch.allclose(FarMarginCrossEntropy(head, 0.6, 1.2, 0.0)(logits, y, none), pce)
    assert torch.allclose(FarMarginCrossEntropy(head, 0.6, 1.2, 0.5)(logits, y, none), 1.5 * pce)
    every = torch.ones(9, dtype=torch.bool)
    big = PairwiseMarginCrossEntropy(head, 1.2)(logits, y)
    got = FarMarginCrossEntropy(head, 0.6, 1.2, 0.5)(logits, y, every)
    assert torch.allclose(got, pce + 0.5 * big)
    per = torch.full((9,), 0.6)
    assert torch.allclose(pairwise_margin_cross_entropy(logits, y, head.weight, margin=per), pce)


@pytest.mark.parametrize(
    "margin, far_margin, far_weight, soft_weight, soft_radius",
    [
        (0.6, 1.0, 2.5, 0.0625, 1.05),
        (0.0, 0.8, 1.0, 0.3, 0.2),
        (0.4, 1.0, 0.0, 0.5, 0.3),
        (0.6, 1.2, 1.5, 0.0, 1.0),
    ],
)
def test_fused_far_loss_is_the_sum_of_its_terms(
    margin, far_margin, far_weight, soft_weight, soft_radius
):
    # Note [Fused far-margin loss]: value and gradients against the loss built from
    # the public terms under autograd, and against finite differences (gradcheck)
    torch.manual_seed(23)
    logits = torch.randn(40, 10, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(10, 12, dtype=torch.float64, requires_grad=True)
    y, far = torch.randint(0, 10, (40,)), torch.rand(40) < 0.4
    t = 10.0

    def fused(z, w):
        return far_margin_cross_entropy(
            z,
            y,
            w,
            far,
            margin=margin,
            far_margin=far_margin,
            far_weight=far_weight,
            temperature=t,
            soft_weight=soft_weight,
            soft_radius=soft_radius,
            soft_width=0.1,
        )

    per_sample = torch.full((40,), margin, dtype=torch.float64).masked_fill_(far, far_margin)
    want = pairwise_margin_cross_entropy(logits, y, weight, margin=margin, temperature=t)
    want = want + far_weight * pairwise_margin_cross_entropy(
        logits, y, weight, margin=per_sample, temperature=t
    )
    sca = soft_certified_accuracy(logits, y, weight, radius=soft_radius, width=0.1, mask=far)
    want = want + soft_weight * (1 - sca)
    got = fused(logits, weight)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    for g, w in zip(
        torch.autograd.grad(got, [logits, weight]),
        torch.autograd.grad(want, [logits, weight]),
        strict=True,
    ):
        assert torch.allclose(g, w, rtol=1e-10, atol=1e-13)
    assert torch.autograd.gradcheck(fused, (logits, weight))


def test_soft_certified_accuracy_by_hand():
    weight = torch.eye(2)  # ||w_0 - w_1|| = sqrt(2)
    logits, y = torch.tensor([[3.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0])
    radii = torch.tensor([2.0, -1.0]) / math.sqrt(2.0)  # the second is misclassified
    got = soft_certified_accuracy(logits, y, weight, radius=1.0, width=0.2)
    assert got == pytest.approx(float(torch.sigmoid((radii - 1.0) / 0.2).mean()))
    first = torch.tensor([True, False])
    got = soft_certified_accuracy(logits, y, weight, radius=1.0, width=0.2, mask=first)
    assert got == pytest.approx(float(torch.sigmoid((radii[0] - 1.0) / 0.2)))
    none = torch.zeros(2, dtype=torch.bool)
    assert soft_certified_accuracy(logits, y, weight, radius=1.0, mask=none) == 0.0


@pytest.mark.parametrize("radius", [0.1, 0.25, 0.5])
def test_soft_certified_accuracy_tends_to_the_certified_accuracy(trained, digits, radius):
    # the pairwise radii of certify() (float64, certified body bound) are the reference
    with torch.no_grad():
        logits = trained(digits.x_test)
        sharp = soft_certified_accuracy(
            logits.double(), digits.y_test, trained[-1].weight.double(), radius=radius, width=1e-7
        )
    exact = certify(export(trained), digits.x_test, digits.y_test).accuracy(radius)
    assert 0.3 < exact < 1.0
    assert float(sharp) == pytest.approx(exact, abs=0.5 / len(digits.y_test))


def test_soft_term_is_added_to_the_far_loss_and_warms_up():
    torch.manual_seed(14)
    head = nn.Linear(5, 4)
    logits, y = torch.randn(9, 4, requires_grad=True), torch.randint(0, 4, (9,))
    far = torch.arange(9) % 3 == 0
    loss = FarMarginCrossEntropy(
        head, 0.6, 1.2, 0.0, warmup=0.5, soft_weight=2.0, soft_radius=0.3, soft_width=0.05
    )
    pce = PairwiseMarginCrossEntropy(head, 0.6)(logits, y)
    sca = soft_certified_accuracy(logits, y, head.weight, radius=0.3, width=0.05, mask=far)
    assert torch.allclose(loss(logits, y, far), pce + 2.0 * (1 - sca))
    loss.set_progress(0.25)
    assert loss.current_soft_weight() == pytest.approx(1.0)
    assert torch.allclose(loss(logits, y, far), pce + 1.0 * (1 - sca))
    # a wide sigmoid, so that no far point's term saturates
    both = FarMarginCrossEntropy(head, 0.6, 1.2, 0.5, soft_weight=2.0, soft_width=2.0)
    far_only = FarMarginCrossEntropy(head, 0.6, 1.2, 0.5)(logits, y, far)
    sca = soft_certified_accuracy(logits, y, head.weight, radius=1.05, width=2.0, mask=far)
    assert torch.allclose(both(logits, y, far), far_only + 2.0 * (1 - sca))
    # the term's gradient raises the far points' radii (their margins over the rivals)
    (grad,) = torch.autograd.grad(both(logits, y, far) - far_only, logits)
    lead = grad.gather(1, y[:, None])[:, 0]
    assert (lead[far] < 0).all() and (lead[~far] == 0).all()


def test_bad_input_is_refused(trained, digits):
    layer = ConvexPotentialLayer(8, 4)
    with pytest.raises(ValueError, match=r"\(\.\.\., 8\)"):
        layer(torch.zeros(3, 7))
    with pytest.raises(ValueError, match=">= 1"):
        ConvexPotentialLayer(0, 4)
    with pytest.raises(ValueError, match="n_power_iterations"):
        ConvexPotentialLayer(8, 4, n_power_iterations=0)
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        lipschitz_bound(nn.Sequential(layer))
    head = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="far_margin"):
        FarMarginCrossEntropy(head, 0.6, 0.5)
    with pytest.raises(ValueError, match="bool"):
        FarMarginCrossEntropy(head)(
            torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2)
        )
    with pytest.raises(ValueError, match="per-sample margins"):
        pairwise_margin_cross_entropy(
            torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), head.weight, margin=torch.ones(3)
        )
    with pytest.raises(ValueError, match="margin < far_margin"):
        far_samples(digits.x_train, digits.y_train, margin=1.0, far_margin=1.0)
    with pytest.raises(ValueError, match="per_sample"):
        train_classifier(
            trained,
            digits.x_train,
            digits.y_train,
            lambda z, y, s: z.sum(),
            epochs=1,
            per_sample=torch.zeros(3),
        )
    with pytest.raises(ValueError, match="depth and width"):
        convex_potential_mlp(64, depth=0)
    for bad in ({"soft_weight": -1.0}, {"soft_radius": 0.0}, {"soft_width": 0.0}):
        with pytest.raises(ValueError, match="soft weight >= 0, radius > 0 and width > 0"):
            FarMarginCrossEntropy(head, **bad)
    logits, y = torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="radius > 0"):
        soft_certified_accuracy(logits, y, head.weight, radius=-0.5)
    with pytest.raises(ValueError, match="mask must be a bool"):
        soft_certified_accuracy(logits, y, head.weight, radius=0.5, mask=torch.ones(2))
    with pytest.raises(ValueError, match="width > 0"):
        DigitsRecipe(far_soft_width=0.0).check()
    far = torch.tensor([True, False])
    for bad_temperature in (
        lambda: margin_cross_entropy(logits, y, temperature=0.0),
        lambda: pairwise_margin_cross_entropy(logits, y, head.weight, temperature=-1.0),
        lambda: far_margin_cross_entropy(logits, y, head.weight, far, temperature=0.0),
    ):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            bad_temperature()
    with pytest.raises(ValueError, match="far_margin must exceed"):
        DigitsRecipe(far_weight=0.0, far_soft_weight=0.5, far_margin=0.5).check()


@pytest.mark.cuda
def test_cpl_model_trains_and_certifies_on_cuda(digits, far):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.manual_seed(0)
    model = convex_potential_mlp(64, depth=2, width=32, centered=True).cuda()
    model[1].fit(digits.x_train)  # a CPU batch into a CUDA buffer
    assert model[1].mean.is_cuda
    loss = FarMarginCrossEntropy(model[-1], soft_weight=0.1)
    train_classifier(
        model,
        digits.x_train,
        digits.y_train,
        loss,
        epochs=2,
        lr=2e-2,
        per_sample=far,
        device="cuda",
        optimizer="nadam",
    )
    exported = export(model)
    x, y = digits.x_test.cuda(), digits.y_test.cuda()
    with torch.no_grad():
        assert torch.equal(model(x), exported(x))
    res = certify(exported, x, y)
    assert res.radii.device.type == "cuda"
    assert exported[2].eval_steps().device.type == "cuda"
