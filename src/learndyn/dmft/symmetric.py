r"""Symmetric DMFT (SymmDMFT) of Montanari & Urbani 2025 (their App. C for the equations, App. D for the scheme).

The discrete algorithm is the paper's causal forward march (App. D, Eq. (D.1)): explicit Euler, left Riemann sums
including the diagonal point, the Volterra equations of the residual as triangular matrix identities
``(I + dt Sigma_R) R_A = I/dt`` and ``C_A = -dt^2 R_A Sigma_C R_A^T`` (the paper's Eq. (D.6) prints the right
factor without the transpose, which gives wrong train errors; the transpose follows from ``C_A = -R_A Sigma_C
R_A^T`` in continuous time). Per step ``n``: (1) row ``n`` of ``Sigma_C, Sigma_R``; (2) of ``R_A``; (3) of
``C_A`` and the errors ``e_tr = -C_A(t,t)/2``, ``e_ts = Sigma_C(t,t)/2``; (4) the memory kernels ``M^R, M^C``;
(5) the Lagrange multiplier ``nu``; (6) ``a``; (7) ``v``; (8) row ``n + 1`` of ``C``; (9) of ``R``.

Implementation (same arithmetic, cheaper):

* **Eigen-channels of the neuron permutation symmetry.** An m x m matrix ``X_d I + X_o (J - I)`` has
  eigenvalues ``X^+ = X_d + (m-1) X_o`` and ``X^- = X_d - X_o``, and products of such matrices multiply
  channel-wise: ``(XY)^± = X^± Y^±``. The memory sums of steps 8/9 are such products
  (``sum_l M_il C_lj``), so the solver stores ``C^±`` and ``R^±`` and needs 4 matrix-vector products for
  the C and R updates instead of the 8 (matrix, vector) pairs of the d/o form; ``C_d, C_o`` are
  recovered per row as ``C_d = (C^+ + (m-1) C^-)/m``, ``C_o = (C^+ - C^-)/m``.
* **Packed storage.** Every two-time array is stored as its lower triangle, row after row
  (``X[i, j]`` at ``i(i+1)/2 + j``), so the leading ``n x n`` block is a contiguous prefix and BLAS's packed
  routines (``dspmv`` for symmetric, ``dtpmv`` for triangular) read only half of it. The kernels
  ``M^R, M^C``, ``Sigma_R`` and ``C_A`` rows are built per step (only row ``n`` is ever needed), so the
  stored arrays are ``C^±, R^±, Sigma_C, R_A`` (+ ``C_A`` for output): 9 half-matrix passes per step.

Schemes:

* ``"euler"``: the paper's explicit Euler (App. D).
* ``"implicit"``: identical except that the local (delta) part of ``M^R`` -- the term
  ``dt M^R(t_n, t_n) X(t_n, t_j) = lambda^± X`` with ``lambda^± = alpha a^2 h'^±(C(t,t))/m`` -- is taken at the new
  time (``X[n+1, j] = (X[n, j] + dt * rest)/(1 + dt lambda^±)``). This removes the explicit-Euler limit set by
  the stiff mean-neuron mode (rate ``≈ alpha a^2 h'(0)``, :attr:`Problem.stiffness`) and stays first order. The
  equal-time rule ``C_o(t+dt,t+dt) = 2 C_o(t+dt,t) - C_o(t,t)`` is made implicit in the same way (its explicit form
  has amplification ``(1 - x)/(1 + x) -> -1`` for ``x = dt lambda -> infinity``: undamped oscillations).

:func:`richardson` combines two step sizes into a second-order estimate of the one-time observables.
"""

from __future__ import annotations

import math
import time as _time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

from ..resources import check_memory
from ..results import InvalidInputError, Status
from ._common import Stop, check_problem, check_threshold, march, time_grid
from .problem import Problem
from .results import RichardsonSolution, SymmetricSolution

__all__ = ["solve_symmetric", "richardson", "StabilityWarning", "StepLimits", "check_step", "step_limits"]

_spmv = blas.dspmv
_tpmv = blas.dtpmv
_TINY = 1e-250  # flush-to-zero threshold (denormals slow the BLAS down by 100x when e_tr decays to ~1e-300)


class StabilityWarning(UserWarning):
    """The step exceeds (or approaches) the stability bound of the chosen scheme (see :func:`step_limits`)."""


@dataclass(frozen=True)
class StepLimits:
    """Step-size limits of the two schemes at one state ``(a, C)`` (see :func:`step_limits`).

    ``rate_local``: the local (delta-part) relaxation rate of the stiff channel, ``lambda^+ = alpha a^2 h'^+/m``
    (accuracy asks ``dt * rate_local`` well below 1); ``rate_edge``: the top of the Gauss-Newton relaxation
    spectrum (Marchenko-Pastur edge); ``dt_explicit``, ``dt_implicit``: the largest stable steps.
    """

    rate_local: float
    rate_edge: float
    rate_residual: float
    dt_explicit: float
    dt_implicit: float
    single_index: bool

    def dt_max(self, scheme: str) -> float:
        """The largest stable step of ``scheme`` (``"euler"`` or ``"implicit"``)."""
        return self.dt_explicit if scheme == "euler" else self.dt_implicit


def _mp_edge(pop: np.ndarray, ratio: float, weights: np.ndarray | None = None) -> float:
    """Upper edge of the spectrum of a sample covariance whose population eigenvalues are ``pop`` (equal weights)
    at dimension/sample ratio ``ratio`` (Silverstein & Choi 1995): the minimum over ``v in (-1/max(pop), 0)`` of
    ``x(v) = -1/v + ratio mean(pop/(1 + pop v))``, a convex function there (golden-section search). For a single
    population value ``t`` it is ``t (1 + sqrt(ratio))^2`` (Marchenko-Pastur)."""
    pop = np.asarray(pop, dtype=np.float64)
    tmax = float(pop.max()) if pop.size else 0.0
    if tmax <= 0:
        return 0.0
    pos = np.clip(pop, 0.0, None)
    w = np.full(pop.shape, 1.0 / pop.size) if weights is None else np.asarray(weights, dtype=np.float64)

    def x(u):  # v = -u / tmax, u in (0, 1)
        v = -u / tmax
        return -1.0 / v + ratio * float(np.sum(w * pos / (1.0 + pos * v)))

    g = (math.sqrt(5.0) - 1.0) / 2.0
    lo, hi = 1e-15, 1.0 - 1e-15
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    fc, fd = x(c), x(d)
    for _ in range(120):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - g * (hi - lo)
            fc = x(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + g * (hi - lo)
            fd = x(d)
    return min(fc, fd)


def step_limits(problem: Problem, a=None, C=None) -> StepLimits:
    r"""Stability limits of the explicit (``"euler"``) and ``"implicit"`` schemes at the state ``(a, C)``
    (default: the initial state of ``problem``).

    **Explicit Euler** is the large-d limit of projected GD with step ``dt`` on the Gaussian model (paper
    App. D, Figs 6-7), so it is stable while ``dt`` times the largest relaxation rate stays below 2. Near the
    start the rates are the eigenvalues of the Gauss-Newton operator ``(1/d) sum_mu g_mu g_mu^T``,
    ``g_mu = grad_W f_mu``, whose population covariance is ``(a_i a_j h'(C_ij)/m^2) (x) I_d`` (m d dimensions,
    n samples): a sample covariance, whose spectrum ends at the Marchenko-Pastur (Silverstein) edge
    ``lambda_edge`` of the population rates ``abar eig(A h'(C) A)/m^2`` (``A = diag(a)``; for the symmetric
    state these are ``lambda^+ = alpha a^2 (h'(1) + (m-1) h'(C_o))/m`` once and ``lambda^- = alpha a^2 (h'(1) -
    h'(C_o))/m`` m-1 times) at ratio ``m d/n = 1/alpha``. Hence ``dt_explicit = 2/lambda_edge``; for ``m = 1``,
    ``lambda_edge = alpha a^2 h'(1) (1 + 1/sqrt(alpha))^2``. For m > 1 the equal-time rule ``C_o(t+dt, t+dt) =
    2 C_o(t+dt, t) - C_o(t, t)`` (Montanari & Urbani 2025, App. D) is explicit too: linearised, it multiplies
    ``C_o(t,t)`` by ``1 - 2 dt ((m-1) lambda^+ + lambda^-)/m`` per step, so also
    ``dt ((m-1) lambda^+ + lambda^-)/m < 1`` (non-symmetric states: ``dt max(lambda) < 1``); ``dt_explicit`` is the
    smaller. Measured (bisection, 150-600
    steps): m = 1 critical at 1.00-1.02 x the limit, m = 4 at 1.05, m = 16 at 1.06, m = 64 (lazy; the equal-time
    rule binds) at 1.03-1.08.

    **Implicit scheme**: the local rate is implicit, the rest of the spectrum stays explicit, so (i) the
    remaining rates obey ``dt (lambda_edge - 2 lambda^+) < 2``; (ii) the residual's self-response (the Volterra
    equation (E7) for ``R_A``) is explicit with lag-one kernel ``dt Sigma_R(t + dt, t) ~ dt mean(a^2) h'(1)/m``:
    measured stable only for ``dt mean(a^2) h'(1)/m < 1.05-1.22`` (six problems); we use ``< 1``; (iii) for a
    single-index target the latent overlap ``v`` is updated explicitly with the local rate: measured stable for
    ``dt lambda^+ < 1.64-2.04``; we use ``< 1.6``. ``dt_implicit`` is the smallest of these.
    """
    m = problem.m
    a = problem.initial_state[0] if a is None else np.broadcast_to(np.asarray(a, dtype=np.float64), (m,))
    C = problem.initial_state[1] if C is None else np.asarray(C, dtype=np.float64)
    hs = problem.h_series
    off = C[~np.eye(m, dtype=bool)]
    if m > 1 and np.all(a == a[0]) and np.all(off == off[0]):  # symmetric: lambda^+ once, lambda^- m-1 times
        h1, h0 = float(hs.d1(np.array(1.0))), float(hs.d1(np.array(off[0])))
        pop = problem.alpha * a[0] ** 2 * np.array([h1 + (m - 1) * h0, h1 - h0]) / m
        weights = np.array([1.0 / m, 1.0 - 1.0 / m])
    else:
        A = np.diag(a)
        G = A @ hs.d1(C) @ A
        pop = problem.n_over_d * np.linalg.eigvalsh(0.5 * (G + G.T)) / m**2
        weights = None
    edge = _mp_edge(pop, 1.0 / problem.alpha, weights)
    local = float(max(pop.max(), 0.0))
    resid = float(np.mean(a * a)) * float(hs.d1(np.array(1.0))) / m
    single = not problem.pure_noise
    dt_exp = 2.0 / edge if edge > 0 else math.inf
    if m > 1 and local > 0:  # the explicit equal-time rule for C_o(t, t)
        if np.all(a == a[0]):  # symmetric state: lambda^+ once, lambda^- m-1 times
            lam_m = float(np.min(pop)) if pop.size > 1 else 0.0
            dt_exp = min(dt_exp, m / ((m - 1) * local + max(lam_m, 0.0)))
        else:
            dt_exp = min(dt_exp, 1.0 / local)
    lims = [1.0 / resid if resid > 0 else math.inf]
    if edge > 2.0 * local:
        lims.append(2.0 / (edge - 2.0 * local))
    if single and local > 0:
        lims.append(1.6 / local)
    return StepLimits(rate_local=local, rate_edge=edge, rate_residual=resid, dt_explicit=dt_exp,
                      dt_implicit=min(lims), single_index=single)


def _symmetric_C(m: int, co: float) -> np.ndarray:
    return (1.0 - co) * np.eye(m) + co * np.ones((m, m))


def check_step(problem: Problem, dt: float, scheme: str, allow_unstable: bool = False) -> float:
    """Validate ``dt`` against the stability limit of ``scheme`` (:func:`step_limits`); returns ``dt * lambda_fast``.

    A step beyond the limit is refused (``InvalidInputError``) unless ``allow_unstable``. Explicit Euler with
    ``dt * lambda_fast > 0.5`` (``lambda_fast`` = :attr:`Problem.stiffness`, the local rate) is inaccurate:
    a :class:`StabilityWarning` says so.
    """
    lam = problem.stiffness
    x = dt * lam
    lim = step_limits(problem)
    dt_max = lim.dt_max(scheme)
    if dt >= dt_max and not allow_unstable:
        if scheme == "euler":
            other = (f"or scheme='implicit' (stable below dt = {lim.dt_implicit:.4g})" if lim.dt_implicit > dt
                     else "(scheme='implicit' is unstable at this step too)")
            raise InvalidInputError(
                f"dt: {dt:g} exceeds the explicit-Euler stability limit {dt_max:.4g} (from the top of the relaxation "
                f"spectrum, lambda_edge = {lim.rate_edge:.4g}, and the local rate {lim.rate_local:.4g}; see "
                f"learndyn.dmft.step_limits); use "
                f"dt <= {min(0.2 / lam, 0.9 * dt_max):.3g} for accuracy {other}, or allow_unstable=True"
            )
        raise InvalidInputError(
            f"dt: {dt:g} exceeds the implicit scheme's stability limit {dt_max:.4g} (see learndyn.dmft.step_limits: "
            f"the memory terms stay explicit); use dt < {dt_max:.4g}, or allow_unstable=True"
        )
    if scheme == "euler" and x > 0.5:
        warnings.warn(
            f"dt * lambda_fast = {x:.3g} > 0.5: explicit Euler is inaccurate (it is stable below dt = "
            f"{lim.dt_explicit:.4g}); consider dt <= {0.2 / lam:.3g}"
            + (f" or scheme='implicit' (stable below dt = {lim.dt_implicit:.4g})" if lim.dt_implicit > dt else ""),
            StabilityWarning,
            stacklevel=3,
        )
    return x


def memory_estimate(N: int, keep: bool = True) -> int:
    """Peak bytes of :func:`solve_symmetric` on ``N`` grid points: ``6 + keep`` packed two-time arrays of
    ``N (N + 1)/2`` float64 (``C^±, R^±, Sigma_C, R_A`` and, with ``keep``, ``C_A``) plus ``O(N)`` work vectors."""
    return 8 * (6 + int(bool(keep))) * (N * (N + 1) // 2) + 8 * 40 * N + 4096


class _Row:
    """Row ``n`` of the two-time arrays of :class:`_SymmetricMarch` and what every stage of a step reads from it:
    packed offset ``o`` and length ``k = n + 1``, views ``cp, cm, rp, rm`` of ``C^±, R^±``, the ``d/o`` forms
    ``cd, co, rd, ro``, ``an = a(t_n)``, ``aa = a(t_n) a(t_s)``, ``vn = v(t_n)``, ``hatphi(v_n)``, ``hatphi'(v_n)``
    and ``hd``/``ho`` = ``(h, h', h'')`` of ``C_d``/``C_o``."""

    __slots__ = ("o", "k", "cp", "cm", "rp", "rm", "cd", "co", "rd", "ro", "an", "aa", "vn", "phi_v", "dphi",
                 "hd", "ho")

    def __init__(self, o, k, cp, cm, rp, rm, cd, co, rd, ro, an, aa, vn, phi_v, dphi, hd, ho) -> None:
        self.o, self.k, self.cp, self.cm, self.rp, self.rm = o, k, cp, cm, rp, rm
        self.cd, self.co, self.rd, self.ro = cd, co, rd, ro
        self.an, self.aa, self.vn, self.phi_v, self.dphi, self.hd, self.ho = an, aa, vn, phi_v, dphi, hd, ho


class _SymmetricMarch:
    """The state of the SymmDMFT march on ``N`` grid points: packed two-time arrays, one-time series and the
    stability bookkeeping. :meth:`step` computes row ``n`` of the residual kernels and rows ``n + 1`` of
    ``C^±, R^±``; :meth:`solution` packs the rows computed so far into a :class:`SymmetricSolution`."""

    def __init__(self, problem: Problem, N: int, dt: float, scheme: str, keep: bool, threshold: float):
        self.problem, self.N, self.dt, self.scheme, self.keep = problem, N, dt, scheme, keep
        self.implicit = scheme == "implicit"
        self.threshold = threshold
        m = problem.m
        self.m, self.mf = m, float(m)
        self.w_d, self.w_o = 1.0 / m, 1.0 - 1.0 / m
        self.alpha = problem.alpha
        self.hs, self.hphi = problem.h_series, problem.hatphi
        self.base = problem.tau**2 + problem.phi_norm2
        a0, C0, v0 = problem.initial_state
        c0 = float(C0[0, 1]) if m > 1 else 0.0
        self.single = m == 1
        size = N * (N + 1) // 2
        self.Cp = np.zeros(size)  # C^+ = C_d + (m-1) C_o
        self.Cm = np.zeros(size)  # C^- = C_d - C_o
        self.Rp = np.zeros(size)
        self.Rm = np.zeros(size)
        self.SC = np.zeros(size)
        self.RA = np.zeros(size)
        self.CA = np.zeros(size) if keep else None
        self.a = np.zeros(N)
        self.v = np.zeros(N)
        self.nu = np.zeros(N)
        self.etr = np.zeros(N)
        self.ets = np.zeros(N)
        self.g = np.zeros(N)  # a_s hatphi(v_s)
        self.Cp[0] = 1.0 + (m - 1) * c0
        self.Cm[0] = self.Cp[0] if self.single else 1.0 - c0
        self.a[0] = a0[0]
        self.v[0] = v0[0]
        self.train = problem.train_second_layer
        self.warned = dt * problem.stiffness > 0.5  # check_step already warned
        self.limits_at = problem.stiffness  # lambda^+ at which the stability limit was last checked
        self.limit_warned = dt >= step_limits(problem).dt_max(scheme)  # beyond it from the start: check_step said so

    def step(self, n: int) -> Stop | None:
        """One step of the forward march (Montanari & Urbani 2025, App. D; steps 1-9 of the module docstring):
        row ``n`` of ``Sigma_C, Sigma_R, R_A, C_A``, the errors at ``t_n``, then (unless ``n`` is the last point)
        ``nu(t_n)``, ``a(t_{n+1})``, ``v(t_{n+1})`` and rows ``n + 1`` of ``C^±, R^±``. A ``Stop`` ends the march.

        The stages, in order: :meth:`_row` (row ``n`` of ``C, R`` in both forms and ``h, h', h''`` on it),
        :meth:`_self_energies` (1), :meth:`_residual` (2-3), :meth:`_errors`, :meth:`_memory_kernels` (4),
        :meth:`_lagrange_multiplier` (5), :meth:`_second_layer` (6), :meth:`_latent_overlap` (7),
        :meth:`_advance_two_time` (8-9) and :meth:`_divergence`."""
        r = self._row(n)
        sc, sr = self._self_energies(n, r)
        ra, ca = self._residual(n, r, sc, sr)
        stop = self._errors(n, sc, ca)
        if stop is not None:
            return stop
        if n == self.N - 1:
            return None
        kernels, IA, signal = self._memory_kernels(r, ra, ca)
        nu_n = self._lagrange_multiplier(n, r, kernels, signal)
        self._second_layer(n, r, ra, ca, IA)
        self._latent_overlap(n, r, kernels, nu_n, signal)
        mrp, mrm = kernels[4], kernels[5]
        lam_p = self.dt * mrp[n] / self.mf  # = alpha a_n^2 h'^+(C(t_n,t_n))/m (delta part of M^R)
        lam_m = self.dt * mrm[n] / self.mf
        self._check_stability(n, r.an, lam_p, float(r.co[n]))
        self._advance_two_time(n, r, kernels, nu_n, signal, lam_p, lam_m)
        return self._divergence(n, r.k)

    def _row(self, n: int) -> "_Row":
        """Row ``n`` of ``C^±, R^±`` (views) with its ``C_d, C_o, R_d, R_o`` forms (``C_d = (C^+ + (m-1) C^-)/m``,
        ``C_o = (C^+ - C^-)/m``), ``a(t_n) a(t_s)``, ``hatphi(v(t_n))`` and ``h, h', h''`` of ``C_d``, ``C_o``."""
        m, mf = self.m, self.mf
        o = n * (n + 1) // 2
        k = n + 1
        cp = self.Cp[o : o + k]
        cm = self.Cm[o : o + k]
        rp = self.Rp[o : o + k]
        rm = self.Rm[o : o + k]
        an = self.a[n]
        phi_v, dphi, _ = self.hphi.at(self.v[n])
        cd = (cp + (m - 1) * cm) / mf
        co = (cp - cm) / mf
        return _Row(o=o, k=k, cp=cp, cm=cm, rp=rp, rm=rm, cd=cd, co=co, rd=(rp + (m - 1) * rm) / mf,
                    ro=(rp - rm) / mf, an=an, aa=an * self.a[:k], vn=self.v[n], phi_v=phi_v, dphi=dphi,
                    hd=self.hs.with_derivatives(cd), ho=self.hs.with_derivatives(co))

    def _self_energies(self, n: int, r: "_Row") -> tuple[np.ndarray, np.ndarray]:
        """Step 1: row ``n`` of the residual self-energies (Montanari & Urbani 2025, App. C, symmetric form)
        ``Sigma_C(t,s) = tau^2 + ||phi||^2 - a(t) hatphi(v(t)) - a(s) hatphi(v(s)) + a(t) a(s) [h(C_d)/m +
        (1 - 1/m) h(C_o)]`` (stored) and ``Sigma_R(t,s) = a(t) a(s) [h'(C_d) R_d/m + (1 - 1/m) h'(C_o) R_o]``."""
        g, k, o = self.g, r.k, r.o
        hcd, h1cd, _ = r.hd
        hco, h1co, _ = r.ho
        g[n] = r.an * r.phi_v
        sc = self.base - g[n] - g[:k] + r.aa * (self.w_d * hcd + self.w_o * hco)
        self.SC[o : o + k] = sc
        sr = r.aa * (self.w_d * h1cd * r.rd + self.w_o * h1co * r.ro)  # sr[n] = 0 since R(t,t) = 0
        return sc, sr

    def _residual(self, n: int, r: "_Row", sc: np.ndarray, sr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steps 2-3: row ``n`` of the residual resolvent ``(I + dt Sigma_R) R_A = I/dt`` and of the residual
        correlation ``C_A = -dt^2 R_A Sigma_C R_A^T`` (Montanari & Urbani 2025, App. D, Eq. (D.6), with the
        transpose of the continuous-time ``C_A = -R_A Sigma_C R_A^T``)."""
        dt, k, o, RA = self.dt, r.k, r.o, self.RA
        # RA[n, :n] = -dt SR[n, :n] @ RA[:n, :n]
        ra = RA[o : o + k]
        if n > 0:
            ra[:n] = _tpmv(n, RA[:o], sr[:n], lower=0, trans=0)
            ra[:n] *= -dt
        ra[n] = 1.0 / dt
        y = _spmv(k, 1.0, self.SC[: o + k], ra, lower=0)
        ca = _tpmv(k, RA[: o + k], y, lower=0, trans=1)
        ca *= -dt * dt
        if self.keep:
            self.CA[o : o + k] = ca
        return ra, ca

    def _errors(self, n: int, sc: np.ndarray, ca: np.ndarray) -> Stop | None:
        """The errors at ``t_n``: train ``e_tr = -C_A(t,t)/2``, test ``e_ts = Sigma_C(t,t)/2`` (Montanari &
        Urbani 2025, App. C, Eq. (C.46)); a ``Stop`` when either is not finite."""
        self.etr[n] = -0.5 * ca[n]
        self.ets[n] = 0.5 * sc[n]
        if not (np.isfinite(self.etr[n]) and np.isfinite(self.ets[n])):
            return Stop(Status.NONFINITE, f"diverged at t = {n * self.dt:.6g} (step {n}): non-finite error", n - 1)
        return None

    def _memory_kernels(self, r: "_Row", ra: np.ndarray, ca: np.ndarray) -> tuple[tuple, float, float]:
        """Step 4: row ``n`` of the memory kernels (Montanari & Urbani 2025, App. C, Eq. (C.39) and its
        companions) ``M^R_x = alpha a(t) a(s) [R_A h'(C_x) + C_A h''(C_x) R_x]``, ``M^C_x = alpha a(t) a(s) C_A
        h'(C_x)`` for ``x = d, o``. Returns ``(M^R_d, M^R_o, M^C_d, M^C_o, M^R+, M^R-, M^C+, M^C-)``,
        ``A_R(t_n) = dt sum_s R_A(t_n, s)`` and the signal ``alpha a hatphi'(v) A_R``."""
        m = self.m
        _, h1cd, h2cd = r.hd
        _, h1co, h2co = r.ho
        pre = self.alpha * r.aa
        mrd = pre * (ra * h1cd + ca * h2cd * r.rd)
        mro = pre * (ra * h1co + ca * h2co * r.ro)
        mcd = pre * ca * h1cd
        mco = pre * ca * h1co
        mrp, mrm = mrd + (m - 1) * mro, mrd - mro
        mcp, mcm = mcd + (m - 1) * mco, mcd - mco
        IA = self.dt * float(np.sum(ra))
        signal = self.alpha * r.an * r.dphi * IA  # alpha a hatphi'(v) A_R
        return (mrd, mro, mcd, mco, mrp, mrm, mcp, mcm), IA, signal

    def _lagrange_multiplier(self, n: int, r: "_Row", kernels: tuple, signal: float) -> float:
        """Step 5: ``nu(t_n) = alpha a hatphi'(v) v A_R - (1/m) int [M^R_d C_d + (m-1) M^R_o C_o] - (1/m) int
        [M^C_d R_d + (m-1) M^C_o R_o]`` (Montanari & Urbani 2025, App. C, Eq. (C.43)), stored and returned."""
        m, mf, dt = self.m, self.mf, self.dt
        mrd, mro, mcd, mco = kernels[:4]
        nu_n = signal * r.vn - (dt / mf) * (
            float(mrd @ r.cd) + (m - 1) * float(mro @ r.co) + float(mcd @ r.rd) + (m - 1) * float(mco @ r.ro)
        )
        self.nu[n] = nu_n
        return nu_n

    def _second_layer(self, n: int, r: "_Row", ra: np.ndarray, ca: np.ndarray, IA: float) -> None:
        """Step 6: ``a(t_{n+1})`` by an Euler step of ``da/dt = alpha hatphi(v) A_R - alpha int R_A a [h(C_d)/m +
        (1-1/m) h(C_o)] - alpha int C_A a [h'(C_d) R_d/m + (1-1/m) h'(C_o) R_o]`` (Montanari & Urbani 2025,
        App. C, symmetric form); unchanged when the second layer is not trained."""
        a, k, dt, w_d, w_o = self.a, r.k, self.dt, self.w_d, self.w_o
        if self.train:
            hcd, h1cd, _ = r.hd
            hco, h1co, _ = r.ho
            da = r.phi_v * IA - dt * float(ra @ (a[:k] * (w_d * hcd + w_o * hco))) - dt * float(
                ca @ (a[:k] * (w_d * h1cd * r.rd + w_o * h1co * r.ro))
            )
            a[n + 1] = r.an + dt * self.alpha * da
        else:
            a[n + 1] = r.an

    def _latent_overlap(self, n: int, r: "_Row", kernels: tuple, nu_n: float, signal: float) -> None:
        """Step 7: ``v(t_{n+1})`` by an Euler step of ``dv/dt = -nu v + alpha a hatphi'(v) A_R - (1/m) int
        [M^R_d + (m-1) M^R_o] v`` (Montanari & Urbani 2025, App. C, symmetric form)."""
        v, dt, vn = self.v, self.dt, r.vn
        mrp = kernels[4]
        v[n + 1] = vn + dt * (-nu_n * vn + signal - (dt / self.mf) * float(mrp @ v[: r.k]))

    def _advance_two_time(self, n: int, r: "_Row", kernels: tuple, nu_n: float, signal: float, lam_p: float,
                          lam_m: float) -> None:
        """Steps 8-9: rows ``n + 1`` of ``C^±`` and ``R^±`` by the update of Montanari & Urbani 2025, App. D,
        Eq. (D.1), per eigen-channel (the memory sums are channel-wise products), with the equal-time rule
        ``C_o(t+dt, t+dt) = 2 C_o(t+dt, t) - C_o(t, t)``; the implicit scheme takes the local terms
        ``lambda^±`` at the new time."""
        Cp, Cm, Rp, Rm = self.Cp, self.Cm, self.Rp, self.Rm
        m, mf, dt, single, implicit = self.m, self.mf, self.dt, self.single, self.implicit
        cp, cm, rp, rm, co, k = r.cp, r.cm, r.rp, r.rm, r.co, r.k
        mrp, mrm, mcp, mcm = kernels[4:]
        v = self.v
        o1 = r.o + k
        xcp = _spmv(k, 1.0, Cp[:o1], mrp, lower=0)
        ycp = _tpmv(k, Rp[:o1], mcp, lower=0, trans=1)
        zrp = _tpmv(k, Rp[:o1], mrp, lower=0, trans=0)
        if implicit:
            # remove the local (s = n) term from the explicit sums; it is applied at the new time
            xcp -= mrp[n] * cp
            zrp -= mrp[n] * rp  # s = n term: M(t_n,t_n) R(t_n, t_j)
        new_cp = cp + dt * (-nu_n * cp + mf * signal * v[:k] - (dt / mf) * (xcp + ycp))
        new_rp = rp + dt * (-nu_n * rp - (dt / mf) * zrp)
        new_rp[n] += 1.0  # the unit jump of R_d: R^±(t_n + dt, t_n) = 1 + ...
        if implicit:
            new_cp /= 1.0 + dt * lam_p
            new_rp /= 1.0 + dt * lam_p
        if single:
            new_cm, new_rm = new_cp, new_rp
        else:
            xcm = _spmv(k, 1.0, Cm[:o1], mrm, lower=0)
            ycm = _tpmv(k, Rm[:o1], mcm, lower=0, trans=1)
            zrm = _tpmv(k, Rm[:o1], mrm, lower=0, trans=0)
            if implicit:
                xcm -= mrm[n] * cm
                zrm -= mrm[n] * rm
            new_cm = cm + dt * (-nu_n * cm - (dt / mf) * (xcm + ycm))
            new_rm = rm + dt * (-nu_n * rm - (dt / mf) * zrm)
            new_rm[n] += 1.0
            if implicit:
                new_cm /= 1.0 + dt * lam_m
                new_rm /= 1.0 + dt * lam_m
        # equal-time values: C_d = 1, C_o(t+dt, t+dt) = 2 C_o(t+dt, t) - C_o(t, t)
        # (implicit scheme: the local term of d/dt C(t,t) = 2 d_t C(t,t')|_{t'=t} is taken at the new time too,
        #  Y = (2 X (1 + dt lam) - C(t,t)) / (1 + 2 dt lam) per channel; for lam = 0 this is the rule above)
        if single:
            cd_diag, co_diag = 1.0, 0.0
        else:
            if implicit:
                yp = (2.0 * new_cp[n] * (1.0 + dt * lam_p) - cp[n]) / (1.0 + 2.0 * dt * lam_p)
                ym = (2.0 * new_cm[n] * (1.0 + dt * lam_m) - cm[n]) / (1.0 + 2.0 * dt * lam_m)
                co_diag = (yp - ym) / mf
            else:
                co_diag = 2.0 * (new_cp[n] - new_cm[n]) / mf - co[n]
            cd_diag = 1.0
        kk = k + 1
        rowp = Cp[o1 : o1 + kk]
        rowp[:k] = new_cp
        rowp[k] = cd_diag + (m - 1) * co_diag
        Rp[o1 : o1 + k] = new_rp
        if single:
            Cm[o1 : o1 + kk] = rowp
            Rm[o1 : o1 + k] = new_rp
        else:
            rowm = Cm[o1 : o1 + kk]
            rowm[:k] = new_cm
            rowm[k] = cd_diag - co_diag
            Rm[o1 : o1 + k] = new_rm

    def _divergence(self, n: int, k: int) -> Stop | None:
        """Flush denormals in rows ``n + 1`` and stop when ``|C|`` or ``|R|`` exceeds ``threshold * m`` (diverged)
        or anything new is not finite."""
        Cp, Cm, Rp, Rm, dt, a, v = self.Cp, self.Cm, self.Rp, self.Rm, self.dt, self.a, self.v
        o1 = n * (n + 1) // 2 + k
        kk = k + 1
        for row in (Cp[o1 : o1 + kk], Cm[o1 : o1 + kk], Rp[o1 : o1 + k], Rm[o1 : o1 + k]):
            row[np.abs(row) < _TINY] = 0.0
        big = max(float(np.max(np.abs(Cp[o1 : o1 + kk]))), float(np.max(np.abs(Rp[o1 : o1 + k]))))
        if not self.single:
            big = max(big, float(np.max(np.abs(Cm[o1 : o1 + kk]))), float(np.max(np.abs(Rm[o1 : o1 + k]))))
        finite = np.isfinite(big) and np.isfinite(a[n + 1]) and np.isfinite(v[n + 1])
        if not (finite and big <= self.threshold * self.mf):
            return Stop(Status.DIVERGED if finite else Status.NONFINITE,
                        f"diverged at t = {(n + 1) * dt:.6g} (step {n + 1}): |C| or |R| = {big:.3g} "
                        f"(dt * lambda_fast = {dt * self.problem.stiffness:.3g}; reduce dt or use scheme='implicit')",
                        n)
        return None

    def _check_stability(self, n: int, an: float, lam_p: float, co_nn: float) -> None:
        """Warn once when explicit Euler becomes inaccurate, and once when the step crosses the scheme's stability
        limit (:func:`step_limits`) as ``a(t)`` or ``C_o(t, t)`` move."""
        dt, scheme = self.dt, self.scheme
        if not self.implicit and not self.warned and dt * lam_p > 0.5:
            self.warned = True
            warnings.warn(
                f"SymmDMFT: the local rate alpha a(t)^2 h'^+/m = {lam_p:.4g} grew to dt * rate = {dt * lam_p:.3g} at "
                f"t = {n * dt:.6g} (a = {an:.4g}); explicit Euler is inaccurate above ~0.5: reduce dt",
                StabilityWarning,
                stacklevel=5,
            )
        if not self.limit_warned and lam_p > 1.05 * self.limits_at:  # a(t) or C_o(t,t) moved: re-check the limit
            self.limits_at = lam_p
            lim = step_limits(self.problem, a=an, C=_symmetric_C(self.m, co_nn))
            if dt >= lim.dt_max(scheme):
                self.limit_warned = True
                warnings.warn(
                    f"SymmDMFT: at t = {n * dt:.6g} (a = {an:.4g}) the step dt = {dt:g} crossed the {scheme} "
                    f"scheme's stability limit {lim.dt_max(scheme):.4g} (see learndyn.dmft.step_limits): the run "
                    "will probably diverge; reduce dt",
                    StabilityWarning,
                    stacklevel=5,
                )

    def solution(self, stop: Stop, seconds: float) -> SymmetricSolution:
        """The rows ``0..stop.last`` as a :class:`SymmetricSolution` (``nu`` at the last point repeats the one
        before: the march does not need it)."""
        N, dt = self.N, self.dt
        n_ok = max(stop.last + 1, 0)
        if stop.status is Status.SUCCESS:
            self.nu[N - 1] = self.nu[N - 2] if N > 1 else 0.0
        size_ok = n_ok * (n_ok + 1) // 2
        packed = {"C+": self.Cp[:size_ok], "C-": self.Cm[:size_ok], "R+": self.Rp[:size_ok], "R-": self.Rm[:size_ok],
                  "RA": self.RA[:size_ok]}
        if self.keep:
            packed["SC"] = self.SC[:size_ok]
            packed["CA"] = self.CA[:size_ok]
        return SymmetricSolution(
            problem=self.problem, dt=dt, scheme=self.scheme, t=np.arange(n_ok) * dt, a=self.a[:n_ok].copy(),
            v=self.v[:n_ok].copy(), nu=self.nu[:n_ok].copy(), train_error=self.etr[:n_ok].copy(),
            test_error=self.ets[:n_ok].copy(), status=stop.status, message=stop.message, packed=packed,
            stats={"seconds": seconds, "steps": n_ok},
        )


def solve_symmetric(
    problem: Problem,
    t_max: float,
    dt: float,
    *,
    scheme: str = "euler",
    allow_unstable: bool = False,
    keep: bool = True,
    divergence_threshold: float = 1e3,
    progress: bool = False,
    blas_threads: int | None = 1,
) -> SymmetricSolution:
    r"""Integrate SymmDMFT (Montanari & Urbani 2025, App. D) on the time grid ``t_n = n dt``, ``n = 0..N-1``, with
    ``t_{N-1}`` the last grid point ``<= t_max`` (at least 2 steps).

    Parameters
    ----------
    scheme:
        ``"euler"`` (the paper's explicit Euler) or ``"implicit"`` (local memory term implicit; see module docstring).
    allow_unstable:
        Do not refuse a step beyond the explicit-Euler bound.
    keep:
        Keep ``Sigma_C`` and ``C_A`` two-time arrays for output (``C^±, R^±, R_A`` are always kept).
    blas_threads:
        BLAS threads during the march (default 1: the level-2 products are memory bound and threads only
        add synchronisation, measured in ``benchmarks/dmft.py``); ``None`` leaves the setting alone.
    divergence_threshold:
        Absolute bound on the two-time functions: the march stops with status ``DIVERGED`` when ``|C_d|, |C_o|`` or
        ``|R|`` exceed it (the exact solution has ``|C| <= 1``; checked on the channels ``C^±, R^±`` against
        ``m`` times it), ``NONFINITE`` when anything becomes non-finite; the arrays keep the steps before.
    progress:
        Show a tqdm progress bar (off by default in the Python API).

    The memory (:func:`memory_estimate`, ``28 N^2`` bytes with ``keep``) is checked before anything is allocated
    (:func:`learndyn.resources.check_memory`). Ctrl-C stops the march within one step and returns the steps
    computed so far with status ``INTERRUPTED`` (``message``: ``"interrupted at t = ..."``). A step beyond the
    scheme's stability limit (:func:`step_limits`) is refused; if the limit is crossed during the run (``a(t)``
    grows), a :class:`StabilityWarning` says so.
    """
    check_problem(problem, "dmft.solve_symmetric")
    if scheme not in ("euler", "implicit"):
        raise InvalidInputError(f"scheme: must be 'euler' or 'implicit', got {scheme!r}")
    if not problem.is_symmetric:
        raise InvalidInputError("problem: initial state is not permutation symmetric; use "
                                "learndyn.dmft.general.solve_general")
    threshold = check_threshold(divergence_threshold)
    N = time_grid(t_max, dt)
    dt = float(dt)
    check_step(problem, dt, scheme, allow_unstable)
    check_memory(memory_estimate(N, keep), what=f"dmft.solve (SymmDMFT on N = {N} time steps)",
                 reduce="reduce t_max or increase dt (memory grows as (t_max/dt)^2)")
    t_start = _time.perf_counter()
    state = _SymmetricMarch(problem, N, dt, scheme, keep, threshold)
    stop = march(N, dt, state.step, desc="SymmDMFT", progress=progress, threads=blas_threads)
    if stop.status is not Status.SUCCESS:
        warnings.warn(f"SymmDMFT: {stop.message}", RuntimeWarning, stacklevel=2)
    return state.solution(stop, _time.perf_counter() - t_start)


def richardson(problem: Problem, t_max: float, dt: float, **kwargs) -> RichardsonSolution:
    r"""Second-order (Richardson) estimate of the one-time observables: ``2 X(dt/2) - X(dt)`` on the coarse grid
    ``t_n = n dt <= t_max`` (Montanari & Urbani 2025, App. D, is first order).

    The scheme is first order, ``X_dt = X + c dt + O(dt^2)``, so the combination cancels the ``O(dt)`` error.
    Costs 1 + 8 = 9 coarse solves' worth of work for twice the grid (O(N^3)), i.e. it pays when it allows a
    more than ~2x coarser step than the plain scheme at equal accuracy. Other keyword arguments
    (``scheme``, ``divergence_threshold``, ...) go to both :func:`solve_symmetric` calls.

    Returns a :class:`RichardsonSolution` (``t``, ``train_error``, ``test_error``, ``a``, ``v``, and the
    ``coarse``/``fine`` solutions). A solve that stops early (``DIVERGED``, ``NONFINITE``, ``INTERRUPTED``) gives
    the estimate on the grid points both reached, with that status and a message; Ctrl-C during the coarse solve
    skips the fine one.
    """
    coarse = solve_symmetric(problem, t_max, dt, **kwargs)
    fine = None
    if coarse.status is not Status.INTERRUPTED:
        fine = solve_symmetric(problem, t_max, dt / 2.0, **kwargs)
    # coarse point k is fine point 2k: the estimate needs both
    n = 0 if fine is None else min(coarse.t.size, (fine.t.size + 1) // 2)
    est = {}
    for name in ("train_error", "test_error", "a", "v"):
        xc = getattr(coarse, name)[:n]
        xf = getattr(fine, name)[::2][:n] if fine is not None else xc
        est[name] = 2.0 * xf - xc
    status, message = Status.SUCCESS, ""
    for label, step, sol in (("coarse", dt, coarse), ("fine", dt / 2.0, fine)):
        if sol is not None and sol.status is not Status.SUCCESS:
            status, message = sol.status, f"richardson: the {label} solve (dt = {step:g}) stopped: {sol.message}"
            break
    return RichardsonSolution(problem=problem, dt=float(dt), t=coarse.t[:n], coarse=coarse, fine=fine,
                              status=status, message=message, **est)
