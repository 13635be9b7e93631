"""The one way a command-line or config ``device`` name becomes a torch device."""

from __future__ import annotations

import torch

DEVICE_NAMES = ("auto", "cpu", "cuda")


def check_device_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is one of :data:`DEVICE_NAMES` (CUDA not probed)."""
    if name not in DEVICE_NAMES:
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without CUDA is an error."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(name)
