r"""General (non-symmetric) m x m DMFT of Montanari & Urbani 2025 (Sec. 2 and App. C of the paper).

The closed equations, labelled here (E1) second layer ``a_i``, (E2) latent overlaps ``v_i``, (E3) correlations
``C_ij(t, t')``, (E4) responses ``R_ij(t, t')``, (E5) memory kernels ``M^R, M^C``, (E6) residual self-energies
``Sigma_C, Sigma_R``, (E7) the residual's Volterra equations for ``R_A, C_A``, (E8) Lagrange multipliers ``nu_i``
(from ``C_ii(t, t) = 1``), (E9) initial data ``a_i(0), v_i(0), C_ij(0, 0)``; the comments below name them.

Same discretisation as the symmetric solver (App. D: explicit Euler, left Riemann sums with the
diagonal point, ``(I + dt Sigma_R) R_A = I/dt``, ``C_A = -dt^2 R_A Sigma_C R_A^T``), with m x m blocks:
``C[t, s, i, j] = C_ij(t, s)`` (stored for both time orders, ``C_ij(t,s) = C_ji(s,t)``), ``R[t, s, i, j] =
R_ij(t, s)`` (zero for ``s >= t``, jump ``R_ij(t_n + dt, t_n) = delta_ij``). Equal times:
``C_ii = 1`` and ``C_ij(t+dt, t+dt) = C_ij(t+dt, t) + C_ji(t+dt, t) - C_ij(t, t)`` (the rule under (E3)).

Per step the memory sums are tensor contractions over (s, l) costing O(m^3 n^2); total O(m^3 N^3) time
and ``2 m^2 N^2`` stored values: meant for small m (the paper's m = 4 validation, Figs 6-7).
"""

from __future__ import annotations

import time as _time
import warnings

import numpy as np

from ..resources import check_memory
from ..results import InvalidInputError, Status
from ._common import Stop, check_problem, check_threshold, march, time_grid
from .problem import Problem
from .results import GeneralSolution
from .symmetric import check_step

__all__ = ["solve_general", "memory_estimate"]


def memory_estimate(N: int, m: int) -> int:
    """Peak bytes of :func:`solve_general` on ``N`` grid points: ``C, R`` (``m^2 N^2`` each) and ``Sigma_C, R_A,
    C_A`` (``N^2`` each) during the march, plus the result's copies of ``C, R, C_A, R_A`` made at the end
    (``2 m^2 N^2 + 2 N^2``), plus ``O(m^2 N)`` work arrays."""
    return 8 * ((4 * m * m + 5) * N * N + 16 * m * m * N) + 4096


class _GeneralMarch:
    """The state of the general DMFT march on ``N`` grid points (two-time ``C, R`` in the layout
    ``X4[t1, i, t2, j] = X_ij(t1, t2)``, residual kernels, one-time series): :meth:`step` computes row ``n`` and
    rows ``n + 1``; :meth:`solution` packs the rows computed so far into a :class:`GeneralSolution`."""

    def __init__(self, problem: Problem, N: int, dt: float, scheme: str, threshold: float):
        self.problem, self.N, self.dt, self.scheme, self.threshold = problem, N, dt, scheme, threshold
        m = self.m = problem.m
        self.alpha = problem.alpha
        self.hs, self.hphi = problem.h_series, problem.hatphi
        self.base = problem.tau**2 + problem.phi_norm2
        self.train = problem.train_second_layer
        a0, C0, v0 = problem.initial_state
        # layout X4[t1, i, t2, j] = X_ij(t1, t2): the first k time rows are a contiguous (k m, N m) matrix, so each
        # memory sum is one BLAS product against the zero-padded kernel (columns s > n multiply zeros).
        self.C4 = np.zeros((N, m, N, m))
        self.R4 = np.zeros((N, m, N, m))
        self.SC = np.zeros((N, N))
        self.RA = np.zeros((N, N))
        self.CA = np.zeros((N, N))
        self.a = np.zeros((N, m))
        self.v = np.zeros((N, m))
        self.nu = np.zeros((N, m))
        self.etr = np.zeros(N)
        self.ets = np.zeros(N)
        self.g = np.zeros(N)
        self.C4[0, :, 0, :] = C0
        self.a[0] = a0
        self.v[0] = v0
        self.eye = np.eye(m)
        self.MRpad = np.zeros((N, m, m))  # (s, l, i) = M^R_il(t_n, t_s)
        self.MCpad = np.zeros((N, m, m))

    def step(self, n: int) -> Stop | None:
        """Row ``n`` of the residual kernels (E6)-(E7) and the errors at ``t_n``; then (unless ``n`` is the last
        point) ``nu`` (E8), ``a`` (E1), ``v`` (E2) at ``t_{n+1}`` and rows ``n + 1`` of ``C`` (E3) and ``R`` (E4).
        A ``Stop`` ends the march."""
        C4, R4, SC, RA, CA, a, v, nu, g = self.C4, self.R4, self.SC, self.RA, self.CA, self.a, self.v, self.nu, self.g
        MRpad, MCpad, eye = self.MRpad, self.MCpad, self.eye
        N, m, dt, alpha, hs, hphi, base = self.N, self.m, self.dt, self.alpha, self.hs, self.hphi, self.base
        k = n + 1
        Cn = C4[n, :, :k, :].transpose(1, 0, 2)  # (s, i, j) = C_ij(t_n, t_s)
        Rn = R4[n, :, :k, :].transpose(1, 0, 2)
        an, vn = a[n], v[n]
        g[n] = float(np.mean(an * hphi(vn)))
        hC, h1C = hs(Cn), hs.d1(Cn)
        aa = an[None, :, None] * a[:k, None, :]  # a_i(t_n) a_j(t_s)
        # (E6)
        SC[n, :k] = base - g[n] - g[:k] + np.sum(aa * hC, axis=(1, 2)) / m**2
        SC[:k, n] = SC[n, :k]
        sr = np.sum(aa * h1C * Rn, axis=(1, 2)) / m**2
        # (E7)
        RA[n, n] = 1.0 / dt
        if n > 0:
            RA[n, :n] = -dt * (sr[:n] @ RA[:n, :n])
        y = RA[n, :k] @ SC[:k, :k]
        CA[n, :k] = -dt * dt * (RA[:k, :k] @ y)
        CA[:k, n] = CA[n, :k]
        self.etr[n] = -0.5 * CA[n, n]
        self.ets[n] = 0.5 * SC[n, n]
        if not (np.isfinite(self.etr[n]) and np.isfinite(self.ets[n])):
            return Stop(Status.NONFINITE, f"diverged at t = {n * dt:.6g} (step {n}): non-finite error", n - 1)
        if n == N - 1:
            return None
        ra, ca = RA[n, :k], CA[n, :k]
        # (E5) kernels M_il(t_n, t_s): (s, i, l)
        MR = alpha * aa * (ra[:, None, None] * h1C + ca[:, None, None] * hs.d2(Cn) * Rn)
        MC = alpha * aa * ca[:, None, None] * h1C
        IA = dt * float(np.sum(ra))
        dphi = hphi.d1(vn)
        signal = alpha * an * dphi * IA  # (i,)
        # (E8): C_li(s, t_n) = C_il(t_n, s)
        nu_n = (signal * vn
                - (dt / m) * np.einsum("sil,sil->i", MR, Cn)
                - (dt / m) * np.einsum("sil,sil->i", MC, Rn))
        nu[n] = nu_n
        # (E1)
        if self.train:
            s1 = np.einsum("s,sl,sil->i", ra, a[:k], hC) / m
            s2 = np.einsum("s,sl,sil->i", ca, a[:k], h1C * Rn) / m
            a[n + 1] = an + dt * alpha * (hphi(vn) * IA - dt * s1 - dt * s2)
        else:
            a[n + 1] = an
        # (E2)
        v[n + 1] = vn + dt * (-nu_n * vn + signal - (dt / m) * np.einsum("sil,sl->i", MR, v[:k]))
        MRpad[:k] = MR.transpose(0, 2, 1)
        MCpad[:k] = MC.transpose(0, 2, 1)
        mr = MRpad.reshape(N * m, m)  # rows (s, l), column i
        mc = MCpad.reshape(N * m, m)
        Cflat = C4[:k].reshape(k * m, N * m)  # rows (j', j), columns (s, l)
        Rflat = R4[:k].reshape(k * m, N * m)
        # (E3): X = sum_{s,l} M^R_il(t_n,s) C_lj(s,t_j') with C_lj(s,t') = C_jl(t',s); Y = sum M^C_il R_jl(t',s)
        X = (Cflat @ mr).reshape(k, m, m)  # (j', j, i)
        Y = (Rflat @ mc).reshape(k, m, m)
        sig = v[:k][:, :, None] * signal[None, None, :]  # alpha a_i hatphi'(v_i) v_j(t') A_R
        Cold = C4[n, :, :k, :].transpose(1, 2, 0)  # (j', j, i) = C_ij(t_n, t_j')
        Cnew = Cold + dt * (-nu_n[None, None, :] * Cold + sig - (dt / m) * (X + Y))
        C4[n + 1, :, :k, :] = Cnew.transpose(2, 0, 1)
        C4[:k, :, n + 1, :] = Cnew  # C_ji(t_j', t_{n+1}) = C_ij(t_{n+1}, t_j')
        cnn = C4[n + 1, :, n, :] + C4[n + 1, :, n, :].T - C4[n, :, n, :]
        np.fill_diagonal(cnn, 1.0)
        C4[n + 1, :, n + 1, :] = cnn
        # (E4): Z = sum_{s>=j', l} M^R_il(t_n, s) R_lj(s, t_j')
        Z = (Rflat.T @ mr[: k * m]).reshape(N, m, m)[:k]  # (j', j, i)
        Rold = R4[n, :, :k, :].transpose(1, 2, 0)
        Rnew = Rold + dt * (-nu_n[None, None, :] * Rold - (dt / m) * Z)
        R4[n + 1, :, :k, :] = Rnew.transpose(2, 0, 1)
        R4[n + 1, :, n, :] += eye
        big = max(float(np.max(np.abs(C4[n + 1, :, : k + 1]))), float(np.max(np.abs(R4[n + 1, :, :k]))))
        finite = np.isfinite(big) and np.all(np.isfinite(a[n + 1])) and np.all(np.isfinite(v[n + 1]))
        if not (finite and big <= self.threshold):
            return Stop(Status.DIVERGED if finite else Status.NONFINITE,
                        f"diverged at t = {(n + 1) * dt:.6g} (step {n + 1}): |C| or |R| = {big:.3g}", n)
        return None

    def solution(self, stop: Stop, seconds: float) -> GeneralSolution:
        """The rows ``0..stop.last`` as a :class:`GeneralSolution` (``nu`` at the last point repeats the one
        before)."""
        N, dt, n_ok = self.N, self.dt, max(stop.last + 1, 0)
        if stop.status is Status.SUCCESS:
            self.nu[N - 1] = self.nu[N - 2]
        C4, R4 = self.C4, self.R4
        return GeneralSolution(
            problem=self.problem, dt=dt, scheme=self.scheme, t=np.arange(n_ok) * dt,
            a=self.a[:n_ok].copy(), v=self.v[:n_ok].copy(), nu=self.nu[:n_ok].copy(),
            train_error=self.etr[:n_ok].copy(), test_error=self.ets[:n_ok].copy(),
            C=C4[:n_ok, :, :n_ok, :].transpose(0, 2, 1, 3).copy(), R=R4[:n_ok, :, :n_ok, :].transpose(0, 2, 1, 3).copy(),
            C_A=self.CA[:n_ok, :n_ok].copy(), R_A=self.RA[:n_ok, :n_ok].copy(),
            status=stop.status, message=stop.message, stats={"seconds": seconds, "steps": n_ok},
        )


def solve_general(
    problem: Problem,
    t_max: float,
    dt: float,
    *,
    scheme: str = "euler",
    allow_unstable: bool = False,
    divergence_threshold: float = 1e3,
    max_memory_gb: float = 8.0,
    blas_threads: int | None = 1,
    progress: bool = False,
) -> GeneralSolution:
    """Integrate the general DMFT (E1)-(E9) on ``t_n = n dt``; see the module docstring.

    ``scheme="euler"`` only (the implicit local variant is offered by the symmetric solver). Refuses runs
    whose peak memory (:func:`memory_estimate`) would exceed ``max_memory_gb`` or what the machine has
    (:func:`learndyn.resources.check_memory`), before allocating. ``progress``: a tqdm bar. Ctrl-C stops within one
    step and returns the computed steps with status ``INTERRUPTED`` (``message``: ``"interrupted at t = ..."``).
    ``divergence_threshold``: absolute bound on ``|C_ij|`` and ``|R_ij|`` (status ``DIVERGED`` beyond it,
    ``NONFINITE`` for NaN or infinity; the steps before are kept).
    """
    check_problem(problem, "dmft.solve_general")
    if scheme != "euler":
        raise InvalidInputError(f"scheme: the general solver implements 'euler' only, got {scheme!r}")
    threshold = check_threshold(divergence_threshold)
    N = time_grid(t_max, dt)
    dt = float(dt)
    check_step(problem, dt, scheme, allow_unstable)
    m = problem.m
    need = memory_estimate(N, m) / 1e9
    if need > max_memory_gb:
        raise InvalidInputError(
            f"t_max/dt: {N} steps at m = {m} need {need:.1f} GB (> max_memory_gb = {max_memory_gb}); "
            "use the symmetric solver, a larger dt, or raise max_memory_gb"
        )
    check_memory(memory_estimate(N, m), what=f"dmft.solve (general m x m DMFT, m = {m}, N = {N} time steps)",
                 reduce="reduce t_max or increase dt (memory grows as m^2 (t_max/dt)^2)")
    t0 = _time.perf_counter()
    state = _GeneralMarch(problem, N, dt, scheme, threshold)
    stop = march(N, dt, state.step, desc="general DMFT", progress=progress, threads=blas_threads)
    if stop.status is not Status.SUCCESS:
        warnings.warn(f"general DMFT: {stop.message}", RuntimeWarning, stacklevel=2)
    return state.solution(stop, _time.perf_counter() - t0)
