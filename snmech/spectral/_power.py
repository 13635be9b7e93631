"""Power iteration against an operator and its adjoint (pure functions).

Dense matrices, convolutions and Jacobian-vector products all share this loop:
callers pass ``apply`` (x -> A x) and ``adjoint`` (y -> A^T y) callables.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Operator = Callable[[torch.Tensor], torch.Tensor]


def normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Return ``x / max(||x||_2, eps)`` with the norm taken over *all* entries.

    Args:
        x: any shape; treated as one vector.
        eps: guards the division for a zero vector.
    """
    return x / torch.clamp(torch.linalg.vector_norm(x), min=eps)


def power_iteration(
    apply: Operator,
    adjoint: Operator,
    u: torch.Tensor,
    v: torch.Tensor,
    n_iterations: int,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Run ``n_iterations`` steps of power iteration on ``A^T A``.

    .. math:: v \leftarrow A^T u / \|A^T u\|, \quad u \leftarrow A v / \|A v\|

    Args:
        apply: x -> A x, mapping input-shaped tensors to output-shaped ones.
        adjoint: y -> A^T y.
        u: unit vector in the output space (any shape ``apply`` produces).
        v: unit vector in the input space.
        n_iterations: number of steps (>= 0).
        eps: guards normalization of a zero vector.

    Returns:
        The updated ``(u, v)``. Then ``<u, A v>`` is a *lower* bound of
        ``||A||_2`` that converges to it: an estimate, never a certificate.
    """
    for _ in range(n_iterations):
        v = normalize(adjoint(u), eps)
        u = normalize(apply(v), eps)
    return u, v


def rayleigh_sigma(apply: Operator, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Return ``<u, A v>``, the power-iteration estimate of ``||A||_2`` (differentiable)."""
    return torch.sum(u * apply(v))
