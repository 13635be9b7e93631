"""Reference laws: closed forms, tangents against finite differences, exact bounds."""

from __future__ import annotations

import numpy as np
import pytest

from snmech.material import Kinematics, LinearElastic, SaturatingElastic, reference_law

KINEMATICS = pytest.mark.parametrize("kin", list(Kinematics))


def test_uniaxial_stress_gives_youngs_modulus():
    """sigma = E eps in uniaxial stress: eps = (1, -nu, -nu) eps_11."""
    law = LinearElastic(200e9, 0.25)
    eps = np.array([[1e-3, -0.25e-3, -0.25e-3, 0, 0, 0]])
    assert law.stress(eps)[0] == pytest.approx([200e9 * 1e-3, 0, 0, 0, 0, 0], abs=1.0)


@KINEMATICS
def test_linear_bound_is_the_largest_eigenvalue(kin):
    law = LinearElastic(210e9, 0.3, kin)
    K, mu = law.lmbda + 2 * law.mu / 3, law.mu
    expected = 3 * K if kin is Kinematics.THREE_D else 2 * (law.lmbda + law.mu)
    assert law.lipschitz_bound() == pytest.approx(max(expected, 2 * mu), rel=1e-12)


@KINEMATICS
def test_saturating_tangent_matches_finite_differences_and_is_psd(kin):
    law = SaturatingElastic(210e9, 0.3, kinematics=kin)
    e = np.random.default_rng(0).normal(size=(40, kin.size)) * 3e-3
    T = law.tangent(e)
    h = 1e-9
    fd = np.stack(
        [(law.stress(e + h * d) - law.stress(e - h * d)) / (2 * h) for d in np.eye(kin.size)],
        axis=2,
    )
    assert np.abs(T - fd).max() <= 1e-6 * np.abs(T).max()
    assert np.allclose(T, T.transpose(0, 2, 1))
    assert np.linalg.eigvalsh(T).min() > 0
    norms = np.linalg.norm(T, 2, axis=(1, 2))
    assert norms.max() <= law.lipschitz_bound() * (1 + 1e-12)
    assert np.linalg.eigvalsh(law.loewner_bound()[None] - T).min() >= -1e-3


def test_saturating_shear_softens_to_mu_inf():
    law = SaturatingElastic(210e9, 0.3, softening=0.3, strain_scale=1e-3)
    big = np.array([[0, 0, 0, 0, 0, np.sqrt(2) * 0.1]])  # eps_12 = 0.1 >> r0
    slope = law.tangent(big)[0, 5, 5]
    assert slope == pytest.approx(2 * law.mu_inf, rel=1e-6)
    assert law.tangent(np.zeros((1, 6)))[0, 5, 5] == pytest.approx(2 * law.mu0, rel=1e-9)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="nu"):
        LinearElastic(1e9, 0.5)
    with pytest.raises(ValueError, match="unknown reference law"):
        reference_law("rubber")
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        LinearElastic(1e9, 0.3, "plane_strain").stress(np.zeros((2, 6)))
