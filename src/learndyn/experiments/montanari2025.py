r"""Montanari & Urbani (NeurIPS 2025, arXiv:2502.21269): figures and claims, DMFT beside finite networks.

Each figure is a short declaration -- the frozen :class:`learndyn.dmft.Problem` of each curve, the DMFT grid,
the simulation that gives the points, the panels -- executed by the shared runner
(:mod:`learndyn.experiments.runner`). Parameters follow the paper's figures; where the paper does not state
them (m values, horizons, grids) the values below are ours and are printed on the figure.

* ``fig2`` -- pure noise, mean-field init: ``a(t)/sqrt(m)`` and ``e_tr`` against ``t/m``; SGD on real networks.
* ``fig3`` -- single index, lazy init (``a0 = sqrt(m)``): train/test error against ``t m`` and ``t``;
  Gaussian-model GD points.
* ``fig4`` -- single index, mean-field init: ``a(t)/sqrt(m)``, train and test error, ``v``; SGD points.
* ``fig6``, ``fig7`` -- m = 4, non-symmetric initialisation (general DMFT) against Gaussian-model GD at the same step.
* ``threshold`` -- fixed ``a = 1`` (frozen second layer), pure noise, ``h = 0.3z + z^2/2``, ``tau = 1``:
  ``t_rel(abar) = inf{t: e_tr(t) < eps tau^2}``, the fit ``t_rel = c (abar_GF(m) - abar)^(-nu)`` (App. F.1.3 of the paper),
  and ``abar_GF(m)`` against ``1/m`` extrapolated to ``m -> infinity`` (paper: ``abar_GF(inf) ≈ 1.18``).

``claims()`` prints the claims of the paper's abstract as numbers, DMFT beside finite networks:
(i) the slow time scale ``t_slow(m)`` (``a/sqrt(m)`` reaches half its value at ``t_max = K m``) and its fitted
exponent in m; (ii) the inductive bias: final complexity from mean-field versus lazy initial complexity;
(iii) separation of time scales: the time where train and test error separate beside the end of feature
learning (the maximum of ``v``); (iv) the test-error minimum (time, value) and the final test error.
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

from .. import dmft
from ..dmft import gaussian_model, networks
from ..results import InvalidInputError, Status, atomic_write_netcdf
from . import canonical_figure, output_paths, runner

__all__ = ["FIGURES", "Run", "Sim", "Figure", "RunResult", "execute", "simulate", "run_figure", "claims", "t_rel",
           "fit_threshold", "first_crossing", "ClaimsRecipe",
           "NETWORK_GAP_NOTE"]

PAPER = "Montanari & Urbani, NeurIPS 2025 (arXiv:2502.21269)"

H_CUBIC = (0.0, 0.9, 0.0, 1.0 / 6.0)  # h = 0.9 z + z^3/6 (Figs 2, 4)
H_QUAD = (0.0, 0.9, 0.5)  # h = 0.9 z + z^2/2 (Fig 3)
H_THR = (0.0, 0.3, 0.5)  # h = 0.3 z + z^2/2 (Figs 32-33)
H_VAL = (0.0, 0.1, 0.5)  # h = z/10 + z^2/2 (Figs 6-7)


# ------------------------------------------------------------------------------------------
# recipes
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sim:
    """The simulation giving the points: ``"sgd"`` (real network, mini-batch ``batch``, learning rate ``lr``, so
    one step is ``dt = lr d/n`` of GF time), ``"gd"`` (real network, full batch, step = DMFT dt) or
    ``"gaussian"`` (Gaussian-model projected GD, step = DMFT dt)."""

    kind: str
    d: int
    seeds: int
    batch: int | None = None
    lr: float = 0.1
    points: int = 30


@dataclass(frozen=True)
class Run:
    """One run of a figure: a frozen :class:`learndyn.dmft.Problem`, the DMFT grid (``t_max``, ``dt``, the
    ``scheme`` of the symmetric solver) and the simulation ``sim`` that gives the points (None: DMFT only)."""

    label: str
    problem: dmft.Problem
    t_max: float
    dt: float
    scheme: str = "euler"
    sim: Sim | None = None

    def make_problem(self) -> dmft.Problem:
        """The run's Problem."""
        return self.problem


@dataclass(frozen=True)
class Figure(runner.Figure):
    """A figure of Montanari & Urbani 2025: its runs (``quick``: the CI-sized ones), the plot ``kind``
    (``"curves"``, ``"neurons"``, ``"threshold"``) and, for curves, the ``panels`` as (observable, time
    scaling) with scaling ``"t"``, ``"t*m"`` or ``"t/m"``."""

    quick: tuple
    panels: tuple = ()
    notes: str = ""

    def runs_for(self, quick: bool = False) -> tuple:
        """The runs to execute: the full-size ones or the CI-sized ``quick`` ones."""
        return self.quick if quick else self.runs


def _p(m, abar, tau, a0, h, target=None, train=True, **kw) -> dmft.Problem:
    return dmft.Problem(m=m, n_over_d=abar, tau=tau, a0=a0, h=h, target=target, train_second_layer=train, **kw)


def _mf_runs(ms, alpha, tau, target, t_factor, sim_d, seeds, batch, quick=False):
    out = []
    for m in ms:
        abar = alpha * m
        dt = 0.1 if quick else min(0.1, 0.25 / abar)
        out.append(Run(f"m={m}", _p(m, abar, tau, 1.0, H_CUBIC, target), t_max=t_factor * m, dt=dt, scheme="implicit",
                       sim=Sim("sgd", d=sim_d, seeds=seeds, batch=batch)))
    return tuple(out)


def _lazy_runs(ms, quick=False):
    out = []
    for m in ms:
        abar = 0.3 * m
        lam = abar * 0.9  # alpha a0^2 h'(0) with a0 = sqrt(m)
        dt = 0.1 / lam
        sim = Sim("gaussian", d=24 if quick else 40, seeds=8 if quick else 40, points=25)
        out.append(Run(f"m={m}", _p(m, abar, 0.3, math.sqrt(m), H_QUAD, "activation"), t_max=2.0 if quick else 6.0,
                       dt=dt, sim=sim if m <= 8 else None))
    return tuple(out)


_C0_FIG6 = ((1, 0, 1, 0), (0, 1, 0, 1), (1, 0, 1, 0), (0, 1, 0, 1))

FIGURES: dict[str, Figure] = {
    "fig2": Figure(
        "fig2", "pure noise, MF init: h = 0.9z + z^3/6, alpha = 0.4, tau = 0.6, a0 = 1; SGD (lr 0.1)", "curves",
        runs=_mf_runs((4, 8, 16), 0.4, 0.6, None, 6, 100, 6, 50),
        quick=_mf_runs((4, 8), 0.4, 0.6, None, 1, 40, 12, 16, quick=True),
        panels=(("gamma", "t/m"), ("train_error", "t/m"), ("train_error", "t")),
    ),
    "fig3": Figure(
        "fig3", "single index, lazy init a0 = sqrt(m): h = hatphi = 0.9z + z^2/2, alpha = 0.3, tau = 0.3; "
        "Gaussian-model GD", "curves",
        runs=_lazy_runs((4, 8, 16, 32)), quick=_lazy_runs((4, 8), quick=True),
        panels=(("errors", "t*m"), ("errors", "t")),
    ),
    "fig4": Figure(
        "fig4", "single index, MF init: h = hatphi = 0.9z + z^3/6, alpha = 0.3, tau = 0.3, a0 = 1; SGD (lr 0.1)",
        "curves",
        runs=_mf_runs((4, 8, 16), 0.3, 0.3, "activation", 6, 100, 6, 50),
        quick=_mf_runs((4, 8), 0.3, 0.3, "activation", 1, 40, 3, 16, quick=True),
        panels=(("gamma", "t/m"), ("errors", "t/m"), ("v", "t")),
    ),
    "fig6": Figure(
        "fig6", "m = 4, pure noise, tau = 1, h = z/10 + z^2/2, n/d = 1.5, a = (1,1,-1,-1), w1 = w3, w2 = w4; "
        "general DMFT vs Gaussian-model GD (eta = 0.1; paper: d = 100, 1e4 realisations)", "neurons",
        runs=(Run("setting 1", _p(4, 1.5, 1.0, (1.0, 1.0, -1.0, -1.0), H_VAL, C0=_C0_FIG6), t_max=10.0, dt=0.1,
                  sim=Sim("gaussian", d=60, seeds=300, points=26)),),
        quick=(Run("setting 1", _p(4, 1.5, 1.0, (1.0, 1.0, -1.0, -1.0), H_VAL, C0=_C0_FIG6), t_max=3.0, dt=0.1,
                   sim=Sim("gaussian", d=30, seeds=24, points=16)),),
    ),
    "fig7": Figure(
        "fig7", "m = 4, pure noise, tau = 1, h = z/10 + z^2/2, n/d = 1.5, a = (-1,-1/2,1/3,2/3), C(0,0) = I; "
        "general DMFT vs Gaussian-model GD (eta = 0.1; paper: d = 100, 1e4 realisations)", "neurons",
        runs=(Run("setting 2", _p(4, 1.5, 1.0, (-1.0, -0.5, 1 / 3, 2 / 3), H_VAL), t_max=10.0, dt=0.1,
                  sim=Sim("gaussian", d=60, seeds=300, points=26)),),
        quick=(Run("setting 2", _p(4, 1.5, 1.0, (-1.0, -0.5, 1 / 3, 2 / 3), H_VAL), t_max=3.0, dt=0.1,
                   sim=Sim("gaussian", d=30, seeds=24, points=16)),),
    ),
    "threshold": Figure(
        "threshold", "fixed a = 1, pure noise, tau = 1, h = 0.3z + z^2/2: t_rel(abar), abar_GF(m) "
        "(paper: abar_GF(inf) ≈ 1.18)", "threshold",
        runs=tuple(Run(f"m={m} abar={ab:g}", _p(m, ab, 1.0, 1.0, H_THR, train=False), t_max=150.0 * m, dt=1.0,
                       sim=Sim("gaussian", d=120, seeds=100, points=60) if (m, ab) == (2, 0.5) else None)
                   for m in (2, 4, 8) for ab in (0.5, 0.6, 0.7, 0.8)),
        quick=tuple(Run(f"m={m} abar={ab:g}", _p(m, ab, 1.0, 1.0, H_THR, train=False), t_max=60.0 * m, dt=1.0,
                        sim=Sim("gaussian", d=60, seeds=16, points=30) if (m, ab) == (2, 0.35) else None)
                    for m in (2, 4) for ab in (0.35, 0.45, 0.55)),
        notes="eps = 1e-7; DMFT on a coarse grid (dt = 1); t_rel fit with nu free and with nu = 2",
    ),
}


# ------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RunResult:
    """One executed :class:`Run`: the DMFT solution ``sol``, the simulation ``sim`` and the
    :class:`learndyn.dmft.Comparison` of the two, ``comparison`` (both None without a simulation)."""

    run: Run
    problem: dmft.Problem
    sol: Any
    sim: Any = None
    wall_dmft: float = 0.0
    wall_sim: float = 0.0
    comparison: dmft.Comparison | None = None

    def to_xarray(self) -> xr.Dataset:
        """DMFT curves over ``step`` (time ``t``; ``neuron`` for the general solver), the simulation over
        ``seed`` x ``sim_step`` (time ``sim_t``)."""
        sol = self.sol
        data = {"t": (("step",), np.asarray(sol.t, float)), "dmft_status": ((), str(sol.status))}
        for name in ("train_error", "test_error", "a", "v"):
            x = np.asarray(getattr(sol, name), float)
            data[f"dmft_{name}"] = (("step",) if x.ndim == 1 else ("step", "neuron"), x)
        if self.sim is not None:
            s = self.sim
            data["sim_t"] = (("sim_step",), np.asarray(s.t, float))
            for name in ("train_error", "test_error", "a", "v"):
                data[f"sim_{name}"] = (("seed", "sim_step"), np.asarray(s.values(name), float))
            data["sim_info"] = ((), json.dumps(dict(kind=s.kind, d=s.d, n=s.n, dt=s.dt, status=s.status)))
        coords = {d: np.arange(n) for d, n in xr.Dataset(data).sizes.items()}
        return xr.Dataset(data, coords=coords)

    def parameters(self) -> dict:
        """The run's parameters, as coordinates along the figure file's ``run`` dimension."""
        p = self.problem
        a0 = float(np.mean(np.asarray(p.a0, float))) if np.ndim(p.a0) == 0 else float("nan")
        return dict(m=int(p.m), n_over_d=float(p.n_over_d), tau=float(p.tau), a0=a0, dt=float(self.run.dt),
                    t_max=float(self.run.t_max))


def _solve(run: Run, progress: bool = False):
    """The DMFT of ``run``; ``progress``: a bar over its time steps. Ctrl-C returns the computed part (status
    "interrupted ...")."""
    prob = run.problem
    method = "auto" if prob.is_symmetric else "general"
    kw = {"scheme": run.scheme} if method == "auto" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dmft.StabilityWarning)  # the recipes' steps are chosen for accuracy
        return dmft.solve(prob, t_max=run.t_max, dt=run.dt, method=method, progress=progress, **kw)


def simulate(run: Run):
    """The simulation of ``run`` (see :class:`Sim`) over seeds ``0..sim.seeds-1``: Gaussian-model projected GD
    (:func:`learndyn.dmft.gaussian_model.simulate`) or a real two-layer network trained by GD / SGD
    (:func:`learndyn.dmft.networks.simulate`; one SGD step of learning rate ``lr`` is ``lr d/n`` of gradient-flow
    time, Montanari & Urbani 2025, App. I), recorded at about ``sim.points`` times."""
    s, prob = run.sim, run.problem
    if s.kind == "gaussian":
        every = max(1, int(round(run.t_max / run.dt / s.points)))
        return gaussian_model.simulate(prob, d=s.d, t_max=run.t_max, dt=run.dt, seeds=s.seeds, record_every=every)
    if s.kind == "gd":
        every = max(1, int(round(run.t_max / run.dt / s.points)))
        return networks.simulate(prob, d=s.d, t_max=run.t_max, dt=run.dt, seeds=s.seeds, record_every=every)
    if s.kind == "sgd":
        n = int(round(prob.n_over_d * s.d))
        batch = min(s.batch or n, n)
        dt = s.lr * s.d / n  # one SGD step of learning rate lr is lr d/n of the paper's gradient-flow time
        every = max(1, int(round(run.t_max / dt / s.points)))
        return networks.simulate(prob, d=s.d, t_max=run.t_max, dt=dt, seeds=s.seeds, batch=batch, record_every=every)
    raise InvalidInputError(f"sim.kind: must be 'sgd', 'gd' or 'gaussian', got {s.kind!r}")


def execute(run: Run, with_sim: bool = True, progress: bool = False) -> RunResult:
    """Solve the DMFT of ``run`` (``progress``: a bar over its time steps) and, unless it was interrupted, its
    simulation, and compare the two (:func:`learndyn.dmft.comparison_of`)."""
    prob = run.problem
    t0 = time.perf_counter()
    sol = _solve(run, progress=progress)
    t1 = time.perf_counter()
    interrupted = sol.status == Status.INTERRUPTED
    sim = simulate(run) if (with_sim and run.sim is not None and not interrupted) else None
    wall_sim = time.perf_counter() - t1
    comparison = dmft.comparison_of(prob, sol, sim) if sim is not None else None
    return RunResult(run, prob, sol, sim, t1 - t0, wall_sim, comparison)


def _obs(sol, name: str) -> np.ndarray:
    """A one-time observable of a DMFT solution; ``gamma = a/sqrt(m)``; neuron means for the general solver."""
    m = sol.problem.m
    if name == "gamma":
        return _obs(sol, "a") / math.sqrt(m)
    x = np.asarray(getattr(sol, name))
    return x.mean(-1) if x.ndim == 2 else x


def _sim_obs(sim, name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "gamma":
        m = sim.values("a_i").shape[-1]
        return sim.mean("a") / math.sqrt(m), sim.sem("a") / math.sqrt(m)
    return sim.mean(name), sim.sem(name)


# ------------------------------------------------------------------------------------------
# measurements on curves
# ------------------------------------------------------------------------------------------
def first_crossing(t: np.ndarray, y: np.ndarray, level: float, above: bool = True) -> float:
    """First time ``y`` reaches ``level`` (from below if ``above``), linearly interpolated; NaN if never."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    hit = (y >= level) if above else (y <= level)
    hit &= np.isfinite(y)
    if not hit.any():
        return float("nan")
    k = int(np.argmax(hit))
    if k == 0:
        return float(t[0])
    y0, y1 = y[k - 1], y[k]
    return float(t[k - 1] + (level - y0) / (y1 - y0) * (t[k] - t[k - 1])) if y1 != y0 else float(t[k])


def t_rel(t: np.ndarray, train_error: np.ndarray, tau: float, eps: float = 1e-7) -> float:
    """``t_rel = inf{t: e_tr(t) < eps tau^2}`` (Montanari & Urbani 2025, App. F.1.3), log-interpolated; NaN if not
    reached."""
    le = np.log(np.clip(np.asarray(train_error, float), 1e-300, None))
    return first_crossing(t, le, math.log(eps * tau**2), above=False)


def fit_threshold(abar: np.ndarray, trel: np.ndarray, nu: float | None = None) -> dict:
    """Fit ``t_rel = c (abar_GF - abar)^(-nu)`` (Montanari & Urbani 2025, App. F.1.3): for ``nu`` fixed, ``t_rel^(-1/nu)`` is linear in
    ``abar`` and vanishes at ``abar_GF``; for ``nu=None``, ``nu`` is scanned to minimise the log-residual."""
    abar, trel = np.asarray(abar, float), np.asarray(trel, float)
    ok = np.isfinite(trel) & (trel > 0)
    abar, trel = abar[ok], trel[ok]
    if abar.size < 2 or np.ptp(abar) == 0:
        return dict(abar_gf=float("nan"), nu=float("nan"), c=float("nan"), rms=float("nan"))

    def fit(nu_):
        y = trel ** (-1.0 / nu_)
        slope, icpt = np.polyfit(abar, y, 1)
        if slope >= 0:
            return None
        ag = -icpt / slope
        c = (-slope) ** (-nu_)
        pred = c * np.clip(ag - abar, 1e-300, None) ** (-nu_)
        return dict(abar_gf=float(ag), nu=float(nu_), c=float(c), rms=float(np.sqrt(np.mean(np.log(pred / trel) ** 2))))

    if nu is not None:
        return fit(nu) or dict(abar_gf=float("nan"), nu=float(nu), c=float("nan"), rms=float("nan"))
    if abar.size < 3:
        return fit(2.0) or dict(abar_gf=float("nan"), nu=float("nan"), c=float("nan"), rms=float("nan"))
    best = None
    for nu_ in np.linspace(0.5, 4.0, 71):
        r = fit(nu_)
        if r is not None and (best is None or r["rms"] < best["rms"]):
            best = r
    return best or dict(abar_gf=float("nan"), nu=float("nan"), c=float("nan"), rms=float("nan"))


# ------------------------------------------------------------------------------------------
# real networks beside the Gaussian-model DMFT
# ------------------------------------------------------------------------------------------
NETWORK_GAP_NOTE = (
    "real networks are not the Gaussian model: the DMFT is exact for the Gaussian model and, for a non-linear "
    "activation, for real networks only as m -> infinity. Measured (learndyn.dmft.gap_vs_d: full-batch GD, h = "
    "0.9z + z^3/6, alpha = 0.4, tau = 0.6, a0 = 1, gap = e_tr(network) - e_tr(DMFT) at t = m): m = 4: gap = "
    "0.024 +- 0.001 + (0.19 +- 0.07)/d over d = 25..400 (chi2 = 1.0 for 3 dof; it does NOT vanish as d grows), "
    "i.e. 40 % of e_tr = 0.060; m = 8: 0.006-0.010 (d = 50..200); m = 16: -0.004 +- 0.0014 (d = 100). Same d "
    "and seeds: Gaussian-model GD and a linear activation agree with the DMFT within 1.5 s.e. SGD (lr 0.1, "
    "batch 16) adds about 0.015 at m = 4."
)


def _nonlinear(problem: dmft.Problem) -> bool:
    return bool(np.any(problem.h_coeffs[2:] != 0))


# ------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------
_XLABEL = {"t": "t", "t*m": "t m", "t/m": "t / m"}
_YLABEL = {"gamma": r"$a(t)/\sqrt{m}$", "train_error": r"$e_{tr}$", "test_error": r"$e_{ts}$", "v": "v(t)",
           "errors": r"$e_{tr}$ (solid, ●), $e_{ts}$ (dashed, ▲)", "a": "a(t)"}


def _xs(t, scaling, m):
    return {"t": t, "t*m": t * m, "t/m": t / m}[scaling]


def _plot_curves(spec: Figure, results: list[RunResult], path: Path) -> Path:
    from ..plotting import SIM_STYLE, THEORY_STYLE, figure, save_figure

    fig, axes = figure(1, len(spec.panels), width=4.3)
    axes = np.atleast_1d(axes)
    colors = [f"C{i}" for i in range(len(results))]
    for ax, (obs, scaling) in zip(axes, spec.panels):
        names = ("train_error", "test_error") if obs == "errors" else (obs,)
        for r, col in zip(results, colors):
            m = r.problem.m
            for j, name in enumerate(names):
                ls = "-" if j == 0 else "--"
                ax.plot(_xs(r.sol.t, scaling, m), _obs(r.sol, name), ls, color=col,
                        label=f"{r.run.label} DMFT" if j == 0 else None, **THEORY_STYLE)
                if r.sim is not None:
                    mu, se = _sim_obs(r.sim, name)
                    style = dict(SIM_STYLE, fmt="o" if j == 0 else "^")
                    ax.errorbar(_xs(r.sim.t, scaling, m), mu, yerr=se, color=col, mfc="white" if j else col, **style)
        if obs in ("train_error", "errors") and scaling != "t*m":
            ax.set_yscale("log")
        if scaling == "t" and spec.name == "fig2":
            ax.set_xscale("log")
        if scaling == "t*m":  # the first (t = O(1/m)) regime: up to the shortest horizon
            ax.set_xlim(0, min(r.sol.t[-1] * r.problem.m for r in results))
        ax.set_xlabel(_XLABEL[scaling])
        ax.set_ylabel(_YLABEL.get(obs, obs))
    kinds = {r.sim.kind for r in results if r.sim is not None}
    axes[0].legend(fontsize=7, title=f"lines: DMFT; points: {', '.join(sorted(kinds)) or 'none'}", title_fontsize=7)
    note = ""
    if any(r.sim is not None and r.sim.kind.startswith("network") and _nonlinear(r.problem) for r in results):
        import textwrap

        note = "\n" + "\n".join(textwrap.wrap("Note: " + NETWORK_GAP_NOTE, 200))
    fig.suptitle(f"Montanari & Urbani Fig. {spec.name.removeprefix('fig')}: {spec.title}{note}", fontsize=8 if not note else 6.5)
    return save_figure(fig, path)


def _plot_neurons(spec: Figure, results: list[RunResult], path: Path) -> Path:
    from ..plotting import SIM_STYLE, THEORY_STYLE, figure, save_figure

    r = results[0]
    sol, sim, m = r.sol, r.sim, r.problem.m
    fig, axes = figure(1, 3, width=4.0)
    for j, name in enumerate(("train_error", "test_error")):
        axes[0].plot(sol.t, sol.train_error if j == 0 else sol.test_error, "-" if j == 0 else "--", color=f"C{j}",
                     label=f"{name} DMFT", **THEORY_STYLE)
        if sim is not None:
            axes[0].errorbar(sim.t, sim.mean(name), yerr=sim.sem(name), color=f"C{j}", label=f"{name} GD",
                             **SIM_STYLE)
    axes[0].set_ylabel("error")
    for i in range(m):
        axes[1].plot(sol.t, sol.a[:, i], color=f"C{i}", label=f"$a_{i + 1}$", **THEORY_STYLE)
        if sim is not None:
            axes[1].errorbar(sim.t, sim.mean("a_i")[:, i], yerr=sim.sem("a_i")[:, i], color=f"C{i}", **SIM_STYLE)
    axes[1].set_ylabel("a_i(t)")
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2)][: max(1, m * (m - 1) // 2)]
    Ctt = np.einsum("ttij->tij", sol.C)
    for k, (i, j) in enumerate(pairs):
        axes[2].plot(sol.t, Ctt[:, i, j], color=f"C{k}", label=f"$C_{{{i + 1}{j + 1}}}(t,t)$", **THEORY_STYLE)
        if sim is not None and "C" in sim.data:
            axes[2].errorbar(sim.t, sim.mean("C")[:, i, j], yerr=sim.sem("C")[:, i, j], color=f"C{k}", **SIM_STYLE)
    axes[2].set_ylabel("equal-time overlaps")
    for ax in axes:
        ax.set_xlabel("t")
        ax.legend(fontsize=7)
    sims = f"Gaussian-model GD, d = {sim.d}, n = {sim.n}, {sim.n_seeds} seeds" if sim is not None else ""
    fig.suptitle(f"Fig. {spec.name.removeprefix('fig')}: {spec.title}\nlines: DMFT (dt = {r.run.dt:g}); "
                 f"points: {sims}", fontsize=8)
    return save_figure(fig, path)


def _threshold_table(results: list[RunResult]) -> dict:
    rows: dict[int, list] = {}
    for r in results:
        rows.setdefault(r.problem.m, []).append((r.problem.n_over_d, t_rel(r.sol.t, r.sol.train_error, r.problem.tau)))
    out = {}
    for m, lst in sorted(rows.items()):
        ab, tr = np.array(lst).T
        out[m] = dict(abar=ab, t_rel=tr, fit=fit_threshold(ab, tr), fit2=fit_threshold(ab, tr, nu=2.0))
    ms = np.array(sorted(out))
    ag = np.array([out[m]["fit2"]["abar_gf"] for m in ms])
    ok = np.isfinite(ag)
    extrap = float(np.polyfit(1.0 / ms[ok], ag[ok], 1)[1]) if ok.sum() >= 2 else float("nan")
    return dict(per_m=out, ms=ms, abar_gf=ag, abar_gf_inf=extrap)


def _plot_threshold(spec: Figure, results: list[RunResult], path: Path, table: dict) -> Path:
    from ..plotting import THEORY_STYLE, figure, save_figure

    fig, axes = figure(1, 3, width=4.0)
    ms = sorted({r.problem.m for r in results})
    for r in results:
        k = ms.index(r.problem.m)
        axes[0].semilogy(r.sol.t / r.problem.m, np.clip(r.sol.train_error, 1e-12, None), color=f"C{k}", lw=1.0,
                         alpha=0.4 + 0.6 * (r.problem.n_over_d / max(x.problem.n_over_d for x in results)))
        if r.sim is not None:
            mu_, se_ = r.sim.mean("train_error"), r.sim.sem("train_error")
            ok = mu_ > 1e-12
            axes[0].errorbar(r.sim.t[ok] / r.problem.m, mu_[ok], yerr=se_[ok], color=f"C{k}", ms=3, fmt="o",
                             capsize=2, label=f"GD, Gaussian model, d={r.sim.d} ({r.run.label})")
    axes[0].axhline(1e-7, color="k", lw=0.8, ls=":")
    if any(r.sim is not None for r in results):
        axes[0].legend(fontsize=6)
    axes[0].set_xlabel("t / m")
    axes[0].set_ylabel(r"$e_{tr}$ (colour: m; darker: larger $\bar\alpha$)")
    for k, m in enumerate(ms):
        d = table["per_m"][m]
        ok = np.isfinite(d["t_rel"])
        axes[1].plot(d["abar"][ok], d["t_rel"][ok] / m, "o", color=f"C{k}", label=f"m={m}")
        f = d["fit2"]
        if np.isfinite(f["abar_gf"]):
            x = np.linspace(d["abar"].min(), min(d["abar"].max() * 1.02, f["abar_gf"] - 1e-3), 50)
            axes[1].plot(x, f["c"] * (f["abar_gf"] - x) ** (-2.0) / m, color=f"C{k}", **THEORY_STYLE)
    axes[1].set_yscale("log")
    axes[1].set_xlabel(r"$\bar\alpha = n/d$")
    axes[1].set_ylabel(r"$t_{rel}/m$; lines: $c(\bar\alpha_{GF}-\bar\alpha)^{-2}$")
    axes[1].legend(fontsize=7)
    ag, msa = table["abar_gf"], table["ms"]
    axes[2].plot(1.0 / msa, ag, "o", label=r"fit, $\nu = 2$")
    if np.isfinite(table["abar_gf_inf"]):
        x = np.linspace(0, 1.0 / msa.min(), 20)
        ok = np.isfinite(ag)
        p = np.polyfit(1.0 / msa[ok], ag[ok], 1)
        axes[2].plot(x, np.polyval(p, x), "-", label=f"extrapolation: {table['abar_gf_inf']:.3f}")
    axes[2].axhline(1.18, color="k", ls=":", lw=0.8, label="paper: 1.18")
    axes[2].set_xlabel("1/m")
    axes[2].set_ylabel(r"$\bar\alpha_{GF}(m)$")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"Figs 32-33: {spec.title}", fontsize=8)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------
# figure driver
# ------------------------------------------------------------------------------------------
def _report(run: Run, r: RunResult) -> str:
    """One line per run: the DMFT, and beside it the simulation with the largest z-score of the train error
    (:meth:`learndyn.dmft.Comparison.z`, standard error pooled over times) and, for a real network with a
    non-linear ``h``, the final train errors and their gap."""
    msg = f"  {run.label:18s} DMFT: {len(r.sol.t)} steps (dt={run.dt:.3g}, {run.scheme}) {r.wall_dmft:.1f}s, " \
          f"status {r.sol.status}"
    c = r.comparison
    if c is not None:
        msg += f"; {r.sim.kind} d={r.sim.d} x{r.sim.n_seeds} {r.wall_sim:.1f}s, max |sim - DMFT|/s.e. " \
               f"(e_tr; s.e. pooled over times) = {c.z_max('train_error'):.1f}"
        if r.sim.kind.startswith("network") and _nonlinear(r.problem):
            gap, se_ = c.final_gap("train_error")  # at the last time the DMFT reached
            k = np.flatnonzero(np.isfinite(c.gap("train_error")))[-1]
            mu_, tr = c.mean("train_error")[k], c.dmft_at("train_error")[k]
            msg += f"; e_tr(t_max): network {mu_:.4g} ± {se_:.2g} vs DMFT {tr:.4g} (gap {gap:+.3g})"
    return msg


def _interrupted(r: RunResult) -> str | None:
    if r.sol.status == Status.INTERRUPTED:
        return "  interrupted: the figure shows the runs computed so far"
    return None


def _with_runs(ds: xr.Dataset, results: list[RunResult]) -> xr.Dataset:
    return ds.assign_attrs(runs=json.dumps([asdict(r.run) for r in results], default=str))


def _threshold(results: list[RunResult], ds: xr.Dataset, log: Callable[[str], None] | None) -> tuple[xr.Dataset, dict]:
    """The threshold figure's fits (App. F.1.3 of the paper): per m, t_rel against abar with ``nu`` free and
    ``nu = 2``; ``abar_GF(m -> inf)`` by linear extrapolation in 1/m. Printed, and added to the Dataset."""
    table = _threshold_table(results)
    for m, d in table["per_m"].items():
        f, f2 = d["fit"], d["fit2"]
        log(f"  m={m}: t_rel = {np.array2string(d['t_rel'], precision=1)} at abar = {d['abar']}; "
            f"fit nu free: abar_GF = {f['abar_gf']:.3f}, nu = {f['nu']:.2f}; nu = 2: abar_GF = {f2['abar_gf']:.3f}")
    log(f"  abar_GF(m -> inf) by linear extrapolation in 1/m: {table['abar_gf_inf']:.3f} (paper: ≈ 1.18)")
    ds = ds.assign_coords(threshold_m=("threshold_m", np.asarray(table["ms"])))
    ds["threshold_abar_gf"] = (("threshold_m",), table["abar_gf"])
    ds.attrs["abar_gf_inf"] = table["abar_gf_inf"]
    return ds, table


def run_figure(name: str, out_dir: str | Path = "results/montanari2025", quick: bool = False,
               log: Callable[[str], None] = print, progress: bool = False) -> tuple[Path, Path, list[RunResult]]:
    """Run figure ``name`` (``fig2, fig3, fig4, fig6, fig7, threshold``; ``2`` .. ``7`` also accepted); write
    ``<out_dir>/montanari2025_<name>.png`` and ``.nc`` (the runs along ``run``, see :func:`_dataset`).
    ``progress``: a bar over the runs."""
    name = canonical_figure(name, FIGURES)
    spec = FIGURES[name]
    table: dict = {}

    def finish(results, ds):
        if any(r.sim is not None and r.sim.kind.startswith("network") and _nonlinear(r.problem) for r in results):
            log("  note: " + NETWORK_GAP_NOTE)
        ds = _with_runs(ds.assign_attrs(quick=int(quick)), results)
        if spec.kind == "threshold":
            ds, t = _threshold(results, ds, log)
            table.update(t)
        return ds

    def plot(results, ds, path):
        if spec.kind == "curves":
            return _plot_curves(spec, results, path)
        if spec.kind == "neurons":
            return _plot_neurons(spec, results, path)
        return _plot_threshold(spec, results, path, table)

    out = runner.run_figure("montanari2025", spec, out_dir, runs=spec.runs_for(quick),
                            execute=lambda run: execute(run, progress=progress), report=_report, stop=_interrupted,
                            parameters=RunResult.parameters, finish=finish, plot=plot, attrs={"paper": PAPER},
                            progress=progress, log=log)
    return out.png, out.nc, out.results


# ------------------------------------------------------------------------------------------
# claims
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimsRecipe:
    """Single index, h = hatphi = 0.9z + z^3/6, alpha = 0.3, tau = 0.3 (Fig 4 setting): mean-field runs
    (``a0 = 1``) to ``t_max = K m``, lazy runs (``a0 = gamma0 sqrt(m)``) to ``t_max = K_lazy m``; SGD points."""

    ms: tuple = (4, 8, 16)
    K: float = 6.0
    K_lazy: float = 2.0
    gamma0_lazy: float = 2.0
    d: int = 100
    seeds: int = 6
    batch: int = 50
    fraction: float = 0.5  # (i): gamma reaches this fraction of its total change
    gap: float = 0.5  # (iii): (e_ts - e_tr)/e_ts exceeds this (train error below half the test error)


CLAIMS = ClaimsRecipe()
CLAIMS_QUICK = ClaimsRecipe(ms=(4, 8), K=1.5, K_lazy=0.5, d=30, seeds=3, batch=16)


def _claim_runs(c: ClaimsRecipe):
    mf, lazy = [], []
    for m in c.ms:
        abar = 0.3 * m
        sim = Sim("sgd", d=c.d, seeds=c.seeds, batch=c.batch, points=40)
        mf.append(Run(f"MF m={m}", _p(m, abar, 0.3, 1.0, H_CUBIC, "activation"), t_max=c.K * m,
                      dt=min(0.1, 0.25 / abar), scheme="implicit", sim=sim))
        lam = abar * c.gamma0_lazy**2 * 0.9
        # SGD at lr 0.1 / gamma0^2: the lazy network's stiff mode relaxes gamma0^2 times faster
        lazy.append(Run(f"lazy m={m}", _p(m, abar, 0.3, c.gamma0_lazy * math.sqrt(m), H_CUBIC, "activation"),
                        t_max=c.K_lazy * m, dt=0.2 / lam, sim=replace(sim, lr=0.1 / c.gamma0_lazy**2)))
    return mf, lazy


def _measures(t, gamma, e_tr, e_ts, v, c: ClaimsRecipe) -> dict:
    g0, g1 = gamma[0], gamma[-1]
    t_slow = first_crossing(t, (gamma - g0) * np.sign(g1 - g0), c.fraction * abs(g1 - g0))
    rel_gap = (e_ts - e_tr) / np.maximum(e_ts, 1e-300)
    k_min = int(np.nanargmin(e_ts))
    return dict(t_slow=t_slow, gamma_final=float(g1), t_sep=first_crossing(t, rel_gap, c.gap),
                t_feat=float(t[int(np.nanargmax(v))]), v_max=float(np.nanmax(v)), v_final=float(v[-1]),
                t_min=float(t[k_min]),
                e_ts_min=float(e_ts[k_min]), e_ts_final=float(e_ts[-1]), e_tr_final=float(e_tr[-1]))


def _sim_measures(sim, c: ClaimsRecipe) -> dict[str, tuple[float, float]]:
    """Per-seed measures, then mean and standard error over seeds."""
    m = sim.values("a_i").shape[-1]
    rows = []
    for s in range(sim.n_seeds):
        rows.append(_measures(sim.t, sim.values("a")[s] / math.sqrt(m), sim.values("train_error")[s],
                              sim.values("test_error")[s], sim.values("v")[s], c))
    out = {}
    for k in rows[0]:
        x = np.array([r[k] for r in rows], float)
        ok = np.isfinite(x)
        out[k] = (float(np.mean(x[ok])) if ok.any() else float("nan"),
                  float(np.std(x[ok], ddof=1) / math.sqrt(ok.sum())) if ok.sum() > 1 else float("nan"))
    return out


def _exponent(ms, y) -> float:
    ms, y = np.asarray(ms, float), np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0)
    return float(np.polyfit(np.log(ms[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")


def claims(quick: bool = False, out_dir: str | Path = "results/montanari2025",
           log: Callable[[str], None] = print, progress: bool = False) -> xr.Dataset:
    """The abstract's claims as numbers, DMFT beside SGD on finite networks; writes ``montanari2025_claims.nc``."""
    c = CLAIMS_QUICK if quick else CLAIMS
    mf, lazy = _claim_runs(c)

    def report(run: Run, r: RunResult) -> str:
        s = r.sol
        mean_field = any(run is x for x in mf)
        sim = f"SGD d={r.sim.d} x{r.sim.n_seeds} {r.wall_sim:.1f}s" if mean_field else f"SGD {r.wall_sim:.1f}s"
        return f"  {run.label}: DMFT {len(s.t)} steps {r.wall_dmft:.1f}s ({s.status}); {sim}"

    done = runner.execute_runs(mf + lazy, lambda run: execute(run, progress=progress), desc="montanari2025 claims",
                               progress=progress, log=log, report=report)
    th = [_measures(r.sol.t, _obs(r.sol, "gamma"), r.sol.train_error, r.sol.test_error, _obs(r.sol, "v"), c)
          for r in done]
    sm = [_sim_measures(r.sim, c) for r in done]
    th, th_l, sm, sm_l = th[: len(mf)], th[len(mf):], sm[: len(mf)], sm[len(mf):]

    def fmt(x):
        return f"{x:9.4g}"

    def pm(x):
        return f"{x[0]:9.4g} ± {x[1]:<8.2g}"

    ms = list(c.ms)
    log(f"\nMontanari & Urbani claims -- single index, h = hatphi = 0.9z + z^3/6, alpha = 0.3, tau = 0.3; "
        f"SGD: d = {c.d}, {c.seeds} seeds, batch {c.batch}, lr 0.1 (t = steps lr d/n)")
    log(f"(i) slow time scale: t_slow = time where a/sqrt(m) has made {c.fraction:g} of its change by t_max = {c.K:g} m")
    log(f"    {'m':>4} {'DMFT t_slow':>12} {'SGD t_slow':>22} {'DMFT t_slow/m':>14}")
    for m, a, b in zip(ms, th, sm):
        log(f"    {m:>4} {fmt(a['t_slow']):>12} {pm(b['t_slow']):>22} {fmt(a['t_slow'] / m):>14}")
    ex_th = _exponent(ms, [a["t_slow"] for a in th])
    ex_sm = _exponent(ms, [b["t_slow"][0] for b in sm])
    log(f"    fitted exponent t_slow ~ m^b: DMFT b = {ex_th:.3f}, SGD b = {ex_sm:.3f} (paper: slow scale ~ m, b ≈ 1)")
    if len(ms) > 2:
        log(f"    from the two largest m only: DMFT b = {_exponent(ms[-2:], [a['t_slow'] for a in th[-2:]]):.3f}, SGD b = "
            f"{_exponent(ms[-2:], [b['t_slow'][0] for b in sm[-2:]]):.3f}")
    log(f"(ii) inductive bias: final complexity a/sqrt(m) from MF init (a0 = 1, t = {c.K:g} m) and lazy init "
        f"(a0 = {c.gamma0_lazy:g} sqrt(m), t = {c.K_lazy:g} m)")
    log(f"    {'m':>4} {'MF DMFT':>9} {'MF SGD':>20} {'lazy DMFT':>10} {'lazy SGD':>20}")
    for m, a, b, al, bl in zip(ms, th, sm, th_l, sm_l):
        log(f"    {m:>4} {fmt(a['gamma_final'])} {pm(b['gamma_final'])} {fmt(al['gamma_final']):>10} {pm(bl['gamma_final'])}")
    log("    (small initial complexity stays small; large initial complexity is kept: the bias depends on the init)")
    log(f"(iii) separation of time scales: t_sep = first t with (e_ts - e_tr)/e_ts > {c.gap:g}; end of feature "
        "learning t_feat = argmax v(t)")
    log(f"    {'m':>4} {'DMFT t_feat':>11} {'SGD t_feat':>20} {'DMFT t_sep':>11} {'SGD t_sep':>20}")
    for m, a, b in zip(ms, th, sm):
        log(f"    {m:>4} {fmt(a['t_feat']):>11} {pm(b['t_feat'])} {fmt(a['t_sep']):>11} {pm(b['t_sep'])}")
    log(f"    exponents in m: t_sep DMFT {_exponent(ms, [a['t_sep'] for a in th]):.3f}, SGD "
        f"{_exponent(ms, [b['t_sep'][0] for b in sm]):.3f}; t_feat DMFT {_exponent(ms, [a['t_feat'] for a in th]):.3f}")
    log("(iv) non-monotone test error / feature unlearning: minimum of e_ts (time, value) and final e_ts; "
        f"Bayes error tau^2/2 = {0.3**2 / 2:.4g}")
    log(f"    {'m':>4} {'DMFT t_min':>10} {'DMFT min':>9} {'DMFT final':>10} {'SGD t_min':>20} {'SGD min':>20} "
        f"{'SGD final':>20} {'DMFT v_max':>10} {'DMFT v_final':>12}")
    for m, a, b, run in zip(ms, th, sm, mf):
        log(f"    {m:>4} {fmt(a['t_min']):>10} {fmt(a['e_ts_min'])} {fmt(a['e_ts_final']):>10} {pm(b['t_min'])} "
            f"{pm(b['e_ts_min'])} {pm(b['e_ts_final'])} {fmt(a['v_max']):>10} {fmt(a['v_final']):>12}")
    ds = xr.Dataset(coords={"m": np.asarray(ms)}, attrs={"paper": PAPER, "kind": "montanari2025.claims",
                                                          "quick": int(quick), "recipe": json.dumps(asdict(c)),
                                                          "t_slow_exponent_dmft": ex_th, "t_slow_exponent_sgd": ex_sm})
    for key in th[0]:
        ds[f"mf_dmft_{key}"] = (("m",), np.array([a[key] for a in th]))
        ds[f"mf_sgd_{key}"] = (("m",), np.array([b[key][0] for b in sm]))
        ds[f"mf_sgd_{key}_sem"] = (("m",), np.array([b[key][1] for b in sm]))
        ds[f"lazy_dmft_{key}"] = (("m",), np.array([a[key] for a in th_l]))
        ds[f"lazy_sgd_{key}"] = (("m",), np.array([b[key][0] for b in sm_l]))
    atomic_write_netcdf(ds, output_paths("montanari2025", "claims", out_dir)[1])
    return ds
