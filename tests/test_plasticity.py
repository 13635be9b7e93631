"""J2 plasticity: closed-form loading curves, the yield condition, the tangent, the bounds."""

from __future__ import annotations

import numpy as np
import pytest

from snmech.material import (
    J2Plasticity,
    Kinematics,
    cyclic_data,
    cyclic_paths,
    load_data,
    paths_from_data,
    paths_to_data,
    reference_law,
    run_paths,
    save_data,
)
from snmech.material.reference import LinearElastic

KINEMATICS = pytest.mark.parametrize("kin", list(Kinematics))
HARDENING = pytest.mark.parametrize("H", [0.0, 2e9, 50e9])
E, NU, SY = 200e9, 0.3, 250e6
SQ23 = np.sqrt(2 / 3)


def _law(kin=Kinematics.THREE_D, H=10e9):
    return J2Plasticity(E, NU, SY, H, kin)


def _embed(strain, kin):
    full = np.zeros((*strain.shape[:-1], 6))
    full[..., kin.embedding] = strain
    return full


def _dev_norm(sig6):
    return np.linalg.norm(
        sig6 - sig6[:, :3].mean(axis=1, keepdims=True) * [1, 1, 1, 0, 0, 0], axis=1
    )


def _trial_f(law, strain, state):
    """Yield function at the elastic trial stress, computed without the law's return map."""
    sig = LinearElastic(E, NU).stress(_embed(strain, law.kinematics) - state[:, :6])
    return _dev_norm(sig) - SQ23 * (SY + law.hardening * state[:, 6])


def _random_states(rng, n, scale=2e-3):
    """States with deviatoric plastic strain (small out-of-plane parts) and alpha >= 0."""
    eps_p = rng.normal(size=(n, 6)) * scale
    eps_p[:, 2:5] *= 0.05
    eps_p[:, :3] -= eps_p[:, :3].mean(axis=1, keepdims=True)  # plastic flow is deviatoric
    return np.column_stack([eps_p, rng.uniform(0, 5e-3, n)])


@HARDENING
def test_pure_shear_follows_the_bilinear_curve(H):
    """tau = mu gamma up to tau_y = sigma_y / sqrt3, then d tau / d gamma = mu H / (3 mu + H)."""
    law = _law(H=H)
    mu = law.mu
    tau_y, gamma_y = SY / np.sqrt(3), SY / np.sqrt(3) / mu
    gamma = np.linspace(0, 10 * gamma_y, 301)
    strain = np.zeros((gamma.size, 6))
    strain[:, 5] = np.sqrt(2) * gamma / 2  # Mandel of eps_12 = gamma / 2
    stresses, state = run_paths(law, strain[None])
    tau = stresses[0, :, 5] / np.sqrt(2)
    exact = np.where(
        gamma <= gamma_y, mu * gamma, tau_y + mu * H / (3 * mu + H) * (gamma - gamma_y)
    )
    assert np.abs(tau - exact).max() <= 1e-12 * tau_y
    assert np.abs(stresses[0, :, :5]).max() <= 1e-12 * tau_y
    # radial loading: one big step (the virgin `stress`) gives the same curve
    assert np.abs(law.stress(strain)[:, 5] / np.sqrt(2) - exact).max() <= 1e-12 * tau_y
    gamma_p = 2 * state[0, 5] / np.sqrt(2)
    assert state[0, 6] == pytest.approx(SQ23 * np.linalg.norm(state[0, :6]), rel=1e-12)
    assert gamma_p == pytest.approx(gamma[-1] - tau[-1] / mu, rel=1e-12)


@pytest.mark.parametrize("H", [0.0, 10e9])
def test_uniaxial_strain_unloads_elastically_and_reyields_on_the_grown_surface(H):
    """0 -> e_max -> -e_max in eps_11 only: slopes lambda + 2 mu and K + 4/3 mu H / (3 mu + H)."""
    law = _law(H=H)
    lam, mu = law.lmbda, law.mu
    M, Mp = lam + 2 * mu, lam + 2 * mu / 3 + 4 / 3 * mu * H / (3 * mu + H)
    e_y = SY / (2 * mu)  # ||dev sigma|| = 2 mu sqrt(2/3) e reaches sqrt(2/3) sigma_y
    e_max = 6 * e_y
    sig_max = M * e_y + Mp * (e_max - e_y)
    alpha_max = SQ23 * (2 * mu * SQ23 * e_max - SQ23 * SY) / (2 * mu + 2 * H / 3)
    radius = SQ23 * (SY + H * alpha_max)
    e_rev = e_max - 2 * radius / (2 * mu * SQ23)  # elastic range spans the whole diameter
    sig_rev = sig_max - M * (e_max - e_rev)
    load = np.linspace(0, e_max, 121)
    unload = np.linspace(e_max, e_rev, 101)[1:]
    reverse = np.linspace(e_rev, -e_max, 141)[1:]
    e = np.concatenate([load, unload, reverse])
    stresses, _ = run_paths(law, (e[:, None] * np.eye(6)[0])[None])
    sig = stresses[0]
    exact = np.concatenate(
        [
            np.where(load <= e_y, M * load, M * e_y + Mp * (load - e_y)),
            sig_max - M * (e_max - unload),
            sig_rev - Mp * (e_rev - reverse),
        ]
    )
    assert np.abs(sig[:, 0] - exact).max() <= 1e-10 * SY
    # compressive yield on the grown radius (isotropic hardening: no Bauschinger shift)
    at_rev = load.size + unload.size - 1
    assert _dev_norm(sig[at_rev : at_rev + 1])[0] == pytest.approx(radius, rel=1e-9)
    if H > 0:
        assert radius > SQ23 * SY * 1.1


@KINEMATICS
def test_yield_condition_and_consistency_along_cyclic_paths(kin):
    law = _law(kin)
    rng = np.random.default_rng(1)
    paths = cyclic_paths(kin, 30, 97, 6 * SY / E, rng)
    state = law.initial_state(30)
    n_plastic = 0
    for k in range(paths.shape[1]):
        f_tr = _trial_f(law, paths[:, k], state)
        stress, new = law.update(paths[:, k], state)
        full = LinearElastic(E, NU).stress(_embed(paths[:, k], kin) - new[:, :6])
        assert np.abs(full[:, kin.embedding] - stress).max() <= 1e-12 * SY
        f = _dev_norm(full) - SQ23 * (SY + law.hardening * new[:, 6])
        assert f.max() <= 1e-10 * SY
        plastic = f_tr > 0
        assert np.all(new[plastic, 6] > state[plastic, 6])
        assert np.abs(f[plastic]).max(initial=0) <= 1e-10 * SY
        assert np.array_equal(new[~plastic], state[~plastic])
        n_plastic += plastic.sum()
        state = new
    assert n_plastic > 0.2 * paths.shape[0] * paths.shape[1]


@KINEMATICS
def test_tangent_matches_central_differences_and_lies_below_c(kin):
    law = _law(kin)
    rng = np.random.default_rng(2)
    state = _random_states(rng, 400)
    strain = state[:, kin.embedding] + rng.normal(size=(400, kin.size)) * 6e-4
    keep = np.abs(_trial_f(law, strain, state)) > 1e-3 * SY  # away from the kink of f = 0
    strain, state = strain[keep], state[keep]
    plastic = _trial_f(law, strain, state) > 0
    assert 20 < plastic.sum() < plastic.size - 20
    T = law.tangent(strain, state)
    h = 1e-8
    fd = np.stack(
        [
            (law.update(strain + h * d, state)[0] - law.update(strain - h * d, state)[0]) / (2 * h)
            for d in np.eye(kin.size)
        ],
        axis=2,
    )
    assert np.abs(T - fd).max() <= 1e-6 * np.abs(T).max()
    assert np.array_equal(T, T.transpose(0, 2, 1))
    C, L = law.loewner_bound(), law.lipschitz_bound()
    assert np.allclose(T[~plastic], C, rtol=0, atol=1e-3)
    assert np.linalg.eigvalsh(C[None] - T).min() >= -1e-9 * L
    assert np.linalg.eigvalsh(T).min() >= -1e-9 * L
    assert np.linalg.norm(T, 2, axis=(1, 2)).max() <= L * (1 + 1e-12)
    np.testing.assert_allclose(
        law.tangent(strain[:5]), law.tangent(strain[:5], law.initial_state(5))
    )


@KINEMATICS
@HARDENING
def test_state_update_is_non_expansive_in_the_energy_norm(kin, H):
    law = _law(kin, H)
    assert law.state_lipschitz_bound() == 1.0
    rng = np.random.default_rng(3)
    n = 2000
    strain = rng.normal(size=(n, kin.size)) * 5e-3
    a = _random_states(rng, n)
    b = np.where(
        rng.uniform(size=(n, 1)) < 0.5, _random_states(rng, n), a + 1e-4 * rng.normal(size=(n, 7))
    )
    b[:, 6] = np.abs(b[:, 6])
    _, a1 = law.update(strain, a)
    _, b1 = law.update(strain, b)
    before, after = law.state_norm(a - b), law.state_norm(a1 - b1)
    assert np.all(after <= before * (1 + 1e-12) + 1e-30)
    both = (_trial_f(law, strain, a) > 0) & (_trial_f(law, strain, b) > 0)
    assert both.sum() > 100 and np.median(after[both] / before[both]) < 1
    # the metric matters: in the plain Euclidean norm of the state vector the update can expand
    euclid = np.linalg.norm(a1 - b1, axis=1) / np.linalg.norm(a - b, axis=1)
    assert euclid.max() > 1.01


@KINEMATICS
def test_elastic_steps_leave_the_state_unchanged_exactly(kin):
    law = _law(kin)
    rng = np.random.default_rng(4)
    state = _random_states(rng, 50, scale=1e-3)
    strain = state[:, kin.embedding] + rng.normal(size=(50, kin.size)) * 1e-4
    assert (_trial_f(law, strain, state) < 0).all()
    copies = strain.copy(), state.copy()
    stress, new = law.update(strain, state)
    assert np.array_equal(new, state) and new is not state
    assert np.array_equal(strain, copies[0]) and np.array_equal(state, copies[1])
    expected = LinearElastic(E, NU).stress(_embed(strain, kin) - state[:, :6])[:, kin.embedding]
    np.testing.assert_allclose(stress, expected, rtol=1e-12, atol=1e-12 * SY)


def test_plane_strain_equals_3d_with_zero_out_of_plane_strain():
    ps, full = _law(Kinematics.PLANE_STRAIN), _law(Kinematics.THREE_D)
    paths = cyclic_paths("plane_strain", 12, 81, 6 * SY / E, np.random.default_rng(5))
    s_ps, st_ps = run_paths(ps, paths)
    s_3d, st_3d = run_paths(full, _embed(paths, Kinematics.PLANE_STRAIN))
    idx = Kinematics.PLANE_STRAIN.embedding
    assert np.abs(s_ps - s_3d[:, :, idx]).max() <= 1e-12 * SY
    assert np.abs(st_ps - st_3d).max() <= 1e-15
    assert np.abs(st_ps[:, 2]).max() > 1e-4  # eps_p33 != 0: the state must stay 3D
    t_ps = ps.tangent(paths[:, -1], st_ps)
    t_3d = full.tangent(_embed(paths[:, -1], Kinematics.PLANE_STRAIN), st_3d)
    np.testing.assert_allclose(t_ps, t_3d[:, idx][:, :, idx], rtol=1e-12, atol=1e-3)


def test_batched_update_equals_point_by_point():
    law = _law()
    rng = np.random.default_rng(6)
    strain, state = rng.normal(size=(8, 6)) * 4e-3, _random_states(rng, 8)
    stress, new = law.update(strain, state)
    for i in range(8):
        s_i, n_i = law.update(strain[i : i + 1], state[i : i + 1])
        np.testing.assert_allclose(s_i[0], stress[i], rtol=1e-14, atol=1e-14 * SY)
        np.testing.assert_allclose(n_i[0], new[i], rtol=1e-14, atol=1e-18)


def _cycle_work(paths, stresses):
    """Trapezoidal work sum of sigma : d eps along each path."""
    d = np.diff(paths, axis=1)
    mid = 0.5 * (stresses[:, 1:] + stresses[:, :-1])
    return np.einsum("psk,psk->p", mid, d)


def test_closed_shear_cycle_dissipates_the_parallelogram_area():
    """Perfect plasticity, gamma_a -> -gamma_a -> gamma_a: area 4 tau_y (gamma_a - gamma_y)."""
    law = _law(H=0.0)
    tau_y = SY / np.sqrt(3)
    gamma_y = tau_y / law.mu
    ga = 5 * gamma_y
    first = np.linspace(0, ga, 500)
    cycle = np.concatenate([np.linspace(ga, -ga, 2000), np.linspace(-ga, ga, 2000)[1:]])
    gamma = np.concatenate([first, cycle[1:]])
    strain = np.zeros((1, gamma.size, 6))
    strain[0, :, 5] = gamma / np.sqrt(2)
    stresses, _ = run_paths(law, strain)
    loop = slice(first.size - 1, None)
    work = _cycle_work(strain[:, loop], stresses[:, loop])[0]
    assert work == pytest.approx(4 * tau_y * (ga - gamma_y), rel=1e-4)


@KINEMATICS
def test_closed_cycles_from_the_virgin_state_dissipate(kin):
    law = _law(kin)
    rng = np.random.default_rng(7)
    paths = cyclic_paths(kin, 9, 97, 6 * SY / E, rng)
    back = np.linspace(1, 0, 30)[1:, None, None] * paths[None, :, -1]
    closed = np.concatenate([paths, back.transpose(1, 0, 2)], axis=1)
    stresses, _ = run_paths(law, closed)
    assert np.all(_cycle_work(closed, stresses) > 1e-3 * SY**2 / E)
    small, _ = run_paths(law, 0.2 * SY / E / 6 * closed / np.abs(closed).max())
    assert np.abs(_cycle_work(0.2 * SY / E / 6 * closed / np.abs(closed).max(), small)).max() <= (
        1e-12 * SY**2 / E
    )


@pytest.mark.parametrize("kind", ["uniaxial", "shear", "random", "mixed"])
def test_cyclic_paths_start_at_zero_cycle_and_respect_the_amplitude(kind):
    kin = Kinematics.THREE_D
    a = 3e-3
    paths = cyclic_paths(kin, 12, 65, a, np.random.default_rng(8), kind=kind)
    again = cyclic_paths(kin, 12, 65, a, np.random.default_rng(8), kind=kind)
    assert paths.shape == (12, 65, 6) and np.array_equal(paths, again)
    assert np.array_equal(paths[:, 0], np.zeros((12, 6)))
    peak = np.linalg.norm(paths, axis=2).max(axis=1)
    assert np.all((peak >= 0.5 * a - 1e-15) & (peak <= a * (1 + 1e-12)))
    code = np.arange(12) % 3 if kind == "mixed" else None
    for i, p in enumerate(paths):
        which = kind if code is None else ("uniaxial", "shear", "random")[code[i]]
        if which != "random":
            col = 0 if which == "uniaxial" else 5
            assert np.abs(np.delete(p, col, axis=1)).max() == 0
            assert p[:, col].min() < 0 < p[:, col].max()


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_path_data_round_trip(tmp_path, suffix):
    law = _law(Kinematics.PLANE_STRAIN)
    data = cyclic_data(law, 6, 49, 5 * SY / E, seed=9)
    assert data.path is not None and data.step is not None
    back = load_data(save_data(data, tmp_path / f"paths{suffix}", stress_unit="MPa"))
    strain, stress = paths_from_data(back)
    s0, t0 = paths_from_data(data)
    np.testing.assert_allclose(strain, s0, rtol=1e-14, atol=0)
    np.testing.assert_allclose(stress, t0, rtol=1e-13, atol=1e-6)
    assert run_paths(law, strain)[0] == pytest.approx(stress, rel=1e-12, abs=1e-3)
    shuffled = data.subset(np.random.default_rng(0).permutation(len(data)))
    np.testing.assert_array_equal(paths_from_data(shuffled)[0], s0)
    round_trip = paths_to_data(strain, stress, law.kinematics)
    np.testing.assert_array_equal(round_trip.path, data.path)


def test_reference_factory_builds_j2():
    law = reference_law("j2", E=E, nu=NU, kinematics="plane_strain", yield_stress=SY, hardening=0)
    assert isinstance(law, J2Plasticity) and law.name == "j2" and law.state_size == 7
    assert law.kinematics is Kinematics.PLANE_STRAIN and law.hardening == 0
    assert law.lipschitz_bound() == LinearElastic(E, NU, "plane_strain").lipschitz_bound()
    with pytest.raises(ValueError, match="j2"):
        reference_law("von_mises")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: J2Plasticity(E, NU, 0.0, 1e9), "yield_stress"),
        (lambda: J2Plasticity(E, NU, SY, -1.0), "hardening"),
        (lambda: J2Plasticity(E, 0.5, SY, 1e9), "nu"),
        (lambda: _law().update(np.zeros((2, 3)), np.zeros((2, 7))), r"shape \(n, 6\)"),
        (lambda: _law().update(np.zeros((2, 6)), np.zeros((3, 7))), r"shape \(2, 7\)"),
        (lambda: _law().update(np.zeros((2, 6)), np.zeros((2, 6))), "state must have shape"),
        (lambda: _law().update(np.full((2, 6), np.nan), np.zeros((2, 7))), "strain has NaN"),
        (lambda: _law().update(np.zeros((2, 6)), np.full((2, 7), np.nan)), "state has NaN"),
        (lambda: _law().update(np.zeros((2, 6)), -np.ones((2, 7))), "alpha"),
        (lambda: _law().tangent(np.zeros((2, 6)), -np.ones((2, 7))), "alpha"),
        (lambda: _law().state_norm(np.zeros((2, 6))), "state must have shape"),
        (lambda: cyclic_paths("3d", 2, 65, 1e-3, kind="spiral"), "unknown path kind"),
        (lambda: cyclic_paths("3d", 2, 65, -1e-3), "amplitude"),
        (lambda: cyclic_paths("3d", 2, 10, 1e-3), "n_steps"),
        (lambda: cyclic_paths("3d", 0, 65, 1e-3), "n_paths"),
        (lambda: run_paths(_law(), np.zeros((2, 5, 3))), r"paths must have shape"),
        (
            lambda: paths_from_data(cyclic_data(_law(), 2, 33, 1e-3).subset(np.arange(40))),
            "unequal",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
