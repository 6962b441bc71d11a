"""Sweep runner of the DMFT of large two-layer networks (:mod:`learndyn.dmft`, Montanari & Urbani 2025).

``dmft``: :func:`learndyn.dmft.solve` (SymmDMFT, Montanari & Urbani 2025, App. D, for a symmetric
initial state; the general m x m DMFT of their Sec. 2 / App. C otherwise) on ``t_n = n dt`` up to ``t_max``. The theory is
deterministic: a point is one solve (no seeds). Per-point variables on ``n_out`` evenly spaced stored
times (every ``(N-1)/(n_out-1)``-th step, rounded): ``test_error``, ``train_error``, ``a`` (second-layer
weight, averaged over neurons for a non-symmetric state), and at ``t_max``: ``test_error_final``,
``train_error_final``, ``gap_final = test - train``. A blow-up is a flagged result (data kept up to it).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from ... import dmft
from ...dmft import symmetric as _symmetric
from ...results import InvalidInputError
from ..registry import Option, Output, PointResult, Runner, options_from, pad

__all__ = ["DMFT"]


def _n_steps(options: dict[str, Any]) -> int:
    return dmft.time_grid(options["t_max"], options["dt"])


def _stored(options: dict[str, Any]) -> np.ndarray:
    """Indices of the stored time steps (distinct, because n_out <= N is checked)."""
    N = _n_steps(options)
    return np.round(np.linspace(0, N - 1, int(options["n_out"]))).astype(int)


def _symmetric_path(problem: dmft.Problem, options: dict[str, Any]) -> bool:
    return options["method"] == "symmetric" or (options["method"] == "auto" and problem.is_symmetric)


def _call(problem: dmft.Problem, **options: Any):
    kwargs = {"scheme": options["scheme"], "allow_unstable": options["allow_unstable"],
              "divergence_threshold": options["divergence_threshold"]}
    if _symmetric_path(problem, options):
        kwargs["keep"] = False  # the two-time Sigma_C, C_A arrays are not needed for the observables
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # accuracy warnings of the explicit scheme: checked up front
        return dmft.solve(problem, options["t_max"], options["dt"], method=options["method"], **kwargs)


def _outputs(problem: dmft.Problem, options: dict[str, Any], n_seeds: int) -> dict[str, Output]:
    t = {"t": _stored(options) * float(options["dt"])}
    return {
        "test_error": Output(("t",), t, attrs={"long_name": "test error (DMFT)"}),
        "train_error": Output(("t",), t, attrs={"long_name": "train error (DMFT)"}),
        "a": Output(("t",), t, attrs={"long_name": "second-layer weight (mean over neurons)"}),
        "test_error_final": Output((), attrs={"long_name": "test error at t_max (DMFT)"}),
        "train_error_final": Output((), attrs={"long_name": "train error at t_max (DMFT)"}),
        "gap_final": Output((), attrs={"long_name": "generalisation gap test - train at t_max"}),
    }


def _reduce(sol, problem: dmft.Problem, options: dict[str, Any], seeds: list[int]) -> PointResult:
    idx = _stored(options)
    n = len(idx)
    N = _n_steps(options)

    def series(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim > 1:  # per-neuron values of the general solver
            x = x.reshape(x.shape[0], -1).mean(axis=1)
        full = pad(x, (N,))
        return full[idx]

    te, tr, a = series(sol.test_error), series(sol.train_error), series(sol.a)
    done = sol.t.size == N and sol.success
    te_f = float(te[-1]) if done else np.nan
    tr_f = float(tr[-1]) if done else np.nan
    values = {"test_error": te, "train_error": tr, "a": pad(a, (n,)), "test_error_final": np.array(te_f),
              "train_error_final": np.array(tr_f), "gap_final": np.array(te_f - tr_f)}
    return PointResult(values, ok=bool(sol.success),
                       message="" if sol.success else f"status {sol.status}: {sol.message}")


def _check(problem: dmft.Problem, options: dict[str, Any]) -> None:
    N = _n_steps(options)  # validates t_max, dt
    if options["t_max"] <= 0:
        raise InvalidInputError(f"t_max: must be > 0, got {options['t_max']!r}")
    if not 2 <= options["n_out"] <= N:
        raise InvalidInputError(f"n_out: must be between 2 and the number of time steps {N}, got {options['n_out']!r}")
    if options["method"] == "symmetric" and not problem.is_symmetric:
        raise InvalidInputError("method: 'symmetric' needs a permutation-symmetric initial state (scalar a0, v0)")
    if not _symmetric_path(problem, options) and options["scheme"] != "euler":
        raise InvalidInputError("scheme: the general (non-symmetric) solver implements 'euler' only")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _symmetric.check_step(problem, float(options["dt"]), options["scheme"], options["allow_unstable"])


def _cost(problem: dmft.Problem, options: dict[str, Any], n_seeds: int) -> float:
    # measured SymmDMFT (m = 4, explicit Euler, keep=False): 1.4 s for N = 201 steps, 4.0 s for N = 401
    N = _n_steps(options)
    base = 0.3 + 2.5e-5 * N**2
    if not _symmetric_path(problem, options):  # general m x m solver: O(m^3 N^3) time
        base *= max(1.0, problem.m**3 * N / 200.0)
    return base


def _memory(problem: dmft.Problem, options: dict[str, Any], n_seeds: int) -> float:
    N = _n_steps(options)
    per = 36.0 * N**2 if _symmetric_path(problem, options) else 36.0 * problem.m**2 * N**2
    return 2e8 + per


DMFT = Runner(
    name="dmft",
    problem=dmft.Problem,
    field_types={"a0": float | list[float], "h": list[float] | str, "target": str | list[float],
                 "v0": float | list[float]},
    exclude=("C0",),
    seeded=False,
    options={
        "t_max": Option(float, 10.0, "final time"),
        "dt": Option(float, 0.05, "time step (explicit Euler: dt below dmft.step_limits(problem).dt_explicit)"),
        "n_out": Option(int, 101, "number of stored times (evenly spaced steps, including 0 and t_max)"),
        "method": Option(Literal["auto", "symmetric", "general"], "auto", "solver"),
        **options_from(dmft.solve_symmetric, ("allow_unstable", "divergence_threshold"),
                       scheme=Option(Literal["euler", "implicit"], "euler", "time-stepping scheme")),
    },
    call=_call,
    reduce=_reduce,
    outputs=_outputs,
    check=_check,
    cost=_cost,
    memory=_memory,
    description="DMFT of two-layer networks (dmft.solve): test/train error and a(t), final values",
)
