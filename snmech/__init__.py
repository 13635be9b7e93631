r"""snmech: spectrally normalized neural networks with certified Lipschitz bounds.

The package is layered so that data flows one way::

    spectral  ->  material  ->  fem
        \->  gan, rnn, robust

``import snmech``, :mod:`snmech.spectral` and :mod:`snmech.material` never import
dolfinx; only :mod:`snmech.fem` does.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("snmech")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
