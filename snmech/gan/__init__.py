"""GANs with a certified critic, on PacGAN's 2-D mixtures and the 8x8 digits.

Typical use::

    from snmech.gan import GANConfig, train_gan
    run = train_gan(GANConfig(dataset="ring8", critic="sn", steps=2000), out="runs/ring8")
    run.metrics            # HQ %, modes covered, reverse KL (VEEGAN)
    run.max_norm_product   # max over steps of the exact product of layer norms (<= 1 for "sn")

Imports only torch, numpy and :mod:`snmech.spectral`.
"""

from snmech.gan.data import DATASETS, DataStream, Mixture, load_digits, mixture
from snmech.gan.dirac import DiracTrajectory, dirac_game, plot_dirac
from snmech.gan.functional import (
    LOSSES,
    gradient_penalty,
    hinge_d_loss,
    hinge_g_loss,
    loss_pair,
    nonsaturating_d_loss,
    nonsaturating_g_loss,
    wasserstein_d_loss,
    wasserstein_g_loss,
)
from snmech.gan.losses import GANLoss
from snmech.gan.metrics import DigitsMetrics, ModeMetrics, digits_metrics, mode_metrics
from snmech.gan.models import (
    CRITICS,
    make_conv_critic,
    make_critic,
    make_generator,
    project_critic_,
    recertify_,
)
from snmech.gan.train import (
    GANConfig,
    GANRun,
    NonFiniteLossError,
    certify_critic,
    exact_layer_norms,
    train_gan,
)

__all__ = [
    "CRITICS",
    "DATASETS",
    "LOSSES",
    "DataStream",
    "DiracTrajectory",
    "DigitsMetrics",
    "GANConfig",
    "GANLoss",
    "GANRun",
    "Mixture",
    "ModeMetrics",
    "NonFiniteLossError",
    "certify_critic",
    "digits_metrics",
    "dirac_game",
    "exact_layer_norms",
    "gradient_penalty",
    "hinge_d_loss",
    "hinge_g_loss",
    "load_digits",
    "loss_pair",
    "make_conv_critic",
    "make_critic",
    "make_generator",
    "mixture",
    "mode_metrics",
    "nonsaturating_d_loss",
    "nonsaturating_g_loss",
    "plot_dirac",
    "project_critic_",
    "recertify_",
    "train_gan",
    "wasserstein_d_loss",
    "wasserstein_g_loss",
]
