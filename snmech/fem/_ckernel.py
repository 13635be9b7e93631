"""A compiled kernel for the element bound of the certified time step (node form).

Note [Compiled element bound]: the element operator ``S_e = D^-1/2 K_e D^-1/2``
is formed from the gradients in node form (``K_e = sum_q Gs_q^T C Gs_q``, 24 x 24
for a Q1 hexahedron, 12 x 12 for a P1 tetrahedron) and certified by a Cholesky
factorization of ``U I - S_e`` (Note [Certified maximum]). In numpy each step is
a pass over a ``(cells, m, m)`` array through memory; here two C functions do
the work for eight cells at a time in registers and cache (the cell index is
the innermost, vectorized dimension): ``snmech_gradients`` computes the
Jacobians, the scaled gradients and the diagonals of the ``K_e`` (which pick the
candidate cells), and ``snmech_node_form`` forms every ``S_e`` (symmetric node
blocks), proves ``lambda_max(S_e) < U`` by the Frobenius norm or the Cholesky
test, and returns the block norms the mass balancing needs; no ``(cells, m, m)``
array is stored. Numbers are those of the numpy path up to summation order:
the Cholesky rounding argument of Note [Certified maximum] does not depend on
the order, and the kernel is compiled without any reassociating flag.

Built once per CPU and source with cffi (the compiler dolfinx's JIT already
needs) into ``$XDG_CACHE_HOME/snmech`` (default ``~/.cache/snmech``); where no
compiler works, :func:`node_form_kernel` returns ``None`` and the numpy path
runs instead.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from snmech.fem._jit import cpu_tag

logger = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]

_CDEF = """
void snmech_gradients(int64_t nc, int nq, int ng, int nn, int d, const double* X,
                      const double* dpsi, const double* dphi, const double* w, const double* C4,
                      double* Gs, double* wdet, double* det, double* Kdiag);
int snmech_node_form(int64_t nc, int nq, int nn, int d, const double* Gs, const double* mass,
                     const double* C4, double U, double* tr, double* dmax, double* fro2,
                     double* blocks, int8_t* ok);
"""

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* LANES cells at a time as one GCC vector: the compiler emits SIMD code for every
   operation on vd (or splits it where the CPU's vectors are shorter). */
#define LANES 8
typedef double vd __attribute__((vector_size(LANES * sizeof(double))));
typedef int64_t vi __attribute__((vector_size(LANES * sizeof(int64_t))));

static void* alloc(size_t n)
{
  return aligned_alloc(64, ((n * sizeof(vd) + 63) / 64) * 64);
}

/* Per cell and point q: J = sum_g X[g] dpsi[q,g]^T (dx_i/dX_j), det J, G = dphi[q] J^-1,
   wdet = w_q |det J|, Gs = sqrt(wdet) G (c, nq, nn, d) and the diagonal of the node-form
   element stiffness, Kdiag[c, a d + i] = sum_{q,l,n} Gs[q,a,l] Gs[q,a,n] C4[l d + n, i d + i];
   det is returned for the caller's checks (zero, non-finite, sign changes). d = 2 or 3.
   LANES cells at a time, as in snmech_node_form. */
static inline __attribute__((always_inline)) void gradients(
  int64_t nc, int nq, int ng, int nn, const int d, const double* X, const double* dpsi,
  const double* dphi, const double* w, const double* C4, double* Gs, double* wdet, double* det,
  double* Kdiag)
{
  const int dd = d * d;
  const vd zero = {0};
  vd x[27 * 3], G[27 * 3], kd[27 * 3];  /* ng, nn <= 27, d <= 3 */
  for (int64_t c0 = 0; c0 < nc; c0 += LANES)
  {
    const int nl = (nc - c0 < LANES) ? (int)(nc - c0) : LANES;
    for (int lane = 0; lane < LANES; ++lane)
    {
      const int64_t c = c0 + (lane < nl ? lane : nl - 1);
      for (int r = 0; r < ng * d; ++r)
        x[r][lane] = X[c * ng * d + r];
    }
    for (int r = 0; r < nn * d; ++r)
      kd[r] = zero;
    for (int q = 0; q < nq; ++q)
    {
      vd J[9], inv[9], dt;
      for (int r = 0; r < 9; ++r)
        J[r] = zero;
      for (int g = 0; g < ng; ++g)
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j)
            J[i * d + j] += x[g * d + i] * dpsi[(q * ng + g) * d + j];
      if (d == 2)
      {
        dt = J[0] * J[3] - J[1] * J[2];
        inv[0] = J[3] / dt; inv[1] = -J[1] / dt;
        inv[2] = -J[2] / dt; inv[3] = J[0] / dt;
      }
      else
      {
        const vd a00 = J[4] * J[8] - J[5] * J[7], a01 = J[2] * J[7] - J[1] * J[8];
        const vd a02 = J[1] * J[5] - J[2] * J[4], a10 = J[5] * J[6] - J[3] * J[8];
        const vd a11 = J[0] * J[8] - J[2] * J[6], a12 = J[2] * J[3] - J[0] * J[5];
        const vd a20 = J[3] * J[7] - J[4] * J[6], a21 = J[1] * J[6] - J[0] * J[7];
        const vd a22 = J[0] * J[4] - J[1] * J[3];
        dt = J[0] * a00 + J[1] * a10 + J[2] * a20;
        inv[0] = a00 / dt; inv[1] = a01 / dt; inv[2] = a02 / dt;
        inv[3] = a10 / dt; inv[4] = a11 / dt; inv[5] = a12 / dt;
        inv[6] = a20 / dt; inv[7] = a21 / dt; inv[8] = a22 / dt;
      }
      vd root = zero;
      for (int lane = 0; lane < LANES; ++lane)
      {
        const double wd = w[q] * fabs(dt[lane]);
        root[lane] = sqrt(wd);
        if (lane < nl)
        {
          det[(c0 + lane) * nq + q] = dt[lane];
          wdet[(c0 + lane) * nq + q] = wd;
        }
      }
      for (int a = 0; a < nn; ++a)
        for (int i = 0; i < d; ++i)
        {
          vd gi = zero;
          for (int j = 0; j < d; ++j)
            gi += dphi[(q * nn + a) * d + j] * inv[j * d + i];
          G[a * d + i] = root * gi;
        }
      for (int a = 0; a < nn; ++a)
        for (int l = 0; l < d; ++l)
          for (int n = 0; n < d; ++n)
          {
            const vd gg = G[a * d + l] * G[a * d + n];
            for (int i = 0; i < d; ++i)
              kd[a * d + i] += gg * C4[(l * d + n) * dd + i * d + i];
          }
      for (int lane = 0; lane < nl; ++lane)
        for (int r = 0; r < nn * d; ++r)
          Gs[((c0 + lane) * nq + q) * nn * d + r] = G[r][lane];
    }
    for (int lane = 0; lane < nl; ++lane)
      for (int r = 0; r < nn * d; ++r)
        Kdiag[(c0 + lane) * nn * d + r] = kd[r][lane];
  }
}

void snmech_gradients(int64_t nc, int nq, int ng, int nn, int d, const double* X,
                      const double* dpsi, const double* dphi, const double* w, const double* C4,
                      double* Gs, double* wdet, double* det, double* Kdiag)
{
  if (d == 3)  /* a literal d: unrolled d x d loops */
    gradients(nc, nq, ng, nn, 3, X, dpsi, dphi, w, C4, Gs, wdet, det, Kdiag);
  else
    gradients(nc, nq, ng, nn, 2, X, dpsi, dphi, w, C4, Gs, wdet, det, Kdiag);
}

/* The node blocks a <= b of K (the rest by symmetry) into S (scaled) and F (block norms).
   Called with a literal d, so that the compiler unrolls the d x d loops and keeps the
   block's accumulators in registers. */
static inline __attribute__((always_inline)) void node_blocks(
  const int nq, const int nn, const int d, const vd* g, const vd* s, const double* C4, vd* S,
  vd* F)
{
  const int m = nn * d, dd = d * d;
  const vd zero = {0};
  for (int a = 0; a < nn; ++a)
    for (int b = a; b < nn; ++b)
    {
      vd w[9];
      for (int ln = 0; ln < dd; ++ln)
        w[ln] = zero;
      for (int q = 0; q < nq; ++q)
        for (int l = 0; l < d; ++l)
          for (int n = 0; n < d; ++n)
            w[l * d + n] += g[(q * nn + a) * d + l] * g[(q * nn + b) * d + n];
      const vd sab = s[a] * s[b];
      vd f = zero;
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j)
        {
          vd k = zero;
          for (int ln = 0; ln < dd; ++ln)
            k += w[ln] * C4[ln * dd + i * d + j];
          f += k * k;
          S[(a * d + i) * m + b * d + j] = k * sab;
          S[(b * d + j) * m + a * d + i] = k * sab;
        }
      F[a * nn + b] = f;
      F[b * nn + a] = f;
    }
}

/* For each of nc cells, with m = nn d:
     K[(a,i),(b,j)] = sum_{l,n} W[a,b,l,n] C4[l d + n, i d + j],
     W[a,b,l,n] = sum_q Gs[q,a,l] Gs[q,b,n],   S = D^-1/2 K D^-1/2  (D = mass per node),
   and writes tr, dmax, fro2 (trace, largest diagonal entry, squared Frobenius norm of S),
   blocks[c,a,b] = sum_ij K[(a,i),(b,j)]^2 (if not NULL) and, if ok is not NULL and U > 0,
   ok[c] = 1 if lambda_max(S) < U is proven: by ||S||_F < U for all cells of a vector, else
   by a successful Cholesky factorization of U I - S. Returns 0, or -1 if out of memory. */
int snmech_node_form(int64_t nc, int nq, int nn, int d, const double* Gs, const double* mass,
                     const double* C4, double U, double* tr, double* dmax, double* fro2,
                     double* blocks, int8_t* ok)
{
  const int m = nn * d;
  vd* g = alloc((size_t)nq * nn * d);
  vd* S = alloc((size_t)m * m);
  vd* s = alloc((size_t)nn);
  vd* F = alloc((size_t)nn * nn);
  if (!g || !S || !s || !F)
  {
    free(g); free(S); free(s); free(F);
    return -1;
  }
  const vd zero = {0};
  for (int64_t c0 = 0; c0 < nc; c0 += LANES)
  {
    const int nl = (nc - c0 < LANES) ? (int)(nc - c0) : LANES;
    for (int lane = 0; lane < LANES; ++lane)
    {
      const int64_t c = c0 + (lane < nl ? lane : nl - 1);  /* pad with the last cell */
      for (int r = 0; r < nq * nn * d; ++r)
        g[r][lane] = Gs[c * nq * nn * d + r];
      for (int a = 0; a < nn; ++a)
        s[a][lane] = 1.0 / sqrt(mass[c * nn + a]);
    }
    if (d == 3)
      node_blocks(nq, nn, 3, g, s, C4, S, F);
    else
      node_blocks(nq, nn, 2, g, s, C4, S, F);
    vd t = zero, dm, fr = zero;
    for (int lane = 0; lane < LANES; ++lane)
      dm[lane] = -INFINITY;
    for (int r = 0; r < m; ++r)
    {
      const vd diag = S[r * m + r];
      t += diag;
      for (int lane = 0; lane < LANES; ++lane)
        dm[lane] = diag[lane] > dm[lane] ? diag[lane] : dm[lane];
    }
    for (int r = 0; r < m * m; ++r)
      fr += S[r] * S[r];
    for (int lane = 0; lane < nl; ++lane)
    {
      const int64_t c = c0 + lane;
      if (tr) tr[c] = t[lane];
      if (dmax) dmax[c] = dm[lane];
      if (fro2) fro2[c] = fr[lane];
      if (blocks)
        for (int ab = 0; ab < nn * nn; ++ab)
          blocks[c * nn * nn + ab] = F[ab][lane];
    }
    int pruned = 1;  /* lambda_max <= ||S||_F < U for every lane: no factorization needed */
    for (int lane = 0; lane < nl; ++lane)
      pruned &= sqrt(fr[lane]) * (1.0 + 1e-12) < U;
    if (ok && U > 0 && pruned)
      for (int lane = 0; lane < nl; ++lane)
        ok[c0 + lane] = 1;
    else if (ok && U > 0)
    {
      /* Cholesky of A = U I - S in place: column j of L overwrites the lower part of S */
      const vd one = zero + 1.0;
      vi good = (vi)(zero == zero);  /* all bits set: true */
      for (int j = 0; j < m; ++j)
      {
        vd piv = one;
        for (int i = j; i < m; ++i)
        {
          vd a = (i == j ? zero + U : zero) - S[i * m + j];
          for (int k = 0; k < j; ++k)
            a -= S[i * m + k] * S[j * m + k];
          if (i == j)
          {
            const vi pos = a > zero;  /* false for NaN too */
            good &= pos;
            a = (vd)(((vi)a & pos) | ((vi)one & ~pos));
            for (int lane = 0; lane < LANES; ++lane)
              piv[lane] = sqrt(a[lane]);
            S[i * m + j] = piv;
          }
          else
            S[i * m + j] = a / piv;
        }
      }
      for (int lane = 0; lane < nl; ++lane)
        ok[c0 + lane] = good[lane] != 0;
    }
  }
  free(g); free(S); free(s); free(F);
  return 0;
}
"""


def _flags() -> list[str]:
    if platform.machine() in ("x86_64", "AMD64"):
        return ["-O3", "-march=native", "-mprefer-vector-width=512"]
    return ["-O3"]


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "snmech"


@functools.cache
def node_form_kernel() -> Any | None:
    """The compiled kernel's ``lib`` (built on first use), or ``None`` without a compiler."""
    key = hashlib.sha256((_CDEF + _SOURCE + " ".join(_flags()) + cpu_tag()).encode()).hexdigest()
    name = f"_snmech_node_form_{key[:16]}"
    cache = _cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        found = sorted(cache.glob(f"{name}.*.so")) + sorted(cache.glob(f"{name}.so"))
        if not found:
            import cffi

            ffi = cffi.FFI()
            ffi.cdef(_CDEF)
            ffi.set_source(name, _SOURCE, extra_compile_args=_flags(), libraries=["m"])
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                built = Path(ffi.compile(tmpdir=tmp, verbose=False))
                target = cache / built.name
                os.replace(built, target)  # atomic: MPI ranks may race here
            found = [target]
        loader = importlib.machinery.ExtensionFileLoader(name, str(found[0]))
        spec = importlib.util.spec_from_file_location(name, found[0], loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        return module
    except Exception as exc:  # no compiler, read-only cache, ...: the numpy path
        logger.warning("compiled element bound unavailable (%s); using numpy", exc)
        return None


def node_form_stats(
    kernel: Any,
    Gs: Array,
    mass: Array,
    C4: Array,
    U: float = 0.0,
    *,
    blocks: bool = False,
) -> tuple[Array, Array, Array, Array | None, npt.NDArray[np.bool_] | None]:
    """Trace, largest diagonal entry and squared Frobenius norm of every ``S_e``.

    Args:
        kernel: :func:`node_form_kernel`.
        Gs: ``sqrt(w |det J|) G`` ``(c, nq, nn, d)`` (m^0.5 / m).
        mass: element mass per node ``(c, nn)`` (kg).
        C4: the fourth-order ``C_bar`` as ``(d d, d d)`` (``_element.node_form``'s).
        U: if > 0, also prove ``lambda_max(S_e) < U`` (1/s^2): by the Frobenius norm
            (when it clears a whole vector of cells) or a Cholesky factorization of
            ``U I - S_e``; ``ok`` is False where neither succeeds.
        blocks: also return ``||K_e[a-block, b-block]||_F^2`` ``(c, nn, nn)``.

    Returns:
        ``(tr, dmax, fro2, blocks or None, ok or None)``, one entry per cell.
    """
    Gs = np.ascontiguousarray(Gs, dtype=np.float64)
    mass = np.ascontiguousarray(mass, dtype=np.float64)
    C4 = np.ascontiguousarray(C4, dtype=np.float64)
    c, nq, nn, d = Gs.shape
    tr, dmax, fro2 = (np.empty(c) for _ in range(3))
    F = np.empty((c, nn, nn)) if blocks else None
    ok = np.empty(c, dtype=np.int8) if U > 0 else None

    status = kernel.lib.snmech_node_form(
        c,
        nq,
        nn,
        d,
        _ptr(kernel, Gs),
        _ptr(kernel, mass),
        _ptr(kernel, C4),
        float(U),
        _ptr(kernel, tr),
        _ptr(kernel, dmax),
        _ptr(kernel, fro2),
        _ptr(kernel, F),
        _ptr(kernel, ok, "int8_t *"),
    )
    if status != 0:
        raise MemoryError("snmech_node_form: out of memory")
    return tr, dmax, fro2, F, (ok.astype(bool) if ok is not None else None)


def _ptr(kernel: Any, a: np.ndarray | None, ctype: str = "double *") -> Any:
    return kernel.ffi.NULL if a is None else kernel.ffi.cast(ctype, a.ctypes.data)


def gradients(
    kernel: Any, X: Array, dpsi: Array, dphi: Array, weights: Array, C4: Array
) -> tuple[Array, Array, Array, Array]:
    """``sqrt(w |det J|) G`` ``(c, nq, nn, d)``, ``w |det J|``, ``det J`` ``(c, nq)``, ``diag K_e``.

    Args:
        kernel: :func:`node_form_kernel`.
        X: cell node coordinates ``(c, ng, d)`` (m), d = 2 or 3, ``ng <= 27``.
        dpsi: coordinate element derivatives ``(nq, ng, d)``.
        dphi: basis derivatives ``(nq, nn, d)``, ``nn <= 27``.
        weights: quadrature weights ``(nq,)``.
        C4: ``C_bar`` as ``(d d, d d)`` (``_element.fourth_order``) (Pa).

    Returns:
        ``Gs``, ``wdet``, ``det`` and the diagonals of the node-form element
        stiffness ``(c, nn d)`` (N/m).
    """
    X, dpsi, dphi, weights, C4 = (
        np.ascontiguousarray(a, dtype=np.float64) for a in (X, dpsi, dphi, weights, C4)
    )
    c, ng, d = X.shape
    nq, nn = dphi.shape[0], dphi.shape[1]
    if d not in (2, 3) or ng > 27 or nn > 27:
        raise ValueError(f"gradients: d = {d}, {ng} geometry nodes, {nn} nodes (d 2/3, <= 27)")
    Gs = np.empty((c, nq, nn, d))
    wdet, det, Kdiag = np.empty((c, nq)), np.empty((c, nq)), np.empty((c, nn * d))
    kernel.lib.snmech_gradients(
        c,
        nq,
        ng,
        nn,
        d,
        *(_ptr(kernel, a) for a in (X, dpsi, dphi, weights, C4, Gs, wdet, det, Kdiag)),
    )
    return Gs, wdet, det, Kdiag
