"""Benchmark of snmech.fem.ExplicitSolver: seconds per explicit step, and where they go.

Protocol: a steel bar ``[0, 4] x [0, 0.5] x [0, 0.5]`` m of ``8n x n x n`` Q1
hexahedra (2x2x2 Gauss points), clamped at ``x = 0``, starting with a uniform
transverse velocity of 1 m/s (strains ~2e-4, inside the law's training range),
certified time step. Three ways of computing the internal force:

- ``ufl``: linear elastic stress written directly in UFL (``ufl_stress=True``),
  the floor: one assembly per step, no quadrature round trip; compiled with
  the solver's default vectorizing flags (``snmech.fem._jit``);
- ``ufl-o2``: the same with FFCx's default flags (``jit_options={}``);
- ``numpy``: :class:`~snmech.material.LinearElastic` as a numpy callback
  (``ufl_stress=False``): strain at the quadrature points, stress in numpy,
  assembly of the quadrature-space stress;
- ``neural``: a trained :class:`~snmech.material.PotentialLaw` (the default 8
  ridge units and 3 radial units, 400 epochs on the saturating reference law;
  its held-out relative RMSE is in the JSON) through the
  quadrature round trip: one batched torch call, float32, chunks of 8192 points;
- ``neural-form``: the same law compiled into the form (float64), the
  solver's default for a PotentialLaw on the CPU;

at ``n`` = 4, 10, 16 (2,475, 29,403 and 111,843 dofs). Every configuration
runs in its own fresh process, so its peak RSS is its own and torch's threads
are clean: after ``--warmup`` steps, ``--blocks`` blocks of ``--steps`` steps
are timed with ``perf_counter`` around the whole loop and the fastest block is
kept; the solver's own timers split it into strain, material, assembly and
update (the rest of the step: leapfrog update, BCs, energies, NaN check).
Configurations are interleaved over ``--repeats`` rounds and the fastest round
is kept. The material call runs with the solver's default of 1 torch thread
(scoped to the call); ``thr`` is the process's torch setting otherwise, and one
extra neural run at the largest size sets the whole process to 1 torch
thread. At the largest size, the ``ufl`` and ``neural`` runs are repeated on 2
MPI ranks (``mpirun -n 2``, ``OMP_NUM_THREADS=1``: one thread per rank; times
are rank 0's, between barriers; RSS is the largest rank's). Peak RSS is the
process's ``VmHWM`` (``ru_maxrss`` of an exec'd child also counts its parent at
fork time); it is reset after the set-up (``/proc/self/clear_refs``) so the
step loop's own growth is reported too. Two last runs step an untrained wide
law (``PotentialLaw(hidden=256)``, 5 steps) in chunks of 8192 points and in one
call, to show that chunking bounds the memory. Targets (issue): neural step
<= 2x the UFL floor at ~100k dofs; 2 ranks >= 1.6x faster than 1 at ~100k
dofs; peak RSS <= 1.5 GB for the ~100k-dof neural run. Writes
benchmarks/results/fem.json (about 5 minutes on 2 cores).

Run: python benchmarks/bench_fem.py [--sizes 4 10 16] [--steps 30] [--repeats 2]
[--no-mpi]. Internally the script re-invokes itself as
``python bench_fem.py --worker MODE N --law FILE`` (one configuration, one JSON
line on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
MODES = ("ufl", "ufl-o2", "numpy", "neural", "neural-form")
RHO = 7800.0
E, NU = 210e9, 0.3


# --------------------------------------------------------------------- worker
def rss_now_and_peak() -> tuple[float, float]:
    """Current and peak (since the last reset) resident set size of this process, MiB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def worker(args: argparse.Namespace) -> None:
    """Time one configuration on MPI.COMM_WORLD; rank 0 prints one JSON line."""
    # isort: off
    import snmech.fem  # noqa: F401  (dolfinx_solver must come before dolfinx and petsc4py)

    # isort: on
    import torch
    from dolfinx import mesh
    from mpi4py import MPI

    from snmech.fem import Clamp, ExplicitSolver
    from snmech.fem.solver import Timings
    from snmech.material import LinearElastic, PotentialLaw, load_law

    mode, n = args.worker[0], int(args.worker[1])
    comm = MPI.COMM_WORLD
    rss_import = rss_now_and_peak()[1]
    if mode in ("neural", "neural-form"):
        material: Any = load_law(args.law)
    elif mode == "wide":
        torch.manual_seed(0)
        material = PotentialLaw(hidden=256).eval()
    else:
        material = LinearElastic(E, NU)
    domain = mesh.create_box(
        comm, [[0.0, 0.0, 0.0], [4.0, 0.5, 0.5]], [8 * n, n, n], mesh.CellType.hexahedron
    )
    solver = ExplicitSolver(
        domain,
        material,
        RHO,
        dirichlet=[Clamp(lambda x: x[0] < 1e-9)],
        initial_velocity=[0.0, 0.0, 1.0],
        ufl_stress=mode in ("ufl", "ufl-o2", "neural-form"),
        jit_options={} if mode == "ufl-o2" else None,
        dtype=torch.float32,
        chunk_size=args.chunk,
    )
    if args.threads:  # the process's setting (the material call scopes its own)
        torch.set_num_threads(args.threads)
    rss_setup = rss_now_and_peak()[1]
    # The step loop's own peak: reset the high-water mark after the set-up (whose
    # certified time step and JIT compilation are one-off).
    reset_peak_rss()
    rss_before_steps = rss_now_and_peak()[0]
    for _ in range(args.warmup):
        solver.step()
    best: tuple[float, dict[str, float]] | None = None
    for _ in range(args.blocks):
        solver.timings = Timings()
        comm.barrier()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            solver.step()
        comm.barrier()
        wall = (time.perf_counter() - t0) / args.steps
        if best is None or wall < best[0]:
            best = (wall, solver.timings.per_step())
    assert best is not None
    step_peak = rss_now_and_peak()[1]  # since the reset (or since the start, if refused)
    rss = max(rss_setup, step_peak)
    imap = domain.topology.index_map(3)

    def most(x: float) -> float:
        return float(comm.allreduce(x, op=MPI.MAX))

    result = {
        "mode": mode,
        "n": n,
        "ranks": comm.size,
        "dofs": solver.V.dofmap.index_map.size_global * solver.V.dofmap.index_map_bs,
        "cells": imap.size_global,
        "quadrature_points": imap.size_global * 8,
        "chunk_size": args.chunk if mode in ("neural", "wide", "numpy") else None,
        "dt_s": solver.dt,
        "steps_timed": args.steps,
        "seconds_per_step": best[0],
        "parts_per_step": {k: v for k, v in best[1].items() if k != "output"},
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "peak_rss_mb": most(rss),
        "rss_after_import_mb": most(rss_import),
        "peak_rss_setup_mb": most(rss_setup),
        "rss_before_steps_mb": most(rss_before_steps),
        "peak_rss_steps_mb": most(step_peak),
        "max_abs_u_m": most(float(abs(solver.u.x.array).max())),
    }
    if comm.rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------- driver
class Config(NamedTuple):
    """One benchmarked configuration (``threads`` 0: the solver's own choice)."""

    mode: str
    n: int
    ranks: int = 1
    threads: int = 0
    chunk: int = 8192
    steps: int | None = None  # None: the command line's --steps/--blocks/--warmup

    @property
    def label(self) -> str:
        """Short name for the table."""
        if self.chunk == 8192:
            return self.mode
        return f"{self.mode} (one chunk)" if self.chunk >= 2**30 else f"{self.mode} ({self.chunk})"


def run_worker(c: Config, law: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one configuration in a fresh process (``mpirun`` for several ranks)."""
    steps, blocks, warmup = (
        (args.steps, args.blocks, args.warmup) if c.steps is None else (c.steps, 1, 2)
    )
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", c.mode, str(c.n)]
    cmd += ["--law", str(law), "--steps", str(steps), "--blocks", str(blocks)]
    cmd += ["--warmup", str(warmup), "--chunk", str(c.chunk), "--threads", str(c.threads)]
    env = dict(os.environ)
    if c.ranks > 1:
        mpirun = Path(sys.executable).parent / "mpirun"
        cmd = [str(mpirun), "-n", str(c.ranks), *cmd]
        env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker {c} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return json.loads(lines[-1].removeprefix("RESULT "))


def train(path: Path, epochs: int) -> dict[str, Any]:
    """Train the benchmark's PotentialLaw once and save it for the workers."""
    import torch

    from snmech.material import (
        SaturatingElastic,
        TrainingConfig,
        generate_data,
        save_law,
        train_law,
    )
    from snmech.material.training import relative_rmse

    t0 = time.perf_counter()
    data = generate_data(
        SaturatingElastic(E, NU), 4096, sampling="random", strain_range=5e-3, seed=0
    )
    law = train_law(data, config=TrainingConfig(epochs=epochs, seed=0), progress=False).law
    seconds = time.perf_counter() - t0
    save_law(law, path)
    test = generate_data(
        SaturatingElastic(E, NU), 4000, sampling="random", strain_range=5e-3, seed=1
    )
    with torch.no_grad():
        pred = law(torch.as_tensor(test.strain, dtype=torch.float32)).numpy()
    return {
        "architecture": law.architecture(),
        "train_seconds": seconds,
        "test_relative_rmse": relative_rmse(pred, test.stress),
    }


def keep_fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs of one configuration (peak RSS: the largest seen)."""
    best = min(runs, key=lambda r: r["seconds_per_step"])
    return best | {
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "peak_rss_steps_mb": max(r["peak_rss_steps_mb"] for r in runs),
        "seconds_per_step_all": [r["seconds_per_step"] for r in runs],
    }


def table_row(c: Config, res: dict[str, Any]) -> list[object]:
    """One printed row."""
    p, s = res["parts_per_step"], res["seconds_per_step"]
    ratio = res.get("ratio_to_ufl")
    return [
        c.label,
        f"{res['dofs']:,}",
        f"{res['cells']:,}",
        c.ranks,
        res["torch_threads"],
        *(f"{1e3 * p[k]:.2f}" for k in ("strain", "material", "assembly", "update")),
        f"{1e3 * s:.2f}",
        "-" if ratio is None else f"{ratio:.2f}",
        f"{res['cells'] / s:.3g}",
        f"{res['peak_rss_mb']:.0f}",
        f"{res['peak_rss_steps_mb'] - res['rss_before_steps_mb']:.0f}",
    ]


HEADER = [
    "mode",
    "dofs",
    "cells",
    "ranks",
    "thr",
    "strain ms",
    "material ms",
    "assembly ms",
    "update ms",
    "total ms",
    "x ufl",
    "cell-steps/s",
    "RSS MB",
    "+steps MB",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 10, 16], help="n of 8n*n*n")
    parser.add_argument("--steps", type=int, default=30, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=2, help="timed blocks per process")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds of processes")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--no-mpi", action="store_true", help="skip the 2-rank runs")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--law", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=8192, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    import torch
    from _common import device_info, print_table, write_json

    t_start, load_average = time.perf_counter(), os.getloadavg()
    big = max(args.sizes)
    configs = [Config(m, n) for n in args.sizes for m in MODES]
    configs.append(Config("neural", big, threads=1))
    if not args.no_mpi:
        configs += [Config("ufl", big, ranks=2), Config("neural-form", big, ranks=2)]
        configs += [Config("neural", big, ranks=2)]
    wide_configs = [Config("wide", big, steps=5), Config("wide", big, chunk=2**30, steps=5)]
    runs: dict[Config, list[dict[str, Any]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        law = Path(tmp) / "potential.safetensors"
        training = train(law, args.epochs)
        print(
            f"trained PotentialLaw in {training['train_seconds']:.1f} s, held-out relative "
            f"RMSE {100 * training['test_relative_rmse']:.2f} %"
        )
        for r in range(args.repeats):
            for c in configs:
                res = run_worker(c, law, args)
                runs[c].append(res)
                print(
                    f"  round {r + 1}: {c.label} n={c.n} ranks={c.ranks} "
                    f"threads={res['torch_threads']}: {1e3 * res['seconds_per_step']:.2f} ms/step, "
                    f"peak RSS {res['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
        wide = {c: run_worker(c, law, args) for c in wide_configs}
    best = {c: keep_fastest(v) for c, v in runs.items()}

    for c, res in best.items():
        floor = best[Config("ufl", c.n, c.ranks)]["seconds_per_step"]
        res["ratio_to_ufl"] = res["seconds_per_step"] / floor
        res["cell_steps_per_s"] = res["cells"] / res["seconds_per_step"]
    print_table(
        "Explicit step, Q1 hex bar, seconds per step split by the solver's timers "
        "(x ufl: over the UFL floor at the same size and ranks; thr: torch threads; "
        "RSS: process peak; +steps: peak growth during the steps)",
        HEADER,
        [table_row(c, res) for c, res in best.items()],
    )
    print_table(
        "Wide law (PotentialLaw(hidden=256), untrained): the step's memory, chunked vs not",
        HEADER,
        [table_row(c, res) for c, res in wide.items()],
    )

    targets: dict[str, dict[str, Any]] = {}
    neural, floor = best[Config("neural-form", big)], best[Config("ufl", big)]
    batched = best[Config("neural", big)]
    dofs = f"{neural['dofs']:,} dofs"

    def target(key: str, what: str, value: float, goal: str, met: bool) -> None:
        targets[key] = {"what": what, "value": value, "target": goal, "met": met}

    ratio = neural["seconds_per_step"] / floor["seconds_per_step"]
    target(
        "neural_over_ufl",
        f"neural step (default: law compiled into the form) / UFL floor, {dofs}, 1 rank",
        ratio,
        "<= 2",
        ratio <= 2,
    )
    ratio_b = batched["seconds_per_step"] / floor["seconds_per_step"]
    target(
        "neural_batched_over_ufl",
        f"neural step (batched torch call, float32) / UFL floor, {dofs}, 1 rank",
        ratio_b,
        "<= 2",
        ratio_b <= 2,
    )
    floor_o2 = best[Config("ufl-o2", big)]["seconds_per_step"]
    ratio_o2 = neural["seconds_per_step"] / floor_o2
    target(
        "neural_over_ufl_ffcx_default_flags",
        f"neural step (default) / UFL floor compiled with FFCx's default flags, {dofs}",
        ratio_o2,
        "<= 2",
        ratio_o2 <= 2,
    )
    rss = neural["peak_rss_mb"]
    target(
        "neural_peak_rss_mb",
        f"peak RSS (MB) of the neural run, {dofs}",
        rss,
        "<= 1500",
        rss <= 1500,
    )
    if not args.no_mpi:
        for mode in ("neural-form", "neural", "ufl"):
            speedup = (
                best[Config(mode, big)]["seconds_per_step"]
                / best[Config(mode, big, ranks=2)]["seconds_per_step"]
            )
            target(
                f"mpi_speedup_{mode}",
                f"2 ranks vs 1, {mode}, {dofs}",
                speedup,
                ">= 1.6",
                speedup >= 1.6,
            )
    print("\nTargets")
    for t in targets.values():
        status = "met" if t["met"] else "MISSED"
        print(f"  {t['what']}: {t['value']:.2f} (target {t['target']}): {status}")

    payload: dict[str, Any] = {
        "device": device_info(torch.device("cpu")),
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "law", "threads")}
        | {
            "mesh": "box [0,4]x[0,0.5]x[0,0.5] m, 8n x n x n Q1 hexahedra, 8 Gauss points",
            "material": f"E {E:g} Pa, nu {NU}, rho {RHO} kg/m^3; clamp x=0; v0 = (0,0,1) m/s",
            "neural_law": training,
            "dtype": "float32",
            "load_average_at_start": load_average,
        },
        "results": [{"config": c._asdict()} | res for c, res in best.items()],
        "wide_law": [{"config": c._asdict()} | res for c, res in wide.items()],
        "targets": targets,
        "benchmark_seconds": time.perf_counter() - t_start,
    }
    print(f"\nwrote {write_json('fem.json', payload)} in {payload['benchmark_seconds']:.0f} s")


if __name__ == "__main__":
    main()
