r"""Projected gradient descent on the Gaussian model of Montanari & Urbani (2025), many realisations batched.

The Gaussian model (spec ``dmft.md`` §1.6, paper App. D.4) replaces each hidden unit's output
``sigma(<w, x_mu>)``, viewed as a random function of ``w`` on the sphere, by a Gaussian process with
covariance ``h(<w, w'>)``. With ``h(z) = sum_k c_k^2 z^k`` (``c_k = sqrt(h_k)``, degrees ``k = 1..3``) and one
independent set of i.i.d. ``N(0, 1)`` tensors ``J^(k)_mu in (R^d)^{(x)k}`` per sample ``mu``:

.. math::

    \sigma_\mu(w) = \sum_k c_k \langle J^{(k)}_\mu, w^{\otimes k}\rangle,\qquad
    f^g_\mu(a, W) = \frac1m \sum_i a_i\, \sigma_\mu(w_i),\qquad
    y_\mu = \sum_k b_k \langle J^{(k)}_\mu, u^{\otimes k}\rangle + \xi_\mu + \tau\,\varepsilon_\mu,

with ``b_k = hatphi_k / c_k`` so that ``E[sigma_mu(w) y_mu] = hatphi(<u, w>)``, ``xi_mu ~ N(0, ||phi||^2 -
sum_k b_k^2)`` independent (zero when the target is the activation itself) and ``u = e_1``. Then
``E[sigma_mu(w) sigma_mu(w')] = h(<w, w'>)`` and ``E y_mu^2 = tau^2 + ||phi||^2``: every covariance of the
spec holds exactly (checked by sampling in the tests). Only the symmetric part of ``J^(k)`` enters, so the
tensors are stored symmetrised and ``grad_w <J, w^k> = k J(w, ..., w, .)``.

Training is projected GD (paper Eq. D.9) on ``L = (n/d) Rhat_n = (1/(2d)) sum_mu (y_mu - f^g_mu)^2``:

.. math::

    a \leftarrow a - \eta\, \nabla_a L,\qquad w_i \leftarrow \frac{w_i - \eta \nabla_{w_i} L}{\|w_i - \eta \nabla_{w_i} L\|},
    \qquad t = k\,\eta,

with the explicit gradients ``grad_{a_i} L = -(1/(d m)) sum_mu F_mu sigma_mu(w_i)`` and
``grad_{w_i} L = -(a_i/(d m)) sum_k k c_k (sum_mu F_mu J^(k)_mu)(w_i, ..., w_i, .)`` (``F = y - f^g``; tested
against JAX autodiff). The observables are those of the DMFT (spec §2.3): the train error ``Rhat_n``, the
test error (the population risk, exact for given weights)

.. math::

    e_{ts} = \tfrac12\Big[\tau^2 + \|\phi\|^2 - \tfrac2m \sum_i a_i \hat\phi(v_i) + \tfrac1{m^2}\sum_{ij} a_i a_j h(C_{ij})\Big],

``a = mean_i a_i``, ``v = mean_i <u, w_i>``, and the two-time overlaps ``C_d(t, s) = mean_i <w_i(t), w_i(s)>``,
``C_o(t, s) = mean_{i != j} <w_i(t), w_j(s)>``.

Implementation: one realisation is a pure JAX function of its tensors, labels and initial weights (time loop
in ``lax.scan``); realisations are ``jax.vmap``-ed in chunks that fit the memory budget. The random numbers
are drawn on the host by NumPy, realisation ``r`` from ``default_rng([seed, r])`` (so results do not depend on
the chunking, and the compiled program holds no PRNG: XLA compiles it several times faster).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax

from ..results import Result, json_attr, problem_attrs, rebuild_problem

__all__ = ["simulate", "Simulation", "ModelParams", "model_params", "sample_features", "loss", "gradients",
           "population_risk", "initial_weights"]

MAX_TENSOR_DEGREE = 3


# ------------------------------------------------------------------------------------------
# parameters read off a dmft.Problem
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelParams:
    """The numbers a simulation needs, read off a :class:`learndyn.dmft.Problem`.

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
        nz = np.flatnonzero(np.asarray(self.h))
        return int(nz[-1]) if nz.size else 0

    @property
    def single_index(self) -> bool:
        return bool(np.any(np.asarray(self.hatphi) != 0) or self.phi_norm2 > 0)


def model_params(problem: Any) -> ModelParams:
    """Extract :class:`ModelParams` from a :class:`learndyn.dmft.Problem` (already validated there).

    ``c_k`` are the activation's normalised Hermite coefficients (``sqrt(h_k)``), ``b_k = hatphi_k / c_k`` the
    target's components seen by the hidden units, ``extra_var = ||phi||^2 - sum_k b_k^2``.
    """
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


def _poly(coef, x):
    """sum_k coef[k] x^k (Horner), elementwise."""
    out = jnp.zeros_like(x) + coef[-1]
    for ck in coef[-2::-1]:
        out = out * x + ck
    return out


def population_risk(p: ModelParams, a, W, u_index: int = 0):
    """Test error (population risk, spec §1.5) of weights ``a`` (..., m), ``W`` (..., m, d), ``u = e_{u_index}``."""
    m = p.m
    C = jnp.einsum("...id,...jd->...ij", W, W)
    v = W[..., u_index]
    risk = 0.5 * (p.tau**2 + p.phi_norm2) - jnp.sum(a * _poly(p.hatphi, v), -1) / m
    return risk + 0.5 * jnp.einsum("...i,...ij,...j->...", a, _poly(p.h, C), a) / m**2


# ------------------------------------------------------------------------------------------
# one realisation: features, loss, gradients
# ------------------------------------------------------------------------------------------
def _symmetrise_np(J: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return J
    if k == 2:
        return 0.5 * (J + np.swapaxes(J, 1, 2))
    perms = [(0, 1, 2, 3), (0, 1, 3, 2), (0, 2, 1, 3), (0, 2, 3, 1), (0, 3, 1, 2), (0, 3, 2, 1)]
    return sum(np.transpose(J, q) for q in perms) / 6.0


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def sample_features(p: ModelParams, rng, n: int, d: int):
    """Draw one realisation with the NumPy generator ``rng`` (or a seed): symmetrised tensors ``J[k]`` of shape
    (n, d^k) for the degrees present in h, and the labels ``y`` (n,). Returns ``(tensors, y)``, ``tensors`` a
    tuple indexed by degree - 1 (``None`` for absent degrees)."""
    K = p.degree
    if K > MAX_TENSOR_DEGREE:
        raise ValueError(f"h: degree {K} > {MAX_TENSOR_DEGREE} is not supported by the Gaussian-model simulator "
                         "(it stores n d^k numbers per realisation)")
    rng = _rng(rng)
    y = p.tau * rng.standard_normal(n)
    if p.extra_var > 0:
        y = y + math.sqrt(p.extra_var) * rng.standard_normal(n)
    tensors = []
    for k in range(1, MAX_TENSOR_DEGREE + 1):
        if k > K or p.c[k] == 0:
            tensors.append(None)
            continue
        J = _symmetrise_np(rng.standard_normal((n,) + (d,) * k), k)
        tensors.append(J)
        if p.b[k] != 0:
            y = y + p.b[k] * J[(slice(None),) + (0,) * k]
    return tuple(tensors), y


def _unit_outputs(p: ModelParams, tensors, W):
    """sigma_mu(w_i) for all samples and neurons: (n, m)."""
    out = 0.0
    for k, J in enumerate(tensors, start=1):
        if J is None:
            continue
        if k == 1:
            val = J @ W.T
        elif k == 2:
            val = jnp.einsum("nab,ia,ib->ni", J, W, W)
        else:
            val = jnp.einsum("nabc,ia,ib,ic->ni", J, W, W, W)
        out = out + p.c[k] * val
    return out


def loss(p: ModelParams, tensors, y, a, W):
    """``L = (n/d) Rhat_n = (1/(2d)) sum_mu (y_mu - f^g_mu(a, W))^2`` (the GF time rescaling of spec §1.2)."""
    d = W.shape[-1]
    F = y - _unit_outputs(p, tensors, W) @ a / p.m
    return 0.5 * jnp.sum(F**2) / d


def gradients(p: ModelParams, tensors, y, a, W):
    """Explicit ``(grad_a L, grad_W L, F, sigma)`` with ``F = y - f^g`` (n,) and ``sigma`` (n, m)."""
    m = p.m
    d = W.shape[-1]
    S = _unit_outputs(p, tensors, W)
    F = y - S @ a / m
    grad_a = -(F @ S) / (d * m)
    gW = jnp.zeros_like(W)
    for k, J in enumerate(tensors, start=1):
        if J is None:
            continue
        if k == 1:
            g = jnp.broadcast_to(F @ J, W.shape)
        elif k == 2:
            Q = jnp.einsum("n,nab->ab", F, J)
            g = 2.0 * W @ Q
        else:
            Q = jnp.einsum("n,nabc->abc", F, J)
            g = 3.0 * jnp.einsum("abc,ia,ib->ic", Q, W, W)
        gW = gW + p.c[k] * g
    grad_W = -(a[:, None] / (d * m)) * gW
    return grad_a, grad_W, F, S


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
        raise ValueError(f"init: must be 'orthogonal' or 'uniform', got {init!r}")
    G[0] = 0.0  # orthogonal to u = e_1
    Q, _ = np.linalg.qr(G)  # (d, m), orthonormal columns
    v0 = np.asarray(p.v0) if len(p.v0) else np.zeros(m)
    lam, V = np.linalg.eigh(np.asarray(p.C0) - np.outer(v0, v0))
    L = V * np.sqrt(np.clip(lam, 0.0, None))
    W = L @ Q.T
    W[:, 0] = v0
    return W


# ------------------------------------------------------------------------------------------
# the batched simulation
# ------------------------------------------------------------------------------------------
def _record(p: ModelParams, a, W, F, keep_C: bool):
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


def _two_time(Ws, m: int) -> dict:
    """``C_d(t,s) = mean_i <w_i(t), w_i(s)>``, ``C_o(t,s) = mean_{i != j} <w_i(t), w_j(s)>`` from rows (T, m, d)."""
    diag = jnp.einsum("tid,sid->ts", Ws, Ws)
    tot = Ws.sum(1)
    return {"C_d": diag / m, "C_o": (tot @ tot.T - diag) / max(m * (m - 1), 1)}


@functools.lru_cache(maxsize=16)
def _compiled(p: ModelParams, n: int, d: int, dt: float, every: int, n_rec: int, keep_C: bool):
    def one(tensors, y, W0):
        a0 = jnp.asarray(p.a0)

        def step(state, _):
            a, W = state
            ga, gW, F, _ = gradients(p, tensors, y, a, W)
            if p.train_second_layer:
                a = a - dt * ga
            W = W - dt * gW
            W = W / jnp.linalg.norm(W, axis=1, keepdims=True)
            return (a, W), None

        def rec(state, _):
            a, W = state
            F = y - _unit_outputs(p, tensors, W) @ a / p.m
            out = _record(p, a, W, F, keep_C)
            state, _ = lax.scan(step, state, None, length=every)
            return state, out

        _, recs = lax.scan(rec, (a0, W0), None, length=n_rec)
        recs.update(_two_time(recs.pop("W"), p.m))
        return recs

    return jax.jit(jax.vmap(one))


def _bytes_per_realisation(p: ModelParams, n: int, d: int, n_rec: int) -> int:
    tensor = sum(n * d**k for k in range(1, p.degree + 1) if p.c[k] != 0)
    return 8 * (3 * tensor + 2 * n_rec * (n_rec + p.m * d + p.m * p.m) + 4 * n * p.m)


@dataclass
class Simulation(Result):
    """Observables of a batch of simulations (Gaussian-model GD or real networks) on the DMFT time axis.

    Per-realisation arrays have shape ``(R, T)`` (``a_i``, ``v_i``: ``(R, T, m)``; ``C``: ``(R, T, m, m)``
    equal-time overlaps, kept only for small m). ``C_d``, ``C_o`` (T, T) are realisation means with standard
    errors ``C_d_sem``, ``C_o_sem``. ``status`` is ``"ok"`` or ``"diverged"`` (then ``t_reached`` says where
    the first realisation became non-finite; the data before it are kept).
    """

    problem: Any
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
    seed: int
    settings: dict = field(default_factory=dict)
    status: str = "ok"
    t_reached: float = float("nan")

    @property
    def realisations(self) -> int:
        return self.data["train_error"].shape[0]

    @property
    def success(self) -> bool:
        return self.status == "ok"

    def __getattr__(self, name: str):
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        if name in ("a", "v") and f"{name}_i" in data:
            return data[f"{name}_i"].mean(-1)
        raise AttributeError(name)

    def values(self, name: str) -> np.ndarray:
        """Per-realisation values of an observable: train_error, test_error, a, v, C_o_tt, a_i, v_i, C."""
        return np.asarray(getattr(self, name))

    def mean(self, name: str) -> np.ndarray:
        """Realisation mean (diverged realisations are NaN from their divergence on and left out)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.values(name), axis=0)

    def sem(self, name: str) -> np.ndarray:
        """Standard error of the realisation mean."""
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
        R, m = self.realisations, self.values("a_i").shape[-1]
        dims = {1: ("realisation",), 2: ("realisation", "time"), 3: ("realisation", "time", "neuron"),
                4: ("realisation", "time", "neuron", "neuron2")}
        ds = xr.Dataset(coords={"time": self.t, "realisation": np.arange(R), "neuron": np.arange(m)})
        for name in ("train_error", "test_error", "a", "v", "C_o_tt"):
            ds[name] = (dims[2], self.values(name))
            ds[f"{name}_mean"] = (("time",), self.mean(name))
            ds[f"{name}_sem"] = (("time",), self.sem(name))
        for name in ("a_i", "v_i", "C"):
            if name in self.data:
                ds[name] = (dims[self.data[name].ndim], self.data[name])
        for name in ("C_d", "C_o", "C_d_sem", "C_o_sem"):
            ds[name] = (("time", "time2"), getattr(self, name))
        ds.attrs.update(problem_attrs(self.problem, kind=self.kind, d=self.d, n=self.n, dt=self.dt, seed=self.seed,
                                      status=self.status, t_reached=self.t_reached, settings=self.settings))
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Simulation":
        """The simulation stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        from .problem import Problem

        names = ("train_error", "test_error", "a", "v", "C_o_tt", "a_i", "v_i", "C")
        data = {k: ds[k].values for k in names if k in ds}
        a = ds.attrs
        return cls(problem=rebuild_problem(ds, Problem), kind=str(a["kind"]), t=ds["time"].values, data=data,
                   C_d=ds["C_d"].values, C_o=ds["C_o"].values, C_d_sem=ds["C_d_sem"].values,
                   C_o_sem=ds["C_o_sem"].values, d=int(a["d"]), n=int(a["n"]), dt=float(a["dt"]), seed=int(a["seed"]),
                   settings=json_attr(ds, "settings", {}), status=str(a.get("status", "ok")),
                   t_reached=float(a.get("t_reached", np.nan)))


def _record_plan(t_max: float, dt: float, every: int | None, max_records: int) -> tuple[int, int]:
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt: must be finite and > 0, got {dt!r}")
    if not (np.isfinite(t_max) and t_max >= 0):
        raise ValueError(f"t_max: must be finite and >= 0, got {t_max!r}")
    n_steps = int(round(t_max / dt))
    if every is None:
        every = max(1, math.ceil(n_steps / max(max_records - 1, 1)))
    if every < 1:
        raise ValueError(f"record_every: must be >= 1, got {every!r}")
    return every, n_steps // every + 1


def _finish(problem, kind, recs: list[dict], every, dt, d, n, seed, settings, n_rec, blowup: float = 1e8) -> Simulation:
    """Assemble a :class:`Simulation`; a realisation whose errors become non-finite or exceed ``blowup`` times
    the initial test error has diverged: its records from there on are set to NaN, the rest is kept."""
    data = {k: np.concatenate([np.asarray(r[k]) for r in recs]) for k in recs[0]}
    cd, co = data.pop("C_d"), data.pop("C_o")
    t = np.arange(n_rec) * every * dt
    scale = blowup * np.maximum(np.abs(data["test_error"][:, :1]), 1e-300)
    bad = np.zeros(data["train_error"].shape, dtype=bool)
    for name in ("train_error", "test_error"):
        x = data[name]
        bad |= ~np.isfinite(x) | (np.abs(np.nan_to_num(x, nan=np.inf)) > scale)
    bad = np.cumsum(bad, axis=1) > 0  # from the first bad record on
    status, t_reached = "ok", float(t[-1])
    if bad.any():
        first = int(np.min(np.argmax(bad, axis=1)[bad.any(axis=1)]))
        status, t_reached = "diverged", float(t[max(first - 1, 0)])
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
                          C_d_sem=sem(cd), C_o_sem=sem(co), d=d, n=n, dt=float(dt), seed=int(seed), settings=settings,
                          status=status, t_reached=t_reached)


def _check_size(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def simulate(problem: Any, d: int, t_max: float, dt: float, realisations: int = 100, seed: int = 0,
             init: str = "orthogonal", record_every: int | None = None, max_records: int = 201,
             memory_gb: float = 1.0, blowup: float = 1e8) -> Simulation:
    """Projected GD on the Gaussian model of ``problem`` (a ``dmft.Problem``) in dimension ``d`` with
    ``n = round(n_over_d * d)`` samples, step ``dt`` up to ``t_max``, for ``realisations`` independent draws
    of the random tensors, labels and initial weights.

    Records every ``record_every``-th step (default: at most ``max_records`` records), i.e. on the DMFT grid
    ``t = k dt`` (``sol.t``). Realisations run ``jax.vmap``-ed in chunks of at most ``memory_gb``. A realisation
    whose error exceeds ``blowup`` times its initial value has diverged (status, data before it kept).
    """
    p = model_params(problem)
    d = _check_size("d", d, 2)
    realisations = _check_size("realisations", realisations, 1)
    if init == "uniform" and (not np.allclose(np.asarray(p.C0), np.eye(p.m)) or np.any(np.asarray(p.v0) != 0)):
        raise ValueError("init: 'uniform' gives C(0,0) = I, v(0) = 0; use init='orthogonal' for other C0, v0")
    if p.m > d - 1 and init == "orthogonal":
        raise ValueError(f"d: need d > m = {p.m} for orthonormal initial rows orthogonal to u")
    n = int(round(p.abar * d))
    if n < 1:
        raise ValueError(f"d: n = round(n_over_d * d) = {n}; take a larger d")
    every, n_rec = _record_plan(t_max, dt, record_every, max_records)
    keep_C = p.m <= 8
    per = _bytes_per_realisation(p, n, d, n_rec)
    chunk = int(max(1, min(realisations, memory_gb * 2**30 // per)))
    fn = _compiled(p, n, d, float(dt), every, n_rec, keep_C)
    recs = []
    for start in range(0, realisations, chunk):
        idx = np.arange(start, min(start + chunk, realisations))
        if len(idx) < chunk:  # pad to the compiled chunk size
            idx = np.concatenate([idx, np.full(chunk - len(idx), idx[-1])])
        feats, ys, W0s = [], [], []
        for r in idx:
            rng = np.random.default_rng([int(seed), int(r)])
            tensors, y = sample_features(p, rng, n, d)
            feats.append(tensors)
            ys.append(y)
            W0s.append(initial_weights(p, rng, d, init))
        tensors = tuple(None if feats[0][k] is None else jnp.asarray(np.stack([f[k] for f in feats]))
                        for k in range(MAX_TENSOR_DEGREE))
        out = fn(tensors, jnp.asarray(np.stack(ys)), jnp.asarray(np.stack(W0s)))
        take = min(chunk, realisations - start)
        recs.append({k: np.asarray(v)[:take] for k, v in out.items()})
    settings = dict(init=init, record_every=every, abar_effective=n / d)
    return _finish(problem, "gaussian_model", recs, every, dt, d, n, seed, settings, n_rec, blowup)
