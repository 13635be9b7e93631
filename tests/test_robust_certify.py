"""Certified radii hold against PGD; export is exact; losses and radii match hand values."""

import math

import pytest
import torch
from torch import nn

from snmech.robust import (
    FarMarginCrossEntropy,
    PairwiseMarginCrossEntropy,
    certified_accuracy,
    certified_accuracy_curve,
    certified_radii,
    certify,
    convex_potential_mlp,
    evaluate_robustness,
    export,
    far_samples,
    fgsm,
    hinge_kantorovich,
    lipschitz_cnn,
    lipschitz_mlp,
    load_digits_split,
    margin_cross_entropy,
    pairwise_lipschitz,
    pairwise_margin_cross_entropy,
    pairwise_radii,
    pgd,
    train_classifier,
    validate_images,
)
from snmech.robust._orthogonal import _Bjorck
from snmech.robust.losses import MarginCrossEntropy
from snmech.spectral import lipschitz_bound

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def trained(digits):
    torch.manual_seed(0)
    model = lipschitz_mlp(64, (64,), 10)
    train_classifier(
        model, digits.x_train, digits.y_train, MarginCrossEntropy(1.0, 10.0), epochs=15, lr=1e-2
    )
    return model


@pytest.fixture(scope="module")
def trained_rows(digits):
    # unit-row head + pairwise margin loss: certified by the pairwise bound only
    torch.manual_seed(0)
    model = lipschitz_mlp(64, (64,), 10, activation="maxmin", head="rows")
    loss = PairwiseMarginCrossEntropy(model[-1], 0.6, 10.0)
    train_classifier(model, digits.x_train, digits.y_train, loss, epochs=15, lr=1e-2)
    return model


@pytest.fixture(scope="module")
def trained_cpl(digits):
    # centred inputs, convex potential layers, far margins, NAdam: the default's kind, small
    torch.manual_seed(0)
    model = convex_potential_mlp(64, depth=4, width=64, centered=True)
    model[1].fit(digits.x_train)
    far = far_samples(digits.x_train, digits.y_train, margin=0.6, far_margin=1.0)
    loss = FarMarginCrossEntropy(model[-1], 0.6, 1.0, 1.5, soft_weight=0.1)
    train_classifier(
        model,
        digits.x_train,
        digits.y_train,
        loss,
        epochs=15,
        lr=2e-2,
        per_sample=far,
        optimizer="nadam",
    )
    return model


def pgd_inside_certified_radii(model, x, y, res, norm, *, steps=50, restarts=3):
    """PGD at 0.999 of each certified radius (l2, or the linf ball inside it): the points kept
    (correct, radius > 1e-3), their labels, radii and the attack's output."""
    keep = res.correct & (res.radii > 1e-3)
    x, y, r = x[keep], y[keep], res.radii[keep].float()
    # the linf ball of radius r / sqrt(d) lies inside the l2 ball of radius r
    eps = 0.999 * r if norm == "l2" else 0.999 * r / math.sqrt(x[0].numel())
    adv = pgd(model, x, y, eps, norm=norm, steps=steps, restarts=restarts)
    with torch.no_grad():
        assert (model(adv).argmax(1) == y).all()
    return x, y, r, adv


def test_export_reproduces_trained_outputs_exactly(trained, digits):
    exported = export(trained)
    x = digits.x_test
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), exported(x))
        assert torch.equal(trained(x), trained(x))  # the original still works
    assert not any(hasattr(m, "parametrizations") for m in exported.modules())


def test_exported_certificate_is_about_one(trained):
    cert = lipschitz_bound(export(trained))
    # spectral norm then Björck steps: each layer's exact norm sits near 1
    assert 0.9 < cert.value < 1.1


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_never_breaks_a_certified_radius(trained, digits, norm):
    model = export(trained)
    res = certify(model, digits.x_test, digits.y_test)
    x, _, r, adv = pgd_inside_certified_radii(model, digits.x_test, digits.y_test, res, norm)
    assert ((adv - x).flatten(1).norm(dim=1) <= r * 1.0001).all()
    assert adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("which", ["trained_rows", "trained_cpl"])
def test_pgd_never_breaks_a_pairwise_radius(which, digits, norm, request):
    model = export(request.getfixturevalue(which))
    res = certify(model, digits.x_test, digits.y_test)
    assert res.pairwise is not None
    glob = certify(model, digits.x_test, digits.y_test, pairwise=False)
    assert (res.radii >= glob.radii).all()
    assert res.accuracy(0.25) > glob.accuracy(0.25) + 0.1  # the row head needs it
    x, y, r, _ = pgd_inside_certified_radii(model, digits.x_test, digits.y_test, res, norm)
    # and slightly beyond the pairwise radius the attack does find examples
    adv = pgd(model, x, y, 2.0 * r + 0.2, norm="l2", steps=50, restarts=1)
    with torch.no_grad():
        assert (model(adv).argmax(1) != y).double().mean() > 0.5


def test_pairwise_radius_is_distance_to_the_bisector():
    # identity features in R^2, rows at 0 and 60 degrees: z_0 - z_1 = (w0 - w1).x,
    # ||w0 - w1|| = 1, so the radius of x is its distance to the line (w0 - w1).x = 0
    w = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2], [-1.0, 0.0]])
    model = nn.Sequential(nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(w)
    x = torch.tensor([[2.0, 0.1]])
    pair = pairwise_lipschitz(model)
    assert pair[0, 1].item() == pytest.approx(1.0, rel=1e-6)
    assert pair[0, 2].item() == pytest.approx(2.0, rel=1e-6)
    d = (w[0] - w[1]) @ x[0]
    r = pairwise_radii(model(x), pair)
    assert r.item() == pytest.approx(min(d.item() / 1.0, (4.0 / 2.0)), rel=1e-5)
    # the global radius sqrt(2) ||W|| is smaller
    assert certified_radii(model(x), lipschitz_bound(model).value).item() < r.item()
    inside = pgd(model, x, torch.tensor([0]), 0.99 * r.item(), steps=50, restarts=1, box=(-9, 9))
    outside = pgd(model, x, torch.tensor([0]), 1.01 * r.item(), steps=50, restarts=1, box=(-9, 9))
    assert model(inside).argmax(1).item() == 0
    assert model(outside).argmax(1).item() != 0


def test_pairwise_loss_equals_margin_loss_for_an_orthonormal_head():
    g = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(16, 4, generator=g, dtype=torch.float64))
    z = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    a = pairwise_margin_cross_entropy(z, y, q.t(), margin=0.7, temperature=5.0)
    b = margin_cross_entropy(z, y, margin=0.7, temperature=5.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-9)
    with pytest.raises(ValueError, match="head_weight"):
        pairwise_margin_cross_entropy(z, y, q, margin=0.7)


def test_pairwise_needs_a_linear_head():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with pytest.raises(ValueError, match="ending in nn.Linear"):
        certify(model, torch.rand(2, 4), torch.tensor([0, 1]), pairwise=True)


@pytest.mark.parametrize("shape", [(40, 6), (6, 40)])
def test_bjorck_in_gram_space_equals_plain_iteration(shape):
    w = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = w / torch.linalg.matrix_norm(w, ord=2)
    ref = w
    for _ in range(3):
        tall = ref.shape[0] >= ref.shape[1]
        ref = 1.5 * ref - 0.5 * (ref @ (ref.t() @ ref) if tall else (ref @ ref.t()) @ ref)
    assert torch.allclose(_Bjorck(3)(w), ref, atol=1e-13)


def test_pgd_does_break_beyond_the_radius(trained, digits):
    # the attack is not toothless: at 3 r + 1 most certified points fall
    model = export(trained)
    res = certify(model, digits.x_test, digits.y_test)
    x, y = digits.x_test[res.correct], digits.y_test[res.correct]
    eps = 3 * res.radii[res.correct].float() + 1.0
    adv = pgd(model, x, y, eps, norm="l2", steps=50, restarts=1)
    with torch.no_grad():
        assert (model(adv).argmax(1) != y).double().mean() > 0.8


def test_radius_of_identity_classifier_is_distance_to_boundary():
    # f(x) = x in R^2: the decision boundary x1 = x2 is at distance |x1 - x2| / sqrt(2)
    model = nn.Sequential(nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
    x = torch.tensor([[0.9, 0.3]])
    y = torch.tensor([0])
    r = certified_radii(model(x), lipschitz_bound(model).value)
    assert r.item() == pytest.approx(0.6 / math.sqrt(2), rel=1e-6)
    inside = pgd(model, x, y, 0.99 * r.item(), steps=20, restarts=1)
    outside = pgd(model, x, y, 1.01 * r.item(), steps=20, restarts=1)
    assert model(inside).argmax(1).item() == 0
    assert model(outside).argmax(1).item() == 1


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_step_is_the_steepest_ascent_direction(norm):
    # margin loss of f(x) = W x: gradient w.r.t. x is w_other - w_true
    model = nn.Sequential(nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]]))
    x = torch.full((1, 3), 0.5)
    adv = fgsm(model, x, torch.tensor([0]), 0.1, norm=norm)
    g = torch.tensor([[-1.0, 3.0, 0.5]])
    # linf: the sign of the gradient; l2: the normalized gradient
    step = g.sign() if norm == "linf" else g / g.norm()
    assert torch.allclose(adv - x, 0.1 * step)


def test_certified_accuracy_counts_strictly_beyond_eps():
    radii = torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=torch.float64)
    correct = torch.tensor([True, True, False, True])
    assert certified_accuracy(radii, correct, 0.0) == 0.75
    assert certified_accuracy(radii, correct, 0.5) == 0.25
    with pytest.raises(ValueError, match="eps"):
        certified_accuracy(radii, correct, -1.0)


def test_margin_cross_entropy_is_cross_entropy_without_margin():
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 0])
    ce = nn.functional.cross_entropy(z, y)
    assert margin_cross_entropy(z, y, margin=0.0, temperature=1.0).item() == pytest.approx(
        ce.item()
    )


def test_hinge_kantorovich_hand_value():
    z = torch.tensor([[2.0, 0.0, 1.0]])
    y = torch.tensor([0])
    # d = (2, 1); hinge with sqrt(2)*1: (0 + (sqrt2 - 1)) / 2; KR = 1.5
    expected = 10 * (math.sqrt(2) - 1) / 2 - 1.5
    assert hinge_kantorovich(z, y, margin=1.0, alpha=10.0).item() == pytest.approx(expected)


def test_cnn_export_and_certificate():
    torch.manual_seed(0)
    model = lipschitz_cnn(SHAPE, (8, 16), 10).eval()
    x = torch.rand(4, *SHAPE)
    exported = export(model)
    with torch.no_grad():
        assert torch.equal(model(x), exported(x))
    cert = lipschitz_bound(exported, input_shape=SHAPE)
    # the FFT bound on a zero-padded grid sits a little above the power estimate
    assert 0 < cert.value < 1.25


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.rand(2, 64), "shape"),
        (torch.rand(2, 1, 8, 8) * 16, r"\[0, 1\]"),
        (torch.full((2, 1, 8, 8), float("nan")), "NaN"),
    ],
)
def test_bad_images_are_refused(x, match):
    with pytest.raises(ValueError, match=match):
        validate_images(x, SHAPE)


def test_bad_eps_and_unexported_model_are_refused(trained, digits):
    with pytest.raises(ValueError, match="eps"):
        pgd(trained, digits.x_test[:2], digits.y_test[:2], 0.0)
    with pytest.raises(ValueError, match="export"):
        certify(trained, digits.x_test[:2], digits.y_test[:2])


@pytest.fixture(scope="module")
def trained_cnn(digits):
    torch.manual_seed(0)
    model = lipschitz_cnn(SHAPE, (8, 16), 10, activation="maxmin")
    x = digits.x_train.reshape(-1, *SHAPE)
    train_classifier(model, x, digits.y_train, MarginCrossEntropy(1.0, 10.0), epochs=8, lr=1e-2)
    return model


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_never_breaks_a_trained_cnns_radius(trained_cnn, digits, norm):
    model = export(trained_cnn)
    x_all = digits.x_test.reshape(-1, *SHAPE)
    with torch.no_grad():
        assert torch.equal(trained_cnn.eval()(x_all), model(x_all))
    res = certify(model, x_all, digits.y_test, input_shape=SHAPE)
    assert res.accuracy(0.0) > 0.7 and res.accuracy(0.1) > 0.3  # a model worth attacking
    pgd_inside_certified_radii(model, x_all, digits.y_test, res, norm, steps=30, restarts=2)


def test_more_restarts_never_weaken_pgd(trained, digits):
    model = export(trained)
    x, y = digits.x_test[:60], digits.y_test[:60]

    def loss(adv):
        with torch.no_grad():
            z = model(adv)
        own = z.gather(1, y[:, None])[:, 0]
        return z.scatter(1, y[:, None], -math.inf).max(dim=1).values - own

    one = pgd(model, x, y, 0.5, steps=5, restarts=1)
    gen = torch.Generator().manual_seed(0)
    many = pgd(model, x, y, 0.5, steps=5, restarts=4, generator=gen)
    # the first restart starts at x in both: the best of four is at least as strong
    assert (loss(many) >= loss(one) - 1e-6).all()
    assert (loss(many) > loss(one) + 1e-4).any()  # and the random starts find more
    assert ((many - x).flatten(1).norm(dim=1) <= 0.5 * (1 + 1e-5)).all()
    assert many.min() >= 0 and many.max() <= 1


def test_certified_accuracy_curve_is_the_pointwise_count():
    radii = torch.tensor([0.1, 0.5, 1.0, 2.0, 0.3], dtype=torch.float64)
    correct = torch.tensor([True, True, False, True, True])
    curve = certified_accuracy_curve(radii, correct, [0.0, 0.2, 0.5, 1.5, 3.0])
    assert curve.tolist() == [0.8, 0.6, 0.2, 0.2, 0.0]


def test_attacks_and_certify_refuse_bad_inputs(trained, digits):
    model = export(trained)
    x, y = digits.x_test[:4], digits.y_test[:4]
    with pytest.raises(ValueError, match=r"box \[0, 1\]"):
        pgd(model, x * 16, y, 0.5)  # clipping would move these farther than eps
    with pytest.raises(ValueError, match="NaN"):
        fgsm(model, torch.full_like(x, float("nan")), y, 0.1)
    with pytest.raises(ValueError, match="box"):
        pgd(model, x, y, 0.5, box=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"shape \(4, 1, 7, 7\)"):
        certify(model, torch.rand(4, 1, 7, 7), y)
    with pytest.raises(ValueError, match="labels"):
        certify(model, x, y[:3])
    with pytest.raises(ValueError, match="NaN"):
        certify(model, torch.full_like(x, float("nan")), y)


def test_evaluate_robustness_refuses_bad_images_and_eps(trained, digits):
    model = export(trained)
    x, y = digits.x_test[:4], digits.y_test[:4]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_robustness(model, x * 16, y, [0.5], input_shape=SHAPE)
    with pytest.raises(ValueError, match="shape"):
        evaluate_robustness(model, x.reshape(4, 64), y, [0.5], input_shape=SHAPE)
    with pytest.raises(ValueError, match="eps"):
        evaluate_robustness(model, x, y, [0.5, -0.1], input_shape=SHAPE)
    report = evaluate_robustness(model, x, y, [0.1], input_shape=SHAPE, pgd_steps=2)
    assert 0.0 <= report.pgd[0] <= 1.0 and report.certified[0] <= report.clean


@pytest.mark.cuda
def test_certify_and_attack_on_cuda(trained, digits):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = export(trained).cuda()
    x, y = digits.x_test.cuda(), digits.y_test.cuda()
    res = certify(model, x, y)
    adv = pgd(model, x, y, 0.5, steps=5, restarts=1)
    assert res.radii.device.type == "cuda" and adv.device.type == "cuda"
