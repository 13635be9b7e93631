"""Certifiably robust classifiers on the spectral core.

Train a 1-Lipschitz network (a deep stack of convex potential layers, or an
orthogonal MLP/CNN) with a margin loss, export it to plain layers
(same outputs), certify it with :func:`snmech.spectral.lipschitz_bound`, and
read off certified l2 radii ``margin / (sqrt(2) L)`` or the sharper pairwise
radii; attack it with FGSM/PGD. Also: a Squeeze-and-Excitation block with
normalized excitation and L1 gate sparsity, and the adversarial-clutter problem.
"""

from snmech.robust._orthogonal import orthogonal_norm
from snmech.robust.attacks import attack_accuracy, fgsm, pgd
from snmech.robust.certify import (
    Certification,
    certified_accuracy,
    certified_accuracy_curve,
    certified_radii,
    certify,
    pairwise_lipschitz,
    pairwise_radii,
)
from snmech.robust.clutter import ClutterData, ClutterSpec, clutter_cnn, make_clutter
from snmech.robust.data import DigitsSplit, load_digits_split, validate_images
from snmech.robust.evaluate import RobustnessReport, evaluate_robustness
from snmech.robust.functional import (
    far_margin_cross_entropy,
    hinge_kantorovich,
    logit_margin,
    margin_cross_entropy,
    pairwise_margin_cross_entropy,
    soft_certified_accuracy,
)
from snmech.robust.losses import (
    FarMarginCrossEntropy,
    HingeKantorovich,
    MarginCrossEntropy,
    PairwiseMarginCrossEntropy,
)
from snmech.robust.margins import far_samples, nearest_other_class
from snmech.robust.models import (
    Centering,
    build_model,
    convex_potential_mlp,
    export,
    lipschitz_cnn,
    lipschitz_mlp,
    plain_mlp,
)
from snmech.robust.se import SEBound, SqueezeExcitation, excitation_l1, gate_l1, se_lipschitz_bound
from snmech.robust.train import TrainResult, train_classifier

__all__ = [
    "Centering",
    "Certification",
    "ClutterData",
    "ClutterSpec",
    "DigitsSplit",
    "FarMarginCrossEntropy",
    "HingeKantorovich",
    "MarginCrossEntropy",
    "PairwiseMarginCrossEntropy",
    "RobustnessReport",
    "SEBound",
    "SqueezeExcitation",
    "TrainResult",
    "attack_accuracy",
    "build_model",
    "certified_accuracy",
    "certified_accuracy_curve",
    "certified_radii",
    "certify",
    "clutter_cnn",
    "convex_potential_mlp",
    "evaluate_robustness",
    "excitation_l1",
    "export",
    "far_margin_cross_entropy",
    "far_samples",
    "fgsm",
    "gate_l1",
    "hinge_kantorovich",
    "lipschitz_cnn",
    "lipschitz_mlp",
    "load_digits_split",
    "logit_margin",
    "make_clutter",
    "margin_cross_entropy",
    "nearest_other_class",
    "orthogonal_norm",
    "pairwise_lipschitz",
    "pairwise_margin_cross_entropy",
    "pairwise_radii",
    "pgd",
    "plain_mlp",
    "se_lipschitz_bound",
    "soft_certified_accuracy",
    "train_classifier",
    "validate_images",
]
