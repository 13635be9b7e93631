"""Certifiably robust classifiers on the spectral core.

Train a 1-Lipschitz network with a margin loss, export it to plain layers
(same outputs), certify it with :func:`snmech.spectral.lipschitz_bound`, and
read off certified l2 radii ``margin / (sqrt(2) L)``; attack it with FGSM/PGD.
"""

from snmech.robust._orthogonal import orthogonal_norm
from snmech.robust.attacks import attack_accuracy, fgsm, pgd
from snmech.robust.certify import (
    Certification,
    certified_accuracy,
    certified_accuracy_curve,
    certified_radii,
    certify,
)
from snmech.robust.data import DigitsSplit, load_digits_split, validate_images
from snmech.robust.evaluate import RobustnessReport, evaluate_robustness
from snmech.robust.functional import hinge_kantorovich, logit_margin, margin_cross_entropy
from snmech.robust.losses import HingeKantorovich, MarginCrossEntropy
from snmech.robust.models import build_model, export, lipschitz_cnn, lipschitz_mlp, plain_mlp
from snmech.robust.train import TrainResult, train_classifier

__all__ = [
    "Certification",
    "DigitsSplit",
    "HingeKantorovich",
    "MarginCrossEntropy",
    "RobustnessReport",
    "TrainResult",
    "attack_accuracy",
    "build_model",
    "certified_accuracy",
    "certified_accuracy_curve",
    "certified_radii",
    "certify",
    "evaluate_robustness",
    "export",
    "fgsm",
    "hinge_kantorovich",
    "lipschitz_cnn",
    "lipschitz_mlp",
    "load_digits_split",
    "logit_margin",
    "margin_cross_entropy",
    "orthogonal_norm",
    "pgd",
    "plain_mlp",
    "train_classifier",
    "validate_images",
]
