"""``finalize``: bake the training normalization into plain weights with exact norms.

After ``finalize`` every layer that carried :func:`spectral_norm` is a plain
layer whose *certified* norm (the float64 norm of the stored weights, with
Note [Rounding slack]) is at most its target (exactly the target in "hard"
mode, up to one float rounding), so :func:`lipschitz_bound` gives the product
of the targets and no estimate is left anywhere.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.spectral._modes import eval_mode
from snmech.spectral._norms import operator_norm
from snmech.spectral.parametrizations import spectral_parametrizations

_MAX_SHRINK_STEPS = 64
_CONVERGE_STEPS = 100


def finalize(model: nn.Module, *, rescale: bool = True) -> nn.Module:
    """Replace every spectral-norm parametrization in ``model`` by exact, plain weights.

    For each normalized layer: converge its power iteration (100 steps on the
    raw weight), evaluate the weight the network then applies, remove the
    parametrization keeping that value
    (``remove_parametrizations(..., leave_parametrized=True)``), then rescale it
    with its exact norm: to ``target`` in "hard" mode, to ``min(sigma, target)``
    in "soft" mode. Rounding to the weight's dtype is checked and corrected, so
    the certified norm of the stored weight never exceeds the target.

    With ``rescale=False`` the weights are baked exactly as the eval-mode network
    applies them (no convergence step, no rescaling): the function is unchanged,
    and :func:`lipschitz_bound` certifies whatever norms they have.

    Args:
        model: any module; modified in place. Train/eval flags are restored.
        rescale: converge and rescale to the targets (default) or bake as is.

    Returns:
        ``model``.

    Raises:
        ValueError: a normalized weight is not finite.
    """
    with eval_mode(model):
        for module in list(model.modules()):
            for name in _parametrized_names(module):
                chain = spectral_parametrizations(module, name)
                if not chain:
                    continue
                last = chain[-1]
                if len(chain) != len(module.parametrizations[name]):  # type: ignore[index]
                    raise ValueError(
                        f"{type(module).__name__}.{name} composes spectral_norm with other "
                        "parametrizations; finalize only handles spectral_norm alone"
                    )
                # Converge the estimate first, so baking changes the function only
                # by the (now negligible) gap between estimate and exact norm.
                if rescale:
                    original = module.parametrizations[name].original  # type: ignore[index]
                    last._update(original, _CONVERGE_STEPS)
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                if rescale:
                    _rescale(module, name, last.target, last.mode, last.input_shape)
    return model


def _parametrized_names(module: nn.Module) -> list[str]:
    if not parametrize.is_parametrized(module):
        return []
    return list(module.parametrizations.keys())  # type: ignore[union-attr]


@torch.no_grad()
def _rescale(
    module: nn.Module, name: str, target: float, mode: str, input_shape: tuple[int, ...] | None
) -> None:
    weight = getattr(module, name)
    if not torch.isfinite(weight).all():
        raise ValueError(f"{type(module).__name__}.{name} is not finite; cannot finalize")

    def certified() -> float:
        return operator_norm(module, input_shape) if input_shape else operator_norm(module)

    sigma = certified()
    if sigma == 0.0:
        return
    goal = target if mode == "hard" else min(sigma, target)
    weight.mul_(goal / sigma)
    # The product was rounded to the weight's dtype: shrink by ulps until certified.
    tiny = torch.finfo(weight.dtype).eps
    for step in range(_MAX_SHRINK_STEPS):
        if certified() <= target:
            return
        weight.mul_(1.0 - tiny * 2**step)
    raise AssertionError("finalize could not bring the certified norm under target")
