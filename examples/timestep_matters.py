# # Why the certified time step matters
#
# Explicit dynamics advances the semi-discrete equation of motion
#
# $$ M \ddot u + f_{int}(u) = 0, \qquad
#    f_{int}(u)_i = \int_\Omega \sigma(\varepsilon(u)) : \varepsilon(\phi_i)\,dx $$
#
# with central differences and a lumped mass $M$. The scheme is stable only while
# $\Delta t < 2 / \omega_{max}$, where $\omega_{max}^2$ is the largest eigenvalue of
# $(K_t, M)$ over every tangent stiffness $K_t$ the material can produce. Above that
# step the highest mesh mode is amplified by a factor $> 1$ at every step and the
# energy grows geometrically from round-off.
#
# A neural constitutive law makes $K_t$ whatever the network's Jacobian is. snmech's
# `PotentialLaw` is the gradient of a convex potential whose hidden layer is
# spectrally normalized, so its tangent is symmetric and bounded in the Loewner order,
# $0 \preceq C_t(\varepsilon) \preceq \bar C$ for every strain; the element eigenvalue
# inequality then turns $\bar C$ into a *certified* stable step (DESIGN.md, "The
# guarantee"). A plain strain-to-stress MLP only offers the product of its layer
# norms, a loose bound of a tangent that is not even symmetric, so in practice one
# falls back on an estimate: typically the Courant step $h / (p\,c)$ of the
# linear-elastic material the network was meant to reproduce.
#
# This example trains both networks on the same data, with the same budget, to the
# same accuracy (0.14 % and 0.12 % held-out stress error), hits a steel cantilever
# with a transverse velocity and runs it
#
# * with the `PotentialLaw` at its certified step, for 10,000 steps: kinetic +
#   internal energy stays at the impact energy, balanced to 7e-5;
# * with the plain network at the linear-elastic Courant step: the energy passes 10
#   times the impact energy at step 11 and peaks near 80 times it, with strains
#   of order 1. No NaN ever appears (the tanh layers saturate), so only the energy
#   balance tells that the run is garbage.
#
# What the comparison does *not* show is a network that is unstable because it was
# not normalized. For fairness the example also runs the `PotentialLaw` and the
# reference material itself at the Courant step: both diverge at step 10, since on
# this mesh the Courant number is 1.29 times the exact critical step of linear
# elasticity. And the plain network, run at the `PotentialLaw`'s certified step,
# stays bounded: its tangent is as close to the true one as the `PotentialLaw`'s
# (gradient ascent finds 4.05e11 Pa vs the exact 4.04e11 Pa). Only the *guarantee*
# differs. The `PotentialLaw`'s certificate is 3 % above the true tangent norm and
# gives a proven step at 0.75 of the exact critical one (0.83 before the safety
# factor 0.9); the plain network's honest bound is 4.6 times too high and gives
# 0.35 of it, more than twice the steps, and still covers only the symmetric part.
# Spectral normalization is what makes a certificate tight enough to use; an
# estimate is a guess, and this one is 29 % too long.
#
# Run: `python examples/timestep_matters.py [--output-dir DIR] [--quick]`
# (about 50 s on one core; `--quick` is the reduced version the test runs).

from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# isort: off
import snmech.fem  # noqa: F401  (dolfinx_solver must come before dolfinx and petsc4py)

# isort: on
import numpy as np
import torch
import ufl
from dolfinx import fem
from mpi4py import MPI

from snmech.fem import (
    Clamp,
    ExplicitSolver,
    SimulationError,
    TaggedMesh,
    beam_mesh,
    stable_time_step,
)
from snmech.material import (
    DirectLaw,
    LinearElastic,
    SaturatingElastic,
    StressStrainData,
    TrainingConfig,
    generate_data,
    tangent_asymmetry,
    train_law,
)
from snmech.spectral import lipschitz_lower_bound

# ## The material and its data
#
# The "true" material is snmech's `SaturatingElastic` steel in plane strain: a convex
# hyperelastic law whose shear modulus softens from $\mu_0$ to $0.3\,\mu_0$ once the
# deviatoric strain passes $2 \cdot 10^{-3}$. Its tangent never exceeds the
# small-strain elasticity tensor, so the exact critical step of *linear* elasticity
# is also a valid step for it. Both networks learn it from the same 4096 samples
# with strain norms up to $5 \cdot 10^{-3}$ and are scored on 2048 fresh ones.

E, NU, RHO = 210e9, 0.3, 7800.0  # Pa, -, kg/m^3
STRAIN_RANGE = 5e-3
LENGTH, HEIGHT = 1.0, 0.1  # m; plane strain, unit thickness
IMPACT_SPEED = 10.0  # m/s at the tip, linear along the beam
DIVERGED = 10.0  # a run has diverged once kinetic + internal energy exceeds 10x the impact's


def relative_rmse(law: object, data: StressStrainData) -> float:
    """``sqrt(mean |sigma_law - sigma|^2 / mean |sigma|^2)`` on ``data``."""
    pred = np.asarray(law.stress(data.strain))  # type: ignore[attr-defined]
    return float(np.sqrt(np.mean((pred - data.stress) ** 2) / np.mean(data.stress**2)))


# ## Two networks of similar accuracy
#
# The `PotentialLaw` (32 ridge units, 3 radial units) comes out of `train_law`: Adam
# with a cosine schedule, 256 samples a batch, the best of the epochs on a 20 %
# validation split. Its certificate is the Loewner bound $\bar C$.
#
# The comparison network is snmech's strain-to-stress MLP (`DirectLaw`, 2 tanh
# layers of 64) with spectral normalization switched off, trained by the plain Adam
# loop below with the same learning rate, schedule, batch size and number of epochs,
# on all the samples. Its only computable bound is the product of its exact layer
# norms; that is a true bound of the Jacobian norm, but for a non-symmetric tangent
# the time-step argument covers the symmetric part only.


def train_plain_mlp(data: StressStrainData, config: TrainingConfig) -> DirectLaw:
    """An unnormalized tanh MLP ``strain -> stress`` fitted by Adam (mean squared error).

    Args:
        data: training samples (all are used).
        config: epochs, batch size, peak learning rate (cosine decay to 1 %) and seed.

    Returns:
        The trained law in eval mode.
    """
    torch.manual_seed(config.seed)
    strain_scale = float(np.sqrt(np.mean(data.strain**2)))
    stress_scale = float(np.sqrt(np.mean(data.stress**2)))
    law = DirectLaw(data.kinematics, strain_scale, stress_scale, normalized=False)
    e = torch.as_tensor(data.strain / strain_scale, dtype=torch.float32)
    s = torch.as_tensor(data.stress / stress_scale, dtype=torch.float32)
    opt = torch.optim.Adam(law.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.epochs, config.lr / 100)
    for _ in range(config.epochs):
        for batch in torch.randperm(len(e)).split(config.batch_size):
            opt.zero_grad()
            loss = ((law.scaled_stress(e[batch]) - s[batch]) ** 2).mean()
            loss.backward()
            opt.step()
        schedule.step()
    return law.eval()


# ## The cantilever, the impact, the time steps
#
# A steel cantilever, 1 m x 0.1 m, plane strain, bilinear quadrilaterals, clamped at
# $x = 0$, starts undeformed with a transverse velocity $v_y = 10\,x/L$ m/s: the
# kinetic energy $\rho A L v_0^2 / 6 = 13$ kJ/m is all the energy there ever is
# (no loads, no damping), so kinetic + internal energy must stay at 13 kJ/m. The
# impact bends the beam to strain norms of about $4 \cdot 10^{-3}$ at the root:
# past the onset of shear softening, inside the trained range.
#
# The time steps, with the usual safety factor 0.9 unless said otherwise:
#
# * certified: `ExplicitSolver`'s default (`dt=None`), the element bound of the
#   `PotentialLaw`'s $\bar C$;
# * Courant: `stable_time_step(..., LinearElastic, method="courant")`,
#   $h_{min} / (p\,c)$ with $h$ the cell diameter and $c$ the P-wave speed, the
#   step one would guess for a network that "is" linear elasticity at small strain;
# * exact (reference only): the critical step of linear elasticity on this mesh,
#   certified to 1e-6 by `method="inertia"` (a Krylov estimate confirmed by an
#   LDL^T factorization), without safety factor, to show where the true limit lies;
# * the plain network's certified step, from its product of layer norms (reported,
#   not run).


def cantilever(n_cells: int) -> TaggedMesh:
    """The beam with ``n_cells`` quadrilaterals along its length (``n_cells / 10`` through it)."""
    return beam_mesh(LENGTH, HEIGHT, n=n_cells, cell="quadrilateral", dim=2, comm=MPI.COMM_SELF)


def impact(x: np.ndarray) -> np.ndarray:
    """Initial velocity (m/s), ``(2, n)`` for points ``x`` ``(3, n)``."""
    return np.vstack([np.zeros_like(x[0]), IMPACT_SPEED * x[0] / LENGTH])


# ## One run
#
# `ExplicitSolver.run` stops at the first NaN or energy-balance violation; here we
# step by hand with `solver.step()` and record `solver.energy_row()` after every step,
# so a diverging run keeps its whole history. A run ends at `t_end`, or when the
# solver raises `SimulationError` (displacement or force became NaN/inf). It has
# *diverged* at the first step where kinetic + internal energy exceeds 10 times the
# impact energy (the balance error is then of order one as well).


@dataclass
class Run:
    """History of one run: ``energy`` rows ``[step, t, kinetic, internal, ..., error]``."""

    label: str
    dt: float
    energy: np.ndarray
    peak_strain: float
    error: str | None = None

    @property
    def total(self) -> np.ndarray:
        """Kinetic + internal energy (J per m of thickness) after each step."""
        return self.energy[:, 2] + self.energy[:, 3]

    @property
    def steps(self) -> int:
        """Steps taken."""
        return len(self.energy)

    @property
    def diverged_at(self) -> int | None:
        """First step with total energy above ``DIVERGED`` times the initial one."""
        grown = np.flatnonzero(~(self.total <= DIVERGED * self.total[0]))
        return int(grown[0]) + 1 if len(grown) else None

    @property
    def max_balance_error(self) -> float:
        """Largest |energy balance error| (relative to the largest energy seen)."""
        return float(np.nanmax(np.abs(self.energy[:, 7])))


def run(label: str, domain: TaggedMesh, law: object, t_end: float, dt: float | None) -> Run:
    """Simulate the impact with ``law`` up to ``t_end`` (s); ``dt=None``: certified step."""
    solver = ExplicitSolver(
        domain,
        law,  # type: ignore[arg-type]
        RHO,
        dirichlet=[Clamp("clamped")],
        initial_velocity=impact,
        dt=dt,
        force_dt=True,  # snmech refuses a step above the certified one unless forced
        dtype=torch.float64,
    )
    # Strain at the cell centres, to report how far into the nonlinear range the run goes.
    centre = np.full((1, 2), 0.5)
    strain = fem.Expression(ufl.sym(ufl.grad(solver.u)), centre)
    cells = np.arange(solver.mesh.topology.index_map(2).size_local, dtype=np.int32)
    rows, peak, error = [], 0.0, None
    # A diverging run overflows on its way to inf: expected here, so numpy need not warn.
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            for i in range(math.ceil(t_end / solver.dt - 1e-9)):
                solver.step()
                rows.append(solver.energy_row())
                if i % 20 == 0:
                    eps = strain.eval(solver.mesh, cells)
                    peak = max(peak, float(np.linalg.norm(eps, axis=(-2, -1)).max()))
        except SimulationError as exc:
            error = str(exc)
    return Run(label, solver.dt, np.array(rows), peak, error)


# ## The experiment


@dataclass
class Outcome:
    """Everything the example measures (Pa, s, J per m of thickness)."""

    accuracy: dict[str, float]
    bound: dict[str, float]
    tangent_found: dict[str, float]
    asymmetry: float
    dt: dict[str, float]
    runs: dict[str, Run] = field(default_factory=dict)


def main(
    n_cells: int = 40, n_steps: int = 10_000, n_samples: int = 4096, epochs: int = 600
) -> Outcome:
    """Train both networks, run the five simulations, print a summary.

    Args:
        n_cells: cells along the beam (the full example: 40 x 4).
        n_steps: steps of the certified run; the others run to the same end time.
        n_samples: training samples.
        epochs: training epochs of each network.

    Returns:
        The measured numbers and the run histories.
    """
    reference = SaturatingElastic(E, NU, kinematics="plane_strain")
    data = generate_data(reference, n_samples, strain_range=STRAIN_RANGE, seed=0)
    test = generate_data(reference, 2048, sampling="random", strain_range=STRAIN_RANGE, seed=1)

    # Potential law with its certificate; the plain MLP with its product of layer norms.
    config = TrainingConfig(epochs=epochs, seed=0)
    potential = train_law(data, kind="potential", hidden=32, config=config, progress=False).law
    plain = train_plain_mlp(data, config)

    # Held-out accuracy, bounds, and the largest tangent norm that gradient ascent finds
    # (a lower bound of the true sup) next to the reference law's exact one.
    probe = torch.as_tensor(test.strain[:256])
    outcome = Outcome(
        accuracy={"potential": relative_rmse(potential, test), "plain": relative_rmse(plain, test)},
        bound={
            "potential": potential.lipschitz_bound(),
            "plain": plain.lipschitz_bound(),
            "reference": reference.lipschitz_bound(),
        },
        tangent_found={
            "potential": lipschitz_lower_bound(potential, probe, steps=20),
            "plain": lipschitz_lower_bound(plain, probe, steps=20),
        },
        asymmetry=tangent_asymmetry(plain, test.strain[:256]),
        dt={},
    )

    domain = cantilever(n_cells)
    linear = LinearElastic(E, NU, kinematics="plane_strain")
    outcome.dt = {
        "certified": stable_time_step(domain.mesh, RHO, potential).dt,
        "courant": stable_time_step(domain.mesh, RHO, linear, method="courant").dt,
        "exact_linear": stable_time_step(domain.mesh, RHO, linear, method="inertia", safety=1).dt,
        "plain_bound": stable_time_step(domain.mesh, RHO, plain.lipschitz_bound()).dt,
    }

    # The runs: every one ends at the time the certified run reaches in n_steps steps.
    t_end = n_steps * outcome.dt["certified"]
    courant = outcome.dt["courant"]
    with warnings.catch_warnings():
        # The solver warns that a DirectLaw's certificate covers its symmetric part only:
        # we know, and report the tangent's asymmetry above.
        warnings.filterwarnings("ignore", message="a DirectLaw's tangent is not symmetric")
        outcome.runs = {
            "potential_certified": run(
                "PotentialLaw, certified dt", domain, potential, t_end, None
            ),
            "plain_courant": run("plain MLP, Courant dt", domain, plain, t_end, courant),
            "potential_courant": run("PotentialLaw, Courant dt", domain, potential, t_end, courant),
            "reference_courant": run(
                "reference law, Courant dt", domain, reference, t_end, courant
            ),
            "plain_certified": run(
                "plain MLP, PotentialLaw's certified dt",
                domain,
                plain,
                t_end,
                outcome.dt["certified"],
            ),
        }
    report(outcome)
    return outcome


# ## What it prints


def report(outcome: Outcome) -> None:
    """Print the comparison as a small table."""
    acc, bound, found, dt = outcome.accuracy, outcome.bound, outcome.tangent_found, outcome.dt
    print(
        f"held-out relative RMSE of stress: PotentialLaw {acc['potential']:.2%}, "
        f"plain MLP {acc['plain']:.2%}"
    )
    print(f"tangent norm (Pa): reference law {bound['reference']:.3e}")
    print(f"  PotentialLaw  certified {bound['potential']:.3e}, found {found['potential']:.3e}")
    print(
        f"  plain MLP     layer-norm product {bound['plain']:.3e}, found {found['plain']:.3e}, "
        f"tangent asymmetry {outcome.asymmetry:.1%}"
    )
    exact = dt["exact_linear"]
    print("time steps (s), safety 0.9 (exact: 1); over the exact step of linear elasticity:")
    for name, value in dt.items():
        print(f"  {name:<14} {value:.4e}  ({value / exact:.2f})")
    print("runs:")
    for r in outcome.runs.values():
        growth = np.nanmax(r.total) / r.total[0]
        end = f"diverged at step {r.diverged_at}" if r.diverged_at else "bounded"
        stop = ", stopped: NaN/inf" if r.error else ""
        print(
            f"  {r.label:<40} dt {r.dt:.3e} s, {r.steps:>5} steps, {end}{stop}; "
            f"max energy x{growth:.3g}, max |balance error| {r.max_balance_error:.1e}, "
            f"peak strain {r.peak_strain:.2e}"
        )


# ## The plot
#
# Kinetic + internal energy against time, both axes logarithmic so that the first
# steps, where the unstable runs take off, are visible: on the left the two networks
# at the certified step, on the right the three laws at the Courant step. The thin
# black line is the impact energy.

TOP = 1e12  # J/m: curves are cut where they leave the plot


def plot(outcome: Outcome, path: Path) -> Path:
    """Energy vs time of every run, saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = outcome.runs
    impact_energy = runs["potential_certified"].total[0]
    style = {
        "potential_certified": ("tab:blue", "-"),
        "plain_certified": ("tab:red", "--"),
        "plain_courant": ("tab:red", "-"),
        "potential_courant": ("tab:blue", "--"),
        "reference_courant": ("0.3", ":"),
    }
    panels = [
        (["potential_certified", "plain_certified"], "certified"),
        (["plain_courant", "potential_courant", "reference_courant"], "linear-elastic Courant"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (names, title) in zip(axes, panels, strict=True):
        for name in names:
            r = runs[name]
            color, line = style[name]
            shown = np.isfinite(r.total) & (r.total < TOP)
            t = r.energy[shown, 1] * 1e3
            ax.loglog(t, r.total[shown], color=color, ls=line, label=r.label)
            if r.diverged_at is not None:
                k = r.diverged_at - 1
                ax.plot(r.energy[k, 1] * 1e3, r.total[k], "x", color=color, ms=8)
        ax.axhline(impact_energy, color="k", lw=0.6)
        ax.set_title(f"{title} dt = {runs[names[0]].dt:.3g} s")
        ax.set_xlabel("time (ms)")
        ax.grid(alpha=0.3, which="major")
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel("kinetic + internal energy (J/m)")
    axes[0].set_ylim(0.3 * impact_energy, TOP)
    fig.suptitle("steel cantilever impact, plane strain; x: energy above 10x the impact's")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Certified vs Courant time step.")
    parser.add_argument("--output-dir", type=Path, default=None, help="also save the plot here")
    parser.add_argument(
        "--quick", action="store_true", help="the reduced run of the test (no docs/img plot)"
    )
    args = parser.parse_args()
    if args.quick:
        outcome = main(n_cells=20, n_steps=2000, n_samples=1024, epochs=300)
        targets = []
    else:
        outcome = main()
        targets = [Path(__file__).resolve().parents[1] / "docs" / "img" / "timestep_matters.png"]
    if args.output_dir is not None:
        targets.append(args.output_dir / "timestep_matters.png")
    for target in targets:
        print(f"wrote {plot(outcome, target)}")
