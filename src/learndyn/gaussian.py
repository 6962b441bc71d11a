r"""Gaussian expectations of activations, shared by all theories.

For zero-mean Gaussian fields with covariance ``C`` (of the integral's arguments, in argument order)
and an activation ``g`` (:class:`learndyn.activations.Activation`), this module computes

* ``I2(C) = E[g(z1) g(z2)]``                      (``C``: ``(..., 2, 2)``)
* ``J2(C) = E[g'(z1) g'(z2)]``                    (``(..., 2, 2)``)
* ``I3(C) = E[g'(z1) z2 g(z3)]``                  (``(..., 3, 3)``)
* ``I4(C) = E[g'(z1) g'(z2) g(z3) g(z4)]``        (``(..., 4, 4)``)

vectorised over any leading batch shape, as JAX functions (jit/vmap/grad-compatible), in float64.

Closed forms (Goldt et al. 2019 / Saad & Solla 1995; spec ``teacher_student.md`` §3):

* ``erf``: all four (spec §3.1), valid for singular ``C``;
* ``linear``: ``I2=C12, J2=1, I3=C23, I4=C34`` (§3.2);
* ``relu``: ``I2`` (arc-cosine kernel), ``J2``, ``I3`` (§3.3), and ``I4`` by an exact 1-D integral
  (see :func:`relu_i4`); ``abrelu`` (a x for x<0, b x for x>0): ``I2`` and ``J2``.

Every other activation is integrated by Gauss-Hermite quadrature (:func:`quadrature_i2` ...).

An activation with input scale ``s`` (``g(x) = f(s x)``) is reduced to its base function by
``z -> s z``: ``I2_g(C) = I2_f(s^2 C)``, ``J2_g = s^2 J2_f(s^2 C)``, ``I3_g = I3_f(s^2 C)``,
``I4_g = s^2 I4_f(s^2 C)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import activations as _act
from .activations import Activation

__all__ = ["i2", "j2", "i3", "i4", "relu_i4", "quadrature_i2", "quadrature_j2", "quadrature_i3", "quadrature_i4"]

_TWO_PI = 2.0 * math.pi


def _c(C, a, b):
    return C[..., a, b]


def _asin(x):
    return jnp.arcsin(jnp.clip(x, -1.0, 1.0))


def _safe_sqrt(x):
    return jnp.sqrt(jnp.maximum(x, 0.0))


# --------------------------------------------------------------------------------------------
# erf(x/sqrt 2): Saad & Solla closed forms (spec §3.1)
# --------------------------------------------------------------------------------------------
def _erf_i2(C):
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    return (2.0 / jnp.pi) * _asin(c12 / jnp.sqrt((1.0 + c11) * (1.0 + c22)))


def _erf_j2(C):
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    return (2.0 / jnp.pi) / jnp.sqrt(1.0 + c11 + c22 + c11 * c22 - c12 * c12)


def _erf_i3(C):
    c11, c12, c13 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 0, 2)
    c23, c33 = _c(C, 1, 2), _c(C, 2, 2)
    lam3 = (1.0 + c11) * (1.0 + c33) - c13 * c13
    return (2.0 / jnp.pi) / jnp.sqrt(lam3) * (c23 * (1.0 + c11) - c12 * c13) / (1.0 + c11)


def _erf_i4(C):
    c11, c12, c13, c14 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 0, 2), _c(C, 0, 3)
    c22, c23, c24 = _c(C, 1, 1), _c(C, 1, 2), _c(C, 1, 3)
    c33, c34, c44 = _c(C, 2, 2), _c(C, 2, 3), _c(C, 3, 3)
    lam4 = (1.0 + c11) * (1.0 + c22) - c12 * c12
    lam0 = (lam4 * c34 - c23 * c24 * (1.0 + c11) - c13 * c14 * (1.0 + c22)
            + c12 * c13 * c24 + c12 * c14 * c23)
    lam1 = lam4 * (1.0 + c33) - c23 * c23 * (1.0 + c11) - c13 * c13 * (1.0 + c22) + 2.0 * c12 * c13 * c23
    lam2 = lam4 * (1.0 + c44) - c24 * c24 * (1.0 + c11) - c14 * c14 * (1.0 + c22) + 2.0 * c12 * c14 * c24
    return (4.0 / jnp.pi**2) / jnp.sqrt(lam4) * _asin(lam0 / jnp.sqrt(lam1 * lam2))


# --------------------------------------------------------------------------------------------
# ReLU (spec §3.3) and abrelu
# --------------------------------------------------------------------------------------------
def _arccos1(c11, c12, c22):
    """E[relu(u) relu(v)] (arc-cosine kernel of order 1)."""
    norm = jnp.sqrt(c11 * c22)
    rho = jnp.where(norm > 0, c12 / jnp.where(norm > 0, norm, 1.0), 0.0)
    return (_safe_sqrt(c11 * c22 - c12 * c12) + c12 * (jnp.pi / 2.0 + _asin(rho))) / _TWO_PI


def _orthant2(c11, c12, c22):
    """P(u > 0, v > 0) = 1/4 + arcsin(rho)/(2 pi)."""
    norm = jnp.sqrt(c11 * c22)
    rho = jnp.where(norm > 0, c12 / jnp.where(norm > 0, norm, 1.0), 0.0)
    return 0.25 + _asin(rho) / _TWO_PI


def _abrelu_i2(C, a, b):
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    return (a * a + b * b) * _arccos1(c11, c12, c22) - 2.0 * a * b * _arccos1(c11, -c12, c22)


def _abrelu_j2(C, a, b):
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    return (a * a + b * b) * _orthant2(c11, c12, c22) + 2.0 * a * b * _orthant2(c11, -c12, c22)


def _relu_i3(C):
    """E[Theta(u) v relu(w)] = C12 sqrt(C11 C33 - C13^2)/(2 pi C11) + C23 P(u>0, w>0)  (Stein in v)."""
    c11, c12, c13 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 0, 2)
    c23, c33 = _c(C, 1, 2), _c(C, 2, 2)
    safe11 = jnp.where(c11 > 0, c11, 1.0)
    first = jnp.where(c11 > 0, c12 * _safe_sqrt(c11 * c33 - c13 * c13) / (_TWO_PI * safe11), 0.0)
    return first + c23 * _orthant2(c11, c13, c33)


def relu_i4(C):
    """E[Theta(a) Theta(b) relu(c) relu(d)] for ``C`` of shape ``(..., 4, 4)``."""
    raise NotImplementedError("relu I4 is being implemented")


# --------------------------------------------------------------------------------------------
# Gauss-Hermite quadrature for any activation
# --------------------------------------------------------------------------------------------
def quadrature_i2(act: Activation, C, order: int = 40):
    raise NotImplementedError


def quadrature_j2(act: Activation, C, order: int = 40):
    raise NotImplementedError


def quadrature_i3(act: Activation, C, order: int = 40):
    raise NotImplementedError


def quadrature_i4(act: Activation, C, order: int = 24):
    raise NotImplementedError


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------
def _base_scale(act: Activation) -> float:
    """Scale r relative to the base function of the closed forms (erf forms are for erf(x/sqrt2))."""
    if act.name == "erf":
        return math.sqrt(2.0) * act.scale
    return act.scale


def _asarray(C):
    return jnp.asarray(C, dtype=jnp.float64)


def i2(act, C, order: int = 40):
    """``I2(C) = E[g(z1) g(z2)]``, ``C`` of shape ``(..., 2, 2)`` (spec §2.1, eq. I2)."""
    act, C = _act.get(act), _asarray(C)
    r2 = _base_scale(act) ** 2
    if act.name == "erf":
        return _erf_i2(r2 * C)
    if act.name == "linear":
        return r2 * C[..., 0, 1]
    if act.name == "relu":
        return _abrelu_i2(r2 * C, 0.0, 1.0)
    if act.name == "abrelu":
        return _abrelu_i2(r2 * C, act.a, act.b)
    return quadrature_i2(act, C, order)


def j2(act, C, order: int = 40):
    """``J2(C) = E[g'(z1) g'(z2)]``, ``C`` of shape ``(..., 2, 2)``."""
    act, C = _act.get(act), _asarray(C)
    r2 = _base_scale(act) ** 2
    if act.name == "erf":
        return r2 * _erf_j2(r2 * C)
    if act.name == "linear":
        return r2 * jnp.ones(C.shape[:-2])
    if act.name == "relu":
        return r2 * _abrelu_j2(r2 * C, 0.0, 1.0)
    if act.name == "abrelu":
        return r2 * _abrelu_j2(r2 * C, act.a, act.b)
    return quadrature_j2(act, C, order)


def i3(act, C, order: int = 40):
    """``I3(C) = E[g'(z1) z2 g(z3)]``, ``C`` of shape ``(..., 3, 3)``."""
    act, C = _act.get(act), _asarray(C)
    r2 = _base_scale(act) ** 2
    if act.name == "erf":
        return _erf_i3(r2 * C)
    if act.name == "linear":
        return r2 * C[..., 1, 2]
    if act.name == "relu":
        return _relu_i3(r2 * C)
    return quadrature_i3(act, C, order)


def i4(act, C, order: int = 24):
    """``I4(C) = E[g'(z1) g'(z2) g(z3) g(z4)]``, ``C`` of shape ``(..., 4, 4)``."""
    act, C = _act.get(act), _asarray(C)
    r2 = _base_scale(act) ** 2
    if act.name == "erf":
        return r2 * _erf_i4(r2 * C)
    if act.name == "linear":
        return r2 * r2 * C[..., 2, 3]
    if act.name == "relu":
        return r2 * relu_i4(r2 * C)
    return quadrature_i4(act, C, order)
