"""The "adversarial clutter" problem: feature maps with informative and misleading channels.

Each sample is a ``(C, H, W)`` stack of channels of three roles:

- ``informative``: the class template of the label plus pixel noise, in training
  and at test alike (the signal to keep);
- ``spurious``: a larger, cleaner template of a *proxy* class that equals the
  label with probability ``spurious_reliability`` in training (a shortcut) and
  is always a wrong class at test time ("flipped");
- ``noise``: label-free noise, of small amplitude in training and large
  amplitude with a random per-sample offset at test time (adversarial noise
  that moves the channel means the SE squeeze reads).

A model that relies on spurious or noise channels loses accuracy at test
time; one that gates them off keeps it. Templates are fixed by
``template_seed``, shared by every split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from snmech.robust.attacks import pgd
from snmech.robust.se import SqueezeExcitation
from snmech.spectral import GroupSort, spectral_norm

Split = Literal["train", "iid", "shift"]
_SPLITS = ("train", "iid", "shift")
SEKind = Literal["none", "plain", "normalized"]
_SE_KINDS = ("none", "plain", "normalized")


@dataclass(frozen=True)
class ClutterSpec:
    """Sizes and amplitudes of the clutter problem (templates have pixel RMS 1).

    Attributes:
        n_classes: number of classes (>= 2).
        informative: number of informative channels (>= 1).
        spurious: number of spurious (shortcut) channels.
        noise: number of noise channels.
        size: ``H = W``.
        signal_noise: pixel noise std on informative channels.
        spurious_amplitude: template amplitude on spurious channels.
        spurious_noise: pixel noise std on spurious channels.
        spurious_reliability: P(proxy class == label) in training, in [0, 1].
        noise_amplitude: noise-channel std in training.
        shift_noise_amplitude: noise-channel std and offset scale at test ("shift").
        template_seed: seeds the class templates (shared by all splits).
    """

    n_classes: int = 4
    informative: int = 2
    spurious: int = 3
    noise: int = 2
    size: int = 8
    signal_noise: float = 3.0
    spurious_amplitude: float = 2.0
    spurious_noise: float = 0.5
    spurious_reliability: float = 0.9
    noise_amplitude: float = 1.0
    shift_noise_amplitude: float = 5.0
    template_seed: int = 0

    @property
    def channels(self) -> int:
        """Total number of channels ``C``."""
        return self.informative + self.spurious + self.noise

    @property
    def roles(self) -> tuple[str, ...]:
        """The role of each channel, in order."""
        return (
            ("informative",) * self.informative
            + ("spurious",) * self.spurious
            + ("noise",) * self.noise
        )


@dataclass(frozen=True)
class ClutterData:
    """A labelled clutter set.

    Attributes:
        x: ``(N, C, H, W)`` float32 feature maps.
        y: ``(N,)`` int64 labels.
        roles: role of each of the ``C`` channels.
        split: ``"train"``, ``"iid"`` (training distribution) or ``"shift"`` (test clutter).
    """

    x: torch.Tensor
    y: torch.Tensor
    roles: tuple[str, ...]
    split: str


def make_clutter(
    n: int, spec: ClutterSpec | None = None, *, split: Split, seed: int
) -> ClutterData:
    """Sample ``n`` clutter feature maps of ``split``.

    Args:
        n: number of samples (>= 1).
        spec: the problem; default :class:`ClutterSpec()`.
        split: ``"train"`` and ``"iid"`` follow the training distribution; ``"shift"``
            flips the spurious channels and amplifies the noise channels.
        seed: seeds the samples (use different seeds for different sets).

    Returns:
        A :class:`ClutterData`.

    Raises:
        ValueError: bad ``n``, ``split`` or spec values.
    """
    spec = spec or ClutterSpec()
    _check_spec(spec)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    k, s = spec.n_classes, spec.size
    templates = _templates(spec)  # (informative + spurious, K, s, s)
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(k, (n,), generator=gen)
    channels = []
    if spec.informative:
        inf = templates[: spec.informative, y].transpose(0, 1)  # (n, I, s, s)
        channels.append(inf + spec.signal_noise * torch.randn(inf.shape, generator=gen))
    if spec.spurious:
        if split == "shift":
            proxy = (y + torch.randint(1, k, (n,), generator=gen)) % k  # always wrong
        else:
            keep = torch.rand(n, generator=gen) < spec.spurious_reliability
            proxy = torch.where(keep, y, torch.randint(k, (n,), generator=gen))
        spur = templates[spec.informative :, proxy].transpose(0, 1)
        noise = spec.spurious_noise * torch.randn(spur.shape, generator=gen)
        channels.append(spec.spurious_amplitude * spur + noise)
    if spec.noise:
        amp = spec.shift_noise_amplitude if split == "shift" else spec.noise_amplitude
        z = amp * torch.randn((n, spec.noise, s, s), generator=gen)
        if split == "shift":
            z = z + amp * torch.randn((n, spec.noise, 1, 1), generator=gen)
        channels.append(z)
    x = torch.cat(channels, dim=1).float()
    return ClutterData(x, y, spec.roles, split)


def clutter_cnn(
    spec: ClutterSpec | None = None, *, se: SEKind = "normalized", width: int = 16
) -> nn.Sequential:
    """A small CNN for clutter maps, with an SE block on the input channels (or none).

    The body is 1-Lipschitz (normalized 3x3 convolutions with GroupSort, a
    normalized head), so it cannot undo a small gate by growing its weights;
    only the SE block varies between variants. The SE block comes first so its
    gate is read per input channel (:func:`channel_gates`).

    Args:
        spec: the problem (channels, size, classes).
        se: ``"none"``, ``"plain"`` (unnormalized SE) or ``"normalized"``.
        width: channels of the convolutions (even).

    Returns:
        ``nn.Sequential(se, conv, GroupSort, conv, GroupSort, Flatten, Linear)``
        (``se`` is ``nn.Identity`` for ``"none"``).
    """
    spec = spec or ClutterSpec()
    _check_spec(spec)
    if se not in _SE_KINDS:
        raise ValueError(f"se must be one of {_SE_KINDS}, got {se!r}")
    if width < 2 or width % 2:
        raise ValueError(f"width must be even and >= 2, got {width}")
    c, s = spec.channels, spec.size
    gate: nn.Module = (
        nn.Identity() if se == "none" else SqueezeExcitation(c, normalized=se == "normalized")
    )
    conv1 = spectral_norm(nn.Conv2d(c, width, 3, padding=1), input_shape=(c, s, s))
    conv2 = spectral_norm(
        nn.Conv2d(width, width, 3, stride=2, padding=1), input_shape=(width, s, s)
    )
    out = (s + 1) // 2
    head = spectral_norm(nn.Linear(width * out * out, spec.n_classes))
    return nn.Sequential(gate, conv1, GroupSort(2), conv2, GroupSort(2), nn.Flatten(), head)


def channel_gates(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Gate values ``(N, C)`` of the model's first (SE) layer on ``x``; ones without SE."""
    first = model[0]
    if isinstance(first, SqueezeExcitation):
        return first.gate(x)
    return torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)


def clutter_attack_accuracy(
    model: nn.Module,
    data: ClutterData,
    eps: float,
    *,
    steps: int = 20,
    restarts: int = 1,
    generator: torch.Generator | None = None,
) -> float:
    """Accuracy under PGD-l2 that may change only the spurious and noise channels.

    The adversary adds a perturbation of l2 norm ``<= eps`` (per sample, over the
    misleading channels, no box) to maximize the margin loss: adversarial
    clutter aimed at the gate and the classifier alike.

    Args:
        model: the classifier (eval mode).
        data: the samples to attack.
        eps: the l2 budget (> 0).
        steps: PGD steps per restart.
        restarts: PGD restarts.
        generator: for the random restarts.

    Returns:
        The fraction still classified correctly.
    """
    idx = [i for i, r in enumerate(data.roles) if r != "informative"]
    if not idx:
        raise ValueError("the data have no spurious or noise channel to attack")
    wrapped = _OnlyChannels(model, data.x, idx)
    z = data.x[:, idx]
    big = float("inf")
    adv = pgd(
        wrapped,
        z,
        data.y,
        eps,
        steps=steps,
        restarts=restarts,
        box=(-big, big),
        generator=generator,
    )
    with torch.no_grad():
        return float((wrapped(adv).argmax(dim=1) == data.y).double().mean())


class _OnlyChannels(nn.Module):
    """``z -> model(x with channels idx replaced by z)`` for a fixed batch ``x``."""

    def __init__(self, model: nn.Module, x: torch.Tensor, idx: list[int]) -> None:
        super().__init__()
        self.model = model
        self.x = x
        self.idx = torch.tensor(idx, device=x.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out: torch.Tensor = self.model(self.x.index_copy(1, self.idx, z))
        return out


def _templates(spec: ClutterSpec) -> torch.Tensor:
    gen = torch.Generator().manual_seed(spec.template_seed)
    n, k, s = spec.informative + spec.spurious, spec.n_classes, spec.size
    t = torch.randn((n * k, 1, s, s), generator=gen, dtype=torch.float64)
    # Smooth with a 3x3 box so templates are blob-like, then scale to pixel RMS 1.
    t = nn.functional.avg_pool2d(t, 3, stride=1, padding=1, count_include_pad=False)
    t = t / t.pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
    return t.reshape(n, k, s, s).float()


def _check_spec(spec: ClutterSpec) -> None:
    if spec.n_classes < 2 or spec.informative < 1 or spec.size < 2:
        raise ValueError(
            f"need n_classes >= 2, informative >= 1, size >= 2; got {spec.n_classes}, "
            f"{spec.informative}, {spec.size}"
        )
    if spec.spurious < 0 or spec.noise < 0:
        raise ValueError(f"spurious and noise must be >= 0, got {spec.spurious}, {spec.noise}")
    if not 0.0 <= spec.spurious_reliability <= 1.0:
        raise ValueError(
            f"spurious_reliability must lie in [0, 1], got {spec.spurious_reliability}"
        )
