"""The trained-law file: one ``.safetensors`` with JSON metadata. Loading never unpickles.

Metadata key ``"snmech"`` holds JSON with the format version, the law kind and
architecture, the scalings and units, the certificate (scalar bound in Pa and,
for potential laws, the Loewner matrix ``C_bar``), the training summary and
the SHA-256 of the training data. :func:`load_law` rebuilds the law from that
JSON and the weights, recomputes the certificate from the weights, and refuses
a file whose stored certificate does not match.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch.nn.utils import parametrize

from snmech._model_file import is_count, metadata_number, read_model_metadata, write_model_file
from snmech.material.neural import LAW_KINDS, NeuralLaw, PotentialLaw
from snmech.material.recurrent import RecurrentLaw

FORMAT = "snmech-law/1"
CERT_RTOL = 1e-9
_DTYPES = ("float32", "float64")  # what training writes; eigh needs them
FILE_KINDS: dict[str, type[NeuralLaw]] = LAW_KINDS | {"recurrent": RecurrentLaw}


class ModelFileError(ValueError):
    """A law file is missing, corrupt, or not an snmech law."""


class CertificateMismatchError(ModelFileError):
    """The certificate stored in a law file does not match its weights."""


def certificate_of(law: NeuralLaw) -> dict[str, Any]:
    """The certificate of an exported law, as stored in its file."""
    cert: dict[str, Any] = {"lipschitz_bound_pa": law.lipschitz_bound(), "units": "Pa"}
    if isinstance(law, PotentialLaw):
        cert["loewner_bound_pa"] = law.loewner_bound().tolist()
        cert["tangent"] = "symmetric positive semi-definite (gradient of a convex potential)"
    elif isinstance(law, RecurrentLaw):
        cert["loewner_bound_pa"] = law.loewner_bound().tolist()
        cert["tangent"] = "symmetric positive semi-definite at any fixed state"
        cert["state_lipschitz_bound"] = law.state_lipschitz_bound()
        cert["state_size"] = law.state_size
    else:
        cert["tangent"] = "bounded, not necessarily symmetric"
    return cert


def save_law(
    law: NeuralLaw,
    path: str | Path,
    *,
    training: dict[str, Any] | None = None,
    data_sha256: str | None = None,
) -> Path:
    """Export (finalize a copy of) ``law`` and write it with its certificate.

    Args:
        law: a trained law; it is not modified (a copy is exported).
        path: destination, conventionally ``*.safetensors``.
        training: JSON-serializable training summary.
        data_sha256: hash of the training data (``StressStrainData.sha256()``).

    Returns:
        The path written.
    """
    exported = law.exported_copy().cpu()
    assert not any(parametrize.is_parametrized(m) for m in exported.modules())
    meta = {
        "format": FORMAT,
        "kind": exported.kind,
        "architecture": exported.architecture(),
        "units": {"strain": "1 (Mandel)", "stress": "Pa (Mandel)"},
        "certificate": certificate_of(exported),
        "training": training or {},
        "data_sha256": data_sha256,
        "dtype": str(next(exported.parameters()).dtype).removeprefix("torch."),
    }
    return write_model_file(path, exported.state_dict(), meta)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a law file, validated for format."""
    p = Path(path)
    meta = read_model_metadata(p, what="law", fmt=FORMAT, error=ModelFileError)
    if meta.get("kind") not in FILE_KINDS:
        raise ModelFileError(f"{p}: unknown law kind {meta.get('kind')!r}")
    return meta


def load_law(
    path: str | Path, *, device: str | torch.device = "cpu", verify: bool = True
) -> NeuralLaw:
    """Load a law file, recompute its certificate and check it against the stored one.

    Args:
        path: a file written by :func:`save_law`.
        device: where to put the law.
        verify: compare the recomputed certificate with the stored one.

    Returns:
        The law in eval mode, with plain (exported) weights.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: corrupt file, wrong format, weights that do not fit.
        CertificateMismatchError: the weights do not give the stored certificate.
    """
    p = Path(path)
    meta = read_metadata(p)
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{p}: cannot read the weights ({exc})") from None
    cls = FILE_KINDS[meta["kind"]]
    arch, dtype = meta.get("architecture"), meta.get("dtype", "float32")
    if not isinstance(arch, dict):
        raise ModelFileError(
            f"{p}: metadata 'architecture' must be a JSON object, got {arch!r:.80}"
        )
    _check_architecture(arch, p)
    if dtype not in _DTYPES:
        raise ModelFileError(f"{p}: metadata 'dtype' must be one of {_DTYPES}, got {dtype!r:.80}")
    try:
        law = cls(**arch, normalized=False)
        law = law.to(getattr(torch, dtype))
        law.load_state_dict(tensors, strict=True)
    except (TypeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{p}: weights do not match the stored architecture ({exc})") from None
    if any(not torch.isfinite(t).all() for t in tensors.values()):
        raise ModelFileError(f"{p}: weights contain NaN or inf")
    law.eval()
    if verify:
        check_certificate(law, meta.get("certificate"), str(p))
    return law.to(device)


def _check_architecture(arch: dict[str, Any], p: Path) -> None:
    """Types of the stored constructor arguments: a wrong one is named, not coerced."""

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < math.inf

    checks: dict[str, Callable[[Any], bool]] = {
        "kinematics": lambda v: isinstance(v, str),
        "strain_scale": number,
        "stress_scale": number,
        "lipschitz_max": lambda v: v is None or number(v),
        "stress_free": lambda v: isinstance(v, bool),
        "hidden": is_count,
        "radial": is_count,
        "depth": is_count,
        "units": is_count,
    }
    for key, value in arch.items():
        if key in checks and not checks[key](value):
            raise ModelFileError(
                f"{p}: metadata 'architecture' {key} = {value!r:.40} is not a valid value"
            )


def check_certificate(law: NeuralLaw, stored: Any, where: str) -> dict[str, Any]:
    """Recompute the certificate of ``law``; raise if it differs from ``stored``.

    Raises:
        ModelFileError: ``stored`` is not a certificate (not an object, a bound
            that is not a number).
        CertificateMismatchError: a bound this law has is missing from ``stored``
            or differs from the weights'.
    """
    if not isinstance(stored, dict):
        raise ModelFileError(
            f"{where}: metadata 'certificate' must be a JSON object, got {stored!r:.80}"
        )
    fresh = certificate_of(law)
    for key in ("lipschitz_bound_pa", "loewner_bound_pa", "state_lipschitz_bound", "state_size"):
        if key in fresh and key not in stored:
            raise CertificateMismatchError(
                f"{where}: the stored certificate has no {key!r}, which a {law.kind} law's has"
            )
    a = metadata_number(stored, "lipschitz_bound_pa", where, ModelFileError)
    b = float(fresh["lipschitz_bound_pa"])
    if not np.isclose(a, b, rtol=CERT_RTOL, atol=0.0):
        raise CertificateMismatchError(
            f"{where}: stored Lipschitz bound {a:.9e} Pa but the weights give {b:.9e} Pa"
        )
    if "state_lipschitz_bound" in fresh:
        a = metadata_number(stored, "state_lipschitz_bound", where, ModelFileError)
        if not np.isclose(a, fresh["state_lipschitz_bound"]):
            raise CertificateMismatchError(
                f"{where}: stored state Lipschitz bound {a} does not match the weights "
                f"({fresh['state_lipschitz_bound']})"
            )
        if stored["state_size"] != fresh["state_size"]:
            raise CertificateMismatchError(
                f"{where}: stored state size {stored['state_size']!r:.40} but the law has "
                f"{fresh['state_size']} state entries per point"
            )
    if "loewner_bound_pa" in fresh:
        try:
            A = np.asarray(stored["loewner_bound_pa"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ModelFileError(
                f"{where}: metadata 'loewner_bound_pa' must be a matrix of numbers"
            ) from None
        B = np.asarray(fresh["loewner_bound_pa"])
        if A.shape != B.shape or not np.allclose(
            A, B, rtol=CERT_RTOL, atol=CERT_RTOL * np.abs(B).max()
        ):
            raise CertificateMismatchError(
                f"{where}: stored Loewner bound does not match the weights"
            )
    return fresh
