"""DMFT of large two-layer networks (Montanari & Urbani 2025, arXiv:2502.21269; spec ``dmft.md``).

* :class:`Problem` -- the frozen problem description shared by theory and simulation;
* :func:`solve` -- the symmetric DMFT (spec §2.4, §3.2) or, for non-symmetric initialisation, the
  general m x m DMFT (spec §2.2);
* :mod:`learndyn.dmft.reduced` -- the m -> infinity reduced systems (spec §4.3, §4.5).
"""

from __future__ import annotations

from .problem import PowerSeries, Problem, hermite_coefficients
from .results import GeneralSolution, SymmetricSolution
from .symmetric import StabilityWarning, StepLimits, richardson, solve_symmetric, step_limits
from . import reduced  # noqa: E402  (m -> infinity reduced systems)
from . import gaussian_model  # noqa: E402  (simulations: Gaussian-model GD)
from . import networks  # noqa: E402  (simulations: real two-layer networks, GD/SGD)

__all__ = [
    "Problem", "PowerSeries", "hermite_coefficients", "solve", "solve_symmetric", "richardson",
    "StabilityWarning", "StepLimits", "step_limits", "SymmetricSolution", "GeneralSolution",
]


def solve(problem: Problem, t_max: float, dt: float, *, method: str = "auto", **kwargs):
    """Integrate the DMFT of ``problem`` up to ``t_max`` with step ``dt``.

    ``method``: ``"symmetric"`` (SymmDMFT, spec §2.4; needs a permutation-symmetric initial state),
    ``"general"`` (the m x m DMFT, spec §2.2; cost O(m^3 N^3), for small m), or ``"auto"`` (symmetric when
    possible). Other keyword arguments go to the solver (``scheme``, ``allow_unstable``, ...).
    """
    if method not in ("auto", "symmetric", "general"):
        raise ValueError(f"method: must be 'auto', 'symmetric' or 'general', got {method!r}")
    if not isinstance(problem, Problem):
        raise ValueError(f"problem: expected a learndyn.dmft.Problem, got {type(problem).__name__}")
    if method == "symmetric" or (method == "auto" and problem.is_symmetric):
        return solve_symmetric(problem, t_max, dt, **kwargs)
    from .general import solve_general

    return solve_general(problem, t_max, dt, **kwargs)
