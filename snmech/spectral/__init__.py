"""The normalization core of snmech.

Power iteration, exact and certified operator norms, the ``spectral_norm``
parametrization, 1-Lipschitz layers (GroupSort, MaxMin, the convex potential
layer), whole-network certificates and empirical lower bounds.

Typical use::

    net = nn.Sequential(spectral_norm(nn.Linear(6, 64)), nn.Tanh(),
                        spectral_norm(nn.Linear(64, 6)))
    ...train...
    finalize(net)                  # exact norms, plain weights
    cert = lipschitz_bound(net)    # certified: cert.value >= Lip(net)
"""

from snmech.spectral._norms import operator_norm
from snmech.spectral._power import power_iteration
from snmech.spectral.certificate import Certificate, LayerFactor, lipschitz_bound
from snmech.spectral.convex_potential import ConvexPotentialLayer, ConvexPotentialStack
from snmech.spectral.finalize import finalize
from snmech.spectral.layers import GroupSort, MaxMin, Residual
from snmech.spectral.lower_bound import lipschitz_lower_bound
from snmech.spectral.parametrizations import (
    spectral_norm,
    spectral_parametrizations,
    sync_bound_,
    sync_exact_,
)
from snmech.spectral.penalty import layer_norms, spectral_penalty

__all__ = [
    "Certificate",
    "ConvexPotentialLayer",
    "ConvexPotentialStack",
    "GroupSort",
    "LayerFactor",
    "MaxMin",
    "Residual",
    "finalize",
    "layer_norms",
    "lipschitz_bound",
    "lipschitz_lower_bound",
    "operator_norm",
    "power_iteration",
    "spectral_norm",
    "spectral_parametrizations",
    "sync_bound_",
    "sync_exact_",
    "spectral_penalty",
]
