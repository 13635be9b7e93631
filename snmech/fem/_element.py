"""Vectorized element matrices of vector Lagrange spaces, for the stable time step.

Everything here works on a batch of cells at once (arrays ``cells x points x ...``):
basix tabulates the reference basis at the quadrature points, the Jacobians come
from the mesh geometry, and numpy, or the compiled kernel of ``_ckernel`` where
available, does the rest. Nothing loops over cells in Python.

Note [Reduced element operator]
    With ``C_bar = R^T R`` and ``B_q`` the Mandel strain-displacement matrix at
    quadrature point ``q`` (weight ``w_q |det J_q|``), the element stiffness is
    ``K_e = Y^T Y`` with ``Y = stack_q sqrt(w_q |det J_q|) R B_q``. The nonzero
    eigenvalues of ``M_e^{-1/2} K_e M_e^{-1/2} = (Y M_e^{-1/2})^T (Y M_e^{-1/2})``
    are those of ``(Y M_e^{-1/2})(Y M_e^{-1/2})^T``, so the smaller of the two
    Gram matrices is used: 6 x 6 instead of 12 x 12 for P1 tetrahedra (one
    point), 24 x 24 for Q1 hexahedra (eight points, the stiffness form).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import basix
import numpy as np
import numpy.typing as npt
import torch
from dolfinx import common, fem, la, mesh

from snmech.fem import _ckernel

Array = npt.NDArray[np.float64]

SIMPLICES = (mesh.CellType.triangle, mesh.CellType.tetrahedron)
SUPPORTED_CELLS = (*SIMPLICES, mesh.CellType.quadrilateral, mesh.CellType.hexahedron)

# Relative gap used to verify the largest element eigenvalue by Cholesky
# (Note [Certified maximum]): the bound is at most this much above the true maximum.
VERIFY_GAP = 1e-6


def mandel_gradient_map(gdim: int) -> Array:
    """``T`` of shape ``(k, d, d)`` with Mandel strain ``e_p = sum_il T[p, i, l] du_i/dx_l``.

    ``k = 6`` for ``d = 3`` (``[e11, e22, e33, sqrt2 e23, sqrt2 e13, sqrt2 e12]``) and
    ``k = 3`` for ``d = 2`` (plane strain, ``[e11, e22, sqrt2 e12]``).
    """
    pairs = {3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)], 2: [(0, 0), (1, 1), (0, 1)]}[gdim]
    T = np.zeros((len(pairs), gdim, gdim))
    for p, (i, j) in enumerate(pairs):
        if i == j:
            T[p, i, i] = 1.0
        else:  # sqrt2 * (u_i,j + u_j,i) / 2
            T[p, i, j] = T[p, j, i] = 1.0 / math.sqrt(2.0)
    return T


@dataclass(frozen=True)
class ReferenceData:
    """Reference-cell tabulations shared by every cell of a mesh.

    Attributes:
        points: quadrature points ``(nq, tdim)``.
        weights: quadrature weights ``(nq,)``.
        phi: basis values ``(nq, nn)``.
        dphi: reference basis gradients ``(nq, nn, tdim)``.
        dpsi: reference gradients of the coordinate element ``(nq, ng, tdim)``.
    """

    points: Array
    weights: Array
    phi: Array
    dphi: Array
    dpsi: Array


def check_space(V: fem.FunctionSpace) -> tuple[mesh.CellType, int, int]:
    """Validate a vector Lagrange space; return ``(cell type, degree, gdim)``.

    Raises:
        ValueError: not vector Lagrange with block size gdim, an unsupported cell
            or degree, a curved (non-affine/multilinear) geometry, or a manifold mesh.
    """
    domain = V.mesh
    gdim, tdim = domain.geometry.dim, domain.topology.dim
    cell = domain.topology.cell_type
    be = V.element.basix_element
    if cell not in SUPPORTED_CELLS:
        raise ValueError(f"need triangles, tetrahedra, quadrilaterals or hexahedra, got {cell}")
    if gdim != tdim or gdim not in (2, 3):
        raise ValueError(f"need a 2D or 3D mesh with tdim == gdim, got tdim={tdim}, gdim={gdim}")
    if be.family != basix.ElementFamily.P or be.discontinuous or V.dofmap.bs != gdim:
        raise ValueError(
            f"need a continuous vector Lagrange space with {gdim} components, got family "
            f"{be.family.name}, block size {V.dofmap.bs}"
        )
    degree = int(be.degree)
    if degree not in (1, 2) or (degree == 2 and cell not in SIMPLICES):
        raise ValueError(f"supported: degree 1, and degree 2 on simplices; got {degree} on {cell}")
    if domain.geometry.cmaps[0].degree != 1:
        raise ValueError("need a straight-sided (degree-1 coordinate element) mesh")
    return cell, degree, gdim


def vector_space(domain: mesh.Mesh[np.float64], degree: int) -> fem.FunctionSpace[np.float64]:
    """The continuous vector Lagrange space of ``degree`` (1, or 2 on simplices) on ``domain``.

    Raises:
        ValueError: a degree other than 1 or 2, named before basix is asked for it.
    """
    if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree not in (1, 2):
        raise ValueError(f"degree must be 1 or 2, got {degree!r}")
    return fem.functionspace(domain, ("Lagrange", int(degree), (domain.geometry.dim,)))


def default_quadrature_degree(cell: mesh.CellType, degree: int) -> int:
    """Stiffness rule: ``2 (p - 1)`` on simplices (exact), 2 (2 x 2 (x 2) Gauss) on quads/hexes."""
    return 2 * (degree - 1) if cell in SIMPLICES else 2 * degree


def reference_data(V: fem.FunctionSpace, quadrature_degree: int) -> ReferenceData:
    """Tabulate the basis and the coordinate element at a basix quadrature rule."""
    domain = V.mesh
    bcell = basix.CellType[domain.topology.cell_type.name]
    rule = basix.make_quadrature(bcell, quadrature_degree)
    points, weights = (np.asarray(a, dtype=np.float64) for a in rule)
    tab = np.asarray(V.element.basix_element.tabulate(1, points))  # (1 + tdim, nq, nn, 1)
    cmap = domain.geometry.cmaps[0]
    coord = basix.create_element(
        basix.ElementFamily.P, bcell, cmap.degree, basix.LagrangeVariant(cmap.variant)
    )
    gtab = np.asarray(coord.tabulate(1, points))
    return ReferenceData(
        points=points,
        weights=weights,
        phi=tab[0, :, :, 0],
        dphi=np.moveaxis(tab[1:, :, :, 0], 0, -1),
        dpsi=np.moveaxis(gtab[1:, :, :, 0], 0, -1),
    )


def _det_inv(J: Array) -> tuple[Array, Array]:
    """Determinant and inverse of a batch ``(..., d, d)``, d = 2 or 3 (closed form)."""
    A = np.moveaxis(J, (-2, -1), (0, 1)).copy()  # (d, d, ...) contiguous rows
    d = A.shape[0]
    if d == 2:
        det = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
        adj = np.array([[A[1, 1], -A[0, 1]], [-A[1, 0], A[0, 0]]])
    else:
        adj = np.empty_like(A)
        for i in range(3):
            for j in range(3):
                r0, r1 = [k for k in range(3) if k != j]
                c0, c1 = [k for k in range(3) if k != i]
                sign = 1.0 if (i + j) % 2 == 0 else -1.0
                adj[i, j] = sign * (A[r0, c0] * A[r1, c1] - A[r0, c1] * A[r1, c0])
        det = A[0, 0] * adj[0, 0] + A[0, 1] * adj[1, 0] + A[0, 2] * adj[2, 0]
    return det, np.moveaxis(adj / det, (0, 1), (-2, -1))


def cell_coordinates(domain: mesh.Mesh, cells: npt.NDArray[np.int32]) -> Array:
    """Geometry node coordinates of the cells, shape ``(c, ng, gdim)``."""
    x = domain.geometry.x[:, : domain.geometry.dim]
    return x[domain.geometry.dofmaps[0][cells]]


def geometry(X: Array, ref: ReferenceData, simplex: bool) -> tuple[Array, Array]:
    """Inverse Jacobians ``(c, nq, d, d)`` and ``w_q |det J_q|`` ``(c, nq)``.

    Args:
        X: cell node coordinates ``(c, ng, d)`` (:func:`cell_coordinates`).
        ref: the rule and tabulations.
        simplex: affine cells: ``J`` is evaluated once per cell and broadcast.

    Raises:
        ValueError: a degenerate cell, or a quad/hex whose Jacobian changes sign.
    """
    dpsi = ref.dpsi[:1] if simplex else ref.dpsi
    J = np.tensordot(X, dpsi, axes=([1], [1])).transpose(0, 2, 1, 3)  # J[c,q,i,j] = dx_i/dX_j
    det, inv = _det_inv(J)
    check_jacobians(det)
    shape = (X.shape[0], ref.weights.size)
    inv = np.broadcast_to(inv, (*shape, *inv.shape[2:]))
    return inv, np.abs(np.broadcast_to(det, shape)) * ref.weights


def check_jacobians(det: Array) -> None:
    """Raise on a degenerate cell or a quad/hex whose Jacobian changes sign; ``det`` ``(c, nq)``."""
    if not np.all(np.isfinite(det)) or np.any(det == 0):
        raise ValueError("degenerate cell (zero or non-finite Jacobian determinant)")
    if np.any(np.sign(det) != np.sign(det[:, :1])):
        raise ValueError("inverted cell: the Jacobian determinant changes sign inside a cell")


def node_form_batch(
    kernel: Any,
    X: Array,
    rho: Array,
    ref: ReferenceData,
    mref: ReferenceData,
    C4: Array,
    simplex: bool,
) -> tuple[Array, Array, Array]:
    """Compiled :func:`element_batch` for the node form: ``Gs``, lumped mass, ``diag K_e``.

    Args:
        kernel: :func:`snmech.fem._ckernel.node_form_kernel`.
        X: cell node coordinates ``(c, ng, d)``.
        rho: density per cell (kg/m^3), ``(c,)``.
        ref: stiffness rule tabulations.
        mref: :func:`mass_reference` tabulations.
        C4: :func:`fourth_order` of ``C_bar``.
        simplex: affine simplices (the mass rule reuses the one Jacobian).

    Returns:
        ``sqrt(w |det J|) G`` ``(c, nq, nn, d)``, element mass per node ``(c, nn)`` (kg)
        and the diagonals of the element stiffness ``(c, nn d)`` (N/m).
    """
    Gs, wdet, det, Kdiag = _ckernel.gradients(kernel, X, ref.dpsi, ref.dphi, ref.weights, C4)
    check_jacobians(det)
    if simplex:
        wdet_m = wdet[:, :1] / ref.weights[0] * mref.weights
    elif np.array_equal(ref.points, mref.points):
        wdet_m = wdet
    else:
        wdet_m = geometry(X, mref, False)[1]
    return Gs, lumped_element_mass(wdet_m, rho, mref), Kdiag


def mass_reference(V: fem.FunctionSpace) -> ReferenceData:
    """Tabulations at a rule exact for the element lumped mass (``phi^2`` or ``phi det J``)."""
    cell, degree, _ = check_space(V)
    # simplices: phi^2 of degree 2p; Q1: phi det J has degree <= 3 in each variable
    return reference_data(V, 2 * degree if cell in SIMPLICES else 3)


def lumped_element_mass(wdet: Array, rho: Array, ref: ReferenceData) -> Array:
    """Element lumped mass per node (kg), shape ``(c, nn)``; the same for every component.

    Degree 1: row sums of the consistent element mass, ``rho int phi_a``. Degree 2
    (simplices): HRZ, ``diag(M_e) rho |e| / sum diag(M_e)``. Assembled over all
    cells these are exactly :func:`snmech.fem.mass.lumped_mass` (affine simplices,
    per-cell density).

    Args:
        wdet: ``w_q |det J_q|`` at the points of ``ref``, ``(c, nq)``.
        rho: density per cell (kg/m^3), ``(c,)``.
        ref: :func:`mass_reference` tabulations.
    """
    if ref.dphi.shape[1] == ref.dpsi.shape[1]:  # degree 1: the geometry's nodes
        return rho[:, None] * (wdet @ ref.phi)
    diag = wdet @ (ref.phi**2)
    return diag * (rho * wdet.sum(axis=1) / diag.sum(axis=1))[:, None]


def element_batch(
    X: Array, rho: Array, ref: ReferenceData, mref: ReferenceData, simplex: bool
) -> tuple[Array, Array, Array]:
    """Gradients ``(c, nq, nn, d)``, ``w |det J|`` ``(c, nq)`` and lumped mass ``(c, nn)``.

    One Jacobian per simplex serves both rules; on quads/hexes the mass rule
    reuses the stiffness points when they coincide.

    Args:
        X: cell node coordinates ``(c, ng, d)``.
        rho: density per cell (kg/m^3), ``(c,)``.
        ref: stiffness rule tabulations.
        mref: :func:`mass_reference` tabulations.
        simplex: affine simplices.
    """
    inv, wdet = geometry(X, ref, simplex)
    if simplex:
        G = np.matmul(ref.dphi[None], inv[:, :1])
        wdet_m = wdet[:, :1] / ref.weights[0] * mref.weights
    else:
        G = np.matmul(ref.dphi[None], inv)
        same = np.array_equal(ref.points, mref.points)
        wdet_m = wdet if same else geometry(X, mref, simplex)[1]
    return G, wdet, lumped_element_mass(wdet_m, rho, mref)


def strain_displacement(G: Array) -> Array:
    """Mandel ``B`` of shape ``(c, nq, k, nn * d)`` from gradients ``(c, nq, nn, d)``.

    Columns follow dolfinx's blocked layout: local dof ``a * d + i`` is component
    ``i`` of node ``a``.
    """
    c, nq, nn, d = G.shape
    T = mandel_gradient_map(d)
    return np.asarray(np.einsum("pil,cqal->cqpai", T, G).reshape(c, nq, T.shape[0], nn * d))


def element_stiffness(G: Array, wdet: Array, C: Array) -> Array:
    r"""``K_e = sum_q w_q |det J_q| B_q^T C B_q`` (N/m), shape ``(c, m, m)``.

    Args:
        G: physical gradients ``(c, nq, nn, d)``.
        wdet: ``w_q |det J_q|`` ``(c, nq)``.
        C: Mandel stiffness ``(k, k)`` or per cell ``(c, k, k)`` (Pa).
    """
    B = strain_displacement(G)
    CB = np.einsum("...pr,cqrm->cqpm", C if C.ndim == 2 else C[:, None], B)
    return np.asarray(np.einsum("cq,cqpm,cqpn->cmn", wdet, B, CB, optimize=True))


def reduced_operator(G: Array, wdet: Array, mass: Array, C: Array, R: Array) -> Array:
    """Gram matrix with the nonzero eigenvalues of ``M_e^-1/2 K_e M_e^-1/2`` (1/s^2).

    See Note [Reduced element operator]. Only batched matrix products: with
    ``Gs = sqrt(w |det J|) G / sqrt(m)``, the point form contracts
    ``N = Gs Gs^T`` (per pair of points) with ``R T``, the node form contracts
    ``W = Gs^T Gs`` (per pair of nodes) with the fourth-order ``C``.

    Args:
        G: physical gradients ``(c, nq, nn, d)``.
        wdet: ``w_q |det J_q|`` ``(c, nq)``.
        mass: element mass per node ``(c, nn)`` (kg), any positive split.
        C: Mandel ``C_bar`` ``(k, k)`` (Pa).
        R: ``(k, k)`` with ``R^T R = C_bar`` (sqrt(Pa)).

    Returns:
        Symmetric PSD matrices ``(c, n, n)``, ``n = min(nq k, nn d)``.
    """
    c, nq, nn, d = G.shape
    k = C.shape[0]
    Gs = G * (np.sqrt(wdet)[:, :, None, None] / np.sqrt(mass)[:, None, :, None])
    if nq * k > nn * d:
        return node_form(Gs, C)
    RT = np.einsum("rp,pil->ril", R, mandel_gradient_map(d))
    P = np.einsum("ril,uin->lnru", RT, RT).reshape(d * d, k * k)
    A = Gs.transpose(0, 1, 3, 2).reshape(c, nq * d, nn)
    N = (A @ A.transpose(0, 2, 1)).reshape(c, nq, d, nq, d).transpose(0, 1, 3, 2, 4)
    S = (N.reshape(-1, d * d) @ P).reshape(c, nq, nq, k, k)
    return np.asarray(S.transpose(0, 1, 3, 2, 4).reshape(c, nq * k, nq * k))


def fourth_order(C: Array, d: int) -> Array:
    """Mandel ``C`` ``(k, k)`` as ``C4[l d + n, i d + j]`` on gradient pairs, ``(d d, d d)``."""
    T = mandel_gradient_map(d)
    return np.asarray(np.einsum("pil,pq,qjn->lnij", T, C, T).reshape(d * d, d * d))


def node_form(Gs: Array, C: Array) -> Array:
    """``sum_q B_q^T C B_q`` from (scaled) gradients ``Gs`` ``(c, nq, nn, d)``: ``(c, m, m)``.

    With ``Gs = sqrt(w |det J|) G`` this is the element stiffness ``K_e`` (N/m).
    """
    c, nq, nn, d = Gs.shape
    C4 = fourth_order(C, d)
    A = Gs.reshape(c, nq, nn * d)
    W = (A.transpose(0, 2, 1) @ A).reshape(c, nn, d, nn, d).transpose(0, 1, 3, 2, 4)
    S = (W.reshape(-1, d * d) @ C4).reshape(c, nn, nn, d, d)
    return np.asarray(S.transpose(0, 1, 3, 2, 4).reshape(c, nn * d, nn * d))


def mass_scaled(K: Array, mass: Array) -> Array:
    """``D^-1/2 K_e D^-1/2`` (1/s^2) from element stiffness ``(c, m, m)``, node masses ``(c, nn)``.

    Every component of node ``a`` (local dofs ``a d .. a d + d - 1``) has mass ``D_a``.
    """
    d = K.shape[1] // mass.shape[1]
    s = np.repeat(1.0 / np.sqrt(mass), d, axis=1)
    return np.asarray(K * s[:, :, None] * s[:, None, :])


def node_block_norms(K: Array, d: int) -> Array:
    """``F[c, a, b] = ||K_e[a-block, b-block]||_F^2`` from element stiffness ``(c, nn d, nn d)``."""
    c, m = K.shape[0], K.shape[1]
    nn = m // d
    return np.asarray((K.reshape(c, nn, d, nn, d) ** 2).sum(axis=(2, 4)))


def block_norms(G: Array, wdet: Array, C: Array, R: Array) -> Array:
    """``F[c, a, b] = ||K_e[a-block, b-block]||_F^2`` ((N/m)^2), shape ``(c, nn, nn)``.

    For masses ``D`` per node, ``||D^-1/2 K_e D^-1/2||_F^2 = sum_ab F_ab / (D_a D_b)``:
    the cheap proxy of ``g_e`` used by :func:`balance_masses`. In the point form
    (Note [Reduced element operator]) ``K_ab = Y_a^T Y_b``, so ``F_ab = <Z_a, Z_b>``
    with the small ``Z_a = Y_a Y_a^T``; otherwise from the node form ``K_e``.
    """
    c, nq, nn, d = G.shape
    k = C.shape[0]
    Gs = G * np.sqrt(wdet)[:, :, None, None]
    if nq * k > nn * d:
        return node_block_norms(node_form(Gs, C), d)
    RT = np.einsum("rp,pil->ril", R, mandel_gradient_map(d))
    P = np.einsum("ril,uin->lnru", RT, RT).reshape(d * d, k * k)
    H = Gs.transpose(0, 2, 1, 3)  # (c, nn, nq, d)
    outer = (H[:, :, :, None, :, None] * H[:, :, None, :, None, :]).reshape(-1, d * d)
    # Z_a = outer_a P (per pair of points), so <Z_a, Z_b> = outer_a (P P^T) outer_b^T
    right = (outer @ (P @ P.T)).reshape(c, nn, -1)
    return np.asarray(right @ outer.reshape(c, nn, -1).transpose(0, 2, 1))


def node_masses(D: Array, dofs: npt.NDArray[np.int32], index_map: common.IndexMap) -> Array:
    """``M_a = sum_e D_e,a`` for every local node (owned and ghost), summed over all ranks.

    Args:
        D: element masses per node ``(c, nn)`` (kg) of this rank's owned cells.
        dofs: node indices of those cells ``(c, nn)``.
        index_map: the nodes' index map.
    """
    total = la.vector(index_map, 1)
    total.array[:] = np.bincount(dofs.ravel(), D.ravel(), minlength=total.array.size)
    total.scatter_reverse(la.InsertMode.add)
    total.scatter_forward()
    return np.asarray(total.array.copy())


def balance_masses(
    D: Array,
    F: Array,
    node_mass: Array,
    dofs: npt.NDArray[np.int32],
    index_map: common.IndexMap,
    rounds: int,
) -> Array:
    """Split each node's mass among its cells so that the ``g_e`` even out.

    Note [Mass splitting]: the element eigenvalue inequality holds for *any*
    split ``M = sum_e D_e`` into non-negative diagonal parts, not only for the
    elements' own lumped masses: ``x^T K x <= sum_e g_e x_e^T D_e x_e <= max_e
    g_e x^T M x`` with ``g_e = lambda_max(K_e, D_e)``. A small or flat cell has
    a tiny own mass and a huge ``g_e``; giving it a larger share of its nodes'
    mass (taken from the better-shaped neighbours) lowers the maximum. Each round
    sets ``D_e,a <- M_a w_e,a / sum_f w_f,a`` with ``w_e,a = D_e,a ||D_e^-1/2 K_e
    D_e^-1/2||_F`` (the Frobenius norm is a cheap stand-in for ``g_e``), so the
    shares of a node always add up to its mass. The heuristic only steers the
    split; the bound is computed exactly for the split it returns.

    Args:
        D: starting split ``(c, nn)`` (kg), e.g. the element lumped masses.
        F: :func:`block_norms` ``(c, nn, nn)``.
        node_mass: ``M_a`` for every local node (owned and ghost) (kg).
        dofs: node indices of the cells ``(c, nn)``.
        index_map: the nodes' index map (sums over cells on other ranks).
        rounds: number of rounds; 0 returns ``D``.
    """
    shares = la.vector(index_map, 1)
    flat = dofs.ravel()
    for _ in range(rounds):
        inv = 1.0 / D
        g = np.sqrt(((F @ inv[:, :, None])[:, :, 0] * inv).sum(axis=1))
        w = D * g[:, None]
        shares.array[:] = np.bincount(flat, w.ravel(), minlength=shares.array.size)
        shares.scatter_reverse(la.InsertMode.add)
        shares.scatter_forward()
        D = w * (node_mass[dofs] / shares.array[dofs])
    return D


@dataclass(frozen=True)
class ChunkMaximum:
    """Certified largest eigenvalue over a batch of element operators.

    Attributes:
        upper: ``>= max_e lambda_max(S_e)`` (up to float64 rounding).
        index: batch index of the largest exactly computed eigenvalue.
        value: that eigenvalue (``<= upper``; within VERIFY_GAP of the maximum).
    """

    upper: float
    index: int
    value: float


def certified_maximum(S: Array, floor: float = 0.0, candidates: int = 32) -> ChunkMaximum:
    """Largest eigenvalue over a batch of symmetric PSD matrices ``(c, n, n)``, certified.

    Note [Certified maximum]: a handful of candidate cells (the largest distinct
    traces and diagonal entries) get exact eigenvalues; with ``U`` slightly above
    the best of them (and above ``floor``), a successful Cholesky factorization
    of ``U I - S_e`` proves ``lambda_max(S_e) < U`` for every other cell at the
    cost of one batched Cholesky (cells with ``||S_e||_F < U`` need none). Cells
    where it fails get exact eigenvalues. Correctness never depends on the choice
    of candidates, only the speed does. Rounding: a Cholesky factorization that
    succeeds in float64 is exact for ``U I - S_e + E`` with ``||E|| <= c n^2 eps U``,
    so ``lambda_max(S_e) < U (1 + 1e-12)`` for ``n <= 48``; the caller's relative
    inflation (``timestep.ROUNDING_RTOL = 1e-10``) covers it and the geometry.
    """
    fro = np.sqrt(np.einsum("cij,cij->c", S, S))

    def failed_at(U: float) -> npt.NDArray[np.intp]:
        # lambda_max <= ||S||_F clears most cells of a graded or distorted mesh for free
        open_ = np.flatnonzero(fro * (1.0 + 1e-12) >= U)
        return open_[~positive_definite(U * np.eye(S.shape[1]) - S[open_])] if open_.size else open_

    return _certify(
        np.einsum("cii->c", S),
        np.einsum("cii->ci", S).max(axis=1),
        lambda idx: np.asarray(np.linalg.eigvalsh(S[idx])[:, -1]),
        failed_at,
        floor,
        candidates,
    )


def certified_maximum_compiled(
    kernel: Any,
    Gs: Array,
    mass: Array,
    C: Array,
    Kdiag: Array,
    floor: float = 0.0,
    candidates: int = 32,
    blocks: bool = False,
) -> tuple[ChunkMaximum, Array, Array | None]:
    """:func:`certified_maximum` of the node-form ``S_e``, formed only inside the kernel.

    Note [Compiled element bound]: the diagonals of all ``S_e`` (cheap: only the
    diagonal node blocks) pick the candidates; their exact eigenvalues give ``U``;
    one pass of the compiled kernel proves ``lambda_max(S_e) < U`` for every other
    cell (Frobenius norm or Cholesky). Cells it cannot clear get exact eigenvalues.

    Args:
        kernel: :func:`snmech.fem._ckernel.node_form_kernel`.
        Gs: ``sqrt(w |det J|) G`` ``(c, nq, nn, d)``.
        mass: element mass per node ``(c, nn)`` (kg), any positive split.
        C: Mandel ``C_bar`` ``(k, k)`` (Pa).
        Kdiag: the diagonals of the ``K_e`` ``(c, nn d)`` (:func:`node_form_batch`).
        floor: a value the bound need not go below (1/s^2).
        candidates: cells per statistic given exact eigenvalues up front.
        blocks: also return the block norms of ``K_e`` (:func:`node_block_norms`).

    Returns:
        The certified maximum, the traces of the ``S_e`` and the block norms (or None).
    """
    d = Gs.shape[-1]
    C4 = fourth_order(C, d)
    diag = Kdiag / np.repeat(mass, d, axis=1)
    blocks_out: list[Array | None] = [None]

    def exact(idx: npt.NDArray[np.intp]) -> Array:
        S = mass_scaled(node_form(Gs[idx], C), mass[idx])
        return np.asarray(np.linalg.eigvalsh(S)[:, -1])

    def failed_at(U: float) -> npt.NDArray[np.intp]:
        *_, F, ok = _ckernel.node_form_stats(kernel, Gs, mass, C4, U, blocks=blocks)
        assert ok is not None
        blocks_out[0] = F
        return np.flatnonzero(~ok)

    tr = diag.sum(axis=1)
    chunk = _certify(tr, diag.max(axis=1), exact, failed_at, floor, candidates)
    return chunk, tr, blocks_out[0]


def _certify(
    tr: Array,
    dmax: Array,
    exact: Callable[[npt.NDArray[np.intp]], Array],
    failed_at: Callable[[float], npt.NDArray[np.intp]],
    floor: float,
    candidates: int,
) -> ChunkMaximum:
    """Note [Certified maximum] from per-cell statistics and two callbacks.

    ``exact(idx)`` gives the largest eigenvalues of cells ``idx``; ``failed_at(U)``
    the cells for which ``lambda_max(S_e) < U`` could not be proven.
    """
    picks = [_top_distinct(v, candidates) for v in (tr, dmax)]
    cand = np.unique(np.concatenate(picks))
    lam = exact(cand)
    best = int(np.argmax(lam))
    index, value = int(cand[best]), float(lam[best])
    upper = max(value, floor) * (1.0 + VERIFY_GAP)
    failed = failed_at(upper)
    if failed.size:
        lam_f = exact(failed)
        j = int(np.argmax(lam_f))
        if lam_f[j] > value:
            index, value = int(failed[j]), float(lam_f[j])
        upper = max(upper, value * (1.0 + VERIFY_GAP))
    return ChunkMaximum(upper=float(upper), index=index, value=value)


def positive_definite(A: Array) -> npt.NDArray[np.bool_]:
    """Which of the symmetric matrices ``(c, n, n)`` pass a Cholesky factorization.

    numpy's batched LAPACK call in the common case (all pass); if any fails,
    torch's ``cholesky_ex`` gives the per-matrix status.
    """
    try:
        np.linalg.cholesky(A)
        return np.ones(A.shape[0], dtype=bool)
    except np.linalg.LinAlgError:
        return np.asarray(torch.linalg.cholesky_ex(torch.from_numpy(A))[1].numpy() == 0)


def _top_distinct(v: Array, n: int) -> npt.NDArray[np.intp]:
    """Indices of (up to) ``n`` cells with the largest distinct values of ``v`` (12 digits)."""
    m = min(64 * n, v.size)
    top = np.argpartition(v, v.size - m)[v.size - m :]
    top = top[np.argsort(v[top])[::-1]]
    scale = abs(v[top[0]]) or 1.0
    _, first = np.unique(np.round(v[top] / scale, 12), return_index=True)
    return top[np.sort(first)][:n]
