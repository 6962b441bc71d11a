r"""Gauss-Hermite quadrature of Gaussian expectations for any JAX-traceable activation.

Tensor rules on ``z = L xi`` (``L`` an LDL^T factor that keeps exactly duplicated fields exactly
degenerate); ``I3`` reduced to 2-D by ``E[z2 | z1, z3]``; a rank-adaptive choice of rule (exactly
singular covariances from repeated indices, e.g. ``J2(i, i)`` or ``I4(i, i, c, d)``, are integrated in
their own dimension with more nodes). These are the integrals ``I2, J2, I3, I4`` of the
teacher-student ODE (Goldt et al. 2019, eqs. (6)-(8)) and the kernel maps ``V, Vdot`` (Xiao,
Pennington & Schoenholz 2020) of activations without closed forms; accuracy tables are in
:mod:`learndyn.gaussian`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import activations as _act
from ..results import InvalidInputError
from .linalg import _exact_ratio, _safe_sqrt_grad, psd_factor

__all__ = ["quadrature_i2", "quadrature_j2", "quadrature_i3", "quadrature_i4", "quadrature_integral",
           "quadrature_error_estimate", "quadrature_product", "product_order", "I4_ORDER"]

# --------------------------------------------------------------------------------------------
# Gauss-Hermite quadrature for any activation
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _gh(order: int):
    """Probabilists' Gauss-Hermite nodes and weights normalised to ``sum w = 1`` (``E`` over N(0,1))."""
    if int(order) < 1:
        raise InvalidInputError(f"order: must be a positive integer, got {order}")
    x, w = np.polynomial.hermite_e.hermegauss(int(order))
    return x, w / w.sum()


def _check_shape(C, n):
    C = jnp.asarray(C, dtype=jnp.float64)
    if C.ndim < 2 or C.shape[-2:] != (n, n):
        raise InvalidInputError(f"C: expected shape (..., {n}, {n}), got {C.shape}")
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


def _quadrature_i2(act: _act.Activation, C, order: int = 40):
    r"""``E[g(z1) g(z2)]`` by ``order x order`` Gauss-Hermite on ``z = L xi`` (``L L^T = C``, any PSD ``C``)."""
    act, C = _act.get(act), _check_shape(C, 2)
    L = psd_factor(C)
    return _gh2(act, act, L, order)


def _quadrature_j2(act: _act.Activation, C, order: int = 40):
    r"""``E[g'(z1) g'(z2)]`` by ``order x order`` Gauss-Hermite."""
    act, C = _act.get(act), _check_shape(C, 2)
    L = psd_factor(C)
    return _gh2(act.grad, act.grad, L, order)


def _quadrature_i3(act: _act.Activation, C, order: int = 40):
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


def _direct_i4(act: _act.Activation, Lp, rank: int, order: int, chunk: int = 256):
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


def _quadrature_i4(act: _act.Activation, C, order: int = I4_ORDER):
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


def _nested_i4(act: _act.Activation, L, order: int = I4_ORDER):
    r"""``E[g'(z1) g'(z2) g(z3) g(z4)]`` by tensor Gauss-Hermite of ``order`` nodes per dimension.

    (Full-rank rule.) ``z = L xi`` with ``L`` lower triangular, so the sums nest:
    ``sum_1 w g'(z1) sum_2 w g'(z2) sum_3 w g(z3) sum_4 w g(z4)`` and the cost is about ``order**4``
    activation evaluations per covariance (``order**3 B`` memory). Error against order (measured,
    see the table in the docstring of :mod:`learndyn.gaussian`).
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


def _jitted(kind: str, act: _act.Activation, order: int):
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

    Accuracy (measured): see the table in the docstring of :mod:`learndyn.gaussian`.
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


def quadrature_integral(kind: str, act, C, order: int):
    r"""Gauss-Hermite value of the integral ``kind`` in ``{"i2", "j2", "i3", "i4"}`` (:func:`quadrature_i2` ...)
    for any activation, closed form or not: the reference that checks the closed forms."""
    if kind not in _QUADRATURE:
        raise InvalidInputError(f"kind: must be one of {sorted(_QUADRATURE)}, got {kind!r}")
    return _QUADRATURE[kind](act, C, order)


def quadrature_error_estimate(kind: str, act, C, order: int, reference_order: int | None = None):
    r"""``|Q(order) - Q(reference_order)|`` for ``kind`` in ``{"i2", "j2", "i3", "i4"}``.

    ``reference_order`` defaults to ``2 order`` (``order + order // 2`` for ``i4``, whose cost grows as
    ``order**4``). Gauss-Hermite converges fast for smooth activations, so this difference is a
    conservative estimate of the error at ``order``.
    """
    if kind not in _QUADRATURE:
        raise InvalidInputError(f"kind: must be one of {sorted(_QUADRATURE)}, got {kind!r}")
    if reference_order is None:
        reference_order = order + order // 2 if kind == "i4" else 2 * order
    f = _QUADRATURE[kind]
    return jnp.abs(f(act, C, order) - f(act, C, reference_order))



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
        raise InvalidInputError(f"m: must be >= 1, got {m}")
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