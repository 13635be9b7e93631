"""Sample-quality metrics: VEEGAN's on the 2-D mixtures, classifier-based ones on digits.

Note [VEEGAN metrics]
    On ``n`` generated samples (2500 in the benchmark): a sample is *high
    quality* (HQ) when it lies within 3 standard deviations of its nearest
    mode; a mode is *covered* when at least one HQ sample has it as nearest
    mode; the *reverse KL* is ``sum_k q_k log(q_k / p_k)`` with ``q`` the
    histogram of nearest modes over all samples and ``p`` uniform (empty bins
    contribute 0). Uniform noise over the grid25 square covers about 20 of 25
    modes at 1.7 % HQ, so HQ % and reverse KL lead, mode count follows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from snmech.gan.data import Mixture, load_digits


@dataclass(frozen=True)
class ModeMetrics:
    """VEEGAN's metrics of Note [VEEGAN metrics].

    Attributes:
        hq_percent: share of high-quality samples, in percent.
        modes: number of covered modes.
        n_modes: number of modes of the mixture.
        reverse_kl: KL(nearest-mode histogram || uniform), in nats.
    """

    hq_percent: float
    modes: int
    n_modes: int
    reverse_kl: float

    def as_dict(self) -> dict[str, float]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def mode_metrics(samples: torch.Tensor, mix: Mixture) -> ModeMetrics:
    """Score ``(n, 2)`` samples against a mixture (Note [VEEGAN metrics]).

    Raises:
        ValueError: wrong shape, or non-finite samples.
    """
    x = torch.as_tensor(samples).detach().to(torch.float64)
    if x.dim() != 2 or x.shape[1] != mix.modes.shape[1] or len(x) == 0:
        raise ValueError(f"samples must be (n, {mix.modes.shape[1]}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("samples contain NaN or inf")
    dist = torch.cdist(x, mix.modes)
    dmin, nearest = dist.min(dim=1)
    hq = dmin <= 3.0 * mix.std
    k = len(mix.modes)
    counts = torch.bincount(nearest, minlength=k).to(torch.float64)
    q = counts / counts.sum()
    nz = q > 0
    rkl = float((q[nz] * torch.log(q[nz] * k)).sum())
    covered = int(torch.unique(nearest[hq]).numel())
    return ModeMetrics(100.0 * float(hq.double().mean()), covered, k, max(rkl, 0.0))


@dataclass(frozen=True)
class DigitsMetrics:
    """Classifier-based scores of generated digits.

    Attributes:
        classes: classes (of 10) predicted for at least 1 % of the samples.
        confident_percent: share of samples the classifier labels with probability >= 0.9.
        class_kl: KL(predicted-class histogram || uniform), in nats.
        frechet: Frechet distance between Gaussians fitted to the classifier's
            hidden features of the samples and of the real digits.
    """

    classes: int
    confident_percent: float
    class_kl: float
    frechet: float

    def as_dict(self) -> dict[str, float]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@functools.lru_cache(maxsize=1)
def digits_classifier(seed: int = 0, epochs: int = 300) -> nn.Sequential:
    """A fixed MLP classifier ``64 -> 128 ReLU -> 10`` trained on all 1797 digits (about 1 s).

    Its ReLU features (``net[:3]``) are the space of the Frechet distance.
    """
    x, y = load_digits()
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-1.0 / math.sqrt(p.shape[-1]), 1.0 / math.sqrt(p.shape[-1]), generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval().requires_grad_(False)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    r"""Frechet distance of Gaussians fitted to two feature sets ``(n, d)``.

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ sb @ root_a)
    tr = np.trace(sa) + np.trace(sb) - 2.0 * np.sqrt(np.clip(cross, 0, None)).sum()
    return float(mu @ mu + max(tr, 0.0))


def digits_metrics(samples: torch.Tensor) -> DigitsMetrics:
    """Score ``(n, 1, 8, 8)`` generated digits in [-1, 1] with :func:`digits_classifier`."""
    x = torch.as_tensor(samples).detach().float()
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"samples must be (n, 1, 8, 8), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("samples contain NaN or inf")
    net = digits_classifier()
    prob = net(x).softmax(1)
    conf, pred = prob.max(1)
    q = torch.bincount(pred, minlength=10).double() / len(pred)
    nz = q > 0
    kl = float((q[nz] * torch.log(q[nz] * 10)).sum())
    real = load_digits()[0]
    fd = frechet_distance(net[:3](x).numpy(), net[:3](real).numpy())
    return DigitsMetrics(
        int((q >= 0.01).sum()), 100.0 * float((conf >= 0.9).double().mean()), max(kl, 0.0), fd
    )
