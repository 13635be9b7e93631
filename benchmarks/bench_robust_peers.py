"""Peer Lipschitz libraries for bench_robust.py: deel-torchlip and orthogonium, when installed.

Each runner builds the peer's model with the peer's own layers and loss,
trains it in snmech's loop under ANCHORS.md's protocol (Adam 1e-3 cosine,
150 epochs, batch 128, seed 0) and returns ``(model, TrainResult, exported)``
where ``exported`` is a plain-layer copy that bench_robust.py certifies with
snmech's certifier, like every other row. ``available()`` names the runners
whose library imports; the others are reported as "skipped (not installed)".
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import nn

from snmech.robust import export, train_classifier
from snmech.spectral import GroupSort, MaxMin

SHAPE = (1, 8, 8)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _torchlip_mlp():
    from deel import torchlip

    return torchlip.Sequential(
        nn.Flatten(),
        torchlip.SpectralLinear(64, 256),
        torchlip.GroupSort2(),
        torchlip.SpectralLinear(256, 256),
        torchlip.GroupSort2(),
        torchlip.SpectralLinear(256, 10),
    )


def _torchlip_export(model):
    from deel.torchlip.modules.module import vanilla_model

    return _snmech_activations(vanilla_model(model, in_place=False).eval())


def _snmech_activations(model: nn.Module) -> nn.Module:
    """Swap the peers' GroupSort/MaxMin for snmech's (same maps) so the certifier knows them.

    bench_robust.py checks that the result computes exactly the trained outputs.
    """
    for name, child in model.named_children():
        kind = type(child).__name__
        if kind in ("GroupSort", "GroupSort2") and not isinstance(child, GroupSort):
            setattr(model, name, GroupSort(int(child.group_size)))
        elif kind == "MaxMin" and not isinstance(child, MaxMin):
            if getattr(child, "axis", 1) != 1:
                raise ValueError(f"{name}: MaxMin on axis {child.axis} has no snmech twin")
            setattr(model, name, MaxMin())
        else:
            _snmech_activations(child)
    return model


def run_torchlip_hkr(data, epochs):
    from deel import torchlip

    torch.manual_seed(0)
    model = _torchlip_mlp()
    hkr = torchlip.HKRMulticlassLoss(alpha=0.98, min_margin=1.0)
    res = train_classifier(
        model,
        data.x_train,
        data.y_train,
        lambda z, y: hkr(z, F.one_hot(y, 10).to(z.dtype)),
        epochs=epochs,
        lr=1e-3,
    )
    return model, res, _torchlip_export(model)


def run_torchlip_lse(data, epochs):
    from deel import torchlip

    torch.manual_seed(0)
    model = _torchlip_mlp()
    lse = torchlip.LseHKRMulticlassLoss()  # the class defaults, as documented
    res = train_classifier(
        model,
        data.x_train,
        data.y_train,
        lambda z, y: lse(z, F.one_hot(y, 10).to(z.dtype)),
        epochs=epochs,
        lr=1e-3,
    )
    return model, res, _torchlip_export(model)


def run_orthogonium_mlp(data, epochs):
    from orthogonium.layers import MaxMin, OrthoLinear
    from orthogonium.losses import LossXent

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        OrthoLinear(64, 256),
        MaxMin(),
        OrthoLinear(256, 256),
        MaxMin(),
        OrthoLinear(256, 10),
    )
    res = train_classifier(model, data.x_train, data.y_train, LossXent(10), epochs=epochs, lr=1e-3)
    return model, res, _snmech_activations(export(model))


RUNNERS = {
    "deel-torchlip MLP 64-256-256-10, HKR margin 1": ("deel.torchlip", run_torchlip_hkr),
    "deel-torchlip MLP 64-256-256-10, LseHKR (defaults)": ("deel.torchlip", run_torchlip_lse),
    "orthogonium MLP 64-256-256-10, offset CE (defaults)": ("orthogonium", run_orthogonium_mlp),
}


def available() -> dict[str, object]:
    """``{row name: runner or None}``: ``None`` where the library does not import."""
    return {name: (fn if _has(mod) else None) for name, (mod, fn) in RUNNERS.items()}


__all__ = ["RUNNERS", "SHAPE", "available"]
