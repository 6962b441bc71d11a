"""Teacher-student online SGD: exact ODEs for the order parameters and finite-N simulation.

Goldt, Advani, Saxe, Krzakala & Zdeborova, NeurIPS 2019 (arXiv:1906.08632); Saad & Solla 1995.
Conventions: :mod:`learndyn.online.conventions`.
"""

from . import conventions
from .problem import OrderParameters, Problem

__all__ = ["conventions", "Problem", "OrderParameters"]
