"""The article's one-dimensional game (Dirac-GAN): oscillation, and a spectral penalty.

Note [Dirac-GAN]
    Real data is a point mass at 0; the generator is a point mass at ``theta``;
    the discriminator is linear, ``D(x) = psi x`` (an ``nn.Linear(1, 1)``
    without bias, whose spectral norm is ``|psi|``). With ``f(t) = -softplus(-t)``
    the game is ``min_theta max_psi f(psi theta) + f(0)``, whose only equilibrium
    is ``(0, 0)``. Near it the gradient field is a rotation,
    ``(theta', psi') = (-psi / 2, theta / 2)``: alternating gradient steps
    circle around the equilibrium forever (simultaneous ones spiral out). The
    core's ``spectral_penalty(D, target=0) = ||W||^2 = psi^2``, weighted by
    ``lam`` in the discriminator's loss, adds damping ``-2 lam psi``; the
    linearization's eigenvalues ``-lam +- sqrt(lam^2 - 1/4)`` then have negative
    real parts and the trajectory settles at ``(0, 0)`` (Mescheder et al. 2018
    analyse the same game with gradient penalties).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snmech._plot import pyplot, save
from snmech.spectral import spectral_penalty


@dataclass(frozen=True)
class DiracTrajectory:
    """Parameters of the Dirac-GAN along training.

    Attributes:
        theta: ``(steps + 1,)`` generator positions.
        psi: ``(steps + 1,)`` discriminator slopes.
        penalty: the weight ``lam`` of the spectral penalty.
    """

    theta: np.ndarray
    psi: np.ndarray
    penalty: float

    @property
    def radius(self) -> np.ndarray:
        """Distance ``sqrt(theta^2 + psi^2)`` to the equilibrium at each step."""
        return np.hypot(self.theta, self.psi)


def dirac_game(
    steps: int = 3000,
    lr: float = 0.1,
    penalty: float = 0.0,
    *,
    theta0: float = 1.0,
    psi0: float = 1.0,
    simultaneous: bool = False,
) -> DiracTrajectory:
    """Train the Dirac-GAN of Note [Dirac-GAN] with plain gradient steps.

    Args:
        steps: gradient steps of each player.
        lr: step size of both players.
        penalty: weight of ``spectral_penalty(D, target=0)`` in the discriminator's loss (>= 0).
        theta0: initial generator position.
        psi0: initial discriminator slope.
        simultaneous: both players step from the same point (else discriminator first).

    Returns:
        The :class:`DiracTrajectory`.
    """
    if penalty < 0 or lr <= 0 or steps < 1:
        raise ValueError(f"need penalty >= 0, lr > 0, steps >= 1; got {penalty}, {lr}, {steps}")
    theta = nn.Parameter(torch.tensor([float(theta0)], dtype=torch.float64))
    disc = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        disc.weight.fill_(float(psi0))
    opt_g = torch.optim.SGD([theta], lr=lr)
    opt_d = torch.optim.SGD(disc.parameters(), lr=lr)
    zero = torch.zeros(1, 1, dtype=torch.float64)

    def value() -> torch.Tensor:  # f(D(theta)) + f(D(0)), f(t) = -softplus(-t)
        return -F.softplus(-disc(theta.view(1, 1))).sum() - F.softplus(-disc(zero)).sum()

    thetas, psis = [float(theta0)], [float(psi0)]
    for _ in range(steps):
        d_loss = -value() + penalty * spectral_penalty(disc, target=0.0)
        opt_d.zero_grad()
        d_loss.backward()
        if simultaneous:
            opt_g.zero_grad()
            value().backward()
            opt_d.step()
            opt_g.step()
        else:
            opt_d.step()
            opt_g.zero_grad()
            value().backward()
            opt_g.step()
        thetas.append(float(theta.detach()))
        psis.append(float(disc.weight.detach()))
    return DiracTrajectory(np.array(thetas), np.array(psis), float(penalty))


def plot_dirac(
    path: str | Path, penalties: tuple[float, ...] = (0.0, 0.3), steps: int = 3000, lr: float = 0.1
) -> Path:
    """Plot trajectories in the ``(theta, psi)`` plane and their distance to equilibrium.

    Args:
        path: the PNG to write.
        penalties: spectral-penalty weights, one trajectory each.
        steps: gradient steps.
        lr: step size.
    """
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    for lam in penalties:
        tr = dirac_game(steps, lr, lam)
        label = "no control" if lam == 0 else f"spectral penalty {lam:g} psi^2"
        ax1.plot(tr.theta, tr.psi, lw=0.8, label=label)
        ax2.semilogy(np.arange(steps + 1) * lr, np.maximum(tr.radius, 1e-16), label=label)
    ax1.plot([0], [0], "k*", ms=10, label="equilibrium")
    ax1.set_xlabel("theta (generator)")
    ax1.set_ylabel("psi (discriminator)")
    ax1.set_aspect("equal")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("time (steps x lr)")
    ax2.set_ylabel("distance to equilibrium")
    ax2.legend(fontsize=7)
    fig.suptitle(f"Dirac-GAN: alternating gradient steps, lr {lr:g}", fontsize=10)
    return save(fig, path, dpi=110)
