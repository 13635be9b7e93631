"""``SpectralRNNCell``: one step of a recurrent net whose recurrent matrix has bounded spectrum."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.rnn._activations import make_activation
from snmech.rnn._bounded import bound_singular_values, check_interval


def _initial_singular_value(gamma_min: float, gamma_max: float) -> float:
    # As close to 1 (perfect memory) as the interval allows, but off its edges so
    # that sigmoid(r) still has a gradient.
    if gamma_min == gamma_max:
        return gamma_min
    p = (min(max(1.0, gamma_min), gamma_max) - gamma_min) / (gamma_max - gamma_min)
    return gamma_min + (gamma_max - gamma_min) * min(max(p, 0.05), 0.95)


class SpectralRNNCell(nn.Module):
    r"""One recurrent step with every singular value of ``W_hh`` in ``[gamma_min, gamma_max]``.

    .. math::
        c = \phi(W_{hh} h + W_{ih} x + b), \qquad
        h' = c \;\text{(plain)}, \quad h' = (1 - g) \odot h + g \odot c \;\text{(gated)}

    with ``g = sigmoid(W_g x + b_g)`` an input-driven gate. ``phi`` is 1-Lipschitz
    (modReLU with ``b <= 0``, GroupSort, tanh), so the plain step is
    ``gamma_max``-Lipschitz in ``h`` (non-expansive for ``gamma_max <= 1``). The
    gated step mixes ``h`` and ``c`` unit by unit, and convexity of the square gives

    .. math:: \|\partial h'/\partial h\|_2 \le
        \sqrt{\max_i (1 - g_i) + \gamma_{max}^2 \max_i g_i} \le \sqrt{1 + \gamma_{max}^2},

    which is at most ``max(1, gamma_max)`` when all units share one gate value. ``W_hh``
    starts orthogonal (Haar-random) with all singular values at the point of the
    interval nearest 1 (kept 5 % off its edges).

    Args:
        input_size: features per time step.
        hidden_size: state size.
        gamma_min: lower bound on the singular values of ``W_hh`` (> 0).
        gamma_max: upper bound (>= ``gamma_min``).
        activation: ``"modrelu"`` (default), ``"groupsort"`` or ``"tanh"``.
        gated: add the input gate ``g``.
        gate_bias: initial ``b_g``; -3 keeps ~95 % of the state per step at start.
        device: where the parameters live.
        dtype: their dtype.

    Raises:
        ValueError: invalid sizes, interval or activation.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        gamma_min: float = 1.0,
        gamma_max: float = 1.0,
        activation: str = "modrelu",
        gated: bool = False,
        gate_bias: float = -3.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, n in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n!r}")
        check_interval(gamma_min, gamma_max)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.gated = gated
        self.input = nn.Linear(input_size, hidden_size, device=device, dtype=dtype)
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False, device=device, dtype=dtype)
        with torch.no_grad():
            nn.init.orthogonal_(self.recurrent.weight)
            self.recurrent.weight.mul_(_initial_singular_value(gamma_min, gamma_max))
            bound = 1.0 / math.sqrt(input_size)
            nn.init.uniform_(self.input.weight, -bound, bound)
            nn.init.zeros_(self.input.bias)
        bound_singular_values(self.recurrent, "weight", gamma_min, gamma_max)
        self.activation = make_activation(activation, hidden_size)
        self.activation_name = activation
        self.gate: nn.Linear | None = None
        if gated:
            self.gate = nn.Linear(input_size, hidden_size, device=device, dtype=dtype)
            with torch.no_grad():
                self.gate.bias.fill_(gate_bias)
        self.gamma_min = float(gamma_min)
        self.gamma_max = float(gamma_max)

    @property
    def weight_hh(self) -> torch.Tensor:
        """The constrained recurrent matrix, ``(hidden_size, hidden_size)``."""
        return self.recurrent.weight

    def recurrent_parameters(self) -> list[nn.Parameter]:
        """The raw parameters of ``W_hh`` (skew generators, singular-value logits).

        Published orthogonal RNNs train these with a smaller learning rate.
        """
        return list(self.recurrent.parameters())

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        """``W_ih x + b`` (and the gate's pre-activation), for ``x`` of shape ``(..., input_size)``.

        Returns ``(..., hidden_size)``, or ``(..., 2 * hidden_size)`` when gated.
        """
        z: torch.Tensor = self.input(x)
        if self.gate is not None:
            z = torch.cat([z, self.gate(x)], dim=-1)
        return z

    def step(self, xp: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
        """One step from a projected input ``xp`` (:meth:`project_input`) and ``h`` ``(B, H)``.

        No validation: this is the inner loop of :class:`~snmech.rnn.SpectralRNN`.
        """
        if self.gate is None:
            out: torch.Tensor = self.activation(xp + h @ w_hh.t())
            return out
        z, g = xp[:, : self.hidden_size], torch.sigmoid(xp[:, self.hidden_size :])
        candidate: torch.Tensor = self.activation(z + h @ w_hh.t())
        return h + g * (candidate - h)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Advance ``h`` ``(B, hidden_size)`` (zeros if ``None``) by ``x`` ``(B, input_size)``.

        Raises:
            ValueError: wrong shapes or non-finite input.
        """
        _check_features(x, self.input_size, "input")
        if x.dim() != 2:
            raise ValueError(f"cell input must be (batch, {self.input_size}), got {tuple(x.shape)}")
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        elif tuple(h.shape) != (x.shape[0], self.hidden_size):
            raise ValueError(
                f"hidden state must be ({x.shape[0]}, {self.hidden_size}), got {tuple(h.shape)}"
            )
        with parametrize.cached():
            return self.step(self.project_input(x), h, self.weight_hh)

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"{self.input_size}, {self.hidden_size}, gamma_min={self.gamma_min}, "
            f"gamma_max={self.gamma_max}, activation={self.activation_name!r}, gated={self.gated}"
        )


def _check_features(x: torch.Tensor, size: int, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != size:
        raise ValueError(f"{what} must have {size} features in its last dim, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} contains NaN or inf")
