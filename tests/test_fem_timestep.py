"""Stable time step: the certified dt never exceeds the exact critical step 2/omega_max.

References are independent of the bound's code path: stiffness matrices are
assembled by dolfinx from plain UFL (``sigma = lambda tr(eps) I + 2 mu eps``, or a
DG0 tangent field) and the exact omega_max^2 comes from a dense
``scipy.linalg.eigh(K, diag(M))`` with M the solver's lumped mass.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.fem

RHO = 7800.0
STEEL = (210e9, 0.3)


@pytest.fixture(scope="module")
def fx():
    """dolfinx, scipy and snmech, imported once (conftest has loaded snmech.fem first)."""
    import scipy.linalg
    import ufl
    from dolfinx import fem, mesh
    from mpi4py import MPI

    from snmech.fem import _element
    from snmech.fem.mass import lumped_mass
    from snmech.fem.timestep import format_reports, stable_time_step
    from snmech.material import LinearElastic

    return SimpleNamespace(
        scipy=scipy,
        ufl=ufl,
        fem=fem,
        mesh=mesh,
        MPI=MPI,
        E=_element,
        lumped_mass=lumped_mass,
        format_reports=format_reports,
        stable_time_step=stable_time_step,
        LinearElastic=LinearElastic,
    )


def jitter(x, amplitude, gdim):
    """Move interior nodes of the unit box by up to ``amplitude`` per component.

    A hash of the coordinates (not of node numbers), so every MPI partition
    moves a node the same way.
    """
    inner = np.all((x[:, :gdim] > 1e-9) & (x[:, :gdim] < 1 - 1e-9), axis=1)  # unit box
    a = np.array([[12.9898, 78.233, 37.719], [39.3468, 11.135, 83.155], [73.156, 52.235, 9.151]])
    r = 2.0 * np.modf(np.abs(np.sin(x @ a.T + 0.5) * 43758.5453))[0] - 1.0
    x[inner, :gdim] += amplitude * r[inner, :gdim]


def make_mesh(fx, cell, n, distort, comm=None):
    """Unit square/cube with n cells per side; distorted by 22 % of h."""
    comm = fx.MPI.COMM_SELF if comm is None else comm
    ct = fx.mesh.CellType[cell]
    if cell in ("triangle", "quadrilateral"):
        domain = fx.mesh.create_unit_square(comm, n, n, ct)
    else:
        domain = fx.mesh.create_unit_cube(comm, n, n, n, ct)
    if distort:
        jitter(domain.geometry.x, 0.22 / n, domain.geometry.dim)
    return domain


def steel(fx, gdim):
    return fx.LinearElastic(*STEEL, "3d" if gdim == 3 else "plane_strain")


def strain(fx, u):
    """Mandel strain written out here (not snmech's helper)."""
    e = fx.ufl.sym(fx.ufl.grad(u))
    s = math.sqrt(2.0)
    if e.ufl_shape == (3, 3):
        return fx.ufl.as_vector([e[0, 0], e[1, 1], e[2, 2], s * e[1, 2], s * e[0, 2], s * e[0, 1]])
    return fx.ufl.as_vector([e[0, 0], e[1, 1], s * e[0, 1]])


def dense(fx, a):
    return fx.fem.assemble_matrix(fx.fem.form(a)).to_scipy().toarray()


def stiffness_elastic(fx, V, law, q=None):
    ufl = fx.ufl
    d = V.mesh.geometry.dim
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)

    def eps(w):
        return ufl.sym(ufl.grad(w))

    sigma = law.lmbda * ufl.tr(eps(u)) * ufl.Identity(d) + 2 * law.mu * eps(u)
    md = {} if q is None else {"quadrature_degree": q}
    return dense(fx, ufl.inner(sigma, eps(v)) * ufl.dx(metadata=md))


def stiffness_tangent(fx, V, tangents):
    """K_t with a cell-wise constant Mandel tangent ``(ncells, k, k)`` (a DG0 tensor field)."""
    ufl = fx.ufl
    k = tangents.shape[1]
    Q = fx.fem.functionspace(V.mesh, ("DG", 0, (k, k)))
    Ct = fx.fem.Function(Q)
    ncells = tangents.shape[0]
    Ct.x.array.reshape(-1, k * k)[Q.dofmap.list[:ncells, 0]] = tangents.reshape(ncells, -1)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    return dense(fx, ufl.inner(ufl.dot(Ct, strain(fx, u)), strain(fx, v)) * ufl.dx)


def critical_dt(fx, K, m):
    """Exact 2 / omega_max of (K, diag(m))."""
    n = len(m)
    w = fx.scipy.linalg.eigh(K, np.diag(m), eigvals_only=True, subset_by_index=[n - 1, n - 1])
    return 2.0 / math.sqrt(w[-1])


# (cell, degree, n, distorted, min ratio certified/exact with C_bar)
CASES = [
    ("tetrahedron", 1, 4, False, 0.7),
    ("tetrahedron", 1, 4, True, 0.6),
    ("tetrahedron", 2, 2, False, 0.7),
    ("tetrahedron", 2, 3, True, 0.6),
    ("hexahedron", 1, 4, False, 0.7),
    ("hexahedron", 1, 4, True, 0.6),
    ("triangle", 1, 8, False, 0.7),
    ("triangle", 1, 8, True, 0.6),
    ("triangle", 2, 4, True, 0.6),
    ("quadrilateral", 1, 8, True, 0.6),
]


@pytest.mark.parametrize(("cell", "degree", "n", "distort", "ratio"), CASES)
def test_certified_dt_is_below_the_exact_critical_step(fx, cell, degree, n, distort, ratio):
    domain = make_mesh(fx, cell, n, distort)
    d = domain.geometry.dim
    law = steel(fx, d)
    V = fx.fem.functionspace(domain, ("Lagrange", degree, (d,)))
    q = None if cell in ("tetrahedron", "triangle") else 2  # the rule the bound is for
    exact = critical_dt(fx, stiffness_elastic(fx, V, law, q), fx.lumped_mass(V, RHO).array)
    matrix = fx.stable_time_step(V, RHO, law, safety=1.0)
    scalar = fx.stable_time_step(V, RHO, law.lipschitz_bound(), safety=1.0)
    plain = fx.stable_time_step(V, RHO, law, safety=1.0, balance=0)
    assert matrix.certified and matrix.bound == "matrix" and scalar.bound == "scalar"
    assert scalar.dt <= matrix.dt * (1 + 1e-12)
    assert plain.dt <= exact and scalar.dt <= exact
    assert ratio * exact <= matrix.dt <= exact
    glob = fx.stable_time_step(V, RHO, law, "global", safety=1.0)
    assert not glob.certified
    assert glob.dt == pytest.approx(exact, rel=1e-6)  # K_Cbar is the true K for linear elasticity
    inertia = fx.stable_time_step(V, RHO, law, "inertia", safety=1.0)
    assert inertia.certified and (1 - 1e-6) * exact <= inertia.dt <= exact


def test_safety_factor_and_report_fields(fx):
    domain = make_mesh(fx, "tetrahedron", 3, True)
    law = steel(fx, 3)
    r = fx.stable_time_step(domain, RHO, law, safety=0.5)
    assert r.dt == pytest.approx(0.5 * 2 / r.omega_max, rel=1e-14)
    assert r.dt_critical == pytest.approx(2 * r.dt)
    assert r.critical_factor <= r.omega_max**2 <= r.critical_factor * (1 + 1e-5)
    assert 0 <= r.critical_cell < r.num_cells and len(r.critical_midpoint) == 3
    assert r.num_dofs == 3 * 4**3 and r.lipschitz == pytest.approx(law.lipschitz_bound())
    d = r.to_dict()
    assert d["dt"] == r.dt and isinstance(d["critical_midpoint"], list)
    courant = fx.stable_time_step(domain, RHO, law, "courant", safety=0.5)
    text = fx.format_reports([r, courant])
    assert "element" in text and "courant" in text and "1.000" in text


def test_courant_uses_the_p_wave_speed(fx):
    """Isotropic C_bar: the fastest acoustic wave is the P wave, sqrt((lambda + 2 mu)/rho)."""
    domain = make_mesh(fx, "hexahedron", 2, False)
    law = steel(fx, 3)
    r = fx.stable_time_step(domain, RHO, law, "courant", safety=1.0)
    h = math.sqrt(3) / 2  # the diameter of a 1/2-cube
    assert r.dt == pytest.approx(h / math.sqrt(law.wave_modulus / RHO), rel=1e-9)
    s = fx.stable_time_step(domain, RHO, 5e11, "courant", safety=1.0)
    assert s.dt == pytest.approx(h / math.sqrt(5e11 / RHO), rel=1e-12)


@pytest.mark.parametrize(
    ("cell", "degree", "distort"),
    [
        ("tetrahedron", 1, True),
        ("tetrahedron", 2, True),
        ("hexahedron", 1, True),
        ("triangle", 2, True),
        ("quadrilateral", 1, True),
    ],
)
def test_element_masses_assemble_to_the_lumped_mass(fx, cell, degree, distort):
    domain = make_mesh(fx, cell, 3, distort)
    d = domain.geometry.dim
    V = fx.fem.functionspace(domain, ("Lagrange", degree, (d,)))
    rho = fx.fem.Function(fx.fem.functionspace(domain, ("DG", 0)))
    rho.x.array[:] = RHO * (1 + 0.5 * np.sin(np.arange(rho.x.array.size)))
    ncells = domain.topology.index_map(d).size_local
    cells = np.arange(ncells, dtype=np.int32)
    E = fx.E
    mref = E.mass_reference(V)
    _, wdet = E.geometry(
        E.cell_coordinates(domain, cells), mref, cell in ("triangle", "tetrahedron")
    )
    me = E.lumped_element_mass(wdet, rho.x.array[cells], mref)
    assembled = np.bincount(V.dofmap.list.ravel(), me.ravel())
    expected = fx.lumped_mass(V, rho).array.reshape(-1, d)
    for i in range(d):
        np.testing.assert_allclose(assembled, expected[:, i], rtol=1e-12)


def test_balanced_split_adds_up_to_the_lumped_mass(fx):
    domain = make_mesh(fx, "tetrahedron", 3, True)
    V = fx.fem.functionspace(domain, ("Lagrange", 1, (3,)))
    E = fx.E
    C = steel(fx, 3).loewner_bound()
    cells = np.arange(domain.topology.index_map(3).size_local, dtype=np.int32)
    ref, mref = E.reference_data(V, 0), E.mass_reference(V)
    G, wdet, me = E.element_batch(
        E.cell_coordinates(domain, cells), np.full(cells.size, RHO), ref, mref, True
    )
    M = fx.lumped_mass(V, RHO).array[::3]
    # the balancing's node masses, summed from the element masses, are the solver's
    np.testing.assert_allclose(E.node_masses(me, V.dofmap.list, V.dofmap.index_map), M, rtol=1e-13)
    F = E.block_norms(G, wdet, C, np.linalg.cholesky(C).T)
    D = E.balance_masses(me, F, M, V.dofmap.list, V.dofmap.index_map, 3)
    assert np.all(D > 0) and not np.allclose(D, me)
    np.testing.assert_allclose(np.bincount(V.dofmap.list.ravel(), D.ravel()), M, rtol=1e-13)


@pytest.mark.parametrize("cell", ["triangle", "tetrahedron", "hexahedron"])
def test_element_stiffness_matches_dolfinx(fx, cell):
    """Two cells: scattered K_e equals dolfinx's K; the reduced operator has the
    eigenvalues of (K_e, M_e); the block norms are those of K_e."""
    E = fx.E
    if cell == "triangle":
        domain = fx.mesh.create_unit_square(fx.MPI.COMM_SELF, 1, 1)
    else:
        ct = fx.mesh.CellType[cell]
        domain = fx.mesh.create_box(fx.MPI.COMM_SELF, [[0, 0, 0], [1, 1, 2]], [1, 1, 2], ct)
    x = domain.geometry.x
    x[:, :2] += 0.15 * np.sin(3.1 * x[:, [1, 0]] + x[:, [2, 2]])  # non-affine hexes
    d = domain.geometry.dim
    law = steel(fx, d)
    C = law.loewner_bound()
    V = fx.fem.functionspace(domain, ("Lagrange", 1, (d,)))
    simplex = cell != "hexahedron"
    q = 0 if simplex else 2
    cells = np.arange(domain.topology.index_map(d).size_local, dtype=np.int32)
    ref = E.reference_data(V, q)
    G, wdet, me = E.element_batch(
        E.cell_coordinates(domain, cells),
        np.full(cells.size, RHO),
        ref,
        E.mass_reference(V),
        simplex,
    )
    Ke = E.element_stiffness(G, wdet, C)
    dofs = (V.dofmap.list[:, :, None] * d + np.arange(d)).reshape(cells.size, -1)
    K = np.zeros((V.dofmap.index_map.size_local * d,) * 2)
    for e in range(cells.size):  # two cells
        K[np.ix_(dofs[e], dofs[e])] += Ke[e]
    ref_K = stiffness_elastic(fx, V, law, None if simplex else q)
    np.testing.assert_allclose(K, ref_K, atol=1e-9 * np.abs(ref_K).max())
    R = np.linalg.cholesky(C).T
    S = E.reduced_operator(G, wdet, me, C, R)
    for e in range(cells.size):
        m = np.repeat(me[e], d)
        g = fx.scipy.linalg.eigh(Ke[e], np.diag(m), eigvals_only=True)[-1]
        assert np.linalg.eigvalsh(S[e])[-1] == pytest.approx(g, rel=1e-10)
    F = E.block_norms(G, wdet, C, R)
    nn = me.shape[1]
    blocks = (Ke.reshape(-1, nn, d, nn, d) ** 2).sum(axis=(2, 4))
    np.testing.assert_allclose(F, blocks, rtol=1e-10)


def test_trained_potential_law_is_safe_at_every_strain(fx):
    """A trained PotentialLaw: dt from its Loewner bound is below 2/omega_max(K_t, M) at
    zero strain, a uniform strain and random cell-wise strains."""
    from snmech.material import SaturatingElastic, TrainingConfig, generate_data, train_law

    data = generate_data(
        SaturatingElastic(*STEEL), 1024, sampling="random", strain_range=5e-3, seed=0
    )
    law = train_law(
        data, hidden=16, config=TrainingConfig(epochs=60, seed=0, device="cpu"), progress=False
    ).law
    law = law.exported_copy().double()
    domain = make_mesh(fx, "tetrahedron", 3, True)
    V = fx.fem.functionspace(domain, ("Lagrange", 1, (3,)))
    m = fx.lumped_mass(V, RHO).array
    ncells = domain.topology.index_map(3).size_local
    rng = np.random.default_rng(0)
    states = [np.zeros((ncells, 6)), np.tile(rng.uniform(-4e-3, 4e-3, 6), (ncells, 1))]
    states += [rng.uniform(-5e-3, 5e-3, (ncells, 6)) for _ in range(2)]
    exact = min(critical_dt(fx, stiffness_tangent(fx, V, law.tangent(s)), m) for s in states)
    matrix = fx.stable_time_step(V, RHO, law, safety=1.0)
    scalar = fx.stable_time_step(V, RHO, law.lipschitz_bound(), safety=1.0)
    inertia = fx.stable_time_step(V, RHO, law, "inertia", safety=1.0)
    assert scalar.dt <= matrix.dt <= inertia.dt <= exact
    assert matrix.dt >= 0.6 * exact  # measured 0.69 (0.52 with the scalar bound)


def test_density_function_matches_constant(fx):
    domain = make_mesh(fx, "tetrahedron", 3, True)
    law = steel(fx, 3)
    rho = fx.fem.Function(fx.fem.functionspace(domain, ("DG", 0)))
    rho.x.array[:] = RHO
    for method in ("element", "global", "courant"):
        a = fx.stable_time_step(domain, RHO, law, method)
        b = fx.stable_time_step(domain, rho, law, method)
        assert b.dt == pytest.approx(a.dt, rel=1e-9)


def test_chunks_and_recomputed_geometry_give_the_same_dt(fx, monkeypatch):
    import snmech.fem.timestep as ts

    domain = make_mesh(fx, "hexahedron", 3, True)
    law = steel(fx, 3)
    whole = fx.stable_time_step(domain, RHO, law)
    monkeypatch.setattr(ts, "_CACHE_BYTES", 0)
    for balance in (0, 3):
        ref = fx.stable_time_step(domain, RHO, law, balance=balance)
        small = fx.stable_time_step(domain, RHO, law, balance=balance, chunk_size=5)
        assert small.dt == pytest.approx(ref.dt, rel=2e-6)
    assert ref.dt == pytest.approx(whole.dt, rel=1e-12)


def test_compiled_element_kernel_matches_numpy(fx):
    """Note [Compiled element bound]: the C kernel's statistics, block norms and Cholesky
    verdicts are those of the numpy element operators (random gradients and masses)."""
    from snmech.fem import _ckernel

    kernel = _ckernel.node_form_kernel()
    if kernel is None:
        pytest.skip("no C compiler: the numpy path is used")
    rng = np.random.default_rng(3)
    for d, nq, nn, c in ((3, 8, 8, 21), (2, 4, 4, 13)):  # hexahedra, quadrilaterals
        Gs = rng.standard_normal((c, nq, nn, d))
        mass = rng.uniform(0.5, 2.0, (c, nn))
        k = 6 if d == 3 else 3
        A = rng.standard_normal((k, k))
        C = A @ A.T
        C4 = fx.E.fourth_order(C, d)
        K = fx.E.node_form(Gs, C)
        S = fx.E.mass_scaled(K, mass)
        tr, dmax, fro2, F, _ = _ckernel.node_form_stats(kernel, Gs, mass, C4, blocks=True)
        np.testing.assert_allclose(tr, np.einsum("cii->c", S), rtol=1e-12)
        np.testing.assert_allclose(dmax, np.einsum("cii->ci", S).max(axis=1), rtol=1e-12)
        np.testing.assert_allclose(fro2, (S**2).sum(axis=(1, 2)), rtol=1e-12)
        np.testing.assert_allclose(F, fx.E.node_block_norms(K, d), rtol=1e-12)
        lam = np.sort(np.linalg.eigvalsh(S)[:, -1])
        for U in 0.5 * (lam[1:] + lam[:-1]):  # between eigenvalues: a clear verdict per cell
            ok = _ckernel.node_form_stats(kernel, Gs, mass, C4, U)[4]
            np.testing.assert_array_equal(ok, np.linalg.eigvalsh(S)[:, -1] < U)
        # NaN in a cell is never "below U"
        Gs[4, 0, 0, 0] = np.nan
        ok = _ckernel.node_form_stats(kernel, Gs, mass, C4, 10 * lam[-1])[4]
        assert not ok[4] and ok[np.arange(c) != 4].all()


@pytest.mark.parametrize(("cell", "gdim"), [("hexahedron", 3), ("quadrilateral", 2)])
def test_compiled_gradients_match_numpy_geometry(fx, cell, gdim):
    """The compiled geometry (Jacobians, gradients, weights, diag K_e) is numpy's."""
    from snmech.fem import _ckernel

    kernel = _ckernel.node_form_kernel()
    if kernel is None:
        pytest.skip("no C compiler: the numpy path is used")
    domain = make_mesh(fx, cell, 3, True)
    V = fx.fem.functionspace(domain, ("Lagrange", 1, (gdim,)))
    q = fx.E.default_quadrature_degree(domain.topology.cell_type, 1)
    ref, mref = fx.E.reference_data(V, q), fx.E.mass_reference(V)
    cells = np.arange(domain.topology.index_map(gdim).size_local, dtype=np.int32)
    X = fx.E.cell_coordinates(domain, cells)
    rho = np.full(len(cells), RHO)
    G, wdet, mass = fx.E.element_batch(X, rho, ref, mref, False)
    law = steel(fx, gdim)
    C = law.tangent(np.zeros((1, law.kinematics.size)))[0]
    C4 = fx.E.fourth_order(C, gdim)
    Gs, wdet_c, det, Kdiag = _ckernel.gradients(kernel, X, ref.dpsi, ref.dphi, ref.weights, C4)
    np.testing.assert_allclose(Gs, G * np.sqrt(wdet)[:, :, None, None], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(wdet_c, wdet, rtol=1e-12)
    np.testing.assert_allclose(np.abs(det) * ref.weights, wdet, rtol=1e-12)
    K = fx.E.node_form(Gs, C)
    np.testing.assert_allclose(Kdiag, np.einsum("cii->ci", K), rtol=1e-11)
    Gs_b, mass_b, _ = fx.E.node_form_batch(kernel, X, rho, ref, mref, C4, False)
    np.testing.assert_allclose(mass_b, mass, rtol=1e-12)
    X[0, 0] = X[0, -1]  # fold a cell: the same error as the numpy geometry
    with pytest.raises(ValueError, match="inverted|degenerate"):
        fx.E.node_form_batch(kernel, X, rho, ref, mref, C4, False)


@pytest.mark.parametrize("balance", [0, 3])
def test_compiled_and_numpy_element_bounds_agree(fx, monkeypatch, balance):
    """The compiled node form and the numpy one certify the same dt (hexahedra, distorted)."""
    import snmech.fem.timestep as ts

    domain = make_mesh(fx, "hexahedron", 3, True)
    law = steel(fx, 3)
    compiled = fx.stable_time_step(domain, RHO, law, balance=balance, chunk_size=40)
    monkeypatch.setattr(ts._ckernel, "node_form_kernel", lambda: None)
    plain = fx.stable_time_step(domain, RHO, law, balance=balance, chunk_size=40)
    assert compiled.dt == pytest.approx(plain.dt, rel=1e-9)


def test_direct_law_uses_its_scalar_bound_with_a_note(fx):
    from snmech.material import DirectLaw

    law = DirectLaw("3d").export().double()
    domain = make_mesh(fx, "tetrahedron", 2, False)
    r = fx.stable_time_step(domain, RHO, law)
    assert r.bound == "scalar" and r.lipschitz == pytest.approx(law.lipschitz_bound())
    assert "symmetric part" in r.note


def test_bad_input_is_rejected(fx):
    domain = make_mesh(fx, "tetrahedron", 2, False)
    law = steel(fx, 3)
    C = law.loewner_bound()
    sts = fx.stable_time_step
    with pytest.raises(ValueError, match="density"):
        sts(domain, -1.0, law)
    with pytest.raises(ValueError, match="density"):
        sts(domain, float("nan"), law)
    with pytest.raises(ValueError, match="positive semi-definite"):
        sts(domain, RHO, C - 2 * np.linalg.eigvalsh(C)[-1] * np.eye(6))
    with pytest.raises(ValueError, match=r"\(6, 6\)"):
        sts(domain, RHO, np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        sts(domain, RHO, np.full((6, 6), np.nan))
    with pytest.raises(ValueError, match="symmetric"):
        sts(domain, RHO, C + np.triu(np.ones((6, 6)), 1) * 1e9)
    with pytest.raises(ValueError, match="finite"):
        sts(domain, RHO, float("nan"))
    with pytest.raises(ValueError, match="finite"):
        sts(domain, RHO, -1e9)
    with pytest.raises(ValueError, match="size 3"):
        sts(domain, RHO, fx.LinearElastic(*STEEL, "plane_strain"))
    with pytest.raises(ValueError, match="method"):
        sts(domain, RHO, law, "cfl")
    with pytest.raises(ValueError, match="safety"):
        sts(domain, RHO, law, safety=1.5)
    for degree in (0, -1, 3, 1.5, True):  # named before basix sees it
        with pytest.raises(ValueError, match="degree must be 1 or 2"):
            sts(domain, RHO, law, degree=degree)
    with pytest.raises(TypeError):
        sts(domain, RHO, "steel")
    with pytest.raises(ValueError, match="degree"):
        sts(make_mesh(fx, "hexahedron", 1, False), RHO, law, degree=2)


@pytest.mark.mpi
def test_two_ranks_give_the_serial_dt(fx):
    comm = fx.MPI.COMM_WORLD
    for cell in ("tetrahedron", "hexahedron"):
        law = steel(fx, 3)
        par = make_mesh(fx, cell, 5, True, comm)
        ser = make_mesh(fx, cell, 5, True, fx.MPI.COMM_SELF)
        for method in ("element", "inertia", "global", "courant"):
            a = fx.stable_time_step(par, RHO, law, method)
            b = fx.stable_time_step(ser, RHO, law, method)
            assert a.dt == pytest.approx(b.dt, rel=2e-6), (cell, method)
            assert a.num_cells == b.num_cells and a.num_dofs == b.num_dofs
            if method in ("element", "courant"):  # the critical cell's factor (ties: not its index)
                assert a.critical_factor == pytest.approx(b.critical_factor, rel=2e-6)
