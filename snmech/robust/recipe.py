"""The digits recipe shared by ``snmech robust train`` and the benchmark.

Defaults were tuned on the ANCHORS.md protocol (README "Certified robustness"):
one hidden layer of 512 with MaxMin, spectral norm then 3 Björck steps, a
unit-row head certified by the pairwise bound (Note [Unit-row head]), the
pairwise margin cross-entropy with margin 0.6 and temperature 10, Adam at lr
1e-2 (the protocol says 1e-3; 1e-2 is what we use and report), cosine, 150
epochs. Larger margins trade clean accuracy for radius 1.0 (benchmarks/bench_robust.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from snmech.robust.data import DigitsSplit
from snmech.robust.losses import MarginCrossEntropy, PairwiseMarginCrossEntropy
from snmech.robust.models import lipschitz_mlp
from snmech.robust.train import TrainResult, train_classifier


@dataclass(frozen=True)
class DigitsRecipe:
    """Hyper-parameters of a certified digits MLP."""

    hidden: tuple[int, ...] = (512,)
    activation: str = "maxmin"
    orthogonal_iterations: int = 3
    head: str = "rows"
    margin: float = 0.6
    temperature: float = 10.0
    epochs: int = 150
    batch_size: int = 128
    lr: float = 1e-2
    seed: int = 0

    def architecture(self) -> dict[str, Any]:
        """The :func:`lipschitz_mlp` keyword arguments (JSON-ready)."""
        return {
            "in_features": 64,
            "hidden": list(self.hidden),
            "n_classes": 10,
            "activation": self.activation,
            "orthogonal_iterations": self.orthogonal_iterations,
            "head": self.head,
        }


def train_digits(
    data: DigitsSplit, recipe: DigitsRecipe, *, device: torch.device | str | None = None
) -> tuple[nn.Sequential, TrainResult]:
    """Build and train the certified MLP of ``recipe`` on ``data`` (seeded by ``recipe.seed``).

    Returns:
        ``(model, result)``: the trained (still parametrized) model, in eval mode.
    """
    if recipe.margin < 0:
        raise ValueError(f"margin must be >= 0, got {recipe.margin}")
    torch.manual_seed(recipe.seed)
    model = lipschitz_mlp(**recipe.architecture())
    if device is not None:
        model.to(device)
    head = model[-1]
    assert isinstance(head, nn.Linear)
    loss: nn.Module = (
        PairwiseMarginCrossEntropy(head, recipe.margin, recipe.temperature)
        if recipe.head == "rows"
        else MarginCrossEntropy(recipe.margin, recipe.temperature)
    )
    result = train_classifier(
        model,
        data.x_train,
        data.y_train,
        loss,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        seed=recipe.seed,
        device=device,
    )
    return model, result


def recipe_summary(recipe: DigitsRecipe, result: TrainResult) -> dict[str, Any]:
    """A JSON-ready training summary for a model file."""
    return {**asdict(recipe), "hidden": list(recipe.hidden), "cpu_seconds": result.cpu_seconds}
