"""Lumped (diagonal) mass for explicit dynamics."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import ufl
from dolfinx import fem, la, mesh
from mpi4py import MPI


def lumped_mass(V: fem.FunctionSpace, density: float | fem.Function) -> la.Vector:
    """Diagonal mass (kg) of a vector Lagrange space, consistent on owned and ghost dofs.

    Degree 1 (P1 simplices, Q1 quads/hexes): row-sum lumping, ``m_i = sum_j M_ij``,
    which is positive for these elements. Degree >= 2 on simplices: HRZ lumping,
    the diagonal of the consistent mass scaled so each displacement component
    carries the total mass; on affine cells this equals element-wise HRZ
    (``diag(M_e) * rho |e| / tr M_e``) and every entry is positive. Row sums of
    higher-order elements can be zero or negative, hence HRZ.

    Args:
        V: vector Lagrange space (block size = geometric dimension).
        density: kg/m^3, a positive number or a (DG0, P1 ...) Function.

    Returns:
        A ``dolfinx.la.Vector`` with ``V``'s layout (block-interleaved dofs).

    Raises:
        ValueError: non-positive density, higher degree on non-simplex cells, or
            a non-positive lumped mass entry (a degenerate mesh).
    """
    domain = V.mesh
    if isinstance(density, (int, float)) and not density > 0:
        raise ValueError(f"density must be > 0 kg/m^3, got {density}")
    degree = V.element.basix_element.degree
    gdim = domain.geometry.dim
    rho = density if isinstance(density, fem.Function) else fem.Constant(domain, float(density))
    v = ufl.TestFunction(V)
    m = fem.Function(V)
    if degree == 1:
        ones = ufl.as_vector([1.0] * gdim)
        fem.assemble_vector(m.x.array, fem.form(rho * ufl.inner(ones, v) * ufl.dx))
        m.x.scatter_reverse(la.InsertMode.add)
        m.x.scatter_forward()
    else:
        if domain.topology.cell_type not in (mesh.CellType.triangle, mesh.CellType.tetrahedron):
            raise ValueError("lumped mass of degree >= 2 needs triangles or tetrahedra (HRZ)")
        u = ufl.TrialFunction(V)
        A = fem.assemble_matrix(fem.form(rho * ufl.inner(u, v) * ufl.dx))
        A.scatter_reverse()  # add the ghost-row contributions to their owners
        M = A.to_scipy()
        diag = fem.Function(V)
        n_owned = V.dofmap.index_map.size_local * gdim
        diag.x.array[:n_owned] = M.diagonal()[:n_owned]
        diag.x.scatter_forward()
        total = domain.comm.allreduce(fem.assemble_scalar(fem.form(rho * ufl.dx)), op=MPI.SUM)
        owned = diag.x.array[:n_owned].reshape(-1, gdim)
        per_component = domain.comm.allreduce(owned.sum(axis=0), op=MPI.SUM)
        m.x.array[:] = (diag.x.array.reshape(-1, gdim) * (total / per_component)).ravel()
    _check_positive(m.x.array, domain.comm)
    return m.x


def _check_positive(m: npt.NDArray[np.floating], comm: MPI.Comm) -> None:
    bad = int(np.count_nonzero(~(m > 0)))
    if comm.allreduce(bad, op=MPI.SUM):
        raise ValueError(
            f"lumped mass has {bad} non-positive or NaN entries on this rank: "
            "degenerate (zero or inverted volume) cells or a bad density"
        )
