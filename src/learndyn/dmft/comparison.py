r"""The DMFT beside a simulation of the same :class:`~learndyn.dmft.Problem` (Montanari & Urbani 2025).

:func:`compare` solves the DMFT (:func:`learndyn.dmft.solve`) and runs a simulation over seeds (projected GD on
the Gaussian model, for which the DMFT is exact as ``n, d -> infinity``, App. D.4; or real networks, GD/SGD,
App. I), and returns a :class:`Comparison`: at each recorded time ``t_k`` of the simulation and for each
observable (``train_error``, ``test_error``, ``a``),

* the DMFT curve at ``t_k`` (linear interpolation on its grid; neuron mean for the general solver),
* the seed mean of the simulation and its standard error (per time, ``sd/sqrt(S)``),
* the pooled standard error (:func:`pooled_sem`: the relative seed spread pooled over all times),
* the gap ``mean - DMFT`` and the z-score ``|gap| / pooled s.e.`` (``z_max``: its maximum over times > 0).

For the Gaussian model (and for a linear activation, where the real network *is* the Gaussian model) the gaps
are finite-``d`` effects, O(1/d) plus statistical noise; for a non-linear activation the real network differs
from the DMFT by an O(1) amount at finite m (:func:`gap_vs_d` separates the two by fitting ``gap_inf + c/d``).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import xarray as xr

from ..results import InvalidInputError, Result, ResultFormatError, Status, problem_attrs
from ._common import check_problem, check_seeds, check_size, status_from_text
from .problem import Problem
from .simulation import Simulation

__all__ = ["Comparison", "compare", "comparison_of", "pooled_sem", "gap_vs_d", "OBSERVABLES"]

#: the one-time observables compared
OBSERVABLES = ("train_error", "test_error", "a")


def pooled_sem(x: np.ndarray) -> np.ndarray:
    """Standard error of the seed mean of ``x`` (seeds, times) from the relative seed spread pooled over all
    times, ``rms_t(sd(t)/|mean(t)|) |mean(t)|/sqrt(S)``: with a few seeds the per-time standard error is itself very
    uncertain (3 seeds once gave 0.0009 at one time against ~0.04 at the others, hence a spurious z of 143)."""
    x = np.asarray(x, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.abs(np.nanmean(x, axis=0))
        R = np.sum(np.isfinite(x), axis=0)
        rel = np.sqrt(np.nanmean((np.nanstd(x, axis=0, ddof=1) / np.maximum(mu, 1e-300)) ** 2))
        return np.maximum(rel * mu / np.sqrt(np.maximum(R, 1)), 1e-300)


def _one_time(sol: Any, name: str) -> np.ndarray:
    x = np.asarray(getattr(sol, name), dtype=np.float64)
    return x.mean(-1) if x.ndim == 2 else x  # general solver: per-neuron values -> neuron mean


@dataclass(frozen=True, eq=False)
class Comparison(Result):
    """DMFT against a simulation over seeds: the DMFT one-time curves (``dmft_t``, ``dmft``), the simulation, and
    per recorded time ``t`` and observable the DMFT value, the seed mean, its standard errors, gap and z-score.

    ``status`` is ``SUCCESS`` when both the DMFT and the simulation finished, else the first failure's status
    with its ``message`` (the statistics then cover the times both reached).
    """

    problem: Problem
    kind: str
    dmft_t: np.ndarray
    dmft: dict
    simulation: Simulation
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.of(self.status))

    # -- per-time values -------------------------------------------------------------------------
    @property
    def t(self) -> np.ndarray:
        """The simulation's recorded times."""
        return self.simulation.t

    @property
    def n_seeds(self) -> int:
        """Number of seeds of the simulation."""
        return self.simulation.n_seeds

    def dmft_at(self, name: str = "train_error") -> np.ndarray:
        """The DMFT curve of ``name`` at the recorded times (NaN past the last DMFT time)."""
        x = self.dmft[name]
        if self.dmft_t.size == 0:
            return np.full(self.t.shape, np.nan)
        out = np.interp(self.t, self.dmft_t, x)
        out[self.t > self.dmft_t[-1] * (1 + 1e-12)] = np.nan
        return out

    def mean(self, name: str = "train_error") -> np.ndarray:
        """Seed mean of the simulation."""
        return self.simulation.mean(name)

    def sem(self, name: str = "train_error") -> np.ndarray:
        """Standard error of the seed mean, per time."""
        return self.simulation.sem(name)

    def pooled_sem(self, name: str = "train_error") -> np.ndarray:
        """Standard error of the seed mean from the seed spread pooled over times (:func:`pooled_sem`)."""
        return pooled_sem(self.simulation.values(name))

    def gap(self, name: str = "train_error") -> np.ndarray:
        """``mean - DMFT`` per recorded time."""
        return self.mean(name) - self.dmft_at(name)

    def z(self, name: str = "train_error") -> np.ndarray:
        """``|mean - DMFT| / pooled s.e.`` per recorded time."""
        return np.abs(self.gap(name)) / self.pooled_sem(name)

    def z_max(self, name: str = "train_error") -> float:
        """Largest z-score over the recorded times ``t > 0`` (NaN if none): O(1-3) for purely statistical gaps."""
        z = self.z(name)
        use = (self.t > 0) & np.isfinite(z)
        return float(np.max(z[use])) if use.any() else float("nan")

    def final_gap(self, name: str = "train_error") -> tuple[float, float]:
        """``(mean - DMFT, per-time standard error)`` at the last recorded time the DMFT reached."""
        gap, se = self.gap(name), self.sem(name)
        ok = np.flatnonzero(np.isfinite(gap))
        if ok.size == 0:
            return float("nan"), float("nan")
        return float(gap[ok[-1]]), float(se[ok[-1]])

    def summary(self) -> str:
        """A few lines: problem, simulation, z_max and the final gap of each error."""
        p, s = self.problem, self.simulation
        lines = [f"DMFT vs {s.kind}: m={p.m}, n/d={p.n_over_d:g}, tau={p.tau:g}, {p.label}, d={s.d}, "
                 f"{s.n_seeds} seeds, status {self.status}" + (f" ({self.message})" if self.message else "")]
        for name in ("train_error", "test_error"):
            g, se = self.final_gap(name)
            lines.append(f"  {name}: max |sim - DMFT|/s.e. (pooled) = {self.z_max(name):.2f}; at t = "
                         f"{self.t[np.isfinite(self.gap(name))][-1] if np.isfinite(g) else float('nan'):.4g}: "
                         f"gap {g:+.3g} +- {se:.2g}")
        return "\n".join(lines)

    # -- storage ----------------------------------------------------------------------------------
    def to_xarray(self) -> xr.Dataset:
        """Per observable over ``time``: ``dmft_<name>``, ``mean_<name>``, ``sem_<name>``, ``pooled_sem_<name>``,
        ``z_<name>``; the DMFT curves over ``dmft_time``; the simulation under ``sim_`` names (so the file holds
        the whole comparison)."""
        data: dict = {}
        for name in OBSERVABLES:
            data[f"dmft_{name}"] = (("time",), self.dmft_at(name))
            data[f"mean_{name}"] = (("time",), self.mean(name))
            data[f"sem_{name}"] = (("time",), self.sem(name))
            data[f"pooled_sem_{name}"] = (("time",), self.pooled_sem(name))
            data[f"z_{name}"] = (("time",), self.z(name))
            data[f"dmft_curve_{name}"] = (("dmft_time",), np.asarray(self.dmft[name]))
        ds = xr.Dataset(data, coords={"time": self.t, "dmft_time": self.dmft_t})
        ds.attrs.update(problem_attrs(self.problem, kind=self.kind, status=self.status.value, message=self.message,
                                      z_max_train_error=self.z_max("train_error"),
                                      z_max_test_error=self.z_max("test_error")))
        sim = self.simulation.to_xarray()
        sim = sim.rename({name: f"sim_{name}" for name in list(sim.variables) + list(sim.dims)})
        sim_attrs, sim.attrs = sim.attrs, {}
        ds = ds.merge(sim, combine_attrs="override")
        ds.attrs["simulation_attrs"] = json.dumps({k: v.item() if isinstance(v, np.generic) else v
                                                   for k, v in sim_attrs.items()})
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Comparison":
        """The comparison stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        names = [n for n in ds.data_vars if str(n).startswith("sim_")]
        if "simulation_attrs" not in ds.attrs or not names:
            raise ResultFormatError("the file does not hold the compared simulation")
        sim_ds = ds[names]
        sim_ds = sim_ds.rename({n: n[4:] for n in list(sim_ds.variables) + list(sim_ds.dims)})
        sim_ds.attrs = json.loads(ds.attrs["simulation_attrs"])
        sim = Simulation.from_xarray(sim_ds)
        status, message = status_from_text(ds.attrs.get("status"), ds.attrs.get("message"))
        dmft = {name: ds[f"dmft_curve_{name}"].values for name in OBSERVABLES}
        return cls(problem=sim.problem, kind=str(ds.attrs["kind"]), dmft_t=ds["dmft_time"].values, dmft=dmft,
                   simulation=sim, status=status, message=message)


def comparison_of(problem: Problem, solution: Any, simulation: Simulation) -> Comparison:
    """A :class:`Comparison` of a finished DMFT solution (:func:`learndyn.dmft.solve`) and simulation."""
    check_problem(problem, "dmft.comparison_of")
    if not isinstance(simulation, Simulation):
        raise InvalidInputError(f"simulation: expected a learndyn.dmft.Simulation, got {type(simulation).__name__}")
    dmft = {name: _one_time(solution, name) for name in OBSERVABLES}
    status, message = Status.SUCCESS, ""
    for what, res in (("DMFT", solution), ("simulation", simulation)):
        if not res.success:
            status, message = res.status, f"{what}: {res.message or res.status.describe()}"
            break
    return Comparison(problem=problem, kind=simulation.kind, dmft_t=np.asarray(solution.t), dmft=dmft,
                      simulation=simulation, status=status, message=message)


def compare(problem: Problem, t_max: float, dt: float, *, d: int, seeds: int | Sequence[int] = 16,
            kind: str = "gaussian", batch: int | None = None, lr: float | None = None, init: str | None = None,
            record_every: int | None = None, max_records: int = 201, solution: Any = None,
            solve_kwargs: dict | None = None, **simulate_kwargs: Any) -> Comparison:
    """Solve the DMFT of ``problem`` on ``t_n = n dt <= t_max`` and simulate it in dimension ``d`` over ``seeds``;
    return the :class:`Comparison`.

    ``kind="gaussian"``: projected GD on the Gaussian model (:func:`learndyn.dmft.gaussian_model.simulate`, step
    ``dt``); ``"network"``: real networks (:func:`learndyn.dmft.networks.simulate`): full-batch GD with step ``dt``,
    or with ``batch`` SGD at learning rate ``lr`` (one step is ``lr d/n`` of GF time, App. I; default: the step
    ``dt``). ``init``: the simulation's initialisation (default: the simulator's). ``record_every`` /
    ``max_records``: the recorded times. ``solution``: a DMFT solution of ``problem`` already computed (it is
    then not solved again, e.g. one solution for several ``d``); ``solve_kwargs`` go to :func:`learndyn.dmft.solve`
    (e.g. its ``divergence_threshold``, an absolute bound on ``|C|``, ``|R|``), other keyword arguments to the
    simulator (e.g. its ``divergence_threshold``, relative to the initial errors).
    """
    from . import gaussian_model, networks, solve

    check_problem(problem, "dmft.compare")
    d = check_size("d", d, 2)
    seeds = check_seeds(seeds)
    if kind not in ("gaussian", "network"):
        raise InvalidInputError(f"kind: must be 'gaussian' or 'network', got {kind!r}")
    if kind == "gaussian" and (batch is not None or lr is not None):
        raise InvalidInputError("batch, lr: the Gaussian-model simulation is full-batch GD with step dt; use "
                                "kind='network' for SGD")
    if lr is not None and batch is None:
        raise InvalidInputError("lr: an SGD learning rate needs a mini-batch size (batch)")
    if solution is None:
        solution = solve(problem, t_max, dt, **(solve_kwargs or {}))
    elif getattr(solution, "problem", None) != problem:
        raise InvalidInputError("solution: must be a DMFT solution of the same problem")
    kw = dict(simulate_kwargs)
    if init is not None:
        kw["init"] = init
    sim_dt = float(dt)
    if lr is not None:
        n = int(round(problem.n_over_d * d))
        sim_dt = float(lr) * d / n
    if kind == "gaussian":
        sim = gaussian_model.simulate(problem, d, t_max, sim_dt, seeds, record_every=record_every,
                                      max_records=max_records, **kw)
    else:
        if batch is not None:
            n = int(round(problem.n_over_d * d))
            kw["batch"] = min(check_size("batch", batch, 1), n)
        sim = networks.simulate(problem, d, t_max, sim_dt, seeds, record_every=record_every, max_records=max_records,
                                **kw)
    return comparison_of(problem, solution, sim)


def gap_vs_d(problem: Problem, ds: Sequence[int], t_max: float, dt: float = 0.05, seeds: Any = 16, *,
             kind: str = "network", batch: int | None = None, lr: float | None = None,
             solve_kwargs: dict | None = None) -> dict:
    """``gap(d) = e_tr(simulation in dimension d) - e_tr(DMFT)`` at ``t_max``, mean +- standard error over seeds,
    and the weighted fit ``gap(d) = gap_inf + c/d`` (``chi2`` its residual). ``seeds``: one value for every ``d``
    (a number or a sequence, as for :func:`compare`) or a list with one number per ``d``. A ``gap_inf`` many
    standard errors from 0 says the gap is not a finite-d effect. The DMFT is solved once on ``t_n = n dt <= t_max``;
    ``kind``, ``batch``, ``lr``, ``solve_kwargs`` as for :func:`compare`. Returns a dict with ``d``, ``gap``, ``se``,
    ``dmft`` (the DMFT value), ``t``, ``gap_inf``, ``gap_inf_se``, ``c``, ``chi2``, and the ``comparisons``."""
    from . import solve

    ds = [check_size("ds", int(x) if isinstance(x, (int, np.integer)) else x, 2) for x in ds]
    if np.ndim(seeds) == 0:
        per_d = [seeds] * len(ds)
    else:
        per_d = list(seeds)
        if len(per_d) != len(ds):
            raise InvalidInputError(f"seeds: give one number for all d or one per d ({len(ds)}), got {len(per_d)}")
    sol = solve(problem, t_max, dt, **(solve_kwargs or {}))
    ref = float(np.interp(t_max, sol.t, _one_time(sol, "train_error")))
    gap, se, comps = [], [], []
    for d, S in zip(ds, per_d):
        sim_dt = dt if lr is None else float(lr) * d / int(round(problem.n_over_d * d))
        c = compare(problem, t_max, dt, d=d, seeds=S, kind=kind, batch=batch, lr=lr, solution=sol,
                    record_every=max(1, int(round(t_max / sim_dt))))
        mu, s = c.simulation.at("train_error", [t_max])
        gap.append(float(mu[0]) - ref)
        se.append(float(s[0]))
        comps.append(c)
    g, e, x = np.array(gap), np.array(se), 1.0 / np.array(ds, float)
    fit = dict(gap_inf=float("nan"), gap_inf_se=float("nan"), c=float("nan"), chi2=float("nan"))
    if len(ds) >= 3 and np.all(e > 0):
        A = np.vstack([np.ones_like(x), x]).T
        W = 1.0 / e**2
        cov = np.linalg.inv(A.T @ (A * W[:, None]))
        p = cov @ (A.T @ (W * g))
        fit = dict(gap_inf=float(p[0]), gap_inf_se=float(math.sqrt(cov[0, 0])), c=float(p[1]),
                   chi2=float(np.sum(W * (g - A @ p) ** 2)))
    return dict(d=np.array(ds), gap=g, se=e, dmft=ref, t=t_max, comparisons=comps, **fit)
