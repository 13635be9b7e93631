"""Static linear elasticity on dolfinx: a reference solve and the install check.

The explicit solver is verified against this implicit solve (and against beam
theory), so it is kept deliberately plain: UFL stress, PETSc direct solver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem, mesh
from dolfinx.fem.petsc import LinearProblem
from mpi4py import MPI


def solve_linear_elastic(
    domain: mesh.Mesh,
    E: float,
    nu: float,
    *,
    degree: int = 1,
    clamped: Callable[[np.ndarray], np.ndarray] | None = None,
    body_force: tuple[float, ...] | None = None,
) -> fem.Function:
    r"""Solve ``-div sigma(u) = f`` with ``u = 0`` where ``clamped`` holds.

    .. math:: \int_\Omega \sigma(u) : \varepsilon(v)\,dx = \int_\Omega f \cdot v\,dx

    Args:
        domain: a 2D (plane strain) or 3D dolfinx mesh, SI units (m).
        E: Young's modulus in Pa.
        nu: Poisson's ratio (-1 < nu < 0.5).
        degree: Lagrange degree of the displacement.
        clamped: marker ``x -> bool array`` for the clamped boundary, ``x`` of
            shape ``(3, n)``; default: the face ``x[0] == min x``.
        body_force: force per volume in N/m^3, one entry per dimension; default
            zero.

    Returns:
        The displacement (m) in a vector Lagrange space.

    Raises:
        ValueError: invalid material constants or a body force of the wrong size.
    """
    gdim = domain.geometry.dim
    if not (E > 0 and -1.0 < nu < 0.5):
        raise ValueError(f"need E > 0 and -1 < nu < 0.5, got E={E}, nu={nu}")
    f = np.zeros(gdim) if body_force is None else np.asarray(body_force, dtype=float)
    if f.shape != (gdim,):
        raise ValueError(f"body_force must have {gdim} entries, got {f.shape}")
    if clamped is None:
        x0 = domain.comm.allreduce(float(domain.geometry.x[:, 0].min()), op=MPI.MIN)

        def clamped(x: np.ndarray) -> np.ndarray:
            return np.isclose(x[0], x0)

    V = fem.functionspace(domain, ("Lagrange", degree, (gdim,)))
    lmbda = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)

    def eps(w: ufl.Argument) -> ufl.core.expr.Expr:
        return ufl.sym(ufl.grad(w))

    sigma = lmbda * ufl.tr(eps(u)) * ufl.Identity(gdim) + 2 * mu * eps(u)
    a = ufl.inner(sigma, eps(v)) * ufl.dx
    L = ufl.inner(fem.Constant(domain, f), v) * ufl.dx
    facets = mesh.locate_entities_boundary(domain, domain.topology.dim - 1, clamped)
    dofs = fem.locate_dofs_topological(V, domain.topology.dim - 1, facets)
    bc = fem.dirichletbc(np.zeros(gdim), dofs, V)
    problem = LinearProblem(
        a,
        L,
        bcs=[bc],
        petsc_options_prefix="snmech_static_",
        petsc_options={
            "ksp_type": "preonly",
            "pc_type": "lu",
            "pc_factor_mat_solver_type": "mumps",
        },
    )
    uh = problem.solve()
    assert isinstance(uh, fem.Function)
    return uh


@dataclass(frozen=True)
class CantileverCheck:
    """Tip deflection of a cantilever under self-weight, FEM vs Euler-Bernoulli.

    Attributes:
        deflection_fem: mean vertical tip displacement magnitude (m).
        deflection_beam: ``q L^4 / (8 E I)`` (m).
        ratio: ``deflection_fem / deflection_beam``.
        ndofs: global number of displacement dofs.
        ranks: MPI ranks used.
    """

    deflection_fem: float
    deflection_beam: float
    ratio: float
    ndofs: int
    ranks: int


def cantilever_check(
    comm: MPI.Comm = MPI.COMM_WORLD, *, n: tuple[int, int, int] = (24, 3, 3)
) -> CantileverCheck:
    """Solve a steel cantilever (1 m x 0.1 m x 0.1 m) under gravity with P2 tetrahedra.

    Args:
        comm: communicator to solve on.
        n: cells along length, width, height.

    Returns:
        The deflections; Euler-Bernoulli neglects shear, so the ratio is a bit above 1.
    """
    length, h = 1.0, 0.1
    E, nu, rho, g = 210e9, 0.3, 7850.0, 9.81
    domain = mesh.create_box(
        comm, [np.zeros(3), np.array([length, h, h])], list(n), mesh.CellType.tetrahedron
    )
    uh = solve_linear_elastic(domain, E, nu, degree=2, body_force=(0.0, 0.0, -rho * g))
    # mean over the tip face: integrate over the face x = L only
    fdim = domain.topology.dim - 1
    tip_facets = mesh.locate_entities_boundary(domain, fdim, lambda x: np.isclose(x[0], length))
    tags = mesh.meshtags(domain, fdim, tip_facets, np.full(len(tip_facets), 1, dtype=np.int32))
    ds = ufl.Measure("ds", domain=domain, subdomain_data=tags)
    tip = comm.allreduce(fem.assemble_scalar(fem.form(uh[2] * ds(1))), op=MPI.SUM) / h**2
    q = rho * g * h * h
    inertia = h**4 / 12.0
    beam = q * length**4 / (8 * E * inertia)
    ndofs = uh.function_space.dofmap.index_map.size_global * 3
    return CantileverCheck(abs(tip), beam, abs(tip) / beam, ndofs, comm.size)
