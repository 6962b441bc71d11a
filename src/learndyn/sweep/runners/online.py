"""Sweep runners of teacher-student online SGD (:mod:`learndyn.online`).

* ``online.ode`` -- the order-parameter ODEs (:func:`learndyn.online.integrate`, Goldt et al. 2019,
  eqs. (6)-(8)) started from the exact overlaps of the random weights that
  ``online.simulate`` draws for the same seed and ``N = N_init`` (:func:`learndyn.online.initial_weights`),
  so an ODE sweep and an SGD sweep with the same seeds start from the same state. Seeds loop inside the
  task; the compiled solver is reused across them.
* ``online.sgd`` -- finite-N online SGD (:func:`learndyn.online.simulate`), all seeds of a point
  vectorised in one compiled call.

Per-point variables: ``eg`` (seed, alpha), ``eg_final`` (seed; eps_g at ``alpha_max``, NaN if the run
stopped early), and the per-seed status (``ode_status``: the integer codes of
:data:`learndyn.online.rk.STATUS_CODES`, 0 success, 1 diverged, 2 nonfinite, 3 max_steps, 4 step_too_small,
5 not_psd; ``diverged_alpha`` for SGD). A diverged run is a result, not an error: the point is done
and flagged, with the trajectory up to the divergence kept.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from ... import online
from ...results import InvalidInputError
from ...online import rk
from ..registry import Option, Output, PointResult, Runner, options_from, pad

__all__ = ["ODE", "SGD"]

#: the statuses a finished ODE point can have, by their one integer code (learndyn.online.rk.STATUS_CODES);
#: "interrupted" stops the sweep instead
_ODE_CODES = {status.value: code for code, status in rk.STATUS_CODES.items() if status != "interrupted"}
_Init = Literal[online.INITIALISATIONS]  # type: ignore[valid-type]
_Method = Literal[tuple(sorted(rk.TABLEAUX))]  # type: ignore[valid-type]

_TIME_OPTIONS = {
    "alpha_max": Option(float, 1000.0, "final time alpha = steps / N (> 0)"),
    "n_alpha": Option(int, 200, "number of log-spaced recording times after alpha = 0"),
    "alpha_min": Option(float, 0.1, "first log-spaced recording time (> 0, < alpha_max)"),
}


def _alphas(options: dict[str, Any]) -> np.ndarray:
    return online.default_alphas(float(options["alpha_max"]), int(options["n_alpha"]), float(options["alpha_min"]))


def _check_time(options: dict[str, Any]) -> None:
    am, n, a0 = options["alpha_max"], options["n_alpha"], options["alpha_min"]
    if not (np.isfinite(am) and am > 0):
        raise InvalidInputError(f"alpha_max: must be finite and > 0, got {am!r}")
    if n < 1:
        raise InvalidInputError(f"n_alpha: must be >= 1, got {n!r}")
    if not (0 < a0 < am):
        raise InvalidInputError(f"alpha_min: must satisfy 0 < alpha_min < alpha_max = {am:g}, got {a0!r}")


def _check_init(problem: online.Problem, options: dict[str, Any], N_key: str) -> None:
    if options[N_key] < 1:
        raise InvalidInputError(f"{N_key}: must be a positive integer, got {options[N_key]!r}")
    if not options["init_scale"] >= 0:
        raise InvalidInputError(f"init_scale: must be >= 0, got {options['init_scale']!r}")
    # draws one-dimensional weights: catches the initialisations that do not fit the problem
    online.initial_weights(problem, 1, options["init"], 0, scale=options["init_scale"])


# ------------------------------------------------------------------------------------------
# online.ode
# ------------------------------------------------------------------------------------------
_INTEGRATE = ("rtol", "atol", "method", "dt", "max_steps", "divergence_threshold")


def _ode_init(problem: online.Problem, options: dict[str, Any], seed: int) -> online.OrderParameters:
    """Exact overlaps of the weights ``online.simulate`` draws for ``seed`` at ``N = N_init``."""
    iw = online.initial_weights(problem, int(options["N_init"]), options["init"], seed, scale=options["init_scale"])
    return iw.order_parameters()


def _ode_call(problem: online.Problem, state: online.OrderParameters, **options: Any) -> online.Trajectory:
    kwargs = {k: options[k] for k in _INTEGRATE if k in options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a divergence is reported through the status
        traj = online.integrate(problem, state, _alphas(options), **kwargs)
    if traj.status == "interrupted":  # Ctrl-C stops the sweep; the point is not recorded as done
        raise KeyboardInterrupt
    return traj


def _ode_outputs(problem: online.Problem, options: dict[str, Any], n_seeds: int) -> dict[str, Output]:
    alpha = {"alpha": _alphas(options)}
    return {
        "eg": Output(("seed", "alpha"), alpha, attrs={"long_name": "generalisation error (ODE)"}),
        "eg_final": Output(("seed",), attrs={"long_name": "generalisation error at alpha_max (ODE)"}),
        "alpha_reached": Output(("seed",), attrs={"long_name": "last time reached by the integrator"}),
        "ode_status": Output(("seed",), dtype="i4", attrs={
            "flag_values": list(_ODE_CODES.values()), "flag_meanings": " ".join(_ODE_CODES)}),
    }


def _ode_reduce(traj: online.Trajectory, problem: online.Problem, options: dict[str, Any], seeds: list[int]
                ) -> PointResult:
    n = len(_alphas(options))
    eg = pad(np.asarray(traj.eg, dtype=np.float64)[None, :], (1, n))
    final = float(eg[0, -1]) if traj.success else np.nan
    values = {"eg": eg, "eg_final": np.array([final]), "alpha_reached": np.array([traj.alpha_reached]),
              "ode_status": np.array([rk.status_code(traj.status)], dtype=np.int32)}
    msg = "" if traj.success else f"seed {seeds[0]}: {traj.message}"
    return PointResult(values, ok=traj.success, message=msg)


def _ode_check(problem: online.Problem, options: dict[str, Any]) -> None:
    _check_time(options)
    _check_init(problem, options, "N_init")
    if not rk.is_adaptive(options["method"]) and not (options["dt"] is not None and options["dt"] > 0):
        raise InvalidInputError(f"dt: the fixed-step method {options['method']!r} needs dt > 0 (set options.dt)")
    if not (options["rtol"] > 0 and options["atol"] > 0):
        raise InvalidInputError("rtol: rtol and atol must be > 0")


def _ode_cost(problem: online.Problem, options: dict[str, Any], n_seeds: int) -> float:
    """Seconds per point, measured on the (shared, 2-core) development machine with dopri8, rtol 1e-8,
    both layers, M = 2, alpha_max = 3000 (the goldt2019 fig3 example): erf 0.31 / 0.47 / 0.60 s per
    seed at K = 2 / 3 / 4, linear 0.14-0.16 s, ReLU 55 s at K = 2 (its I4 integrals dominate and grow
    ~ K^2 (K+M)^2). The number of adaptive steps grows ~ log(alpha_max).

    The activation's properties pick the row, so a registered activation gets one too: closed-form
    integrals I2..I4 (``Activation.exact_integrals``) cost like erf, or like linear if also positively
    homogeneous; anything else (ReLU's costly I4, quadrature) like ReLU."""
    K, M = problem.K, problem.M
    scale = (1.0 + np.log10(1.0 + options["alpha_max"])) / (1.0 + np.log10(3001.0))
    if not rk.is_adaptive(options["method"]):
        scale = options["alpha_max"] / options["dt"] / 300.0
    g = problem.g
    if g.exact_integrals and not g.positively_homogeneous:  # erf
        per = 0.078 * (K + M)
    elif g.exact_integrals:  # linear
        per = 0.035 * (K + M)
    else:  # ReLU closed forms with costly I4, or quadrature (tanh, sigmoid, custom)
        per = 55.0 * (K / 2) ** 2 * ((K + M) / 4) ** 2
    return n_seeds * per * scale


def _ode_setup_key(problem: online.Problem, options: dict[str, Any]) -> Any:
    return (online.static_key(problem), options["method"], options["max_steps"])


ODE = Runner(
    name="online.ode",
    problem=online.Problem,
    field_types={"activation": str},
    options={
        "N_init": Option(int, 1000, "input dimension of the random initial weights whose overlaps start the ODE"),
        "init": Option(_Init, "large", f"initialisation, one of {list(online.INITIALISATIONS)}"),
        "init_scale": Option(float, 1e-3, "size of 'small' weights and of the extra units of 'informed'"),
        **_TIME_OPTIONS,
        **options_from(online.integrate, _INTEGRATE, method=Option(_Method, "dopri8", "ODE solver")),
    },
    init=_ode_init,
    call=_ode_call,
    reduce=_ode_reduce,
    outputs=_ode_outputs,
    check=_ode_check,
    cost=_ode_cost,
    memory=lambda problem, options, n_seeds: 4e8 + 8.0 * (options["n_alpha"] + 1) * (problem.K + problem.M) ** 2 * 3,
    # JIT compilation of the solver: 3.5 s on an idle core, 13-40 s measured under heavy sharing
    setup_cost=lambda problem, options: 8.0,
    setup_key=_ode_setup_key,
    description="teacher-student online SGD: order-parameter ODEs (online.integrate); eg, eg_final per seed",
)


# ------------------------------------------------------------------------------------------
# online.sgd
# ------------------------------------------------------------------------------------------
_SIMULATE = ("N", "init", "init_scale", "batch_size", "test_set_size", "rng", "divergence_threshold")


def _sgd_alphas(options: dict[str, Any]) -> np.ndarray:
    """The recorded times: the log grid rounded to whole steps (as ``online.simulate`` records them)."""
    steps = online.record_steps(int(options["N"]), _alphas(options), float(options["alpha_max"]))
    return steps / int(options["N"])


def _sgd_call(problem: online.Problem, seeds: list[int], **options: Any) -> online.Simulation:
    kwargs = {k: options[k] for k in _SIMULATE if k in options}
    N = kwargs.pop("N")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return online.simulate(problem, N, float(options["alpha_max"]), seeds=list(seeds), alphas=_alphas(options),
                               progress=False, **kwargs)


def _sgd_outputs(problem: online.Problem, options: dict[str, Any], n_seeds: int) -> dict[str, Output]:
    alpha = {"alpha": _sgd_alphas(options)}
    return {
        "eg": Output(("seed", "alpha"), alpha, attrs={"long_name": "generalisation error (online SGD)"}),
        "eg_final": Output(("seed",), attrs={"long_name": "generalisation error at alpha_max (online SGD)"}),
        "diverged_alpha": Output(("seed",), attrs={"long_name": "time of divergence (NaN: none)"}),
    }


def _sgd_reduce(sim: online.Simulation, problem: online.Problem, options: dict[str, Any], seeds: list[int]
                ) -> PointResult:
    eg = sim.eg
    if np.all(np.isnan(eg)) and sim.eg_test is not None:  # no closed form: the held-out estimate
        eg = sim.eg_test
    n = len(_sgd_alphas(options))
    eg = pad(np.asarray(eg, dtype=np.float64), (len(seeds), n))
    return PointResult({"eg": eg, "eg_final": eg[:, -1], "diverged_alpha": np.asarray(sim.diverged_alpha, float)},
                       ok=sim.success, message="" if sim.success else sim.message)


def _sgd_check(problem: online.Problem, options: dict[str, Any]) -> None:
    _check_time(options)
    _check_init(problem, options, "N")
    if options["batch_size"] < 1:
        raise InvalidInputError(f"batch_size: must be >= 1, got {options['batch_size']!r}")
    if options["test_set_size"] is not None and options["test_set_size"] < 0:
        raise InvalidInputError(f"test_set_size: must be >= 0, got {options['test_set_size']!r}")


def _sgd_cost(problem: online.Problem, options: dict[str, Any], n_seeds: int) -> float:
    # the simulator's own per-step guess (sgd.simulate), times (K+M)/4 for the wider networks
    N, B = int(options["N"]), int(options["batch_size"])
    steps = float(options["alpha_max"]) * N
    return steps * (2e-9 * N * n_seeds * B * max(1.0, (problem.K + problem.M) / 4) + 5e-6)


SGD = Runner(
    name="online.sgd",
    problem=online.Problem,
    field_types={"activation": str},
    options={
        **options_from(online.simulate, _SIMULATE,
                       N=Option(int, 1000, "input dimension N"),
                       init=Option(_Init, "large", f"initialisation, one of {list(online.INITIALISATIONS)}"),
                       rng=Option(Literal["splitmix", "threefry"], "splitmix", "random stream")),
        **{**_TIME_OPTIONS, "alpha_max": Option(float, 100.0, "final time alpha = steps / N (> 0)"),
           "n_alpha": Option(int, 60, "number of log-spaced recording times after alpha = 0")},
    },
    call=_sgd_call,
    reduce=_sgd_reduce,
    outputs=_sgd_outputs,
    vectorised=True,
    check=_sgd_check,
    cost=_sgd_cost,
    memory=lambda problem, options, n_seeds: 4e8 + 8.0 * n_seeds * options["N"] * (problem.K + problem.M) * 4,
    setup_cost=lambda problem, options: 3.0,
    setup_key=lambda problem, options: (problem.K, problem.M, problem.activation, problem.train_second_layer,
                                        options["N"], options["batch_size"]),
    description="teacher-student online SGD simulation (online.simulate), seeds vectorised; eg, eg_final per seed",
)
