r"""Explicit dynamics (central differences, lumped mass) with any material at quadrature points.

The semi-discrete equation of motion with mass-proportional damping,

.. math:: M \ddot u + \alpha M \dot u + f_{int}(u) = f_{ext}(t),
    \qquad f_{int}(u)_i = \int_\Omega \sigma(\varepsilon(u)) \cdot \varepsilon(\phi_i)\,dx,

is advanced by the leapfrog scheme (Mandel vectors, so the dot product is the
tensor contraction)

.. math:: v_{n+1/2} = \frac{(1 - \alpha\Delta t/2)\, v_{n-1/2}
    + \Delta t\, M^{-1}(f_{ext,n} - f_{int,n})}{1 + \alpha\Delta t/2},
    \qquad u_{n+1} = u_n + \Delta t\, v_{n+1/2}.

Each step is one round trip through the quadrature points (Note [Quadrature
bridge]): strain of all points from one compiled ``fem.Expression``, one
batched material call, one assembly of a form whose stress is a
quadrature-space Function. It is stable for ``dt < 2 / omega_max``; the
default ``dt`` is the certified one of :func:`~snmech.fem.timestep.stable_time_step`.

Note [Quadrature bridge]
    Strain and stress live in the same quadrature space, so their arrays line
    up point by point whatever the dof order; the material is evaluated on
    owned and ghost points alike, which makes the ghost values consistent
    without communication. The internal force is assembled on owned cells,
    accumulated onto owners (``scatter_reverse``) and copied back to ghosts
    (``scatter_forward``): every rank then updates its owned and ghost dofs
    with identical numbers, so ``u`` stays consistent with no further scatter.
"""

from __future__ import annotations

import math
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import basix.ufl
import numpy as np
import numpy.typing as npt
import torch
import ufl
from dolfinx import fem, la, mesh
from mpi4py import MPI

from snmech.fem._element import default_quadrature_degree, vector_space
from snmech.fem._jit import vector_jit_options
from snmech.fem._mandel import kinematics_of, mandel_strain
from snmech.fem._run import run
from snmech.fem._ufl_laws import ufl_stress as ufl_stress_expr
from snmech.fem.boundary import (
    Clamp,
    Dirichlet,
    Gravity,
    Load,
    MovingLoad,
    PrescribedDisplacement,
    PrescribedVelocity,
    Traction,
    dirichlet_dofs,
    evaluate,
    locate_facets,
    moving_window,
)
from snmech.fem.mass import lumped_mass
from snmech.fem.result import SimulationError, SimulationResult, Timings
from snmech.fem.timestep import stable_time_step
from snmech.material.evaluator import (
    Material,
    MaterialEvaluator,
    evaluation_device,
    is_stateful,
)
from snmech.material.neural import PotentialLaw
from snmech.material.reference import LinearElastic

Array = npt.NDArray[np.float64]


class UnsafeTimeStepError(ValueError):
    """A requested time step is above the certified stable one."""


class ExplicitSolver:
    """Central-difference explicit dynamics of a solid on a dolfinx mesh.

    Args:
        domain: a dolfinx mesh (3D, or 2D for plane strain), or a
            :class:`~snmech.fem.meshes.TaggedMesh` (then boundaries can be
            given by tag name).
        material: any material of DESIGN.md's protocol (``stress`` on Mandel
            batches, ``lipschitz_bound``), e.g. a reference law or a neural law.
        density: kg/m^3.
        degree: Lagrange degree of the displacement (1; 2 on simplices).
        quadrature_degree: default exact for a constant tangent.
        dirichlet: :class:`~snmech.fem.boundary.Clamp`,
            ``PrescribedDisplacement``, ``PrescribedVelocity``.
        loads: ``Traction``, ``MovingLoad``, ``Gravity``.
        initial_velocity: m/s, a constant vector or ``x -> (gdim, n)`` values
            (an impact).
        damping: mass-proportional damping ``alpha`` (1/s).
        dt: time step (s); default the certified stable one times ``safety``.
        safety: safety factor on the certified step.
        force_dt: accept a ``dt`` above the certified one (at your own risk).
        probes: name -> point (m) whose displacement is recorded every step.
        device: torch device for a torch law (``None``: CUDA when present).
        dtype: torch dtype for a torch law (float32 is fast; float64 exact).
        chunk_size: material points per call.
        material_threads: torch CPU threads during the material call (1 is
            fastest here; ``None`` keeps torch's setting).
        ufl_stress: compile a closed-form law (:class:`LinearElastic`,
            :class:`PotentialLaw`) into the internal-force form: one pass
            computes strain, stress and force, in float64. Default: for
            ``LinearElastic``, and for a ``PotentialLaw`` evaluated on the CPU
            when vectorized kernels are available (``jit_options``; 4x faster
            than the batched torch call here, 1.9x the linear-elastic step).
            ``False`` forces the quadrature round trip (strain array, one
            batched material call, stress array), the only path for other laws
            and for a law on a GPU.
        jit_options: FFCx/CFFI options for the internal-force form. Default:
            vectorized kernels on x86-64 Linux with glibc's libmvec
            (``snmech.fem._jit``: ``-O3 -march=native``, reassociated sums,
            SIMD ``exp``/``tanh``; NaN and inf kept), 3.5x faster for linear
            elasticity here; ``{}`` gives FFCx's defaults.
        energy_tolerance: stop when the energy balance error exceeds this
            fraction of the largest energy seen.

    Raises:
        UnsafeTimeStepError: ``dt`` above the certified step without ``force_dt``.
        ValueError: bad density, degree, boundary names, vector sizes.
    """

    def __init__(
        self,
        domain: Any,
        material: Material,
        density: float,
        *,
        degree: int = 1,
        quadrature_degree: int | None = None,
        dirichlet: Sequence[Dirichlet] = (),
        loads: Sequence[Load] = (),
        initial_velocity: Sequence[float] | Callable[[Array], Array] | None = None,
        damping: float = 0.0,
        dt: float | None = None,
        safety: float = 0.9,
        force_dt: bool = False,
        probes: Mapping[str, Sequence[float]] | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        chunk_size: int = 8192,
        material_threads: int | None = 1,
        ufl_stress: bool | None = None,
        jit_options: dict[str, Any] | None = None,
        energy_tolerance: float = 0.05,
    ) -> None:
        tags = domain if hasattr(domain, "facet_tags") else None
        msh: mesh.Mesh = domain.mesh if tags is not None else domain
        if not (math.isfinite(density) and density > 0):
            raise ValueError(f"density must be a positive number (kg/m^3), got {density}")
        if not (math.isfinite(damping) and damping >= 0):
            raise ValueError(f"damping must be >= 0 (1/s), got {damping}")
        if callable(getattr(material, "exported_copy", None)):
            # Certify and evaluate the same plain-weight, eval-mode law (a law still
            # in training mode would move its power-iteration estimate under us).
            material = material.exported_copy()  # type: ignore[attr-defined]
        self.mesh, self.material, self.density = msh, material, float(density)
        self.comm: MPI.Comm = msh.comm
        self.kinematics = kinematics_of(msh)
        gdim = msh.geometry.dim
        self.gdim, self.damping = gdim, float(damping)
        self.energy_tolerance = float(energy_tolerance)
        self.V = vector_space(msh, degree)
        self.u = fem.Function(self.V, name="displacement")
        self.v = fem.Function(self.V, name="velocity")  # v_{n+1/2} after a step
        self.mass = lumped_mass(self.V, self.density).array
        bs = self.V.dofmap.index_map_bs
        self.n_owned = self.V.dofmap.index_map.size_local * bs

        q = (
            default_quadrature_degree(msh.topology.cell_type, degree)
            if quadrature_degree is None
            else quadrature_degree
        )

        # --- time step: certified by default, refused above it unless forced
        self.time_step = stable_time_step(
            self.V, self.density, material, safety=safety, quadrature_degree=q
        )
        if self.time_step.note:  # e.g. a direct law: the bound covers the symmetric part
            warnings.warn(self.time_step.note, stacklevel=2)
        if dt is None:
            dt = self.time_step.dt
        elif not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {dt}")
        elif dt > self.time_step.dt and not force_dt:
            raise UnsafeTimeStepError(
                f"dt = {dt:.6g} s is above the certified stable time step "
                f"{self.time_step.dt:.6g} s (safety {safety}, method "
                f"{self.time_step.method}); pass force_dt=True to run it anyway"
            )
        self.dt = float(dt)

        # --- internal force: the quadrature round trip (any law, CPU or GPU), or a
        # closed-form law compiled into the form (LinearElastic by default: the floor)
        v_test = ufl.TestFunction(self.V)
        dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": q})
        k = self.kinematics.size
        if jit_options is None:
            jit_options = vector_jit_options()
        if ufl_stress is None:
            on_gpu = evaluation_device(device).type == "cuda"
            fast = bool(jit_options.get("cffi_libraries"))
            use_form = isinstance(material, LinearElastic) or (
                isinstance(material, PotentialLaw) and fast and not on_gpu
            )
        else:
            use_form = ufl_stress
        sigma = ufl_stress_expr(material, mandel_strain(self.u)) if use_form else None
        if ufl_stress and sigma is None:
            raise ValueError(
                "ufl_stress=True needs a law with a closed form (LinearElastic, PotentialLaw), "
                f"got {type(material).__name__}"
            )
        self.ufl_stress = sigma is not None
        self.stateful = is_stateful(material)
        if self.stateful and self.ufl_stress:
            raise ValueError("a history-dependent material needs the quadrature path (ufl_stress)")
        if not self.ufl_stress:
            qe = basix.ufl.quadrature_element(msh.basix_cell(), value_shape=(k,), degree=q)
            Q = fem.functionspace(msh, qe)
            self.stress_q = fem.Function(Q, name="stress")
            self._strain_expr = fem.Expression(
                mandel_strain(self.u), Q.element.interpolation_points
            )
            tdim = msh.topology.dim
            cmap = msh.topology.index_map(tdim)
            self._cells = np.arange(cmap.size_local + cmap.num_ghosts, dtype=np.int32)
            n_points = len(self.stress_q.x.array) // k
            self._strain = np.zeros((len(self._cells), n_points // len(self._cells), k))
            self._stress = np.zeros((n_points, k))
            # Expression.eval writes cell by cell; the quadrature space numbers its
            # points the same way unless reordered (then map through its dofmap).
            order = Q.dofmap.list.ravel()
            self._q_order = None if np.array_equal(order, np.arange(n_points)) else order
            self._evaluator = MaterialEvaluator(
                material,
                k,
                device=device,
                dtype=dtype,
                chunk_size=chunk_size,
                threads=material_threads,
            )
            sigma = self.stress_q
            if self.stateful:
                # One state row per quadrature point, in the order of the strain array;
                # the new state goes to the second buffer, then the two swap.
                m = self._evaluator.state_size
                self.state = np.asarray(material.initial_state(n_points), dtype=np.float64)  # type: ignore[attr-defined]
                if self.state.shape != (n_points, m):
                    raise ValueError(
                        f"initial_state({n_points}) has shape {self.state.shape}, "
                        f"want ({n_points}, {m})"
                    )
                self._state_next = np.empty_like(self.state)
        self.sigma = sigma  # Mandel stress (Pa): a UFL expression or the quadrature Function
        f_int = ufl.inner(sigma, mandel_strain(v_test)) * dx
        try:
            self._f_int_form = fem.form(f_int, jit_options=jit_options)
        except Exception as exc:  # a compiler that refuses the vector flags: FFCx defaults
            if not jit_options or jit_options is not vector_jit_options():
                raise
            warnings.warn(
                f"vectorized kernel did not compile ({exc}); using FFCx's default flags",
                stacklevel=2,
            )
            self._f_int_form = fem.form(f_int)
        self.jit_options = jit_options
        self.f_int = fem.Function(self.V, name="internal_force")
        self.f_ext = fem.Function(self.V, name="external_force")
        self._surf = fem.Function(self.V)
        self.timings = Timings()

        # --- loads: constant body force vector, time-dependent surface forms
        self._gravity: list[tuple[Array, Callable[[float], float] | None]] = []
        self._t_const = fem.Constant(msh, 0.0)
        surface_terms: list[Any] = []
        self._traction_updates: list[Callable[[float], None]] = []
        for load in loads:
            if isinstance(load, Gravity):
                g = evaluate(load.acceleration, 0.0, gdim, "gravity acceleration")
                body = fem.Function(self.V)
                form = fem.form(self.density * ufl.inner(fem.Constant(msh, g), v_test) * dx)
                fem.assemble_vector(body.x.array, form)
                body.x.scatter_reverse(la.InsertMode.add)
                body.x.scatter_forward()
                self._gravity.append((body.x.array.copy(), load.ramp))
            elif isinstance(load, (Traction, MovingLoad)):
                surface_terms.append(self._surface_term(load, tags, v_test))
            else:
                raise TypeError(f"unknown load {load!r}")
        # One form per surface load: each has its own facet tags (they may overlap).
        self._f_surf_forms = [fem.form(term) for term in surface_terms]

        # --- Dirichlet conditions as unrolled dof arrays
        self._bcs: list[tuple[npt.NDArray[np.int32], Dirichlet]] = []
        for bc in dirichlet:
            dofs = dirichlet_dofs(self.V, bc.where, tags, bc.components)
            if self.comm.allreduce(len(dofs), op=MPI.SUM) == 0:
                raise ValueError(f"boundary condition {bc!r} selects no dof")
            self._bcs.append((dofs, bc))
        self.bc_dofs = (
            np.unique(np.concatenate([d for d, _ in self._bcs])).astype(np.int32)
            if self._bcs
            else np.zeros(0, dtype=np.int32)
        )

        self.probes_spec = dict(probes or {})
        self.t, self.step_count = 0.0, 0
        self._initial_velocity = initial_velocity
        self._setup_state()

    # ------------------------------------------------------------------ setup
    def _surface_term(self, load: Traction | MovingLoad, tags: Any, v_test: Any) -> Any:
        msh = self.mesh
        facets = locate_facets(msh, load.where, tags)
        marker = np.full(len(facets), 1, dtype=np.int32)
        order = np.argsort(facets)
        ft = mesh.meshtags(msh, msh.topology.dim - 1, facets[order], marker)
        ds = ufl.Measure("ds", domain=msh, subdomain_data=ft, subdomain_id=1)
        area = self.comm.allreduce(fem.assemble_scalar(fem.form(1.0 * ds)), op=MPI.SUM)
        if not area > 0:
            raise ValueError(f"load {load!r} acts on a surface of zero area")
        value = fem.Constant(msh, np.zeros(self.gdim))
        if isinstance(load, Traction):

            def update(t: float, value: fem.Constant = value, load: Traction = load) -> None:
                value.value[:] = evaluate(load.value, t, self.gdim, "traction")

            self._traction_updates.append(update)
            return ufl.inner(value, v_test) * ds
        # MovingLoad: pressure p(t) on a cos^2 window; scaled so a full window carries `force`.
        force = evaluate(load.force, 0.0, self.gdim, "moving load force")
        if not (load.length > 0 and math.isfinite(load.speed)):
            raise ValueError(f"moving load needs length > 0 and a finite speed, got {load}")
        x = ufl.SpatialCoordinate(msh)
        centre = fem.Constant(msh, 0.0)
        window = moving_window(x, centre, load.length, load.axis)
        coords = msh.geometry.x[:, load.axis]
        lo = self.comm.allreduce(float(coords.min()), op=MPI.MIN)
        hi = self.comm.allreduce(float(coords.max()), op=MPI.MAX)
        centre.value = 0.5 * (lo + hi)
        full = self.comm.allreduce(fem.assemble_scalar(fem.form(window * ds)), op=MPI.SUM)
        if not full > 0:
            raise ValueError(f"moving load window of length {load.length} m covers no facet")
        value.value[:] = force / full

        def move(t: float, centre: fem.Constant = centre, load: MovingLoad = load) -> None:
            centre.value = load.start + load.speed * t

        self._traction_updates.append(move)
        return window * ufl.inner(value, v_test) * ds

    def _setup_state(self) -> None:
        iv = self._initial_velocity
        if iv is not None:
            if callable(iv):
                self.v.interpolate(iv)
            else:
                vec = evaluate(iv, 0.0, self.gdim, "initial velocity")
                self.v.x.array[:] = np.tile(vec, len(self.v.x.array) // self.gdim)
        self._apply_bc_values(self.u.x.array, self.v.x.array, 0.0, None)
        self._compute_internal_force()
        self._compute_external_force(0.0)
        v0 = self.v.x.array.copy()
        a0 = (self.f_ext.x.array - self.f_int.x.array) / self.mass
        beta = 0.5 * self.damping * self.dt
        # v_{-1/2} chosen so that the average of v_{-1/2} and v_{+1/2} is v_0.
        self.v.x.array[:] = v0 * (1 + beta) - 0.5 * self.dt * a0
        self._v0 = v0
        self._du_prev = np.zeros_like(v0)
        self._damping_prev = np.zeros_like(v0)
        self._reaction_prev = np.zeros(len(self.bc_dofs))
        self._energy = np.zeros(5)  # kinetic, internal, external, damping, boundary (local)
        self._energy_scale = 0.0
        self._energy_at_n = (0, 0.0, self._energy.copy())

    # ------------------------------------------------------------ one step
    def _apply_bc_values(self, u: Array, v: Array, t: float, dt: float | None) -> None:
        """Set ``v`` (and, at ``t = 0``, ``u``) on constrained dofs for the step ending at ``t``."""
        for dofs, bc in self._bcs:
            comps = bc.components or tuple(range(self.gdim))
            if isinstance(bc, Clamp):
                v[dofs] = 0.0
                if dt is None:
                    u[dofs] = 0.0
                continue
            full = evaluate(bc.value, t, len(comps), type(bc).__name__)
            per_dof = np.zeros(self.gdim)
            per_dof[list(comps)] = full
            target = per_dof[dofs % self.gdim]
            if isinstance(bc, PrescribedDisplacement):
                if dt is None:
                    u[dofs] = target
                else:
                    v[dofs] = (target - u[dofs]) / dt
            elif isinstance(bc, PrescribedVelocity):
                v[dofs] = target

    def _compute_internal_force(self) -> None:
        t0 = time.perf_counter()
        if not self.ufl_stress:
            self._strain_expr.eval(self.mesh, self._cells, values=self._strain)
            t1 = time.perf_counter()
            k = self.kinematics.size
            stress_q = self.stress_q.x.array.reshape(-1, k)
            strain = self._strain.reshape(-1, k)
            if self.stateful:
                out = stress_q if self._q_order is None else self._stress
                self._evaluator.update(strain, self.state, out, self._state_next)
                self.state, self._state_next = self._state_next, self.state
                if self._q_order is not None:
                    stress_q[self._q_order] = out
            elif self._q_order is None:
                self._evaluator(strain, stress_q)
            else:
                stress_q[self._q_order] = self._evaluator(strain, self._stress)
            t2 = time.perf_counter()
            self.timings.strain += t1 - t0
            self.timings.material += t2 - t1
            t0 = t2
        f = self.f_int.x
        f.array[:] = 0.0
        fem.assemble_vector(f.array, self._f_int_form)
        f.scatter_reverse(la.InsertMode.add)
        f.scatter_forward()
        self.timings.assembly += time.perf_counter() - t0

    def _compute_external_force(self, t: float) -> None:
        fe = self.f_ext.x.array
        fe[:] = 0.0
        for body, ramp in self._gravity:
            fe += body if ramp is None else ramp(t) * body
        if self._f_surf_forms:
            for update in self._traction_updates:
                update(t)
            surf = self._surf.x
            surf.array[:] = 0.0
            for form in self._f_surf_forms:
                fem.assemble_vector(surf.array, form)
            surf.scatter_reverse(la.InsertMode.add)
            surf.scatter_forward()
            fe += surf.array

    def _dot(self, a: Array, b: Array) -> float:
        """Local (owned dofs) dot product; summed over ranks only when logged."""
        n = self.n_owned
        return float(np.dot(a[:n], b[:n]))

    def step(self) -> None:
        """Advance one time step ``dt``."""
        t0 = time.perf_counter()
        dt, m = self.dt, self.mass
        u, vh = self.u.x.array, self.v.x.array
        fi, fe = self.f_int.x.array, self.f_ext.x.array
        beta = 0.5 * self.damping * dt
        vh_old = vh.copy()
        vh[:] = ((1 - beta) * vh_old + dt * (fe - fi) / m) / (1 + beta)
        self._apply_bc_values(u, vh, self.t + dt, dt)
        # Energies at t_n (Belytschko's leapfrog balance): v_n is the mean of the half steps.
        v_n = 0.5 * (vh_old + vh)
        e = self._energy
        e[0] = 0.5 * self._dot(v_n * m, v_n)
        if self.damping:  # trapezoidal work of the damping force alpha M v_n, like f_int's
            fd = self.damping * m * v_n
            e[3] += 0.5 * self._dot(self._damping_prev + fd, self._du_prev)
            self._damping_prev = fd
        if len(self.bc_dofs):
            d = self.bc_dofs
            acc = (vh[d] - vh_old[d]) / dt + self.damping * v_n[d]
            reaction = m[d] * acc - fe[d] + fi[d]
            owned = d < self.n_owned
            du_prev = self._du_prev[d]
            e[4] += 0.5 * float(np.dot((self._reaction_prev + reaction)[owned], du_prev[owned]))
            self._reaction_prev = reaction
        self._energy_at_n = (self.step_count, self.t, e.copy())
        du = dt * vh
        fi_old, fe_old = fi.copy(), fe.copy()
        u += du
        self.timings.update += time.perf_counter() - t0
        self._compute_internal_force()
        t1 = time.perf_counter()
        self._compute_external_force(self.t + dt)
        e[1] += 0.5 * self._dot(fi_old + fi, du)
        e[2] += 0.5 * self._dot(fe_old + fe, du)
        self._du_prev = du
        self.t += dt
        self.step_count += 1
        self.timings.steps += 1
        self._check_finite()
        self.timings.update += time.perf_counter() - t1

    # ------------------------------------------------------------ checks, energy
    def _check_finite(self) -> None:
        local = not math.isfinite(float(np.dot(self.f_int.x.array, self.u.x.array)))
        if not self.comm.allreduce(local, op=MPI.LOR):
            return
        cause = "displacement or internal force became NaN/inf"
        if not self.ufl_stress:
            bad = ~np.isfinite(self.stress_q.x.array)
            n_bad = self.comm.allreduce(int(bad.sum()) // 1, op=MPI.SUM)
            if n_bad:
                cause = f"the material returned NaN/inf stress at {n_bad} quadrature values"
        raise SimulationError(
            f"step {self.step_count} (t = {self.t:.6g} s): {cause}; "
            f"dt = {self.dt:.4g} s vs certified {self.time_step.dt:.4g} s"
        )

    def energy_row(self) -> Array:
        """Energies (J) at the start of the last step (collective: call on every rank).

        Returns ``[step, t, kinetic, internal, external, damping, boundary, error]``.
        """
        step, t, local = self._energy_at_n
        kin, internal, ext, damp, bnd = self.comm.allreduce(local, op=MPI.SUM)
        scale = max(self._energy_scale, abs(kin), abs(internal), abs(ext), abs(damp), abs(bnd))
        self._energy_scale = scale
        err = (kin + internal + damp - ext - bnd - self._kinetic0()) / scale if scale > 0 else 0.0
        return np.array([step, t, kin, internal, ext, damp, bnd, err])

    def _kinetic0(self) -> float:
        if not hasattr(self, "_ke0"):
            self._ke0 = self.comm.allreduce(
                0.5 * self._dot(self._v0 * self.mass, self._v0), op=MPI.SUM
            )
        return float(self._ke0)

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the state to ``<path>.rank<r>of<n>.npz`` (collective); returns this rank's file.

        A restart needs the same mesh, degree and number of ranks (checked).
        """
        comm = self.comm
        f = Path(f"{path}.rank{comm.rank}of{comm.size}.npz")
        imap = self.V.dofmap.index_map
        tmp = f.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            u=self.u.x.array,
            v=self.v.x.array,
            du_prev=self._du_prev,
            damping_prev=self._damping_prev,
            reaction_prev=self._reaction_prev,
            energy=self._energy,
            # A history-dependent law cannot recompute the force at u_n from the state
            # at n (that would advance the state twice): store both.
            **(
                {"state": self.state, "f_int": self.f_int.x.array, "stress": self.stress_q.x.array}
                if self.stateful
                else {}
            ),
            scalars=np.array(
                [self.t, self.step_count, self.dt, self._energy_scale, self._kinetic0()]
            ),
            global_dofs=imap.local_to_global(np.arange(imap.size_local + imap.num_ghosts)),
        )
        tmp.replace(f)  # never leave a half-written checkpoint behind
        comm.barrier()
        return f

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a state written by :meth:`save_checkpoint` (collective)."""
        comm = self.comm
        f = Path(f"{path}.rank{comm.rank}of{comm.size}.npz")
        if not f.exists():
            base = Path(path)
            written = sorted(
                {
                    q.name.rsplit("of", 1)[1][: -len(".npz")]
                    for q in base.parent.glob(f"{base.name}.rank*of*.npz")
                }
            )
            if written:
                raise FileNotFoundError(
                    f"{f}: no checkpoint for rank {comm.rank} of {comm.size}; {base} was written "
                    f"by {' or '.join(written)} ranks (a restart needs the same number of ranks)"
                )
            raise FileNotFoundError(
                f"{base}: no checkpoint there (expected files {base.name}.rank<r>of<n>.npz "
                f"in {base.parent.resolve()})"
            )
        try:
            data = np.load(f)
            data.files  # noqa: B018 - reads the zip directory: a cut-short file fails here
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{f}: cannot read the checkpoint ({exc})") from None
        with data:
            imap = self.V.dofmap.index_map
            mine = imap.local_to_global(np.arange(imap.size_local + imap.num_ghosts))
            if data["global_dofs"].shape != mine.shape or np.any(data["global_dofs"] != mine):
                raise ValueError(f"{f}: checkpoint was written for another mesh or partition")
            t, steps, dt, scale, ke0 = data["scalars"]
            if not math.isclose(dt, self.dt, rel_tol=1e-12):
                raise ValueError(
                    f"{f}: checkpoint dt {dt:g} s differs from this run's {self.dt:g} s"
                )
            self.u.x.array[:] = data["u"]
            self.v.x.array[:] = data["v"]
            self._du_prev = data["du_prev"].copy()
            self._damping_prev = data["damping_prev"].copy()
            self._reaction_prev = data["reaction_prev"].copy()
            self._energy = data["energy"].copy()
            if self.stateful:
                if "state" not in data or data["state"].shape != self.state.shape:
                    raise ValueError(f"{f}: checkpoint has no material state of this law's shape")
                self.state[:] = data["state"]
                self.f_int.x.array[:] = data["f_int"]
                self.stress_q.x.array[:] = data["stress"]
        self.t, self.step_count, self._energy_scale, self._ke0 = float(t), int(steps), scale, ke0
        if not self.stateful:
            self._compute_internal_force()
        self._compute_external_force(self.t)

    # ------------------------------------------------------------ run
    def run(
        self,
        t_end: float,
        *,
        output_dir: str | Path | None = None,
        output_interval: float | None = None,
        format: str = "vtx",
        progress: bool = True,
        checkpoint_every: int | None = None,
    ) -> SimulationResult:
        """Step until ``t_end`` (s), writing output every ``output_interval`` (s).

        Returns:
            Energies at every output time, probe histories (every step, rank 0),
            seconds per step of each part, and the files written.

        Raises:
            SimulationError: NaN/inf, or the energy balance error above
                ``energy_tolerance``; the output written so far stays valid.
        """
        return run(
            self,
            t_end,
            output_dir=output_dir,
            output_interval=output_interval,
            format=format,
            progress=progress,
            checkpoint_every=checkpoint_every,
        )
