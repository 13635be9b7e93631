"""Certified Lipschitz bound of a whole network, from exact layer norms.

The certificate is computed on frozen weights, in eval mode, in float64, and
never trusts the power-iteration buffers of the training normalization
(Note [Estimate, not certificate]): a parametrized layer is certified through
the weight it actually applies.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from snmech.spectral._activations import activation_constant
from snmech.spectral._modes import eval_mode
from snmech.spectral._norms import ROUNDING_RTOL, operator_norm

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerFactor:
    """One factor of a certificate.

    Attributes:
        name: the module's qualified name in the model (``"0"``, ``"block.branch.2"``).
        kind: the module's class name.
        factor: its certified Lipschitz constant (>= 0).
        how: how the factor was obtained.
    """

    name: str
    kind: str
    factor: float
    how: str


@dataclass(frozen=True)
class Certificate:
    """A certified upper bound of a network's l2 Lipschitz constant.

    Attributes:
        value: the bound, ``||f(x) - f(y)|| <= value * ||x - y||`` for all x, y.
        factors: per-layer factors, in order (residual branches nested by name).
        method: how the bound composes the factors.
        rtol: the relative float64 slack already included in ``value``
            (Note [Rounding slack]).
        input_shape: the per-sample input shape it holds for (``None``: any,
            for networks without convolutions).
    """

    value: float
    factors: tuple[LayerFactor, ...]
    method: str
    rtol: float
    input_shape: Shape | None

    def __float__(self) -> float:
        return self.value


def lipschitz_bound(model: nn.Module, input_shape: Shape | torch.Size | None = None) -> Certificate:
    r"""Certify an upper bound of the l2 Lipschitz constant of ``model`` in eval mode.

    .. math:: \mathrm{Lip}(f_L \circ \dots \circ f_1) \le \prod_i \mathrm{Lip}(f_i),
        \qquad \mathrm{Lip}(x + g(x)) \le 1 + \mathrm{Lip}(g)

    Linear and convolution layers contribute their exact (float64) operator norm
    (:func:`operator_norm`); activations their ``sup |f'|``; ``Residual`` blocks
    ``1 + L_branch``; eval-mode BatchNorm ``max |gamma| / sqrt(var + eps)``;
    pooling its exact l2 constant; Flatten, Dropout, Identity 1. Any module that
    defines ``lipschitz_factor(input_shape) -> float`` supplies its own.

    Args:
        model: the network (``nn.Sequential``, a known layer, or a module with
            ``lipschitz_factor``). Its train/eval flags are restored afterwards.
        input_shape: per-sample input shape ``(C, H, W)``; required when the
            network contains convolutions or shape-dependent pooling.

    Returns:
        A frozen :class:`Certificate`.

    Raises:
        TypeError: a module it cannot bound (named, with its path); it never guesses.
        ValueError: NaN/inf weights, a missing ``input_shape``, or BatchNorm
            without running statistics.
    """
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    factors: list[LayerFactor] = []
    with eval_mode(model), torch.no_grad():
        value, _ = _bound(model, "", shape, factors)
    return Certificate(
        value=value,
        factors=tuple(factors),
        method="product of exact layer norms (float64); residual blocks 1 + L",
        rtol=ROUNDING_RTOL,
        input_shape=shape,
    )


def _bound(
    module: nn.Module, name: str, shape: Shape | None, out: list[LayerFactor]
) -> tuple[float, Shape | None]:
    """Append the factors of ``module`` to ``out``; return its bound and output shape."""
    if isinstance(module, nn.Sequential):
        total = 1.0
        for child_name, child in module.named_children():
            factor, shape = _bound(child, _join(name, child_name), shape, out)
            total *= factor
        return total, shape
    from snmech.spectral.layers import Residual

    if isinstance(module, Residual):
        branch: list[LayerFactor] = []
        inner, out_shape = _bound(module.branch, _join(name, "branch"), shape, branch)
        out.extend(branch)
        factor = 1.0 + inner
        out.append(LayerFactor(name or "residual", "Residual", factor, "1 + L(branch)"))
        return factor, out_shape

    factor, how = _leaf_factor(module, name, shape)
    out.append(LayerFactor(name or type(module).__name__, type(module).__name__, factor, how))
    return factor, _output_shape(module, shape)


def _leaf_factor(module: nn.Module, name: str, shape: Shape | None) -> tuple[float, str]:
    where = f"module {name!r} ({type(module).__name__})" if name else type(module).__name__
    if isinstance(module, nn.Linear):
        return operator_norm(module), "largest singular value (SVD, float64)"
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        if shape is None:
            raise ValueError(f"{where}: a convolution needs lipschitz_bound(..., input_shape=...)")
        return operator_norm(module, shape), "FFT bound on the input grid (float64)"
    constant = activation_constant(module)
    if constant is not None:
        return constant, "sup |f'|"
    if isinstance(module, nn.Flatten | nn.Unflatten | nn.Dropout | nn.Identity):
        return 1.0, "identity in eval mode"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.running_var is None:
            raise ValueError(
                f"{where}: BatchNorm without running statistics depends on the batch "
                "and has no Lipschitz constant; use track_running_stats=True"
            )
        scale = 1.0 / torch.sqrt(module.running_var.double() + module.eps)
        if module.weight is not None:
            scale = scale * module.weight.double().abs()
        return float(scale.max()) * (1.0 + ROUNDING_RTOL), "max |gamma| / sqrt(var + eps)"
    if isinstance(
        module,
        nn.MaxPool1d | nn.MaxPool2d | nn.MaxPool3d | nn.AvgPool1d | nn.AvgPool2d | nn.AvgPool3d,
    ):
        return _pool_factor(module), "sqrt(windows per input) (/ sqrt(window) for averages)"
    if isinstance(module, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d | nn.AdaptiveAvgPool3d):
        if shape is None:
            raise ValueError(f"{where}: adaptive pooling needs input_shape")
        return _adaptive_avg_factor(module, shape), "exact norm of the averaging operator"
    own = getattr(module, "lipschitz_factor", None)
    if callable(own):
        return float(own(shape)), "module's lipschitz_factor"
    raise TypeError(
        f"lipschitz_bound cannot bound {where}: not a known layer, activation or container. "
        "Give it a method lipschitz_factor(input_shape) -> float, or wrap it in a known one."
    )


def _pool_factor(module: nn.Module) -> float:
    d = {
        nn.MaxPool1d: 1,
        nn.MaxPool2d: 2,
        nn.MaxPool3d: 3,
        nn.AvgPool1d: 1,
        nn.AvgPool2d: 2,
        nn.AvgPool3d: 3,
    }[type(module)]
    k = _tuple(module.kernel_size, d)  # type: ignore[arg-type]
    s = _tuple(module.stride if module.stride else module.kernel_size, d)  # type: ignore[arg-type]
    dil = _tuple(getattr(module, "dilation", 1), d)  # type: ignore[arg-type]
    # An input entry lies in at most ceil(extent/s) windows per dimension.
    copies = math.prod(-(-(di * (ki - 1) + 1) // si) for ki, si, di in zip(k, s, dil, strict=True))
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d | nn.MaxPool3d):
        # |max a - max b| <= ||a - b||_inf <= ||a - b||_2 over each window
        return math.sqrt(copies)
    pad = _tuple(module.padding, d)  # type: ignore[arg-type]
    window = math.prod(k)
    partial = (any(pad) and not getattr(module, "count_include_pad", True)) or getattr(
        module, "ceil_mode", False
    )
    if partial:
        window = 1  # border windows may average fewer entries: bound them by one entry
    if getattr(module, "divisor_override", None):
        window = int(module.divisor_override)  # type: ignore[arg-type]
        return math.sqrt(copies * math.prod(k)) / window
    # (mean of a window)^2 <= sum(window^2) / |window| (Cauchy-Schwarz)
    return math.sqrt(copies / window)


def _adaptive_avg_factor(module: nn.Module, shape: Shape) -> float:
    # Linear map: materialize its exact norm on one channel (small: spatial size only).
    d = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3}[type(module)]
    spatial = shape[-d:]
    n = math.prod(spatial)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, *spatial)
    matrix = module(basis).reshape(n, -1)
    return float(torch.linalg.matrix_norm(matrix, ord=2)) * (1.0 + ROUNDING_RTOL)


def _output_shape(module: nn.Module, shape: Shape | None) -> Shape | None:
    if shape is None:
        return None
    # a module may hold only buffers (a centring mean): probe where they live
    ref = next(
        (
            t
            for t in itertools.chain(module.parameters(), module.buffers())
            if t.is_floating_point()
        ),
        None,
    )
    dtype = ref.dtype if ref is not None else torch.float32
    device = ref.device if ref is not None else torch.device("cpu")
    y = module(torch.zeros((1, *shape), dtype=dtype, device=device))
    return tuple(y.shape[1:])


def _tuple(x: int | tuple[int, ...], d: int) -> tuple[int, ...]:
    return tuple(x) if isinstance(x, tuple | list) else (int(x),) * d


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
