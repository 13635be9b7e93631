r"""The convex potential layer: a 1-Lipschitz residual layer (Meunier et al., ICML 2022).

.. math:: f(x) = x - \frac{2}{\|W\|_2^2}\, W^\top \mathrm{ReLU}(W x + b)

Note [Convex potential layer]
    ``f`` is a gradient step on the convex potential
    ``psi(x) = 1/2 ||ReLU(W x + b)||^2`` with step ``h = 2 / ||W||^2``. Its
    Jacobian ``I - h W^T D W`` (``D`` diagonal, entries in ``[0, 1]``, the ReLU
    slopes) is symmetric with eigenvalues in ``[1 - h ||W||^2, 1]``, so

    .. math:: \mathrm{Lip}(f) \le \max(1,\ h \|W\|_2^2 - 1),

    exactly 1 when ``h <= 2 / ||W||^2``. Unlike an orthogonal layer it needs
    no orthogonalization, only ``||W||``; unlike a spectrally normalized
    ``Linear`` it keeps the identity path, so deep stacks keep the gradient
    (on digits, 4-16 such layers train with the recipe under which MaxMin MLPs
    with two to four Björck-orthogonal hidden layers reached 17-74 % clean).

Note [Exact step in eval mode]
    Training divides by a warm power-iteration estimate of ``||W||^2`` (one step
    per forward, differentiated through like ``spectral_norm``), a lower bound
    that may put ``h`` slightly above ``2 / ||W||^2``. In eval mode the layer
    divides by the float64 norm instead, inflated by Note [Rounding slack] and
    cached until the weight changes (its version counter), so an eval-mode
    layer is certified with factor exactly 1, its export (a copy) computes the
    same bits, and a model loaded from a file recomputes the same step from
    its weights. :meth:`ConvexPotentialLayer.lipschitz_factor` does not trust
    that: it recomputes ``max(1, h ||W||^2 - 1)`` from the weight and the step
    the eval forward applies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from snmech.spectral._norms import ROUNDING_RTOL, operator_norm
from snmech.spectral._power import normalize

_Key = tuple[int, int, int, torch.dtype, torch.device]
_MIN_SQ_NORM = 1e-12  # ||W v||^2 is clamped to this (a zero weight), passing no gradient


def _weight_key(w: torch.Tensor) -> _Key:
    """What identifies a weight's values: a changed key means a stale cached step."""
    return (id(w), w._version, w.data_ptr(), w.dtype, w.device)


def _rounded_step(sq_norm: float, dtype: torch.dtype) -> float:
    """``2 / sq_norm`` in ``dtype``, rounded down so ``h s <= 2`` holds for the stored step."""
    exact = 2.0 / sq_norm
    step = torch.tensor(exact, dtype=dtype)
    if float(step) > exact:
        step = torch.nextafter(step, torch.zeros_like(step))
    return float(step)


def _check_power_iterations(n_power_iterations: int) -> None:
    if int(n_power_iterations) != n_power_iterations or n_power_iterations < 1:
        raise ValueError(f"n_power_iterations must be an integer >= 1, got {n_power_iterations}")


def _potential_step(
    flat: torch.Tensor, w: torch.Tensor, b: torch.Tensor, scaled_w: torch.Tensor
) -> torch.Tensor:
    """``x - ReLU(x W^T + b) (h W)`` for rows ``x`` of ``flat``; ``scaled_w = h W``.

    The one place the layer's formula is written, so a stack and its layers run
    the same kernels (and, in eval mode, give the same bits).
    """
    return torch.addmm(flat, torch.relu(F.linear(flat, w, b)), scaled_w, alpha=-1.0)


def _factor(step: float, sq_norm: float) -> float:
    """``max(1, h s - 1)`` of one layer (Note [Convex potential layer]), with rounding slack."""
    return max(1.0, step * sq_norm - 1.0) * (1.0 + ROUNDING_RTOL)


class ConvexPotentialLayer(nn.Module):
    """``x - 2 / ||W||^2 W^T ReLU(W x + b)``, 1-Lipschitz (Note [Convex potential layer]).

    Args:
        features: size of the input and output (last dimension).
        hidden: rows of ``W`` (the width of the ReLU layer inside).
        n_power_iterations: power-iteration steps per training forward (>= 1).

    Shape:
        ``(..., features) -> (..., features)``.

    Attributes:
        weight: ``(hidden, features)``.
        bias: ``(hidden,)``.
    """

    _v: torch.Tensor  # the warm power-iteration vector (a buffer)

    def __init__(self, features: int, hidden: int, *, n_power_iterations: int = 1) -> None:
        super().__init__()
        if features < 1 or hidden < 1:
            raise ValueError(f"features and hidden must be >= 1, got {features}, {hidden}")
        _check_power_iterations(n_power_iterations)
        self.features = int(features)
        self.hidden = int(hidden)
        self.n_power_iterations = int(n_power_iterations)
        self.weight = nn.Parameter(torch.randn(hidden, features) / math.sqrt(features))
        self.bias = nn.Parameter(torch.zeros(hidden))
        # warm start of the power iteration: the top right singular vector at init
        top = torch.linalg.svd(self.weight.detach(), full_matrices=False).Vh[0]
        self.register_buffer("_v", top.contiguous())
        self._eval_key: _Key | None = None
        self._eval_step: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` ``(..., features)``."""
        if x.shape[-1] != self.features:
            raise ValueError(
                f"ConvexPotentialLayer expects inputs (..., {self.features}), got {tuple(x.shape)}"
            )
        step = self._training_step() if self.training else self._eval_scale()
        flat = x.reshape(-1, self.features)
        return _potential_step(flat, self.weight, self.bias, step * self.weight).reshape(x.shape)

    def _training_step(self) -> torch.Tensor:
        w = self.weight
        with torch.no_grad():
            v = self._v
            for _ in range(self.n_power_iterations):
                v = normalize(w.t() @ (w @ v))
            self._v.copy_(v)
        # ||W v||^2 with v fixed: the estimate of ||W||^2, differentiated through W
        wv = w @ v
        return 2.0 / torch.dot(wv, wv).clamp_min(_MIN_SQ_NORM)

    def eval_step(self) -> torch.Tensor:
        """The step ``h = 2 / s`` of the eval forward, ``s`` the certified ``||W||^2``.

        Computed in float64 (Note [Exact step in eval mode]), rounded down to the
        weight's dtype and cached until the weight changes; a 0-d tensor of the
        weight's dtype and device.

        Raises:
            ValueError: the weight is not finite.
        """
        w = self.weight
        return torch.tensor(self._eval_scale(), dtype=w.dtype, device=w.device)

    def _eval_scale(self) -> float:
        # A Python float: a cached tensor could be a functorch wrapper if first
        # computed under vmap/jacrev, which outlives the transform and breaks copies.
        w = self.weight
        key = _weight_key(w)
        if self._eval_step is None or self._eval_key != key:
            self._eval_step = _rounded_step(self.certified_sq_norm(), w.dtype)
            self._eval_key = key
        return self._eval_step

    def certified_sq_norm(self) -> float:
        """``||W||_2^2`` from :func:`snmech.spectral.operator_norm` (float64, with its slack).

        Raises:
            ValueError: the weight is not finite.
        """
        return operator_norm(self.weight) ** 2

    def lipschitz_factor(self, input_shape: tuple[int, ...] | None = None) -> float:
        """``max(1, h ||W||^2 - 1)``, ``h`` the eval-mode step (Note [Convex potential layer])."""
        return _factor(self._eval_scale(), self.certified_sq_norm())

    def extra_repr(self) -> str:  # noqa: D102
        return f"features={self.features}, hidden={self.hidden}"


def _training_steps(weight: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(depth,)`` steps ``2 / ||W_l v_l||^2`` and ``(depth, 1, hidden)`` rows ``(W_l v_l)^T``.

    ``||W_l v_l||^2`` with ``v_l`` fixed estimates ``||W_l||^2`` from below.
    """
    wv = torch.bmm(v[:, None, :], weight.mT)
    return 2.0 / wv.pow(2).sum(dim=(1, 2)).clamp_min(_MIN_SQ_NORM), wv


def _unfused_training_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """What :class:`_StackTraining` computes, one layer at a time under autograd."""
    scaled = weight * _training_steps(weight, v)[0][:, None, None]
    for w, b, hw in zip(weight.unbind(0), bias.unbind(0), scaled.unbind(0), strict=True):
        x = _potential_step(x, w, b, hw)
    return x


class _StackTraining(torch.autograd.Function):
    r"""The training forward of a :class:`ConvexPotentialStack` and its hand-written backward.

    Note [Fused stack backward]
        Autograd records about a dozen nodes per layer (the linear map, ReLU,
        the scaled weight, unbinding the stacked tensors) and runs each node's
        backward as separate small kernels; for 8 layers of 128 x 64 on a
        batch of 128 that bookkeeping costs more than the arithmetic, and more
        on some CPUs than others (on one AMD EPYC a training step of the
        digits model took 3.9x the plain MLP's). Here the forward keeps each
        layer's input ``x_l`` and activation ``a_l = ReLU(x_l W_l^T + b_l)`` in
        two stacked buffers, and the backward of ``y = x - a (h W)`` is, with
        ``g`` the gradient at the layer's output and ``q = (g (h W)^T) * [a > 0]``,

        .. math:: \partial x = g - q W, \quad
            \partial W = -q^\top x - h\, a^\top g
            + \Big(\sum W \odot a^\top g\Big) h^2\, (W v) v^\top,
            \quad \partial b = -\textstyle\sum_{rows} q

        (the last term of ``dW`` is the gradient through ``h = 2 / ||W v||^2``,
        ``v`` held fixed, as autograd differentiates the unfused form). The
        loop over layers is three kernels each way; the weight gradients of all
        layers are two batched products after it. It computes what autograd
        computes for the unfused layers, to rounding (checked against it and by
        ``gradcheck`` in float64), first order only.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        v: torch.Tensor,
    ) -> torch.Tensor:
        depth, hidden, features = weight.shape
        h, wv = _training_steps(weight, v)
        scaled = weight * h[:, None, None]
        inputs = x.new_empty((depth, len(x), features))
        acts = x.new_empty((depth, len(x), hidden))
        layer_in, layer_act = inputs.unbind(0), acts.unbind(0)
        layer_in[0].copy_(x)
        out = x
        layers = zip(weight.unbind(0), bias.unbind(0), scaled.unbind(0), strict=True)
        for i, (w, b, hw) in enumerate(layers):
            torch.addmm(b, layer_in[i], w.T, out=layer_act[i]).relu_()
            if i + 1 < depth:
                torch.addmm(layer_in[i], layer_act[i], hw, alpha=-1.0, out=layer_in[i + 1])
            else:
                out = torch.addmm(layer_in[i], layer_act[i], hw, alpha=-1.0)
        ctx.save_for_backward(weight, v, wv, h, scaled, inputs, acts)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, None]:
        weight, v, wv, h, scaled, inputs, acts = ctx.saved_tensors  # type: ignore[attr-defined]
        grads = torch.empty_like(inputs)  # grads[i]: the gradient at layer i's output
        masked = torch.empty_like(acts)  # masked[i]: q of layer i
        layer_grad, layer_q = grads.unbind(0), masked.unbind(0)
        layer_grad[-1].copy_(grad)
        layers = zip(weight.unbind(0), scaled.unbind(0), acts.unbind(0), strict=True)
        grad_x = None
        for i, (w, hw, a) in reversed(list(enumerate(layers))):
            g, q = layer_grad[i], layer_q[i]
            torch.ops.aten.threshold_backward.grad_input(torch.mm(g, hw.T), a, 0.0, grad_input=q)
            if i > 0:
                torch.addmm(g, q, w, alpha=-1.0, out=layer_grad[i - 1])
            elif ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
                grad_x = torch.addmm(g, q, w, alpha=-1.0)
        through_scale = torch.bmm(acts.mT, grads)  # a^T g per layer
        live = wv.pow(2).sum(dim=(1, 2)) > _MIN_SQ_NORM  # the clamp passes no gradient
        coeff = (weight * through_scale).sum(dim=(1, 2)) * h.square() * live
        grad_w = torch.baddbmm(through_scale * -h[:, None, None], masked.mT, inputs, alpha=-1.0)
        grad_w.baddbmm_(wv.mT * coeff[:, None, None], v[:, None, :])
        return grad_x, grad_w, -masked.sum(dim=1), None


class ConvexPotentialStack(nn.Module):
    """``depth`` convex potential layers applied in turn, their weights in one tensor.

    Computes what an ``nn.Sequential`` of ``depth`` :class:`ConvexPotentialLayer`
    with the same weights computes (Note [Stacked convex potential layers]).

    Args:
        features: size of the input and output (last dimension).
        hidden: rows of each layer's ``W``.
        depth: number of layers (>= 1).
        n_power_iterations: power-iteration steps per training forward (>= 1).

    Shape:
        ``(..., features) -> (..., features)``.

    Attributes:
        weight: ``(depth, hidden, features)``; ``weight[l]`` is layer ``l``'s ``W``.
        bias: ``(depth, hidden)``.
        fused: in training mode, run the layers as one autograd node with a
            hand-written backward (Note [Fused stack backward]); first-order
            gradients only. Set ``False`` for double backward (e.g. a gradient
            penalty through the stack); under ``torch.func.vmap`` the stack
            always takes the unfused path.

    Note [Stacked convex potential layers]
        A deep stack of small layers spends its training step on kernel
        launches, not arithmetic: the warm power iteration and the norm estimate
        of every layer are a dozen tiny kernels each, forward and backward.
        Stacking the weights turns them into one batched product for all layers,
        and the optimizer sees two tensors instead of ``2 depth``; on digits
        (8 x 128, batch 128, one CPU thread) a training step costs about a fifth
        less. Each layer's maths is unchanged: in training it divides by its own
        estimate, in eval mode by its own float64 norm (Note [Exact step in eval
        mode]), and :meth:`lipschitz_factor` is the product of the layers'.
    """

    _v: torch.Tensor  # (depth, features) warm power-iteration vectors (a buffer)

    def __init__(
        self, features: int, hidden: int, depth: int, *, n_power_iterations: int = 1
    ) -> None:
        super().__init__()
        if features < 1 or hidden < 1 or depth < 1:
            raise ValueError(
                f"features, hidden and depth must be >= 1, got {features}, {hidden}, {depth}"
            )
        _check_power_iterations(n_power_iterations)
        self.features = int(features)
        self.hidden = int(hidden)
        self.depth = int(depth)
        self.n_power_iterations = int(n_power_iterations)
        # drawn in the order (and so with the values) of `depth` single layers
        self.weight = nn.Parameter(torch.randn(depth, hidden, features) / math.sqrt(features))
        self.bias = nn.Parameter(torch.zeros(depth, hidden))
        top = torch.linalg.svd(self.weight.detach(), full_matrices=False).Vh[:, 0]
        self.register_buffer("_v", top.contiguous())
        self.fused = True
        self._eval_key: _Key | None = None
        self._eval_steps: list[float] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the ``depth`` layers to ``x`` ``(..., features)``."""
        if x.shape[-1] != self.features:
            raise ValueError(
                f"ConvexPotentialStack expects inputs (..., {self.features}), got {tuple(x.shape)}"
            )
        flat = x.reshape(-1, self.features)
        if self.training:
            v = self._power_step()
            if self.fused and torch._C._functorch.peek_interpreter_stack() is None:
                out: torch.Tensor = _StackTraining.apply(flat, self.weight, self.bias, v)
            else:  # autograd through every layer: vmap, double backward
                out = _unfused_training_forward(flat, self.weight, self.bias, v)
            return out.reshape(x.shape)
        steps = zip(self.weight.unbind(0), self.bias.unbind(0), self._eval_scales(), strict=True)
        for w, b, h in steps:
            flat = _potential_step(flat, w, b, h * w)
        return flat.reshape(x.shape)

    @torch.no_grad()
    def _power_step(self) -> torch.Tensor:
        """Advance the warm power iteration; ``(depth, features)`` vectors ``v_l``."""
        w, v = self.weight, self._v[:, None, :]
        for _ in range(self.n_power_iterations):
            # row vectors times matrices: batched matrix-vector products with the
            # vector on the right were 5x slower on one CPU
            v = torch.bmm(torch.bmm(v, w.mT), w)
            v = v / v.norm(dim=2, keepdim=True).clamp_min(1e-12)
        self._v.copy_(v[:, 0])
        # a copy: the fused backward keeps it, and the next forward updates the buffer
        return self._v.clone()

    def _training_steps(self) -> torch.Tensor:
        """``(depth,)`` training steps ``2 / ||W_l v_l||^2`` after one power step."""
        return _training_steps(self.weight, self._power_step())[0]

    def eval_steps(self) -> torch.Tensor:
        """``(depth,)`` the steps ``2 / s_l`` of the eval forward (rounded down, cached).

        Raises:
            ValueError: a weight is not finite.
        """
        w = self.weight
        return torch.tensor(self._eval_scales(), dtype=w.dtype, device=w.device)

    def _eval_scales(self) -> list[float]:
        w = self.weight
        key = _weight_key(w)
        if self._eval_steps is None or self._eval_key != key:
            self._eval_steps = [_rounded_step(s, w.dtype) for s in self.certified_sq_norms()]
            self._eval_key = key
        return self._eval_steps

    def certified_sq_norms(self) -> list[float]:
        """``||W_l||_2^2`` per layer from :func:`snmech.spectral.operator_norm`.

        Raises:
            ValueError: a weight is not finite.
        """
        return [operator_norm(w) ** 2 for w in self.weight.detach().unbind(0)]

    def lipschitz_factor(self, input_shape: tuple[int, ...] | None = None) -> float:
        """The product of the layers' ``max(1, h_l ||W_l||^2 - 1)`` (with rounding slack)."""
        total = 1.0
        for h, s in zip(self._eval_scales(), self.certified_sq_norms(), strict=True):
            total *= _factor(h, s)
        return total

    def extra_repr(self) -> str:  # noqa: D102
        return f"features={self.features}, hidden={self.hidden}, depth={self.depth}"
