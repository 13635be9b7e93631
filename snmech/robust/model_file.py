"""The classifier file: one ``.safetensors`` with JSON metadata; loading never unpickles.

Metadata key ``"snmech"`` holds the format, the model kind and architecture
(:func:`snmech.robust.models.build_model`), the input shape, the certificate
(the Lipschitz bound of the exported weights) and a training summary.
:func:`load_classifier` rebuilds the plain model, recomputes the certificate
and refuses a file whose stored certificate does not match its weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from snmech._model_file import is_count, metadata_number, read_model_metadata, write_model_file
from snmech.robust.models import build_model, export
from snmech.spectral import lipschitz_bound

FORMAT = "snmech-classifier/1"
CERT_RTOL = 1e-9


class ClassifierFileError(ValueError):
    """A classifier file is missing, corrupt, or not an snmech classifier."""


class CertificateMismatchError(ClassifierFileError):
    """The certificate stored in a classifier file does not match its weights."""


def save_classifier(
    model: nn.Module,
    path: str | Path,
    *,
    kind: str,
    architecture: dict[str, Any],
    input_shape: tuple[int, ...],
    training: dict[str, Any] | None = None,
) -> Path:
    """Export (a copy of) ``model`` and write it with its certificate.

    Args:
        model: the trained model (parametrized or already exported); not modified.
        path: destination, conventionally ``*.safetensors``.
        kind: the builder name (``"mlp"``, ``"cnn"``, ``"plain_mlp"``).
        architecture: the builder's keyword arguments (JSON-serializable).
        input_shape: per-image shape, e.g. ``(1, 8, 8)``.
        training: JSON-serializable training summary.

    Returns:
        The path written.

    Raises:
        ClassifierFileError: an ``architecture`` :func:`load_classifier` could not
            rebuild the model from (checked before anything is written).
    """
    _check_architecture(kind, architecture, Path(path))
    exported = export(model).cpu()
    cert = lipschitz_bound(exported, input_shape=input_shape)
    meta = {
        "format": FORMAT,
        "kind": kind,
        "architecture": architecture,
        "input_shape": list(input_shape),
        "certificate": {"lipschitz_bound": cert.value, "method": cert.method},
        "training": training or {},
    }
    return write_model_file(path, exported.state_dict(), meta)


def load_classifier(path: str | Path, *, verify: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Load a classifier file and check its certificate against its weights.

    Args:
        path: a file written by :func:`save_classifier`.
        verify: recompute the certificate and compare it with the stored one.

    Returns:
        ``(model, metadata)``: the plain model in eval mode on the CPU.

    Raises:
        FileNotFoundError: no such file.
        ClassifierFileError: corrupt file, wrong format, weights that do not fit.
        CertificateMismatchError: the weights do not give the stored certificate.
    """
    p = Path(path)
    meta = read_model_metadata(p, what="classifier", fmt=FORMAT, error=ClassifierFileError)
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ClassifierFileError(f"{p}: not a readable safetensors file ({exc})") from None
    _check_architecture(meta.get("kind"), meta.get("architecture"), p)
    try:
        arch = dict(meta["architecture"])
        if meta["kind"] != "plain_mlp":
            arch["normalized"] = False
        model = build_model(meta["kind"], **arch)
        if meta["kind"] == "cpl":
            tensors = _stacked_cpl_layout(tensors, int(arch["depth"]))
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ClassifierFileError(
            f"{p}: weights do not match the stored architecture ({exc})"
        ) from None
    if any(not torch.isfinite(t).all() for t in tensors.values()):
        raise ClassifierFileError(f"{p}: weights contain NaN or inf")
    model.eval()
    input_shape = _input_shape(model, meta.get("input_shape"), p)
    if verify:
        fresh = lipschitz_bound(model, input_shape=input_shape).value
        cert = meta.get("certificate")
        if not isinstance(cert, dict) or "lipschitz_bound" not in cert:
            raise CertificateMismatchError(f"{p}: metadata has no certificate 'lipschitz_bound'")
        stored = metadata_number(cert, "lipschitz_bound", str(p), ClassifierFileError)
        if not math.isclose(stored, fresh, rel_tol=CERT_RTOL, abs_tol=0.0):
            raise CertificateMismatchError(
                f"{p}: stored Lipschitz bound {stored:.9e} but the weights give {fresh:.9e}"
            )
    return model, meta


# builder arguments a file must state: each changes the function, not always the
# certificate, so a default would silently load another model ("centered" and
# "head" came later; their defaults are what files without them were trained with)
_REQUIRED = {
    "cpl": ("in_features", "depth", "width", "n_classes"),
    "mlp": ("in_features", "hidden", "n_classes", "activation", "orthogonal_iterations"),
    "cnn": ("input_shape", "channels", "n_classes", "activation"),
    "plain_mlp": ("in_features", "hidden", "n_classes"),
}
_COUNTS = ("in_features", "depth", "width", "n_classes")
_FLAGS = ("centered", "normalized")


def _sizes(value: Any, *, empty: bool) -> bool:
    """A list of positive whole numbers (``empty``: may have none)."""
    return isinstance(value, list) and (empty or bool(value)) and all(is_count(v) for v in value)


def _check_architecture(kind: Any, arch: Any, p: Path) -> None:
    """The stored builder arguments: all there, of the right types (a wrong one is named)."""
    if kind not in _REQUIRED:
        raise ClassifierFileError(
            f"{p}: unknown model kind {kind!r:.40}; known: {sorted(_REQUIRED)}"
        )
    if not isinstance(arch, dict):
        raise ClassifierFileError(f"{p}: metadata 'architecture' must be a JSON object")
    missing = [key for key in _REQUIRED[kind] if key not in arch]
    if missing:
        raise ClassifierFileError(
            f"{p}: metadata 'architecture' lacks {missing} for a {kind} model"
        )

    for key, value in arch.items():
        bad = (
            (key in _COUNTS and not is_count(value))
            or (key == "orthogonal_iterations" and not is_count(value, 0))
            or (key in _FLAGS and not isinstance(value, bool))
            or (key in ("hidden", "channels", "input_shape") and not _sizes(value, empty=True))
            or (key in ("activation", "head") and not isinstance(value, str))
        )
        if bad:
            raise ClassifierFileError(
                f"{p}: metadata 'architecture' {key} = {value!r:.40} is not a valid value"
            )


def _input_shape(model: nn.Module, shape: Any, p: Path) -> tuple[int, ...]:
    """The file's per-image shape, checked to be positive sizes the model takes."""
    if not _sizes(shape, empty=False):
        raise ClassifierFileError(
            f"{p}: metadata 'input_shape' must be a list of positive sizes, got {shape!r:.80}"
        )
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *shape))
    except (RuntimeError, ValueError) as exc:
        raise ClassifierFileError(
            f"{p}: metadata 'input_shape' {shape} does not fit the model ({exc})"
        ) from None
    if out.dim() != 2 or out.shape[0] != 1:
        raise ClassifierFileError(
            f"{p}: with input_shape {shape} the model gives {tuple(out.shape)}, not (1, classes)"
        )
    return tuple(shape)


def _stacked_cpl_layout(tensors: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """A "cpl" state dict in today's layout (one ConvexPotentialStack at index 1, head at 2).

    Files written before the stack hold one module per layer: ``{i}.weight``,
    ``{i}.bias``, ``{i}._v`` for ``i = 1..depth`` and the head at ``depth + 1``.
    Those are stacked, so a model trained then loads unchanged; anything else
    (today's layout, or a centred model with its ``Centering`` at index 1, which
    came after the stack) is returned as it is, and a mismatch is reported by
    ``load_state_dict``.
    """
    first = tensors.get("1.weight")
    if first is None or first.dim() != 2:
        return tensors  # today's layout (a 3-D stacked weight), or not a cpl file at all
    layers = [f"{i}.{name}" for i in range(1, depth + 1) for name in ("weight", "bias", "_v")]
    if any(key not in tensors for key in layers):
        return tensors
    out = {
        f"1.{name}": torch.stack([tensors[f"{i}.{name}"] for i in range(1, depth + 1)])
        for name in ("weight", "bias", "_v")
    }
    for name in ("weight", "bias"):
        key = f"{depth + 1}.{name}"
        if key in tensors:
            out[f"2.{name}"] = tensors[key]
    rest = set(tensors) - set(layers) - {f"{depth + 1}.weight", f"{depth + 1}.bias"}
    out.update({key: tensors[key] for key in rest})  # left for load_state_dict to refuse
    return out
