"""The ``snmech`` command: argument parsing only; the numerics live in the library."""

from __future__ import annotations

import math
import os
from typing import Any

import click

import snmech

# snmech._device.DEVICE_NAMES, spelled out so that --help does not import torch
DEVICES = click.Choice(["auto", "cpu", "cuda"])

DEBUG_VARIABLE = "SNMECH_DEBUG"


class _Commands(click.Group):
    """The command group; the library's refusals reach the user as one-line errors.

    The library raises ``ValueError`` (bad options, data, files, an unsafe time
    step), ``FloatingPointError`` (a run that diverged) and ``OSError`` (files),
    each with a message naming the problem; a traceback adds nothing to it.
    ``SNMECH_DEBUG=1`` lets them through with their tracebacks.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ValueError, FloatingPointError, OSError) as exc:
            if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                raise
            raise click.ClickException(str(exc) or type(exc).__name__) from exc


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(snmech.__version__, prog_name="snmech")
def cli() -> None:
    """Certified spectrally normalized networks for physics codes."""


@cli.command()
def info() -> None:
    """Print versions of snmech, torch, dolfinx, PETSc and MPI, CUDA and threads."""
    from snmech._info import environment_info

    items = environment_info()
    width = max(len(k) for k in items)
    for key, value in items.items():
        click.echo(f"{key:<{width}}  {value}")


def _fem() -> None:
    try:
        import snmech.fem  # noqa: F401
    except ImportError as exc:
        raise click.ClickException(
            f"the FEM stack is not available ({exc}); install it with pip install 'snmech[fem]'"
        ) from exc


@cli.command("check-fem")
def check_fem() -> None:
    """Solve a small static cantilever with dolfinx and compare with beam theory."""
    _fem()
    from snmech.fem import cantilever_check

    result = cantilever_check()
    click.echo(
        f"dolfinx check: steel cantilever under self-weight, P2 tets, {result.ndofs} dofs, "
        f"{result.ranks} rank(s)\n"
        f"  tip deflection FEM {result.deflection_fem:.4e} m, Euler-Bernoulli "
        f"{result.deflection_beam:.4e} m, ratio {result.ratio:.4f}"
    )
    if not 0.95 < result.ratio < 1.05:
        raise click.ClickException(f"FEM and beam theory disagree: ratio {result.ratio:.4f}")


@cli.group()
def data() -> None:
    """Stress-strain data: generate from a reference law."""


@data.command("generate")
@click.option(
    "--law",
    "law_name",
    default="saturating",
    show_default=True,
    help="reference law: linear, saturating, or j2 (plasticity: cyclic paths)",
)
@click.option("--n", "n", type=int, default=4096, show_default=True, help="number of samples")
@click.option("--paths", type=int, default=128, show_default=True, help="j2: number of paths")
@click.option("--steps", type=int, default=160, show_default=True, help="j2: steps per path")
@click.option("--yield-stress", type=float, default=250e6, show_default=True, help="j2, Pa")
@click.option("--hardening", type=float, default=5e9, show_default=True, help="j2, Pa")
@click.option(
    "--out", type=click.Path(dir_okay=False), required=True, help="output file (.csv, .npz, .h5)"
)
@click.option(
    "--sampling",
    default="mixed",
    show_default=True,
    type=click.Choice(["random", "uniaxial", "shear", "cyclic", "mixed"]),
)
@click.option("--strain-range", type=float, default=5e-3, show_default=True)
@click.option(
    "--noise", type=float, default=0.0, show_default=True, help="relative Gaussian noise on stress"
)
@click.option("--E", "E", type=float, default=210e9, show_default=True, help="Pa")
@click.option("--nu", type=float, default=0.3, show_default=True)
@click.option(
    "--kinematics", default="3d", show_default=True, type=click.Choice(["3d", "plane_strain"])
)
@click.option(
    "--stress-unit",
    default="MPa",
    show_default=True,
    type=click.Choice(["Pa", "kPa", "MPa", "GPa"]),
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def data_generate(
    law_name: str,
    n: int,
    paths: int,
    steps: int,
    yield_stress: float,
    hardening: float,
    out: str,
    sampling: str,
    strain_range: float,
    noise: float,
    E: float,
    nu: float,
    kinematics: str,
    stress_unit: str,
    seed: int,
) -> None:
    """Sample strains (or, for j2, cyclic strain paths), evaluate a reference law, write a file.

    Path data (j2) has ``path`` and ``step`` columns; strain-range is then the
    largest strain of a path (take several times the yield strain).
    """
    from snmech.material import cyclic_data, generate_data, reference_law, save_data

    if law_name == "j2" and noise != 0:
        raise click.BadParameter("j2 paths are written without noise", param_hint="--noise")
    if law_name == "j2":
        law = reference_law(
            "j2",
            E=E,
            nu=nu,
            kinematics=kinematics,
            yield_stress=yield_stress,
            hardening=hardening,
        )
        kind = "mixed" if sampling in ("mixed", "cyclic") else sampling
        dataset = cyclic_data(
            law,  # type: ignore[arg-type]
            paths,
            steps,
            strain_range,
            kind=kind,  # type: ignore[arg-type]
            seed=seed,
        )
        path = save_data(dataset, out, stress_unit=stress_unit)
        click.echo(
            f"wrote {paths} cyclic paths x {steps} steps (j2, {kinematics}, {kind}) to {path}"
        )
        return
    law = reference_law(law_name, E=E, nu=nu, kinematics=kinematics)
    dataset = generate_data(
        law,
        n,
        sampling=sampling,  # type: ignore[arg-type]
        strain_range=strain_range,
        noise=noise,
        seed=seed,
    )
    path = save_data(dataset, out, stress_unit=stress_unit)
    click.echo(f"wrote {len(dataset)} samples ({law_name}, {kinematics}, {sampling}) to {path}")


@cli.command()
@click.argument("data_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="law.safetensors")
@click.option(
    "--kind",
    default="potential",
    show_default=True,
    type=click.Choice(["potential", "direct", "recurrent"]),
    help="recurrent: a history-dependent law, trained on path data (path, step columns)",
)
@click.option("--lipschitz-max", type=float, default=None, help="cap on the certified bound (Pa)")
@click.option("--device", default="auto", show_default=True, type=DEVICES)
@click.option("--epochs", type=int, default=400, show_default=True)
@click.option(
    "--hidden",
    type=int,
    default=None,
    help="Hidden width [default: 8 potential, 64 direct]; cone units for recurrent [2].",
)
@click.option(
    "--radial", type=int, default=None, help="radial units of a potential law [default: 3]"
)
@click.option(
    "--lr", type=float, default=3e-3, show_default=True, help="(recurrent: 2e-2 unless given)"
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--stress-unit", default=None, help="unit of a file that does not declare one")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="checkpoint file (default: OUT with .ckpt)",
)
@click.option("--resume", is_flag=True, help="continue from the checkpoint")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="write metrics.json and PNG plots here (default: next to OUT)",
)
def train(
    data_file: str,
    out: str,
    kind: str,
    lipschitz_max: float | None,
    device: str,
    epochs: int,
    hidden: int | None,
    radial: int | None,
    lr: float,
    seed: int,
    stress_unit: str | None,
    checkpoint: str | None,
    resume: bool,
    report_dir: str | None,
) -> None:
    """Train a certified neural law on DATA_FILE and write it as one .safetensors file."""
    from pathlib import Path

    from snmech.material import TrainingConfig, load_data
    from snmech.material.report import train_and_report

    dataset = load_data(data_file, stress_unit=stress_unit)
    config = TrainingConfig(epochs=epochs, lr=lr, seed=seed, device=device)
    out_path = Path(out)
    if radial is not None and kind != "potential":
        raise click.ClickException(f"--radial is for potential laws, not {kind}")
    if kind == "recurrent":
        ctx = click.get_current_context()
        given = [
            name
            for name in ("lipschitz_max", "checkpoint", "resume", "report_dir")
            if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
        ]
        if device == "cuda":
            given.append("device")
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise click.ClickException(
                f"{flags}: not available for --kind recurrent (trained on the CPU, "
                "certified by construction, no checkpoints or report)"
            )
        lr_given = ctx.get_parameter_source("lr") != click.core.ParameterSource.DEFAULT
        _train_recurrent(dataset, out_path, hidden, epochs, seed, lr if lr_given else None)
        return
    ckpt = Path(checkpoint) if checkpoint else out_path.with_suffix(".ckpt")
    report = Path(report_dir) if report_dir else out_path.parent
    report.mkdir(parents=True, exist_ok=True)  # before training: a bad one fails now, not after
    summary = train_and_report(
        dataset,
        out_path,
        kind=kind,
        hidden=hidden,
        radial=radial,
        lipschitz_max=lipschitz_max,
        config=config,
        checkpoint=ckpt,
        resume=resume,
        report_dir=report,
    )
    click.echo(
        f"wrote {out_path}: validation relative RMSE {summary['val_rel_rmse']:.4f}, "
        f"certified Lipschitz bound {summary['lipschitz_bound_pa']:.4e} Pa, "
        f"{summary['samples_per_second']:.0f} samples/s on {summary['device']}"
    )


def _train_recurrent(
    dataset: Any, out: Any, units: int | None, epochs: int, seed: int, lr: float | None
) -> None:
    """``snmech train --kind recurrent``: unroll on whole paths, write the law file."""
    from snmech.material import paths_from_data, save_law
    from snmech.material.recurrent_training import RecurrentTrainingConfig, train_recurrent_law

    strain, stress = paths_from_data(dataset)
    cfg = RecurrentTrainingConfig(
        units=2 if units is None else units,
        epochs=epochs,
        seed=seed,
        lr=RecurrentTrainingConfig.lr if lr is None else lr,
    )
    res = train_recurrent_law(strain, stress, dataset.kinematics.value, config=cfg)
    save_law(res.law, out, training=res.summary(), data_sha256=dataset.sha256())
    click.echo(
        f"wrote {out}: held-out paths relative error {res.val_errors.mean():.4f} (mean), "
        f"{res.val_errors.max():.4f} (max); certified Lipschitz bound "
        f"{res.law.lipschitz_bound():.4e} Pa; state map Lipschitz bound "
        f"{res.law.state_lipschitz_bound():.3g}"
    )


@cli.command()
@click.argument("law_file", type=click.Path(dir_okay=False))
def certify(law_file: str) -> None:
    """Recompute a law file's certificate from its weights; fail if it does not match."""
    from snmech.material import load_law
    from snmech.material.model_file import certificate_of

    law = load_law(law_file)
    cert = certificate_of(law)  # what load_law found the file's certificate to match
    click.echo(f"{law_file}: {law.kind} law, {law.kinematics.value}")
    click.echo(
        f"  certified Lipschitz bound  {cert['lipschitz_bound_pa']:.6e} Pa  (matches the file)"
    )
    if "state_lipschitz_bound" in cert:
        click.echo(
            f"  state update Lipschitz bound  {cert['state_lipschitz_bound']:.6g} "
            f"(non-expansive), {cert['state_size']} state entries per point"
        )
    if "loewner_bound_pa" in cert:
        click.echo("  Loewner bound C_bar (Pa):")
        for row in cert["loewner_bound_pa"]:
            click.echo("    " + "  ".join(f"{v:11.4e}" for v in row))


@cli.command()
@click.argument("case_file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="output directory")
@click.option("--end", type=float, default=None, help="end time (s), overrides the case's")
@click.option("--restart", default=None, help="continue from a checkpoint (e.g. OUT/checkpoint)")
@click.option("--overwrite", is_flag=True, help="replace a run already in the output directory")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def simulate(
    case_file: str,
    out: str | None,
    end: float | None,
    restart: str | None,
    overwrite: bool,
    no_progress: bool,
) -> None:
    """Run an explicit-dynamics case file (TOML): mesh, material, loads, output."""
    _fem()
    from mpi4py import MPI

    from snmech.fem.case import run_case
    from snmech.fem.result import SimulationError

    try:
        solver, result = run_case(
            case_file,
            output_dir=out,
            end=end,
            restart=restart,
            overwrite=overwrite,
            progress=not no_progress,
        )
    except (SimulationError, KeyError) as exc:  # the rest reach the group as ValueError/OSError
        raise click.ClickException(str(exc)) from exc
    if MPI.COMM_WORLD.rank != 0:
        return
    ts = result.time_step
    per_step = sum(v for k, v in result.timings.items() if k != "output")
    click.echo(
        f"{case_file}: {result.steps} steps to t = {result.time:.4g} s on "
        f"{MPI.COMM_WORLD.size} rank(s), {solver.V.dofmap.index_map.size_global * solver.gdim} "
        f"dofs, {result.wall_time:.1f} s ({per_step * 1e3:.2f} ms/step)"
    )
    if ts is not None:
        click.echo(
            f"  dt = {result.dt:.4e} s (certified {ts.dt:.4e} s, {ts.method}, {ts.bound} bound "
            f"{ts.lipschitz:.4e} Pa)"
        )
    err = float(abs(result.energy[:, 7]).max()) if len(result.energy) else float("nan")
    click.echo(f"  max energy balance error {err:.2e}")
    for name, values in result.probes.items():
        if name != "time":
            peak = values[abs(values).max(axis=1).argmax()]
            click.echo(f"  probe {name}: peak displacement {peak} m")
    for kind, path in result.files.items():
        click.echo(f"  {kind}: {path}")


@cli.command()
@click.option("--mesh", "mesh_file", type=click.Path(dir_okay=False), required=True)
@click.option("--law", "law_file", default=None, help="law.safetensors (neural law)")
@click.option("--reference", default=None, help="or a reference law: linear or saturating")
@click.option("--E", "E", type=float, default=210e9, show_default=True, help="reference law, Pa")
@click.option("--nu", type=float, default=0.3, show_default=True, help="reference law")
@click.option("--density", type=float, required=True, help="kg/m^3")
@click.option("--degree", type=int, default=1, show_default=True)
@click.option("--safety", type=float, default=0.9, show_default=True)
@click.option(
    "--methods", default="element,global,courant", show_default=True, help="comma separated"
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def timestep(
    mesh_file: str,
    law_file: str | None,
    reference: str | None,
    E: float,
    nu: float,
    density: float,
    degree: int,
    safety: float,
    methods: str,
    as_json: bool,
) -> None:
    """Stable time step of a mesh and a law: certified (element) and estimates."""
    _fem()
    import json

    from mpi4py import MPI

    from snmech.fem.mesh_io import read_mesh
    from snmech.fem.timestep import format_reports, stable_time_step
    from snmech.material import load_law, reference_law

    tagged = read_mesh(mesh_file)
    kin = "3d" if tagged.mesh.geometry.dim == 3 else "plane_strain"
    if (law_file is None) == (reference is None):
        raise click.UsageError("give exactly one of --law FILE and --reference NAME")
    law = (
        load_law(law_file)
        if law_file is not None
        else reference_law(reference, E=E, nu=nu, kinematics=kin)  # type: ignore[arg-type]
    )
    reports = [
        stable_time_step(tagged.mesh, density, law, method=m.strip(), safety=safety, degree=degree)
        for m in methods.split(",")
    ]
    if MPI.COMM_WORLD.rank != 0:
        return
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2))
        return
    element = next((r for r in reports if r.method == "element"), reports[0])
    click.echo(
        f"{mesh_file}: {element.num_cells} cells, {element.num_dofs} dofs (P{degree}); "
        f"{element.bound} bound {element.lipschitz:.4e} Pa; density {density:g} kg/m^3"
    )
    if element.critical_cell is not None:
        mid = ", ".join(f"{c:.4g}" for c in element.critical_midpoint or ())
        click.echo(
            f"  critical cell {element.critical_cell} at ({mid}) m, "
            f"omega^2 = {element.critical_factor:.4e} 1/s^2"
        )
    click.echo(format_reports(reports))


@cli.command()
@click.option("--out", type=click.Path(file_okay=False), default="results", show_default=True)
@click.option("--epochs", type=int, default=300, show_default=True)
@click.option("--samples", type=int, default=4096, show_default=True)
@click.option(
    "--law",
    type=click.Choice(["potential", "linear"]),
    default="potential",
    show_default=True,
    help="train a PotentialLaw, or use the linear elastic reference law",
)
@click.option("--speed", type=float, default=30.0, show_default=True, help="vehicle, m/s")
@click.option("--size", default="coarse", show_default=True, help="bridge mesh size")
@click.option("--no-progress", is_flag=True)
def demo(
    out: str, epochs: int, samples: int, law: str, speed: float, size: str, no_progress: bool
) -> None:
    """Data -> trained certified law -> safe time step -> bridge crossing, into OUT."""
    _fem()
    from mpi4py import MPI

    from snmech.demo import DemoSettings, format_summary, run_demo

    try:
        mesh_size: str | float = float(size)
    except ValueError:
        mesh_size = size
    settings = DemoSettings(samples=samples, epochs=epochs, law=law, speed=speed, size=mesh_size)
    summary = run_demo(out, settings, progress=not no_progress)
    if MPI.COMM_WORLD.rank == 0:
        click.echo(format_summary(summary))
        click.echo(f"results in {out}/ (open bridge/solution_displacement.bp in ParaView)")


@cli.group()
def robust() -> None:
    """Certifiably robust digit classifiers (snmech.robust)."""


@robust.command("train")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="*.safetensors")
@click.option(
    "--model",
    "kind",
    type=click.Choice(["cpl", "mlp"]),
    default="cpl",
    show_default=True,
    help="8 convex potential layers, or the one-layer orthogonal MLP",
)
@click.option("--margin", type=float, default=0.6, show_default=True, help="l2 radius aimed for")
@click.option(
    "--far-margin",
    type=float,
    default=1.0,
    show_default=True,
    help="radius asked of the far training points",
)
@click.option(
    "--far-weight",
    type=float,
    default=None,
    help="weight of the far term; default 2.5 for cpl, 0 (one margin for all) for mlp",
)
@click.option(
    "--far-warmup",
    type=float,
    default=1.0,
    show_default=True,
    help="fraction of the run over which the far weight rises from 0",
)
@click.option(
    "--far-soft-weight",
    type=float,
    default=None,
    help="weight of the far points' soft certified accuracy (0: off); default 0.0625 for cpl, "
    "0 for mlp",
)
@click.option(
    "--far-soft-radius",
    type=float,
    default=1.05,
    show_default=True,
    help="radius at which that term counts the far points",
)
@click.option(
    "--center/--no-center",
    default=None,
    help="subtract the training mean first; default on for cpl, off for mlp",
)
@click.option(
    "--optimizer",
    type=click.Choice(["nadam", "adam"]),
    default=None,
    help="default nadam for cpl, adam for mlp",
)
@click.option(
    "--ema-decay",
    type=float,
    default=None,
    help="end with the moving average of the weights over the second half of the run "
    "(0: off); default 0.995 for cpl, 0 for mlp",
)
@click.option(
    "--epochs", type=int, default=None, help="default 135 for cpl, 150 for mlp (their recipes)"
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    type=DEVICES,
    help="where to train (auto: CUDA when present); the digits are small enough that "
    "the CPU is the fast choice",
)
def robust_train(
    out: str,
    kind: str,
    margin: float,
    far_margin: float,
    far_weight: float | None,
    far_warmup: float,
    far_soft_weight: float | None,
    far_soft_radius: float,
    center: bool | None,
    optimizer: str | None,
    ema_decay: float | None,
    epochs: int | None,
    seed: int,
    device: str,
) -> None:
    """Train the certified digits classifier and write it with its certificate to OUT."""
    from snmech._device import resolve_device
    from snmech.robust import load_digits_split
    from snmech.robust.model_file import save_classifier
    from snmech.robust.recipe import DigitsRecipe, recipe_summary, train_digits

    optional = {
        "far_weight": far_weight,
        "far_soft_weight": far_soft_weight,
        "centered": center,
        "optimizer": optimizer,
        "ema_decay": ema_decay,
        "epochs": epochs,
    }
    given = {key: value for key, value in optional.items() if value is not None}
    recipe = DigitsRecipe.for_model(
        kind,
        margin=margin,
        far_margin=far_margin,
        far_warmup=far_warmup,
        far_soft_radius=far_soft_radius,
        seed=seed,
        **given,
    )
    if epochs is not None and epochs < 1:
        raise click.BadParameter(f"need epochs >= 1, got {epochs}", param_hint="--epochs")
    try:
        recipe.check()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    dev = resolve_device(device)
    model, result = train_digits(load_digits_split(), recipe, device=dev)
    path = save_classifier(
        model,
        out,
        kind=kind,
        architecture=recipe.architecture(),
        input_shape=(1, 8, 8),
        training=recipe_summary(recipe, result),
    )
    click.echo(
        f"trained on {dev.type} in {result.cpu_seconds:.1f} CPU s "
        f"({result.wall_seconds:.1f} s wall); wrote {path}"
    )


@robust.command("evaluate")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--eps", type=float, multiple=True, default=(0.25, 0.5, 1.0), show_default=True)
@click.argument("more_eps", nargs=-1, type=float)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    type=DEVICES,
    help="where to certify and attack (auto: CUDA when present)",
)
def robust_evaluate(
    model_file: str, eps: tuple[float, ...], more_eps: tuple[float, ...], device: str
) -> None:
    """Clean, certified and PGD-l2 accuracy of MODEL_FILE on the digits test split."""
    from snmech._device import resolve_device
    from snmech.robust import evaluate_robustness, load_digits_split
    from snmech.robust.model_file import load_classifier

    radii = list(eps) + list(more_eps) if more_eps else list(eps)
    if any(not (e > 0 and math.isfinite(e)) for e in radii):
        raise click.BadParameter(f"eps must be finite and > 0, got {radii}", param_hint="--eps")
    dev = resolve_device(device)
    model, meta = load_classifier(model_file)
    model.to(dev)
    data = load_digits_split()
    shape = tuple(meta["input_shape"])  # checked by load_classifier
    x = data.x_test
    if math.prod(shape) != x[0].numel():
        raise click.ClickException(
            f"{model_file}: the model takes images of shape {shape}, "
            f"the digits are {tuple(x.shape[1:])}"
        )
    rep = evaluate_robustness(
        model, x.reshape(len(x), *shape).to(dev), data.y_test.to(dev), radii, input_shape=shape
    )
    click.echo(f"certified Lipschitz bound L = {rep.lipschitz:.6f}")
    click.echo(f"clean accuracy {100 * rep.clean:.1f} %")
    for e, c, p in zip(rep.eps, rep.certified, rep.pgd, strict=True):
        click.echo(f"eps {e:g}: certified {100 * c:.1f} %, PGD-l2 {100 * p:.1f} %")


@cli.group()
def gan() -> None:
    """GANs with a certified critic on 2-D mixtures and digits (snmech.gan)."""


@gan.command("train")
@click.option(
    "--dataset",
    type=click.Choice(["ring8", "grid25", "digits"]),
    default="ring8",
    show_default=True,
)
@click.option(
    "--critic",
    type=click.Choice(["sn", "torch-sn", "clip", "gp", "none"]),
    default="sn",
    show_default=True,
)
@click.option(
    "--loss",
    type=click.Choice(["non-saturating", "hinge", "wasserstein"]),
    default=None,
    help="default: hinge for sn/torch-sn, wasserstein for clip/gp, non-saturating for none",
)
@click.option("--steps", type=int, default=2000, show_default=True, help="generator steps")
@click.option("--n-critic", type=int, default=5, show_default=True)
@click.option(
    "--late-n-critic",
    type=int,
    default=0,
    show_default=True,
    help="critic steps per G step from --late-from on (0: always --n-critic)",
)
@click.option(
    "--late-from",
    type=float,
    default=0.5,
    show_default=True,
    help="fraction of the steps where --late-n-critic starts",
)
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate")
@click.option(
    "--critic-lr",
    type=float,
    default=None,
    help="the critic's own Adam learning rate (default: --lr)",
)
@click.option(
    "--ema",
    type=float,
    default=0.0,
    show_default=True,
    help="decay of the generator's weight average, e.g. 0.999 (0: off)",
)
@click.option(
    "--lr-decay",
    type=float,
    default=0.0,
    show_default=True,
    help="fraction of the steps, at the end, over which the learning rates fall to 0",
)
@click.option(
    "--record-every",
    type=int,
    default=1,
    show_default=True,
    help="critic steps between exact measurements of the layer norms",
)
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="torch CPU threads (the mixture networks are too small to gain from more)",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="results/gan", show_default=True)
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoint.pt")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def gan_train(
    dataset: str,
    critic: str,
    loss: str | None,
    steps: int,
    n_critic: int,
    late_n_critic: int,
    late_from: float,
    lr: float,
    critic_lr: float | None,
    ema: float,
    lr_decay: float,
    record_every: int,
    threads: int,
    seed: int,
    out: str,
    resume: bool,
    no_progress: bool,
) -> None:
    """Train a GAN; write OUT/samples.png, OUT/metrics.json and OUT/checkpoint.pt."""
    from snmech.gan import GANConfig, NonFiniteLossError, train_gan

    try:
        config = GANConfig(
            dataset=dataset,
            critic=critic,
            loss=loss,
            steps=steps,
            n_critic=n_critic,
            late_n_critic=late_n_critic,
            late_from=late_from,
            lr=lr,
            critic_lr=critic_lr,
            ema=ema,
            lr_decay=lr_decay,
            record_every=record_every,
            seed=seed,
        )
        run = train_gan(config, out, resume=resume, progress=not no_progress, threads=threads)
    except NonFiniteLossError as exc:  # ValueError/OSError reach the group's handler
        raise click.ClickException(str(exc)) from None
    scores = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in run.metrics.items()
    )
    click.echo(f"{dataset} / {critic} critic, {steps} G steps: {scores}")
    bound = f" (target {run.target_product:g})" if run.target_product is not None else ""
    click.echo(f"max over steps of the exact product of critic layer norms: "
               f"{run.max_norm_product:.6f}{bound}")  # fmt: skip
    if run.certificate is not None:
        click.echo(f"certified Lipschitz bound of the final critic: {run.certificate:.6f}")
    click.echo(f"wrote {out}/samples.png, {out}/metrics.json ({run.seconds:.1f} s training)")


def main() -> None:
    """Entry point of the console script."""
    cli(prog_name="snmech")


if __name__ == "__main__":
    main()
