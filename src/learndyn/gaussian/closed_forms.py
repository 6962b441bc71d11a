r"""Closed forms of the Gaussian integrals and kernel maps of erf, linear, ReLU and abrelu.

Integrals of the teacher-student ODE (Saad & Solla 1995; Goldt et al. 2019, the averages behind
eqs. (6)-(8)), for zero-mean fields of covariance ``C`` in argument order:

* ``erf(x/sqrt 2)`` (Saad & Solla 1995): ``I2 = (2/pi) asin(C12 / sqrt((1+C11)(1+C22)))``,
  ``J2 = (2/pi) (1 + C11 + C22 + C11 C22 - C12^2)^(-1/2)``, ``I3``, ``I4`` (:func:`erf_i3`,
  :func:`erf_i4`), valid for singular ``C``;
* ReLU (arc-cosine kernels, Cho & Saul 2009): ``I2`` (order 1), ``J2`` (order 0) and ``I3`` (Stein's
  lemma in the middle field); abrelu (``a x`` for ``x < 0``, ``b x`` for ``x > 0``): ``I2`` and ``J2``.

Kernel maps of the NNGP/NTK recursion (Xiao, Pennington & Schoenholz 2020; neural-tangents'
``Erf``/``ABRelu``), ``V(Sigma) = E[phi(u) phi(v)]`` and ``Vdot(Sigma) = E[phi'(u) phi'(v)]`` for
``Sigma = [[a, K], [K, b]]``, in the numerically stable ``atan2`` forms (Williams 1997 for erf:
``V = (2/pi) atan2(2K, sqrt((1+2a)(1+2b) - 4K^2))``; Cho & Saul 2009 for abrelu:
``V = (a-b)^2/(2 pi) sqrt(ab - K^2) + [(a^2+b^2)/2 - (a-b)^2 theta/(2 pi)] K``,
``theta = atan2(sqrt(ab - K^2), K)``). The ODE's ``I2``/``J2`` and the kernel maps are the same
integrals in two roundings: the ``asin`` forms above for the ODE, the ``atan2`` forms for deep kernels
(accurate at correlation 1, where the recursion spends its depth).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from .linalg import _TWO_PI, _asin, _c, _corr, _safe_sqrt

__all__ = ["erf_i2", "erf_j2", "erf_i3", "erf_i4", "arccos1", "orthant2", "abrelu_i2", "abrelu_j2", "relu_i3",
           "atan2", "erf_kernel_map", "erf_kernel_diag", "abrelu_kernel_map", "abrelu_kernel_diag"]

# --------------------------------------------------------------------------------------------
# erf(x/sqrt 2): Saad & Solla 1995 closed forms
# --------------------------------------------------------------------------------------------
def erf_i2(C):
    """``I2 = E[g(z1) g(z2)] = (2/pi) asin(C12 / sqrt((1+C11)(1+C22)))`` for ``g = erf(x/sqrt 2)``
    (Saad & Solla 1995; Goldt et al. 2019, eq. (4) for the generalisation error built from it)."""
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    return (2.0 / jnp.pi) * _asin(c12 / jnp.sqrt((1.0 + c11) * (1.0 + c22)))


def erf_j2(C):
    """``J2 = E[g'(z1) g'(z2)] = (2/pi) (1 + C11 + C22 + C11 C22 - C12^2)^(-1/2)`` for ``g = erf(x/sqrt 2)``
    (Saad & Solla 1995)."""
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    return (2.0 / jnp.pi) / jnp.sqrt(1.0 + c11 + c22 + c11 * c22 - c12 * c12)


def erf_i3(C):
    """``I3 = E[g'(z1) z2 g(z3)] = (2/pi) (C23 (1+C11) - C12 C13) / ((1+C11) sqrt(L3))``,
    ``L3 = (1+C11)(1+C33) - C13^2``, for ``g = erf(x/sqrt 2)`` (Saad & Solla 1995)."""
    c11, c12, c13 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 0, 2)
    c23, c33 = _c(C, 1, 2), _c(C, 2, 2)
    lam3 = (1.0 + c11) * (1.0 + c33) - c13 * c13
    return (2.0 / jnp.pi) / jnp.sqrt(lam3) * (c23 * (1.0 + c11) - c12 * c13) / (1.0 + c11)


def erf_i4(C):
    """``I4 = E[g'(z1) g'(z2) g(z3) g(z4)] = (4/pi^2) asin(L0 / sqrt(L1 L2)) / sqrt(L4)`` for
    ``g = erf(x/sqrt 2)`` (Saad & Solla 1995; the ``Lambda`` polynomials of ``C`` as written below)."""
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
# ReLU and abrelu: arc-cosine kernels (Cho & Saul 2009)
# --------------------------------------------------------------------------------------------
def arccos1(c11, c12, c22):
    """E[relu(u) relu(v)] (arc-cosine kernel of order 1)."""
    rho = _corr(c12, c11, c22)
    return (_safe_sqrt(c11 * c22 - c12 * c12) + c12 * (jnp.pi / 2.0 + _asin(rho))) / _TWO_PI


def orthant2(c11, c12, c22):
    """P(u > 0, v > 0) = 1/4 + arcsin(rho)/(2 pi)."""
    rho = _corr(c12, c11, c22)
    return 0.25 + _asin(rho) / _TWO_PI


def abrelu_i2(C, a, b):
    """``I2 = E[g(u) g(v)]`` for ``g(x) = a x (x < 0), b x (x > 0)``:
    ``(a^2 + b^2) k1(C12) - 2 a b k1(-C12)`` with ``k1`` the order-1 arc-cosine kernel (Cho & Saul 2009)."""
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    return (a * a + b * b) * arccos1(c11, c12, c22) - 2.0 * a * b * arccos1(c11, -c12, c22)


def abrelu_j2(C, a, b):
    r"""``E[g'(u) g'(v)]`` for ``g' = a + (b - a) Theta``:
    ``a^2 + a (b-a) (P(u>0) + P(v>0)) + (b-a)^2 P(u>0, v>0)``.

    A zero-variance field is identically 0 and ``Theta(0) = 0`` (the convention of
    :meth:`Activation.grad` and of the simulations), so its probabilities are 0.
    """
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    p1 = jnp.where(c11 > 0, 0.5, 0.0)
    p2 = jnp.where(c22 > 0, 0.5, 0.0)
    p12 = jnp.where((c11 > 0) & (c22 > 0), orthant2(c11, c12, c22), 0.0)
    return a * a + a * (b - a) * (p1 + p2) + (b - a) ** 2 * p12


def relu_i3(C):
    """E[Theta(u) v relu(w)] = C12 sqrt(C11 C33 - C13^2)/(2 pi C11) + C23 P(u>0, w>0)  (Stein in v).

    ``C11 = 0`` (a field that is identically zero, ``Theta(0) = 0``) gives 0.
    """
    c11, c12, c13 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 0, 2)
    c23, c33 = _c(C, 1, 2), _c(C, 2, 2)
    pos = c11 > 0
    safe11 = jnp.where(pos, c11, 1.0)
    first = c12 * _safe_sqrt(c11 * c33 - c13 * c13) / (_TWO_PI * safe11)
    return jnp.where(pos, first + c23 * orthant2(c11, c13, c33), 0.0)


# --------------------------------------------------------------------------------------------
# kernel maps of the NNGP / NTK recursion (Xiao, Pennington & Schoenholz 2020)
# --------------------------------------------------------------------------------------------
def _fit_atan_coefficients(degree: int = 10) -> tuple[float, ...]:
    """Monomial coefficients P with atan(u) ~= u P(u^2) on |u| <= tan(pi/8) (Chebyshev fit, ~2 ulp)."""
    zmax = (math.sqrt(2.0) - 1.0) ** 2
    nodes = np.cos(np.pi * (np.arange(2000) + 0.5) / 2000)
    u = np.sqrt((nodes + 1.0) / 2.0 * zmax)
    cheb = np.polynomial.chebyshev.chebfit(nodes, np.arctan(u) / u, degree)
    in_t = np.polynomial.Polynomial(np.polynomial.chebyshev.cheb2poly(cheb))
    in_z = in_t(np.polynomial.Polynomial([-1.0, 2.0 / zmax]))
    return tuple(float(c) for c in in_z.coef)


_ATAN_P = _fit_atan_coefficients()
_TAN_PI_8 = math.sqrt(2.0) - 1.0


def atan2(y, x):
    """arctan2(y, x) in float64 to ~2 ulp, branch-free (XLA's CPU atan2 is ~3x slower).

    Octant reduction to a = min/max in [0, 1], then atan(a) = pi/4 + atan((a-1)/(a+1)) for
    a > tan(pi/8), and a degree-10 polynomial in u^2 on |u| <= tan(pi/8).  atan2(0, 0) = 0.
    """
    ax, ay = jnp.abs(x), jnp.abs(y)
    hi, lo = jnp.maximum(ax, ay), jnp.minimum(ax, ay)
    a = jnp.where(hi > 0, lo / jnp.where(hi > 0, hi, 1.0), 0.0)
    big = a > _TAN_PI_8
    u = jnp.where(big, (a - 1.0) / (a + 1.0), a)
    z = u * u
    p = _ATAN_P[-1]
    for c in _ATAN_P[-2::-1]:
        p = p * z + c
    t = u * p
    t = jnp.where(big, math.pi / 4 + t, t)
    t = jnp.where(ay > ax, math.pi / 2 - t, t)
    t = jnp.where(x < 0, math.pi - t, t)
    return jnp.where(y < 0, -t, t)


def _sqrt0(x):
    return jnp.sqrt(jnp.maximum(x, 0.0))


def erf_kernel_map(K, a, b, ntk, s2: float):
    r"""``(V, ntk * Vdot)`` of ``phi(x) = erf(s x)`` (``s2 = s^2``) at ``Sigma = [[a, K], [K, b]]``.

    ``V = (2/pi) atan2(2K, sqrt((1+2a)(1+2b) - 4K^2))`` (Williams 1997; neural-tangents ``Erf``) and
    ``Vdot = (4/pi) / sqrt((1+2a)(1+2b) - 4K^2)``, with the input scale folded into ``Sigma``
    (``V_{erf(s.)}(Sigma) = V_erf(s^2 Sigma)``, ``Vdot = s^2 Vdot_erf(s^2 Sigma)``). ``ntk=None`` skips ``Vdot``.
    """
    if s2 != 1.0:
        K, a, b = s2 * K, s2 * a, s2 * b
        ntk = None if ntk is None else s2 * ntk
    # |K| <= sqrt(a b) (Cauchy-Schwarz); clamping keeps exact duplicates of an input from drifting
    # above it by the same chaotic-phase growth of rounding errors
    lim = jnp.sqrt(a * b)
    K = jnp.clip(K, -lim, lim)
    prod = (1.0 + 2.0 * a) * (1.0 + 2.0 * b)
    root = _sqrt0(prod - 4.0 * K * K)
    V = (2.0 / math.pi) * atan2(2.0 * K, root)
    if ntk is not None:
        ntk = ntk * ((4.0 / math.pi) / root)
    return V, ntk


def erf_kernel_diag(v, s2: float):
    """``V`` of ``erf(s x)`` at ``[[v, v], [v, v]]``: ``(2/pi) atan2(s^2 v, sqrt(s^2 v + 1/4))`` (Williams 1997)."""
    v = s2 * v if s2 != 1.0 else v
    return (2.0 / math.pi) * atan2(v, jnp.sqrt(v + 0.25))


def abrelu_kernel_map(K, a, b, ntk, same, s2: float, sa: float, sb: float):
    r"""``(V, ntk * Vdot)`` of ``phi(x) = abrelu(s x)`` (slopes ``sa`` for ``x < 0``, ``sb`` for ``x > 0``).

    Arc-cosine kernels (Cho & Saul 2009; neural-tangents ``ABRelu``), with
    ``theta = atan2(sqrt(ab - K^2), K)``: ``V = (sa-sb)^2/(2 pi) sqrt(ab - K^2) + Vdot K`` and
    ``Vdot = (sa^2 + sb^2)/2 - (sa-sb)^2 theta/(2 pi)``. ``same`` (optional boolean mask): entries that
    pair an input with itself, where the angle is exactly 0 (not ``atan2(sqrt(rounding), K)``).
    """
    if s2 != 1.0:
        K, a, b = s2 * K, s2 * a, s2 * b
        ntk = None if ntk is None else s2 * ntk
    root = _sqrt0(a * b - K * K)
    if same is not None:
        root = jnp.where(same, 0.0, root)
    angle = jnp.where((root == 0.0) & (K == 0.0), math.pi / 2, atan2(root, K))
    fac = (sa - sb) ** 2 / (2.0 * math.pi)
    dot = (sa * sa + sb * sb) / 2.0 - fac * angle
    V = fac * root + dot * K
    if ntk is not None:
        ntk = ntk * dot
    return V, ntk


def abrelu_kernel_diag(v, s2: float, sa: float, sb: float):
    """``V`` of ``abrelu(s x)`` at ``[[v, v], [v, v]]``: ``(sa^2 + sb^2)/2 s^2 v`` (positive homogeneity)."""
    return (sa * sa + sb * sb) / 2.0 * (s2 * v if s2 != 1.0 else v)
