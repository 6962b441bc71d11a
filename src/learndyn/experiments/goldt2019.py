r"""Goldt, Advani, Saxe, Krzakala & Zdeborová (NeurIPS 2019): figures and claims, ODE beside finite-N SGD.

Each figure is a short declaration -- its runs (a frozen :class:`learndyn.online.Problem` each, with the SGD
size and horizon) and its plot -- executed by the shared runner (:mod:`learndyn.experiments.runner`). The paper
does not state every parameter of its figures; the values below follow its setting and the defaults of its
reference code, and are stated on every figure:

* ``fig1`` -- dynamics: eps_g(alpha), R(alpha), Q(alpha) of an erf student (M = K = 2, first layer,
  eta = 0.5, sigma = 0): the Saad-Solla plateau and its escape, ODE lines from each seed's initial
  overlaps, SGD markers (seed mean +- standard error).
* ``fig2`` -- first layer only, over-parameterised students: final eps_g against L = K - M for erf, ReLU and
  linear (M = 2, eta = 0.1, sigma = 0.1, informed start with near-zero extra units, alpha = 300), with the
  closed forms eta sigma^2 (L + M/sqrt3)/(2 pi) (+ O(eta^2)) for erf and K eta sigma^2/(2(2 - K eta)) for
  linear (the asymptotic errors of the first-layer ODE, Goldt et al. 2019), the ODE fixed point, and SGD.
* ``fig3`` -- both layers: final eps_g against K for erf, ReLU and linear (M = 2, eta = 0.2, sigma = 0.1,
  "large" start: w, v ~ N(0, 1), alpha = 3000), ODE and SGD. (Linear students converge very
  slowly along their continuum of equivalent solutions: their "final" value is the value at alpha = 3000.)
* ``fig4`` -- specialisation: final R (normalised), Q and v of erf and ReLU students (M = 2, K = 4, both
  layers) from SGD and from the ODE, as heat maps.

``claims()`` computes the claims of the paper's abstract as numbers: (a) the SGD-ODE deviation against N and
its fitted exponent, (b) the first-layer eps_g* against L and its slope beside eta sigma^2/(2 pi),
(c) the both-layer eps_g* against K with its trend, (d) the solution SGD finds, read off the final Q, R, v.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xarray as xr

from .. import online
from ..online import compare, deviation_exponent
from ..results import atomic_write_netcdf
from . import canonical_figure, output_paths, runner

__all__ = ["FIGURES", "Run", "Figure", "RunResult", "execute", "run_figure", "claims", "classify_solution",
           "final_error", "trend", "closed_form", "sweep"]

_EG_PLOT_FLOOR = 1e-10  # eps_g below this is integration/rounding noise around 0 (atol of the ODE)
PAPER = "Goldt, Advani, Saxe, Krzakala & Zdeborova, NeurIPS 2019 (arXiv:1906.08632)"


# ------------------------------------------------------------------------------------------
# recipes
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One run of a figure: a frozen :class:`learndyn.online.Problem`, and what to compute -- finite-``N``
    online SGD over ``seeds`` seeds to ``alpha_max`` (``n_alphas`` log-spaced records, start ``init``; Goldt et
    al. 2019, eqs. (2)-(3)) beside the ODE from each seed's initial overlaps (Goldt et al. 2019, eqs. (5)-(7))."""

    label: str
    problem: online.Problem
    N: int = 500
    seeds: int = 4
    alpha_max: float = 1000.0
    init: str = "large"
    n_alphas: int = 40

    def make_problem(self) -> online.Problem:
        """The run's Problem."""
        return self.problem

    def quick(self) -> "Run":
        """CI size: N <= 100, 2 seeds, alpha <= 20."""
        return replace(self, N=min(self.N, 100), seeds=2, alpha_max=min(self.alpha_max, 20.0), n_alphas=12)


@dataclass(frozen=True)
class Figure(runner.Figure):
    """A figure of Goldt et al. 2019: its runs and the plot ``kind`` (``"curves"``: eps_g, R, Q against alpha;
    ``"sweep"``: final eps_g against ``xlabel``; ``"specialisation"``: final overlaps as heat maps)."""

    xlabel: str = ""
    notes: str = ""

    def runs_for(self, quick: bool = False) -> tuple:
        """The runs to execute: all of them, or in CI (``quick``) the smallest and largest size per activation
        of a sweep (each run is then shrunk by :meth:`Run.quick`)."""
        if not (quick and self.kind == "sweep"):
            return self.runs
        acts: dict[str, list] = {}
        for r in self.runs:
            acts.setdefault(r.problem.activation, []).append(r)
        return tuple(x for lst in acts.values() for x in (lst[0], lst[-1]))


def _p(activation, M, K, lr, sigma, both) -> online.Problem:
    return online.Problem(M=M, K=K, activation=activation, lr=lr, sigma=sigma, train_second_layer=both)


_FIG2_L = (0, 1, 2, 4)
_FIG3_K = (2, 3, 4, 6)
# the ReLU ODE needs ~K^2 (K+M)^2 one-dimensional integrals (I4) per evaluation: 1 s at K=6, so ReLU
# sweeps stop at K = 4
_RELU_L = (0, 1, 2)
_RELU_K = (2, 3, 4)

FIGURES: dict[str, Figure] = {
    "fig1": Figure(
        "fig1", "erf student, M = K = 2, first layer, eta = 0.5, sigma = 0: plateau and escape", "curves",
        (Run("K=2", _p("erf", 2, 2, 0.5, 0.0, False), N=500, seeds=4, alpha_max=1000.0, n_alphas=50),),
    ),
    "fig2": Figure(
        "fig2", "first layer only: final eps_g against L = K - M (M = 2, eta = 0.1, informed start)", "sweep",
        tuple(Run(f"{act} L={L}", _p(act, 2, 2 + L, 0.1, 0.1, False), N=500, seeds=4,
                  alpha_max=300.0, init="informed")
              for act in ("erf", "relu", "linear") for L in (_FIG2_L if act != "relu" else _RELU_L)),
        xlabel="L = K - M",
    ),
    "fig3": Figure(
        "fig3", "both layers: final eps_g against K (M = 2, eta = 0.2, sigma = 0.1, alpha = 3000)", "sweep",
        tuple(Run(f"{act} K={K}", _p(act, 2, K, 0.2, 0.1, True), N=400, seeds=3, alpha_max=3000.0, init="large")
              for act in ("erf", "relu", "linear") for K in (_FIG3_K if act != "relu" else _RELU_K)),
        xlabel="K",
    ),
    "fig4": Figure(
        "fig4", "specialisation: final overlaps of erf and ReLU students (M = 2, K = 4, both layers)",
        "specialisation",
        tuple(Run(f"{act} K=4", _p(act, 2, 4, 0.2, 0.1, True), N=400, seeds=3, alpha_max=3000.0, init="large")
              for act in ("erf", "relu")),
    ),
}


# ------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------
def _alphas(run: Run) -> np.ndarray:
    return online.default_alphas(run.alpha_max, n=run.n_alphas, alpha_min=min(0.1, run.alpha_max / 100))


@dataclass(frozen=True, eq=False)
class RunResult:
    """One executed :class:`Run`: the SGD simulation, the ODE from each seed's initial overlaps, its fixed point.

    ``eg_ode`` (S, A) is the ODE's eps_g from every seed's exact initial state (NaN where not integrated;
    None when the ODE is unavailable); ``ode_final`` the ODE's final order parameters per seed (None for a
    failed integration); ``comparison`` the ODE-vs-SGD statistics of :func:`learndyn.online.compare` (curve
    figures)."""

    run: Run
    problem: online.Problem
    simulation: online.Simulation
    eg_ode: np.ndarray | None  # (S, A) ODE from each seed's initial state
    ode_final: tuple  # per seed: final OrderParameters of the ODE (or None)
    fixed_point_eg: float = float("nan")
    fixed_point_stable: bool | None = None
    wall: float = 0.0
    comparison: online.Comparison | None = None

    @property
    def alpha(self) -> np.ndarray:
        """The recorded times alpha = steps / N of the simulation."""
        return self.simulation.alpha

    def to_xarray(self) -> xr.Dataset:
        """The variables of :meth:`learndyn.online.Simulation.to_xarray` (``eg``, ``Q``, ``R``, ``v``, ... over
        ``seed``, ``alpha``, ``k``, ``n``) plus ``eg_ode`` (ODE from each seed's start, over ``seed`` x
        ``alpha``) and ``fixed_point_eg``."""
        ds = self.simulation.to_xarray()
        eg_ode = self.eg_ode if self.eg_ode is not None else np.full(ds["eg"].shape, np.nan)
        ds["eg_ode"] = (("seed", "alpha"), eg_ode)
        ds["fixed_point_eg"] = float(self.fixed_point_eg)
        return ds

    def parameters(self) -> dict:
        """The run's parameters, as coordinates along the figure file's ``run`` dimension."""
        p = self.problem
        return dict(activation=p.activation_name, K=p.K, M=p.M, L=p.K - p.M, lr=float(p.lr), sigma=float(p.sigma),
                    train_second_layer=int(p.train_second_layer), N=int(self.simulation.N),
                    n_seeds=len(self.simulation.seeds), init=self.run.init)


def execute(run: Run, quick: bool = False, progress: bool = False, fixed_point: bool = False,
            ode_seeds: int | None = None, rtol: float = 1e-8, N: int | None = None,
            seeds: int | None = None, compare: bool = False) -> RunResult:
    """Simulate ``run`` and integrate the ODE from the initial overlaps of every seed (or of the first
    ``ode_seeds`` seeds; the others' ODE entries are NaN). ``compare``: through :func:`learndyn.online.compare`
    (which integrates every seed and adds the deviation statistics; the ODE's final states are then not kept).
    Results are memoised in-process, so ``--figure all --claims`` runs each recipe once."""
    if N is not None or seeds is not None:
        run = replace(run, N=run.N if N is None else int(N), seeds=run.seeds if seeds is None else int(seeds))
    if run.problem.activation == "relu":
        fixed_point = False  # the Jacobian through the 1-D-integral ReLU I4 is too costly; the ODE end is used
    compare = compare and ode_seeds is None
    key = (run, quick, fixed_point, ode_seeds, rtol, compare)
    if key not in _CACHE:
        _CACHE[key] = _execute(run, quick, progress, fixed_point, ode_seeds, rtol, compare)
    return _CACHE[key]


_CACHE: dict = {}


def _loose_relu(prob: online.Problem, rtol: float) -> bool:
    # ReLU: each evaluation of I4 is a 1-D integral, so a lower-order solver (integrate's default for ReLU) at
    # a looser tolerance (final values need ~1e-3 accuracy, far below the SGD error bars)
    return prob.activation == "relu" and rtol > 1e-8


def _ode_options(prob: online.Problem, rtol: float) -> dict:
    return dict(rtol=max(rtol, 1e-5) if _loose_relu(prob, rtol) else rtol, atol=rtol * 1e-4)


def _execute(run, quick, progress, fixed_point, ode_seeds, rtol, compare) -> RunResult:
    t0 = time.perf_counter()
    if quick:
        run = run.quick()
    prob = run.make_problem()
    sim = online.simulate(prob, run.N, seeds=run.seeds, alphas=_alphas(run), init=run.init, progress=progress)
    eg_ode, finals, comparison = None, [], None
    fp_eg, fp_stable = float("nan"), None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if compare:
                comparison = online.compare(prob, simulation=sim, **_ode_options(prob, rtol))
                eg_ode = comparison.eg_ode
            else:
                eg_ode = np.full_like(sim.eg, np.nan)
                for i, s in enumerate(sim.seeds[: ode_seeds]):
                    traj = online.integrate(prob, sim.initial_state(int(s)), alphas=sim.alpha,
                                            method="dopri5" if _loose_relu(prob, rtol) else "dopri8",
                                            **_ode_options(prob, rtol))
                    eg_ode[i, : len(traj.eg)] = traj.eg
                    finals.append(traj.final_state if traj.success else None)
    except NotImplementedError:  # the activation lacks a Gaussian integral of the ODE
        eg_ode, finals, comparison = None, [], None
    if fixed_point and finals and finals[0] is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fp = online.fixed_point(prob, finals[0], onward=())  # the run's end, no extra integration
            if fp.converged:
                fp_eg, fp_stable = float(fp.eg), bool(fp.stable)
        except (RuntimeError, ValueError):
            pass
    return RunResult(run, prob, sim, eg_ode, tuple(finals), fp_eg, fp_stable, time.perf_counter() - t0, comparison)


def final_error(values: np.ndarray, alpha: np.ndarray, fraction: float = 0.1) -> tuple[float, float]:
    """Final error of ``values`` (S, A): per seed, the mean over the last ``fraction`` (10%) of the log-time
    axis (the stationary noise floor); returns the seed mean and its standard error."""
    pos = alpha > 0
    la = np.log(alpha[pos])
    late = np.zeros_like(alpha, dtype=bool)
    late[np.flatnonzero(pos)[la >= la[-1] - fraction * (la[-1] - la[0])]] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # seeds without an ODE run are all-NaN rows
        per_seed = np.nanmean(values[:, late], axis=1)
        n = np.sum(np.isfinite(per_seed))
        sem = float(np.nanstd(per_seed, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        return float(np.nanmean(per_seed)), sem


def closed_form(prob: online.Problem) -> float:
    """Closed-form asymptotic eps_g* where one is known (first layer, v = v* = 1; Goldt et al. 2019): erf (to
    order eta^2, :func:`learndyn.online.eg_erf_first_layer`), linear (exact, :func:`learndyn.online.eg_linear_first_layer`)."""
    if prob.train_second_layer or prob.sigma == 0:
        return float("nan")
    L = prob.K - prob.M
    if prob.activation == "erf":
        return online.eg_erf_first_layer(prob.lr, prob.sigma, prob.M, L, order=2)
    if prob.activation == "linear":
        try:
            return online.eg_linear_first_layer(prob.lr, prob.sigma, prob.K)
        except ValueError:
            return float("nan")
    return float("nan")


# ------------------------------------------------------------------------------------------
# solution types (claim d)
# ------------------------------------------------------------------------------------------
def classify_solution(Q: np.ndarray, R: np.ndarray, T: np.ndarray, v: np.ndarray, v_teacher: np.ndarray,
                      overlap: float = 0.9, inactive: float = 0.05) -> dict:
    """Read the solution off final order parameters.

    A student unit ``k`` is *inactive* when its output weight is negligible, ``|v_k| sqrt(Q_kk) <
    inactive * max_k |v_k| sqrt(Q_kk)``; otherwise it is *assigned* to teacher ``n`` when the normalised
    overlap ``R_kn / sqrt(Q_kk T_nn) > overlap``, else *unspecialised*. A teacher unit with more than
    one assigned student is learnt by *denoising copies*; their output weights should add up to ``v*_n``.
    """
    K, M = R.shape
    q = np.sqrt(np.maximum(np.diag(Q), 1e-300))
    strength = np.abs(v) * q
    active = strength >= inactive * strength.max()
    cos = R / (q[:, None] * np.sqrt(np.diag(T))[None, :])
    owner = np.where(active & (cos.max(axis=1) > overlap), cos.argmax(axis=1), -1)
    groups = {int(n): [int(k) for k in np.flatnonzero(owner == n)] for n in range(M)}
    unspecialised = [int(k) for k in np.flatnonzero(active & (owner < 0))]
    inactive_units = [int(k) for k in np.flatnonzero(~active)]
    parts = []
    if all(len(g) == 1 for g in groups.values()) and not unspecialised:
        kind = "specialised"
    elif all(len(g) >= 1 for g in groups.values()) and any(len(g) > 1 for g in groups.values()) \
            and not unspecialised:
        kind = "denoising copies"
    elif any(len(g) == 0 for g in groups.values()) or unspecialised:
        kind = "unspecialised"
    else:
        kind = "specialised"
    if inactive_units:
        kind += f" + {len(inactive_units)} inactive"
    for n, g in groups.items():
        if g:
            vs = ", ".join(f"{v[k]:+.2f}" for k in g)
            parts.append(f"teacher {n} (v*={v_teacher[n]:+.2f}) <- units {g} (v = {vs}; sum {v[g].sum():+.2f})")
    if unspecialised:
        parts.append(f"unspecialised units {unspecialised}")
    if inactive_units:
        parts.append(f"inactive units {inactive_units}")
    return {"kind": kind, "groups": groups, "inactive": inactive_units, "unspecialised": unspecialised,
            "detail": "; ".join(parts), "cos": cos}


# ------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------
def _plot_curves(fig_spec: Figure, results: list[RunResult], path: Path) -> Path:
    from ..plotting import SIM_STYLE, THEORY_STYLE, figure, save_figure

    res = results[0]
    sim, a = res.simulation, res.alpha
    pos = a > 0
    fig, axes = figure(1, 3, width=4.0)
    ax = axes[0]
    mean, sem = sim.eg_mean, sim.eg_sem
    shown = pos & (mean > _EG_PLOT_FLOOR)  # below: rounding noise of eps_g = 0 (sigma = 0 runs)
    ax.errorbar(a[shown], mean[shown], yerr=sem[shown], label=f"SGD, N={sim.N} ({len(sim.seeds)} seeds)", **SIM_STYLE)
    if res.eg_ode is not None:
        ode = np.where(res.eg_ode > _EG_PLOT_FLOOR, res.eg_ode, np.nan)
        ok = a > 0
        for s in range(ode.shape[0]):
            ax.loglog(a[ok], ode[s, ok], color="k", lw=0.6, alpha=0.35)
        ax.loglog(a[ok], np.nanmean(res.eg_ode, axis=0)[ok] * np.where(np.all(np.isfinite(ode[:, ok]), axis=0), 1,
                                                                         np.nan),
                  color="k", label="ODE (mean over seeds)", **THEORY_STYLE)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(ax.get_ylim()[0], _EG_PLOT_FLOOR))
    ax.set_xlabel(r"$\alpha$ = steps / N")
    ax.set_ylabel(r"$\epsilon_g$")
    ax.legend(fontsize=7)
    # order parameters of seed 0: SGD markers, ODE lines
    s0 = int(sim.seeds[0])
    traj = None
    if res.eg_ode is not None:
        traj = online.integrate(res.problem, sim.initial_state(s0), alphas=a)
    K, M = res.problem.K, res.problem.M
    colors = [f"C{i}" for i in range(10)]
    for k in range(K):
        for n in range(M):
            c = colors[(k * M + n) % 10]
            axes[1].plot(a[pos], sim.R[0, pos, k, n], "o", ms=3, color=c, label=f"$R_{{{k + 1}{n + 1}}}$")
            if traj is not None:
                axes[1].plot(a[pos], traj.R[pos, k, n], color=c, lw=1.2)
        for l in range(k, K):
            c = colors[(k * K + l) % 10]
            axes[2].plot(a[pos], sim.Q[0, pos, k, l], "o", ms=3, color=c, label=f"$Q_{{{k + 1}{l + 1}}}$")
            if traj is not None:
                axes[2].plot(a[pos], traj.Q[pos, k, l], color=c, lw=1.2)
    for axx, name in ((axes[1], "R"), (axes[2], "Q")):
        axx.set_xscale("log")
        axx.set_xlabel(r"$\alpha$")
        axx.set_ylabel(f"{name} (seed {s0}: markers SGD, lines ODE)")
        axx.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{fig_spec.title}\n{PAPER}", fontsize=9)
    return save_figure(fig, path)


def sweep(results: list[RunResult]) -> dict[str, dict[str, np.ndarray]]:
    """Final errors of a sweep, grouped by activation: x (L or K), SGD mean/sem, ODE, fixed point, closed form."""
    out: dict[str, dict[str, list]] = {}
    for r in results:
        p = r.problem
        act = p.activation_name
        d = out.setdefault(act, {k: [] for k in ("L", "K", "sgd", "sgd_sem", "ode", "fp", "closed", "kind")})
        m, s = final_error(r.simulation.eg, r.alpha)
        d["L"].append(p.K - p.M)
        d["K"].append(p.K)
        d["sgd"].append(m)
        d["sgd_sem"].append(s)
        d["ode"].append(final_error(r.eg_ode, r.alpha)[0] if r.eg_ode is not None else np.nan)
        d["fp"].append(r.fixed_point_eg)
        d["closed"].append(closed_form(p))
        last = r.simulation
        sol = classify_solution(last.Q[0, -1], last.R[0, -1], last.T[0], last.v[0, -1], last.v_teacher[0])
        d["kind"].append(sol["kind"])
    return {act: {k: np.asarray(v) for k, v in d.items()} for act, d in out.items()}


def _plot_sweep(fig_spec: Figure, results: list[RunResult], path: Path) -> Path:
    from ..plotting import SIM_STYLE, THEORY_STYLE, figure, save_figure

    data = sweep(results)
    xkey = "L" if fig_spec.xlabel.startswith("L") else "K"
    fig, axes = figure(1, len(data), width=3.8)
    axes = np.atleast_1d(axes)
    p0 = results[0].problem
    for ax, (act, d) in zip(axes, data.items()):
        x = d[xkey]
        if np.any(np.isfinite(d["closed"])):
            xf = np.linspace(x.min(), x.max(), 50)
            if act == "erf":
                lead = p0.lr * p0.sigma**2 * ((xf if xkey == "L" else xf - p0.M) + p0.M / math.sqrt(3)) / (2 * math.pi)
                ax.plot(xf, lead, "k--", lw=1, label=r"$\eta\sigma^2(L+M/\sqrt{3})/2\pi$")
            ax.plot(x, d["closed"], "ks", mfc="none", ms=6, label="closed form" + (r" (to $\eta^2$)" if act == "erf"
                                                                                    else ""))
        if np.any(np.isfinite(d["ode"])):
            ax.plot(x, d["ode"], "-", color="k", label="ODE", **THEORY_STYLE)
        if np.any(np.isfinite(d["fp"])):
            ax.plot(x, d["fp"], "x", color="C3", ms=7, label="ODE fixed point")
        ax.errorbar(x, d["sgd"], yerr=d["sgd_sem"], color="C0", label=f"SGD, N={results[0].simulation.N}",
                    **SIM_STYLE)
        ax.set_title(act)
        ax.set_xlabel(fig_spec.xlabel)
        ax.set_ylabel(r"final $\epsilon_g$")
        ax.set_xticks(x)
        ax.legend(fontsize=7)
    fig.suptitle(f"{fig_spec.title}\n{PAPER}", fontsize=9)
    return save_figure(fig, path)


def _plot_specialisation(fig_spec: Figure, results: list[RunResult], path: Path) -> Path:
    from ..plotting import figure, save_figure

    fig, axes = figure(len(results), 4, width=2.9, height=2.6)
    axes = np.atleast_2d(axes)
    for row, r in zip(axes, results):
        sim = r.simulation
        Q, R, v, T = sim.Q[0, -1], sim.R[0, -1], sim.v[0, -1], sim.T[0]
        sol = classify_solution(Q, R, T, v, sim.v_teacher[0])
        ode = r.ode_final[0] if r.ode_final else None
        panels = [(sol["cos"], r"SGD: $R_{kn}/\sqrt{Q_{kk}T_{nn}}$", (-1, 1)),
                  (Q, "SGD: $Q_{kl}$", None)]
        if ode is not None:
            qo = np.sqrt(np.diag(ode.Q))
            panels.append((ode.R / (qo[:, None] * np.sqrt(np.diag(ode.T))[None, :]),
                           r"ODE: $R_{kn}/\sqrt{Q_{kk}T_{nn}}$", (-1, 1)))
        else:
            panels.append((None, "ODE unavailable", None))
        for ax, (mat, title, lim) in zip(row[:3], panels):
            if mat is None:
                ax.set_axis_off()
                ax.set_title(title, fontsize=8)
                continue
            vmax = lim[1] if lim else np.max(np.abs(mat))
            im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("teacher n" if mat.shape[1] != mat.shape[0] or "R" in title else "student l")
            ax.set_ylabel("student k")
            ax.grid(False)
            for (i, j), val in np.ndenumerate(mat):
                ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=6)
            fig.colorbar(im, ax=ax, fraction=0.046)
        ax = row[3]
        K = len(v)
        ax.bar(np.arange(K) - 0.2, v, width=0.4, label="SGD v")
        if ode is not None:
            ax.bar(np.arange(K) + 0.2, ode.v, width=0.4, label="ODE v")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("student k")
        ax.set_title(f"{r.problem.activation_name}: {sol['kind']}", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle(f"{fig_spec.title}\n{PAPER}", fontsize=9)
    return save_figure(fig, path)


_PLOTS: dict[str, Callable] = {"curves": _plot_curves, "sweep": _plot_sweep, "specialisation": _plot_specialisation}


def _report(spec: Figure, run: Run, res: RunResult) -> str:
    """One line per run: the final SGD error, and the ODE beside it (deviation statistics of
    :func:`learndyn.online.compare` over the trajectory for curves, the final values otherwise)."""
    sim = res.simulation
    fin, fin_se = final_error(sim.eg, sim.alpha)
    if res.eg_ode is None:
        dev = "; ODE unavailable for this activation (Gaussian integral missing)"
    elif res.comparison is not None:
        c = res.comparison
        dev = (f"; ODE vs SGD over the trajectory: max rel. deviation {c.max_rel_dev:.2e} "
               f"(s.e. {c.max_rel_dev_sem:.1e}), mean {c.mean_rel_dev:.2e} (s.e. {c.mean_rel_sem:.1e})")
    else:
        ode_fin = final_error(res.eg_ode, sim.alpha)[0]
        dev = f"; ODE {ode_fin:.4e} (SGD/ODE - 1 = {fin / ode_fin - 1:+.3f})"
    return (f"  {run.label:14s} N={sim.N} seeds={len(sim.seeds)} alpha_max={sim.alpha[-1]:g}: "
            f"final eps_g (SGD) = {fin:.4e} +- {fin_se:.1e}{dev} [{res.wall:.1f}s]")


def run_figure(name: str, out_dir: str | Path = "results/goldt2019", quick: bool = False,
               progress: bool = False, log: Callable[[str], None] = print, N: int | None = None,
               seeds: int | None = None) -> tuple[Path, Path, list[RunResult]]:
    """Run every run of figure ``name`` (``fig1`` .. ``fig4``; ``1`` .. ``4`` also accepted), write
    ``<out_dir>/goldt2019_<name>.png`` and ``.nc`` (the runs along a ``run`` dimension whose coordinates are
    their parameters: ``label``, ``activation``, ``K``, ``M``, ``L = K - M``, ``lr``, ``sigma``, ``N``, ...;
    runs with fewer student units are padded with NaN along ``k``/``l``).

    ``N`` and ``seeds`` override the recipe's input dimension and number of seeds (faster runs)."""
    name = canonical_figure(name, FIGURES)
    spec = FIGURES[name]
    curves = spec.kind == "curves"

    def run_one(run: Run) -> RunResult:
        # final values: rtol 1e-6 suffices (SGD error bars are ~1e-2); curves are compared over the trajectory
        return execute(run, quick=quick, progress=progress, fixed_point=(spec.kind == "sweep"),
                       rtol=1e-8 if curves else 1e-6, N=N, seeds=seeds, compare=curves)

    out = runner.run_figure(
        "goldt2019", spec, out_dir, runs=spec.runs_for(quick), execute=run_one,
        report=lambda run, res: _report(spec, run, res), parameters=RunResult.parameters,
        plot=lambda results, ds, path: _PLOTS[spec.kind](spec, results, path),
        finish=lambda results, ds: ds.assign_attrs(runs=json.dumps([asdict(r.run) for r in results], default=str)),
        attrs={"paper": PAPER}, progress=progress, log=log)
    return out.png, out.nc, out.results


# ------------------------------------------------------------------------------------------
# claims
# ------------------------------------------------------------------------------------------
def trend(x: np.ndarray, y: np.ndarray, err: np.ndarray) -> str:
    """How the final error ``y`` (standard errors ``err``) changes along the sizes ``x`` in the claims of Goldt
    et al. 2019's abstract: 'grows', 'falls' or 'stays constant' (the change from the smallest to the largest
    size within three combined standard errors or 10% of the mean), 'n/a' with fewer than two finite values."""
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return "n/a"
    x, y, err = x[ok], y[ok], np.where(np.isfinite(err[ok]), err[ok], 0.0)
    change = y[-1] - y[0]
    noise = 3 * math.hypot(err[0], err[-1])
    if abs(change) <= max(noise, 0.1 * np.mean(np.abs(y))):
        return "stays constant"
    return "grows" if change > 0 else "falls"


def claims(quick: bool = False, out_dir: str | Path = "results/goldt2019", progress: bool = False,
           log: Callable[[str], None] = print, N: int | None = None, seeds: int | None = None) -> xr.Dataset:
    """Compute the claims of Goldt et al. 2019's abstract as numbers, print tables, write ``goldt2019_claims.nc``.

    ``N``, ``seeds`` override the recipes of (b)-(d) (claim (a) always sweeps its own N). One function per
    claim: :func:`_claim_exact_ode` (a), :func:`_claim_first_layer` (b), :func:`_claim_both_layers` (c),
    :func:`_claim_solutions` (d); :func:`_claims_dataset` collects their numbers."""
    out: dict[str, Any] = {}
    out.update(_claim_exact_ode(quick, progress, log))
    out.update(_claim_first_layer(quick, progress, log, N, seeds))
    out_c, res_c = _claim_both_layers(quick, progress, log, N, seeds)
    out.update(out_c)
    sol_lines = _claim_solutions(res_c, log)
    ds = _claims_dataset(out, sol_lines, quick)
    atomic_write_netcdf(ds, output_paths("goldt2019", "claims", out_dir)[1])
    return ds


def _claim_exact_ode(quick: bool, progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Claim (a): the ODEs (Goldt et al. 2019, eqs. (6)-(8)) become exact as N grows; the single-run deviation
    of SGD from them against N, and its fitted exponent (theory: -1/2)."""
    out: dict[str, Any] = {}
    Ns = (100, 400, 1600) if quick else (500, 1000, 2000, 4000, 8000)
    prob = online.Problem(M=2, K=3, activation="erf", lr=0.5, sigma=0.1, train_second_layer=True)
    # alpha <= 3: before the escape from the plateau, whose timing fluctuates and amplifies deviations
    # non-linearly (measured with alpha <= 10 and 8 seeds: exponent -0.31 +- 0.07; alpha <= 3, 32 seeds:
    # -0.48 +- 0.07)
    alphas = np.array([0, 0.5, 1, 1.5, 2, 2.5, 3])
    a_seeds = 8 if quick else 32  # (not the `seeds` override of (b)-(d))
    rms, rms_se, mx, mx_se = [], [], [], []
    log("(a) the ODE description becomes exact as N grows "
        f"(erf, M=2, K=3, both layers, eta=0.5, sigma=0.1, {a_seeds} seeds, alpha <= {alphas[-1]:g})")
    log(f"    {'N':>6} {'rms dev (1 run)':>16} {'s.e.':>8} {'max dev (mean)':>15} {'s.e.':>8}")
    for n_a in Ns:  # (not the `N` override of (b)-(d))
        c = compare(prob, N=n_a, seeds=a_seeds, alphas=alphas, progress=progress)
        rms.append(c.rms_dev)
        rms_se.append(c.rms_dev_sem)
        mx.append(c.max_rel_dev)
        mx_se.append(c.max_rel_dev_sem)
        log(f"    {n_a:>6} {c.rms_dev:16.4e} {c.rms_dev_sem:8.1e} {c.max_rel_dev:15.4e} {c.max_rel_dev_sem:8.1e}")
    b, b_err = deviation_exponent(Ns, rms, rms_se)
    log(f"    fitted exponent of the single-run deviation: {b:.3f} +- {b_err:.3f} (theory: -1/2)")
    out["a_N"] = np.asarray(Ns)
    out["a_rms_dev"], out["a_rms_dev_sem"] = np.asarray(rms), np.asarray(rms_se)
    out["a_max_dev"], out["a_max_dev_sem"] = np.asarray(mx), np.asarray(mx_se)
    out["a_exponent"], out["a_exponent_err"] = b, b_err
    return out


def _claim_first_layer(quick: bool, progress: bool, log: Callable[[str], None], N: int | None,
                       seeds: int | None) -> dict[str, Any]:
    """Claim (b): first layer only, the final eps_g grows with the number L = K - M of extra student units;
    SGD, ODE fixed point and closed form (Goldt et al. 2019, Sec. 4) against L, with their slopes."""
    out: dict[str, Any] = {}
    log("(b) first layer only: final eps_g against L = K - M (M=2, eta=0.1, sigma=0.1, informed start)")
    spec2 = FIGURES["fig2"]
    res_b = []
    for run in spec2.runs:
        if run.problem.activation == "relu":
            continue
        if quick and run.problem.K - run.problem.M not in (0, 2):
            continue
        res_b.append(execute(run, quick=quick, progress=progress, fixed_point=True, rtol=1e-6,
                             N=N, seeds=seeds))
    data_b = sweep(res_b)
    out["b_N"], out["b_seeds"] = res_b[0].simulation.N, len(res_b[0].simulation.seeds)
    for act, d in data_b.items():
        log(f"    {act}: {'L':>3} {'SGD':>11} {'s.e.':>8} {'ODE':>11} {'fixed pt':>11} {'closed form':>11}")
        for i in range(len(d["L"])):
            log(f"    {'':{len(act)}}  {d['L'][i]:>3} {d['sgd'][i]:11.4e} {d['sgd_sem'][i]:8.1e} {d['ode'][i]:11.4e} "
                f"{d['fp'][i]:11.4e} {d['closed'][i]:11.4e}")
        p = res_b[0].problem
        lead = p.lr * p.sigma**2 / (2 * math.pi) if act == "erf" else p.lr * p.sigma**2 / 4
        for key in ("sgd", "fp", "closed"):
            y = d[key]
            ok = np.isfinite(y)
            slope = np.polyfit(d["L"][ok], y[ok], 1)[0] if ok.sum() >= 2 else float("nan")
            out[f"b_{act}_slope_{key}"] = slope
        name = "eta sigma^2/(2 pi)" if act == "erf" else "eta sigma^2/4 (small-eta slope of K eta sigma^2/(2(2-K eta)))"
        log(f"    {act}: slope per extra unit: SGD {out[f'b_{act}_slope_sgd']:.3e}, ODE fixed point "
            f"{out[f'b_{act}_slope_fp']:.3e}, closed form {out[f'b_{act}_slope_closed']:.3e}; "
            f"leading order {name} = {lead:.3e}")
        out[f"b_{act}_L"], out[f"b_{act}_sgd"], out[f"b_{act}_sgd_sem"] = d["L"], d["sgd"], d["sgd_sem"]
        out[f"b_{act}_fp"], out[f"b_{act}_closed"], out[f"b_{act}_ode"] = d["fp"], d["closed"], d["ode"]
        out[f"b_{act}_leading_slope"] = lead
    return out


def _claim_both_layers(quick: bool, progress: bool, log: Callable[[str], None], N: int | None,
                       seeds: int | None) -> tuple[dict[str, Any], list[RunResult]]:
    """Claim (c): both layers trained, the final eps_g against K (SGD and ODE) and its trend; returns the
    numbers and the runs (for claim (d))."""
    out: dict[str, Any] = {}
    log("(c) both layers: final eps_g against K (M=2, eta=0.2, sigma=0.1, large start, alpha=3000)")
    spec3 = FIGURES["fig3"]
    res_c = []
    for run in spec3.runs:
        if quick and run.problem.K not in (2, 4):
            continue
        res_c.append(execute(run, quick=quick, progress=progress, fixed_point=True, rtol=1e-6,
                             N=N, seeds=seeds))
    data_c = sweep(res_c)
    out["c_N"], out["c_seeds"] = res_c[0].simulation.N, len(res_c[0].simulation.seeds)
    for act, d in data_c.items():
        trend_sgd = trend(d["K"], d["sgd"], d["sgd_sem"])
        trend_ode = trend(d["K"], d["ode"], np.zeros_like(d["ode"]))
        log(f"    {act}: {'K':>3} {'SGD':>11} {'s.e.':>8} {'ODE':>11}   solution (SGD, seed 0)")
        for i in range(len(d["K"])):
            log(f"    {'':{len(act)}}  {d['K'][i]:>3} {d['sgd'][i]:11.4e} {d['sgd_sem'][i]:8.1e} {d['ode'][i]:11.4e}"
                f"   {d['kind'][i]}")
        log(f"    {act}: final eps_g with K -- SGD: {trend_sgd}; ODE: {trend_ode}")
        out[f"c_{act}_K"], out[f"c_{act}_sgd"], out[f"c_{act}_sgd_sem"] = d["K"], d["sgd"], d["sgd_sem"]
        out[f"c_{act}_ode"] = d["ode"]
        out[f"c_{act}_trend_sgd"], out[f"c_{act}_trend_ode"] = trend_sgd, trend_ode
    return out, res_c


def _claim_solutions(res_c: list[RunResult], log: Callable[[str], None]) -> list[str]:
    """Claim (d): the solution SGD finds in each run of (c) (final Q, R, v of seed 0, classified by
    :func:`classify_solution`), the ODE's from the same start beside it; one line per run."""
    sol_lines = []
    log("(d) the solutions SGD finds (final Q, R, v of seed 0; ODE from the same start beside it)")
    for r in res_c:
        sim = r.simulation
        sol = classify_solution(sim.Q[0, -1], sim.R[0, -1], sim.T[0], sim.v[0, -1], sim.v_teacher[0])
        line = f"    {r.run.label:10s} SGD: {sol['kind']}: {sol['detail']}"
        if r.ode_final and r.ode_final[0] is not None:
            o = r.ode_final[0]
            sol_o = classify_solution(o.Q, o.R, o.T, o.v, o.v_teacher)
            line += f"\n    {'':10s} ODE: {sol_o['kind']}"
        log(line)
        sol_lines.append(f"{r.run.label}: SGD {sol['kind']} ({sol['detail']})")
    return sol_lines


def _claims_dataset(out: dict[str, Any], sol_lines: list[str], quick: bool) -> xr.Dataset:
    """The claims' numbers as a Dataset: strings and scalars as attributes, arrays as variables."""
    ds = xr.Dataset(attrs={"paper": PAPER, "kind": "goldt2019.claims", "quick": int(quick),
                           "solutions": json.dumps(sol_lines)})
    for k, v in out.items():
        if isinstance(v, str):
            ds.attrs[k] = v
        elif np.ndim(v) == 0:
            ds.attrs[k] = float(v)
        else:
            ds[k] = ((f"{k}_index",), np.asarray(v))
    return ds
