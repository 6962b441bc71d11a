"""Teacher-student online SGD: exact ODEs for the order parameters and finite-N simulation.

Goldt, Advani, Saxe, Krzakala & Zdeborova, NeurIPS 2019 (arXiv:1906.08632); Saad & Solla 1995.
Conventions: :mod:`learndyn.online.conventions`. One frozen :class:`Problem` goes to :func:`integrate` (the ODEs),
:func:`simulate` (finite-N SGD), :func:`compare` (both) and :func:`fixed_point`; every result carries a
:class:`learndyn.Status`, ``message``, ``success``, ``to_xarray()`` and ``save()``.
"""

from . import conventions
from .problem import OrderParameters, Problem
from .ode import Trajectory, default_alphas, generalisation_error, integrate, static_key
from .initial import INITIALISATIONS, InitialWeights, initial_weights
from .sgd import Simulation, clear_cache, record_steps, sgd_update, simulate
from .comparison import Comparison, compare, deviation_exponent
from .fixed_points import FixedPoint, fixed_point, eg_erf_first_layer, eg_linear_first_layer, plateau_erf

__all__ = ["conventions", "Problem", "OrderParameters", "integrate", "Trajectory", "generalisation_error",
           "default_alphas", "static_key", "FixedPoint", "fixed_point", "eg_erf_first_layer", "eg_linear_first_layer", "plateau_erf",
           "InitialWeights", "initial_weights", "INITIALISATIONS", "simulate", "Simulation", "sgd_update",
           "record_steps", "clear_cache", "compare", "Comparison", "deviation_exponent"]
