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

Every other activation is integrated by Gauss-Hermite quadrature (:func:`quadrature_i2` ...):
tensor rules on ``z = L xi`` (``L`` an LDL^T factor that keeps exactly duplicated fields exactly
degenerate), ``I3`` reduced to 2-D by ``E[z2 | z1, z3]``, and a *rank-adaptive* choice of rule
(exactly singular covariances from repeated indices, e.g. ``J2(i, i)`` or ``I4(i, i, c, d)``, are
integrated in their own dimension with more nodes; they are the hardest cases). ``order`` is the
accuracy knob; :func:`quadrature_error_estimate` compares two orders.

Measured quadrature error (``benchmarks/gaussian.py``): max |error| over all index tuples of one
K=4, M=2 teacher-student state with unit-scale weights (tanh/sigmoid: against order 200 (2-D, 3-D) or
32 (4-D); erf: against the closed forms)::

    order               8      16     24     32     40     60
    tanh     I2       4e-04  2e-05  1e-06  2e-07  2e-08  3e-10
    tanh     J2       1e-02  5e-04  4e-05  5e-06  7e-07  1e-08
    tanh     I3       4e-03  2e-04  2e-05  3e-06  4e-07  7e-09
    sigmoid  J2       6e-06  1e-08  7e-11  9e-13  2e-14  4e-17
    erf(x)   I2       2e-04  1e-06  8e-09  5e-11  3e-13  5e-16
    erf(x)   J2       6e-03  3e-05  2e-07  8e-10  5e-12  4e-16
    erf(x)   I3       2e-03  3e-05  2e-07  2e-09  1e-11  4e-16

    order (I4, cost ~2 order**4)   6      8      12     16     20
    tanh          I4             3e-03  1e-03  2e-04  4e-05  9e-06
    sigmoid       I4             1e-05  2e-06  5e-08  3e-09  2e-10
    erf(x/sqrt2)  I4             2e-04  2e-05  3e-07  5e-09  1e-10
    erf(x)        I4             4e-03  1e-03  1e-04  8e-06  6e-07

Gauss-Hermite converges only like ``exp(-c sqrt(order))`` for activations with poles near the real
axis (tanh: ``i pi/2``) and more slowly the larger the variances (the error grows with ``C_ii``);
kinks (ReLU-like callables) converge algebraically (~1e-2 at order 20 in 4-D).

An activation with input scale ``s`` (``g(x) = f(s x)``) is reduced to its base function by
``z -> s z``: ``I2_g(C) = I2_f(s^2 C)``, ``J2_g = s^2 J2_f(s^2 C)``, ``I3_g = I3_f(s^2 C)``,
``I4_g = s^2 I4_f(s^2 C)``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from . import activations as _act
from .activations import Activation

__all__ = [
    "i2", "j2", "i3", "i4", "relu_i4", "relu_orthant_moment", "orthant4", "psd_factor",
    "quadrature_i2", "quadrature_j2", "quadrature_i3", "quadrature_i4", "quadrature_error_estimate",
]

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
    rho = _corr(c12, c11, c22)
    return (_safe_sqrt(c11 * c22 - c12 * c12) + c12 * (jnp.pi / 2.0 + _asin(rho))) / _TWO_PI


def _orthant2(c11, c12, c22):
    """P(u > 0, v > 0) = 1/4 + arcsin(rho)/(2 pi)."""
    rho = _corr(c12, c11, c22)
    return 0.25 + _asin(rho) / _TWO_PI


def _abrelu_i2(C, a, b):
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    return (a * a + b * b) * _arccos1(c11, c12, c22) - 2.0 * a * b * _arccos1(c11, -c12, c22)


def _abrelu_j2(C, a, b):
    r"""``E[g'(u) g'(v)]`` for ``g' = a + (b - a) Theta``:
    ``a^2 + a (b-a) (P(u>0) + P(v>0)) + (b-a)^2 P(u>0, v>0)``.

    A zero-variance field is identically 0 and ``Theta(0) = 0`` (the convention of
    :meth:`Activation.grad` and of the simulations), so its probabilities are 0.
    """
    c11, c12, c22 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 1, 1)
    p1 = jnp.where(c11 > 0, 0.5, 0.0)
    p2 = jnp.where(c22 > 0, 0.5, 0.0)
    p12 = jnp.where((c11 > 0) & (c22 > 0), _orthant2(c11, c12, c22), 0.0)
    return a * a + a * (b - a) * (p1 + p2) + (b - a) ** 2 * p12


def _relu_i3(C):
    """E[Theta(u) v relu(w)] = C12 sqrt(C11 C33 - C13^2)/(2 pi C11) + C23 P(u>0, w>0)  (Stein in v).

    ``C11 = 0`` (a field that is identically zero, ``Theta(0) = 0``) gives 0.
    """
    c11, c12, c13 = _c(C, 0, 0), _c(C, 0, 1), _c(C, 0, 2)
    c23, c33 = _c(C, 1, 2), _c(C, 2, 2)
    pos = c11 > 0
    safe11 = jnp.where(pos, c11, 1.0)
    first = c12 * _safe_sqrt(c11 * c33 - c13 * c13) / (_TWO_PI * safe11)
    return jnp.where(pos, first + c23 * _orthant2(c11, c13, c33), 0.0)


# --------------------------------------------------------------------------------------------
# ReLU I4 and the 4-D orthant probability: one exact 1-D integral (Price's theorem)
# --------------------------------------------------------------------------------------------
_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))

#: default number of nodes of the 1-D integral behind :func:`relu_i4` / :func:`orthant4`
RELU_I4_NODES = 64
#: smallest scale resolved by the sinh node map (see :func:`relu_i4`)
_SIGMA0 = 1e-9


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


@functools.lru_cache(maxsize=None)
def _sinh_nodes(nodes: int, sigma0: float):
    r"""Nodes ``s_k`` and weights of ``\int_0^1 f(t) dt = \int_0^1 f(1 - s^2) 2 s ds`` after the map
    ``s = sigma0 sinh(mu u)``, ``mu = asinh(1/sigma0)``, with ``nodes``-point Gauss-Legendre in ``u``."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    u, w = 0.5 * (x + 1.0), 0.5 * w
    mu = math.asinh(1.0 / sigma0)
    s = sigma0 * np.sinh(mu * u)
    wt = 2.0 * s * sigma0 * mu * np.cosh(mu * u) * w
    return s, wt


def _price_integrand(R, L, s, want_i4: bool):
    r"""Integrand of :func:`relu_i4` (``want_i4``) or of :func:`orthant4` at ``t = 1 - s^2``.

    Batch-last layout: ``R`` (correlation matrices) and ``L`` (a factor, ``L L^T = R``) have shape
    ``(4, 4, B)``. The fields at ``t`` are ``z(t) = sqrt(t) L xi + s eta`` (``xi, eta ~ N(0, I_4)``), i.e.
    the rows ``a_k`` of ``A(t) = [sqrt(t) L, s I]`` have Gram matrix ``R(t) = (1-t) I + t R``.
    Conditional variances, partial correlations and angles come from Gram-Schmidt on these vectors
    (never from differences of entries of ``R(t)``), which keeps them accurate when ``R`` is singular.
    """
    t = 1.0 - s * s
    B = R.shape[2:]
    eye = jnp.broadcast_to(jnp.eye(4, dtype=R.dtype)[:, :, None], (4, 4) + B)
    a = [jnp.concatenate([jnp.sqrt(t) * L[k], s * eye[k]], axis=0) for k in range(4)]  # 4 x (8, B)
    na = [_vnorm(v) for v in a]
    ah = [v / n for v, n in zip(a, na)]
    # e[x][j]: residual of a_j after projecting out a_x
    e = {(x, j): a[j] - _vdot(a[j], ah[x]) * ah[x] for x in range(4) for j in range(4) if x != j}
    ne = {k: _vnorm(v) for k, v in e.items()}
    eh = {k: v / jnp.where(ne[k] > 0, ne[k], 1.0) for k, v in e.items()}

    theta, resid = {}, {}
    for i, j in _PAIRS:  # angle between the residuals of the other two fields given (z_i, z_j)
        k, l = [m for m in range(4) if m not in (i, j)]
        u = eh[(i, j)]
        fk = e[(i, k)] - _vdot(e[(i, k)], u) * u
        fl = e[(i, l)] - _vdot(e[(i, l)], u) * u
        theta[(i, j)] = _vangle(fk, fl)
        resid[(i, j)] = (fk, fl)
    pi = math.pi
    # phi2(0, 0) of (z_i, z_j) at t: 1 / (2 pi sqrt(det)), sqrt(det) = |a_i| |residual of a_j given a_i|
    phi2 = {p: 1.0 / (_TWO_PI * na[p[0]] * ne[p]) for p in _PAIRS}
    # Plackett: dP4/dt = sum_{i<j} R_ij phi2_ij P(other two > 0 | z_i = z_j = 0)
    dp4 = sum(R[i, j] * phi2[(i, j)] * (pi - theta[(i, j)]) / _TWO_PI for i, j in _PAIRS)
    if not want_i4:
        return dp4
    # d/dC_ab: phi2_ab E[relu(c) relu(d) | a = b = 0]  (arc-cosine kernel of the residuals)
    fc, fd = resid[(0, 1)]
    th = theta[(0, 1)]
    kern = _vnorm(fc) * _vnorm(fd) * (jnp.sin(th) + (pi - th) * jnp.cos(th)) / _TWO_PI
    out = R[0, 1] * phi2[(0, 1)] * kern
    # d/dC_xy (x in {a,b}, y in {c,d}): phi1(0) E[Theta(x') Theta(y) relu(y') | x = 0], with the
    # 3-D moment E[X_t Theta Theta Theta] = sum_j S_tj (2 pi S_jj)^(-1/2) P(other two > 0 | X_j = 0)
    for x in (0, 1):
        xp = 1 - x
        for y in (2, 3):
            yp = 5 - y
            acc = 0.0
            for j in (xp, y, yp):
                pair = (min(x, j), max(x, j))
                acc = acc + _vdot(e[(x, yp)], eh[(x, j)]) * (pi - theta[pair]) / _TWO_PI
            out = out + R[x, y] / (_TWO_PI * na[x]) * acc
    # d/dC_cd: P4(t); integrated by parts, int_0^1 P4 = P4(0) + int_0^1 (1 - t) P4'(t) dt
    return out + R[2, 3] * (s * s) * dp4


def _bucket(n: int) -> int:
    """Padded batch size: powers of two up to 1024, then multiples of 1024 (bounds recompilation)."""
    if n <= 1024:
        return 1 << max(0, (n - 1).bit_length())
    return -(-n // 1024) * 1024


def _price_integral(C, nodes: int, want_i4: bool):
    C = jnp.asarray(C, dtype=jnp.float64)
    if C.ndim < 2 or C.shape[-2:] != (4, 4):
        raise ValueError(f"C: expected shape (..., 4, 4), got {C.shape}")
    batch = C.shape[:-2]
    C = C.reshape((-1, 4, 4))
    n = C.shape[0]
    # eager calls: pad to a bucket so that varying batch sizes reuse compilations; inside a caller's
    # jit (a tracer) the shape is fixed anyway and padding would only cost time
    pad = 0 if isinstance(C, jax.core.Tracer) else _bucket(n) - n
    if pad:
        C = jnp.concatenate([C, jnp.broadcast_to(jnp.eye(4), (pad, 4, 4))], axis=0)
    return _price_integral_jit(C, nodes=int(nodes), want_i4=want_i4)[:n].reshape(batch)


def _correlation_factor(C):
    """``(zero, d, R, L)`` of covariances ``C`` (``(..., n, n)``): which have a zero-variance field
    (``Theta(0) = relu(0) = 0``), the variances (1 where ``zero``), the correlation matrix and its
    :func:`psd_factor` ``L`` (``L L^T = R``)."""
    n = C.shape[-1]
    d = jnp.diagonal(C, axis1=-2, axis2=-1)
    zero = jnp.any(d <= 0, axis=-1)
    dsafe = jnp.where(zero[..., None], 1.0, d)
    # exactly +-1 for duplicated fields, also under jit (see _corr): rows of duplicates stay bitwise equal
    R = _corr(C, dsafe[..., :, None], dsafe[..., None, :])
    R = jnp.where(zero[..., None, None], jnp.eye(n), R)
    R = jnp.where(jnp.eye(n, dtype=bool), 1.0, R)
    return zero, dsafe, R, psd_factor(R)


def _price_integral_flat(C, nodes: int, want_i4: bool):
    zero, dsafe, R, L = _correlation_factor(C)
    sd = jnp.sqrt(dsafe)
    s, wt = _sinh_nodes(int(nodes), _SIGMA0)
    Rt, Lt = jnp.moveaxis(R, 0, -1), jnp.moveaxis(L, 0, -1)  # batch-last: (4, 4, B)

    def body(acc, sw):
        si, wi = sw
        return acc + wi * _price_integrand(Rt, Lt, si, want_i4), None

    acc, _ = jax.lax.scan(body, jnp.zeros(R.shape[:-2]), (jnp.asarray(s), jnp.asarray(wt)))
    if want_i4:
        val = (1.0 / (8.0 * math.pi) + R[..., 2, 3] / 16.0 + acc) * sd[..., 2] * sd[..., 3]
    else:
        val = 1.0 / 16.0 + acc
    return jnp.where(zero, 0.0, val)


_price_integral_jit = jax.jit(_price_integral_flat, static_argnames=("nodes", "want_i4"))


def orthant4(C, nodes: int = RELU_I4_NODES):
    r"""Orthant probability ``P4 = P(z1 > 0, z2 > 0, z3 > 0, z4 > 0)`` for ``z ~ N(0, C)``, ``C`` ``(..., 4, 4)``.

    Plackett's identity along ``C(t) = (1-t) D + t C`` (``D = diag C``):
    ``P4 = 1/16 + \int_0^1 \sum_{i<j} C_ij phi2_ij(0, 0; t) P(z_k, z_l > 0 | z_i = z_j = 0; t) dt``,
    evaluated as :func:`relu_i4` does. A zero-variance field gives 0.
    """
    return _price_integral(C, int(nodes), want_i4=False)


def relu_i4(C, nodes: int = RELU_I4_NODES):
    r"""``I4 = E[Theta(a) Theta(b) relu(c) relu(d)]`` for ``(a, b, c, d) ~ N(0, C)``, ``C`` ``(..., 4, 4)``.

    No closed form exists (spec ``teacher_student.md`` §3.3). Instead of the spec's reduction to a
    4-D orthant probability plus conditional moments (which divides by conditional variances that
    vanish for the degenerate index patterns of the ODE), we integrate along the path
    ``C(t) = (1-t) D + t C``, ``D = diag C`` (positive definite for ``t < 1``), using Price's theorem
    ``dI4/dt = sum_{i<j} C_ij E[d_i d_j (Theta Theta relu relu)]``:

    * ``(a,b)``: ``phi2(0,0) E[relu(c) relu(d) | a=b=0]`` (arc-cosine kernel of the conditional 2x2);
    * ``(x,y)``, ``x in {a,b}``, ``y in {c,d}``: ``phi1(0) E[Theta Theta relu | x=0]`` (elementary
      3-D first moment, spec §3.3);
    * ``(c,d)``: ``P4(t)``, integrated by parts with Plackett's ``dP4/dt`` (see :func:`orthant4`).

    Hence (correlation units, ``r = C / sqrt(diag diag)``)

    ``I4 = sqrt(C_cc C_dd) [ 1/(8 pi) + r_cd/16 + \int_0^1 ( e(t) + r_cd (1-t) P4'(t) ) dt ]``,

    one 1-D integral of elementary functions evaluated only at ``t < 1``. The substitution
    ``t = 1 - s^2`` removes the ``(1-t)^{-1/2}`` endpoint behaviour of singular ``C`` and the map
    ``s = 1e-9 sinh(mu u)`` (``mu = asinh(1e9)``) spreads the ``nodes`` Gauss-Legendre nodes in ``u``
    geometrically over ``s in [1e-9, 1]``, which resolves branch points at ``t = 1 + delta`` of
    nearly singular ``C`` (numerically collinear fields) down to ``delta ~ 1e-18``. All
    conditional quantities come from Gram-Schmidt on a factor of ``C(t)`` (see
    :func:`_price_integrand`), so exactly singular ``C`` (``a = b``, ``c = a``, ``c = d`` ...) is handled
    without special cases. A zero-variance field (``C_xx = 0``) gives 0 (``Theta(0) = relu(0) = 0``).

    Measured accuracy (``benchmarks/gaussian.py``, ``tests/test_gaussian.py``), max |error| over 2000
    ODE-like tuples (exact copies and near-copies of units) and 200 random PD ``C``, against 400
    nodes: 24 nodes 4e-5, 32: 2e-6, 40: 8e-8, 48: 4e-9, **64 (default): 1.4e-11**, 96: 3e-13.
    Against independent references: on exactly repeated fields up to 1.1e-10 (200 random 3-field
    covariances, all 4-tuples with a repeated field) against Tallis' closed forms
    (:func:`relu_orthant_moment`, confirmed by SciPy ``dblquad`` to 1e-13), which the online ODE uses for
    the tuples with repeated indices (exact and cheaper); the spec §3.3 reduction with an
    Owen-T/adaptive-quadrature ``P4`` <= 1e-11; Monte Carlo (1e7 samples) within 5 standard errors.
    Cost: ``nodes`` evaluations of an elementary integrand (~2000 flops) per covariance.
    """
    return _price_integral(C, int(nodes), want_i4=True)


def _residual(xq, xk):
    """``xq - (xq . xk) xk`` for unit vectors (axis 0), from their difference ``d = xq - xk``
    (``xq . xk = 1 - |d|^2/2``) or sum ``s = xq + xk`` (``-1 + |s|^2/2``), whichever is shorter: exactly 0
    for bitwise equal (or opposite) vectors, where ``xq . xk`` rounds to ``1 + 2e-16`` and the direct
    formula leaves a residual of rounding noise (normalised to an arbitrary unit vector)."""
    d, s = xq - xk, xq + xk
    dd, ss = _vdot(d, d), _vdot(s, s)
    return jnp.where(dd <= ss, d + 0.5 * dd * xk, s - 0.5 * ss * xk)


def relu_orthant_moment(C, i: int, j: int):
    r"""``E[z_i z_j 1{z_1 > 0, ..., z_n > 0}]`` for ``z ~ N(0, C)``, ``C`` ``(..., n, n)``, ``n in {1, 2, 3}``.

    Closed form of Tallis (1961, "The moment generating function of the truncated multi-normal
    distribution", eq. for the second moments at truncation point 0): in correlation units
    ``x = z / sqrt(diag C)``, correlation ``R``,

    ``E[x_i x_j 1{x > 0}] = R_ij P_n + sum_k R_ik sum_{q != k} (R_jq - R_kq R_kj) phi_2(0, 0; R_kq) P_{n-2}``,

    with ``phi_2(0, 0; r) = 1 / (2 pi sqrt(1 - r^2))``, ``P_{n-2} = P(remaining > 0 | x_k = x_q = 0)``
    (1 for ``n = 2``, 1/2 for ``n = 3``: one centred variable), and the orthant probabilities
    ``P_2 = 1/4 + asin(r)/(2 pi)``, ``P_3 = 1/8 + sum_{p<q} asin(R_pq)/(4 pi)``. The ratio
    ``(R_jq - R_kq R_kj) / sqrt(1 - R_kq^2) = x_j . e_{q|k}`` (``e_{q|k}`` the unit residual of ``x_q``
    after ``x_k``) and ``asin R_pq = pi/2 - angle(x_p, x_q)`` are evaluated from a factor of ``R`` by
    Gram-Schmidt, so (nearly) collinear fields stay accurate; an exactly collinear pair contributes 0,
    which is the limit (its two terms cancel).

    These are the ReLU Gaussian averages of the ODE with repeated fields (``Theta(x)^2 = Theta(x)``,
    ``Theta(x) relu(x) = relu(x)``): ``E[Theta(a) Theta(b) relu(c)^2]`` (``i = j = c``),
    ``E[Theta(a) relu(b) relu(c)]``, ``E[Theta(a) relu(b)^2]``, ``E[relu(a) relu(b)]`` (arc-cosine
    kernel). Checked against :func:`relu_i4` and SciPy ``dblquad`` (``tests/test_gaussian.py``).
    A zero-variance field gives 0.
    """
    C = jnp.asarray(C, dtype=jnp.float64)
    n = C.shape[-1]
    if C.ndim < 2 or C.shape[-2] != n or n not in (1, 2, 3):
        raise ValueError(f"C: expected shape (..., n, n) with n in (1, 2, 3), got {C.shape}")
    if not (0 <= i < n and 0 <= j < n):
        raise ValueError(f"i, j: must index the {n} fields, got {i}, {j}")
    zero, dsafe, R, L = _correlation_factor(C)
    scale = jnp.sqrt(dsafe[..., i] * dsafe[..., j])
    if n == 1:
        return jnp.where(zero, 0.0, 0.5 * scale)
    x = [_vunit(jnp.moveaxis(L[..., k, :], -1, 0)) for k in range(n)]  # unit vectors, batch-last
    pairs = [(p, q) for p in range(n) for q in range(p + 1, n)]
    asin = {pq: math.pi / 2 - _vangle(x[pq[0]], x[pq[1]]) for pq in pairs}
    p_n = 0.25 + asin[(0, 1)] / _TWO_PI if n == 2 else 0.125 + sum(asin.values()) / (2.0 * _TWO_PI)
    rest = 1.0 if n == 2 else 0.5
    acc = 0.0
    for k in range(n):
        for q in range(n):
            if q != k:
                e = _vunit(_residual(x[q], x[k]))
                acc = acc + _vdot(x[i], x[k]) * _vdot(x[j], e)
    val = _vdot(x[i], x[j]) * p_n + rest * acc / _TWO_PI
    return jnp.where(zero, 0.0, val * scale)


# --------------------------------------------------------------------------------------------
# Gauss-Hermite quadrature for any activation
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _gh(order: int):
    """Probabilists' Gauss-Hermite nodes and weights normalised to ``sum w = 1`` (``E`` over N(0,1))."""
    if int(order) < 1:
        raise ValueError(f"order: must be a positive integer, got {order}")
    x, w = np.polynomial.hermite_e.hermegauss(int(order))
    return x, w / w.sum()


def _check_shape(C, n):
    C = jnp.asarray(C, dtype=jnp.float64)
    if C.ndim < 2 or C.shape[-2:] != (n, n):
        raise ValueError(f"C: expected shape (..., {n}, {n}), got {C.shape}")
    return C


def _gh2(f1, f2, L, order, mean3=None):
    r"""``E[f1(z1) f2(z2) (m)]`` over ``z = L xi`` (2-D, ``L`` lower triangular, ``(..., 2|3, 2|3)``).

    With ``mean3`` the integrand has a third factor ``L[2,0] xi1 + L[2,1] xi2`` (a conditional mean).
    Tensor Gauss-Hermite (``order**2`` points), looped over the outer node to keep memory at
    ``O(B order)``. Rank-adaptive: when ``z2`` is a multiple of ``z1`` (zero second pivot, e.g. the
    same unit twice: ``J2(i, i)``), the integrand is 1-D and much harder (``g'(z)^2``), so a 1-D rule
    of ``min(4 order, 200)`` nodes is used instead.
    """
    x, w = _gh(order)
    xj, wj = jnp.asarray(x), jnp.asarray(w)

    def body(acc, xw):
        x1, w1 = xw
        z1 = L[..., 0, 0] * x1
        z2 = (L[..., 1, 0] * x1)[..., None] + L[..., 1, 1][..., None] * xj
        inner = f2(z2)
        if mean3 is not None:
            inner = inner * ((L[..., 2, 0] * x1)[..., None] + L[..., 2, 1][..., None] * xj)
        return acc + w1 * f1(z1) * (inner @ wj), None

    acc, _ = jax.lax.scan(body, jnp.zeros(L.shape[:-2]), (xj, wj))
    # rank-1 rule
    x1, w1 = _gh(min(4 * int(order), 200))
    x1 = jnp.asarray(x1)
    z1 = L[..., 0, 0][..., None] * x1
    z2 = L[..., 1, 0][..., None] * x1
    f = f1(z1) * f2(z2)
    if mean3 is not None:
        f = f * (L[..., 2, 0][..., None] * x1)
    one = f @ jnp.asarray(w1)
    scale = jnp.maximum(L[..., 0, 0] ** 2, L[..., 1, 0] ** 2 + L[..., 1, 1] ** 2)
    rank1 = L[..., 1, 1] ** 2 <= 1e-10 * scale
    return jnp.where(rank1, one, acc)


def _quadrature_i2(act: Activation, C, order: int = 40):
    r"""``E[g(z1) g(z2)]`` by ``order x order`` Gauss-Hermite on ``z = L xi`` (``L L^T = C``, any PSD ``C``)."""
    act, C = _act.get(act), _check_shape(C, 2)
    L = psd_factor(C)
    return _gh2(act, act, L, order)


def _quadrature_j2(act: Activation, C, order: int = 40):
    r"""``E[g'(z1) g'(z2)]`` by ``order x order`` Gauss-Hermite."""
    act, C = _act.get(act), _check_shape(C, 2)
    L = psd_factor(C)
    return _gh2(act.grad, act.grad, L, order)


def _quadrature_i3(act: Activation, C, order: int = 40):
    r"""``E[g'(z1) z2 g(z3)] = E[g'(z1) E[z2 | z1, z3] g(z3)]``: a 2-D Gauss-Hermite integral.

    With the fields ordered ``(z1, z3, z2)`` and ``L`` lower triangular, ``z1 = L00 xi1``,
    ``z3 = L10 xi1 + L11 xi2`` and ``E[z2 | z1, z3] = L20 xi1 + L21 xi2``; valid for singular ``C``.
    """
    act, C = _act.get(act), _check_shape(C, 3)
    perm = jnp.array([0, 2, 1])
    L = psd_factor(C[..., perm[:, None], perm[None, :]])
    return _gh2(act.grad, act, L, order, mean3=True)


#: default Gauss-Hermite order per dimension of :func:`quadrature_i4` (order**4 points)
I4_ORDER = 12


def _pivoted_factor(C):
    """Diagonally pivoted LDL^T factor of PSD ``C`` (``(B, n, n)``): ``z = L xi`` with the columns of
    ``L`` in pivot order (largest remaining conditional variance first) and the pivots ``(B, n)``.
    Exactly duplicated fields get an exactly zero pivot (multiplier ``S_qp / S_pp = 1``)."""
    B, n = C.shape[0], C.shape[-1]
    S = C
    remaining = jnp.ones((B, n), dtype=bool)
    cols, pivots = [], []
    idx = jnp.arange(n)
    for _ in range(n):
        diag = jnp.diagonal(S, axis1=-2, axis2=-1)
        p = jnp.argmax(jnp.where(remaining, diag, -jnp.inf), axis=-1)  # (B,)
        sel = idx[None, :] == p[:, None]  # (B, n) one-hot
        d = jnp.sum(jnp.where(sel, diag, 0.0), axis=-1)
        col = jnp.sum(jnp.where(sel[:, None, :], S, 0.0), axis=-1)  # S[:, :, p]
        m = _exact_ratio(col, d[:, None])
        m = jnp.where(remaining, m, 0.0)
        cols.append(m * _safe_sqrt_grad(d)[:, None])
        pivots.append(jnp.maximum(d, 0.0))
        S = S - m[:, :, None] * col[:, None, :]
        remaining = remaining & ~sel
    return jnp.stack(cols, axis=-1), jnp.stack(pivots, axis=-1)


@functools.lru_cache(maxsize=None)
def _tensor_rule(dim: int, order: int):
    """Tensor Gauss-Hermite points ``(P, dim)`` and weights ``(P,)`` (``E`` over N(0, I)), with
    points of weight < 1e-17 dropped (their total weight is below 1e-14)."""
    x, w = _gh(order)
    pts = np.stack(np.meshgrid(*([x] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    wts = np.prod(np.stack(np.meshgrid(*([w] * dim), indexing="ij"), axis=-1).reshape(-1, dim), axis=-1)
    keep = wts > 1e-17
    return pts[keep], wts[keep]


def _direct_i4(act: Activation, Lp, rank: int, order: int, chunk: int = 256):
    """``E[g'(z1) g'(z2) g(z3) g(z4)]`` with ``z = Lp[:, :, :rank] xi``, ``xi ~ N(0, I_rank)`` (tensor rule)."""
    pts, wts = _tensor_rule(rank, order)
    P = len(wts)
    nchunk = -(-P // chunk)
    pad = nchunk * chunk - P
    pts = np.concatenate([pts, np.zeros((pad, rank))]).reshape(nchunk, chunk, rank)
    wts = np.concatenate([wts, np.zeros(pad)]).reshape(nchunk, chunk)
    Lr = Lp[:, :, :rank]

    def body(acc, pw):
        x, w = pw
        z = jnp.einsum("bkr,pr->bpk", Lr, x)  # (B, chunk, 4)
        f = act.grad(z[..., 0]) * act.grad(z[..., 1]) * act(z[..., 2]) * act(z[..., 3])
        return acc + f @ w, None

    acc, _ = jax.lax.scan(body, jnp.zeros(Lp.shape[0]), (jnp.asarray(pts), jnp.asarray(wts)))
    return acc


def _low_rank_orders(order: int) -> dict[int, int]:
    """Nodes per dimension of the rank-1, -2, -3 rules used with ``order`` (similar cost to ``order**4``)."""
    return {1: min(8 * order, 160), 2: min(3 * order, 64), 3: int(math.ceil(1.5 * order))}


def _quadrature_i4(act: Activation, C, order: int = I4_ORDER):
    r"""``E[g'(z1) g'(z2) g(z3) g(z4)]``: rank-adaptive tensor Gauss-Hermite.

    The index patterns of the ODE (``i = k``, ``c = i`` ...) make many covariances exactly singular;
    their integrand lives in fewer dimensions and is much harder (e.g. ``g'(z)^2`` for ``a = b``), so
    each covariance is integrated in its own rank ``r`` (number of pivots of a diagonally pivoted
    LDL^T above ``1e-10 max C_ii``): ``r = 4``: ``order``-point tensor rule (:func:`_nested_i4`);
    ``r = 1, 2, 3``: ``min(8 order, 160)``, ``min(3 order, 64)``, ``ceil(1.5 order)`` points per
    dimension. Cost about twice the ``order**4`` activation evaluations of the plain tensor rule.
    """
    batch = C.shape[:-2]
    C = C.reshape((-1, 4, 4))
    full = _nested_i4(act, psd_factor(C), order)
    Lp, piv = _pivoted_factor(C)
    scale = jnp.max(jnp.diagonal(C, axis1=-2, axis2=-1), axis=-1)
    rank = jnp.sum(piv > 1e-10 * scale[:, None], axis=-1)
    out = full
    for r, n in sorted(_low_rank_orders(int(order)).items(), reverse=True):
        out = jnp.where(rank == r, _direct_i4(act, Lp, r, n), out)
    out = jnp.where(rank == 0, _direct_i4(act, Lp, 1, 1), out)
    return out.reshape(batch)


def _nested_i4(act: Activation, L, order: int = I4_ORDER):
    r"""``E[g'(z1) g'(z2) g(z3) g(z4)]`` by tensor Gauss-Hermite of ``order`` nodes per dimension.

    (Full-rank rule.) ``z = L xi`` with ``L`` lower triangular, so the sums nest:
    ``sum_1 w g'(z1) sum_2 w g'(z2) sum_3 w g(z3) sum_4 w g(z4)`` and the cost is about ``order**4``
    activation evaluations per covariance (``order**3 B`` memory). Error against order (measured,
    ``benchmarks/gaussian.py``): see the module docstring table.
    """
    x, w = _gh(order)
    xj, wj = jnp.asarray(x), jnp.asarray(w)
    g, dg = act, act.grad

    def body(acc, xw):
        x1, w1 = xw
        z1 = L[..., 0, 0] * x1
        z2 = (L[..., 1, 0] * x1)[..., None] + L[..., 1, 1][..., None] * xj  # (B, n)
        z3 = ((L[..., 2, 0] * x1)[..., None, None] + L[..., 2, 1][..., None, None] * xj[:, None]
              + L[..., 2, 2][..., None, None] * xj[None, :])  # (B, n2, n3)
        m4 = ((L[..., 3, 0] * x1)[..., None, None] + L[..., 3, 1][..., None, None] * xj[:, None]
              + L[..., 3, 2][..., None, None] * xj[None, :])  # (B, n2, n3)
        z4 = m4[..., None] + L[..., 3, 3][..., None, None, None] * xj  # (B, n2, n3, n4)
        h3 = (g(z3) * (g(z4) @ wj)) @ wj  # (B, n2)
        h2 = (dg(z2) * h3) @ wj  # (B,)
        return acc + w1 * dg(z1) * h2, None

    acc, _ = jax.lax.scan(body, jnp.zeros(L.shape[:-2]), (xj, wj))
    return acc


_IMPL = {"i2": _quadrature_i2, "j2": _quadrature_j2, "i3": _quadrature_i3, "i4": _quadrature_i4}
_JIT_CACHE: dict = {}


def _jitted(kind: str, act: Activation, order: int):
    """One compiled function per (integral, activation, order), keyed on the activation itself (its
    identity includes a custom callable, :class:`learndyn.activations.Activation`)."""
    order = int(order)
    _gh(order)  # validates the order
    key = (kind, act, order)
    hit = _JIT_CACHE.get(key)
    if hit is None:
        act.check_traceable()
        hit = jax.jit(functools.partial(_IMPL[kind], act, order=order))
        _JIT_CACHE[key] = hit
    return hit


def quadrature_i2(act, C, order: int = 40):
    r"""``I2 = E[g(z1) g(z2)]`` by ``order x order`` Gauss-Hermite on ``z = L xi`` (``L L^T = C``, any PSD ``C``).

    Accuracy (measured, ``benchmarks/gaussian.py``): see the table in the module docstring.
    """
    act = _act.get(act)
    return _jitted("i2", act, order)(_check_shape(C, 2))


def quadrature_j2(act, C, order: int = 40):
    r"""``J2 = E[g'(z1) g'(z2)]`` by ``order x order`` Gauss-Hermite."""
    act = _act.get(act)
    return _jitted("j2", act, order)(_check_shape(C, 2))


def quadrature_i3(act, C, order: int = 40):
    r"""``I3 = E[g'(z1) z2 g(z3)] = E[g'(z1) E[z2 | z1, z3] g(z3)]``: a 2-D ``order x order`` Gauss-Hermite
    integral (see :func:`_quadrature_i3`)."""
    act = _act.get(act)
    return _jitted("i3", act, order)(_check_shape(C, 3))


def quadrature_i4(act, C, order: int = I4_ORDER):
    r"""``I4 = E[g'(z1) g'(z2) g(z3) g(z4)]`` by tensor Gauss-Hermite, ``order`` nodes per dimension
    (cost ``~order**4`` activation evaluations per covariance; see :func:`_quadrature_i4`)."""
    act = _act.get(act)
    return _jitted("i4", act, order)(_check_shape(C, 4))


_QUADRATURE = {"i2": quadrature_i2, "j2": quadrature_j2, "i3": quadrature_i3, "i4": quadrature_i4}


def quadrature_error_estimate(kind: str, act, C, order: int, reference_order: int | None = None):
    r"""``|Q(order) - Q(reference_order)|`` for ``kind`` in ``{"i2", "j2", "i3", "i4"}``.

    ``reference_order`` defaults to ``2 order`` (``order + order // 2`` for ``i4``, whose cost grows as
    ``order**4``). Gauss-Hermite converges fast for smooth activations, so this difference is a
    conservative estimate of the error at ``order``.
    """
    if kind not in _QUADRATURE:
        raise ValueError(f"kind: must be one of {sorted(_QUADRATURE)}, got {kind!r}")
    if reference_order is None:
        reference_order = order + order // 2 if kind == "i4" else 2 * order
    f = _QUADRATURE[kind]
    return jnp.abs(f(act, C, order) - f(act, C, reference_order))


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


def i4(act, C, order: int | None = None):
    """``I4(C) = E[g'(z1) g'(z2) g(z3) g(z4)]``, ``C`` of shape ``(..., 4, 4)``.

    ``order``: Gauss-Hermite nodes per dimension for activations without closed form (cost
    ``order**4`` per covariance; default :data:`I4_ORDER`). ReLU uses :func:`relu_i4` (exact 1-D
    integral, ``order`` is ignored).
    """
    act, C = _act.get(act), _asarray(C)
    if order is None:
        order = I4_ORDER
    r2 = _base_scale(act) ** 2
    if act.name == "erf":
        return r2 * _erf_i4(r2 * C)
    if act.name == "linear":
        return r2 * r2 * C[..., 2, 3]
    if act.name == "relu":
        return r2 * relu_i4(r2 * C)
    return quadrature_i4(act, C, order)


# --------------------------------------------------------------------------------------------
# products over distinct fields (used where index patterns are known, e.g. the online ODE)
# --------------------------------------------------------------------------------------------
#: per-dimension node caps of :func:`product_order` for m = 1, 2, 3 distinct fields
_PRODUCT_CAPS = {1: 200, 2: 64, 3: 40}


def product_order(m: int, order: int) -> int:
    """Nodes per dimension for an ``m``-dimensional product rule given the 4-D ``order``:
    ``ceil(order**(4/m))`` (the 4-D rule's point budget), capped at 200, 64 and 40 nodes for
    ``m = 1, 2, 3`` (where Gauss-Hermite has long converged for smooth activations)."""
    if m < 1:
        raise ValueError(f"m: must be >= 1, got {m}")
    return min(_PRODUCT_CAPS.get(m, order), int(math.ceil(order ** (4.0 / m))))


def quadrature_product(fns, C, order: int):
    r"""``E[prod_j f_j(z_j)]`` for ``z ~ N(0, C)``, ``C`` of shape ``(..., m, m)``, by ``m``-D tensor
    Gauss-Hermite (``order`` nodes per dimension) on ``z = L xi`` with ``L = psd_factor(C)`` lower
    triangular, so the sums nest: ``sum_1 w f_1(z_1) sum_2 w f_2(z_2) ... sum_m w f_m(z_m)`` where
    ``z_j`` depends on ``xi_1..xi_j`` only (``order**j`` evaluations of ``f_j``).

    ``fns`` is a sequence of ``m`` JAX-traceable scalar functions. Memory ``O(B order**m)``.
    """
    m = len(fns)
    C = _check_shape(C, m)
    L = psd_factor(C)
    x, w = _gh(order)
    x, w = jnp.asarray(x), jnp.asarray(w)
    batch = L.shape[:-2]

    def axis(l, j):  # xi_l laid out on axis l of a j-dimensional grid
        shape = [1] * j
        shape[l] = x.shape[0]
        return x.reshape(shape)

    acc = None
    for j in range(m - 1, -1, -1):  # innermost (last) field first
        z = sum(L[(..., j, l) + (None,) * (j + 1)] * axis(l, j + 1) for l in range(j + 1))
        term = fns[j](jnp.broadcast_to(z, batch + (x.shape[0],) * (j + 1)))
        if acc is not None:
            term = term * acc
        acc = term @ w  # sum over xi_j
    return acc
