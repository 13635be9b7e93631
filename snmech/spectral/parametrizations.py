"""``spectral_norm``: the normalization as a ``torch.nn.utils.parametrize`` parametrization.

Note [Estimate, not certificate]
    During training the weight is divided by a power-iteration estimate
    ``sigma_hat = <u, W v> <= ||W||_2``: cheap (one matrix-vector product per
    step) but a lower bound, so the normalized weight can sit slightly above its
    target. :func:`snmech.spectral.finalize` removes that gap at export and
    :func:`snmech.spectral.lipschitz_bound` certifies the result independently.
"""

from __future__ import annotations

import math
from typing import Any, Literal

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
    are saved in ``state_dict``, and are updated only in training mode. The
    scalar buffer ``_scale`` (1 unless :func:`sync_bound_` set it) multiplies
    the estimate: ``sigma_hat = _scale * u^T W v``; :func:`sync_bound_` adds
    a ``_block`` buffer.
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
            self.register_buffer("_scale", torch.ones((), dtype=weight.dtype))
            # start from converged vectors, as torch does (15 steps)
            self._update(weight, 15)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # files written before ``_scale`` existed divided by u^T W v alone
        state_dict.setdefault(prefix + "_scale", torch.ones_like(self._scale))
        # sync_bound_'s warm block exists only once it ran: follow the file
        block = state_dict.get(prefix + "_block")
        if block is not None:
            self.register_buffer("_block", torch.empty_like(block, device=self._u.device))
        elif "_block" in self._buffers:
            del self._buffers["_block"]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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
        sigma = sigma * self._scale
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
    the next forward divides by the exact ``||W||`` (stored in the buffers'
    dtype), so the applied weight has norm ``target`` up to that rounding; call
    it after every optimizer step where the bound must hold at every step, not
    only after :func:`~snmech.spectral.finalize`. :func:`sync_bound_` does the
    same job for less.

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
    p, mat, tall = _dense_spectral_norm(module, name, "sync_exact_")
    return _sync_exact(p, mat, tall, _gram(mat, tall))


@torch.no_grad()
def sync_bound_(
    module: nn.Module, name: str = "weight", *, rtol: float = 1e-3, block: int = 16
) -> float:
    """Make a dense layer divide by a *proven* upper bound on ``||W||`` (in place).

    The cheap alternative to :func:`sync_exact_` for the same job: a weight that
    never exceeds its target, at every training step. Normalized weights have
    a flat top spectrum (the normalization pushes the largest singular values
    down together), so one vector cannot follow the top between optimizer
    steps; a warm block of ``block`` vectors can. One subspace step on the
    smaller float64 Gram matrix ``G`` and a Rayleigh-Ritz solve give
    ``theta <= lambda_max(G) = ||W||^2``; a Cholesky factorization of
    ``s I - G`` succeeds only if ``s >= lambda_max(G)``, so trying ``s =
    theta (1 + rtol / 10)``, then ``theta (1 + rtol)``, proves ``sqrt(s) >=
    ||W||`` up to float64 rounding (relative ``~n * 1e-16``, far below
    ``rtol``; the GAN critic's 1e-6 target margin covers it). The layer's
    ``(u, v)`` become the top Ritz pair and ``_scale`` is set to ``sqrt(s) /
    ||W v||``, so the next forward divides by at least ``sqrt(s)`` (a
    training forward's own power step can only raise ``u^T W v``): the
    applied weight's norm lies in ``[target / sqrt(1 + rtol), target]``. If
    both factorizations fail, or the layer is small (the smaller side at most
    ``2 * block``) or has no warm block yet, it falls back to
    :func:`sync_exact_`, which also refreshes the block. For a 128x128 weight
    this costs about a quarter of the eigensolve. The block is a buffer
    (saved in ``state_dict``, so a resumed run continues exactly).

    Args:
        module: an ``nn.Linear`` with :func:`spectral_norm` on ``name``.
        name: the parametrized tensor.
        rtol: the largest accepted relative gap of the squared bound, in ``[1e-7, 0.1]``.
        block: warm subspace size (>= 1).

    Returns:
        The proven upper bound on the raw weight's norm (its exact norm after a fallback).

    Raises:
        ValueError: no spectral norm on a dense ``module.<name>``, or ``rtol``
            or ``block`` out of range.
    """
    if not 1e-7 <= rtol <= 0.1:
        raise ValueError(f"rtol must lie in [1e-7, 0.1], got {rtol}")
    if int(block) != block or block < 1:
        raise ValueError(f"block must be an integer >= 1, got {block!r}")
    p, mat, tall = _dense_spectral_norm(module, name, "sync_bound_")
    gram = _gram(mat, tall)
    n = gram.shape[0]
    if n <= 2 * block:
        return _sync_exact(p, mat, tall, gram)
    if "_block" not in p._buffers or p._block.shape != (n, block):
        p.register_buffer("_block", gram.new_zeros(n, block))
        return _sync_exact(p, mat, tall, gram)
    q, _ = torch.linalg.qr(gram @ p._block.to(gram))
    ritz, vecs = torch.linalg.eigh(q.t() @ gram @ q)
    q = q @ vecs  # Ritz vectors, ascending
    top = q[:, -1]
    theta = float(ritz[-1])
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    for gap in (rtol / 10, rtol):
        shift = theta * (1.0 + gap)
        if shift > 0 and int(torch.linalg.cholesky_ex(shift * eye - gram).info) == 0:
            break
    else:
        return _sync_exact(p, mat, tall, gram)
    p._block.copy_(q.to(p._block))
    return _set_pair(p, mat, tall, top, math.sqrt(shift))


def _dense_spectral_norm(
    module: nn.Module, name: str, caller: str
) -> tuple[_SpectralNorm, torch.Tensor, bool]:
    params = spectral_parametrizations(module, name)
    if not params or params[0]._conv:
        raise ValueError(
            f"{caller} needs a dense layer with spectral_norm on {name!r}, "
            f"got {type(module).__name__}"
        )
    raw = getattr(module.parametrizations, name).original.detach()  # type: ignore[union-attr]
    mat = raw.to(torch.float64).flatten(1)
    return params[0], mat, mat.shape[0] >= mat.shape[1]


def _gram(mat: torch.Tensor, tall: bool) -> torch.Tensor:
    return mat.t() @ mat if tall else mat @ mat.t()


def _sync_exact(p: _SpectralNorm, mat: torch.Tensor, tall: bool, gram: torch.Tensor) -> float:
    """:func:`sync_exact_` once the layer is checked and its Gram matrix formed."""
    _, vecs = torch.linalg.eigh(gram)  # eigenvalues ascend
    if "_block" in p._buffers:  # keep sync_bound_'s warm subspace current
        p._block.copy_(vecs[:, -p._block.shape[1] :].to(p._block))
    return _set_pair(p, mat, tall, vecs[:, -1], None)


def _set_pair(
    p: _SpectralNorm, mat: torch.Tensor, tall: bool, top: torch.Tensor, bound: float | None
) -> float:
    """Store the pair of the Gram eigenvector ``top``; scale the estimate up to ``bound``.

    ``bound=None``: exact, the estimate itself. Returns the norm divided by.
    """
    # the other vector of the pair, and sigma, from the matrix itself (not sqrt(lambda))
    other = mat @ top if tall else mat.t() @ top
    sigma = torch.linalg.vector_norm(other)
    other = other / torch.clamp(sigma, min=p.eps)
    u, v = (other, top) if tall else (top, other)
    sign = 1.0 if float(torch.dot(p._u.double(), u)) >= 0 else -1.0
    p._u.copy_(sign * u)
    p._v.copy_(sign * v)
    if bound is None:
        p._scale.fill_(1.0)
        return float(sigma)
    p._scale.fill_(bound / float(sigma))
    return bound


def spectral_parametrizations(module: nn.Module, name: str = "weight") -> list[_SpectralNorm]:
    """The spectral-norm parametrizations registered on ``module.<name>``, in order."""
    if not parametrize.is_parametrized(module, name):
        return []
    chain = module.parametrizations[name]  # type: ignore[index]
    return [p for p in chain if isinstance(p, _SpectralNorm)]
