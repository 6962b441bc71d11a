"""DMFT of large two-layer networks (Montanari & Urbani 2025, arXiv:2502.21269; spec ``dmft.md``).

* :class:`Problem` -- the frozen problem description shared by theory and simulation;
* :func:`solve` -- the symmetric DMFT (spec §2.4, §3.2) or, for non-symmetric initialisation, the
  general m x m DMFT (spec §2.2);
* :mod:`learndyn.dmft.reduced` -- the m -> infinity reduced systems (spec §4.3, §4.5).
"""

from __future__ import annotations

from .problem import PowerSeries, Problem, hermite_coefficients

__all__ = ["Problem", "PowerSeries", "hermite_coefficients"]
