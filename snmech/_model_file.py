"""The one ``.safetensors`` layout every snmech model file uses: weights plus JSON metadata.

Metadata key ``"snmech"`` holds the JSON; writing is atomic (a temporary file
renamed into place), reading never unpickles and names the problem of a bad
file. What the JSON holds and how the model is rebuilt is each caller's own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file


def write_model_file(
    path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` and ``meta`` to ``path`` atomically; never a half-written file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    contiguous = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(contiguous, str(tmp), metadata={"snmech": json.dumps(meta)})
    tmp.replace(p)
    return p


def read_model_metadata(
    path: str | Path, *, what: str, fmt: str, error: type[Exception]
) -> dict[str, Any]:
    """The metadata JSON of a model file of format ``fmt`` (``what``: "law", "classifier").

    Raises:
        FileNotFoundError: no such file.
        error: not a safetensors file, no or corrupt snmech metadata, another format.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} file {p} does not exist")
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get("snmech")
    except (SafetensorError, OSError, ValueError) as exc:
        raise error(f"{p}: not a readable safetensors file ({exc})") from None
    if raw is None:
        raise error(f"{p}: no snmech metadata; not an snmech {what} file")
    try:
        meta: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise error(f"{p}: corrupt metadata JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise error(f"{p}: metadata is a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != fmt:
        raise error(f"{p}: format {meta.get('format')!r}, this snmech reads {fmt!r}")
    return meta


def metadata_number(node: Any, key: str, where: str, error: type[Exception]) -> float:
    """``node[key]`` as a finite float; ``error`` names ``key`` when it is not one."""
    value = node.get(key) if isinstance(node, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"{where}: metadata {key!r} must be a finite number, got {value!r:.80}")
    return float(value)


def is_count(value: Any, least: int = 1) -> bool:
    """Whether a metadata value is a whole number ``>= least`` (JSON ``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def read_checkpoint(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """A training checkpoint written with ``torch.save``, loaded without unpickling code.

    Raises:
        ValueError: the file is cut short, corrupt or not a checkpoint dictionary;
            the message names it and what to do.
    """
    try:
        state = torch.load(path, weights_only=True, **kwargs)
    except FileNotFoundError:
        raise
    except Exception as exc:  # the weights-only unpickler fails on junk in many ways
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"{path}: cannot read the checkpoint ({first}); delete it to start afresh"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not an snmech checkpoint (holds a {type(state).__name__})")
    return state
