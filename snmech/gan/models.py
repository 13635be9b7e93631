"""Generators and critics: MLPs for the 2-D mixtures, a small convolutional critic for digits.

Note [Certified critic]
    ``spectral_norm`` divides each weight by a power-iteration estimate
    ``sigma_hat = u^T W v <= ||W||`` (one step per training forward), so in
    ``"hard"`` mode the weight used in training has norm ``target * ||W|| /
    sigma_hat >= target``: above its target whenever the estimate lags, like
    torch's (measured: products of 1.2-1.6). The ``"sn"`` critic keeps the
    core's parametrization and makes the estimate an upper bound: after every
    optimizer step :func:`recertify_` calls :func:`snmech.spectral.sync_bound_`
    on each dense layer, which proves an upper bound on ``||W||`` within a
    factor ``sqrt(1 + 1e-3)`` of it (a warm Rayleigh-Ritz estimate, then a
    Cholesky factorization of ``s I - W^T W``; an exact eigensolve when that
    fails or the layer is small) and makes the next forward divide by it; the
    nominal target is ``target * (1 - 1e-6)`` to absorb float32 rounding. The
    gradient is that of hard spectral normalization with a converged estimate.
    Convolutions have no cheap exact singular pair: they use ``"soft"`` mode
    (divide by ``max(1, sigma_hat/target)``, which can only shrink) and
    :func:`project_critic_` rescales the raw kernel so that its certified FFT
    bound (:func:`snmech.spectral.operator_norm`) is at most ``target``. Either
    way every weight a forward uses has norm ``<= target`` and the product of
    layer norms is at most ``target ** n_layers``, at every step;
    :mod:`snmech.gan.train` measures it independently (Note [Recorded norms]).
    Cost per critic step, for the MLP critic: a 128x128 Gram matrix, a 16-vector
    Ritz step and a Cholesky factorization for each hidden-to-hidden layer
    (about a quarter of an eigensolve, a ninth of an SVD). A variant that
    projected the raw weights of soft-mode layers onto the norm ball (no
    normalization in the gradient) was also certified but trained far worse
    (ring8, 2000 G steps: 3 % HQ against 52 %).
    ``certified=False`` keeps the plain one-step hard-mode estimate, for comparison.
"""

from __future__ import annotations

from torch import nn

from snmech.spectral import (
    operator_norm,
    spectral_norm,
    spectral_parametrizations,
    sync_bound_,
)

CRITICS = ("sn", "torch-sn", "clip", "gp", "none")
PROJECTION_MARGIN = 1e-6


def check_critic(kind: str) -> str:
    """Return ``kind`` if it is one of :data:`CRITICS`; raise ``ValueError`` listing them."""
    if kind not in CRITICS:
        raise ValueError(f"unknown critic {kind!r}; choose one of {', '.join(CRITICS)}")
    return kind


def make_generator(
    latent_dim: int = 2, out_shape: tuple[int, ...] = (2,), hidden: int = 128, depth: int = 3
) -> nn.Sequential:
    """An MLP generator ``latent -> depth x hidden ReLU -> out_shape`` (tanh for images).

    Args:
        latent_dim: dimension of the Gaussian latent.
        out_shape: ``(2,)`` for the mixtures, ``(1, 8, 8)`` for digits (tanh output).
        hidden: width of the hidden layers.
        depth: number of hidden layers (>= 1).
    """
    if depth < 1 or hidden < 1 or latent_dim < 1:
        raise ValueError(
            f"need depth, hidden, latent_dim >= 1, got {depth}, {hidden}, {latent_dim}"
        )
    n_out = 1
    for s in out_shape:
        n_out *= int(s)
    layers: list[nn.Module] = []
    width = latent_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    if len(out_shape) > 1:
        layers += [nn.Tanh(), nn.Unflatten(1, tuple(out_shape))]
    return nn.Sequential(*layers)


def _normalize(
    layer: nn.Linear | nn.Conv2d,
    kind: str,
    target: float,
    certified: bool,
    input_shape: tuple[int, ...] | None,
) -> nn.Module:
    if kind == "sn" and certified and isinstance(layer, nn.Linear):
        # hard mode, a hair below target; recertify_ makes its estimate a proven bound
        return spectral_norm(layer, target=target * (1.0 - PROJECTION_MARGIN), mode="hard")
    if kind == "sn":
        mode = "soft" if certified else "hard"
        return spectral_norm(layer, target=target, mode=mode, input_shape=input_shape)
    if kind == "torch-sn":
        return nn.utils.parametrizations.spectral_norm(layer)
    return layer


def make_critic(
    kind: str,
    in_dim: int = 2,
    hidden: int = 128,
    depth: int = 3,
    *,
    target: float = 1.0,
    certified: bool = True,
) -> nn.Sequential:
    """An MLP critic ``in_dim -> depth x hidden ReLU -> 1`` of the given kind.

    Args:
        kind: one of :data:`CRITICS`. ``"sn"``: snmech's ``spectral_norm`` on every
            layer (see Note [Certified critic]); ``"torch-sn"``: torch's
            ``spectral_norm``; ``"clip"``, ``"gp"``, ``"none"``: plain layers (the
            constraint lives in the training loop).
        in_dim: input dimension.
        hidden: width.
        depth: number of hidden layers.
        target: per-layer norm target of ``"sn"`` (the product bound is ``target**(depth+1)``).
        certified: ``"sn"`` only: proven per-step norm bounds via :func:`recertify_` (True)
            or the plain one-step hard-mode estimate (False).

    Returns:
        An ``nn.Sequential``; for ``"sn"`` already certified (:func:`recertify_`).
    """
    check_critic(kind)
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [_normalize(nn.Linear(width, hidden), kind, target, certified, None), nn.ReLU()]
        width = hidden
    layers.append(_normalize(nn.Linear(width, 1), kind, target, certified, None))
    net = nn.Sequential(*layers)
    if kind == "sn" and certified:
        recertify_(net)
    return net


def make_conv_critic(
    kind: str,
    input_shape: tuple[int, int, int] = (1, 8, 8),
    channels: int = 32,
    *,
    target: float = 1.0,
    certified: bool = True,
) -> nn.Sequential:
    """A convolutional critic for small images: two 3x3 / 4x4-stride-2 convs and a linear head.

    For ``"sn"`` each convolution is normalized by its true operator norm on the
    size it sees (``input_shape`` and the strided map after it), not the norm of
    the reshaped kernel that torch's ``spectral_norm`` uses.

    Args:
        kind: one of :data:`CRITICS`.
        input_shape: ``(C, H, W)`` of one image (H, W even).
        channels: channels of the first convolution (the second has twice as many).
        target: per-layer norm target of ``"sn"``.
        certified: see :func:`make_critic`.
    """
    check_critic(kind)
    c, h, w = input_shape
    if h % 2 or w % 2:
        raise ValueError(f"input_shape needs even H and W, got {input_shape}")
    shape2 = (channels, h, w)
    net = nn.Sequential(
        _normalize(nn.Conv2d(c, channels, 3, padding=1), kind, target, certified, input_shape),
        nn.ReLU(),
        _normalize(
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            kind,
            target,
            certified,
            shape2,
        ),
        nn.ReLU(),
        nn.Flatten(),
        _normalize(nn.Linear(2 * channels * (h // 2) * (w // 2), 1), kind, target, certified, None),
    )
    if kind == "sn" and certified:
        recertify_(net)
    return net


def norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Linear and Conv layers of ``model`` in order, with their qualified names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def _raw_norm(layer: nn.Module, input_shape: tuple[int, ...] | None) -> float:
    raw = layer.parametrizations.weight.original  # type: ignore[union-attr]
    if isinstance(layer, nn.Linear):
        return operator_norm(raw.detach())
    conv = layer
    twin = nn.Conv2d(
        conv.in_channels,  # type: ignore[arg-type]
        conv.out_channels,  # type: ignore[arg-type]
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,  # type: ignore[arg-type]
        bias=False,
        padding_mode=conv.padding_mode,  # type: ignore[arg-type]
    )
    twin.weight.data = raw.detach()
    return operator_norm(twin, input_shape)


def project_critic_(model: nn.Module) -> list[float]:
    """Rescale each soft-mode snmech raw weight so its certified norm is <= its target.

    The convolution half of Note [Certified critic] (:func:`recertify_` calls it).
    Hard-mode layers (scale-invariant) and layers without an snmech
    parametrization are left alone.

    Args:
        model: the critic.

    Returns:
        The exact raw norms after projection, one per normalized layer.
    """
    norms: list[float] = []
    for _, layer in norm_layers(model):
        params = spectral_parametrizations(layer)
        if not params or params[0].mode == "hard":
            continue
        target = min(p.target for p in params)
        raw = layer.parametrizations.weight.original  # type: ignore[union-attr]
        sigma = _raw_norm(layer, params[0].input_shape)
        for _ in range(4):
            if sigma <= target:
                break
            raw.data.mul_(target * (1.0 - PROJECTION_MARGIN) / sigma)
            sigma = _raw_norm(layer, params[0].input_shape)
        else:  # pragma: no cover - would need a pathological weight
            raise RuntimeError(f"could not project a layer below its target {target}")
        norms.append(sigma)
    return norms


def recertify_(model: nn.Module) -> None:
    """The per-step certification of a ``make_*critic("sn")`` critic (Note [Certified critic]).

    Dense layers (hard mode): :func:`snmech.spectral.sync_bound_`. Convolutions (soft mode):
    :func:`project_critic_` with the certified FFT bound. Call after every
    optimizer step.
    """
    for _, layer in norm_layers(model):
        params = spectral_parametrizations(layer)
        if params and params[0].mode == "hard" and isinstance(layer, nn.Linear):
            sync_bound_(layer)
    project_critic_(model)
