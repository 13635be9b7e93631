"""The GAN training loop: n_critic steps, exact critic norms at every step, checkpoints.

Note [Recorded norms]
    After each critic backward and before its optimizer step, the weights
    that forward used are measured with :func:`snmech.spectral.operator_norm`
    (float64 SVD for dense layers, the certified FFT bound for convolutions;
    eval mode, so the measurement does not advance any power iteration). For
    torch's and snmech's parametrizations the eval-mode weight after a
    training forward is exactly the weight that forward used. The record keeps
    the maximum over steps of each layer's norm and of their product.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from snmech._model_file import read_checkpoint
from snmech._threads import torch_threads
from snmech.gan.data import DataStream, check_dataset, mixture
from snmech.gan.functional import gradient_penalty, loss_pair
from snmech.gan.metrics import digits_metrics, mode_metrics
from snmech.gan.models import (
    check_critic,
    make_conv_critic,
    make_critic,
    make_generator,
    norm_layers,
    recertify_,
)
from snmech.spectral import Certificate, lipschitz_bound, operator_norm

DEFAULT_LOSS = {
    "sn": "hinge",
    "torch-sn": "hinge",
    "clip": "wasserstein",
    "gp": "wasserstein",
    "none": "non-saturating",
}


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; training stopped.

    Attributes:
        step: the generator step at which it happened.
        checkpoint: the last checkpoint written (kept untouched), or None.
    """

    def __init__(self, what: str, step: int, checkpoint: Path | None) -> None:
        where = f"last checkpoint kept: {checkpoint}" if checkpoint else "no checkpoint written yet"
        super().__init__(f"{what} loss is not finite at generator step {step}; {where}")
        self.step = step
        self.checkpoint = checkpoint


@dataclass
class GANConfig:
    """Settings of one run (defaults: ANCHORS' peers, PacGAN mixtures).

    Attributes:
        dataset: ``ring8``, ``grid25`` or ``digits``.
        critic: ``sn``, ``torch-sn``, ``clip``, ``gp`` or ``none``.
        loss: ``non-saturating``, ``hinge`` or ``wasserstein``; None picks
            :data:`DEFAULT_LOSS` of the critic.
        steps: generator steps.
        n_critic: critic steps per generator step.
        batch_size: samples per batch (real and fake each).
        lr: Adam learning rate of both players (of the generator when ``critic_lr`` is set).
        critic_lr: the critic's own learning rate (two time-scale updates); None: ``lr``.
        betas: Adam betas.
        latent_dim: Gaussian latent size (None: 2 for mixtures, 16 for digits).
        hidden: MLP width.
        depth: hidden layers of generator and MLP critic.
        seed: seeds the weights and both random streams.
        target: per-layer norm target of the ``sn`` critic.
        certified: ``sn`` only: proven per-step norm bounds (Note [Certified critic]).
        clip: weight-clipping radius of ``clip``.
        gp_weight: penalty weight of ``gp``.
        n_eval: samples scored at the end.
        checkpoint_every: generator steps between checkpoints (0: only at the end).
        record_every: critic steps between exact-norm measurements (1: every step).
        lr_decay: fraction ``f`` of the generator steps, at the end, over which both
            learning rates fall linearly toward 0 (to ``1/n`` of their value at the
            last of those ``n = f * steps`` steps; 0: constant rates).
        late_n_critic: critic steps per generator step from ``late_from`` on (0: always
            ``n_critic``): e.g. two critic steps while the modes are found, then one,
            which makes each later generator step cheaper.
        late_from: the fraction of the generator steps where ``late_n_critic`` starts.
        ema: decay of an exponential moving average of the generator's weights,
            updated after every generator step (0: off). When on, samples,
            metrics and :attr:`GANRun.generator` come from the average.
    """

    dataset: str = "ring8"
    critic: str = "sn"
    loss: str | None = None
    steps: int = 2000
    n_critic: int = 5
    batch_size: int = 256
    lr: float = 1e-4
    critic_lr: float | None = None
    betas: tuple[float, float] = (0.5, 0.9)
    latent_dim: int | None = None
    hidden: int = 128
    depth: int = 3
    seed: int = 0
    target: float = 1.0
    certified: bool = True
    clip: float = 0.01
    gp_weight: float = 10.0
    n_eval: int = 2500
    checkpoint_every: int = 500
    record_every: int = 1
    lr_decay: float = 0.0
    ema: float = 0.0
    late_n_critic: int = 0
    late_from: float = 0.5

    def __post_init__(self) -> None:
        check_dataset(self.dataset)
        check_critic(self.critic)
        if self.loss is None:
            self.loss = DEFAULT_LOSS[self.critic]
        loss_pair(self.loss)
        if self.latent_dim is None:
            self.latent_dim = 16 if self.dataset == "digits" else 2
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        for name in ("steps", "n_critic", "batch_size", "n_eval", "record_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive and finite, got {self.lr}")
        if self.critic_lr is not None and not (
            self.critic_lr > 0 and math.isfinite(self.critic_lr)
        ):
            raise ValueError(f"critic_lr must be positive and finite, got {self.critic_lr}")
        if not 0.0 <= self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be in [0, 1], got {self.lr_decay}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if int(self.late_n_critic) < 0:
            raise ValueError(f"late_n_critic must be >= 0, got {self.late_n_critic}")
        if not 0.0 <= self.late_from <= 1.0:
            raise ValueError(f"late_from must be in [0, 1], got {self.late_from}")

    def critic_steps(self, step: int) -> int:
        """Critic steps taken at generator step ``step`` (0-based)."""
        if self.late_n_critic and step >= self.late_from * self.steps:
            return int(self.late_n_critic)
        return int(self.n_critic)


@dataclass
class GANRun:
    """What :func:`train_gan` returns (and writes as ``metrics.json``).

    Attributes:
        config: the settings.
        generator: the trained generator (eval mode); its moving average when
            ``config.ema > 0``.
        critic: the trained critic.
        metrics: VEEGAN metrics (mixtures) or digits metrics.
        max_layer_norms: per critic layer, the largest exact norm over all recorded steps.
        max_norm_product: the largest product of exact layer norms over all recorded steps.
        target_product: ``target ** n_layers`` for ``sn``, else None.
        certificate: ``lipschitz_bound`` of the final critic (``sn`` only), or None.
        seconds: wall time of this call's training.
        cpu_seconds: process CPU time of this call's training (all threads).
        history: ``(step, d_loss, g_loss)`` every 10 generator steps.
        product_trace: per generator step, the largest recorded product of exact
            layer norms among its critic steps (this call's steps only).
    """

    config: GANConfig
    generator: nn.Module
    critic: nn.Module
    metrics: dict[str, float]
    max_layer_norms: list[float]
    max_norm_product: float
    target_product: float | None
    certificate: float | None
    seconds: float
    cpu_seconds: float
    history: list[tuple[int, float, float]] = field(default_factory=list)
    product_trace: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary (no modules)."""
        return {
            "config": dataclasses.asdict(self.config),
            "metrics": self.metrics,
            "max_layer_norms": self.max_layer_norms,
            "max_norm_product": self.max_norm_product,
            "target_product": self.target_product,
            "certificate": self.certificate,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }


def build_models(config: GANConfig) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    """Generator, critic and one sample's shape for ``config`` (weights from ``config.seed``)."""
    torch.manual_seed(config.seed)
    assert config.latent_dim is not None
    if config.dataset == "digits":
        shape: tuple[int, ...] = (1, 8, 8)
        critic = make_conv_critic(config.critic, shape, target=config.target,
                                  certified=config.certified)  # fmt: skip
    else:
        shape = (2,)
        critic = make_critic(config.critic, 2, config.hidden, config.depth,
                             target=config.target, certified=config.certified)  # fmt: skip
    gen = make_generator(config.latent_dim, shape, config.hidden, config.depth)
    return gen, critic, shape


def layer_input_shapes(model: nn.Module, sample_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The per-sample input shape each Linear/Conv layer of ``model`` sees, in order."""
    layers = [m for _, m in norm_layers(model)]
    seen: dict[int, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, a: seen.__setitem__(id(mod), tuple(a[0].shape[1:])))
        for m in layers
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *sample_shape)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return [seen[id(m)] for m in layers]


def exact_layer_norms(model: nn.Module, shapes: list[tuple[int, ...]]) -> list[float]:
    """Exact (dense) or certified (conv) norms of the weights ``model`` uses now.

    See Note [Recorded norms].
    """
    return [
        operator_norm(m, s if isinstance(m, nn.Conv2d) else None)
        for (_, m), s in zip(norm_layers(model), shapes, strict=True)
    ]


def certify_critic(critic: nn.Module, sample_shape: tuple[int, ...]) -> Certificate:
    """``snmech.spectral.lipschitz_bound`` of the critic in eval mode.

    Raises:
        TypeError: the critic holds a module the core cannot bound (named in the message).
    """
    was = critic.training
    try:
        critic.eval()
        return lipschitz_bound(critic, input_shape=sample_shape if len(sample_shape) > 1 else None)
    except TypeError as exc:
        raise TypeError(f"cannot certify this critic: {exc}") from None
    finally:
        critic.train(was)


@torch.no_grad()
def _clip_(model: nn.Module, c: float) -> None:
    for p in model.parameters():
        p.clamp_(-c, c)


def _lr_factor(step: int, steps: int, decay: float) -> float:
    """1 until the last ``decay * steps`` steps, then linearly down to 1/n at the last step."""
    n = max(1, round(decay * steps))
    return min(1.0, (steps - step) / n)


@torch.no_grad()
def _update_average_(average: nn.Module, model: nn.Module, decay: float) -> None:
    for a, p in zip(average.parameters(), model.parameters(), strict=True):
        a.lerp_(p, 1.0 - decay)


def _save(path: Path, state: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_gan(
    config: GANConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    threads: int | None = None,
) -> GANRun:
    """Train a GAN; write ``checkpoint.pt``, ``samples.png`` and ``metrics.json`` to ``out``.

    Args:
        config: the settings.
        out: output directory (None: nothing written, no checkpoints).
        resume: continue from ``out/checkpoint.pt`` (same config except ``steps``).
        progress: show a tqdm progress bar.
        threads: torch's CPU threads while training, restored afterwards (None:
            leave torch's setting). The mixture networks are too small to gain
            from more than one: a ring8 run with two threads here had used 19.7
            CPU minutes, unfinished, where one thread needs 5.6 in all.

    Returns:
        A :class:`GANRun`.

    Raises:
        NonFiniteLossError: a loss became NaN/inf (the last checkpoint is kept).
        FileNotFoundError: ``resume`` without a checkpoint.
        ValueError: the checkpoint's config differs.
    """
    with torch_threads(threads):
        return _train_gan(config, out, resume=resume, progress=progress)


def _train_gan(
    config: GANConfig, out: str | Path | None, *, resume: bool, progress: bool
) -> GANRun:
    outdir = Path(out) if out is not None else None
    ckpt_path = outdir / "checkpoint.pt" if outdir is not None else None
    gen, critic, shape = build_models(config)
    average = copy.deepcopy(gen).requires_grad_(False) if config.ema > 0 else None
    d_fn, g_fn = loss_pair(config.loss or DEFAULT_LOSS[config.critic])
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=config.betas)
    critic_lr = config.critic_lr if config.critic_lr is not None else config.lr
    opt_d = torch.optim.Adam(critic.parameters(), lr=critic_lr, betas=config.betas)
    data_rng = torch.Generator().manual_seed(config.seed + 1)
    noise_rng = torch.Generator().manual_seed(config.seed + 2)
    data = DataStream(config.dataset, data_rng)
    shapes = layer_input_shapes(critic, shape)
    n_layers = len(shapes)
    max_norms = [0.0] * n_layers
    max_product = 0.0
    history: list[tuple[int, float, float]] = []
    start = 0
    d_count: int | None = None  # critic steps taken so far (sets the recording cadence)
    last_ckpt: Path | None = None
    if resume:
        if ckpt_path is None or not ckpt_path.exists():
            raise FileNotFoundError(f"no checkpoint to resume from in {outdir}")
        st = read_checkpoint(ckpt_path)
        mine = {k: v for k, v in dataclasses.asdict(config).items() if k != "steps"}
        defaults = {f.name: f.default for f in dataclasses.fields(GANConfig)}
        theirs = {k: st["config"].get(k, defaults[k]) for k in mine}  # older files lack new keys
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ValueError(f"checkpoint {ckpt_path} was written with other settings: {diff}")
        gen.load_state_dict(st["generator"])
        critic.load_state_dict(st["critic"])
        if average is not None:
            average.load_state_dict(st["generator_ema"])
        opt_g.load_state_dict(st["opt_g"])
        opt_d.load_state_dict(st["opt_d"])
        data_rng.set_state(st["data_rng"])
        noise_rng.set_state(st["noise_rng"])
        start, max_norms, max_product = st["step"], st["max_norms"], st["max_product"]
        history = st["history"]
        d_count = st.get("critic_steps")  # older files: from the schedule, below
        last_ckpt = ckpt_path

    def checkpoint(step: int) -> None:
        nonlocal last_ckpt
        if ckpt_path is None:
            return
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "step": step,
            "config": dataclasses.asdict(config),
            "generator": gen.state_dict(),
            "critic": critic.state_dict(),
            "generator_ema": average.state_dict() if average is not None else None,
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "data_rng": data_rng.get_state(),
            "noise_rng": noise_rng.get_state(),
            "max_norms": max_norms,
            "max_product": max_product,
            "history": history,
            "critic_steps": d_count,
        }
        _save(ckpt_path, state)
        last_ckpt = ckpt_path

    bs, latent = config.batch_size, config.latent_dim
    assert latent is not None
    project = config.critic == "sn" and config.certified
    steps = range(start, config.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"gan {config.dataset}/{config.critic}", unit="step")
    t0, cpu0 = time.perf_counter(), time.process_time()
    if d_count is None:
        d_count = sum(config.critic_steps(k) for k in range(start))
    gen.train()
    critic.train()
    if config.critic == "clip":  # WGAN: the critic lives in the box from its first forward on
        _clip_(critic, config.clip)
    trace: list[float] = []
    for step in steps:
        if config.lr_decay > 0:
            factor = _lr_factor(step, config.steps, config.lr_decay)
            for opt, lr in ((opt_g, config.lr), (opt_d, critic_lr)):
                for group in opt.param_groups:
                    group["lr"] = lr * factor
        step_max = 0.0
        for _ in range(config.critic_steps(step)):
            real = data.batch(bs)
            with torch.no_grad():
                fake = gen(torch.randn(bs, latent, generator=noise_rng))
            out_d = critic(torch.cat([real, fake]))
            d_loss = d_fn(out_d[:bs], out_d[bs:])
            if config.critic == "gp":
                gp = gradient_penalty(critic, real, fake, generator=noise_rng)
                d_loss = d_loss + config.gp_weight * gp
            if not torch.isfinite(d_loss):
                raise NonFiniteLossError("critic", step, last_ckpt)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            if d_count % config.record_every == 0:
                norms = exact_layer_norms(critic, shapes)
                max_norms = [max(a, b) for a, b in zip(max_norms, norms, strict=True)]
                step_max = max(step_max, math.prod(norms))
                max_product = max(max_product, step_max)
            d_count += 1
            opt_d.step()
            if config.critic == "clip":
                _clip_(critic, config.clip)
            elif project:
                recertify_(critic)
        trace.append(step_max)
        g_loss = g_fn(critic(gen(torch.randn(bs, latent, generator=noise_rng))))
        if not torch.isfinite(g_loss):
            raise NonFiniteLossError("generator", step, last_ckpt)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if average is not None:
            _update_average_(average, gen, config.ema)
        if step % 10 == 0:
            history.append((step, float(d_loss.detach()), float(g_loss.detach())))
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            checkpoint(step + 1)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    checkpoint(config.steps)

    if average is not None:
        gen = average
    gen.eval()
    eval_rng = torch.Generator().manual_seed(config.seed + 3)
    with torch.no_grad():
        samples = gen(torch.randn(config.n_eval, latent, generator=eval_rng))
    if config.dataset == "digits":
        metrics = digits_metrics(samples).as_dict()
    else:
        metrics = mode_metrics(samples, mixture(config.dataset)).as_dict()
    target_product = config.target**n_layers if config.critic == "sn" else None
    cert = certify_critic(critic, shape).value if config.critic == "sn" else None
    run = GANRun(config, gen, critic, metrics, max_norms, max_product, target_product, cert,
                 seconds, cpu_seconds, history, trace)  # fmt: skip
    if outdir is not None:
        from snmech.gan.plots import save_samples_png

        modes = mixture(config.dataset).modes if config.dataset != "digits" else None
        title = f"{config.dataset}, {config.critic} critic, {config.steps} G steps"
        save_samples_png(samples, outdir / "samples.png", modes=modes, title=title)
        (outdir / "metrics.json").write_text(json.dumps(run.as_dict(), indent=2))
    return run
