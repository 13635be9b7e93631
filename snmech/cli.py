"""The ``snmech`` command: argument parsing only; the numerics live in the library."""

from __future__ import annotations

import click

import snmech


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


@cli.command("check-fem")
def check_fem() -> None:
    """Solve a small static cantilever with dolfinx and compare with beam theory."""
    try:
        from snmech.fem import cantilever_check
    except ImportError as exc:
        raise click.ClickException(
            f"the FEM stack is not available ({exc}); install it with pip install 'snmech[fem]'"
        ) from exc
    result = cantilever_check()
    click.echo(
        f"dolfinx check: steel cantilever under self-weight, P2 tets, {result.ndofs} dofs, "
        f"{result.ranks} rank(s)\n"
        f"  tip deflection FEM {result.deflection_fem:.4e} m, Euler-Bernoulli "
        f"{result.deflection_beam:.4e} m, ratio {result.ratio:.4f}"
    )
    if not 0.95 < result.ratio < 1.05:
        raise click.ClickException(f"FEM and beam theory disagree: ratio {result.ratio:.4f}")


def main() -> None:
    """Entry point of the console script."""
    cli(prog_name="snmech")


if __name__ == "__main__":
    main()
