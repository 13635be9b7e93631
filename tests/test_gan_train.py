"""The training loop: outputs, resume, NaN stop, the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import snmech.gan.train as gan_train
from snmech.cli import cli
from snmech.gan import GANConfig, NonFiniteLossError, train_gan

TINY = {"batch_size": 32, "hidden": 16, "n_eval": 100, "n_critic": 2}


@pytest.mark.parametrize("hidden", [16, 48])
def test_resume_continues_the_same_run(tmp_path: Path, hidden: int) -> None:
    """Bit for bit; hidden 48 > 2 x 16 runs sync_bound_'s warm block (saved with the critic)."""
    cfg = {**TINY, "hidden": hidden}
    whole = train_gan(GANConfig(critic="sn", steps=6, **cfg))
    train_gan(GANConfig(critic="sn", steps=3, **cfg), tmp_path)
    resumed = train_gan(GANConfig(critic="sn", steps=6, **cfg), tmp_path, resume=True)
    if hidden == 48:
        assert "_block" in dict(resumed.critic[2].parametrizations.weight[0].named_buffers())
    for a, b in zip(whole.generator.parameters(), resumed.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.max_norm_product == whole.max_norm_product


def test_generator_average_follows_the_raw_trajectory(tmp_path: Path) -> None:
    """With ema = d the returned generator is d-averaged over the raw generators of each step."""
    from snmech.gan.train import build_models

    cfg = {"critic": "sn", **TINY}
    raw = [build_models(GANConfig(steps=1, **cfg))[0]]
    raw += [train_gan(GANConfig(steps=k, **cfg)).generator for k in (1, 2, 3)]
    d = 0.75
    expected = [p.detach().clone() for p in raw[0].parameters()]
    for g in raw[1:]:
        expected = [d * e + (1 - d) * p for e, p in zip(expected, g.parameters(), strict=True)]
    averaged = train_gan(GANConfig(steps=3, ema=d, **cfg)).generator
    for a, e in zip(averaged.parameters(), expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-7)
    train_gan(GANConfig(steps=2, ema=d, **cfg), tmp_path)  # resume carries the average on
    resumed = train_gan(GANConfig(steps=3, ema=d, **cfg), tmp_path, resume=True).generator
    for a, b in zip(averaged.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="ema"):
        GANConfig(ema=1.0)


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        train_gan(GANConfig(steps=2, **TINY), tmp_path, resume=True)
    train_gan(GANConfig(steps=2, **TINY), tmp_path)
    with pytest.raises(ValueError, match="seed"):
        train_gan(GANConfig(steps=4, seed=1, **TINY), tmp_path, resume=True)
    # a checkpoint cut short or overwritten is named, and never unpickled as code
    ckpt = tmp_path / "checkpoint.pt"
    whole = ckpt.read_bytes()
    for broken in (whole[: len(whole) // 2], b"\x80\x04junk" * 50):
        ckpt.write_bytes(broken)
        with pytest.raises(ValueError, match=r"checkpoint.pt: cannot read the checkpoint"):
            train_gan(GANConfig(steps=4, **TINY), tmp_path, resume=True)
    torch.save([1, 2], ckpt)
    with pytest.raises(ValueError, match="not an snmech checkpoint"):
        train_gan(GANConfig(steps=4, **TINY), tmp_path, resume=True)


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d_fn, g_fn = gan_train.loss_pair("hinge")
    calls = {"n": 0}

    def poisoned(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = d_fn(real, fake)
        return loss * float("nan") if calls["n"] > 2 * 5 else loss  # NaN from G step 5 on

    monkeypatch.setattr(gan_train, "loss_pair", lambda name: (poisoned, g_fn))
    cfg = GANConfig(critic="sn", steps=10, checkpoint_every=2, **TINY)
    with pytest.raises(NonFiniteLossError, match="generator step 5") as info:
        train_gan(cfg, tmp_path)
    assert info.value.step == 5
    assert info.value.checkpoint == tmp_path / "checkpoint.pt"
    assert torch.load(info.value.checkpoint, weights_only=False)["step"] == 4


def test_run_writes_metrics_and_samples(tmp_path: Path) -> None:
    run = train_gan(GANConfig(dataset="grid25", critic="gp", steps=2, **TINY), tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["n_modes"] == 25
    assert saved["max_norm_product"] == pytest.approx(run.max_norm_product)
    assert (tmp_path / "samples.png").stat().st_size > 1000


@pytest.mark.parametrize("critic", ["torch-sn", "clip", "none"])
def test_every_baseline_trains_in_the_same_loop(critic: str) -> None:
    run = train_gan(GANConfig(critic=critic, steps=2, **TINY))
    assert run.metrics["n_modes"] == 8
    assert run.certificate is None
    if critic == "clip":  # |w_ij| <= 0.01 bounds ||W|| by 0.01 sqrt(m n)
        assert max(run.max_layer_norms[1:]) < 0.01 * 16 + 1e-6


def test_cli_trains_and_rejects_unknown_names(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(
        cli, ["gan", "train", "--steps", "2", "--n-critic", "1", "--out", str(out), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert "exact product of critic layer norms" in res.output
    assert (out / "metrics.json").exists()
    bad = runner.invoke(cli, ["gan", "train", "--critic", "wgan"])
    assert bad.exit_code == 2 and "wgan" in bad.output
    bad = runner.invoke(cli, ["gan", "train", "--dataset", "mnist"])
    assert bad.exit_code == 2 and "mnist" in bad.output


def test_cli_passes_the_long_run_settings(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["gan", "train", "--steps", "3", "--n-critic", "1", "--ema", "0.9", "--lr-decay", "0.5"]
    args += ["--critic-lr", "3e-4", "--record-every", "2", "--lr", "2e-4"]
    args += ["--late-n-critic", "2", "--late-from", "0.4"]
    res = runner.invoke(cli, [*args, "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert (config["ema"], config["lr_decay"], config["record_every"]) == (0.9, 0.5, 2)
    assert (config["critic_lr"], config["lr"]) == (3e-4, 2e-4)
    assert (config["late_n_critic"], config["late_from"]) == (2, 0.4)
    bad = runner.invoke(cli, ["gan", "train", "--ema", "1.5", "--out", str(out / "x")])
    assert bad.exit_code == 1 and "ema must be in [0, 1)" in bad.output


def test_lr_decay_is_flat_then_linear_over_the_last_fraction() -> None:
    factors = [gan_train._lr_factor(s, 10, 0.3) for s in range(10)]
    assert factors == pytest.approx([1] * 7 + [1, 2 / 3, 1 / 3])
    assert gan_train._lr_factor(0, 10, 1.0) == 1.0 and gan_train._lr_factor(9, 10, 1.0) == 0.1
    with pytest.raises(ValueError, match="lr_decay"):
        GANConfig(lr_decay=1.5)


def test_late_n_critic_switches_the_critic_steps_and_resume_follows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = GANConfig(steps=10, n_critic=2, late_n_critic=1, late_from=0.4)
    assert [cfg.critic_steps(k) for k in range(10)] == [2] * 4 + [1] * 6
    assert [GANConfig(steps=4, n_critic=3).critic_steps(k) for k in range(4)] == [3] * 4
    # 2 critic steps for G steps 0-2, then 1; exact norms every 4th critic step (the 8th:
    # G step 5, after the switch: a resume that miscounted critic steps would skip it)
    late = {**TINY, "late_n_critic": 1, "late_from": 0.5, "record_every": 4, "critic": "sn"}
    whole = train_gan(GANConfig(steps=6, **late))
    # the same run, stopped after G step 4 (past the switch) and resumed from there
    d_fn, g_fn = gan_train.loss_pair("hinge")
    calls = {"n": 0}

    def poisoned(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return d_fn(real, fake) * (float("nan") if calls["n"] > 3 * 2 + 2 else 1.0)

    with monkeypatch.context() as m:
        m.setattr(gan_train, "loss_pair", lambda name: (poisoned, g_fn))
        with pytest.raises(NonFiniteLossError, match="generator step 5"):
            train_gan(GANConfig(steps=6, checkpoint_every=1, **late), tmp_path)
    resumed = train_gan(GANConfig(steps=6, checkpoint_every=1, **late), tmp_path, resume=True)
    assert resumed.product_trace[-1] == whole.product_trace[-1] > 0  # step 5 recorded in both
    for a, b in zip(whole.generator.parameters(), resumed.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    # extending the run moves the switch (late_from x steps), but not the count of
    # critic steps already taken, which the checkpoint keeps
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["critic_steps"] == 9
    train_gan(GANConfig(steps=8, checkpoint_every=1, **late), tmp_path, resume=True)
    # 9 + 2 single steps; recounted from the 8-step schedule it would be 2 x 4 + 1 x 4 = 12
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["critic_steps"] == 11
    for bad in ({"late_n_critic": -1}, {"late_from": 1.5}):
        with pytest.raises(ValueError, match="late_"):
            GANConfig(**bad)


def test_critic_lr_sets_the_critic_time_scale_alone() -> None:
    from snmech.gan.train import build_models

    start = build_models(GANConfig(**TINY))
    frozen = train_gan(GANConfig(steps=3, critic_lr=1e-30, **TINY))
    moved = train_gan(GANConfig(steps=3, **TINY))
    for a, b in zip(start[1].parameters(), frozen.critic.parameters(), strict=True):
        assert torch.equal(a, b)  # Adam steps of 1e-30 do not move float32 weights
    pairs = zip(start[1].parameters(), moved.critic.parameters(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)
    pairs = zip(start[0].parameters(), frozen.generator.parameters(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(ValueError, match="critic_lr"):
        GANConfig(critic_lr=0.0)


def test_threads_are_set_for_training_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    before = torch.get_num_threads()
    cfg = GANConfig(steps=1, **TINY)
    original = gan_train._train_gan

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(gan_train, "_train_gan", spy)
    train_gan(cfg, threads=1)
    assert seen == [1] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        train_gan(cfg, threads=0)
