r"""Explicit Runge-Kutta integration of a small ODE system as one compiled XLA loop.

Why not diffrax: for the order-parameter ODEs (a few dozen unknowns, an expensive right-hand side)
diffrax's program alone takes about 3 s to trace and compile on our CPU machine (diffrax 0.7.2,
Dopri8 with a divergence event and a trivial right-hand side: 1.1 s tracing + 2.0 s XLA), over the
3 s budget of the whole first call; this loop with the ODE's right-hand side compiles in about 1.7 s. The schemes here are the *same methods* as SciPy's
``solve_ivp`` — their Butcher tableaux and error estimators are taken from
:class:`scipy.integrate.DOP853` (Dormand-Prince 8(5,3), Hairer-Norsett-Wanner's DOP853) and
:class:`scipy.integrate.RK45` (Dormand-Prince 5(4)), with SciPy's step-size rule — compiled with
``lax.while_loop``; the right-hand side is traced once (the stages run in a ``fori_loop``).

Step-size control (Hairer, Norsett & Wanner, *Solving ODEs I*, II.4; SciPy's ``RkAdaptive``):
``err = ||e / (atol + rtol max(|y|, |y_new|))||`` (RMS; DOP853's combined 5th/3rd-order estimate),
a step is accepted when ``err < 1``, and ``h <- h min(10, max(0.2, 0.9 err^{-1/(p+1)}))`` with
``p`` the order of the error estimator (no growth right after a rejection). Output times are hit
exactly by shortening the step that would pass them (no interpolation error at saved points).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
from jax import lax

__all__ = ["Tableau", "TABLEAUX", "STATUS_CODES", "is_adaptive", "solve"]

#: integer status codes of :func:`solve`
STATUS_CODES = {0: "success", 1: "diverged", 2: "nonfinite", 3: "max_steps", 4: "step_too_small"}

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
    def run(y0, args, ts, dt0, rtol, atol, threshold):
        n_save = ts.shape[0]
        ys = jnp.full((n_save, y0.size), jnp.nan, y0.dtype).at[0].set(y0)
        f0 = fun(ts[0], y0, args)
        # (t, y, f, h, i_save, ys, n_accepted, n_iter, status, last_rejected)
        init = (ts[0], y0, f0, jnp.asarray(dt0, y0.dtype), jnp.int32(1), ys, jnp.int32(0), jnp.int32(0),
                jnp.int32(0), jnp.bool_(False))

        def cond(c):
            return (c[4] < n_save) & (c[8] == 0)

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
            t_new = jnp.where(clipped, target, t + h_try)
            save = accepted & clipped
            ys = ys.at[i].set(jnp.where(save, y_new, ys[i]))
            if progress is not None:
                lax.cond(save, lambda: jax.debug.callback(progress, t_new), lambda: None)
            div = accepted & diverged(y_new, threshold)
            n_it = n_it + 1
            status = jnp.where(div, 1, jnp.where(~finite & ~tab.adaptive, 2, jnp.where(
                too_small, jnp.where(finite, 4, 2), jnp.where(n_it >= max_steps, 3, 0))))
            return (jnp.where(accepted, t_new, t), jnp.where(accepted, y_new, y),
                    jnp.where(accepted, Kst[S - 1], f), h_next, i + save.astype(jnp.int32), ys,
                    n_acc + accepted.astype(jnp.int32), n_it, status.astype(jnp.int32), ~accepted)

        out = lax.while_loop(cond, body, init)
        return out[5], out[6], out[8]

    return run


def solve(fun: Callable, y0, ts, args, *, method: str = "dopri8", rtol: float = 1e-8, atol: float = 1e-12,
          dt0: float = 0.01, max_steps: int = 1_000_000, diverged: Callable | None = None,
          threshold: float = np.inf, progress: Callable | None = None):
    """Integrate ``dy/dt = fun(t, y, args)`` (flat ``y``) from ``ts[0]`` and return ``y`` at ``ts``.

    ``fun``, ``diverged(y, threshold) -> bool`` and ``progress(t)`` must be hashable (module-level
    functions or cached closures): the compiled program is cached on them. Fixed-step methods use
    ``dt0`` as their step (shortened to land on each ``ts``). Returns ``(ys, n_accepted, status)``:
    ``ys`` ``(len(ts), n)`` with NaN rows after a stop, ``status`` a key of :data:`STATUS_CODES`.
    """
    if diverged is None:
        diverged = _never
    run = _program(fun, method, int(max_steps), diverged, progress)
    ys, n_acc, status = run(jnp.asarray(y0, jnp.float64), args, jnp.asarray(ts, jnp.float64), dt0,
                            jnp.float64(rtol), jnp.float64(atol), jnp.float64(threshold))
    return np.asarray(ys), int(n_acc), STATUS_CODES[int(status)]


def _never(y, threshold):
    return jnp.bool_(False)
