"""DMFT of large two-layer networks (Montanari & Urbani 2025, arXiv:2502.21269), beside its simulations.

* :class:`Problem` -- the frozen, hashable problem description shared by theory and simulation;
* :func:`solve` -- the symmetric DMFT (SymmDMFT, the paper's App. D) or, for a non-symmetric initialisation,
  the general m x m DMFT (their Sec. 2 / App. C), on the time grid ``t_n = n dt <= t_max``;
* :mod:`learndyn.dmft.reduced` -- the m -> infinity reduced systems (App. F-H);
* :mod:`learndyn.dmft.gaussian_model`, :mod:`learndyn.dmft.networks` -- the simulations (projected GD on the
  Gaussian model; real networks, GD/SGD), over ``seeds``;
* :func:`compare` -- the DMFT beside a simulation: seed mean, standard errors, z-scores (:class:`Comparison`).

Every result is frozen, with ``status`` (a :class:`learndyn.Status`), ``message``, ``success``, ``to_xarray()``
and ``save()``; :func:`learndyn.load` gives it back.
"""

from __future__ import annotations

from ..results import InvalidInputError
from ._common import time_grid
from .problem import PowerSeries, Problem, hermite_coefficients
from .results import GeneralSolution, RichardsonSolution, SymmetricSolution
from .symmetric import StabilityWarning, StepLimits, richardson, solve_symmetric, step_limits
from . import reduced  # noqa: E402  (m -> infinity reduced systems)
from . import gaussian_model  # noqa: E402  (simulations: Gaussian-model GD)
from . import networks  # noqa: E402  (simulations: real two-layer networks, GD/SGD)
from .simulation import Simulation  # noqa: E402
from .comparison import Comparison, compare, comparison_of, gap_vs_d, pooled_sem  # noqa: E402

__all__ = [
    "Problem", "PowerSeries", "hermite_coefficients", "solve", "solve_symmetric", "richardson",
    "StabilityWarning", "StepLimits", "step_limits", "SymmetricSolution", "GeneralSolution", "RichardsonSolution",
    "Simulation",
    "compare", "comparison_of", "Comparison", "pooled_sem", "gap_vs_d", "time_grid",
]


def solve(problem: Problem, t_max: float, dt: float, *, method: str = "auto", **kwargs):
    """Integrate the DMFT of ``problem`` on the time grid ``t_n = n dt``, ``n = 0..N-1``, ``t_{N-1} <= t_max``.

    ``method``: ``"symmetric"`` (SymmDMFT, Montanari & Urbani 2025, App. D; needs a permutation-symmetric initial
    state), ``"general"`` (the m x m DMFT of their Sec. 2 / App. C; cost O(m^3 N^3), for small m), or ``"auto"``
    (symmetric when possible). Other keyword arguments go to the solver (``scheme``, ``allow_unstable``,
    ``divergence_threshold``, ``progress``, ...). Returns a :class:`SymmetricSolution` or :class:`GeneralSolution`.
    """
    if method not in ("auto", "symmetric", "general"):
        raise InvalidInputError(f"method: must be 'auto', 'symmetric' or 'general', got {method!r}")
    if not isinstance(problem, Problem):
        raise InvalidInputError(f"problem: expected a learndyn.dmft.Problem, got {type(problem).__name__}")
    if method == "symmetric" or (method == "auto" and problem.is_symmetric):
        return solve_symmetric(problem, t_max, dt, **kwargs)
    from .general import solve_general

    return solve_general(problem, t_max, dt, **kwargs)
