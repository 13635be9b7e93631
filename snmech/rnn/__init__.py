"""Recurrent networks with long memory, built on the spectral core.

The recurrent matrix keeps *every* singular value in ``[gamma_min, gamma_max]``
(orthogonal for ``gamma_min == gamma_max == 1``), through a
``torch.nn.utils.parametrize`` parametrization like :mod:`snmech.spectral`'s.

Typical use::

    rnn = SpectralRNN(2, 128)                  # orthogonal W_hh, modReLU
    out, h = rnn(x, lengths=lengths)           # x: (B, T, 2)
    norm = hidden_jacobian_norm(rnn, x[:1])    # ||dh_T/dh_0||_2
"""

from snmech.rnn._activations import ModReLU
from snmech.rnn._bounded import bound_singular_values, singular_value_bounds
from snmech.rnn.cell import SpectralRNNCell
from snmech.rnn.diagnostics import hidden_jacobian_norm, loss_gradient_per_step
from snmech.rnn.sequence import SpectralRNN
from snmech.rnn.tasks import adding_problem, copy_task

__all__ = [
    "ModReLU",
    "SpectralRNN",
    "SpectralRNNCell",
    "adding_problem",
    "bound_singular_values",
    "copy_task",
    "hidden_jacobian_norm",
    "loss_gradient_per_step",
    "singular_value_bounds",
]
