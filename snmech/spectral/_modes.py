"""Evaluate a module in eval mode and give every submodule its own flag back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode (parametrizations stop updating their buffers).

    On exit each submodule gets back its own ``training`` flag, so a network
    with, say, a frozen BatchNorm inside a training model comes back as it was.
    """
    flags = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, training in flags.items():
            m.training = training
