"""Lipschitz classifiers built from the spectral core, and their export to plain layers."""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.robust._orthogonal import orthogonal_norm
from snmech.robust._rows import unit_row_norm
from snmech.spectral import ConvexPotentialStack, GroupSort, MaxMin, spectral_norm

Activation = Literal["groupsort", "maxmin", "relu"]
_ACTIVATIONS = ("groupsort", "maxmin", "relu")
Head = Literal["orthogonal", "rows"]
_HEADS = ("orthogonal", "rows")


def _activation(name: str) -> nn.Module:
    if name == "groupsort":
        return GroupSort(2)
    if name == "maxmin":
        return MaxMin()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {name!r}")


class Centering(nn.Module):
    """``x - mean``: a fixed translation of flat inputs (Note [Centred inputs]).

    Lipschitz constant exactly 1 (:meth:`lipschitz_factor`). ``mean`` is a
    buffer, saved with the model; set it with :meth:`fit` before training.

    Note [Centred inputs]
        Digit pixels are all >= 0, so at initialization every ReLU hyperplane
        of the first convex potential layer (``W x + b = 0`` with ``b = 0``)
        passes through the origin, a corner of the data, not through the
        data. Subtracting the training mean leaves the function class and the
        certificate as they were (each layer's bias absorbs ``-W_l mean``, the
        head's ``-W mean``), but the optimizer starts from hyperplanes through
        the data and fits more of it: with the far-margin recipe and Adam (six
        seeds) 97.6 % of the training points certified at 0.25 instead of
        96.4 %, and 85.9 instead of 82.7 at 0.5; on the test points +0.4 at
        0.25, -0.5 at 1.0. With NAdam as well, 98.2 % of the training points
        at 0.25, and the soft term buys back radius 1.0 (README "Certified
        robustness").

    Args:
        features: size of the flat input.

    Shape:
        ``(B, features) -> (B, features)``.
    """

    mean: torch.Tensor

    def __init__(self, features: int) -> None:
        super().__init__()
        if features < 1:
            raise ValueError(f"features must be >= 1, got {features}")
        self.register_buffer("mean", torch.zeros(features))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> Centering:
        """Set ``mean`` to the mean of the rows of ``x`` ``(N, *s)`` (``prod(s) == features``).

        Raises:
            ValueError: ``x`` is empty, has the wrong size or is not finite.
        """
        if x.dim() < 2 or len(x) == 0 or x[0].numel() != self.mean.numel():
            raise ValueError(
                f"need a non-empty batch (N, *s) with prod(s) == {self.mean.numel()}, "
                f"got {tuple(x.shape)}"
            )
        mean = x.reshape(len(x), -1).double().mean(dim=0)
        if not torch.isfinite(mean).all():
            raise ValueError("the inputs to centre contain NaN or inf")
        self.mean.copy_(mean.to(self.mean))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x - self.mean

    def lipschitz_factor(self, input_shape: tuple[int, ...] | None = None) -> float:
        """1: a translation moves every pair of points by the same vector."""
        return 1.0

    def extra_repr(self) -> str:  # noqa: D102
        return f"features={self.mean.numel()}"


def lipschitz_mlp(
    in_features: int = 64,
    hidden: tuple[int, ...] | list[int] = (256,),
    n_classes: int = 10,
    *,
    activation: Activation = "groupsort",
    orthogonal_iterations: int = 3,
    normalized: bool = True,
    head: Head = "orthogonal",
    centered: bool = False,
) -> nn.Sequential:
    """A Lipschitz MLP: normalized ``Linear`` layers and GroupSort/MaxMin activations.

    Every hidden linear layer carries :func:`snmech.spectral.spectral_norm`
    (target 1) and, when ``orthogonal_iterations > 0``, Björck steps after it
    (:func:`snmech.robust._orthogonal.orthogonal_norm`), so the feature map is
    1-Lipschitz. The head is normalized the same way (``"orthogonal"``: the whole
    network is 1-Lipschitz) or has unit-norm rows (``"rows"``, Note [Unit-row
    head]: certify it with the pairwise bound of :func:`snmech.robust.certify`).

    Args:
        in_features: input size; inputs of any shape ``(B, *s)`` with
            ``prod(s) == in_features`` are flattened.
        hidden: widths of the hidden layers (even, for the activations).
        n_classes: number of logits.
        activation: ``"groupsort"`` (groups of 2), ``"maxmin"`` or ``"relu"``.
        orthogonal_iterations: Björck steps per forward; 0 for spectral norm only.
        normalized: ``False`` builds the same architecture with plain layers
            (what a model file is loaded into).
        head: ``"orthogonal"`` or ``"rows"``.
        centered: a :class:`Centering` after the ``Flatten`` (Note [Centred inputs]).

    Returns:
        An ``nn.Sequential`` that :func:`snmech.spectral.lipschitz_bound` certifies.
    """
    _check_sizes(in_features=in_features, n_classes=n_classes, hidden=tuple(hidden))
    _activation(activation)  # validate
    if head not in _HEADS:
        raise ValueError(f"head must be one of {_HEADS}, got {head!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    if centered:
        layers.append(Centering(in_features))
    width = in_features
    for h in hidden:
        layers += [_normed(nn.Linear(width, h), orthogonal_iterations, normalized)]
        layers += [_activation(activation)]
        width = h
    last = nn.Linear(width, n_classes)
    if head == "rows" and normalized:
        layers.append(unit_row_norm(last))
    else:
        layers.append(_normed(last, orthogonal_iterations, normalized))
    return nn.Sequential(*layers)


def convex_potential_mlp(
    in_features: int = 64,
    depth: int = 8,
    width: int = 128,
    n_classes: int = 10,
    *,
    centered: bool = False,
    normalized: bool = True,
) -> nn.Sequential:
    """A deep 1-Lipschitz MLP of convex potential layers and a unit-row head.

    ``Flatten``, optionally a :class:`Centering` (``centered``), ``depth``
    convex potential layers in one
    :class:`snmech.spectral.ConvexPotentialStack` (each ``x - 2 / ||W||^2 W^T
    ReLU(W x + b)`` with ``W`` of ``width x in_features``, 1-Lipschitz by Note
    [Convex potential layer]) and a ``Linear`` head with
    unit-norm rows (Note [Unit-row head]), certified by the pairwise bound of
    :func:`snmech.robust.certify`. The features keep the input's size; depth
    buys the expressiveness that width does not in a one-layer orthogonal MLP.

    Args:
        in_features: input size; inputs ``(B, *s)`` with ``prod(s) == in_features``.
        depth: number of convex potential layers (>= 1).
        width: rows of each layer's ``W`` (>= 1).
        n_classes: number of logits.
        centered: subtract a fixed input mean first (Note [Centred inputs]); its mean
            is zero until ``model[1].fit(x_train)``.
        normalized: ``False`` gives the head plain weights (what a model file is
            loaded into); the convex potential layers are the same either way.

    Returns:
        An ``nn.Sequential`` that :func:`snmech.spectral.lipschitz_bound` certifies.
    """
    if in_features < 1:
        raise ValueError(f"in_features must be >= 1, got {in_features}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got {depth}, {width}")
    layers: list[nn.Module] = [nn.Flatten()]
    if centered:
        layers.append(Centering(in_features))
    layers.append(ConvexPotentialStack(in_features, width, depth))
    head = nn.Linear(in_features, n_classes)
    layers.append(unit_row_norm(head) if normalized else head)
    return nn.Sequential(*layers)


def lipschitz_cnn(
    input_shape: tuple[int, int, int] = (1, 8, 8),
    channels: tuple[int, ...] | list[int] = (32, 64),
    n_classes: int = 10,
    *,
    activation: Activation = "groupsort",
    normalized: bool = True,
) -> nn.Sequential:
    """A 1-Lipschitz CNN: normalized 3x3 convolutions, GroupSort/MaxMin, a normalized head.

    Convolutions (stride 2 after the first) are normalized by
    their true operator norm on the input grid, GroupSort/MaxMin, a normalized head.

    Args:
        input_shape: ``(C, H, W)`` of one image.
        channels: output channels of each convolution (even).
        n_classes: number of logits.
        activation: ``"groupsort"``, ``"maxmin"`` or ``"relu"``.
        normalized: ``False`` builds plain layers (for loading a model file).

    Returns:
        An ``nn.Sequential`` (certify with ``input_shape``).
    """
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape}")
    _check_sizes(in_features=math.prod(input_shape), n_classes=n_classes, hidden=tuple(channels))
    _activation(activation)
    layers: list[nn.Module] = []
    shape: tuple[int, ...] = tuple(input_shape)
    for i, c in enumerate(channels):
        conv = nn.Conv2d(shape[0], c, 3, stride=1 if i == 0 else 2, padding=1)
        if normalized:
            spectral_norm(conv, input_shape=shape)
        layers += [conv, _activation(activation)]
        with torch.no_grad():
            shape = tuple(conv(torch.zeros(1, *shape)).shape[1:])
    layers += [nn.Flatten()]
    head = nn.Linear(math.prod(shape), n_classes)
    layers.append(spectral_norm(head) if normalized else head)
    return nn.Sequential(*layers)


def plain_mlp(
    in_features: int = 64, hidden: tuple[int, ...] | list[int] = (256, 256), n_classes: int = 10
) -> nn.Sequential:
    """The unconstrained baseline: ``Linear``/``ReLU`` layers, no normalization."""
    _check_sizes(in_features=in_features, n_classes=n_classes, hidden=tuple(hidden))
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def build_model(kind: str, **architecture: Any) -> nn.Sequential:
    """Build a model by kind (``"cpl"``, ``"mlp"``, ``"cnn"``, ``"plain_mlp"``) like model files."""
    builders = {
        "cpl": convex_potential_mlp,
        "mlp": lipschitz_mlp,
        "cnn": lipschitz_cnn,
        "plain_mlp": plain_mlp,
    }
    if kind not in builders:
        raise ValueError(f"model kind must be one of {sorted(builders)}, got {kind!r}")
    return builders[kind](**architecture)  # type: ignore[operator,no-any-return]


@torch.no_grad()
def export(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every parametrized layer replaced by a plain one.

    The plain weights are exactly those the eval-mode network applies, so the
    export computes bit-for-bit the same outputs as ``model.eval()``; nothing is
    rescaled. Convex potential layers have no parametrization and are copied:
    in eval mode they already apply their exact step (Note [Exact step in eval
    mode]). Its certificate comes from :func:`snmech.spectral.lipschitz_bound`
    on these weights (exact norms, whatever the training estimate said).

    Note [Export by replacement]
        ``parametrize.remove_parametrizations`` on a ``copy.deepcopy`` also
        strips the property from the *original* (the two share the generated
        ``Parametrized*`` class), so the copy's parametrized layers are
        replaced by freshly built plain layers instead.

    Args:
        model: a trained model; not modified.

    Returns:
        The exported copy, in eval mode, on ``model``'s device.

    Raises:
        TypeError: a parametrized layer that is not ``Linear`` or ``ConvNd``.
    """
    was_training = model.training
    model.eval()
    try:
        exported = copy.deepcopy(model)
        replaced: list[str] = []
        for name, module in list(model.named_modules()):
            if any(name.startswith(p + ".") for p in replaced):
                continue  # inside a layer already baked (e.g. its parametrization modules)
            if name and parametrize.is_parametrized(module):
                replaced.append(name)
                parent, _, leaf = name.rpartition(".")
                owner = exported.get_submodule(parent) if parent else exported
                setattr(owner, leaf, _plain_copy(module))
    finally:
        model.train(was_training)
    if parametrize.is_parametrized(exported):
        exported = _plain_copy(model)
    return exported.eval()


def _plain_copy(module: nn.Module) -> nn.Module:
    """A plain ``Linear``/``ConvNd`` holding the weights ``module`` applies now."""
    plain: nn.Module
    if isinstance(module, nn.Linear):
        plain = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        base = next(c for c in (nn.Conv1d, nn.Conv2d, nn.Conv3d) if isinstance(module, c))
        plain = base(
            module.in_channels,
            module.out_channels,
            module.kernel_size,  # type: ignore[arg-type]
            stride=module.stride,  # type: ignore[arg-type]
            padding=module.padding,  # type: ignore[arg-type]
            dilation=module.dilation,  # type: ignore[arg-type]
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
        )
    else:
        raise TypeError(f"export cannot bake a parametrized {type(module).__name__}")
    ref = module.weight
    plain.to(device=ref.device, dtype=ref.dtype)
    plain.weight.copy_(module.weight)
    if module.bias is not None:
        plain.bias.copy_(module.bias)  # type: ignore[union-attr]
    return plain


def _normed(layer: nn.Linear, orthogonal_iterations: int, normalized: bool) -> nn.Linear:
    if not normalized:
        return layer
    if orthogonal_iterations > 0:
        return orthogonal_norm(layer, orthogonal_iterations)
    return spectral_norm(layer)  # type: ignore[return-value]


def _check_sizes(*, in_features: int, n_classes: int, hidden: tuple[int, ...]) -> None:
    if in_features < 1:
        raise ValueError(f"in_features must be >= 1, got {in_features}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if not hidden or any(h < 2 or h % 2 for h in hidden):
        raise ValueError(f"hidden sizes must be even and >= 2, got {hidden}")
