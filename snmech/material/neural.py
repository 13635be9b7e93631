r"""Neural constitutive laws with certified tangent bounds.

Both laws map Mandel strain ``(n, size)`` to Mandel stress ``(n, size)`` in Pa.
Internally they work on scaled quantities ``e = eps / s_eps`` and
``sigma = s_sig * f(e)``, so the physical tangent is ``(s_sig / s_eps) df/de``;
every bound below includes that factor.

Note [Potential law]
    :class:`PotentialLaw` is the gradient of a convex potential made of ridge
    units (one hidden layer) and radial units,

    .. math::
        \psi(e) = \tfrac12 e^T A e + \sum_j a_j \log\cosh(w_j^T e + b_j)
            + \sum_k c_k \log\cosh \|Q_k e\|,
        \qquad A = B B^T \succeq 0,\ a_j \ge 0,\ c_k \ge 0.

    Ridge units bend the response along learned directions; radial units make
    it depend on a learned norm of the strain (e.g. the deviatoric norm, as in
    isotropic laws with softening shear). ``log cosh`` is convex and
    non-decreasing on ``[0, inf)``, so every term is convex. The stress
    ``f(e) = A e + W^T (a * tanh(W e + b)) + sum_k c_k tanh(r_k)/r_k Q_k^T Q_k e``
    (``r_k = ||Q_k e||``) is closed form, no autograd at run time. The tangent is
    ``A + W^T diag(a sech^2(W e + b)) W + sum_k c_k Q_k^T H_k Q_k`` with
    ``H_k = sech^2(r) n n^T + tanh(r)/r (I - n n^T)``, ``n = Q_k e / r_k``: symmetric
    positive semi-definite, and since ``sech^2 <= 1`` and ``tanh(r)/r <= 1``, in
    the Loewner order ``0 <= tangent(e) <= C_bar = A + W^T diag(a) W +
    sum_k c_k Q_k^T Q_k`` for every strain:
    ``C_bar`` is the matrix certificate the stable time step uses, and
    ``||C_bar||_2`` (an exact eigenvalue of a 6x6 matrix, float64) is the scalar
    one. With ``lipschitz_max`` the output is scaled by
    ``min(1, lipschitz_max / ||C_bar||)``, computed exactly at every step: the
    cap holds during training, not only after export.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.func import jacrev, vmap

from snmech.material.kinematics import Kinematics
from snmech.spectral import finalize, lipschitz_bound, spectral_norm
from snmech.spectral._modes import eval_mode
from snmech.spectral._norms import ROUNDING_RTOL

ArrayOrTensor = npt.NDArray[np.float64] | torch.Tensor


class NeuralLaw(nn.Module):
    """Shared plumbing: scalings, numpy/torch I/O, autograd tangent, certificates."""

    kind = "neural"

    def __init__(
        self,
        kinematics: Kinematics | str,
        strain_scale: float,
        stress_scale: float,
        lipschitz_max: float | None = None,
    ) -> None:
        super().__init__()
        if not (strain_scale > 0 and stress_scale > 0):
            raise ValueError(f"scales must be > 0, got {strain_scale}, {stress_scale}")
        if lipschitz_max is not None and not 0 < lipschitz_max < math.inf:
            raise ValueError(f"lipschitz_max must be finite and > 0 (Pa), got {lipschitz_max}")
        self.lipschitz_max = None if lipschitz_max is None else float(lipschitz_max)
        self.kinematics = Kinematics.parse(kinematics)
        self.strain_scale = float(strain_scale)
        self.stress_scale = float(stress_scale)

    @property
    def modulus_scale(self) -> float:
        """``s_sig / s_eps`` in Pa: converts a scaled tangent to a physical one."""
        return self.stress_scale / self.strain_scale

    def scaled_stress(self, e: torch.Tensor) -> torch.Tensor:
        """Scaled stress ``f(e)`` for scaled strain ``e`` of shape ``(n, size)``."""
        raise NotImplementedError

    def forward(self, strain: torch.Tensor) -> torch.Tensor:
        """Stress (Pa) for Mandel strain ``(n, size)`` as torch tensors."""
        return self.stress_scale * self.scaled_stress(strain / self.strain_scale)

    def _to_tensor(self, x: ArrayOrTensor) -> tuple[torch.Tensor, bool]:
        ref = next(self.parameters())
        is_numpy = not isinstance(x, torch.Tensor)
        t = torch.as_tensor(np.asarray(x) if is_numpy else x)
        if t.dim() != 2 or t.shape[1] != self.kinematics.size:
            raise ValueError(
                f"strain must have shape (n, {self.kinematics.size}) for "
                f"{self.kinematics.value}, got {tuple(t.shape)}"
            )
        return t.to(device=ref.device, dtype=ref.dtype), is_numpy

    def stress(self, strain: ArrayOrTensor) -> ArrayOrTensor:
        """Stress (Pa) ``(n, size)`` for numpy or torch strain ``(n, size)``; same type back."""
        t, is_numpy = self._to_tensor(strain)
        if is_numpy:
            with torch.no_grad():
                return self(t).cpu().double().numpy()
        return self(t)

    def tangent(self, strain: ArrayOrTensor) -> ArrayOrTensor:
        """``d stress / d strain`` (Pa) of shape ``(n, size, size)``, by autograd."""
        t, is_numpy = self._to_tensor(strain)
        jac = vmap(jacrev(lambda x: self(x[None])[0]))(t)
        return jac.detach().cpu().double().numpy() if is_numpy else jac

    def lipschitz_bound(self) -> float:
        """Certified ``sup ||tangent||_2`` in Pa (float64, from the current weights)."""
        raise NotImplementedError

    def architecture(self) -> dict[str, Any]:
        """Constructor arguments, as stored in a model file."""
        return {
            "kinematics": self.kinematics.value,
            "strain_scale": self.strain_scale,
            "stress_scale": self.stress_scale,
        }

    def exported_copy(self) -> NeuralLaw:
        """A new, plain-weight law computing what this law computes in eval mode.

        (``copy.deepcopy`` of a parametrized module shares its generated class, so
        removing the parametrization from a deep copy would break the original.)
        """
        from torch.nn.utils import parametrize

        ref = next(self.parameters())
        with eval_mode(self), torch.no_grad():
            state: dict[str, torch.Tensor] = {}
            for name, module in self.named_modules():
                if "parametrizations" in name.split("."):
                    continue
                prefix = f"{name}." if name else ""
                for pname, p in module.named_parameters(recurse=False):
                    state[prefix + pname] = p.detach().clone()
                if parametrize.is_parametrized(module):
                    for tname in module.parametrizations:  # type: ignore[union-attr]
                        state[prefix + tname] = getattr(module, tname).detach().clone()
        new = type(self)(**self.architecture(), normalized=False)
        new = new.to(device=ref.device, dtype=ref.dtype)
        new.load_state_dict(state, strict=True)
        return new.eval().export()

    def export(self) -> NeuralLaw:
        """Bake the spectral normalization into plain weights (in place; returns self).

        The weights are baked exactly as the eval-mode law applies them, so the
        exported law computes the same stresses; its certificate is recomputed
        from those weights (it never relied on the training estimate).
        """
        finalize(self, rescale=False)
        return self


def _tanh_over_r(r2: torch.Tensor) -> torch.Tensor:
    """``tanh(r) / r`` from ``r2 = r^2``: smooth in ``r2``, so gradients stay finite at 0."""
    small = r2 < 1e-6
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))
    return torch.where(small, 1.0 - r2 / 3.0 + (2.0 / 15.0) * r2 * r2, torch.tanh(r) / r)


class PotentialLaw(NeuralLaw):
    """Stress as the gradient of a convex potential (Note [Potential law]).

    Args:
        kinematics: 3D or plane strain.
        strain_scale: typical strain magnitude (inputs are divided by it).
        stress_scale: typical stress magnitude in Pa (outputs are multiplied by it).
        hidden: number of ridge units (the spectrally normalized hidden layer).
        radial: number of radial units ``c_k log cosh ||Q_k e||``.
        lipschitz_max: optional cap (Pa) on the certified tangent norm, enforced exactly.
        stress_free: subtract ``f(0)`` so zero strain gives zero stress.
        normalized: register ``spectral_norm`` on the hidden layer (training);
            ``False`` builds plain layers (used when loading an exported law).
    """

    kind = "potential"

    def __init__(
        self,
        kinematics: Kinematics | str = Kinematics.THREE_D,
        strain_scale: float = 1e-3,
        stress_scale: float = 1e8,
        *,
        hidden: int = 8,
        radial: int = 3,
        lipschitz_max: float | None = None,
        stress_free: bool = True,
        normalized: bool = True,
    ) -> None:
        super().__init__(kinematics, strain_scale, stress_scale, lipschitz_max)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if radial < 0:
            raise ValueError(f"radial must be >= 0, got {radial}")
        k = self.kinematics.size
        self.hidden, self.radial = int(hidden), int(radial)
        self.stress_free = bool(stress_free)
        layer = nn.Linear(k, hidden)
        with torch.no_grad():
            layer.bias.uniform_(-0.5, 0.5)
        self.layer = spectral_norm(layer) if normalized else layer
        self.a_raw = nn.Parameter(torch.full((hidden,), -1.0))
        self.B = nn.Parameter(torch.eye(k) * 0.5)
        self.Q = nn.Parameter(torch.randn(radial, k, k) * (0.5 / math.sqrt(k)))
        self.c_raw = nn.Parameter(torch.full((radial,), -1.0))

    def architecture(self) -> dict[str, Any]:  # noqa: D102
        return super().architecture() | {
            "hidden": self.hidden,
            "radial": self.radial,
            "lipschitz_max": self.lipschitz_max,
            "stress_free": self.stress_free,
        }

    def _parts(self) -> tuple[torch.Tensor, ...]:
        """``W, b, a, A, Q, c`` as applied (positivity of ``a``, ``c`` and ``A`` built in)."""
        softplus = nn.functional.softplus
        return (
            self.layer.weight,
            self.layer.bias,
            softplus(self.a_raw),
            self.B @ self.B.T,
            self.Q,
            softplus(self.c_raw),
        )

    @staticmethod
    def _c_bar(
        W: torch.Tensor, a: torch.Tensor, A: torch.Tensor, Q: torch.Tensor, c: torch.Tensor
    ) -> torch.Tensor:
        return A + (W.T * a) @ W + torch.einsum("r,rji,rjk->ik", c, Q, Q)

    def scaled_loewner_bound(self) -> torch.Tensor:
        """``C_bar`` in scaled units, before the cap (differentiable)."""
        W, _, a, A, Q, c = self._parts()
        return self._c_bar(W, a, A, Q, c)

    def _cap(self, c_bar: torch.Tensor) -> torch.Tensor:
        if self.lipschitz_max is None:
            return torch.ones((), dtype=c_bar.dtype, device=c_bar.device)
        norm = torch.linalg.eigvalsh(c_bar)[-1] * self.modulus_scale
        return torch.clamp(self.lipschitz_max / norm, max=1.0)

    def scaled_stress(self, e: torch.Tensor) -> torch.Tensor:  # noqa: D102
        W, b, a, A, Q, c = self._parts()
        h = torch.tanh(e @ W.T + b)
        if self.stress_free:
            h = h - torch.tanh(b)
        s = e @ A + (h * a) @ W
        if self.radial:
            Qf = Q.reshape(-1, Q.shape[-1])  # (R k, k): two matmuls instead of einsums
            z = (e @ Qf.T).unflatten(1, Q.shape[:2])
            g = c * _tanh_over_r((z * z).sum(dim=2))
            s = s + (g[..., None] * z).flatten(1) @ Qf
        if self.lipschitz_max is not None:
            s = s * self._cap(self._c_bar(W, a, A, Q, c))
        return s

    def tangent(self, strain: ArrayOrTensor) -> ArrayOrTensor:
        """Closed-form tangent (Pa), ``(n, size, size)`` (Note [Potential law])."""
        t, is_numpy = self._to_tensor(strain)
        W, b, a, A, Q, c = self._parts()
        e = t / self.strain_scale
        d = a / torch.cosh(e @ W.T + b) ** 2
        C = A + torch.einsum("ji,nj,jk->nik", W, d, W)
        if self.radial:
            z = torch.einsum("nk,rjk->nrj", e, Q)
            r2 = (z * z).sum(dim=2)
            r = torch.sqrt(r2)
            g = _tanh_over_r(r2)
            n = z / torch.clamp(r, min=torch.finfo(r.dtype).tiny)[..., None]
            eye = torch.eye(Q.shape[1], dtype=e.dtype, device=e.device)
            H = g[..., None, None] * eye + (1 / torch.cosh(r) ** 2 - g)[..., None, None] * (
                n[..., :, None] * n[..., None, :]
            )
            C = C + torch.einsum("r,rji,nrjl,rlk->nik", c, Q, H, Q)
        C = C * (self.modulus_scale * self._cap(self._c_bar(W, a, A, Q, c)))
        return C.detach().cpu().double().numpy() if is_numpy else C

    @torch.no_grad()
    def frozen_parts(self) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """``(W, b, a, A, Q, c)`` as applied, in float64 on the CPU, and the cap factor.

        What the exporters of this law (the fused kernel, the UFL form, the
        certificate) all start from; no autograd.
        """
        parts = tuple(p.detach().double().cpu() for p in self._parts())
        W, _, a, A, Q, c = parts
        return parts, self._cap(self._c_bar(W, a, A, Q, c))

    def inference_kernel(
        self, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """A fused, no-grad ``strain -> stress`` (Pa) for solvers.

        Scalings, the cap and ``f(0)`` are folded into the weights once; every
        intermediate is contiguous (strided elementwise ops are not vectorized),
        and the per-unit sums of the radial units are matmuls with a 0/1 block
        matrix. Computes what :meth:`forward` computes (to rounding) for the
        current weights; build a new kernel after training.
        """
        with torch.no_grad():
            (W, b, a, A, Q, c), cap = self.frozen_parts()
            k, R = Q.shape[-1], Q.shape[0]
            out_scale = self.stress_scale * cap
            Qf = Q.reshape(-1, k)
            blocks = torch.kron(torch.eye(R, dtype=Q.dtype), torch.ones(k, 1, dtype=Q.dtype))
            tensors = {
                "W_in": W.T / self.strain_scale,
                "b": b,
                "W_out": W * a[:, None] * out_scale,
                "A_out": A * (out_scale / self.strain_scale),
                "Q_in": Qf.T / self.strain_scale,
                "Q_out": Qf * out_scale,
                "sum": blocks,  # (R k, R): sums squares per radial unit
                "spread": blocks.T * c[:, None],  # (R, R k): c_k g_k back onto components
                "shift": (torch.tanh(b) * a) @ W * out_scale
                if self.stress_free
                else torch.zeros(k, dtype=W.dtype),
            }
            t = {n: v.to(device=device, dtype=dtype).contiguous() for n, v in tensors.items()}

        def kernel(strain: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                h = torch.addmm(t["b"], strain, t["W_in"]).tanh_()
                out = torch.addmm(strain @ t["A_out"], h, t["W_out"]).sub_(t["shift"])
                if R:
                    z = strain @ t["Q_in"]  # (n, R k)
                    g = _tanh_over_r((z * z) @ t["sum"])  # (n, R)
                    out.addmm_(z.mul_(g @ t["spread"]), t["Q_out"])
                return out

        return kernel

    def loewner_bound(self) -> npt.NDArray[np.float64]:
        """Certified ``C_bar`` (Pa, float64) with ``0 <= tangent(eps) <= C_bar`` for all eps."""
        (W, _, a, A, Q, c), cap = self.frozen_parts()
        c_bar = self._c_bar(W, a, A, Q, c)
        c_bar = 0.5 * (c_bar + c_bar.T) * (self.modulus_scale * cap)
        return c_bar.numpy() * (1.0 + ROUNDING_RTOL)

    def lipschitz_bound(self) -> float:
        """``||C_bar||_2`` in Pa: the tangent is PSD and below ``C_bar``, so its norm is too."""
        return float(np.linalg.eigvalsh(self.loewner_bound())[-1]) * (1.0 + ROUNDING_RTOL)


class DirectLaw(NeuralLaw):
    """A spectrally normalized tanh MLP from strain to stress.

    ``f(e) = g * MLP(e)`` with every layer normalized to norm 1 and a learned
    gain ``g > 0``; its certified bound is ``g * prod ||W_i||`` (times the scale).
    The tangent is bounded but in general not symmetric: see
    :func:`tangent_asymmetry`; the time-step guarantee then covers the
    symmetric part only.

    Args:
        kinematics: 3D or plane strain.
        strain_scale: typical strain magnitude.
        stress_scale: typical stress magnitude (Pa).
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        lipschitz_max: optional cap (Pa) on the certified bound, enforced exactly.
        normalized: register ``spectral_norm`` (training) or build plain layers.
    """

    kind = "direct"

    def __init__(
        self,
        kinematics: Kinematics | str = Kinematics.THREE_D,
        strain_scale: float = 1e-3,
        stress_scale: float = 1e8,
        *,
        hidden: int = 64,
        depth: int = 2,
        lipschitz_max: float | None = None,
        normalized: bool = True,
    ) -> None:
        super().__init__(kinematics, strain_scale, stress_scale, lipschitz_max)
        if hidden < 1 or depth < 1:
            raise ValueError(f"need hidden >= 1 and depth >= 1, got {hidden}, {depth}")
        k = self.kinematics.size
        self.hidden, self.depth = int(hidden), int(depth)
        sizes = [k] + [hidden] * depth + [k]
        layers: list[nn.Module] = []
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            lin = nn.Linear(m, n)
            layers.append(spectral_norm(lin) if normalized else lin)
            if i < depth:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.gain_raw = nn.Parameter(torch.tensor(math.log(math.e - 1) * 2.0))

    def architecture(self) -> dict[str, Any]:  # noqa: D102
        return super().architecture() | {
            "hidden": self.hidden,
            "depth": self.depth,
            "lipschitz_max": self.lipschitz_max,
        }

    def gain(self) -> torch.Tensor:
        """Output gain ``g``, capped so ``g * s_sig / s_eps <= lipschitz_max``."""
        g = nn.functional.softplus(self.gain_raw)
        if self.lipschitz_max is not None:
            g = torch.clamp(g, max=self.lipschitz_max / self.modulus_scale)
        return g

    def scaled_stress(self, e: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.gain() * (self.net(e) - self.net(torch.zeros_like(e[:1])))

    def export(self) -> NeuralLaw:
        """Bake the weights as applied, then enforce ``lipschitz_max`` exactly.

        If the exact bound exceeds the cap (the training estimate sat below the
        exact norms), the last layer is shrunk to meet it.
        """
        super().export()
        if self.lipschitz_max is not None:
            excess = self.lipschitz_bound() / self.lipschitz_max
            if excess > 1.0:
                with torch.no_grad():
                    last = self.net[-1]
                    last.weight.div_(excess * (1 + 1e-6))
        return self

    def lipschitz_bound(self) -> float:
        """``g * s_sig/s_eps * prod ||W_i||``, exact layer norms (certified)."""
        with torch.no_grad():
            product = lipschitz_bound(self.net).value
            return (
                float(self.gain().double()) * self.modulus_scale * product * (1.0 + ROUNDING_RTOL)
            )


def tangent_asymmetry(law: NeuralLaw, strain: ArrayOrTensor) -> float:
    """Mean of ``||T - T^T|| / ||T||`` (Frobenius) over the given strains."""
    T = np.asarray(law.tangent(np.asarray(strain)))
    num = np.linalg.norm(T - T.transpose(0, 2, 1), axis=(1, 2))
    den = np.linalg.norm(T, axis=(1, 2))
    return float(np.mean(num / np.maximum(den, 1e-300)))


LAW_KINDS: dict[str, type[NeuralLaw]] = {"potential": PotentialLaw, "direct": DirectLaw}
