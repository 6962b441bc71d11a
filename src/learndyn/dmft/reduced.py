r"""Reduced m -> infinity systems of the DMFT (Montanari & Urbani 2025, Sec. 2.2-2.4 and App. F-H).

* :func:`mean_field_ode` -- mean-field ODE for ``(a, v)`` at ``t = O(1)`` (Sec. 2.4, App. G.2);
* :func:`lazy_first_regime` -- closed forms at ``t = t_hat/m`` under lazy init ``a0 = gamma0 sqrt(m)`` (App. F,
  Eqs. (F.5)-(F.6): the paper's ``C_d`` carries a spurious ``1 +`` that violates ``C_d(t, t) = 1``, dropped here;
  the single-index ``C_o`` is integrated in closed form below);
* :func:`mf_first_regime` -- closed forms of the mean-field-init pure-noise first regime (App. G.1);
* :func:`lazy_second_regime` -- the m-independent reduced DMFT at ``t = O(1)``, fixed ``gamma0`` (App. F.1,
  with the ``gamma0^2`` prefactor of Eq. (F.65) that Eq. (F.23) lacks; single index through ``tau'``, App. F.2);
* :func:`mf_second_regime` -- the mean-field pure-noise second regime at ``t = t_hat sqrt(m)``: the
  zero-temperature Cugliandolo-Kurchan equations of the spherical mixed p-spin model with covariance
  ``h_tilde`` (App. G.1).

The two reduced DMFTs are integrated by the same explicit scheme as the full DMFT (App. D; one scalar channel),
on the time grid ``t_n = n dt <= t_max``; ``divergence_threshold`` is an absolute bound on ``|C(t, t')|``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

from ..results import InvalidInputError, Result, Status, problem_attrs, rebuild_problem
from ._common import blas_threads, check_threshold, status_from_text, time_grid
from .problem import Problem

__all__ = [
    "mean_field_ode", "lazy_first_regime", "mf_first_regime", "lazy_second_regime", "mf_second_regime",
    "ReducedSolution", "effective_noise",
]


@dataclass(frozen=True, eq=False)
class ReducedSolution(Result):
    """Solution of one of the m -> infinity reduced systems (Montanari & Urbani 2025, App. F-H): one-time
    observables (dict ``series``) and optional two-time arrays (dict ``two_time``) on the grid ``t``.

    ``status`` is a :class:`learndyn.Status` (``DIVERGED`` / ``NONFINITE`` when the march stopped, with ``message``
    saying where; the steps before are kept).
    """

    problem: Problem
    system: str
    t: np.ndarray
    series: dict
    two_time: dict = field(default_factory=dict, repr=False)
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.of(self.status))

    def __getattr__(self, name):
        d = self.__dict__
        if name in d.get("series", {}):
            return d["series"][name]
        if name in d.get("two_time", {}):
            return d["two_time"][name]
        raise AttributeError(name)

    def to_xarray(self) -> xr.Dataset:
        """The series over ``time`` and the two-time arrays over ``(time, time2)``; problem, system, status and
        message in the attributes."""
        data = {k: ("time", np.asarray(v)) for k, v in self.series.items()}
        for k, v in self.two_time.items():
            data[k] = (("time", "time2"), np.asarray(v))
        coords = {"time": self.t}
        if self.two_time:
            coords["time2"] = self.t
        ds = xr.Dataset(data, coords=coords)
        ds.attrs.update(problem_attrs(self.problem, solver=f"dmft.reduced.{self.system}", status=self.status.value,
                                      message=self.message))
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "ReducedSolution":
        """The solution stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        system = str(ds.attrs.get("solver", "")).removeprefix("dmft.reduced.")
        series = {k: ds[k].values for k in ds.data_vars if ds[k].dims == ("time",)}
        two_time = {k: ds[k].values for k in ds.data_vars if ds[k].dims == ("time", "time2")}
        status, message = status_from_text(ds.attrs.get("status"), ds.attrs.get("message"))
        return cls(problem=rebuild_problem(ds, Problem), system=system, t=ds["time"].values, series=series,
                   two_time=two_time, status=status, message=message)


def _h1(problem: Problem) -> tuple[float, float]:
    """(h'(0), hatphi'(0))."""
    return float(problem.h_series.d1(np.array(0.0))), float(problem.hatphi.d1(np.array(0.0)))


def effective_noise(problem: Problem) -> float:
    r"""``tau'^2 = tau^2 + ||phi||^2 - hatphi'(0)^2/h'(0)`` (App. F.2): the noise the lazy dynamics sees after
    the linear part of the target has been fitted."""
    h1, b1 = _h1(problem)
    lin = b1 * b1 / h1 if h1 > 0 else 0.0
    return problem.tau**2 + problem.phi_norm2 - lin


# --------------------------------------------------------------------------------------------
# mean-field ODE (Sec. 2.4, App. G.2)
# --------------------------------------------------------------------------------------------
def mean_field_ode(problem: Problem, t, *, rtol: float = 1e-11, atol: float = 1e-13) -> ReducedSolution:
    r"""Mean-field ODE (Montanari & Urbani 2025, Sec. 2.4 / App. G.2, k = 1), ``v(0) = v0``, ``a(0) = a0``::

        dv/dt = alpha a (1 - v^2) (hatphi'(v) - a h'(v^2) v)
        da/dt = alpha (hatphi(v) - a h(v^2))          (0 if the second layer is frozen)
        e_tr = e_ts = (tau^2 + ||phi||^2 - 2 a hatphi(v) + a^2 h(v^2))/2,   C_o -> v^2.

    The limit of SymmDMFT as m -> infinity at fixed ``a0 = O(1)`` and t = O(1). Solved by DOP853 (tolerances
    ``rtol``, ``atol``) and evaluated at the times ``t`` (any non-decreasing times ``>= 0``, not a step grid).

    If the integrator fails, the result keeps the times reached and says why: status ``NONFINITE`` when the
    right-hand side overflowed to a NaN or infinity (e.g. an astronomically large ``a0``), ``STEP_TOO_SMALL``
    when the adaptive step fell below the spacing of floating-point numbers; ``message`` names the time.
    """
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or np.any(np.diff(t) < 0) or t[0] < 0:
        raise InvalidInputError("t: must be a non-empty, non-decreasing 1-D array of times >= 0")
    if not problem.is_symmetric:
        raise InvalidInputError("problem: the mean-field ODE here is the symmetric one (equal a_i, v_i)")
    h, hp = problem.h_series, problem.hatphi
    al = problem.alpha
    train = problem.train_second_layer
    nonfinite: list[float] = []  # the first time the right-hand side was NaN or infinite

    def rhs(time, y):
        v, a = y
        q = v * v
        dv = float(al * a * (1 - q) * (hp.d1(v) - a * h.d1(q) * v))
        da = float(al * (hp(v) - a * h(q))) if train else 0.0
        if not nonfinite and not (math.isfinite(dv) and math.isfinite(da)):
            nonfinite.append(float(time))
        return [dv, da]

    y0 = [float(problem.v0_vector[0]), float(problem.a0_vector[0])]
    with np.errstate(over="ignore", invalid="ignore"):
        sol = solve_ivp(rhs, (0.0, float(t[-1])), y0, t_eval=t, method="DOP853", rtol=rtol, atol=atol)
    y = np.asarray(sol.y, dtype=np.float64).reshape(2, -1)
    if y.shape[1] == 0 and t[0] == 0.0:  # failed on its first step: the initial state is all there is
        y = np.array(y0, dtype=np.float64).reshape(2, 1)
    v, a = y
    status, message = Status.SUCCESS, ""
    if not sol.success:
        reached = float(t[v.size - 1]) if v.size else 0.0
        if nonfinite:
            status = Status.NONFINITE
            message = (f"mean_field_ode: the right-hand side became non-finite at t = {nonfinite[0]:.6g}; "
                       f"solution kept up to t = {reached:.6g}")
        else:
            status = Status.STEP_TOO_SMALL
            message = f"mean_field_ode: {sol.message} Solution kept up to t = {reached:.6g}"
    t = t[: v.size]
    with np.errstate(over="ignore", invalid="ignore"):
        err = 0.5 * (problem.tau**2 + problem.phi_norm2 - 2 * a * hp(v) + a * a * h(v * v))
    return ReducedSolution(problem, "mean_field_ode", t, {"v": v, "a": a, "train_error": err, "test_error": err,
                                                          "C_o": v * v}, status=status, message=message)


# --------------------------------------------------------------------------------------------
# lazy first regime (App. F), t = t_hat / m
# --------------------------------------------------------------------------------------------
def lazy_first_regime(problem: Problem, t_hat, gamma0: float | None = None) -> ReducedSolution:
    r"""Closed forms of the lazy first regime, ``t = t_hat/m``, ``a0 = gamma0 sqrt(m)``, m -> infinity (Montanari & Urbani 2025,
    App. F, Eqs. (F.5)-(F.6)).

    With ``kappa = alpha gamma0^2 h'(0)``, ``b1 = hatphi'(0)``, ``v_inf = b1/(gamma0 h'(0))``:
    ``v_hat(t) = v_inf (1 - e^{-kappa t})`` (``v = v_hat/sqrt m``) and, integrating
    ``d/dt Co_hat(t,t) = 2[alpha gamma0 b1 v_hat - kappa (1 + Co_hat)]`` from 0,
    ``Co_hat(t,t) = v_hat(t)^2 + e^{-2 kappa t} - 1`` (pure noise: ``e^{-2 kappa t} - 1``), so

    ``e_tr = e_ts = (tau^2 + ||phi||^2 - 2 gamma0 b1 v_hat + gamma0^2 (h(1) + h'(0) Co_hat(t,t)))/2``
    ``-> (tau^2 + ||phi||^2 - b1^2/h'(0) + gamma0^2 (h(1) - h'(0)))/2``.

    Two-time closed forms (pure noise, ``t >= t'``): ``Co_hat = e^{-kappa(t+t')} - 1``,
    ``Cd_hat = e^{-kappa(t+t')} - (e^{-2 kappa t} + e^{-2 kappa t'})/2`` (Eq. (F.6) without its spurious ``1 +``),
    ``Ro_hat = e^{-kappa(t-t')} - 1``.
    """
    t_hat = np.asarray(t_hat, dtype=np.float64)
    m = problem.m
    g0 = float(problem.a0_vector[0]) / math.sqrt(m) if gamma0 is None else float(gamma0)
    h1, b1 = _h1(problem)
    if h1 <= 0:
        raise InvalidInputError("h: the lazy first regime needs h'(0) > 0")
    kappa = problem.alpha * g0 * g0 * h1
    h_one = float(problem.h_series(np.array(1.0)))
    v_inf = b1 / (g0 * h1)
    vhat = v_inf * (1 - np.exp(-kappa * t_hat))
    co_tt = vhat**2 + np.exp(-2 * kappa * t_hat) - 1
    err = 0.5 * (problem.tau**2 + problem.phi_norm2 - 2 * g0 * b1 * vhat + g0 * g0 * (h_one + h1 * co_tt))
    T, S = np.meshgrid(t_hat, t_hat, indexing="ij")
    two = {}
    if problem.pure_noise:
        low = T >= S
        Tm, Sm = np.where(low, T, S), np.where(low, S, T)
        two["Co_hat"] = np.exp(-kappa * (Tm + Sm)) - 1
        two["Cd_hat"] = np.exp(-kappa * (Tm + Sm)) - 0.5 * (np.exp(-2 * kappa * Tm) + np.exp(-2 * kappa * Sm))
        two["Ro_hat"] = np.where(T > S, np.exp(-kappa * (T - S)) - 1, 0.0)
    series = {"train_error": err, "test_error": err, "v_hat": vhat, "Co_hat_tt": co_tt,
              "weight_displacement": (1 - np.exp(-kappa * t_hat)) ** 2, "kappa": np.full_like(t_hat, kappa)}
    return ReducedSolution(problem, "lazy_first_regime", t_hat, series, two)


# --------------------------------------------------------------------------------------------
# MF pure-noise first regime (App. G.1)
# --------------------------------------------------------------------------------------------
def mf_first_regime(problem: Problem, t) -> ReducedSolution:
    r"""Mean-field init, pure noise, ``t = O(1)``, m -> infinity (Montanari & Urbani 2025, App. G.1),
    ``rho0 = alpha a0^2 h'(0)``::

        m C_o(t,t)  -> (tau^2 - rho0)/rho0 - (2 tau^2/rho0) e^{-rho0 t} + ((tau^2 + rho0)/rho0) e^{-2 rho0 t}
        m C_o(t,t') -> [((tau^2+rho0)/rho0) e^{-2 rho0 t'} - (tau^2/rho0) e^{-rho0 t'}] e^{-rho0 (t-t')}
                       + (tau^2 - rho0)/rho0 - (tau^2/rho0) e^{-rho0 t'}          (t >= t')
        m R_o(t,s)  -> e^{-rho0 (t-s)} - 1,        e_tr -> tau^2/2.
    """
    t = np.asarray(t, dtype=np.float64)
    h1, _ = _h1(problem)
    a0 = float(problem.a0_vector[0])
    rho = problem.alpha * a0 * a0 * h1
    if rho <= 0:
        raise InvalidInputError("problem: needs alpha a0^2 h'(0) > 0")
    tau2 = problem.tau**2
    mco_tt = (tau2 - rho) / rho - (2 * tau2 / rho) * np.exp(-rho * t) + ((tau2 + rho) / rho) * np.exp(-2 * rho * t)
    T, S = np.meshgrid(t, t, indexing="ij")
    low = T >= S
    Tm, Sm = np.where(low, T, S), np.where(low, S, T)
    mco = (((tau2 + rho) / rho) * np.exp(-2 * rho * Sm) - (tau2 / rho) * np.exp(-rho * Sm)) * np.exp(-rho * (Tm - Sm)) \
        + (tau2 - rho) / rho - (tau2 / rho) * np.exp(-rho * Sm)
    mro = np.where(T > S, np.exp(-rho * (T - S)) - 1, 0.0)
    return ReducedSolution(problem, "mf_first_regime", t,
                           {"mC_o_tt": mco_tt, "train_error": np.full_like(t, tau2 / 2), "rho0": np.full_like(t, rho)},
                           {"mC_o": mco, "mR_o": mro})


# --------------------------------------------------------------------------------------------
# scalar reduced DMFT machinery
# --------------------------------------------------------------------------------------------
def _check_reduced_step(rate: float, dt: float, allow_unstable: bool) -> None:
    if dt * rate >= 2.0 and not allow_unstable:
        raise InvalidInputError(f"dt: {dt:g} exceeds the explicit-Euler bound 2/{rate:.4g} of the reduced system")


def lazy_second_regime(
    problem: Problem, t_max: float, dt: float, *, gamma0: float | None = None, allow_unstable: bool = False,
    divergence_threshold: float = 1e3,
) -> ReducedSolution:
    r"""Lazy second regime, ``t = O(1)``, fixed ``gamma0`` (Montanari & Urbani 2025, App. F.1,
    Eq. (F.65); Eq. (F.23) lacks the ``gamma0^2`` prefactor, without which the system does not match SymmDMFT at
    large m)::

        Sigma_R = gamma0^2 h~'(C) R,   Sigma_C = tau'^2 + gamma0^2 h~(C),   R_A, C_A from (E7)
        M_R = alpha gamma0^2 [R_A h~'(C) + C_A h~''(C) R],   M_C = alpha gamma0^2 h~'(C) C_A
        d_t C(t,t') = -nu C - int_0^t M_R(t,s) C(t',s) ds - int_0^t' M_C(t,s) R(t',s) ds
        d_t R(t,t') = delta(t-t') - nu R - int_t'^t M_R(t,s) R(s,t') ds
        nu = -int_0^t [M_R C + M_C R](t,s) ds,   C(t,t) = 1,   e_tr = -C_A(t,t)/2

    ``h~ = h_tilde``; ``tau'^2`` = :func:`effective_noise` (``tau^2`` for pure noise; App. F.2 for single
    index). ``e_ts`` is constant, ``(tau'^2 + gamma0^2 (h(1) - h'(0)))/2``. ``gamma0`` defaults to ``a0/sqrt(m)``.
    Integrated on the time grid ``t_n = n dt <= t_max`` by the explicit scheme of App. D (``allow_unstable`` lets a
    step past its explicit-Euler bound through); ``divergence_threshold`` is an absolute bound on ``|C(t, t')|``:
    beyond it the march stops with status ``DIVERGED`` (``NONFINITE`` on a NaN or infinity), keeping the steps before.
    """
    threshold = check_threshold(divergence_threshold)
    N = time_grid(t_max, dt)
    dt = float(dt)
    g0 = float(problem.a0_vector[0]) / math.sqrt(problem.m) if gamma0 is None else float(gamma0)
    ht = problem.h_tilde()
    al = problem.alpha
    pref = al * g0 * g0
    _check_reduced_step(pref * float(ht.d1(np.array(1.0))), dt, allow_unstable)
    tau2 = effective_noise(problem)
    C = np.zeros((N, N)); R = np.zeros((N, N)); SC = np.zeros((N, N)); RA = np.zeros((N, N))  # noqa: E702
    CA = np.zeros((N, N)); nu = np.zeros(N); etr = np.zeros(N)  # noqa: E702
    C[0, 0] = 1.0
    status, message, last = Status.SUCCESS, "", N - 1
    with blas_threads(1), np.errstate(over="ignore", invalid="ignore"):
        for n in range(N):
            k = n + 1
            c, r = C[n, :k], R[n, :k]
            h1c = ht.d1(c)
            SC[n, :k] = tau2 + g0 * g0 * ht(c)
            SC[:k, n] = SC[n, :k]
            sr = g0 * g0 * h1c * r
            RA[n, n] = 1 / dt
            if n:
                RA[n, :n] = -dt * (sr[:n] @ RA[:n, :n])
            y = RA[n, :k] @ SC[:k, :k]
            CA[n, :k] = -dt * dt * (RA[:k, :k] @ y)
            CA[:k, n] = CA[n, :k]
            etr[n] = -CA[n, n] / 2
            if not np.isfinite(etr[n]):
                status, message, last = Status.NONFINITE, f"diverged at t = {n * dt:.6g}", n - 1
                break
            if n == N - 1:
                break
            ra, ca = RA[n, :k], CA[n, :k]
            MR = pref * (ra * h1c + ca * ht.d2(c) * r)
            MC = pref * h1c * ca
            nu[n] = -dt * float(MR @ c + MC @ r)
            C[n + 1, :k] = c + dt * (-nu[n] * c - dt * (C[:k, :k] @ MR) - dt * (R[:k, :k] @ MC))
            C[:k, n + 1] = C[n + 1, :k]
            C[n + 1, n + 1] = 1.0
            R[n + 1, :k] = r + dt * (-nu[n] * r - dt * (MR @ R[:k, :k]))
            R[n + 1, n] += 1.0
            if not (np.all(np.isfinite(C[n + 1, :k])) and np.max(np.abs(C[n + 1, :k])) < threshold):
                status, message, last = Status.DIVERGED, f"diverged at t = {(n + 1) * dt:.6g}", n
                break
    n_ok = last + 1
    if N > 1 and status is Status.SUCCESS:
        nu[-1] = nu[-2]
    ets = 0.5 * (tau2 + g0 * g0 * float(problem.h_series(np.array(1.0)) - problem.h_series.d1(np.array(0.0))))
    t = np.arange(n_ok) * dt
    return ReducedSolution(
        problem, "lazy_second_regime", t,
        {"train_error": etr[:n_ok], "test_error": np.full(n_ok, ets), "nu": nu[:n_ok]},
        {"C": C[:n_ok, :n_ok], "R": R[:n_ok, :n_ok], "C_A": CA[:n_ok, :n_ok]}, status, message,
    )


def mf_second_regime(
    problem: Problem, t_max: float, dt: float, *, allow_unstable: bool = False, divergence_threshold: float = 1e3
) -> ReducedSolution:
    r"""Mean-field init, pure noise, second regime ``t = t_hat sqrt(m)`` (Montanari & Urbani 2025,
    App. G.1)::

        d_t C(t,t') = -nu C + alpha tau^2 a(t) int_0^t a(s) h''(C(t,s)) R(t,s) C(t',s) ds
                      + alpha tau^2 a(t) int_0^t' a(s) h~'(C(t,s)) R(t',s) ds
        d_t R(t,t') = delta(t-t') - nu R + alpha tau^2 a(t) int_t'^t a(s) h''(C(t,s)) R(t,s) R(s,t') ds
        nu(t) = alpha tau^2 a(t) int_0^t a(s) [h''(C) R C + h~'(C) R](t,s) ds
        da/dt = alpha tau^2 int_0^t a(s) h~'(C(t,s)) R(t,s) ds     (frozen if train_second_layer=False)

    With the clock ``t~ = tau sqrt(alpha) int_0^t a`` this is the zero-temperature Cugliandolo-Kurchan system of the
    spherical mixed p-spin model with covariance ``h~``. ``energy`` is ``E(t) = -tau sqrt(alpha) int_0^t a(s) h~'(C(t,s))
    R(t,s) ds``: for a frozen second layer it is exactly the p-spin energy ``-int h~'(C) R ds~`` in the clock ``t~``
    (``R`` takes the same values in both clocks), and by the a-equation ``da/dt = -tau sqrt(alpha) E``, so
    ``a(t)/t -> A_inf = -tau sqrt(alpha) E_inf`` (our reading of the paper's garbled Eq. (G.29); for ``h~ = c^2 z^p``, ``E_inf = -2 c sqrt((p-1)/p)``).
    Returns ``t`` (hat time), ``a``, ``nu``,
    ``energy``, ``clock`` and two-time ``C``, ``R``.
    Integrated on the time grid ``t_n = n dt <= t_max`` by the explicit scheme of App. D (``allow_unstable`` lets a
    step past its explicit-Euler bound through); ``divergence_threshold`` is an absolute bound on ``|C(t, t')|``:
    beyond it the march stops with status ``DIVERGED`` (``NONFINITE`` on a NaN or infinity), keeping the steps before.
    """
    threshold = check_threshold(divergence_threshold)
    N = time_grid(t_max, dt)
    dt = float(dt)
    h = problem.h_series
    ht = problem.h_tilde()
    al, tau2 = problem.alpha, problem.tau**2
    if not problem.pure_noise:
        raise InvalidInputError("problem: the mean-field second regime is implemented for pure noise (target=None)")
    a0 = float(problem.a0_vector[0])
    C = np.zeros((N, N)); R = np.zeros((N, N)); a = np.zeros(N); nu = np.zeros(N); en = np.zeros(N)  # noqa: E702
    C[0, 0] = 1.0
    a[0] = a0
    train = problem.train_second_layer
    status, message, last = Status.SUCCESS, "", N - 1
    with blas_threads(1), np.errstate(over="ignore", invalid="ignore"):
        for n in range(N):
            k = n + 1
            c, r = C[n, :k], R[n, :k]
            h2c, h1c = h.d2(c), ht.d1(c)
            en[n] = -math.sqrt(al * tau2) * dt * float((a[:k] * h1c) @ r)
            if n == N - 1:
                break
            pre = al * tau2 * a[n] * a[:k]
            K1 = pre * h2c * r
            K2 = pre * h1c
            nu[n] = dt * float(K1 @ c + K2 @ r)
            if train:
                a[n + 1] = a[n] + dt * al * tau2 * dt * float((a[:k] * h1c) @ r)
            else:
                a[n + 1] = a[n]
            C[n + 1, :k] = c + dt * (-nu[n] * c + dt * (C[:k, :k] @ K1) + dt * (R[:k, :k] @ K2))
            C[:k, n + 1] = C[n + 1, :k]
            C[n + 1, n + 1] = 1.0
            R[n + 1, :k] = r + dt * (-nu[n] * r + dt * (K1 @ R[:k, :k]))
            R[n + 1, n] += 1.0
            if not (np.all(np.isfinite(C[n + 1, :k])) and np.max(np.abs(C[n + 1, :k])) < threshold and np.isfinite(a[n + 1])):
                status, message, last = Status.DIVERGED, f"diverged at t = {(n + 1) * dt:.6g}", n
                break
    n_ok = last + 1
    if N > 1 and status is Status.SUCCESS:
        nu[-1] = nu[-2]
    t = np.arange(n_ok) * dt
    clock = math.sqrt(al * tau2) * np.concatenate([[0.0], np.cumsum(a[: n_ok - 1]) * dt])
    return ReducedSolution(
        problem, "mf_second_regime", t,
        {"a": a[:n_ok], "nu": nu[:n_ok], "energy": en[:n_ok], "clock": clock},
        {"C": C[:n_ok, :n_ok], "R": R[:n_ok, :n_ok]}, status, message,
    )


def pspin_threshold_energy(c: float, p: int) -> float:
    """Asymptotic zero-temperature GF energy of the pure spherical p-spin, ``h~ = c^2 z^p``: ``-2 c sqrt((p-1)/p)``
    (the threshold energy of the spherical p-spin model)."""
    return -2.0 * c * math.sqrt((p - 1) / p)


__all__.append("pspin_threshold_energy")
