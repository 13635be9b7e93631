# # Train a certified material surrogate
#
# Stress-strain data from a hyperelastic steel with softening shear (the
# `saturating` reference law: its energy is convex, its shear modulus falls
# from mu_0 to 0.3 mu_0 beyond a deviatoric strain of about 2e-3), then a
# `PotentialLaw`: stress = grad psi(strain) of a convex potential, so its
# tangent is symmetric positive semi-definite and bounded in the Loewner order
# by a matrix C_bar that the file stores and `load_law` recomputes. That
# certificate is what makes the explicit solver's time step a guarantee.
#
# The command-line version:
#     snmech data generate --law saturating --n 4096 --out data.csv
#     snmech train data.csv --out law.safetensors
#     snmech certify law.safetensors

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from snmech.material import (
    SaturatingElastic,
    TrainingConfig,
    generate_data,
    load_law,
    save_law,
    train_law,
)
from snmech.material.training import relative_rmse
from snmech.spectral import lipschitz_lower_bound

HERE = Path(__file__).resolve().parent


def main(
    out: str | Path = HERE / "../results/surrogate",
    samples: int = 4096,
    epochs: int = 300,
    progress: bool = True,
) -> dict[str, float]:
    """Train, save, reload and check a law; return its accuracy and certificate."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # ## Data: random strain states up to 5e-3, plus held-out test data
    reference = SaturatingElastic(E=210e9, nu=0.3)
    data = generate_data(reference, samples, sampling="random", strain_range=5e-3, seed=0)
    test = generate_data(reference, 2000, sampling="random", strain_range=5e-3, seed=1)
    # ## Training (CUDA when present) and the certified file
    result = train_law(data, config=TrainingConfig(epochs=epochs, seed=0), progress=progress)
    path = out / "law.safetensors"
    save_law(result.law, path, training=result.summary(), data_sha256=data.sha256())
    law = load_law(path)  # the certificate is recomputed from the weights here
    # ## How good, how tight: accuracy, and the bound against the largest
    # tangent norm gradient ascent can find (a lower bound of the true constant)
    bound = law.lipschitz_bound()
    start = torch.as_tensor(np.vstack([np.zeros((1, 6)), test.strain[:64]]))
    lower = lipschitz_lower_bound(law, start, steps=20)
    return {
        "test_rel_rmse": relative_rmse(np.asarray(law.stress(test.strain)), test.stress),
        "lipschitz_bound_pa": bound,
        "bound_over_lower": bound / lower,
        "bound_over_reference": bound / reference.lipschitz_bound(),
        "min_loewner_eigenvalue_pa": float(np.linalg.eigvalsh(law.loewner_bound())[0]),
    }


if __name__ == "__main__":
    metrics = main(progress="--quiet" not in sys.argv)
    for key, value in metrics.items():
        print(f"{key:26s} {value:.6g}")
