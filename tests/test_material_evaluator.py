"""MaterialEvaluator: the solver's batched, chunked stress call (no dolfinx needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snmech.material import LinearElastic, PotentialLaw, SaturatingElastic
from snmech.material.evaluator import MaterialError, MaterialEvaluator


def random_law(seed=0, **kw):
    torch.manual_seed(seed)
    law = PotentialLaw(hidden=16, **kw).double().eval()
    with torch.no_grad():
        law.a_raw.normal_()
        law.c_raw.normal_()
        law.Q.mul_(3.0)
    return law


def test_numpy_law_in_chunks_equals_one_call():
    law = SaturatingElastic(210e9, 0.3)
    strain = np.random.default_rng(0).normal(size=(1000, 6)) * 2e-3
    out = np.empty_like(strain)
    MaterialEvaluator(law, 6, chunk_size=77)(strain, out)
    np.testing.assert_array_equal(out, law.stress(strain))


def test_fused_kernel_matches_the_law_in_float64():
    law = random_law(lipschitz_max=5e10)
    strain = np.random.default_rng(1).normal(size=(2000, 6)) * 3e-3
    strain[0] = 0.0
    out = np.empty_like(strain)
    MaterialEvaluator(law, 6, device="cpu", dtype=torch.float64, chunk_size=300)(strain, out)
    ref = law.stress(strain)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_float32_is_close_and_the_users_law_is_untouched():
    law = random_law()
    strain = np.random.default_rng(2).normal(size=(500, 6)) * 3e-3
    out = np.empty_like(strain)
    MaterialEvaluator(law, 6, device="cpu", dtype=torch.float32)(strain, out)
    ref = law.stress(strain)
    assert np.abs(out - ref).max() < 1e-5 * np.abs(ref).max()
    assert next(law.parameters()).dtype == torch.float64  # evaluated on a private copy


def test_bad_shapes_and_sizes_are_named():
    with pytest.raises(ValueError, match="size 6.*needs 3"):
        MaterialEvaluator(LinearElastic(210e9, 0.3), 3)
    ev = MaterialEvaluator(LinearElastic(210e9, 0.3), 6)
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        ev(np.zeros((4, 6)), np.zeros((5, 6)))

    class Broken:
        def stress(self, strain):
            return strain[:, :3]

        def lipschitz_bound(self):
            return 1.0

    with pytest.raises(MaterialError, match="shape"):
        MaterialEvaluator(Broken(), 6)(np.zeros((4, 6)), np.zeros((4, 6)))


@pytest.mark.cuda
def test_cuda_evaluation_matches_cpu():
    law = random_law()
    strain = np.random.default_rng(3).normal(size=(100_000, 6)) * 3e-3
    out = np.empty_like(strain)
    MaterialEvaluator(law, 6, device="cuda", dtype=torch.float32, chunk_size=32768)(strain, out)
    ref = law.stress(strain)
    assert np.abs(out - ref).max() < 1e-5 * np.abs(ref).max()
