"""RecurrentLaw: its two certificates, exact J2 representation, training, files, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snmech.material import J2Plasticity, load_law, save_law
from snmech.material.evaluator import MaterialEvaluator
from snmech.material.model_file import CertificateMismatchError
from snmech.material.paths import cyclic_paths, run_paths
from snmech.material.recurrent import (
    RecurrentLaw,
    _softplus_inverse,
    cone_residual,
    deviatoric_projector,
)
from snmech.material.recurrent_training import (
    RecurrentTrainingConfig,
    path_relative_errors,
    train_recurrent_law,
)

E, NU, SY, H = 200e9, 0.3, 250e6, 10e9


def random_law(kinematics: str = "3d", units: int = 3, seed: int = 0) -> RecurrentLaw:
    torch.manual_seed(seed)
    law = RecurrentLaw(kinematics, 1e-3, 1e8, units=units).double()
    with torch.no_grad():
        law.G.copy_(torch.randn_like(law.G))
        law.Pu.copy_(torch.randn_like(law.Pu))
        law.pt.copy_(torch.randn_like(law.pt))
        law.rho_raw.fill_(-1.0)
    return law


def j2_as_recurrent(j2: J2Plasticity, strain_scale: float, stress_scale: float) -> RecurrentLaw:
    """The RecurrentLaw whose weights reproduce ``j2`` exactly (Note [Recurrent law]).

    In scaled units (``C~ = C s_e / s_s``): ``G = C~^(1/2)``, one cone on the
    deviatoric part of ``tau`` and the hardening coordinate ``y_a = c alpha``,
    ``c = sqrt(H~ / s_e)``, slope ``kappa = sqrt(2/3) / sqrt(2 mu~) sqrt(H~ s_e)``
    and apex ``r = sigma_y~ / sqrt(H~ s_e)``.
    """
    law = RecurrentLaw(j2.kinematics, strain_scale, stress_scale, units=1).double()
    m_s = law.strain_state_size
    idx = [0, 1, 2, 3, 4, 5] if m_s == 6 else [0, 1, 2, 5]
    C = J2Plasticity(j2.E, j2.nu, j2.yield_stress, j2.hardening).loewner_bound()[np.ix_(idx, idx)]
    w, V = np.linalg.eigh(C * strain_scale / stress_scale)
    root = (V * np.sqrt(w)) @ V.T
    G = root if m_s == 6 else root[:, [0, 1, 3]]
    mu_t = j2.mu * strain_scale / stress_scale
    H_t, sy_t = j2.hardening / stress_scale, j2.yield_stress / stress_scale
    kappa = np.sqrt(2 / 3) / np.sqrt(2 * mu_t) * np.sqrt(H_t * strain_scale)
    r = sy_t / np.sqrt(H_t * strain_scale)
    with torch.no_grad():
        law.G.copy_(torch.as_tensor(G))
        law.Pu.zero_()
        law.Pu[0, :, :m_s] = deviatoric_projector(m_s)
        law.pt.zero_()
        law.pt[0, m_s] = 1.0
        law.a_raw.fill_(30.0)  # softplus = 30; the normalization brings a to 1 / (1 + 1e-5)
        law.kappa_raw.fill_(float(_softplus_inverse(torch.tensor(kappa, dtype=torch.float64))))
        law.rho_raw.fill_(float(_softplus_inverse(torch.tensor(kappa * r, dtype=torch.float64))))
    return law


@pytest.mark.parametrize("kinematics", ["3d", "plane_strain"])
def test_tangent_is_symmetric_and_between_zero_and_c_bar(kinematics: str) -> None:
    law = random_law(kinematics)
    rng = np.random.default_rng(1)
    strain = rng.normal(size=(500, law.kinematics.size)) * 3e-3
    state = rng.normal(size=(500, law.state_size))
    strain[:100] *= 1e-4  # virgin points at small strain: elastic
    state[:100] = 0.0
    T = law.tangent_at(strain, state)
    c_bar = law.loewner_bound()
    scale = np.linalg.eigvalsh(c_bar)[-1]
    assert np.abs(T - T.transpose(0, 2, 1)).max() < 1e-12 * scale
    assert np.linalg.eigvalsh(T).min() > -1e-10 * scale
    assert np.linalg.eigvalsh(c_bar - T).min() > -1e-10 * scale
    assert law.lipschitz_bound() >= np.linalg.norm(T, 2, axis=(1, 2)).max()
    # Some points are plastic (the tangent is below C_bar there), some elastic.
    gap = np.linalg.eigvalsh(c_bar - T)[:, -1] / scale
    assert (gap > 1e-3).any() and (gap < 1e-9).any()


def test_state_update_is_non_expansive_and_keeps_memory() -> None:
    law = random_law()
    assert law.state_lipschitz_bound() == 1.0
    rng = np.random.default_rng(2)
    strain = rng.normal(size=(1000, 6)) * 3e-3
    h1 = rng.normal(size=(1000, law.state_size))
    h2 = h1 + rng.normal(size=h1.shape) * 10.0 ** rng.uniform(-4, 0, size=(1000, 1))
    _, n1 = law.update(strain, h1)
    _, n2 = law.update(strain, h2)
    ratio = np.linalg.norm(n1 - n2, axis=1) / np.linalg.norm(h1 - h2, axis=1)
    assert ratio.max() <= 1.0 + 1e-12
    J = law.state_jacobian(strain[:200], h1[:200])
    assert np.linalg.norm(J, 2, axis=(1, 2)).max() <= 1.0 + 1e-12
    # Elastic range: tiny strain from a virgin state -> state untouched, stress = C_bar e.
    small = rng.normal(size=(5, 6)) * 1e-7
    s, h = law.update(small, law.initial_state(5))
    assert np.all(h == 0.0)
    np.testing.assert_allclose(s, small @ law.loewner_bound(), rtol=1e-6)


def test_cone_residual_is_the_projection_residual() -> None:
    rng = np.random.default_rng(3)
    u = torch.as_tensor(rng.normal(size=(400, 1, 4)))
    s = torch.as_tensor(rng.normal(size=(400, 1)) * 2)
    kappa = torch.tensor([0.7], dtype=torch.float64)
    r_u, r_s = cone_residual(u, s, kappa)
    pu, ps = u - r_u, s - r_s
    # The projection lies in the cone and the residual is normal to it (polar cone,
    # orthogonal to the projection): the characterization of a conic projection.
    assert (torch.linalg.vector_norm(pu, dim=-1) <= kappa * ps + 1e-12).all()
    assert ((r_u * pu).sum(-1) + r_s * ps).abs().max() < 1e-12
    assert (kappa * torch.linalg.vector_norm(r_u, dim=-1) <= -r_s + 1e-12).all()


@pytest.mark.parametrize("kinematics", ["3d", "plane_strain"])
def test_j2_plasticity_is_exactly_representable(kinematics: str) -> None:
    j2 = J2Plasticity(E, NU, SY, H, kinematics)
    paths = cyclic_paths(kinematics, 12, 120, 6e-3, np.random.default_rng(4))
    true, _ = run_paths(j2, paths)
    law = j2_as_recurrent(j2, 2e-3, 3e8)
    with torch.no_grad():
        pred = law.sequence(torch.as_tensor(paths)).numpy()
    err = path_relative_errors(pred, true)
    assert err.max() < 1e-4, err.max()
    # ... and its certificates are J2's: C_bar = elastic C, non-expansive state.
    np.testing.assert_allclose(law.loewner_bound(), j2.loewner_bound(), rtol=1e-9)
    assert law.state_lipschitz_bound() == 1.0


def test_training_learns_cyclic_j2_loops() -> None:
    j2 = J2Plasticity(E, NU, SY, H)
    rng = np.random.default_rng(5)
    paths = cyclic_paths("3d", 24, 60, 5e-3, rng, cycles=(1, 2))
    stresses, _ = run_paths(j2, paths)
    cfg = RecurrentTrainingConfig(units=1, epochs=25, batch_paths=8, lr=3e-2, seed=0)
    res = train_recurrent_law(paths, stresses, "3d", config=cfg, progress=False)
    first = res.history[0]["val_mean"]
    assert res.summary()["val_mean_path_rel_error"] < 0.5 * first
    assert res.summary()["val_mean_path_rel_error"] < 0.12
    assert res.law.state_lipschitz_bound() == 1.0


def test_model_file_round_trip_and_tampering(tmp_path: object) -> None:
    law = random_law("plane_strain", units=2)
    path = save_law(law, tmp_path / "rl.safetensors")  # type: ignore[operator]
    back = load_law(path)
    assert isinstance(back, RecurrentLaw) and back.state_size == law.state_size
    rng = np.random.default_rng(6)
    e, h = rng.normal(size=(50, 3)) * 3e-3, rng.normal(size=(50, law.state_size))
    s1, h1 = law.update(e, h)
    s2, h2 = back.update(e, h)
    np.testing.assert_allclose(s2, s1, rtol=1e-6, atol=1e-6 * np.abs(s1).max())
    np.testing.assert_allclose(h2, h1, rtol=1e-5, atol=1e-6)
    from safetensors.torch import load_file, save_file

    from snmech.material import read_metadata

    meta = read_metadata(path)
    tensors = load_file(str(path))
    tensors["G"] = tensors["G"] * 1.1
    import json

    save_file(tensors, str(path), metadata={"snmech": json.dumps(meta)})
    with pytest.raises(CertificateMismatchError, match="Lipschitz bound"):
        load_law(path)
    # a state certificate that is missing or names another state size is refused too
    path = save_law(law, tmp_path / "rl2.safetensors")  # type: ignore[operator]
    tensors = load_file(str(path))
    for key, value, message in [
        ("state_size", None, "has no 'state_size'"),
        ("state_size", law.state_size + 1, "stored state size"),
        ("state_lipschitz_bound", None, "has no 'state_lipschitz_bound'"),
        ("state_lipschitz_bound", 0.5, "stored state Lipschitz bound"),
    ]:
        edited = read_metadata(path)
        if value is None:
            del edited["certificate"][key]
        else:
            edited["certificate"][key] = value
        save_file(tensors, str(tmp_path / "e.safetensors"), metadata={"snmech": json.dumps(edited)})
        with pytest.raises(CertificateMismatchError, match=message):
            load_law(tmp_path / "e.safetensors")


def test_evaluator_update_matches_the_law_for_torch_and_numpy_laws() -> None:
    rng = np.random.default_rng(7)
    e = rng.normal(size=(1000, 6)) * 3e-3
    for material in (random_law(), J2Plasticity(E, NU, SY, H)):
        h = np.abs(rng.normal(size=(1000, material.state_size))) * 1e-3
        ev = MaterialEvaluator(material, 6, dtype=torch.float64, chunk_size=300)
        out, new = np.empty((1000, 6)), np.empty_like(h)
        ev.update(e, h, out, new)
        s_ref, h_ref = material.update(e, h)
        np.testing.assert_allclose(out, s_ref, rtol=1e-10, atol=1e-6)
        np.testing.assert_allclose(new, h_ref, rtol=1e-10, atol=1e-14)
        with pytest.raises(ValueError, match="share memory"):
            ev.update(e, h, out, h)


def test_bad_input_is_named() -> None:
    law = random_law()
    with pytest.raises(ValueError, match="state must have shape"):
        law.update(np.zeros((4, 6)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        law.sequence(torch.full((2, 5, 6), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"paths must have shape"):
        law.sequence(torch.zeros(2, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="units"):
        RecurrentLaw("3d", units=0)
    with pytest.raises(ValueError, match="NaN"):
        train_recurrent_law(np.full((3, 5, 6), np.nan), np.zeros((3, 5, 6)), "3d")


def test_cli_j2_paths_recurrent_training_and_certify(tmp_path) -> None:
    from click.testing import CliRunner

    from snmech.cli import cli
    from snmech.material import load_data, paths_from_data

    runner = CliRunner()
    data = tmp_path / "j2.csv"
    args = ["data", "generate", "--law", "j2", "--paths", "12", "--steps", "60"]
    r = runner.invoke(cli, [*args, "--strain-range", "6e-3", "--out", str(data)])
    assert r.exit_code == 0, r.output
    strain, stress = paths_from_data(load_data(data))
    assert strain.shape == (12, 60, 6) and np.abs(stress).max() > 250e6
    law = tmp_path / "rl.safetensors"
    r = runner.invoke(
        cli, ["train", str(data), "--kind", "recurrent", "--epochs", "3", "--out", str(law)]
    )
    assert r.exit_code == 0, r.output
    assert "state map Lipschitz bound 1" in r.output
    r = runner.invoke(cli, ["certify", str(law)])
    assert r.exit_code == 0 and "non-expansive" in r.output
    # Point data (no path/step columns) cannot train a recurrent law: said so.
    points = tmp_path / "points.npz"
    runner.invoke(cli, ["data", "generate", "--law", "linear", "--n", "64", "--out", str(points)])
    r = runner.invoke(cli, ["train", str(points), "--kind", "recurrent", "--out", str(law)])
    assert r.exit_code != 0 and "path" in r.output
    # options a recurrent law does not take are refused by name, not ignored
    train = ["train", str(data), "--kind", "recurrent", "--epochs", "1", "--out", str(law)]
    for extra, flag in [
        (["--lipschitz-max", "1"], "--lipschitz-max"),
        (["--device", "cuda"], "--device"),
        (["--resume"], "--resume"),
        (["--report-dir", str(tmp_path)], "--report-dir"),
    ]:
        r = runner.invoke(cli, [*train, *extra])
        assert r.exit_code == 1 and f"{flag}: not available for --kind recurrent" in r.output
    r = runner.invoke(cli, [*train, "--hidden", "0"])
    assert r.exit_code == 1 and "units, epochs and batch_paths must be >= 1" in r.output
    r = runner.invoke(cli, [*train, "--lr", "inf"])
    assert r.exit_code == 1 and "lr must be finite and > 0" in r.output
