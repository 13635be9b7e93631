"""The copy task: its layout, the memoryless baseline, and a small SpectralRNN that learns it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snmech.rnn import SpectralRNN, copy_task
from snmech.rnn.tasks import copy_baseline

delays = pytest.mark.parametrize("delay", [1, 7, 100])


@delays
def test_copy_task_layout(delay):
    # uRNN layout: 10 symbols, delay - 1 blanks, the delimiter, 10 blanks; recall at the end
    x, y = copy_task(16, delay, generator=torch.Generator().manual_seed(0))
    total = delay + 20
    assert x.shape == (16, total, 10) and x.dtype == torch.float32
    assert y.shape == (16, total) and y.dtype == torch.int64
    assert bool((x.sum(-1) == 1).all())  # one-hot
    seq = x.argmax(-1)
    symbols = seq[:, :10]
    assert bool(((symbols >= 1) & (symbols <= 8)).all())
    assert bool((seq[:, delay + 9] == 9).all())  # the delimiter, the only one
    assert int((seq == 9).sum()) == 16
    assert bool((seq[:, 10:] % 9 == 0).all())  # after the symbols: blanks and the delimiter
    assert bool((y[:, : delay + 10] == 0).all())
    torch.testing.assert_close(y[:, -10:], symbols)


@delays
def test_copy_baseline_is_the_memoryless_cross_entropy(delay):
    # blank with certainty, then a uniform guess over the 8 symbols: 10 log 8 / (T + 20)
    _, y = copy_task(64, delay, generator=torch.Generator().manual_seed(1))
    log_p = torch.full((*y.shape, 9), -math.inf)
    log_p[:, : delay + 10, 0] = 0.0
    log_p[:, delay + 10 :, 1:] = -math.log(8)
    ce = nn.functional.nll_loss(log_p.flatten(0, 1), y.flatten())
    assert float(ce) == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-6)
    assert copy_baseline(delay) == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-12)


def test_copy_baseline_rejects_bad_sizes():
    with pytest.raises(ValueError, match="delay"):
        copy_baseline(0)
    with pytest.raises(ValueError, match="n_symbols"):
        copy_task(2, 5, n_symbols=1)
    with pytest.raises(ValueError, match="batch"):
        copy_task(0, 5)


def test_small_orthogonal_rnn_learns_a_short_copy():
    # T = 5, 3 symbols: 200 Adam steps take the loss far below the memoryless baseline
    torch.manual_seed(0)
    rnn, head = SpectralRNN(10, 32), nn.Linear(32, 9)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        x, y = copy_task(32, 5, copy_length=3, generator=gen)
        loss = nn.functional.cross_entropy(head(rnn(x)[0]).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = copy_task(256, 5, copy_length=3, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        logits = head(rnn(x)[0])
    ce = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert float(ce) < 0.1 * copy_baseline(5, copy_length=3)
    assert float((logits[:, -3:].argmax(-1) == y[:, -3:]).float().mean()) >= 0.95
