r"""Finite-N online SGD for the teacher-student setup, vectorised over seeds (Goldt et al. 2019, eqs. (2)-(3)).

:func:`simulate` runs online SGD -- one fresh input ``x ~ N(0, I_N)`` and label noise ``zeta ~ N(0, 1)`` per step,
the update rules of :mod:`learndyn.online.conventions` -- for every seed at once, and records the order parameters
``Q = w w^T/N``, ``R = w w*^T/N`` and ``v`` (Goldt et al. 2019, eq. (5)) at the requested times ``alpha = steps / N``,
with the generalisation error ``eps_g = E[(phi - y_noiseless)^2]/2`` (eq. (4)) both from the order parameters
(``u^T I2(C) u / 2``; exact for erf, ReLU, linear) and, optionally, on a held-out test set (any activation).

The module is the driver; the concerns live beside it: the random streams in :mod:`learndyn.online.streams`
(counter-based SplitMix64 + Box-Muller, or ``jax.random`` with ``rng="threefry"``), the compiled step engine in
:mod:`learndyn.online.sgd_engine` (blocks of steps in one XLA loop, seeds split over the CPU cores). Python only
sees the recording points (and splits long intervals so that a progress bar can move and Ctrl-C is handled
promptly). Weights and all arithmetic are float64.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..resources import check_memory
from ..results import InvalidInputError, Result, Status, check_output_path, problem_attrs, rebuild_problem
from . import conventions, sgd_engine
from ._util import check_problem, check_seeds, positive_int, positive_number, save_times
from .initial import initial_weights
from .ode import default_alphas, generalisation_error_arrays
from .problem import OrderParameters, Problem
from .sgd_engine import sgd_update
from .streams import seed_offset

__all__ = ["simulate", "Simulation", "sgd_update", "SEED_STATUS", "generalisation_error_batch", "simulate_bytes",
           "record_steps", "clear_cache"]

#: what each per-seed status of :attr:`Simulation.seed_status` means (keys: :class:`learndyn.Status` values)
SEED_STATUS = {
    Status.SUCCESS.value: "simulated to the last requested alpha",
    Status.DIVERGED.value: "weights or error became non-finite or exploded (learning rate above the stability limit?)",
    Status.INTERRUPTED.value: "the run was interrupted (Ctrl-C) before the last requested alpha",
}


# ------------------------------------------------------------------------------------------
# generalisation error from order parameters (vectorised over any batch)
# ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _eg_function(key: Problem):
    return jax.jit(jax.vmap(lambda Q, R, T, v, vt: generalisation_error_arrays(key, Q, R, T, v, vt)))


def clear_cache() -> None:
    """Forget every compiled program of :mod:`learndyn.online`: the ODE right-hand sides, state checks and
    error maps of :func:`learndyn.online.integrate`, the solver programs of :mod:`learndyn.online.rk`, and the
    SGD and test-error programs of :func:`simulate` (the next call compiles afresh; frees their memory)."""
    from . import ode, rk

    for cache in (ode._vector_field, ode._divergence_test, ode._eg_along, rk._program, sgd_engine.compiled,
                  sgd_engine.compiled_test_error, _eg_function):
        cache.cache_clear()


def generalisation_error_batch(problem: Problem, Q, R, T, v, v_teacher) -> np.ndarray:
    """``eps_g = u^T I2(C) u / 2``, ``u = (v, -v*)`` (Goldt et al. 2019, eq. (4)) for a batch of states (leading axis).

    Returns NaN where the activation has no usable Gaussian integral (use a test set instead).
    """
    Q, R, T, v, vt = (np.asarray(a, dtype=np.float64) for a in (Q, R, T, v, v_teacher))
    key = problem.replace(lr=1.0, lr2=None, sigma=0.0, weight_decay=0.0)
    try:
        return np.asarray(_eg_function(key)(Q, R, T, v, vt))
    except NotImplementedError:
        return np.full(Q.shape[0], np.nan)


# ------------------------------------------------------------------------------------------
# result
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Simulation(Result):
    """Result of :func:`simulate`: the order parameters of finite-N online SGD (Goldt et al. 2019, eqs. (2)-(5)).

    Arrays over ``(seed, alpha, ...)``: ``Q`` (S, A, K, K), ``R`` (S, A, K, M), ``v`` (S, A, K),
    ``eg`` (S, A) from the order parameters (NaN where no Gaussian integral is available),
    ``eg_test`` (S, A) on the held-out test set (``None`` if ``test_set_size == 0``); per seed:
    ``T`` (S, M, M), ``v_teacher`` (S, M), ``seed_status`` and ``diverged_alpha`` (NaN unless diverged).
    ``alpha = steps / N`` are the recorded times. ``status`` (a :class:`learndyn.Status`) is ``"success"``,
    ``"diverged"`` (some seed diverged; the others continued) or ``"interrupted"``; ``seed_status`` holds the
    same values per seed (:data:`SEED_STATUS`); data recorded before a failure is kept and a
    diverged seed's later records are NaN. ``save_error`` is ``""``, or says why ``save_path`` was not
    written (the result itself is complete).
    """

    problem: Problem
    N: int
    seeds: np.ndarray
    alpha: np.ndarray
    steps: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    eg: np.ndarray
    eg_test: np.ndarray | None
    T: np.ndarray
    v_teacher: np.ndarray
    initial_states: tuple
    seed_status: np.ndarray
    diverged_alpha: np.ndarray
    status: Status = Status.SUCCESS
    message: str = ""
    batch_size: int = 1
    test_set_size: int = 0
    init: str = "large"
    rng: str = "splitmix"
    wall_time: float = float("nan")
    save_error: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.of(self.status))
        # files written before the common Status vocabulary say "ok" for a seed that finished
        object.__setattr__(self, "seed_status", np.array([Status.of(s).value for s in np.asarray(self.seed_status)
                                                          .ravel()], dtype=str))

    def _index(self, seed: int) -> int:
        hits = np.flatnonzero(self.seeds == seed)
        if hits.size == 0:
            raise InvalidInputError(f"seed: {seed!r} was not simulated; seeds are {self.seeds.tolist()}")
        return int(hits[0])

    def initial_state(self, seed: int | None = None) -> OrderParameters:
        """The exact initial order parameters of ``seed`` (default: the first seed), for
        ``online.integrate(problem, sim.initial_state(seed), ...)``."""
        return self.initial_states[0 if seed is None else self._index(seed)]

    def state(self, seed: int, index: int = -1) -> OrderParameters:
        """Order parameters of ``seed`` at record ``index``."""
        s = self._index(seed)
        Q = self.Q[s, index]
        return OrderParameters(Q=0.5 * (Q + Q.T), R=self.R[s, index], T=self.T[s], v=self.v[s, index],
                               v_teacher=self.v_teacher[s])

    @property
    def eg_mean(self) -> np.ndarray:
        """Seed average of ``eg`` (or of ``eg_test`` where ``eg`` is unavailable), ignoring diverged seeds."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all seeds diverged at some times
            return np.nanmean(self._eg_best, axis=0)

    @property
    def eg_sem(self) -> np.ndarray:
        """Standard error of the seed average (``std / sqrt(n_seeds)``; NaN for one seed)."""
        e = self._eg_best
        n = np.sum(np.isfinite(e), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanstd(e, axis=0, ddof=1) / np.sqrt(n)

    @property
    def _eg_best(self) -> np.ndarray:
        if np.all(np.isnan(self.eg)) and self.eg_test is not None:
            return self.eg_test
        return self.eg

    def to_xarray(self) -> xr.Dataset:
        """The simulation as a Dataset over ``(seed, alpha)`` (and the unit indices ``k``, ``l``, ``n``, ``m``)."""
        K, M = self.problem.K, self.problem.M
        Q0 = np.stack([s.Q for s in self.initial_states])
        R0 = np.stack([s.R for s in self.initial_states])
        v0 = np.stack([s.v for s in self.initial_states])
        data = {
            "eg": (("seed", "alpha"), self.eg, {"long_name": "generalisation error from the order parameters",
                                               "definition": "E[(phi - y_noiseless)^2]/2"}),
            "Q": (("seed", "alpha", "k", "l"), self.Q, {"long_name": "student-student overlap w_k.w_l/N"}),
            "R": (("seed", "alpha", "k", "n"), self.R, {"long_name": "student-teacher overlap w_k.w*_n/N"}),
            "v": (("seed", "alpha", "k"), self.v, {"long_name": "student second-layer weights"}),
            "T": (("seed", "n", "m"), self.T, {"long_name": "teacher-teacher overlap"}),
            "v_teacher": (("seed", "n"), self.v_teacher, {"long_name": "teacher second-layer weights"}),
            "Q0": (("seed", "k", "l"), Q0, {"long_name": "exact initial Q"}),
            "R0": (("seed", "k", "n"), R0, {"long_name": "exact initial R"}),
            "v0": (("seed", "k"), v0, {"long_name": "initial v"}),
            "steps": (("alpha",), self.steps.astype(np.int64)),
            "seed_status": (("seed",), np.asarray(self.seed_status, dtype=str)),
            "diverged_alpha": (("seed",), self.diverged_alpha),
        }
        if self.eg_test is not None:
            data["eg_test"] = (("seed", "alpha"), self.eg_test,
                               {"long_name": f"generalisation error on {self.test_set_size} held-out inputs"})
        ds = xr.Dataset(
            data,
            coords={"seed": self.seeds, "alpha": self.alpha, "k": np.arange(K), "l": np.arange(K),
                    "n": np.arange(M), "m": np.arange(M)},
            attrs=problem_attrs(self.problem, kind="online.sgd", N=int(self.N), status=self.status.value,
                                message=self.message, batch_size=int(self.batch_size),
                                test_set_size=int(self.test_set_size), init=str(self.init), rng=self.rng,
                                wall_time_s=float(self.wall_time)),
        )
        ds["alpha"].attrs["long_name"] = "time alpha = steps / N"
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Simulation":
        """The simulation stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        a = ds.attrs
        T, vt = ds["T"].values, ds["v_teacher"].values
        initial_states = tuple(
            OrderParameters(Q=ds["Q0"].values[s], R=ds["R0"].values[s], T=T[s], v=ds["v0"].values[s],
                            v_teacher=vt[s]) for s in range(ds.sizes["seed"]))
        return cls(
            problem=rebuild_problem(ds, Problem), N=int(a["N"]), seeds=ds["seed"].values,
            alpha=ds["alpha"].values, steps=ds["steps"].values, Q=ds["Q"].values, R=ds["R"].values,
            v=ds["v"].values, eg=ds["eg"].values, eg_test=ds["eg_test"].values if "eg_test" in ds else None,
            T=T, v_teacher=vt, initial_states=initial_states, seed_status=ds["seed_status"].values.astype(str),
            diverged_alpha=ds["diverged_alpha"].values, status=Status.of(str(a.get("status", "success"))),
            message=str(a.get("message", "")), batch_size=int(a.get("batch_size", 1)),
            test_set_size=int(a.get("test_set_size", 0)), init=str(a.get("init", "large")),
            rng=str(a.get("rng", "splitmix")), wall_time=float(a.get("wall_time_s", np.nan)))



# ------------------------------------------------------------------------------------------
# simulate: checks, one recording interval (the step), the driver
# ------------------------------------------------------------------------------------------
def simulate_bytes(problem: Problem, N: int, n_seeds: int, n_records: int, batch_size: int = 1,
                   test_set_size: int = 0) -> int:
    """Estimated peak memory (bytes) of :func:`simulate`, from the sizes alone.

    The weights ``(K + M) N`` per seed are held about four times at the peak (the per-seed draws kept
    for the initial records, their stacked copy, the compiled loop's input and output states), plus the
    inputs drawn per block (at most ~2^16 numbers for all seeds), the test-set blocks, and the recorded
    series ``(K^2 + K M + K + 2)`` per seed and record, about three times (the buffers, the result and
    its ``eps_g`` evaluation). Measured: N=1e6, 4 seeds, K=4, M=2: peak resident memory +677 MB, estimate
    832 MB (1.23x).
    """
    K, M, S = problem.K, problem.M, n_seeds
    weights = 4 * S * (K + M) * N
    draws = 2 * max(2**16, S * batch_size * (N + 1))
    test = 0
    if test_set_size > 0:
        block = int(min(test_set_size, max(64, 2**22 // (N * S))))
        test = 2 * block * N + 4 * S * block * (K + M)
    records = 3 * S * n_records * (K * K + K * M + K + 2)
    return 8 * (weights + draws + test + records)


def record_steps(N: int, alphas, alpha_max, name: str = "alphas") -> np.ndarray:
    """The SGD step counts at which :func:`simulate` records: ``alphas`` (default: ``0`` plus 60 log-spaced times up
    to ``alpha_max``) times ``N`` steps per unit time, rounded to whole steps, duplicates merged. ``name`` is the
    parameter named in error messages (``"alphas"`` or ``"times"``)."""
    if alphas is None:
        if alpha_max is None:
            raise InvalidInputError(f"alpha_max: give alpha_max or {name}")
        am = float(alpha_max)
        if not (np.isfinite(am) and am > 0):
            raise InvalidInputError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
        alphas = default_alphas(am, n=60, alpha_min=min(0.1, am / 10))
    try:
        a = np.asarray(alphas, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a 1-D array of times") from None
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise InvalidInputError(f"{name}: must be a non-empty array of finite times >= 0")
    if np.any(np.diff(a) <= 0):
        raise InvalidInputError(f"{name}: times must be strictly increasing")
    if alpha_max is not None and a[-1] > float(alpha_max) * (1 + 1e-12):
        raise InvalidInputError(f"{name}: the last time {a[-1]:g} exceeds alpha_max={alpha_max:g}")
    return np.unique(np.round(a * conventions.steps_per_unit_time(N)).astype(np.int64))


class _Run:
    """The state of one :func:`simulate` call between recordings: the compiled program and its state, the
    recorded series, the per-seed statuses. :meth:`advance_to` + :meth:`record` are one recording interval
    (the step of the driver), :meth:`result` the :class:`Simulation` so far."""

    def __init__(self, problem: Problem, N: int, seeds: np.ndarray, steps: np.ndarray, inits: list, init_name: str,
                 batch_size: int, test_set_size: int, rng: str, divergence_threshold: float,
                 max_seconds_per_call: float, t_start: float):
        S, K, M = len(seeds), problem.K, problem.M
        self.problem, self.N, self.seeds, self.steps = problem, N, seeds, steps
        self.init_name, self.batch_size, self.rng, self.t_start = init_name, batch_size, rng, t_start
        self.divergence_threshold, self.max_seconds_per_call = divergence_threshold, max_seconds_per_call
        self.initial_states = tuple(iw.order_parameters() for iw in inits)
        self.st, self.advance, self.overlaps, place = sgd_engine.program(problem, N, S, batch_size, rng)
        self.params = tuple(jnp.float64(p) for p in (problem.lr, problem.eta2, problem.sigma, problem.weight_decay))
        self.state = place((
            jnp.asarray(np.stack([iw.w for iw in inits])),
            jnp.asarray(np.stack([iw.v for iw in inits])),
            jnp.asarray(np.stack([iw.w_teacher for iw in inits])),
            jnp.asarray(np.stack([iw.v_teacher for iw in inits])),
            jnp.asarray(np.array([seed_offset(int(s)) for s in seeds], dtype=np.uint64)),
            jnp.zeros(S, dtype=jnp.int64),
            jnp.full(S, -1, dtype=jnp.int64),
        ))
        self.T = np.stack([iw.order_parameters().T for iw in inits])
        self.vt = np.stack([iw.v_teacher for iw in inits])
        self.test_fn = None
        if test_set_size > 0:
            block = int(min(test_set_size, max(64, 2**22 // (N * S))))
            n_blocks = -(-test_set_size // block)
            self.test_fn = sgd_engine.compiled_test_error(problem.g, K, M, N, n_blocks, block)
            test_set_size = n_blocks * block
        self.test_set_size = int(test_set_size)
        A = len(steps)
        self.Q = np.full((S, A, K, K), np.nan)
        self.R = np.full((S, A, K, M), np.nan)
        self.v = np.full((S, A, K), np.nan)
        self.eg_test = np.full((S, A), np.nan) if self.test_fn is not None else None
        self.seed_status = np.array([Status.SUCCESS.value] * S, dtype=object)
        self.diverged_alpha = np.full(S, np.nan)
        self.status, self.message = Status.SUCCESS, ""
        self.current = 0  # SGD steps done
        self.n_done = 0  # records taken
        # calibrated call size: ~max_seconds_per_call of work per compiled call (first guess 1 us per N-vector op)
        self.per_step_guess = 2e-9 * N * S * batch_size + 5e-6
        self.call_steps = max(self.st.block, int(max_seconds_per_call / self.per_step_guess))

    def advance_to(self, target: int, bar) -> None:
        """Run SGD up to step ``target`` in compiled calls of about ``max_seconds_per_call`` each."""
        while self.current < target:
            n = int(min(target - self.current, self.call_steps))
            t0 = time.perf_counter()
            self.state = self.advance(self.state, jnp.int64(n), self.params)
            self.state[0].block_until_ready()
            dt = time.perf_counter() - t0
            if n >= 4 * self.st.block and dt > 0:  # adapt the call size to the measured speed
                self.call_steps = max(self.st.block, int(n * self.max_seconds_per_call / dt))
            self.current += n
            bar.update(n)

    def record(self, r: int) -> bool:
        """Take record ``r`` (at step ``steps[r]``) and flag seeds that diverged; ``True`` once every seed has."""
        target, N, steps, seeds = self.steps[r], self.N, self.steps, self.seeds
        Q, R, v, big = (np.asarray(a) for a in self.overlaps(self.state))
        bad = np.asarray(self.state[6])
        self.Q[:, r], self.R[:, r], self.v[:, r] = Q, R, v
        if self.eg_test is not None:
            self.eg_test[:, r] = np.asarray(self.test_fn(*self.state[:4]))
        self.n_done = r + 1
        # divergence: non-finite Delta inside the loop, or exploding overlaps at the record
        newly = ((self.seed_status == Status.SUCCESS.value)
                 & ((bad >= 0) | ~np.isfinite(big) | (big > self.divergence_threshold)))
        for s in np.flatnonzero(newly):
            self.seed_status[s] = Status.DIVERGED.value
            self.diverged_alpha[s] = (bad[s] if bad[s] >= 0 else target) / N
            warnings.warn(f"online.simulate: seed {int(seeds[s])} diverged at alpha = {self.diverged_alpha[s]:g} "
                          f"(N={N}, lr={self.problem.lr:g}); its data up to there is kept", RuntimeWarning,
                          stacklevel=3)
        dead = self.seed_status == Status.DIVERGED.value
        if not dead.any():
            return False
        # records at or after the divergence are NaN
        for s in np.flatnonzero(dead):
            late = steps[: r + 1] >= self.diverged_alpha[s] * N
            for series in (self.Q, self.R, self.v, self.eg_test):
                if series is not None:
                    series[s, : r + 1][late] = np.nan
        self.status = Status.DIVERGED
        self.message = "; ".join(f"seed {int(seeds[s])} diverged at alpha = {self.diverged_alpha[s]:g}"
                                 for s in np.flatnonzero(dead))
        if dead.all():
            self.message += "; all seeds diverged, stopped"
            self.n_done = len(steps)
            return True
        return False

    def interrupted(self) -> None:
        """Mark the run as stopped by Ctrl-C (the records taken so far are kept)."""
        self.status = Status.INTERRUPTED
        for s in np.flatnonzero(self.seed_status == Status.SUCCESS.value):
            self.seed_status[s] = Status.INTERRUPTED.value
        self.message = (f"interrupted at alpha = {self.current / self.N:g}; records up to alpha = "
                        f"{(self.steps[self.n_done - 1] / self.N if self.n_done else 0.0):g} are kept")

    def result(self) -> Simulation:
        """The :class:`Simulation` of the records taken so far."""
        n_rec, problem, S = self.n_done, self.problem, len(self.seeds)
        K, M = problem.K, problem.M
        sl = slice(0, n_rec)
        Qc, Rc, vc = self.Q[:, sl], self.R[:, sl], self.v[:, sl]
        eg = np.full((S, n_rec), np.nan)
        if n_rec:
            eg = generalisation_error_batch(problem, Qc.reshape(S * n_rec, K, K), Rc.reshape(S * n_rec, K, M),
                                            np.repeat(self.T, n_rec, axis=0), vc.reshape(S * n_rec, K),
                                            np.repeat(self.vt, n_rec, axis=0)).reshape(S, n_rec)
            eg = np.where(np.isfinite(Qc).all(axis=(2, 3)), eg, np.nan)
        return Simulation(
            problem=problem, N=self.N, seeds=self.seeds, alpha=self.steps[sl] / self.N, steps=self.steps[sl], Q=Qc,
            R=Rc, v=vc, eg=eg, eg_test=None if self.eg_test is None else self.eg_test[:, sl], T=self.T,
            v_teacher=self.vt, initial_states=self.initial_states, seed_status=self.seed_status.astype(str),
            diverged_alpha=self.diverged_alpha.copy(), status=self.status, message=self.message,
            batch_size=self.batch_size, test_set_size=self.test_set_size, init=str(self.init_name), rng=self.rng,
            wall_time=time.perf_counter() - self.t_start,
        )


def simulate(
    problem: Problem,
    N: int,
    alpha_max: float | None = None,
    seeds: int | Sequence[int] = 1,
    alphas: Sequence[float] | np.ndarray | None = None,
    *,
    times: Sequence[float] | np.ndarray | None = None,
    init: Any = "large",
    v_teacher: Any = None,
    init_scale: float = 1e-3,
    batch_size: int = 1,
    test_set_size: int | None = None,
    rng: str = "splitmix",
    progress: bool | None = None,
    save_path: str | Path | None = None,
    save_every: float = 60.0,
    divergence_threshold: float = 1e6,
    max_seconds_per_call: float = 0.5,
) -> Simulation:
    """Run online SGD (Goldt et al. 2019, eqs. (2)-(3)) for every seed at once; record the order parameters
    (eq. (5)) and the generalisation error (eq. (4)) at ``times``.

    Parameters
    ----------
    problem:
        The :class:`Problem` (K, M, activation, ``lr``, ``lr2``, ``sigma``, training mode, weight decay).
    N:
        Input dimension (positive integer).
    alpha_max, times:
        Recording times ``alpha = steps / N`` (rounded to whole steps; duplicates merged); default
        ``0`` plus 60 log-spaced times up to ``alpha_max``. ``alphas`` is the former name of ``times``
        (give one of them).
    seeds:
        Number of seeds (``0 .. n-1``) or a sequence of distinct non-negative integer seeds. Each seed
        draws its own teacher, initial student and input stream.
    init:
        ``"large"``, ``"small"``, ``"informed"``, ``"denoise"``, ``"mixed"`` (:mod:`.initial`),
        an :class:`InitialWeights` (same weights for every seed), a list of them (one per seed), a dict
        of weights, or a callable ``f(problem, N, rng)``.
    v_teacher, init_scale:
        Teacher second layer and the size of "small" weights (see :func:`initial_weights`).
    batch_size:
        Mini-batch size ``B`` (1 = the ODE's setting; the gradient is averaged over ``B`` fresh samples).
    test_set_size:
        Number of held-out inputs for ``eg_test``; ``None`` means 0 for activations with closed-form
        Gaussian integrals (erf, ReLU, linear) and 10000 otherwise.
    rng:
        ``"splitmix"`` (fast counter-based stream, the default) or ``"threefry"`` (``jax.random``).
    progress:
        Show a tqdm progress bar; ``None``: only for long runs.
    save_path, save_every:
        Write the (partial) result to this netCDF file atomically every ``save_every`` seconds, at the
        end, and on Ctrl-C or divergence. The path is checked before the run (a folder that cannot be
        written, or an existing file that is not netCDF, is refused with ``ValueError``). A save that
        fails during or after the run (e.g. disk full) does not stop it: a ``RuntimeWarning`` says so,
        the result is returned with ``save_error`` set, and an earlier file at ``save_path`` is unchanged.
    divergence_threshold:
        A seed diverges when ``Delta`` becomes non-finite or ``max(Q_kk, |v_k|)`` exceeds this.
    max_seconds_per_call:
        Work per compiled call (seconds, > 0): how often Python sees progress and Ctrl-C.

    Raises
    ------
    learndyn.InvalidInputError
        For invalid arguments (a ``ValueError`` naming the parameter), before any work.
    learndyn.resources.InsufficientMemoryError
        Before anything is allocated, when :func:`simulate_bytes` exceeds the available memory.
    """
    t_start = time.perf_counter()
    check_problem(problem)
    N = positive_int("N", N)
    seeds = check_seeds(seeds)
    batch_size = positive_int("batch_size", batch_size)
    if rng not in ("splitmix", "threefry"):
        raise InvalidInputError(f"rng: must be 'splitmix' or 'threefry', got {rng!r}")
    divergence_threshold = positive_number("divergence_threshold", divergence_threshold, finite=False)
    max_seconds_per_call = positive_number("max_seconds_per_call", max_seconds_per_call, unit="seconds")
    if save_path is not None:
        save_path = check_output_path(save_path, name="save_path")
        save_every = positive_number("save_every", save_every, finite=False, unit="seconds")
    if test_set_size is None:
        test_set_size = 0 if problem.g.has_closed_form else 10_000
    if isinstance(test_set_size, bool) or not isinstance(test_set_size, (int, np.integer)) or test_set_size < 0:
        raise InvalidInputError(f"test_set_size: must be an integer >= 0, got {test_set_size!r}")
    name = "alphas" if times is None else "times"
    steps = record_steps(N, save_times(times, alphas), alpha_max, name)
    S, K, M = len(seeds), problem.K, problem.M
    check_memory(simulate_bytes(problem, N, S, len(steps), batch_size, test_set_size),
                 what=f"online.simulate(N={N}, {S} seeds, K={K}, M={M}, {len(steps)} records)",
                 reduce="reduce N or the number of seeds (run the seeds in several calls), or the number of "
                        "recorded times")

    # initial weights, one set per seed
    if isinstance(init, (list, tuple)):
        if len(init) != S:
            raise InvalidInputError(f"init: a list of initial weights needs one entry per seed ({S}), got {len(init)}")
        inits = [initial_weights(problem, N, i, int(s)) for i, s in zip(init, seeds)]
        init_name = "user"
    else:
        inits = [initial_weights(problem, N, init, int(s), v_teacher=v_teacher, scale=init_scale) for s in seeds]
        init_name = init if isinstance(init, str) else "user"

    run = _Run(problem, N, seeds, steps, inits, init_name, batch_size, int(test_set_size), rng, divergence_threshold,
               max_seconds_per_call, t_start)
    total = int(steps[-1])
    show = progress if progress is not None else (total * run.per_step_guess > 20.0)
    from tqdm.auto import tqdm  # noqa: PLC0415

    bar = tqdm(total=total, disable=not show, unit="step", desc=f"SGD N={N} x{S} seeds", leave=False)
    save_error = ""
    last_save = time.perf_counter()
    try:
        for r, target in enumerate(steps):
            run.advance_to(int(target), bar)
            if run.record(r):  # every seed diverged
                break
            if save_path is not None and time.perf_counter() - last_save > save_every:
                save_error = _try_save(run.result(), save_path, save_error, during=True)
                last_save = time.perf_counter()
    except KeyboardInterrupt:
        run.interrupted()
        warnings.warn(f"online.simulate: {run.message}", RuntimeWarning, stacklevel=2)
    finally:
        bar.close()
    if run.status is Status.SUCCESS:
        run.message = SEED_STATUS[Status.SUCCESS.value]
    result = run.result()
    if save_path is not None:
        error = _try_save(result, save_path, save_error, during=False)
        if error:
            result = dataclasses.replace(result, save_error=error)
    return result


def _try_save(result: Simulation, path: Path, previous: str, *, during: bool) -> str:
    """Save ``result``; on failure warn (once per distinct error) and return the reason ("" on success)."""
    try:
        result.save(path)
        return ""
    except (OSError, ValueError, MemoryError) as exc:
        reason = f"{path} was not written: {exc}"
        if reason != previous:
            when = "the periodic save failed; the run continues" if during else "the result is returned"
            warnings.warn(f"online.simulate: {reason} ({when}; an earlier file there is unchanged)",
                          RuntimeWarning, stacklevel=3)
        return reason
