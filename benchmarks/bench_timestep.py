"""Benchmark of snmech.fem.timestep: how close the certified dt gets, and what it costs.

Tightness: dt (safety 1) of each method over the exact critical step 2/omega_max
of the free (unconstrained) mesh, on regular and distorted (interior nodes moved
by up to 22 % of h per component) unit cubes of tetrahedra and hexahedra, P1,
steel (E 210 GPa, nu 0.3, rho 7800). Exact: the largest eigenvalue of
M^-1/2 K M^-1/2 by ARPACK (scipy), K assembled by dolfinx from plain UFL; for the
trained PotentialLaw the minimum of 2/omega_max(K_t) over four strain states
(zero, one uniform random strain, two random cell-wise strain fields, |eps| <= 5e-3),
K_t from the law's tangent as a DG0 field. Cost: the certified dt on a ~100k-dof
cube vs 10 steps of ExplicitSolver with the linear-elastic law on the same
mesh (its default: stress in UFL, vectorized kernel), and the one-off global
methods (SLEPc estimate; inertia certificate = estimate + MUMPS LDL^T). Writes
benchmarks/results/timestep.json.
Run: python benchmarks/bench_timestep.py [--n 8] [--big 32] [--epochs 200]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

# isort: off
import snmech.fem  # noqa: F401  (dolfinx_solver must come before dolfinx and petsc4py)

# isort: on
import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import ufl
from _common import device_info, print_table, write_json
from dolfinx import fem, mesh
from mpi4py import MPI

from snmech.fem import ExplicitSolver
from snmech.fem.mass import lumped_mass
from snmech.fem.timestep import stable_time_step
from snmech.material import (
    LinearElastic,
    SaturatingElastic,
    TrainingConfig,
    generate_data,
    train_law,
)

RHO = 7800.0


def jitter(x: np.ndarray, amplitude: float) -> None:
    """Move interior nodes of the unit cube by up to ``amplitude`` per component."""
    inner = np.all((x > 1e-9) & (x < 1 - 1e-9), axis=1)
    a = np.array([[12.9898, 78.233, 37.719], [39.3468, 11.135, 83.155], [73.156, 52.235, 9.151]])
    r = 2.0 * np.modf(np.abs(np.sin(x @ a.T + 0.5) * 43758.5453))[0] - 1.0
    x[inner] += amplitude * r[inner]


def cube(cell: str, n: int, distort: bool) -> mesh.Mesh:
    domain = mesh.create_unit_cube(MPI.COMM_SELF, n, n, n, mesh.CellType[cell])
    if distort:
        jitter(domain.geometry.x, 0.22 / n)
    return domain


def strain(u):
    e = ufl.sym(ufl.grad(u))
    s = math.sqrt(2.0)
    return ufl.as_vector([e[0, 0], e[1, 1], e[2, 2], s * e[1, 2], s * e[0, 2], s * e[0, 1]])


def exact_dt(V, tangents, m, q):
    """2 / omega_max for a cell-wise Mandel tangent (ncells, 6, 6) (ARPACK)."""
    Q = fem.functionspace(V.mesh, ("DG", 0, (6, 6)))
    Ct = fem.Function(Q)
    Ct.x.array.reshape(-1, 36)[Q.dofmap.list[:, 0]] = tangents.reshape(len(tangents), 36)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    md = {} if q is None else {"quadrature_degree": q}
    a = ufl.inner(ufl.dot(Ct, strain(u)), strain(v)) * ufl.dx(metadata=md)
    K = fem.assemble_matrix(fem.form(a)).to_scipy()
    s = scipy.sparse.diags(1.0 / np.sqrt(m))
    w = scipy.sparse.linalg.eigsh(s @ K @ s, k=1, which="LA", tol=1e-12)[0]
    return 2.0 / math.sqrt(w[0])


def strain_states(ncells: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    states = [np.zeros((ncells, 6)), np.tile(rng.uniform(-4e-3, 4e-3, 6), (ncells, 1))]
    return states + [rng.uniform(-5e-3, 5e-3, (ncells, 6)) for _ in range(2)]


def tightness(laws: dict[str, object], n: int) -> tuple[list[list[object]], dict[str, object]]:
    rows, out = [], {}
    for cell in ("tetrahedron", "hexahedron"):
        q = None if cell == "tetrahedron" else 2  # the stiffness rule the bound is for
        for distort in (False, True):
            V = fem.functionspace(cube(cell, n, distort), ("Lagrange", 1, (3,)))
            m = lumped_mass(V, RHO).array
            ncells = V.mesh.topology.index_map(3).size_local
            for name, law in laws.items():
                states = [np.zeros((ncells, 6))] if name == "linear" else strain_states(ncells)
                exact = min(exact_dt(V, law.tangent(s), m, q) for s in states)
                runs = {
                    "element_scalar": (law.lipschitz_bound(), "element", {}),
                    "element_matrix_own_mass": (law, "element", {"balance": 0}),
                    "element_matrix": (law, "element", {}),
                    "inertia_matrix": (law, "inertia", {}),
                    "global_matrix": (law, "global", {}),
                    "courant_matrix": (law, "courant", {}),
                }
                ratios = {
                    k: stable_time_step(V, RHO, b, meth, 1.0, quadrature_degree=q, **kw).dt / exact
                    for k, (b, meth, kw) in runs.items()
                }
                key = f"{cell}_{'distorted' if distort else 'regular'}_{name}"
                out[key] = {"exact_dt_s": exact, "dofs": int(m.size), "ratio": ratios}
                shape = "distorted" if distort else "regular"
                rows.append([cell, shape, name, *(f"{r:.3f}" for r in ratios.values())])
                print(f"  {key}: " + ", ".join(f"{k} {r:.3f}" for k, r in ratios.items()))
    return rows, out


def cost(n: int, law: LinearElastic, repeats: int = 3) -> tuple[list[list[object]], dict]:
    rows, out = [], {}
    for cell in ("tetrahedron", "hexahedron"):
        domain = cube(cell, n, False)
        V = fem.functionspace(domain, ("Lagrange", 1, (3,)))
        # Ten real explicit steps: the solver's own compiled internal force and update.
        solver = ExplicitSolver(domain, law, RHO, initial_velocity=[0.0, 0.0, 1e-3])

        def ten_steps(solver=solver):
            for _ in range(10):
                solver.step()

        Vd = fem.functionspace(cube(cell, n, True), ("Lagrange", 1, (3,)))
        fns = {
            "10 explicit steps": ten_steps,
            "element (default: auto balance)": lambda V=V: stable_time_step(V, RHO, law),
            "element (3 balance rounds)": lambda V=V: stable_time_step(V, RHO, law, balance=3),
            "element (own mass)": lambda V=V: stable_time_step(V, RHO, law, balance=0),
            "element, distorted mesh (default)": lambda V=Vd: stable_time_step(V, RHO, law),
        }
        for fn in fns.values():
            fn()  # warm-up (JIT, caches)
        samples = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                samples[k].append(time.perf_counter() - t0)
        t = {k: statistics.median(s) for k, s in samples.items()}
        for name, method in (
            ("global (SLEPc estimate)", "global"),
            ("inertia (MUMPS LDL^T)", "inertia"),
        ):
            t0 = time.perf_counter()
            stable_time_step(V, RHO, law, method)
            t[name] = time.perf_counter() - t0
        dofs = V.dofmap.index_map.size_global * 3
        cells = domain.topology.index_map(3).size_global
        out[cell] = {"dofs": dofs, "cells": cells, "seconds": t}
        base = t["10 explicit steps"]
        for k, s in t.items():
            rows.append([cell, f"{dofs:,}", k, f"{s:.3f}", f"{s / base:.2f}"])
    return rows, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=8, help="cells per side, tightness meshes")
    parser.add_argument("--big", type=int, default=32, help="cells per side, cost mesh")
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    ref = SaturatingElastic(210e9, 0.3)
    data = generate_data(ref, 2048, sampling="random", strain_range=5e-3, seed=0)
    config = TrainingConfig(epochs=args.epochs, seed=0, device="cpu")
    trained = train_law(data, hidden=32, config=config, progress=False).law
    potential = trained.exported_copy().double()
    linear = LinearElastic(210e9, 0.3)
    payload: dict[str, object] = {
        "device": device_info(torch.device("cpu")),
        "settings": vars(args),
    }
    rows, payload["tightness"] = tightness({"linear": linear, "potential": potential}, args.n)
    print_table(
        f"dt / exact critical dt (safety 1, P1, {args.n}^3 cells); certified: elem *, inertia; "
        "target: element <= 1, >= 0.7 regular, >= 0.6 distorted",
        [
            "cell",
            "mesh",
            "law",
            "elem L",
            "elem C own",
            "elem C",
            "inertia C",
            "global C",
            "courant C",
        ],
        rows,
    )
    rows, payload["cost"] = cost(args.big, linear)
    print_table(
        f"Seconds at ~100k dofs ({args.big}^3 cells, 1 rank); target: element <= 10 steps",
        ["cell", "dofs", "what", "s", "/ 10 steps"],
        rows,
    )
    print(f"\nwrote {write_json('timestep.json', payload)}")


if __name__ == "__main__":
    main()
