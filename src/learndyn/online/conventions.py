r"""Conventions of teacher-student online learning (Goldt et al. 2019, eqs. (1)-(5); Saad & Solla 1995).

Every module of :mod:`learndyn.online` imports its scalings from here; the simulator's step
(:func:`learndyn.online.sgd_engine.make_step`) uses :func:`first_layer_step`, :func:`second_layer_step`,
:func:`decay_factor` and :func:`steps_per_unit_time`.

* Inputs ``x ~ N(0, I_N)``, one fresh sample per SGD step (online learning).
* Pre-activations ``lambda_k = w_k . x / sqrt(N)`` (student), ``rho_m = w*_m . x / sqrt(N)`` (teacher);
  weights are O(1) per component, so the fields are O(1).
* Teacher ``y = sum_m v*_m g(rho_m) + sigma * zeta`` with ``zeta ~ N(0, 1)``;
  student ``phi(x) = sum_k v_k g(lambda_k)``; loss ``(phi - y)^2 / 2``.
* SGD (``Delta = phi - y``):
  ``w_k <- w_k - (eta / sqrt N) v_k g'(lambda_k) Delta x``,
  ``v_k <- v_k - (eta_2 / N) g(lambda_k) Delta`` (``eta_2`` defaults to ``eta``);
  weight decay ``kappa`` adds ``-(kappa/N) w`` and ``-(kappa/N) v`` per step.
* Time ``alpha = steps / N``.
* Generalisation error against the **noiseless** teacher: ``eps_g = E[(phi(x) - y_noiseless(x))^2] / 2``.
* Order parameters ``Q_kl = w_k.w_l/N``, ``R_kn = w_k.w*_n/N``, ``T_nm = w*_n.w*_m/N``, and ``v``, ``v*``.
* The sigmoidal activation is ``g(x) = erf(x / sqrt 2)`` (``ERF_SCALE``), *not* ``erf(x)`` as in
  neural-tangents; ReLU is ``max(0, x)``, linear is ``x``.
"""

from __future__ import annotations

import math

from .. import activations

#: input scale of the sigmoidal activation of this literature: g(x) = erf(x / sqrt 2)
ERF_SCALE = 1.0 / math.sqrt(2.0)


def activation(spec) -> activations.Activation:
    """Resolve an activation in the online-learning convention of Goldt et al. 2019 (``"erf"`` means
    ``erf(x/sqrt 2)``)."""
    if isinstance(spec, str) and spec.lower() == "erf":
        return activations.erf(scale=ERF_SCALE)
    return activations.get(spec)


def first_layer_step(N: int, lr):
    """Prefactor of the first-layer update, ``eta / sqrt(N)`` (Goldt et al. 2019, eq. (2)); ``lr`` may be traced."""
    return lr / math.sqrt(N)


def second_layer_step(N: int, lr2):
    """Prefactor of the second-layer update, ``eta_2 / N`` (Goldt et al. 2019, eq. (3)); ``lr2`` may be traced."""
    return lr2 / N


def decay_factor(N: int, kappa):
    """Weight decay per SGD step, ``w <- (1 - kappa/N) w`` (and ``v`` alike); ``kappa`` may be traced."""
    return 1.0 - kappa / N


def steps_per_unit_time(N: int) -> int:
    """One unit of time ``alpha`` is ``N`` SGD steps (Goldt et al. 2019: ``alpha = steps / N``)."""
    return int(N)
