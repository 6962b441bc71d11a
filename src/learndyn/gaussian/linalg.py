"""Factorisations and correlations of (possibly singular) Gaussian covariances that keep exact
degeneracy exact under ``jit``: the shared numerical core of :mod:`learndyn.gaussian`."""

from __future__ import annotations

import math

import jax.numpy as jnp

_TWO_PI = 2.0 * math.pi


def _c(C, a, b):
    return C[..., a, b]


def _asin(x):
    return jnp.arcsin(jnp.clip(x, -1.0, 1.0))


def _safe_sqrt(x):
    return jnp.sqrt(jnp.maximum(x, 0.0))


def _exact_ratio(num, den):
    """``num / den`` that is exactly ``+-1`` when ``num == +-den`` (and 0 where ``den <= 0``).

    XLA rewrites a division by a broadcast or a square root into a multiplication by a rounded
    reciprocal (``x * (1/d)``, ``x * rsqrt(y)``; e.g. jax/jaxlib 0.10), so ``d / d`` under ``jit`` can be
    ``1 - 1.1e-16``. The degenerate index patterns (the same unit twice) rely on these ratios being
    exactly one: a correlation of ``1 - 1e-16`` puts a square-root branch point at ``sqrt(2e-16) ~ 1.5e-8``.
    """
    pos = den > 0
    q = jnp.where(pos, num / jnp.where(pos, den, 1.0), 0.0)
    return jnp.where(pos & (num == den), 1.0, jnp.where(pos & (num == -den), -1.0, q))


def _corr(c12, c11, c22):
    """Correlation ``c12 / sqrt(c11 c22)`` clipped to [-1, 1], exactly ``+-1`` for (anti-)collinear fields
    (``c12^2 >= c11 c22`` in floating point, e.g. the same field twice: see :func:`_exact_ratio`);
    0 where a variance is 0."""
    prod = c11 * c22
    pos = prod > 0
    rho = jnp.clip(c12 / jnp.sqrt(jnp.where(pos, prod, 1.0)), -1.0, 1.0)
    rho = jnp.where(c12 * c12 >= prod, jnp.sign(c12), rho)
    return jnp.where(pos, rho, 0.0)



def _norm(x, axis=-1):
    """Euclidean norm over ``axis`` with a finite gradient at 0."""
    ss = jnp.sum(x * x, axis=axis)
    pos = ss > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, ss, 1.0)), 0.0)


def _vdot(x, y):
    """Dot product over the vector axis 0 (batch-last layout)."""
    return jnp.sum(x * y, axis=0)


def _vnorm(x):
    return _norm(x, axis=0)


def _vunit(x):
    n = _vnorm(x)
    return x / jnp.where(n > 0, n, 1.0)


def _vangle(x, y):
    """Angle between vectors (axis 0): Kahan's ``2 atan2(|x^ - y^|, |x^ + y^|)``, accurate near 0 and pi."""
    xh, yh = _vunit(x), _vunit(y)
    return 2.0 * jnp.arctan2(_vnorm(xh - yh), _vnorm(xh + yh))


def psd_factor(C):
    r"""Lower-triangular ``L`` with ``L L^T = C`` for a positive *semi*-definite ``C`` (``(..., n, n)``).

    Outer-product LDL^T (Schur complements ``S <- S - (S_{:k}/S_{kk}) S_{k:}``) without pivoting;
    a non-positive pivot gives a zero column. Using the multiplier ``S_{jk}/S_{kk}`` (not a square
    root), set to exactly 1 where ``S_{jk} = S_{kk}`` (:func:`_exact_ratio`: XLA would otherwise compute
    ``S_{jk} (1/S_{kk})``), makes exactly duplicated variables (the index patterns ``a = b``, ``c = a`` ...
    of the ODE) produce bitwise identical rows of ``L`` and exactly zero pivots, also under ``jit``, so
    exact degeneracy stays exact.
    """
    C = jnp.asarray(C, dtype=jnp.float64)
    n = C.shape[-1]
    S = C
    cols = []
    rows = jnp.arange(n)
    for k in range(n):
        d = S[..., k, k]
        m = _exact_ratio(S[..., :, k], d[..., None])
        m = jnp.where(rows >= k, m, 0.0)
        cols.append(m * _safe_sqrt_grad(d)[..., None])
        S = S - m[..., :, None] * S[..., k, None, :]
    return jnp.stack(cols, axis=-1)


def _safe_sqrt_grad(x):
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)
