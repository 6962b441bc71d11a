r"""What the two DMFT simulations share (Montanari & Urbani 2025, App. D.2-D.4 and App. I).

The numbers a simulation reads off a :class:`learndyn.dmft.Problem` (:class:`ModelParams`), the population risk,
the initial weights, the recorded observables and the :class:`Simulation` result. Used by
:mod:`learndyn.dmft.gaussian_model` (projected GD on the Gaussian model) and :mod:`learndyn.dmft.networks` (real
two-layer networks, GD/SGD).

Seeds: ``seeds`` is a number ``S`` (seeds ``0..S-1``) or a sequence of distinct ints; seed ``s`` draws its data,
initial weights and mini-batches on the host from NumPy's ``default_rng([0, s])`` (:func:`seed_rng`), so results
do not depend on how the seeds are chunked, and the compiled programs hold no PRNG. The time grid is the DMFT's,
``t = k dt``, recorded every ``record_every``-th step (:func:`record_plan`).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..results import InvalidInputError, Result, Status, json_attr, problem_attrs, rebuild_problem
from ._common import check_problem, check_time_step, status_from_text
from .problem import Problem

__all__ = ["Simulation", "ModelParams", "model_params", "population_risk", "initial_weights", "seed_rng",
           "record_plan", "poly", "run_seeds"]


# ------------------------------------------------------------------------------------------
# parameters read off a dmft.Problem
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelParams:
    """The numbers a simulation needs, read off a :class:`learndyn.dmft.Problem` (a hashable, compiled view).

    ``h[k]``, ``hatphi[k]`` are power-series coefficients (index = degree), ``c = sqrt(h)`` the hidden
    unit's normalised Hermite coefficients, ``b = hatphi / c`` the target's, ``extra_var = ||phi||^2 -
    sum b_k^2 >= 0`` the target variance no hidden unit can see (added as independent noise).
    """

    m: int
    abar: float
    tau: float
    a0: tuple  # (m,)
    C0: tuple  # (m, m) as nested tuples
    h: tuple
    hatphi: tuple
    phi_norm2: float
    train_second_layer: bool
    c: tuple = field(repr=False)
    b: tuple = field(repr=False)
    extra_var: float = 0.0
    v0: tuple = ()

    @property
    def degree(self) -> int:
        """Degree of ``h`` (the largest tensor order of the Gaussian model)."""
        nz = np.flatnonzero(np.asarray(self.h))
        return int(nz[-1]) if nz.size else 0

    @property
    def single_index(self) -> bool:
        """True when the target has a component along ``u`` (not pure noise)."""
        return bool(np.any(np.asarray(self.hatphi) != 0) or self.phi_norm2 > 0)


def model_params(problem: Problem) -> ModelParams:
    """The :class:`ModelParams` of a :class:`learndyn.dmft.Problem` (cached per problem; the problem is hashable).

    ``c_k`` are the activation's normalised Hermite coefficients (``sqrt(h_k)``), ``b_k = hatphi_k / c_k`` the
    target's components seen by the hidden units, ``extra_var = ||phi||^2 - sum_k b_k^2``.
    """
    check_problem(problem, "model_params")
    return _model_params(problem)


@functools.lru_cache(maxsize=64)
def _model_params(problem: Problem) -> ModelParams:
    m = int(problem.m)
    h = np.asarray(problem.h_coeffs, dtype=float)
    hatphi = np.asarray(problem.hatphi_coeffs, dtype=float)
    K = max(len(h), len(hatphi))
    h = np.pad(h, (0, K - len(h)))
    hatphi = np.pad(hatphi, (0, K - len(hatphi)))
    c = np.sqrt(np.clip(h, 0.0, None))
    b = np.divide(hatphi, c, out=np.zeros_like(hatphi), where=c > 0)
    phi_norm2 = float(problem.phi_norm2)
    extra = phi_norm2 - float(np.sum(b**2))
    tup = lambda x: tuple(float(v) for v in x)
    return ModelParams(m=m, abar=float(problem.n_over_d), tau=float(problem.tau), a0=tup(problem.a0_vector),
                       C0=tuple(tup(r) for r in problem.C0_matrix), h=tup(h), hatphi=tup(hatphi),
                       phi_norm2=phi_norm2, train_second_layer=bool(problem.train_second_layer),
                       c=tup(c), b=tup(b), extra_var=max(extra, 0.0), v0=tup(problem.v0_vector))


def poly(coef, x):
    """``sum_k coef[k] x^k`` (Horner), elementwise, in JAX."""
    out = jnp.zeros_like(x) + coef[-1]
    for ck in coef[-2::-1]:
        out = out * x + ck
    return out


def population_risk(p: ModelParams, a, W, u_index: int = 0):
    """Test error = population risk of weights ``a`` (..., m), ``W`` (..., m, d), ``u = e_{u_index}``:
    ``(tau^2 + ||phi||^2)/2 - (1/m) sum_i a_i hatphi(v_i) + (1/(2 m^2)) sum_ij a_i a_j h(C_ij)`` (Montanari &
    Urbani 2025, Sec. 2; exact for given weights)."""
    m = p.m
    C = jnp.einsum("...id,...jd->...ij", W, W)
    v = W[..., u_index]
    risk = 0.5 * (p.tau**2 + p.phi_norm2) - jnp.sum(a * poly(p.hatphi, v), -1) / m
    return risk + 0.5 * jnp.einsum("...i,...ij,...j->...", a, poly(p.h, C), a) / m**2


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def seed_rng(seed: int) -> np.random.Generator:
    """The NumPy generator of seed ``seed``: ``default_rng([0, seed])``."""
    return np.random.default_rng([0, int(seed)])


def initial_weights(p: ModelParams, rng, d: int, init: str = "orthogonal") -> np.ndarray:
    """First-layer rows at t = 0 (u = e_1 is the latent direction), drawn with the NumPy generator ``rng``.

    ``"orthogonal"``: ``W0 = v0 u^T + L Q^T`` with ``L L^T = C0 - v0 v0^T`` and ``Q`` ``m`` orthonormal random
    vectors orthogonal to ``u``: the DMFT's initial data ``C(0,0) = C0``, ``v(0) = v0`` hold exactly.
    ``"uniform"``: i.i.d. uniform on the sphere (``C0 = I`` and ``v = 0`` only as d -> infinity)."""
    m = p.m
    G = _rng(rng).standard_normal((d, m))
    if init == "uniform":
        W = G.T
        return W / np.linalg.norm(W, axis=1, keepdims=True)
    if init != "orthogonal":
        raise InvalidInputError(f"init: must be 'orthogonal' or 'uniform', got {init!r}")
    G[0] = 0.0  # orthogonal to u = e_1
    Q, _ = np.linalg.qr(G)  # (d, m), orthonormal columns
    v0 = np.asarray(p.v0) if len(p.v0) else np.zeros(m)
    lam, V = np.linalg.eigh(np.asarray(p.C0) - np.outer(v0, v0))
    L = V * np.sqrt(np.clip(lam, 0.0, None))
    W = L @ Q.T
    W[:, 0] = v0
    return W


def run_seeds(seeds: Sequence[int], chunk: int, draw, run) -> list[dict]:
    """Run the compiled program ``run`` over ``seeds`` in chunks of ``chunk`` seeds (the last chunk padded to the
    compiled size by repeating its last seed, whose extra rows are dropped). ``draw(rng)`` gives one seed's inputs,
    a tuple of arrays (or ``None`` for an absent input), from :func:`seed_rng`; they are stacked position by
    position and passed to ``run``, which returns a dict of per-seed records."""
    recs = []
    for start in range(0, len(seeds), chunk):
        idx = list(seeds[start : start + chunk])
        take = len(idx)
        idx += [idx[-1]] * (chunk - take)
        inputs = [draw(seed_rng(s)) for s in idx]
        stacked = [None if inputs[0][k] is None else jnp.asarray(np.stack([x[k] for x in inputs]))
                   for k in range(len(inputs[0]))]
        out = run(*stacked)
        recs.append({k: np.asarray(v)[:take] for k, v in out.items()})
    return recs


# ------------------------------------------------------------------------------------------
# recording (inside the compiled programs)
# ------------------------------------------------------------------------------------------
def record(p: ModelParams, a, W, F, keep_C: bool) -> dict:
    """The observables recorded at one time: train error ``|F|^2/(2n)``, test error (:func:`population_risk`),
    ``a_i``, ``v_i = <u, w_i>``, ``C_o(t, t)``, the rows ``W`` (for the two-time overlaps) and, if ``keep_C``, the
    equal-time overlaps ``C``."""
    m = p.m
    e_tr = 0.5 * jnp.sum(F**2) / F.shape[0]
    e_ts = population_risk(p, a, W)
    C = W @ W.T
    v = W[:, 0]
    co = (jnp.sum(C) - jnp.trace(C)) / max(m * (m - 1), 1)
    out = dict(train_error=e_tr, test_error=e_ts, a_i=a, v_i=v, C_o_tt=co, W=W)
    if keep_C:
        out["C"] = C
    return out


def two_time(Ws, m: int) -> dict:
    """``C_d(t,s) = mean_i <w_i(t), w_i(s)>``, ``C_o(t,s) = mean_{i != j} <w_i(t), w_j(s)>`` from rows (T, m, d)."""
    diag = jnp.einsum("tid,sid->ts", Ws, Ws)
    tot = Ws.sum(1)
    return {"C_d": diag / m, "C_o": (tot @ tot.T - diag) / max(m * (m - 1), 1)}


def record_plan(t_max: float, dt: float, every: int | None, max_records: int) -> tuple[int, int]:
    """``(record_every, number of records)`` for ``round(t_max/dt)`` steps of size ``dt``: by default at most
    ``max_records`` records, including ``t = 0``."""
    t_max, dt = check_time_step(t_max, dt)
    n_steps = int(round(t_max / dt))
    if every is None:
        every = max(1, math.ceil(n_steps / max(max_records - 1, 1)))
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise InvalidInputError(f"record_every: must be an integer >= 1, got {every!r}")
    return int(every), n_steps // every + 1


# ------------------------------------------------------------------------------------------
# the result
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Simulation(Result):
    """Observables of a batch of simulations (Gaussian-model GD or real networks) on the DMFT time axis.

    Per-seed arrays have shape ``(S, T)`` (``a_i``, ``v_i``: ``(S, T, m)``; ``C``: ``(S, T, m, m)``
    equal-time overlaps, kept only for small m). ``C_d``, ``C_o`` (T, T) are seed means with standard
    errors ``C_d_sem``, ``C_o_sem``. ``status`` is ``SUCCESS`` or ``DIVERGED`` (then ``t_reached`` says where
    the first seed diverged, ``message`` how; the data before it are kept, the rest is NaN).
    """

    problem: Problem
    kind: str
    t: np.ndarray
    data: dict
    C_d: np.ndarray
    C_o: np.ndarray
    C_d_sem: np.ndarray
    C_o_sem: np.ndarray
    d: int
    n: int
    dt: float
    seeds: tuple
    settings: dict = field(default_factory=dict)
    status: Status = Status.SUCCESS
    t_reached: float = float("nan")
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.of(self.status))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @property
    def n_seeds(self) -> int:
        """Number of seeds (independent runs)."""
        return self.data["train_error"].shape[0]

    def __getattr__(self, name: str):
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        if name in ("a", "v") and f"{name}_i" in data:
            return data[f"{name}_i"].mean(-1)
        raise AttributeError(name)

    def values(self, name: str) -> np.ndarray:
        """Per-seed values of an observable: train_error, test_error, a, v, C_o_tt, a_i, v_i, C."""
        return np.asarray(getattr(self, name))

    def mean(self, name: str) -> np.ndarray:
        """Seed mean (diverged seeds are NaN from their divergence on and left out)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.values(name), axis=0)

    def sem(self, name: str) -> np.ndarray:
        """Standard error of the seed mean."""
        x = self.values(name)
        R = np.sum(np.isfinite(x), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanstd(x, axis=0, ddof=1) / np.sqrt(R)

    def at(self, name: str, times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard error of ``name`` at the recorded times nearest to ``times``."""
        idx = np.array([int(np.argmin(np.abs(self.t - t))) for t in np.atleast_1d(times)])
        return self.mean(name)[idx], self.sem(name)[idx]

    def to_xarray(self) -> xr.Dataset:
        """Per-seed observables over ``(seed, time[, neuron[, neuron2]])``, their means and standard errors over
        ``time``, the two-time overlaps over ``(time, time2)``; problem, kind, sizes, status in the attributes."""
        m = self.values("a_i").shape[-1]
        dims = {2: ("seed", "time"), 3: ("seed", "time", "neuron"), 4: ("seed", "time", "neuron", "neuron2")}
        ds = xr.Dataset(coords={"time": self.t, "seed": np.asarray(self.seeds), "neuron": np.arange(m)})
        for name in ("train_error", "test_error", "a", "v", "C_o_tt"):
            ds[name] = (dims[2], self.values(name))
            ds[f"{name}_mean"] = (("time",), self.mean(name))
            ds[f"{name}_sem"] = (("time",), self.sem(name))
        for name in ("a_i", "v_i", "C"):
            if name in self.data:
                ds[name] = (dims[self.data[name].ndim], self.data[name])
        for name in ("C_d", "C_o", "C_d_sem", "C_o_sem"):
            ds[name] = (("time", "time2"), getattr(self, name))
        ds.attrs.update(problem_attrs(self.problem, kind=self.kind, d=self.d, n=self.n, dt=self.dt,
                                      status=self.status.value, message=self.message, t_reached=self.t_reached,
                                      settings=self.settings))
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Simulation":
        """The simulation stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`; files written
        before the seeds were unified, with a ``realisation`` dimension and a ``seed`` attribute, load too)."""
        if "realisation" in ds.dims:
            ds = ds.rename({"realisation": "seed"}).assign_coords(seed=np.arange(ds.sizes["realisation"]))
        names = ("train_error", "test_error", "a", "v", "C_o_tt", "a_i", "v_i", "C")
        data = {k: ds[k].values for k in names if k in ds}
        a = ds.attrs
        status, message = status_from_text(a.get("status"), a.get("message"))
        return cls(problem=rebuild_problem(ds, Problem), kind=str(a["kind"]), t=ds["time"].values, data=data,
                   C_d=ds["C_d"].values, C_o=ds["C_o"].values, C_d_sem=ds["C_d_sem"].values,
                   C_o_sem=ds["C_o_sem"].values, d=int(a["d"]), n=int(a["n"]), dt=float(a["dt"]),
                   seeds=tuple(int(s) for s in ds["seed"].values), settings=json_attr(ds, "settings", {}),
                   status=status, message=message, t_reached=float(a.get("t_reached", np.nan)))


def finish(problem: Problem, kind: str, recs: list[dict], every: int, dt: float, d: int, n: int,
           seeds: tuple, settings: dict, n_rec: int, divergence_threshold: float = 1e8) -> Simulation:
    """Assemble a :class:`Simulation` from the chunks of records. Relative divergence test: a seed whose train or
    test error becomes non-finite or exceeds ``divergence_threshold`` times its initial test error has diverged:
    its records from there on are set to NaN, the rest is kept (status ``DIVERGED``)."""
    data = {k: np.concatenate([np.asarray(r[k]) for r in recs]) for k in recs[0]}
    cd, co = data.pop("C_d"), data.pop("C_o")
    t = np.arange(n_rec) * every * dt
    scale = divergence_threshold * np.maximum(np.abs(data["test_error"][:, :1]), 1e-300)
    bad = np.zeros(data["train_error"].shape, dtype=bool)
    for name in ("train_error", "test_error"):
        x = data[name]
        bad |= ~np.isfinite(x) | (np.abs(np.nan_to_num(x, nan=np.inf)) > scale)
    bad = np.cumsum(bad, axis=1) > 0  # from the first bad record on
    status, message, t_reached = Status.SUCCESS, "", float(t[-1])
    if bad.any():
        first = int(np.min(np.argmax(bad, axis=1)[bad.any(axis=1)]))
        status, t_reached = Status.DIVERGED, float(t[max(first - 1, 0)])
        n_bad = int(bad.any(axis=1).sum())
        message = (f"{n_bad} of {bad.shape[0]} seeds diverged (error non-finite or above divergence_threshold = "
                   f"{divergence_threshold:g} times its initial value), the first after t = {t_reached:.6g}")
        for k in data:
            x = data[k]
            mask = bad.reshape(bad.shape + (1,) * (x.ndim - 2))
            data[k] = np.where(mask, np.nan, x)
        badt = bad[:, :, None] | bad[:, None, :]
        cd, co = np.where(badt, np.nan, cd), np.where(badt, np.nan, co)
    R = cd.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sem = lambda x: np.nanstd(x, axis=0, ddof=1) / np.sqrt(R) if R > 1 else np.full(x.shape[1:], np.nan)
        return Simulation(problem=problem, kind=kind, t=t, data=data, C_d=np.nanmean(cd, 0), C_o=np.nanmean(co, 0),
                          C_d_sem=sem(cd), C_o_sem=sem(co), d=d, n=n, dt=float(dt), seeds=tuple(seeds),
                          settings=settings, status=status, message=message, t_reached=t_reached)
