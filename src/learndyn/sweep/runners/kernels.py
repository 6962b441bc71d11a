"""Sweep runner of signal propagation in deep networks (:func:`learndyn.kernels.signal_propagation`;
Poole et al. 2016, Schoenholz et al. 2017, Xiao, Pennington & Schoenholz 2020, Sec. 2).

``kernels.signal``: signal propagation at one (activation, weight_var, bias_var) point of a
:class:`learndyn.kernels.Problem`: ``q_star``, ``c_star``, ``chi_1``, ``chi_c``, the depth scales ``xi_1``,
``xi_c``, ``xi_star``, ``p_star`` and the ``phase`` (0 ordered, 1 critical, 2 chaotic, 3 unbounded) -- the
(sigma_w^2, sigma_b^2) phase diagram as a sweep. The config's ``[problem]`` / ``[grid]`` keys are the Problem's
``activation``, ``weight_var`` and ``bias_var`` (its architecture fields do not enter signal propagation and
are not exposed). Deterministic: no seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...kernels import Problem
from ...kernels import signal as _signal
from ...results import InvalidInputError
from ..registry import Output, PointResult, Runner, options_from

__all__ = ["SIGNAL", "SignalProblem"]

_SCALARS = ("q_star", "c_star", "chi_1", "chi_c", "xi_1", "xi_c", "xi_star", "p_star")
_SIGNAL_FIELDS = ("activation", "weight_var", "bias_var")

#: the Problem of the signal runner (kept under its former name)
SignalProblem = Problem


def _call(problem: Problem, **options: Any):
    return _signal.signal_propagation(problem, q0=options["q0"], critical_tol=options["critical_tol"])


def _outputs(problem: Any, options: dict[str, Any], n_seeds: int) -> dict[str, Output]:
    out = {name: Output(()) for name in _SCALARS}
    out["phase"] = Output((), dtype="i4", attrs={"flag_values": list(range(len(_signal.PHASES))),
                                                 "flag_meanings": " ".join(_signal.PHASES)})
    return out


def _reduce(sp, problem: Any, options: dict[str, Any], seeds: list[int]) -> PointResult:
    values = {name: np.asarray(getattr(sp, name), dtype=np.float64).reshape(()) for name in _SCALARS}
    values["phase"] = np.array(_signal.PHASES.index(str(np.asarray(sp.phase).item())), dtype=np.int32)
    ok = bool(np.isfinite(values["q_star"])) and sp.success
    message = sp.message if not sp.success else ("" if np.isfinite(values["q_star"]) else "q* unbounded")
    return PointResult(values, ok=ok, message=message)


def _check(problem: Any, options: dict[str, Any]) -> None:
    if not (np.isfinite(options["q0"]) and options["q0"] > 0):
        raise InvalidInputError(f"q0: must be > 0 and finite, got {options['q0']!r}")
    if not options["critical_tol"] >= 0:
        raise InvalidInputError(f"critical_tol: must be >= 0, got {options['critical_tol']!r}")


SIGNAL = Runner(
    name="kernels.signal",
    problem=Problem,
    field_types={"activation": str, "weight_var": float, "bias_var": float},
    exclude=tuple(f for f in Problem.__dataclass_fields__ if f not in _SIGNAL_FIELDS),
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
