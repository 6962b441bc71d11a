"""Teacher-student online SGD: exact ODEs for the order parameters and finite-N simulation.

Goldt, Advani, Saxe, Krzakala & Zdeborova, NeurIPS 2019 (arXiv:1906.08632); Saad & Solla 1995.
Conventions: :mod:`learndyn.online.conventions`.
"""

from . import conventions
from .problem import OrderParameters, Problem
from .ode import Trajectory, generalisation_error, integrate, default_alphas
from .initial import INITIALISATIONS, InitialWeights, initial_weights
from .sgd import Simulation, sgd_update, simulate
from .compare import Comparison, compare
from .fixed_points import FixedPoint, fixed_point, eg_erf_first_layer, eg_linear_first_layer, plateau_erf

__all__ = ["conventions", "Problem", "OrderParameters", "integrate", "Trajectory", "generalisation_error", "default_alphas",
           "FixedPoint", "fixed_point", "eg_erf_first_layer", "eg_linear_first_layer", "plateau_erf",
           "InitialWeights", "initial_weights", "INITIALISATIONS", "simulate", "Simulation", "sgd_update",
           "compare", "Comparison"]
