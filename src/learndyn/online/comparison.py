r"""Theory against simulation: the ODE (``online.integrate``) beside finite-N online SGD (``online.simulate``).

Both start from the same microscopic point: every seed's ODE is integrated from that seed's exact initial
overlaps (``sim.initial_state(seed)``), so the only differences are finite-N fluctuations (O(1/sqrt N) per
run, Goldt et al. 2019 Sec. 3 / Wang, Mattingly & Lu) and finite-N bias (O(1/N)).

Reported numbers, over the recorded times ``alpha > 0`` where the ODE error is above ``eg_floor``:

* ``rel_dev(alpha) = |mean_s eg_sgd - mean_s eg_ode| / mean_s eg_ode`` -- deviation of the seed-averaged
  SGD curve, with its standard error ``rel_sem(alpha)`` (standard error of the paired per-seed
  differences ``eg_sgd - eg_ode`` over seeds, divided by the ODE mean); ``max_rel_dev`` and
  ``mean_rel_dev`` summarise it, ``z_max = max |mean diff| / sem`` tells whether it is statistical;
* ``rms_dev`` -- the typical deviation of a *single* run, ``sqrt(mean_{s,alpha} ((eg_sgd - eg_ode)/eg_ode)^2)``,
  which scales as ``N^(-1/2)``, with its standard error over seeds (delta method).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import xarray as xr

from ..results import InvalidInputError, Result, ResultFormatError, Status, json_attr, problem_attrs
from ._util import save_times
from .ode import integrate
from .problem import Problem
from .sgd import Simulation, simulate

__all__ = ["Comparison", "compare", "comparison_from_arrays", "deviation_exponent"]


@dataclass(frozen=True, eq=False)
class Comparison(Result):
    """ODE (Goldt et al. 2019, eqs. (6)-(8)) vs SGD (eqs. (2)-(3)): per-seed generalisation errors (eq. (4))
    ``eg_sgd``, ``eg_ode`` (S, A) and the deviation statistics.

    ``status`` is the simulation's when it did not succeed, else the first ODE status that is not success,
    else success; ``message`` says which run stopped and why (default: derived from the two).
    """

    problem: Problem
    N: int
    alpha: np.ndarray
    eg_sgd: np.ndarray
    eg_ode: np.ndarray
    mask: np.ndarray
    simulation: Simulation
    ode_status: tuple
    status: Status | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        ode_status = tuple(Status.of(s) for s in self.ode_status)
        object.__setattr__(self, "ode_status", ode_status)
        failed = [(int(seed), st) for seed, st in zip(self.simulation.seeds, ode_status) if st is not Status.SUCCESS]
        if self.status is None:
            status = (self.simulation.status if not self.simulation.success
                      else failed[0][1] if failed else Status.SUCCESS)
            object.__setattr__(self, "status", status)
        object.__setattr__(self, "status", Status.of(self.status))
        if self.message is None:
            parts = [] if self.simulation.success else [f"simulation: {self.simulation.message}"]
            parts += [f"ODE of seed {seed}: {st.value}" for seed, st in failed]
            object.__setattr__(self, "message", "; ".join(parts) if parts else
                               "the ODE was integrated from every simulated seed's initial state")

    # -- per-time statistics -------------------------------------------------------------------
    @property
    def n_seeds(self) -> int:
        """Number of seeds compared."""
        return self.eg_sgd.shape[0]

    @property
    def sgd_mean(self) -> np.ndarray:
        """Seed mean of the simulated ``eps_g`` per time."""
        return np.nanmean(self.eg_sgd, axis=0)

    @property
    def sgd_sem(self) -> np.ndarray:
        """Standard error of :attr:`sgd_mean` over seeds."""
        return _sem(self.eg_sgd)

    @property
    def ode_mean(self) -> np.ndarray:
        """Seed mean of the ODE's ``eps_g`` per time."""
        return np.nanmean(self.eg_ode, axis=0)

    @property
    def diff_sem(self) -> np.ndarray:
        """Standard error of the seed mean of the paired differences ``eg_sgd - eg_ode``."""
        return _sem(self.eg_sgd - self.eg_ode)

    @property
    def rel_dev(self) -> np.ndarray:
        """``|mean_s (eg_sgd - eg_ode)| / mean_s eg_ode`` per time."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(np.nanmean(self.eg_sgd - self.eg_ode, axis=0)) / self.ode_mean

    @property
    def rel_sem(self) -> np.ndarray:
        """Standard error of :attr:`rel_dev` (of the paired differences, over seeds) per time."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.diff_sem / self.ode_mean

    # -- summaries -----------------------------------------------------------------------------
    @property
    def max_rel_dev(self) -> float:
        """Largest :attr:`rel_dev` over the times used."""
        return float(np.nanmax(self.rel_dev[self.mask])) if self.mask.any() else float("nan")

    @property
    def max_rel_dev_sem(self) -> float:
        """``rel_sem`` at the time of the maximal deviation."""
        if not self.mask.any():
            return float("nan")
        idx = np.flatnonzero(self.mask)[np.nanargmax(self.rel_dev[self.mask])]
        return float(self.rel_sem[idx])

    @property
    def mean_rel_dev(self) -> float:
        """Mean :attr:`rel_dev` over the times used."""
        return float(np.nanmean(self.rel_dev[self.mask])) if self.mask.any() else float("nan")

    @property
    def mean_rel_sem(self) -> float:
        """Mean :attr:`rel_sem` over the times used."""
        return float(np.nanmean(self.rel_sem[self.mask])) if self.mask.any() else float("nan")

    @property
    def z_max(self) -> float:
        """``max_alpha |mean_s (eg_sgd - eg_ode)| / sem``: O(1-3) when the deviation is purely statistical."""
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(np.nanmean(self.eg_sgd - self.eg_ode, axis=0)) / self.diff_sem
        return float(np.nanmax(z[self.mask])) if self.mask.any() else float("nan")

    def _per_seed_sq(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = (self.eg_sgd - self.eg_ode) / self.eg_ode
        return np.nanmean(rel[:, self.mask] ** 2, axis=1)  # (S,)

    @property
    def rms_dev(self) -> float:
        """Typical relative deviation of one SGD run from its ODE (root mean square over seeds and times)."""
        return float(np.sqrt(np.nanmean(self._per_seed_sq()))) if self.mask.any() else float("nan")

    @property
    def rms_dev_sem(self) -> float:
        """Standard error of :attr:`rms_dev` over seeds (delta method: ``sem(mean sq) / (2 rms)``)."""
        sq = self._per_seed_sq()
        return float(_sem(sq[:, None])[0] / (2.0 * self.rms_dev)) if sq.size > 1 else float("nan")

    def summary(self) -> str:
        """A few lines with the deviation statistics."""
        p = self.problem
        return (
            f"ODE vs SGD: {p.activation_name}, M={p.M}, K={p.K}, lr={p.lr:g}, sigma={p.sigma:g}, "
            f"{'both layers' if p.train_second_layer else 'first layer'}, N={self.N}, {self.n_seeds} seeds, "
            f"{int(self.mask.sum())} times in ({self.alpha[self.mask].min() if self.mask.any() else 0:g}, "
            f"{self.alpha[self.mask].max() if self.mask.any() else 0:g}]\n"
            f"  max relative deviation of the seed mean : {self.max_rel_dev:.3e} (seed s.e. {self.max_rel_dev_sem:.1e})\n"
            f"  mean relative deviation of the seed mean: {self.mean_rel_dev:.3e} (seed s.e. {self.mean_rel_sem:.1e})\n"
            f"  largest |mean deviation| / s.e.         : {self.z_max:.2f}\n"
            f"  rms relative deviation of one run       : {self.rms_dev:.3e} +- {self.rms_dev_sem:.1e}"
        )

    def to_xarray(self) -> xr.Dataset:
        """Curves and statistics over ``(seed, alpha)``, with the compared simulation under ``sim_`` names."""
        ds = xr.Dataset(
            {
                "eg_sgd": (("seed", "alpha"), self.eg_sgd),
                "eg_ode": (("seed", "alpha"), self.eg_ode),
                "sgd_mean": (("alpha",), self.sgd_mean),
                "sgd_sem": (("alpha",), self.sgd_sem),
                "ode_mean": (("alpha",), self.ode_mean),
                "rel_dev": (("alpha",), self.rel_dev),
                "rel_sem": (("alpha",), self.rel_sem),
                "used": (("alpha",), self.mask),
            },
            coords={"seed": self.simulation.seeds, "alpha": self.alpha},
            attrs=problem_attrs(self.problem, kind="online.compare", N=int(self.N),
                                max_rel_dev=self.max_rel_dev, max_rel_dev_sem=self.max_rel_dev_sem,
                                mean_rel_dev=self.mean_rel_dev, mean_rel_sem=self.mean_rel_sem, z_max=self.z_max,
                                rms_dev=self.rms_dev, rms_dev_sem=self.rms_dev_sem,
                                ode_status=[s.value for s in self.ode_status], status=self.status.value,
                                message=self.message),
        )
        # the simulation compared, under "sim_" names (its variables, dimensions and attributes), so that
        # the file holds the whole comparison (from_xarray)
        sim = self.simulation.to_xarray()
        sim = sim.rename({name: f"sim_{name}" for name in list(sim.variables) + list(sim.dims)})
        sim_attrs, sim.attrs = sim.attrs, {}
        ds = ds.merge(sim, combine_attrs="override")
        ds.attrs["simulation_attrs"] = json.dumps({k: _attr_value(v) for k, v in sim_attrs.items()})
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Comparison":
        """The comparison stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        names = [n for n in list(ds.variables) + list(ds.dims) if str(n).startswith("sim_")]
        if "simulation_attrs" not in ds.attrs or not names:
            raise ResultFormatError("the file does not hold the compared simulation")
        sim_ds = ds[[n for n in ds.data_vars if str(n).startswith("sim_")]]
        sim_ds = sim_ds.rename({n: n[4:] for n in list(sim_ds.variables) + list(sim_ds.dims)})
        sim_ds.attrs = json.loads(ds.attrs["simulation_attrs"])
        sim = Simulation.from_xarray(sim_ds)
        status = json_attr(ds, "ode_status", [])
        return cls(problem=sim.problem, N=int(ds.attrs["N"]), alpha=ds["alpha"].values,
                   eg_sgd=ds["eg_sgd"].values, eg_ode=ds["eg_ode"].values, mask=ds["used"].values.astype(bool),
                   simulation=sim, ode_status=tuple(status if isinstance(status, list) else [status]),
                   status=Status.of(str(ds.attrs["status"])) if "status" in ds.attrs else None,
                   message=str(ds.attrs["message"]) if "message" in ds.attrs else None)


def _attr_value(v):
    return v.item() if isinstance(v, np.generic) else v


def _sem(x: np.ndarray) -> np.ndarray:
    n = np.sum(np.isfinite(x), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, np.nanstd(x, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)), np.nan)


def compare(
    problem: Problem,
    N: int | None = None,
    alpha_max: float | None = None,
    seeds: int | Sequence[int] = 8,
    alphas: Sequence[float] | np.ndarray | None = None,
    *,
    times: Sequence[float] | np.ndarray | None = None,
    simulation: Simulation | None = None,
    eg_floor: float = 1e-8,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    **simulate_kwargs: Any,
) -> Comparison:
    """Run (or take) a simulation and the ODE from each seed's initial state; return a :class:`Comparison`.

    Either give ``simulation`` (a finished :class:`Simulation` of ``problem``) or the arguments of
    :func:`learndyn.online.simulate` (``N``, ``alpha_max``/``times`` (alias ``alphas``), ``seeds``, ``init=...``, ...).
    Times ``alpha = 0`` (identical by construction) and where the ODE error is below ``eg_floor`` are
    left out of the statistics (in the exponential convergence to ``eps_g = 0`` without noise, O(1/sqrt N)
    shifts in time make relative deviations of tiny errors meaningless).
    """
    times = save_times(times, alphas)
    if simulation is None:
        if N is None:
            raise InvalidInputError("N: give N (and alpha_max or times) or a finished simulation")
        simulation = simulate(problem, N, alpha_max=alpha_max, seeds=seeds, times=times, **simulate_kwargs)
    elif not isinstance(simulation, Simulation):
        raise InvalidInputError(f"simulation: expected an online.Simulation, got {type(simulation).__name__}")
    if simulation.batch_size != 1:
        warnings.warn("online.compare: the ODE describes batch size 1; with mini-batches its eta^2 and sigma^2 "
                      "terms are too large by the batch size", RuntimeWarning, stacklevel=2)
    sim = simulation
    alpha = sim.alpha
    eg_sgd = sim.eg if not np.all(np.isnan(sim.eg)) or sim.eg_test is None else sim.eg_test
    eg_ode = np.full_like(eg_sgd, np.nan)
    statuses = []
    for i, seed in enumerate(sim.seeds):
        traj = integrate(problem, sim.initial_state(int(seed)), times=alpha, rtol=rtol, atol=atol)
        eg_ode[i, : len(traj.eg)] = traj.eg
        statuses.append(traj.status)
    return comparison_from_arrays(problem, sim, eg_ode, tuple(statuses), eg_floor)


def comparison_from_arrays(problem: Problem, simulation: Simulation, eg_ode: np.ndarray,
                           ode_status: tuple = (), eg_floor: float = 1e-8) -> Comparison:
    """A :class:`Comparison` from a simulation and already integrated per-seed ODE errors ``eg_ode`` (S, A)
    (``ode_status``: the per-seed ODE statuses)."""
    sim = simulation
    eg_sgd = sim.eg if not np.all(np.isnan(sim.eg)) or sim.eg_test is None else sim.eg_test
    eg_ode = np.asarray(eg_ode, dtype=float)
    if eg_ode.shape != eg_sgd.shape:
        raise InvalidInputError(f"eg_ode: expected shape {eg_sgd.shape}, got {eg_ode.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ode_mean = np.nanmean(eg_ode, axis=0)
        sgd_mean = np.nanmean(eg_sgd, axis=0)
    alpha = sim.alpha
    mask = (alpha > 0) & np.isfinite(ode_mean) & (ode_mean > eg_floor) & np.isfinite(sgd_mean)
    return Comparison(problem=problem, N=sim.N, alpha=alpha, eg_sgd=eg_sgd, eg_ode=eg_ode, mask=mask,
                      simulation=sim, ode_status=tuple(ode_status))


def deviation_exponent(Ns: Sequence[float], deviations: Sequence[float], errors: Sequence[float] | None = None):
    """Least-squares fit ``log dev = a + b log N`` of deviations against the input dimension; returns
    ``(b, standard error of b)``.

    Weighted by the relative errors of the deviations when ``errors`` are given (Goldt et al.: b = -1/2).
    """
    x = np.log(np.asarray(Ns, dtype=float))
    y = np.log(np.asarray(deviations, dtype=float))
    if errors is not None:
        sig = np.asarray(errors, dtype=float) / np.asarray(deviations, dtype=float)
        sig = np.where(np.isfinite(sig) & (sig > 0), sig, np.nanmedian(sig[np.isfinite(sig) & (sig > 0)])
                       if np.any(np.isfinite(sig) & (sig > 0)) else 1.0)
    else:
        sig = np.ones_like(x)
    A = np.stack([np.ones_like(x), x], axis=1) / sig[:, None]
    coef, *_ = np.linalg.lstsq(A, y / sig, rcond=None)
    cov = np.linalg.inv(A.T @ A)
    if errors is None and len(x) > 2:
        resid = y - (coef[0] + coef[1] * x)
        cov = cov * float(resid @ resid) / (len(x) - 2)
    return float(coef[1]), float(np.sqrt(cov[1, 1]))
