"""Versions and capabilities of the running environment (``snmech info``)."""

from __future__ import annotations

import importlib.util
import os
import platform


def environment_info() -> dict[str, str]:
    """Collect versions of snmech and its stack without importing dolfinx eagerly.

    Returns:
        An ordered mapping of human-readable keys to values. Missing optional
        pieces (dolfinx, CUDA) are reported as such, never raised.
    """
    import torch

    import snmech

    info: dict[str, str] = {
        "snmech": snmech.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
        "cpu count": str(os.cpu_count()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
    }
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        info["cuda"] = f"available ({names}; CUDA {torch.version.cuda})"
    else:
        info["cuda"] = f"not available (torch built with CUDA {torch.version.cuda})"

    if importlib.util.find_spec("dolfinx_solver") is not None or (
        importlib.util.find_spec("dolfinx") is not None
    ):
        try:
            from snmech.fem._stack import stack_versions

            info.update(stack_versions())
        except ImportError as exc:
            info["dolfinx"] = f"present but failed to import: {exc}"
    else:
        info["dolfinx"] = "not installed (pip install 'snmech[fem]' for the FEM stack)"
    return info
