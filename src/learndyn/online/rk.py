r"""Explicit Runge-Kutta integration of a small ODE system as one compiled XLA loop.

Why not diffrax: for the order-parameter ODEs (a few dozen unknowns, an expensive right-hand side)
diffrax's program alone takes about 3 s to trace and compile on our CPU machine (diffrax 0.7.2,
Dopri8 with a divergence event and a trivial right-hand side: 1.1 s tracing + 2.0 s XLA), over the
3 s budget of the whole first call; this loop with the ODE's right-hand side compiles in about 1.7 s. The schemes here are the *same methods* as SciPy's
``solve_ivp`` — their Butcher tableaux and error estimators are taken from
:class:`scipy.integrate.DOP853` (Dormand-Prince 8(5,3), Hairer-Norsett-Wanner's DOP853) and
:class:`scipy.integrate.RK45` (Dormand-Prince 5(4)), with SciPy's step-size rule — compiled with
``lax.while_loop``; the right-hand side is traced once (the stages run in a ``fori_loop``). The loop
is run from Python in chunks of about :data:`CHUNK_SECONDS` (a traced iteration limit, no
recompilation), so Ctrl-C stops a long integration promptly and keeps the states computed so far.

Step-size control (Hairer, Norsett & Wanner, *Solving ODEs I*, II.4; SciPy's ``RkAdaptive``):
``err = ||e / (atol + rtol max(|y|, |y_new|))||`` (RMS; DOP853's combined 5th/3rd-order estimate),
a step is accepted when ``err < 1``, and ``h <- h min(10, max(0.2, 0.9 err^{-1/(p+1)}))`` with
``p`` the order of the error estimator (no growth right after a rejection). Output times are hit
exactly by shortening the step that would pass them (no interpolation error at saved points).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
from jax import lax

from ..results import InvalidInputError, Status

__all__ = ["Tableau", "TABLEAUX", "STATUS_CODES", "status_code", "is_adaptive", "solve"]

#: integer status codes of :func:`solve` -> :class:`learndyn.Status` (``diverged`` may return 1 or 5; 6 is set
#: from Python on Ctrl-C). The one integer coding of a status in learndyn: the sweeps store these codes too.
STATUS_CODES: dict[int, Status] = {0: Status.SUCCESS, 1: Status.DIVERGED, 2: Status.NONFINITE, 3: Status.MAX_STEPS,
                                   4: Status.STEP_TOO_SMALL, 5: Status.NOT_PSD, 6: Status.INTERRUPTED}
_INTERRUPTED = 6


def status_code(status: Status | str) -> int:
    """The integer code of :data:`STATUS_CODES` for ``status`` (a :class:`learndyn.Status` or its name)."""
    status = Status.of(status)
    for code, member in STATUS_CODES.items():
        if member is status:
            return code
    raise InvalidInputError(f"status: {status.value!r} has no integer code; coded are "
                            f"{', '.join(s.value for s in STATUS_CODES.values())}")

#: wall-clock target of one compiled chunk of steps: Ctrl-C is honoured between chunks (see :func:`solve`)
CHUNK_SECONDS = 0.25

_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


@dataclass(frozen=True, eq=False)
class Tableau:
    """An explicit RK scheme with its first-same-as-last stage appended.

    ``A`` is ``(S, S)``: rows ``0..S-2`` are the stages, the last row holds the weights ``b`` so that
    the last stage is ``f(t + h, y_new)`` (reused as the first stage of the next step). ``E`` (and
    ``E3`` for DOP853) are the error weights over all ``S`` stages; ``p`` the order of the error
    estimator (step-size exponent ``-1/(p+1)``); ``adaptive=False`` for fixed-step schemes.
    """

    name: str
    A: np.ndarray
    C: np.ndarray
    E: np.ndarray | None
    E3: np.ndarray | None
    p: int
    adaptive: bool


def _with_fsal(A, B, C):
    s = len(B)
    A_ext = np.zeros((s + 1, s + 1))
    A_ext[:s, : A.shape[1]] = A
    A_ext[s, :s] = B
    return A_ext, np.append(C, 1.0)


def _dop853() -> Tableau:
    d = scipy.integrate.DOP853
    ns = d.n_stages
    A, C = _with_fsal(np.asarray(d.A)[:ns, :ns], np.asarray(d.B), np.asarray(d.C)[:ns])
    return Tableau("dopri8", A, C, np.asarray(d.E5), np.asarray(d.E3), d.error_estimator_order, True)


def _rk45() -> Tableau:
    d = scipy.integrate.RK45
    A, C = _with_fsal(np.asarray(d.A), np.asarray(d.B), np.asarray(d.C))
    return Tableau("dopri5", A, C, np.asarray(d.E), None, d.error_estimator_order, True)


def _fixed(name, A, B, C) -> Tableau:
    A, C = _with_fsal(np.asarray(A, float), np.asarray(B, float), np.asarray(C, float))
    return Tableau(name, A, C, None, None, 0, False)


#: the available schemes by method name
TABLEAUX: dict[str, Callable[[], Tableau]] = {
    "dopri8": _dop853,
    "dopri5": _rk45,
    "euler": lambda: _fixed("euler", [[0.0]], [1.0], [0.0]),
    "heun": lambda: _fixed("heun", [[0.0, 0.0], [1.0, 0.0]], [0.5, 0.5], [0.0, 1.0]),
}


def is_adaptive(method: str) -> bool:
    """Whether ``method`` (a key of :data:`TABLEAUX`) controls its step size (else ``dt`` is required)."""
    return TABLEAUX[method]().adaptive


def _error_norm(tab: Tableau, Kst, h, scale):
    """SciPy's error norms: RMS for RK45; DOP853's ``|h| |e5|^2 / sqrt(|e5|^2 + 0.01 |e3|^2) / sqrt(n)``."""
    n = scale.size
    e5 = (tab.E @ Kst) / scale
    if tab.E3 is None:
        return jnp.abs(h) * jnp.sqrt(jnp.sum(e5 * e5) / n)
    e3 = (tab.E3 @ Kst) / scale
    n5, n3 = jnp.sum(e5 * e5), jnp.sum(e3 * e3)
    denom = jnp.where(n5 + n3 > 0, n5 + 0.01 * n3, 1.0)
    return jnp.abs(h) * n5 / jnp.sqrt(denom * n)


@functools.lru_cache(maxsize=64)
def _program(fun: Callable, method: str, max_steps: int, diverged: Callable, progress: Callable | None):
    """``(start, advance)``: the initial carry, and the compiled loop run until ``n_iter`` reaches a
    (traced) limit, the last saved time or a stop (so Python regains control between chunks)."""
    tab = TABLEAUX[method]()
    A, C = jnp.asarray(tab.A), jnp.asarray(tab.C)
    S = tab.A.shape[0]
    expo = -1.0 / (tab.p + 1) if tab.adaptive else 0.0

    def rk_step(t, y, f0, h, args):
        Kst = jnp.zeros((S, y.size), y.dtype).at[0].set(f0)

        def stage(s, Kst):
            return Kst.at[s].set(fun(t + C[s] * h, y + h * (A[s] @ Kst), args))

        Kst = lax.fori_loop(1, S, stage, Kst)
        return y + h * (A[S - 1] @ Kst), Kst

    @jax.jit
    def start(y0, args, ts, dt0):
        n_save = ts.shape[0]
        ys = jnp.full((n_save, y0.size), jnp.nan, y0.dtype).at[0].set(y0)
        f0 = fun(ts[0], y0, args)
        # (t, y, f, h, i_save, ys, n_accepted, n_iter, status, last_rejected)
        return (ts[0], y0, f0, jnp.asarray(dt0, y0.dtype), jnp.int32(1), ys, jnp.int32(0), jnp.int32(0),
                jnp.int32(0), jnp.bool_(False))

    @jax.jit
    def advance(carry, args, ts, rtol, atol, threshold, iter_limit):
        n_save = ts.shape[0]

        def cond(c):
            return (c[4] < n_save) & (c[8] == 0) & (c[7] < iter_limit)

        def body(c):
            t, y, f, h, i, ys, n_acc, n_it, status, last_rej = c
            target = ts[i]
            clipped = t + h >= target
            h_try = jnp.where(clipped, target - t, h)
            y_new, Kst = rk_step(t, y, f, h_try, args)
            finite = jnp.all(jnp.isfinite(y_new)) & jnp.all(jnp.isfinite(Kst))
            if tab.adaptive:
                scale = atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y_new))
                err = jnp.where(finite, _error_norm(tab, Kst, h_try, scale), jnp.inf)
                accepted = err < 1.0
                grow = jnp.where(err == 0, _MAX_FACTOR,
                                 jnp.minimum(_MAX_FACTOR, _SAFETY * jnp.where(err > 0, err, 1.0) ** expo))
                grow = jnp.where(last_rej, jnp.minimum(grow, 1.0), grow)
                shrink = jnp.where(finite, jnp.maximum(_MIN_FACTOR, _SAFETY * err ** expo), _MIN_FACTOR)
                h_acc = jnp.where(clipped & (grow >= 1.0), jnp.maximum(h, h_try * grow), h_try * grow)
                h_next = jnp.where(accepted, h_acc, h_try * shrink)
                too_small = ~accepted & (h_next < 1e-14 * jnp.maximum(1.0, jnp.abs(t)))
            else:
                accepted = finite
                h_next = h
                too_small = jnp.bool_(False)
            # a state that fails the problem's check (too large, not a valid state) is reported, not kept
            bad = jnp.where(accepted, jnp.asarray(diverged(y_new, threshold)).astype(jnp.int32), 0)
            t_new = jnp.where(clipped, target, t + h_try)
            save = accepted & clipped & (bad == 0)
            ys = ys.at[i].set(jnp.where(save, y_new, ys[i]))
            if progress is not None:
                lax.cond(save, lambda: jax.debug.callback(progress, t_new), lambda: None)
            n_it = n_it + 1
            status = jnp.where(bad > 0, bad, jnp.where(~finite & ~tab.adaptive, 2, jnp.where(
                too_small, jnp.where(finite, 4, 2), jnp.where(n_it >= max_steps, 3, 0))))
            keep = accepted & (bad == 0)
            return (jnp.where(keep, t_new, t), jnp.where(keep, y_new, y),
                    jnp.where(keep, Kst[S - 1], f), h_next, i + save.astype(jnp.int32), ys,
                    n_acc + keep.astype(jnp.int32), n_it, status.astype(jnp.int32), ~accepted)

        return lax.while_loop(cond, body, carry)

    return start, advance


def solve(fun: Callable, y0, ts, args, *, method: str = "dopri8", rtol: float = 1e-8, atol: float = 1e-12,
          dt0: float = 0.01, max_steps: int = 1_000_000, diverged: Callable | None = None,
          threshold: float = np.inf, progress: Callable | None = None):
    """Integrate ``dy/dt = fun(t, y, args)`` (flat ``y``) from ``ts[0]`` and return ``y`` at ``ts``.

    ``fun``, ``diverged(y, threshold)`` (``threshold``: any pytree of arrays) and ``progress(t)`` must be hashable (module-level functions or
    cached closures): the compiled program is cached on them. ``diverged`` returns ``True`` (status
    ``"diverged"``) or an integer code of :data:`STATUS_CODES` (0: the state is fine); such a state is
    not kept. Fixed-step methods use ``dt0`` as their step (shortened to land on each ``ts``). Returns
    ``(ys, n_accepted, status)``: ``ys`` ``(len(ts), n)`` with NaN rows after a stop, ``status`` a
    :class:`learndyn.Status` (a value of :data:`STATUS_CODES`).

    The compiled loop runs in chunks of about :data:`CHUNK_SECONDS` of wall time (the number of steps
    per chunk adapts), so that a ``KeyboardInterrupt`` (Ctrl-C) stops the integration within about one
    chunk; the states computed so far are returned with status ``"interrupted"``.
    """
    max_steps = int(max_steps)
    if max_steps < 1:
        raise InvalidInputError(f"max_steps: must be a positive integer, got {max_steps}")
    if diverged is None:
        diverged = _never
    start, advance = _program(fun, method, max_steps, diverged, progress)
    ts = jnp.asarray(ts, jnp.float64)
    n_save = int(ts.shape[0])
    threshold = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), threshold)
    consts = (jnp.float64(rtol), jnp.float64(atol), threshold)
    carry = start(jnp.asarray(y0, jnp.float64), args, ts, dt0)
    chunk, n_it, status = 64, 0, 0
    try:
        while True:
            t0 = time.perf_counter()
            carry = advance(carry, args, ts, *consts, jnp.int32(min(n_it + chunk, max_steps)))
            n_it, i_save, status = int(carry[7]), int(carry[4]), int(carry[8])
            if status != 0 or i_save >= n_save or n_it >= max_steps:
                break
            elapsed = time.perf_counter() - t0
            chunk = int(min(max(chunk * min(16.0, max(0.125, CHUNK_SECONDS / max(elapsed, 1e-6))), 1), 2**30))
    except KeyboardInterrupt:
        status = _INTERRUPTED
    return np.asarray(carry[5]), int(carry[6]), STATUS_CODES[int(status)]


def _never(y, threshold):
    return jnp.bool_(False)
