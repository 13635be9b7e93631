r"""The stable time step of central differences with a lumped mass, from a law's bound.

Central differences ``M a = -f_int(u)`` are stable for ``dt < 2 / omega_max``, with
``omega_max^2`` the largest eigenvalue of ``(K_t, M)`` over every tangent ``K_t`` the
law can produce (DESIGN.md, "The guarantee"). If ``C_t <= C_bar`` in the Loewner
order at every strain (a scalar bound ``||C_t|| <= L`` is ``C_bar = L I``), then
``x^T K_t x <= x^T K_bar x`` with ``K_bar = sum_e int_e B^T C_bar B``. For any split
of the lumped mass into non-negative diagonal element parts, ``M = sum_e D_e``,

.. math::
    \omega_{\max}^2 \le \lambda_{\max}(K_{\bar C}, M)
        \le \max_e g_e, \qquad g_e = \lambda_{\max}(K_{\bar C,e}, D_e),

the element eigenvalue inequality (``x^T K x = sum_e x_e^T K_e x_e <= sum_e g_e
x_e^T D_e x_e <= max_e g_e x^T M x``). ``method="element"`` starts from the cells'
own lumped masses, moves mass towards the stiffest cells (Note [Mass splitting]
in ``_element``), computes every ``g_e`` in one batch and certifies the maximum
(Note [Certified maximum]; a compiled kernel where a C compiler is present, Note
[Compiled element bound] in ``_ckernel``): ``dt = safety * 2 / sqrt(max_e g_e)``. ``"inertia"``
certifies the middle term itself: a Krylov-Schur estimate ``lambda``, then an
LDL^T factorization of ``lambda (1 + 1e-6) M - K_bar`` without negative pivots
(Note [Inertia certificate]); exact to 1e-6 but a sparse direct factorization.
``"global"`` is that estimate alone (a Krylov eigenvalue converges from below),
``"courant"`` is ``h_min / (p c)`` with ``h`` the cell diameter and ``c`` the
fastest wave speed of ``C_bar``; both are estimates. Boundary conditions are never
applied: they can only lower ``omega_max``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from dolfinx import fem, mesh
from mpi4py import MPI

from snmech.fem import _ckernel, _element
from snmech.fem._mandel import mandel_strain
from snmech.fem.mass import lumped_mass

logger = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]

METHODS = ("element", "inertia", "global", "courant")
CERTIFIED = ("element", "inertia")

# Relative inflation of the certified eigenvalue bound, covering float64 rounding
# of the geometry, the element matrices and the Cholesky/eigenvalue kernels.
ROUNDING_RTOL = 1e-10
_SYMMETRY_RTOL = 1e-8
_CACHE_BYTES = 1 << 28  # keep element matrices between the two passes below this size
# "auto" balancing is skipped when max trace <= this x mean trace of the element operators
UNIFORM_SPREAD = 1.05


@dataclass(frozen=True)
class TimeStepReport:
    """A stable time step and where it comes from.

    Attributes:
        dt: time step (s), ``safety`` applied.
        method: ``"element"``, ``"inertia"`` (certified), ``"global"`` or ``"courant"``.
        certified: True when ``dt`` is a proven bound (element and inertia).
        safety: the factor applied to the critical step ``2 / omega_max``.
        bound: ``"scalar"`` (``||C_t|| <= L``) or ``"matrix"`` (``C_t <= C_bar``).
        lipschitz: ``L``, or ``||C_bar||_2`` (Pa).
        omega_max: bound (element) or estimate of the highest angular frequency (rad/s).
        critical_cell: global index of the cell that sets ``dt`` (None for the
            global methods).
        critical_midpoint: its midpoint (m), ``gdim`` entries.
        critical_factor: its ``omega^2`` (1/s^2): ``g_e`` (element, within a relative
            1e-6 of the maximum) or ``(2 p c / h)^2`` (courant).
        quadrature_degree: stiffness rule the bound holds for (see stable_time_step).
        num_cells: global number of cells.
        num_dofs: global number of displacement dofs.
        note: caveats (e.g. a law whose tangent may be non-symmetric).
    """

    dt: float
    method: str
    certified: bool
    safety: float
    bound: str
    lipschitz: float
    omega_max: float
    critical_cell: int | None
    critical_midpoint: tuple[float, ...] | None
    critical_factor: float | None
    quadrature_degree: int
    num_cells: int
    num_dofs: int
    note: str = ""

    @property
    def dt_critical(self) -> float:
        """``2 / omega_max`` (s): the step without the safety factor."""
        return 2.0 / self.omega_max

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        if d["critical_midpoint"] is not None:
            d["critical_midpoint"] = list(d["critical_midpoint"])
        return d


def stable_time_step(
    V_or_mesh: fem.FunctionSpace | mesh.Mesh,
    density: float | fem.Function,
    lipschitz: Any,
    method: str = "element",
    safety: float = 0.9,
    *,
    degree: int = 1,
    quadrature_degree: int | None = None,
    balance: int | str = "auto",
    chunk_size: int = 32768,
) -> TimeStepReport:
    r"""Stable central-difference time step for a law bound on a mesh (lumped mass).

    Args:
        V_or_mesh: a vector Lagrange space (block size = gdim), or a mesh for
            which the P``degree`` vector space is made. 2D is plane strain.
            Triangles, tetrahedra, quadrilaterals, hexahedra; degree 1, and 2
            on simplices; straight-sided cells.
        density: kg/m^3, a positive number or a positive DG0 Function.
        lipschitz: the law's certified bound: a number ``L`` (Pa) with
            ``||C_t||_2 <= L``; a symmetric PSD Mandel matrix ``C_bar`` (Pa) of
            shape ``(k, k)`` (k = 6 in 3D, 3 in plane strain) with ``C_t <= C_bar``
            in the Loewner order; or a law, whose ``loewner_bound()`` is used if
            it has one, else ``lipschitz_bound()``.
        method: ``"element"`` (certified, cheap: batched element eigenproblems),
            ``"inertia"`` (certified, within 1e-6 of ``lambda_max(K_bar, M)``, costs
            a sparse LDL^T factorization), ``"global"`` (SLEPc estimate of the
            same) or ``"courant"`` (``h_min / (p c)`` estimate).
        safety: factor in (0, 1] applied to ``2 / omega_max``.
        degree: Lagrange degree when a mesh is given (ignored for a space).
        quadrature_degree: the rule of the solver's internal force. On affine
            simplices any rule of degree >= ``2 (p - 1)`` (the default) gives the
            same bound; on quadrilaterals/hexahedra (default 2: 2 x 2 (x 2) Gauss)
            pass the solver's degree, the bound holds for that rule.
        balance: rounds of mass splitting for ``"element"`` (Note [Mass splitting]
            in ``snmech.fem._element``); 0 keeps each cell's own lumped mass;
            ``"auto"`` does 3 rounds only where they can help (element operators
            that differ by more than 5 % in trace: distorted or graded meshes).
        chunk_size: cells per batch (memory: about ``chunk_size * 20`` kB for Q1 hexes).

    Returns:
        The report; ``dt`` is certified for ``"element"`` and ``"inertia"``.

    Raises:
        ValueError: an invalid density, bound, method, safety or space.
        TypeError: ``lipschitz`` is none of the accepted kinds.

    Example:
        >>> import snmech.fem
        >>> from dolfinx import mesh
        >>> from mpi4py import MPI
        >>> from snmech.fem.timestep import stable_time_step
        >>> from snmech.material import LinearElastic
        >>> box = mesh.create_unit_cube(MPI.COMM_SELF, 4, 4, 4)
        >>> report = stable_time_step(box, 7800.0, LinearElastic(210e9, 0.3))
        >>> report.certified, f"{report.dt:.3e}"
        (True, '1.826e-05')
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if not (isinstance(safety, (int, float)) and 0.0 < safety <= 1.0):
        raise ValueError(f"safety must be in (0, 1], got {safety}")
    if chunk_size < 1 or not (balance == "auto" or (isinstance(balance, int) and balance >= 0)):
        raise ValueError(
            f"need chunk_size >= 1 and balance 'auto' or >= 0, got {chunk_size}, {balance!r}"
        )
    if isinstance(V_or_mesh, mesh.Mesh):
        V = _element.vector_space(V_or_mesh, degree)
    elif isinstance(V_or_mesh, fem.FunctionSpace):
        V = V_or_mesh
    else:
        raise TypeError(f"need a dolfinx FunctionSpace or Mesh, got {type(V_or_mesh).__name__}")
    cell, p, gdim = _element.check_space(V)
    k = 6 if gdim == 3 else 3
    kind, C, note = parse_bound(lipschitz, k)
    rho = _cell_density(density, V.mesh)
    q = (
        _element.default_quadrature_degree(cell, p)
        if quadrature_degree is None
        else quadrature_degree
    )
    if q < 0:
        raise ValueError(f"quadrature_degree must be >= 0, got {q}")
    domain = V.mesh
    tdim = domain.topology.dim
    if method == "element":
        g, cell_index, factor = _element_bound(V, density, rho, C, q, chunk_size, balance)
    elif method in ("global", "inertia"):
        g = _global_bound(V, density, C, q, certify=method == "inertia")
        cell_index, factor = None, None
    else:
        g, cell_index, factor = _courant(V, rho, C, p)
    critical, midpoint, factor = _locate(domain, cell_index, factor)
    omega = math.sqrt(g)
    return TimeStepReport(
        dt=float(safety) * 2.0 / omega,
        method=method,
        certified=method in CERTIFIED,
        safety=float(safety),
        bound=kind,
        lipschitz=float(np.linalg.eigvalsh(C)[-1]),
        omega_max=omega,
        critical_cell=critical,
        critical_midpoint=midpoint,
        critical_factor=factor,
        quadrature_degree=int(q),
        num_cells=int(domain.topology.index_map(tdim).size_global),
        num_dofs=int(V.dofmap.index_map.size_global * gdim),
        note=note,
    )


def parse_bound(lipschitz: Any, k: int) -> tuple[str, Array, str]:
    """Return ``(kind, C_bar, note)``: a scalar ``L`` becomes ``L I`` (Pa, ``(k, k)``).

    Raises:
        ValueError: non-finite, non-positive, non-symmetric, not PSD or wrongly sized.
        TypeError: not a number, a matrix or a law.
    """
    note = ""
    if hasattr(lipschitz, "loewner_bound") or hasattr(lipschitz, "lipschitz_bound"):
        size = getattr(getattr(lipschitz, "kinematics", None), "size", k)
        if size != k:
            raise ValueError(f"the law works on Mandel vectors of size {size}, the mesh needs {k}")
        if getattr(lipschitz, "kind", None) == "direct":
            note = "direct law: the tangent may be non-symmetric; dt covers its symmetric part"
            logger.warning(note)
        if hasattr(lipschitz, "loewner_bound"):
            lipschitz = np.asarray(lipschitz.loewner_bound(), dtype=np.float64)
        else:
            lipschitz = float(lipschitz.lipschitz_bound())
    if isinstance(lipschitz, bool):
        raise TypeError("lipschitz must be a number, a (k, k) matrix or a law, got a bool")
    if isinstance(lipschitz, (int, float, np.floating, np.integer)):
        L = float(lipschitz)
        if not (math.isfinite(L) and L > 0):
            raise ValueError(f"the Lipschitz bound must be finite and > 0 Pa, got {L}")
        return "scalar", L * np.eye(k), note
    try:
        C = np.asarray(lipschitz, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"lipschitz must be a number, a (k, k) matrix or a law, got {type(lipschitz).__name__}"
        ) from None
    if C.ndim == 0:
        return parse_bound(float(C), k)
    if C.shape != (k, k):
        raise ValueError(f"C_bar must be a ({k}, {k}) Mandel matrix for this mesh, got {C.shape}")
    if not np.all(np.isfinite(C)):
        raise ValueError("C_bar has NaN or infinite entries")
    scale = float(np.abs(C).max())
    if scale == 0:
        raise ValueError("C_bar is zero")
    if np.abs(C - C.T).max() > _SYMMETRY_RTOL * scale:
        raise ValueError(f"C_bar must be symmetric, max |C - C^T| = {np.abs(C - C.T).max():.3e}")
    C = 0.5 * (C + C.T)
    lam = np.linalg.eigvalsh(C)
    if lam[0] < -_SYMMETRY_RTOL * lam[-1] or lam[-1] <= 0:
        raise ValueError(
            "C_bar must be positive semi-definite, eigenvalues range "
            f"{lam[0]:.3e}..{lam[-1]:.3e} Pa"
        )
    return "matrix", C, note


def _cell_density(density: float | fem.Function, domain: mesh.Mesh) -> Array:
    """Density per local cell (owned then ghost), kg/m^3."""
    n = domain.topology.index_map(domain.topology.dim)
    ncells = n.size_local + n.num_ghosts
    if isinstance(density, fem.Function):
        Q = density.function_space
        be = Q.element.basix_element
        if Q.mesh is not domain or be.degree != 0 or Q.dofmap.bs != 1 or be.value_size != 1:
            raise ValueError("a density Function must be scalar DG0 on the same mesh")
        rho = np.asarray(density.x.array[Q.dofmap.list[:ncells, 0]], dtype=np.float64)
    elif isinstance(density, (int, float, np.floating)) and not isinstance(density, bool):
        rho = np.full(ncells, float(density), dtype=np.float64)
    else:
        raise TypeError(f"density must be a number or a DG0 Function, got {type(density).__name__}")
    bad = int(np.count_nonzero(~(np.isfinite(rho) & (rho > 0))))
    if domain.comm.allreduce(bad, op=MPI.SUM):
        raise ValueError(f"density must be finite and > 0 kg/m^3 (got {bad} bad values here)")
    return rho


def _loewner_root(C: Array) -> Array:
    """``R`` with ``R^T R >= C`` (equal up to rounding): negative eigenvalues clipped."""
    lam, Q = np.linalg.eigh(C)
    return np.asarray(np.sqrt(np.clip(lam, 0.0, None))[:, None] * Q.T)


def _element_bound(
    V: fem.FunctionSpace,
    density: float | fem.Function,
    rho: Array,
    C: Array,
    q: int,
    chunk_size: int,
    balance: int | str,
) -> tuple[float, int | None, float | None]:
    """Certified ``max_e g_e`` over all ranks; the owning rank's local cell and its ``g``.

    Pass 1 bounds ``g_e`` with each cell's own lumped mass. With ``balance``
    rounds (``"auto"``: 3 rounds, but only when the element operators are not
    uniform: on a uniform mesh re-splitting cannot lower the maximum) the mass is
    re-split (Note [Mass splitting]) and pass 2 bounds ``g_e`` again; both bounds
    are certified, the smaller is returned. With the compiled kernel (Note
    [Compiled element bound], every cell type) the scaled gradients are kept
    between the passes; without it the element stiffness matrices (node form) or
    gradients (point form), when they fit in ``_CACHE_BYTES``.
    """
    domain = V.mesh
    n_owned = domain.topology.index_map(domain.topology.dim).size_local
    ref = _element.reference_data(V, q)
    mref = _element.mass_reference(V)
    R = _loewner_root(C)
    C4 = _element.fourth_order(C, domain.geometry.dim)
    simplex = domain.topology.cell_type in _element.SIMPLICES
    gdim = domain.geometry.dim
    dofs = V.dofmap.list[:n_owned]
    nq, nn, k = ref.weights.size, dofs.shape[1], C.shape[0]
    node_form = nq * k > nn * gdim  # Note [Reduced element operator]
    chunks = [
        np.arange(start, min(start + chunk_size, n_owned), dtype=np.int32)
        for start in range(0, n_owned, chunk_size)
    ]
    # Note [Compiled element bound]: with the kernel every cell type takes the node form
    # (it never stores the matrices, so their size no longer matters) and keeps gradients
    kernel = _ckernel.node_form_kernel()
    if kernel is not None:
        per_cell = nq * nn * gdim + nn * gdim
    elif node_form:
        per_cell = (nn * gdim) ** 2
    else:
        per_cell = nq * nn * gdim + nq
    keep = n_owned * (per_cell + nn) * 8 < _CACHE_BYTES
    cache: dict[int, tuple[Array, ...]] = {}
    norms: dict[int, Array] = {}  # block norms of K_e (compiled node form), for balancing

    def parts(i: int, cells: npt.NDArray[np.int32]) -> tuple[Array, ...]:
        """Chunk ``i``'s element data.

        ``(Gs, diag K_e, mass)`` (compiled node form), ``(K_e, mass)`` (node form) or
        ``(G, wdet, mass)`` (point form).
        """
        if i in cache:
            return cache[i]
        X = _element.cell_coordinates(domain, cells)
        out: tuple[Array, ...]
        if kernel is not None:
            Gs, mass, Kdiag = _element.node_form_batch(
                kernel, X, rho[cells], ref, mref, C4, simplex
            )
            out = (Gs, Kdiag, mass)
        else:
            G, wdet, mass = _element.element_batch(X, rho[cells], ref, mref, simplex)
            if node_form:
                out = (_element.node_form(G * np.sqrt(wdet)[:, :, None, None], C), mass)
            else:
                out = (G, wdet, mass)
        if keep:
            cache[i] = out
        return out

    def chunk_maximum(
        i: int, part: tuple[Array, ...], mass: Array, floor: float, first: bool
    ) -> tuple[_element.ChunkMaximum, Array]:
        """Certified maximum of chunk ``i`` for ``mass`` and its operators' traces."""
        if kernel is not None:
            chunk, tr, F = _element.certified_maximum_compiled(
                kernel, part[0], mass, C, part[1], floor, blocks=first
            )
            if F is not None:
                norms[i] = F
            return chunk, tr
        if node_form:
            S = _element.mass_scaled(part[0], mass)
        else:
            S = _element.reduced_operator(part[0], part[1], mass, C, R)
        return _element.certified_maximum(S, floor), np.einsum("cii->c", S)

    def certify(split: Array | None) -> tuple[float, int | None, float, float, float]:
        """Certified max over this rank's cells for a mass split (None: own masses).

        Also the best cell and its value, and the largest and summed traces.
        """
        upper, best, value, tr_max, tr_sum = 0.0, None, -1.0, 0.0, 0.0
        for i, cells in enumerate(chunks):
            part = parts(i, cells)
            mass = part[-1] if split is None else split[cells]
            chunk, tr = chunk_maximum(i, part, mass, upper, split is None)
            upper = max(upper, chunk.upper)
            if chunk.value > value:
                best, value = int(cells[chunk.index]), chunk.value
            tr_max, tr_sum = max(tr_max, float(tr.max(initial=0.0))), tr_sum + float(tr.sum())
        return upper, best, value, tr_max, tr_sum

    comm = domain.comm
    upper, best, value, tr_max, tr_sum = certify(None)
    rounds = 3 if balance == "auto" else int(balance)
    if balance == "auto":
        tr_max = comm.allreduce(tr_max, op=MPI.MAX)
        tr_mean = comm.allreduce(tr_sum, op=MPI.SUM) / max(comm.allreduce(n_owned, op=MPI.SUM), 1)
        if tr_max <= UNIFORM_SPREAD * tr_mean:
            rounds = 0
    if rounds:
        masses = [np.zeros((0, nn))]
        blocks = [np.zeros((0, nn, nn))]
        for i, cells in enumerate(chunks):
            part = parts(i, cells)
            masses.append(part[-1])
            if kernel is not None:
                blocks.append(norms[i])
            elif node_form:
                blocks.append(_element.node_block_norms(part[0], gdim))
            else:
                blocks.append(_element.block_norms(part[0], part[1], C, R))
        own = np.concatenate(masses)
        node_mass = _element.node_masses(own, dofs, V.dofmap.index_map)  # = lumped_mass's
        D = _element.balance_masses(
            own,
            np.concatenate(blocks),
            node_mass,
            dofs,
            V.dofmap.index_map,
            rounds,
        )
        upper2, best2, value2, *_ = certify(D)
        # Any split gives a certified bound; keep the smaller (comparing global maxima).
        if comm.allreduce(upper2, op=MPI.MAX) < comm.allreduce(upper, op=MPI.MAX):
            upper, best, value = upper2, best2, value2
    g = comm.allreduce(upper, op=MPI.MAX) * (1.0 + ROUNDING_RTOL)
    return g, best, (value if best is not None else None)


def _scaled_stiffness(V: fem.FunctionSpace, density: float | fem.Function, C: Array, q: int) -> Any:
    """PETSc ``M^-1/2 K_bar M^-1/2`` (1/s^2), ``K_bar = int (C_bar eps(u)) . eps(v)``."""
    import ufl
    from dolfinx.fem.petsc import assemble_matrix

    domain = V.mesh
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    C_bar = fem.Constant(domain, C)
    dx = ufl.dx(metadata={"quadrature_degree": q})
    A = assemble_matrix(
        fem.form(ufl.inner(ufl.dot(C_bar, mandel_strain(u)), mandel_strain(v)) * dx)
    )
    A.assemble()
    s = A.createVecRight()
    s.array[:] = 1.0 / np.sqrt(lumped_mass(V, density).array[: s.getLocalSize()])
    A.diagonalScale(s, s)
    s.destroy()
    return A


def _largest_eigenvalue(A: Any) -> float:
    """SLEPc Krylov-Schur estimate of ``lambda_max`` of a symmetric PETSc matrix."""
    from slepc4py import SLEPc

    eps = SLEPc.EPS().create(A.getComm())
    try:
        eps.setOperators(A)
        eps.setProblemType(SLEPc.EPS.ProblemType.HEP)
        eps.setWhichEigenpairs(SLEPc.EPS.Which.LARGEST_REAL)
        eps.setDimensions(1)
        eps.setTolerances(1e-10, 2000)
        eps.solve()
        if eps.getConverged() < 1:
            raise RuntimeError("SLEPc did not converge to the largest eigenvalue")
        return float(eps.getEigenvalue(0).real)
    finally:
        eps.destroy()


def _is_below(A: Any, U: float) -> bool:
    """Whether ``U I - A`` is positive definite: its LDL^T (MUMPS) has no pivot <= 0.

    Note [Inertia certificate]: by Sylvester's law of inertia, the signs of the
    pivots of ``U I - A = L D L^T`` count the eigenvalues of ``A`` above and below
    ``U``; none above (and no null pivot) proves ``lambda_max(A) < U``, up to the
    backward error of the factorization (pivoted, about ``1e-12 U`` in practice).
    """
    from petsc4py import PETSc

    B = A.copy()
    B.scale(-1.0)
    B.shift(U)
    B.setOption(PETSc.Mat.Option.SYMMETRIC, True)
    ksp = PETSc.KSP().create(A.getComm())
    try:
        ksp.setOperators(B)
        ksp.setType("preonly")
        pc = ksp.getPC()
        pc.setType("cholesky")
        pc.setFactorSolverType("mumps")
        pc.setFactorSetUpSolverType()
        factor = pc.getFactorMatrix()
        factor.setMumpsIcntl(13, 1)  # inertia in parallel
        factor.setMumpsIcntl(24, 1)  # report null pivots
        pc.setUp()
        negative, zero, _ = factor.getInertia()
        return bool(negative == 0 and zero == 0)
    finally:
        ksp.destroy()
        B.destroy()


def _global_bound(
    V: fem.FunctionSpace, density: float | fem.Function, C: Array, q: int, certify: bool
) -> float:
    """``lambda_max(K_bar, M)``: the Krylov estimate, or with ``certify`` a proven bound.

    The certified bound is the estimate times ``1 + 1e-6`` once Note [Inertia
    certificate] holds for it (widening the gap 100-fold after each failure).
    """
    A = _scaled_stiffness(V, density, C, q)
    try:
        lam = _largest_eigenvalue(A)
        if not certify:
            return lam
        for gap in (1e-6, 1e-4, 1e-2, 1.0):
            if _is_below(A, lam * (1.0 + gap)):
                return lam * (1.0 + gap) * (1.0 + ROUNDING_RTOL)
        raise RuntimeError("no certified bound within 2 x the Krylov estimate")
    finally:
        A.destroy()


def max_wave_modulus(C: Array, gdim: int, directions: int = 4000) -> float:
    """``max_n lambda_max(Q(n))`` (Pa), ``Q_ij(n) = C_iljm n_l n_m`` the acoustic tensor.

    Sampled over ``directions`` unit vectors (a Fibonacci sphere or a circle): an
    estimate, exact for isotropic ``C`` (``lambda + 2 mu``).
    """
    T = _element.mandel_gradient_map(gdim)
    C4 = np.einsum("pil,pq,qjm->iljm", T, C, T)
    if gdim == 2:
        t = np.linspace(0.0, np.pi, directions, endpoint=False)
        n = np.stack([np.cos(t), np.sin(t)], axis=1)
    else:
        i = np.arange(directions) + 0.5
        z = 1.0 - 2.0 * i / directions
        phi = np.pi * (1.0 + 5**0.5) * i
        r = np.sqrt(1.0 - z * z)
        n = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    Q = np.einsum("iljm,nl,nm->nij", C4, n, n)
    return float(np.linalg.eigvalsh(Q)[:, -1].max())


def _courant(
    V: fem.FunctionSpace, rho: Array, C: Array, degree: int
) -> tuple[float, int | None, float | None]:
    """``(2 p c_e / h_e)^2`` maximized over cells: ``h_e`` the cell diameter, ``c_e^2 = P / rho_e``.

    ``P`` is ``L`` for a scalar bound (``C = L I``) and the largest acoustic-tensor
    eigenvalue of ``C_bar`` otherwise.
    """
    domain = V.mesh
    gdim = domain.geometry.dim
    n_owned = domain.topology.index_map(domain.topology.dim).size_local
    scalar = np.allclose(C, C[0, 0] * np.eye(len(C)), rtol=0, atol=0)
    modulus = float(C[0, 0]) if scalar else max_wave_modulus(C, gdim)
    cells = np.arange(n_owned, dtype=np.int32)
    X = _element.cell_coordinates(domain, cells)
    h = np.linalg.norm(X[:, :, None] - X[:, None], axis=-1).max(axis=(1, 2))
    w2 = (2.0 * degree / h) ** 2 * modulus / rho[:n_owned]
    best = int(np.argmax(w2)) if n_owned else None
    local = float(w2[best]) if best is not None else 0.0
    return domain.comm.allreduce(local, op=MPI.MAX), best, (local if best is not None else None)


def _locate(
    domain: mesh.Mesh, local_cell: int | None, factor: float | None
) -> tuple[int | None, tuple[float, ...] | None, float | None]:
    """Global index, midpoint and factor of the rank-wide critical cell (collective)."""
    comm = domain.comm
    value = factor if factor is not None else -math.inf
    if comm.allreduce(local_cell is not None, op=MPI.LOR) is False:
        return None, None, None
    _, owner = comm.allreduce((value, comm.rank), op=MPI.MAXLOC)
    info = None
    if comm.rank == owner and local_cell is not None:
        tdim = domain.topology.dim
        start = domain.topology.index_map(tdim).local_range[0]
        mid = mesh.compute_midpoints(domain, tdim, np.array([local_cell], dtype=np.int32))[0]
        info = (int(start + local_cell), tuple(float(c) for c in mid[: domain.geometry.dim]), value)
    located: tuple[int | None, tuple[float, ...] | None, float | None] = comm.bcast(
        info, root=owner
    )
    return located


def format_reports(reports: Sequence[TimeStepReport]) -> str:
    """A small text table: method, bound, dt, certified, and dt over the first element dt."""
    ref = next((r.dt for r in reports if r.method == "element"), None)
    rows = [["method", "bound", "dt (s)", "certified", "dt / dt_element"]]
    for r in reports:
        ratio = f"{r.dt / ref:.3f}" if ref else "-"
        rows.append([r.method, r.bound, f"{r.dt:.4e}", "yes" if r.certified else "no", ratio])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
