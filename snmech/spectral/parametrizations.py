"""``spectral_norm``: the normalization as a ``torch.nn.utils.parametrize`` parametrization.

Note [Estimate, not certificate]
    During training the weight is divided by a power-iteration estimate
    ``sigma_hat = <u, W v> <= ||W||_2``: cheap (one matrix-vector product per
    step) but a lower bound, so the normalized weight can sit slightly above its
    target. :func:`snmech.spectral.finalize` removes that gap at export and
    :func:`snmech.spectral.lipschitz_bound` certifies the result independently.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from snmech.spectral._conv import ConvGeometry, conv_adjoint, conv_apply
from snmech.spectral._power import normalize, power_iteration, rayleigh_sigma

Mode = Literal["hard", "soft"]
_MODES = ("hard", "soft")


class _SpectralNorm(nn.Module):
    """Maps a raw weight to ``W * target / sigma_hat`` ("hard") or ``W / max(1, sigma_hat/target)``.

    For ``nn.Linear`` the operator is the matrix; for ``nn.ConvNd`` it is the
    convolution on ``input_shape`` (conv forward, conv_transpose adjoint), so
    ``sigma_hat`` estimates the true operator norm, not that of the reshaped kernel.

    Buffers ``_u`` (output space) and ``_v`` (input space) persist across steps,
    are saved in ``state_dict``, and are updated only in training mode.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        *,
        target: float,
        n_power_iterations: int,
        mode: Mode,
        eps: float,
        conv: nn.Module | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.target = float(target)
        self.n_power_iterations = int(n_power_iterations)
        self.mode: Mode = mode
        self.eps = float(eps)
        # Only the bound methods of the conv are needed; keep it out of the module tree.
        self._conv: tuple[nn.Module, ...] = (conv,) if conv is not None else ()
        self.input_shape = input_shape  # (C, *spatial) for convolutions
        with torch.no_grad():
            if conv is None:
                out_shape: tuple[int, ...] = (weight.shape[0],)
                in_shape: tuple[int, ...] = (weight.flatten(1).shape[1],)
            else:
                assert input_shape is not None
                in_shape = (1, *input_shape)
                out_shape = tuple(conv_apply(conv, weight, weight.new_zeros(in_shape)).shape)
            u = normalize(weight.new_empty(out_shape).normal_(0, 1), self.eps)
            v = normalize(weight.new_empty(in_shape).normal_(0, 1), self.eps)
            self.register_buffer("_u", u)
            self.register_buffer("_v", v)
            # start from converged vectors, as torch does (15 steps)
            self._update(weight, 15)

    def _apply_op(self, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self._conv:
            return conv_apply(self._conv[0], weight, x)
        return torch.mv(weight.flatten(1), x)

    def _adjoint_op(self, weight: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._conv:
            assert self.input_shape is not None
            return conv_adjoint(self._conv[0], weight, y, self.input_shape)
        return torch.mv(weight.flatten(1).t(), y)

    @torch.no_grad()
    def _update(self, weight: torch.Tensor, n: int) -> None:
        w = weight.detach()
        if not self._conv:
            # Dense fast path, in place (as torch's _power_method): this runs every step.
            mat = w.flatten(1)
            for _ in range(n):
                torch.nn.functional.normalize(
                    torch.mv(mat.t(), self._u), dim=0, eps=self.eps, out=self._v
                )
                torch.nn.functional.normalize(
                    torch.mv(mat, self._v), dim=0, eps=self.eps, out=self._u
                )
            return
        u, v = power_iteration(
            lambda x: self._apply_op(w, x),
            lambda y: self._adjoint_op(w, y),
            self._u,
            self._v,
            n,
            self.eps,
        )
        self._u.copy_(u)
        self._v.copy_(v)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.training:
            self._update(weight, self.n_power_iterations)
        # Clone u and v: they are updated in place on the next call, which would
        # invalidate this step's autograd graph (torch's _SpectralNorm does the same).
        u = self._u.clone(memory_format=torch.contiguous_format)
        v = self._v.clone(memory_format=torch.contiguous_format)
        if self._conv:
            sigma = rayleigh_sigma(lambda x: self._apply_op(weight, x), u, v)
        else:
            sigma = torch.vdot(u, torch.mv(weight.flatten(1), v))
        if self.target != 1.0:
            sigma = sigma / self.target
        if self.mode == "hard":
            return weight / sigma
        return weight / torch.clamp(sigma, min=1.0)

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        # Assigning a weight stores it as the raw tensor: the normalization is
        # scale-invariant ("hard") or a no-op below target ("soft").
        return value

    def extra_repr(self) -> str:
        return (
            f"target={self.target}, mode={self.mode!r}, "
            f"n_power_iterations={self.n_power_iterations}"
            + (f", input_shape={self.input_shape}" if self.input_shape else "")
        )


def spectral_norm(
    module: nn.Module,
    name: str = "weight",
    target: float = 1.0,
    n_power_iterations: int = 1,
    mode: Mode = "hard",
    *,
    input_shape: tuple[int, ...] | torch.Size | None = None,
    eps: float = 1e-12,
) -> nn.Module:
    r"""Normalize the spectral norm of ``module.<name>`` to ``target``; returns ``module``.

    .. math::
        W_{hard} = \frac{\tau}{\hat\sigma} W, \qquad
        W_{soft} = \frac{W}{\max(1, \hat\sigma / \tau)}

    with ``sigma_hat`` the power-iteration estimate of the *operator* norm (for a
    convolution: on ``input_shape``; see Note [Estimate, not certificate]).

    Args:
        module: ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d``.
        name: the parameter to normalize.
        target: the spectral norm to aim for (> 0).
        n_power_iterations: power-iteration steps per training forward (>= 1).
        mode: ``"hard"`` (always scale to ``target``) or ``"soft"`` (only shrink).
        input_shape: required for convolutions: ``(C, n_1..n_d)`` or ``(n_1..n_d)``.
        eps: guards divisions in the normalization of the power-iteration vectors.

    Returns:
        ``module``, with the parametrization registered.

    Raises:
        TypeError: unsupported module type.
        ValueError: invalid ``target``, ``n_power_iterations``, ``mode``, ``name``
            or ``input_shape``.

    Example:
        >>> import torch
        >>> layer = spectral_norm(torch.nn.Linear(20, 40), target=2.0)
        >>> layer.eval()(torch.zeros(1, 20)).shape
        torch.Size([1, 40])
    """
    if not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
        raise TypeError(
            f"spectral_norm supports nn.Linear and nn.Conv1d/2d/3d, got {type(module).__name__}"
        )
    if not (isinstance(target, int | float) and target > 0 and target != float("inf")):
        raise ValueError(f"target must be a positive finite number, got {target!r}")
    if int(n_power_iterations) != n_power_iterations or n_power_iterations < 1:
        raise ValueError(f"n_power_iterations must be an integer >= 1, got {n_power_iterations!r}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        raise ValueError(f"{type(module).__name__} has no matrix-like parameter {name!r}")
    conv: nn.Module | None = None
    shape: tuple[int, ...] | None = None
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        if input_shape is None:
            raise ValueError(
                f"spectral_norm of {type(module).__name__} needs input_shape=(C, *spatial): "
                "the operator norm of a convolution depends on the input size"
            )
        geom = ConvGeometry.of(module, input_shape)  # validates the shape
        conv, shape = module, (module.in_channels, *geom.spatial)
    parametrization = _SpectralNorm(
        weight.detach(),
        target=target,
        n_power_iterations=n_power_iterations,
        mode=mode,
        eps=eps,
        conv=conv,
        input_shape=shape,
    )
    parametrize.register_parametrization(module, name, parametrization)
    return module


@torch.no_grad()
def sync_exact_(module: nn.Module, name: str = "weight") -> float:
    """Set a dense layer's power-iteration state to the exact top singular pair (in place).

    In training mode a normalized layer divides by a one-step estimate
    ``u^T W v <= ||W||``, so its weight can sit above the target between steps
    (in a GAN critic: products of layer norms up to 1.2-1.6). After this call
    the next forward divides by the exact ``||W||`` (a float64 eigensolve, stored in
    the buffers' dtype), so the applied weight has norm ``target`` up to that
    rounding; call it after every optimizer step where the bound must hold at
    every step, not only after :func:`~snmech.spectral.finalize`.

    The pair comes from a float64 symmetric eigensolve of the smaller Gram
    matrix (``W^T W`` or ``W W^T``), about half the cost of an SVD: the
    eigensolver is backward stable, so the Rayleigh quotient of its top
    vector, which is what the forward divides by, is within float64 rounding
    of ``||W||^2`` even when the top singular values are nearly equal.

    Args:
        module: an ``nn.Linear`` with :func:`spectral_norm` on ``name``.
        name: the parametrized tensor.

    Returns:
        The exact norm of the raw weight.

    Raises:
        ValueError: no spectral norm on ``module.<name>``, or a convolution
            (whose operator norm is certified by the FFT bound instead).
    """
    params = spectral_parametrizations(module, name)
    if not params or params[0]._conv:
        raise ValueError(
            f"sync_exact_ needs a dense layer with spectral_norm on {name!r}, "
            f"got {type(module).__name__}"
        )
    p = params[0]
    raw = getattr(module.parametrizations, name).original.detach()  # type: ignore[union-attr]
    mat = raw.to(torch.float64).flatten(1)
    tall = mat.shape[0] >= mat.shape[1]
    _, vecs = torch.linalg.eigh(mat.t() @ mat if tall else mat @ mat.t())
    top = vecs[:, -1]  # eigenvalues ascend
    # the other vector of the pair, and sigma, from the matrix itself (not sqrt(lambda))
    other = mat @ top if tall else mat.t() @ top
    sigma = torch.linalg.vector_norm(other)
    other = other / torch.clamp(sigma, min=p.eps)
    u, v = (other, top) if tall else (top, other)
    sign = 1.0 if float(torch.dot(p._u.double(), u)) >= 0 else -1.0
    p._u.copy_(sign * u)
    p._v.copy_(sign * v)
    return float(sigma)


def spectral_parametrizations(module: nn.Module, name: str = "weight") -> list[_SpectralNorm]:
    """The spectral-norm parametrizations registered on ``module.<name>``, in order."""
    if not parametrize.is_parametrized(module, name):
        return []
    chain = module.parametrizations[name]  # type: ignore[index]
    return [p for p in chain if isinstance(p, _SpectralNorm)]
