"""GAN losses as pure functions of critic outputs, and the WGAN-GP gradient penalty.

Each loss has a critic side (``*_d_loss(real_out, fake_out)``, minimized by the
critic) and a generator side (``*_g_loss(fake_out)``, minimized by the generator).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("non-saturating", "hinge", "wasserstein")


def nonsaturating_d_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """``E softplus(-D(x)) + E softplus(D(G(z)))``: the cross-entropy of a logit critic."""
    return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()


def nonsaturating_g_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """``E softplus(-D(G(z)))``: the non-saturating generator loss of Goodfellow et al."""
    return F.softplus(-fake_out).mean()


def hinge_d_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """``E relu(1 - D(x)) + E relu(1 + D(G(z)))`` (SN-GAN's critic loss)."""
    return F.relu(1.0 - real_out).mean() + F.relu(1.0 + fake_out).mean()


def hinge_g_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """``-E D(G(z))``."""
    return -fake_out.mean()


def wasserstein_d_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """``E D(G(z)) - E D(x)``: minus the Kantorovich-Rubinstein estimate."""
    return fake_out.mean() - real_out.mean()


def wasserstein_g_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """``-E D(G(z))``."""
    return -fake_out.mean()


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""WGAN-GP's ``E (||\nabla D(\hat x)|| - 1)^2`` on random interpolates of real and fake.

    Args:
        critic: the critic.
        real: a batch of real samples.
        fake: a batch of generated samples, same shape (detached by the caller or not).
        generator: random stream for the interpolation weights.

    Returns:
        A differentiable 0-dim tensor (create_graph=True).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(alpha_shape, generator=generator, dtype=real.dtype).to(real.device)
    x = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


LossPair = tuple[
    Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]
]
_LOSSES: dict[str, LossPair] = {
    "non-saturating": (nonsaturating_d_loss, nonsaturating_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
    "wasserstein": (wasserstein_d_loss, wasserstein_g_loss),
}


def loss_pair(name: str) -> LossPair:
    """``(d_loss, g_loss)`` for a name in :data:`LOSSES`; ``ValueError`` listing them otherwise."""
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return _LOSSES[name]
