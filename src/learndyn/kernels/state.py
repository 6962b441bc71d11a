r"""The state of the kernel recursion: NNGP / NTK arrays in a block layout, with exact power-of-two scales.

The infinite-width recursions (Jacot et al. 2018, Theorem 1; Lee et al. 2019; Xiao, Pennington &
Schoenholz 2020, Sec. 2) carry two kernels per pair of inputs: the NNGP ``K`` and the NTK ``Theta``.
An affine layer maps ``K <- weight_var K + bias_var`` and ``Theta <- K_new + weight_var Theta``
(:func:`_affine_update`); a convolution does the same after a window average (:mod:`.conv`).

Kernels of deep homogeneous networks (ReLU, leaky ReLU, linear) and deep chaotic NTKs grow or decay
geometrically; the state keeps each array as ``mantissa * 2**e`` with a tracked exponent and rescales by
exact powers of two whenever an array leaves ``[2^-256, 2^256]`` (:func:`_rescale`), so nothing over- or
underflows inside the recursion and the result is bitwise identical when no rescaling is needed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from ..results import InvalidInputError

_RESCALE_HI = 2.0 ** 256
# input magnitudes the float64 recursion can represent (derived in Network._check_magnitude)
_LOG2_MAX_SQNORM = 1020.0
_LOG2_MIN_SQNORM = -1000.0
_LOG2_MAX_VARIANCE = 500.0
_LOG2_MAX_ERF_VARIANCE = 20.0
_RESCALE_LO = 2.0 ** -256


class _KState(NamedTuple):
    """Pair kernels (``nngp``, ``ntk``) plus the self-kernels ``s1``/``s2`` of the inputs of each side.

    Layouts (``sp`` = spatial shape; the spatial part is ``()`` for flat inputs, ``sp`` in the
    spatially-diagonal mode used under Flatten, ``sp + sp`` in the full mode used under GAP):

    * cross mode: pair arrays ``(T, b1, b2)`` (flat), ``(T, b1, b2, *sp)`` (spatially diagonal) or
      ``(T, b1, *sp, b2, *sp)`` (full) -- T blocks of b1 x b2 input pairs, block t pairing block
      ``I[t]`` of x1 with block ``J[t]`` of x2 (for x2 = x1 only the blocks I <= J of the upper
      triangle are computed); self arrays ``(m, b)``, ``(m, b, *sp)`` or ``(m, b, *sp, *sp)``;
    * diagonal mode: ``nngp``/``ntk`` are self arrays with m = 1 and ``s1 = s2 = None``.

    The full layout keeps each input's spatial axes next to its batch axis, so that the
    nonlinearity runs on a contiguous ``(T, b1 d, b2 d)`` view with an outer-product broadcast of
    the variances (which XLA vectorises well).

    ``s2 = None`` when x2 is x1.  Physical values are ``array * 2**ek`` (nngp, s1, s2) and
    ``ntk * 2**et``.
    """

    nngp: Any
    ntk: Any
    s1: Any
    s2: Any
    t1: Any  # self NTKs (same layout as s1/s2), used to bound the NTK scale cheaply
    t2: Any
    ek: Any
    et: Any


@dataclass(frozen=True, eq=False)
class _Ctx:
    spatial: str  # "none" | "diag" | "full"
    nsp: int  # number of spatial dimensions
    batch: str  # "cross" | "diag"
    I: Any = None  # block indices (cross mode)
    J: Any = None
    same: bool = False  # x2 is x1
    offset: Any = 0  # x2 is x1: first row of the x2 block minus that of the x1 block (row r, column c same if r == c + offset)
    # a chunk of a cross block (:func:`learndyn.kernels.layers.run_layers`): its pair arrays hold rows
    # row0 .. row0 + c1 of block I and columns col0 .. col0 + c2 of block J (traced offsets)
    row0: Any = 0
    col0: Any = 0
    # self arrays hold only the spatial diagonal K_aa(x, x), layout (m, b, *sp), although the pair arrays
    # are full: a convolution maps the diagonal to itself, so the variances need nothing else
    selfdiag: bool = False

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


def _spatial_diag(s, ctx: _Ctx):
    """Variances K_aa(x, x) at each position, (m, b, *sp), from a self array."""
    if ctx.spatial != "full" or ctx.selfdiag:
        return s
    k = ctx.nsp
    sp = s.shape[2:2 + k]
    d = int(np.prod(sp))
    flat = s.reshape(s.shape[:2] + (d, d))
    return jnp.diagonal(flat, axis1=2, axis2=3).reshape(s.shape[:2] + sp)


def _check_var(name: str, value: float, allow_zero: bool) -> float:
    """A weight or bias variance as a float: finite, ``> 0`` (``>= 0`` if ``allow_zero``) and small enough
    that a nonlinearity can multiply two of them in float64; ``InvalidInputError`` naming ``name`` else."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InvalidInputError(f"{name}: must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    if v > 2.0 ** _LOG2_MAX_VARIANCE:
        raise InvalidInputError(f"{name}: must be at most 2^{_LOG2_MAX_VARIANCE:.0f} (~3e150; a nonlinearity multiplies "
                         f"two variances in float64), got {value!r}")
    return v


def _pow2(e):
    """2**e exactly, for an integer-valued float64 scalar e."""
    return jnp.ldexp(jnp.float64(1.0), jnp.asarray(e).astype(jnp.int32))


def _rescale(st: _KState, ctx: _Ctx) -> _KState:
    """Renormalise by exact powers of two when the kernel scale leaves [2^-256, 2^256] (else a no-op).

    The scale is read from the self-kernels only: NNGP and NTK are Gram matrices over (input,
    position), so every pair entry is bounded by the largest self entry on the spatial diagonal.
    """

    def exponent_shift(arrs):
        m = None
        for a in arrs:
            if a is None:
                continue
            ma = jnp.max(jnp.abs(_spatial_diag(a, ctx)))
            m = ma if m is None else jnp.maximum(m, ma)
        ok = ((m <= _RESCALE_HI) & ((m >= _RESCALE_LO) | (m == 0.0))) | ~jnp.isfinite(m)
        _, e = jnp.frexp(jnp.where(ok, 1.0, m))
        return jnp.where(ok, 0, e).astype(jnp.float64)

    def scaled(a, f):
        return None if a is None else a * f

    diag = ctx.batch == "diag"
    dk = exponent_shift([st.nngp] if diag else [st.s1, st.s2])
    fk = _pow2(-dk)  # exact power of two: multiplying by it does not round
    nngp, s1, s2 = scaled(st.nngp, fk), scaled(st.s1, fk), scaled(st.s2, fk)
    ntk, t1, t2, et = st.ntk, st.t1, st.t2, st.et
    if ntk is not None:
        dt = exponent_shift([ntk] if diag else [t1, t2])
        ft = _pow2(-dt)
        ntk, t1, t2 = scaled(ntk, ft), scaled(t1, ft), scaled(t2, ft)
        et = et + dt
    return _KState(nngp, ntk, s1, s2, t1, t2, st.ek + dk, et)


def _affine_update(st: _KState, ctx: _Ctx, wv: float, bv: float, lin) -> _KState:
    """K <- wv lin(K) + bv; Theta <- K_new + wv lin(Theta), in scaled form (Jacot et al. 2018, Theorem 1;
    Xiao et al. 2020, Sec. 2 and 3)."""
    bias = bv * _pow2(-st.ek) if bv != 0.0 else 0.0

    def aff(a, kind):
        return None if a is None else wv * lin(a, kind) + bias

    nngp, s1, s2 = aff(st.nngp, "pair"), aff(st.s1, "self"), aff(st.s2, "self")
    ntk, t1, t2, et = st.ntk, st.t1, st.t2, st.et
    if ntk is not None:
        et_new = jnp.maximum(st.et, st.ek)
        fk, ft = _pow2(st.ek - et_new), _pow2(st.et - et_new)

        def tang(k, t, kind):
            return None if t is None else k * fk + wv * lin(t, kind) * ft

        ntk, t1, t2 = tang(nngp, ntk, "pair"), tang(s1, t1, "self"), tang(s2, t2, "self")
        et = et_new
    return _rescale(_KState(nngp, ntk, s1, s2, t1, t2, st.ek, et), ctx)
