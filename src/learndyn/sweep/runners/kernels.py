"""Sweep runner of signal propagation in deep networks (:mod:`learndyn.kernels.signal`; Xiao, Pennington
& Schoenholz 2020, spec ``ntk.md`` §1.4-1.6).

``kernels.signal``: :func:`learndyn.kernels.signal.signal_propagation` at one (activation, weight_var,
bias_var) point: ``q_star``, ``c_star``, ``chi_1``, ``chi_c``, the depth scales ``xi_1``, ``xi_c``,
``xi_star``, ``p_star`` and the ``phase`` (0 ordered, 1 critical, 2 chaotic, 3 unbounded) -- the
(sigma_w^2, sigma_b^2) phase diagram as a sweep. The signal-propagation functions take their parameters as
arguments, so the Problem of this runner is generated from that signature
(:func:`learndyn.sweep.registry.problem_from_signature`) and validated by the module's own checks.
Deterministic: no seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...kernels import signal as _signal
from ..registry import Output, PointResult, Runner, options_from, problem_from_signature

__all__ = ["SIGNAL", "SignalProblem"]

_SCALARS = ("q_star", "c_star", "chi_1", "chi_c", "xi_1", "xi_c", "xi_star", "p_star")


def _validate(problem: Any) -> None:
    _signal._activation(problem.activation)
    _signal._check_var("weight_var", problem.weight_var, False)
    _signal._check_var("bias_var", problem.bias_var, True)


SignalProblem = problem_from_signature(
    _signal.signal_propagation, ("activation", "weight_var", "bias_var"), name="SignalProblem",
    validate=_validate, doc="activation ('erf' = erf(x), 'relu', 'tanh', ...), weight_var sigma_w^2 > 0, "
                            "bias_var sigma_b^2 >= 0 (spec ntk.md §1.1)")


def _call(problem: Any, **options: Any):
    return _signal.signal_propagation(problem.activation, problem.weight_var, problem.bias_var,
                                      q0=options["q0"], critical_tol=options["critical_tol"])


def _outputs(problem: Any, options: dict[str, Any], n_seeds: int) -> dict[str, Output]:
    out = {name: Output(()) for name in _SCALARS}
    out["phase"] = Output((), dtype="i4", attrs={"flag_values": list(range(len(_signal.PHASES))),
                                                 "flag_meanings": " ".join(_signal.PHASES)})
    return out


def _reduce(sp, problem: Any, options: dict[str, Any], seeds: list[int]) -> PointResult:
    values = {name: np.asarray(getattr(sp, name), dtype=np.float64).reshape(()) for name in _SCALARS}
    values["phase"] = np.array(_signal.PHASES.index(str(np.asarray(sp.phase).item())), dtype=np.int32)
    return PointResult(values, ok=bool(np.isfinite(values["q_star"])),
                       message="" if np.isfinite(values["q_star"]) else "q* unbounded")


def _check(problem: Any, options: dict[str, Any]) -> None:
    if not (np.isfinite(options["q0"]) and options["q0"] > 0):
        raise ValueError(f"q0: must be > 0 and finite, got {options['q0']!r}")
    if not options["critical_tol"] >= 0:
        raise ValueError(f"critical_tol: must be >= 0, got {options['critical_tol']!r}")


SIGNAL = Runner(
    name="kernels.signal",
    problem=SignalProblem,
    field_types={"activation": str, "weight_var": float, "bias_var": float},
    seeded=False,
    options=options_from(_signal.signal_propagation, ("q0", "critical_tol")),
    call=_call,
    reduce=_reduce,
    outputs=_outputs,
    check=_check,
    cost=lambda problem, options, n_seeds: 0.05,
    memory=lambda problem, options, n_seeds: 3e8,
    setup_cost=lambda problem, options: 2.0,
    setup_key=lambda problem, options: problem.activation,
    description="signal propagation (kernels.signal_propagation): q*, c*, chi_1, depth scales, phase",
)
