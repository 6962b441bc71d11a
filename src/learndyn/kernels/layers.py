r"""One architecture description -> the finite network (init, apply) AND its infinite-width kernels.

Conventions (spec ``ntk.md`` §1.1-1.2, §3.1; identical to neural-tangents' NTK parameterisation):

* every weight and bias entry is iid ``N(0, 1)``; a layer computes
  ``z = sqrt(weight_var / fan_in) * W x + sqrt(bias_var) * b`` with ``fan_in = n_in`` (Dense) or
  ``C_in * prod(filter_shape)`` (Conv);
* the input kernel is ``x . x' / n_0`` (per spatial pair ``x_a . x'_a' / C`` for images, NHWC);
* ``Dense``:        ``K <- weight_var K + bias_var``,  ``Theta <- K_new + weight_var Theta``;
* ``Elementwise``:  ``K <- V_phi(Sigma)``,  ``Theta <- Vdot_phi(Sigma) Theta``  (spec §1.3);
* ``Conv``:         the same as Dense after averaging over the filter window, shifting both spatial
  indices together (spec §3.1): ``K_{a,a'} <- weight_var/|W| sum_b K_{a+b,a'+b} + bias_var``;
  ``'circular'`` wraps around (torus), ``'same'`` pads with zeros (the padded entries count in the
  ``1/|W|`` average exactly as in neural-tangents);
* ``Flatten`` reads the spatial diagonal with weight ``1/d`` (``K <- (1/d) sum_a K_{a,a}``) and
  ``GlobalAvgPool`` reads every spatial pair with weight ``1/d^2`` (spec §3.1 "Readouts").

``fcn(depth, ...)`` is ``Dense, [phi, Dense] x depth``; ``cnn(depth, ...)`` is
``Conv, [phi, Conv] x (depth-1), phi, Flatten|GlobalAvgPool, Dense`` -- the same number of
nonlinearities and weight layers as ``fcn(depth)``, so CNN-Flatten and FCN share their spatial
diagonal recursion (spec §3.3).

Numerics.  Closed forms are written in the numerically stable ``arctan2`` forms used by
neural-tangents (``erf``: ``V = (2/pi) atan2(2K, sqrt((1+2K11)(1+2K22) - 4K^2))``; ``abrelu``/``relu``:
``theta = atan2(sqrt(K11 K22 - K^2), K)``), so the two libraries agree to rounding.  Other activations
use :func:`learndyn.gaussian.i2` / :func:`learndyn.gaussian.j2` (Gauss-Hermite quadrature).
Kernels of deep homogeneous networks (ReLU, leaky ReLU, linear) and deep chaotic NTKs grow or decay
geometrically; the recursion keeps each array as ``mantissa * 2**e`` with a tracked exponent and
rescales by exact powers of two whenever an array leaves ``[2^-256, 2^256]``, so nothing over- or
underflows inside the recursion and the result is bitwise identical when no rescaling is needed.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import itertools
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax

from .. import activations as _act
from ..resources import InsufficientMemoryError, available_memory, check_memory, format_bytes
from ..results import Result, problem_attrs

__all__ = [
    "Dense", "Conv", "Elementwise", "Flatten", "GlobalAvgPool", "Repeat", "Network", "Kernel",
    "KernelMemoryError", "serial", "fcn", "cnn", "PADDINGS", "READOUTS",
]

PADDINGS = ("circular", "same")
READOUTS = ("flatten", "gap")

_RESCALE_HI = 2.0 ** 256
# input magnitudes the float64 recursion can represent (derived in Network._check_magnitude)
_LOG2_MAX_SQNORM = 1020.0
_LOG2_MIN_SQNORM = -1000.0
_LOG2_MAX_VARIANCE = 500.0
_LOG2_MAX_ERF_VARIANCE = 20.0
_RESCALE_LO = 2.0 ** -256


class KernelMemoryError(InsufficientMemoryError):
    """Raised *before* allocating when a kernel block would not fit in memory."""


# ============================================================================================
# kernel state
# ============================================================================================
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

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


def _spatial_diag(s, ctx: _Ctx):
    """Variances K_aa(x, x) at each position, (m, b, *sp), from a self array."""
    if ctx.spatial != "full":
        return s
    k = ctx.nsp
    sp = s.shape[2:2 + k]
    d = int(np.prod(sp))
    flat = s.reshape(s.shape[:2] + (d, d))
    return jnp.diagonal(flat, axis1=2, axis2=3).reshape(s.shape[:2] + sp)


def _self_map(act, s, t, ctx: _Ctx):
    """Nonlinearity on a self array (pairs of positions of the same input) and its NTK ``t``."""
    if ctx.spatial == "full":
        m, b = s.shape[:2]
        d = int(np.prod(s.shape[2:2 + ctx.nsp]))
        view = s.reshape((m, b, d, d))
        v = jnp.diagonal(view, axis1=2, axis2=3)
        same = jnp.eye(d, dtype=bool)[None, None]
        V, T = _pair_map(act, view, v[..., :, None], v[..., None, :],
                         None if t is None else t.reshape((m, b, d, d)), same)
        return V.reshape(s.shape), (None if T is None else T.reshape(s.shape))
    if t is None:
        return _diag_map(act, s), None
    return _pair_map(act, s, s, s, t, True)


def _cross_map(act, K, T, v1, v2, ctx: _Ctx):
    """Nonlinearity on a cross pair array, variances v1 (m1, b1, *sp), v2 (m2, b2, *sp)."""
    a, b = v1[ctx.I], v2[ctx.J]  # (T, b1, *sp), (T, b2, *sp)
    nT, b1, b2 = a.shape[0], a.shape[1], b.shape[1]
    same = None
    if ctx.same:
        same = (ctx.I == ctx.J)[:, None, None]
    if ctx.spatial == "full":
        d = int(np.prod(a.shape[2:]))
        shape = K.shape
        K = K.reshape((nT, b1 * d, b2 * d))
        T = None if T is None else T.reshape(K.shape)
        a, b = a.reshape((nT, b1 * d, 1)), b.reshape((nT, 1, b2 * d))
        if same is not None:
            same = same & jnp.eye(b1 * d, b2 * d, dtype=bool)[None]
        V, T = _pair_map(act, K, a, b, T, same)
        return V.reshape(shape), (None if T is None else T.reshape(shape))
    if ctx.spatial == "diag":
        d = int(np.prod(a.shape[2:]))
        shape = K.shape
        K = K.reshape((nT, b1, b2, d))
        T = None if T is None else T.reshape(K.shape)
        a, b = a.reshape((nT, b1, 1, d)), b.reshape((nT, 1, b2, d))
        if same is not None:
            same = (same & jnp.eye(b1, b2, dtype=bool)[None])[..., None]
        V, T = _pair_map(act, K, a, b, T, same)
        return V.reshape(shape), (None if T is None else T.reshape(shape))
    if same is not None:
        same = same & jnp.eye(b1, b2, dtype=bool)[None]
    return _pair_map(act, K, a[:, :, None], b[:, None, :], T, same)


def _pair_map(act: _act.Activation, K, a, b, ntk, same=None):
    """(V_phi(Sigma), Vdot_phi(Sigma) * ntk) for Sigma = [[a, K], [K, b]] (physical scale): the activation's
    kernel map (:meth:`learndyn.activations.Activation.kernel_map`).

    ``same``: optional boolean mask of entries that pair an input position with itself (correlation
    exactly 1); there the pair entry is the self variance exactly and the ReLU angle exactly 0 instead of
    ``atan2(sqrt(rounding), K)``, which would otherwise inject O(sqrt(eps)) noise into the NTK diagonal at
    every layer.
    """
    return act.kernel_map(K, a, b, ntk, same)


def _diag_map(act: _act.Activation, v):
    """V_phi([[v, v], [v, v]]) for a variance v (physical scale):
    :meth:`learndyn.activations.Activation.kernel_diag`."""
    return act.kernel_diag(v)


def _homogeneous(act: _act.Activation) -> bool:
    return act.positively_homogeneous


# ============================================================================================
# spatial window averaging (Conv)
# ============================================================================================
def _same_pads(size: int, f: int) -> tuple[int, int]:
    total = f - 1
    lo = total // 2
    return lo, total - lo


def _window_average(x, filter_shape, padding, axes_groups):
    """(1/|W|) sum_b x[a+b, a'+b] over a window, shifting every axis group together.

    ``axes_groups``: for each filter dim i, the tuple of array axes that shift by b_i together (one
    axis in the spatially-diagonal layout, two in the full layout).  Separable over filter dims,
    like neural-tangents; shifts wrap around for ``'circular'`` and read zeros outside the image
    for ``'same'`` (padding offsets as in ``lax.padtype_to_pads(..., 'SAME')``).  Shifted reads are
    constant-index gathers.

    The sum runs inside a ``lax.cond`` whose predicate XLA cannot decide at compile time (the first
    entry of ``x`` is not NaN).  A conditional is a fusion boundary, so ``x`` -- the output of the
    preceding nonlinearity, with its arctan2 -- is computed once and stored, instead of being fused
    into every shifted read and recomputed |W| times.  ``lax.optimization_barrier`` does not do this
    on CPU: XLA strips it before fusion.  Measured on the issue-4 CNN-GAP benchmark: 1.2 s -> 0.5 s.
    A NaN first entry gives an all-NaN result, which ``Network.kernel`` reports as non-finite.
    """

    def average(y):
        for i, axes in enumerate(axes_groups):
            f = filter_shape[i]
            size = y.shape[axes[0]]
            lo, _ = _same_pads(size, f)
            acc = None
            for beta in range(f):
                idx = np.arange(size) + beta - lo
                valid = (idx >= 0) & (idx < size)
                idx = idx % size
                piece = y
                for ax in axes:
                    piece = piece[(slice(None),) * ax + (idx,)]
                if padding != "circular" and not valid.all():
                    mask = np.ones((1,) * y.ndim)
                    for ax in axes:
                        shape = [1] * y.ndim
                        shape[ax] = size
                        mask = mask * valid.astype(np.float64).reshape(shape)
                    piece = piece * mask
                acc = piece if acc is None else acc + piece
            y = acc / float(f)
        return y

    first = x.reshape(-1)[0]
    return lax.cond(first == first, average, lambda y: jnp.full_like(y, jnp.nan), x)


def _conv_axes(ctx: _Ctx, kind: str):
    """Axis groups shifted together by a convolution, per spatial dim (see ``_KState`` layouts)."""
    k = ctx.nsp
    if ctx.spatial == "full":
        if kind == "pair":
            return [(2 + i, 3 + k + i) for i in range(k)]
        return [(2 + i, 2 + k + i) for i in range(k)]
    off = 3 if kind == "pair" else 2
    return [(off + i,) for i in range(k)]


# ============================================================================================
# layers
# ============================================================================================
def _check_var(name: str, value: float, allow_zero: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    if v > 2.0 ** _LOG2_MAX_VARIANCE:
        raise ValueError(f"{name}: must be at most 2^{_LOG2_MAX_VARIANCE:.0f} (~3e150; a nonlinearity multiplies "
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
    """K <- wv lin(K) + bv; Theta <- K_new + wv lin(Theta), in scaled form (spec §1.2, §3.1)."""
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


class _Layer:
    """Base class: ``init(key, in_shape) -> (out_shape, params)``, ``apply``, ``kernel``."""

    def init(self, key, in_shape):  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, params, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def kernel(self, st: _KState, ctx: _Ctx):  # pragma: no cover - abstract
        raise NotImplementedError

    def needs_full_spatial(self) -> bool:
        return False

    def has_readout(self) -> bool:
        return False


@dataclass(frozen=True)
class Dense(_Layer):
    """Fully-connected layer acting on the last (channel) axis, NTK parameterisation."""

    width: int
    weight_var: float = 1.0
    bias_var: float = 0.0

    def __post_init__(self):
        if int(self.width) != self.width or int(self.width) < 1:
            raise ValueError(f"width: must be a positive integer, got {self.width!r}")
        object.__setattr__(self, "weight_var", _check_var("weight_var", self.weight_var, False))
        object.__setattr__(self, "bias_var", _check_var("bias_var", self.bias_var, True))

    def init(self, key, in_shape):
        kw, kb = jax.random.split(key)
        n_in = in_shape[-1]
        W = jax.random.normal(kw, (n_in, self.width), dtype=jnp.float64)
        b = jax.random.normal(kb, (self.width,), dtype=jnp.float64)
        return tuple(in_shape[:-1]) + (self.width,), {"W": W, "b": b}

    def apply(self, params, x):
        n_in = x.shape[-1]
        out = jnp.sqrt(self.weight_var / n_in) * (x @ params["W"])
        if self.bias_var > 0:
            out = out + jnp.sqrt(self.bias_var) * params["b"]
        return out

    def kernel(self, st, ctx):
        return _affine_update(st, ctx, self.weight_var, self.bias_var, lambda a, kind: a), ctx


@dataclass(frozen=True)
class Conv(_Layer):
    """Convolution with stride 1 (``'circular'`` or ``'same'`` padding), NTK parameterisation.

    Inputs are channels-last, ``(n, *spatial, C)``; weights ``(*filter_shape, C_in, C_out)``;
    ``fan_in = C_in * prod(filter_shape)``.
    """

    channels: int
    weight_var: float = 1.0
    bias_var: float = 0.0
    filter_shape: tuple = (3, 3)
    padding: str = "circular"

    def __post_init__(self):
        if int(self.channels) != self.channels or int(self.channels) < 1:
            raise ValueError(f"channels: must be a positive integer, got {self.channels!r}")
        object.__setattr__(self, "weight_var", _check_var("weight_var", self.weight_var, False))
        object.__setattr__(self, "bias_var", _check_var("bias_var", self.bias_var, True))
        fs = tuple(self.filter_shape) if isinstance(self.filter_shape, (tuple, list)) else None
        if not fs or any(int(f) != f or int(f) < 1 for f in fs):
            raise ValueError(f"filter_shape: expected a tuple of positive integers, got {self.filter_shape!r}")
        object.__setattr__(self, "filter_shape", tuple(int(f) for f in fs))
        if self.padding not in PADDINGS:
            raise ValueError(f"padding: must be one of {PADDINGS}, got {self.padding!r}")

    def init(self, key, in_shape):
        if len(in_shape) != len(self.filter_shape) + 2:
            raise ValueError(
                f"Conv with filter_shape {self.filter_shape} needs inputs (n, {len(self.filter_shape)} spatial "
                f"dims, channels), got shape {tuple(in_shape)}"
            )
        kw, kb = jax.random.split(key)
        W = jax.random.normal(kw, self.filter_shape + (in_shape[-1], self.channels), dtype=jnp.float64)
        b = jax.random.normal(kb, (self.channels,), dtype=jnp.float64)
        return tuple(in_shape[:-1]) + (self.channels,), {"W": W, "b": b}

    def apply(self, params, x):
        k = len(self.filter_shape)
        fan_in = x.shape[-1] * int(np.prod(self.filter_shape))
        sp = "DHW"[-k:] if k <= 3 else None
        if sp is None:
            raise ValueError("filter_shape: at most 3 spatial dimensions are supported")
        dn = lax.conv_dimension_numbers(x.shape, params["W"].shape, ("N" + sp + "C", sp + "IO", "N" + sp + "C"))
        pads = [_same_pads(x.shape[1 + i], f) for i, f in enumerate(self.filter_shape)]
        if self.padding == "circular":
            x = jnp.pad(x, [(0, 0)] + pads + [(0, 0)], mode="wrap")
            conv_pad = [(0, 0)] * k
        else:
            conv_pad = pads
        out = lax.conv_general_dilated(x, params["W"], (1,) * k, conv_pad, dimension_numbers=dn,
                                       precision=lax.Precision.HIGHEST)
        out = jnp.sqrt(self.weight_var / fan_in) * out
        if self.bias_var > 0:
            out = out + jnp.sqrt(self.bias_var) * params["b"]
        return out

    def kernel(self, st, ctx):
        if ctx.spatial == "none":
            raise ValueError("Conv needs spatial inputs (n, *spatial, channels); got a flat kernel")
        if len(self.filter_shape) != ctx.nsp:
            raise ValueError(f"filter_shape {self.filter_shape} does not match {ctx.nsp} spatial dimensions")
        def lin(a, kind):
            kind = "self" if ctx.batch == "diag" else kind
            return _window_average(a, self.filter_shape, self.padding, _conv_axes(ctx, kind))

        return _affine_update(st, ctx, self.weight_var, self.bias_var, lin), ctx


@dataclass(frozen=True)
class Elementwise(_Layer):
    """Nonlinearity phi (a :class:`learndyn.activations.Activation`, a name or a callable; scale 1)."""

    activation: Any = "relu"

    def __post_init__(self):
        object.__setattr__(self, "activation", _act.get(self.activation, scale=1.0).check_traceable())

    def init(self, key, in_shape):
        return tuple(in_shape), {}

    def apply(self, params, x):
        return self.activation(x)

    def kernel(self, st, ctx):
        act = self.activation
        homog = _homogeneous(act)
        if homog:
            scale_k = 1.0
        else:
            scale_k = _pow2(st.ek)

        def phys(a):
            return None if a is None else (a if homog else a * scale_k)

        nngp, s1, s2 = phys(st.nngp), phys(st.s1), phys(st.s2)
        ntk = st.ntk
        t1 = t2 = None
        if ctx.batch == "diag":
            nngp, ntk = _self_map(act, nngp, ntk, ctx)
        else:
            v1 = _spatial_diag(s1, ctx)
            v2 = v1 if s2 is None else _spatial_diag(s2, ctx)
            nngp, ntk = _cross_map(act, nngp, ntk, v1, v2, ctx)
            s1, t1 = _self_map(act, s1, st.t1, ctx)
            if s2 is not None:
                s2, t2 = _self_map(act, s2, st.t2, ctx)
        ek = st.ek if homog else jnp.zeros_like(st.ek)
        return _KState(nngp, ntk, s1, s2, t1, t2, ek, st.et), ctx


def _readout_state(st: _KState, ctx: _Ctx, reduce_pair, reduce_self) -> _KState:
    nngp = reduce_pair(st.nngp)
    ntk = None if st.ntk is None else reduce_pair(st.ntk)
    s1, s2, t1, t2 = (None if a is None else reduce_self(a) for a in (st.s1, st.s2, st.t1, st.t2))
    return _KState(nngp, ntk, s1, s2, t1, t2, st.ek, st.et)


def _flatten_reduce(a, ctx: _Ctx, kind: str):
    """(1/d) sum_a K_aa: the spatial diagonal averaged (Flatten readout, spec §3.1)."""
    k = ctx.nsp
    if ctx.spatial == "full":
        if kind == "pair":
            nT, b1 = a.shape[:2]
            sp = a.shape[2:2 + k]
            d = int(np.prod(sp))
            view = a.reshape((nT, b1, d, a.shape[2 + k], d))
            return jnp.mean(jnp.diagonal(view, axis1=2, axis2=4), axis=-1)
        d = int(np.prod(a.shape[2:2 + k]))
        return jnp.mean(jnp.diagonal(a.reshape(a.shape[:2] + (d, d)), axis1=2, axis2=3), axis=-1)
    off = 3 if kind == "pair" else 2
    return jnp.mean(a, axis=tuple(range(off, a.ndim)))


def _gap_reduce(a, ctx: _Ctx, kind: str):
    """(1/d^2) sum_{a,a'} K_aa' (global average pooling readout, spec §3.1)."""
    k = ctx.nsp
    if kind == "pair":
        axes = tuple(range(2, 2 + k)) + tuple(range(3 + k, 3 + 2 * k))
    else:
        axes = tuple(range(2, 2 + 2 * k))
    return jnp.mean(a, axis=axes)


@dataclass(frozen=True)
class Flatten(_Layer):
    """Flatten ``(n, *spatial, C) -> (n, d*C)``; kernel ``(1/d) sum_a K_aa`` (spec §3.1)."""

    def init(self, key, in_shape):
        return (in_shape[0], int(np.prod(in_shape[1:]))), {}

    def apply(self, params, x):
        return x.reshape((x.shape[0], -1))

    def has_readout(self):
        return True

    def kernel(self, st, ctx):
        if ctx.spatial == "none":
            return st, ctx
        pk = "self" if ctx.batch == "diag" else "pair"
        st = _readout_state(st, ctx, lambda a: _flatten_reduce(a, ctx, pk), lambda a: _flatten_reduce(a, ctx, "self"))
        return st, ctx.replace(spatial="none", nsp=0)


@dataclass(frozen=True)
class GlobalAvgPool(_Layer):
    """Mean over spatial positions ``(n, *spatial, C) -> (n, C)``; kernel ``(1/d^2) sum_{a,a'} K_aa'``."""

    def init(self, key, in_shape):
        return (in_shape[0], in_shape[-1]), {}

    def apply(self, params, x):
        return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))

    def has_readout(self):
        return True

    def needs_full_spatial(self):
        return True

    def kernel(self, st, ctx):
        if ctx.spatial == "none":
            return st, ctx
        if ctx.spatial != "full":  # pragma: no cover - guarded by Network._spatial_mode
            raise ValueError("GlobalAvgPool needs the full spatial kernel")
        pk = "self" if ctx.batch == "diag" else "pair"
        st = _readout_state(st, ctx, lambda a: _gap_reduce(a, ctx, pk), lambda a: _gap_reduce(a, ctx, "self"))
        return st, ctx.replace(spatial="none", nsp=0)


@dataclass(frozen=True)
class Repeat(_Layer):
    """``layers`` repeated ``n`` times with independent weights; a compiled loop (``lax.scan``)."""

    layers: tuple
    n: int

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if int(self.n) != self.n or self.n < 0:
            raise ValueError(f"n: must be a non-negative integer, got {self.n!r}")
        for lay in self.layers:
            if lay.has_readout():
                raise ValueError("Repeat: a repeated block must keep its shape (no Flatten/GlobalAvgPool)")

    def needs_full_spatial(self):
        return any(lay.needs_full_spatial() for lay in self.layers)

    def init(self, key, in_shape):
        if self.n == 0:
            return tuple(in_shape), []
        keys = jax.random.split(key, self.n)
        all_params = []
        for i in range(self.n):
            shape, p = _serial_init(self.layers, keys[i], in_shape)
            if tuple(shape) != tuple(in_shape):
                raise ValueError(f"Repeat: the block changes the shape {tuple(in_shape)} -> {tuple(shape)}")
            all_params.append(p)
        stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *all_params)
        return tuple(in_shape), stacked

    def apply(self, params, x):
        if self.n == 0:
            return x

        def body(h, p):
            return _serial_apply(self.layers, p, h), None

        return lax.scan(body, x, params)[0]

    def kernel(self, st, ctx):
        if self.n == 0:
            return st, ctx

        def body(_, s):
            c = ctx
            for lay in self.layers:
                s, c = lay.kernel(s, c)
            return s

        return lax.fori_loop(0, self.n, body, st), ctx


def _serial_init(layers, key, in_shape):
    keys = jax.random.split(key, max(len(layers), 1))
    params = []
    shape = tuple(in_shape)
    for lay, k in zip(layers, keys):
        shape, p = lay.init(k, shape)
        params.append(p)
    return shape, params


def _serial_apply(layers, params, x):
    for lay, p in zip(layers, params):
        x = lay.apply(p, x)
    return x


# ============================================================================================
# result
# ============================================================================================
def _ldexp_checked(arr: np.ndarray, e: float, what: str) -> np.ndarray:
    e = int(e)
    if e == 0:
        return arr
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(arr, e)
    if not np.all(np.isfinite(out)) or np.any((out == 0) & (arr != 0)):
        raise OverflowError(
            f"{what}: the kernel entries are of order 2^{e} and leave the float64 range; use "
            f"Kernel.{what}_mantissa (entries / 2^{what}_log2_scale) and Kernel.{what}_log2_scale "
            "(scale-free quantities such as condition numbers and P(Theta)Y do not need the scale)"
        )
    return out


@dataclass(frozen=True)
class Kernel(Result):
    """NNGP and NTK of a network: ``nngp``/``ntk`` are ``(n1, n2)`` (or ``(n,)`` in diagonal mode).

    Entries are stored as ``mantissa * 2**log2_scale`` (exact powers of two); ``nngp``/``ntk``
    give the physical values and raise ``OverflowError`` (never return inf) if they do not fit
    in float64.
    """

    nngp_mantissa: np.ndarray
    ntk_mantissa: np.ndarray | None
    nngp_log2_scale: float
    ntk_log2_scale: float
    diagonal: bool
    network: "Network"

    @property
    def nngp(self) -> np.ndarray:
        return _ldexp_checked(self.nngp_mantissa, self.nngp_log2_scale, "nngp")

    @property
    def ntk(self) -> np.ndarray:
        if self.ntk_mantissa is None:
            raise ValueError("ntk: this kernel was computed with get='nngp'")
        return _ldexp_checked(self.ntk_mantissa, self.ntk_log2_scale, "ntk")

    def to_xarray(self) -> xr.Dataset:
        dims = ("x",) if self.diagonal else ("x1", "x2")
        extra = tuple(f"s{i}" for i in range(self.nngp_mantissa.ndim - len(dims)))
        data = {"nngp_mantissa": (dims + extra, self.nngp_mantissa)}
        if self.ntk_mantissa is not None:
            data["ntk_mantissa"] = (dims + extra, self.ntk_mantissa)
        attrs = problem_attrs(self.network.describe(), nngp_log2_scale=float(self.nngp_log2_scale),
                              ntk_log2_scale=float(self.ntk_log2_scale), diagonal=int(self.diagonal),
                              description="physical kernel = mantissa * 2**log2_scale")
        return xr.Dataset(data, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Kernel":
        """The kernel stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`), with its
        network rebuilt from the stored description (:func:`network_from_description`)."""
        from ..results import problem_json

        a = ds.attrs
        return cls(nngp_mantissa=ds["nngp_mantissa"].values,
                   ntk_mantissa=ds["ntk_mantissa"].values if "ntk_mantissa" in ds else None,
                   nngp_log2_scale=float(a["nngp_log2_scale"]), ntk_log2_scale=float(a["ntk_log2_scale"]),
                   diagonal=bool(a["diagonal"]), network=network_from_description(problem_json(ds)))


def network_from_description(description: dict) -> "Network":
    """The :class:`Network` described by :meth:`Network.describe` (layer names from a fixed list).

    Activations are stored by name, so a network with a user-supplied activation function cannot be
    rebuilt (``ValueError``)."""
    from ..results import ResultFormatError

    classes = {"Dense": Dense, "Conv": Conv, "Elementwise": Elementwise, "Flatten": Flatten,
               "GlobalAvgPool": GlobalAvgPool}

    def one(entry):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ResultFormatError(f"not a layer description: {entry!r}")
        (name, fields), = entry.items()
        if name == "Repeat":
            return Repeat(tuple(one(x) for x in fields["layers"]), int(fields["n"]))
        if name not in classes:
            raise ResultFormatError(f"unknown layer {name!r}")
        return classes[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    try:
        return Network(tuple(one(x) for x in description["layers"]), name=str(description["name"]))
    except (KeyError, TypeError) as exc:
        raise ResultFormatError(f"not a network description ({exc!r})") from None


# ============================================================================================
# network
# ============================================================================================
# first guess of the working memory per (pair x spatial entry), in float64 arrays, before XLA's own buffer
# assignment is read (Network._plan); quadrature activations need far more (tanh: ~650)
_LIVE_ARRAYS = 12
_PRINT_BYTES = 512 * 2**20
#: default cap on the memory of one block (the outputs come on top)
_MAX_BLOCK_BYTES = 8 * 2**30


@dataclass(frozen=True)
class Network:
    """A serial architecture: ``init``/``apply`` build and run the finite network, ``kernel`` gives
    its infinite-width NNGP and NTK -- both from the same layer list.
    """

    layers: tuple
    name: str = "serial"
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        for lay in self.layers:
            if not isinstance(lay, _Layer):
                raise ValueError(f"layers: expected kernels layers (Dense, Conv, ...), got {lay!r}")

    def describe(self) -> dict:
        """JSON-able description of the architecture (name and layers)."""
        def one(lay):
            if isinstance(lay, Repeat):
                return {"Repeat": {"n": lay.n, "layers": [one(x) for x in lay.layers]}}
            d = {f.name: getattr(lay, f.name) for f in dataclasses.fields(lay)}
            if "activation" in d:
                d["activation"] = str(d["activation"])
            return {type(lay).__name__: d}

        return {"name": self.name, "layers": [one(lay) for lay in self.layers]}

    # ---- finite network ---------------------------------------------------------------------
    def init(self, key, input_shape):
        """Random parameters (iid N(0,1) weights and biases) for inputs of ``input_shape``
        (the batch entry is ignored); returns the parameter pytree."""
        return _serial_init(self.layers, key, tuple(input_shape))[1]

    def output_shape(self, input_shape) -> tuple:
        """Shape of ``apply``'s output for inputs of ``input_shape`` (traced abstractly: nothing is allocated)."""
        spec = jax.ShapeDtypeStruct(tuple(int(s) for s in input_shape), jnp.float64)
        out = jax.eval_shape(lambda x: self.apply(self.init(jax.random.PRNGKey(0), x.shape), x), spec)
        return tuple(out.shape)

    def apply(self, params, x):
        """Outputs of the finite network with ``params`` on inputs ``x`` (float64)."""
        return _serial_apply(self.layers, params, jnp.asarray(x, dtype=jnp.float64))

    def empirical_ntk(self, params, x1, x2=None):
        """Finite-width NTK ``sum_p df(x1)/dp df(x2)/dp`` per output pair, shape (n1, n2, k, k)."""
        x1 = jnp.asarray(x1, dtype=jnp.float64)
        x2 = x1 if x2 is None else jnp.asarray(x2, dtype=jnp.float64)
        f = lambda p, x: self.apply(p, x)
        j1 = jax.jacrev(f)(params, x1)
        j2 = j1 if x2 is x1 else jax.jacrev(f)(params, x2)

        def contract(a, b):
            a = a.reshape(a.shape[:2] + (-1,))
            b = b.reshape(b.shape[:2] + (-1,))
            return jnp.einsum("iap,jbp->ijab", a, b)

        leaves = zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2))
        return sum(contract(a, b) for a, b in leaves)

    # ---- kernel -----------------------------------------------------------------------------
    def _has(self, pred) -> bool:
        def walk(layers):
            for lay in layers:
                if pred(lay) or (isinstance(lay, Repeat) and walk(lay.layers)):
                    return True
            return False

        return walk(self.layers)

    def _spatial_mode(self, x_ndim: int) -> str:
        if x_ndim == 2:
            return "none"
        if self._has(lambda lay: lay.needs_full_spatial()):
            return "full"
        if self._has(lambda lay: lay.has_readout()):
            return "diag"
        return "full"  # no readout: the spatial kernel itself is the output

    def _input_state(self, x1b, x2b, ctx: _Ctx, want_ntk: bool):
        """Input kernels x.x'/C (spec §1.2 readin; NT ``_inputs_to_kernel``) in the block layout."""
        k = ctx.nsp
        C = x1b.shape[-1]
        lo = "hwdefg"[:k]
        up = "HWDEFG"[:k]

        def self_kernel(x):  # x: (m, b, *sp, C) -> (m, b, *sp[, *sp])
            if ctx.spatial == "full":
                return jnp.einsum(f"mn{lo}c,mn{up}c->mn{lo}{up}", x, x) / C
            return jnp.einsum(f"mn{lo}c,mn{lo}c->mn{lo}", x, x) / C

        if ctx.batch == "diag":
            nngp, s1, s2 = self_kernel(x1b), None, None
        else:
            xa, xb = x1b[ctx.I], (x1b if ctx.same else x2b)[ctx.J]
            if ctx.spatial == "full":
                nngp = jnp.einsum(f"ta{lo}c,tb{up}c->ta{lo}b{up}", xa, xb) / C
            else:
                nngp = jnp.einsum(f"ta{lo}c,tb{lo}c->tab{lo}", xa, xb) / C
            s1 = self_kernel(x1b)
            s2 = None if ctx.same else self_kernel(x2b)
        zeros = lambda a: None if (a is None or not want_ntk) else jnp.zeros_like(a)
        z = jnp.zeros((), jnp.float64)
        return _KState(nngp, zeros(nngp), s1, s2, zeros(s1), zeros(s2), z, z)

    def _compiled(self, spatial: str, nsp: int, batch: str, same: bool, want_ntk: bool):
        key = (spatial, nsp, batch, same, want_ntk)
        fn = self._cache.get(key)
        if fn is None:
            def run(x1b, x2b):
                m1, m2 = x1b.shape[0], (x1b if same else x2b).shape[0]
                if batch == "cross":
                    pairs = [(i, j) for i in range(m1) for j in range(m2) if not same or i <= j]
                    I = jnp.asarray([p[0] for p in pairs], dtype=jnp.int32)
                    J = jnp.asarray([p[1] for p in pairs], dtype=jnp.int32)
                else:
                    I = J = None
                ctx = _Ctx(spatial, nsp, batch, I, J, same)
                st = self._input_state(x1b, x2b, ctx, want_ntk)
                st = _rescale(st, ctx)
                for lay in self.layers:
                    st, ctx = lay.kernel(st, ctx)

                def batch_first(a):  # (T, b1, *sp, b2, *sp) -> (T, b1, b2, *sp, *sp) when no readout
                    if a is None or batch != "cross" or ctx.spatial != "full":
                        return a
                    return jnp.moveaxis(a, 2 + ctx.nsp, 2)

                return batch_first(st.nngp), batch_first(st.ntk), st.ek, st.et

            fn = jax.jit(run)
            self._cache[key] = fn
        return fn

    def depth_sweep(self, x, repeats: Sequence[int], *, want_ntk: bool = True):
        """Kernels of the rows of ``x`` with themselves for the network whose :class:`Repeat` block runs
        ``r`` times, for each ``r`` in ``repeats`` (non-decreasing), in one compiled pass: the readin, then
        per entry the extra repeated blocks and a readout through the head layers.

        The network must be ``[readin, Repeat(...), *head]`` (what :func:`fcn` and :func:`cnn` build);
        the kernels are exactly those of the same network built with that depth.  Returns a list of
        ``(nngp, ntk)`` arrays (``ntk`` None unless ``want_ntk``); values beyond float64 range are ``inf``.
        """
        if len(self.layers) < 2 or not isinstance(self.layers[1], Repeat):
            raise ValueError("depth_sweep: expected a network [readin, Repeat(...), *head] as built by fcn / cnn")
        reps = [int(r) for r in repeats]
        if not reps or any(r < 0 for r in reps) or any(b < a for a, b in zip(reps, reps[1:])):
            raise ValueError(f"repeats: must be a non-empty non-decreasing list of integers >= 0, got {repeats!r}")
        x = self._check_input(x, "x")
        key = ("depth_sweep", x.shape[1:], len(x.shape), bool(want_ntk))
        sweeper = self._cache.get(key)
        if sweeper is None:
            sweeper = self._cache[key] = _DepthSweeper(self, x.shape, bool(want_ntk))
        counts = np.diff(np.asarray([0] + reps)).astype(np.int32)
        ks, ts, eks, ets = sweeper.run(jnp.asarray(x), jnp.asarray(counts))
        ks, eks = np.asarray(ks), np.asarray(eks)
        ts = None if ts is None else np.asarray(ts)
        out = []
        with np.errstate(over="ignore"):
            for i in range(len(reps)):
                out.append((np.ldexp(ks[i], int(eks[i])), None if ts is None else np.ldexp(ts[i], int(ets[i]))))
        return out

    def memory_estimate(self, n1: int, n2: int | None = None, spatial_shape: Sequence[int] = (), *,
                        diagonal: bool = False, readout_full: bool | None = None, channels: int = 1,
                        get: str | Sequence[str] = ("nngp", "ntk"), batch_size: int | None = None,
                        memory_limit: float | None = None) -> int:
        """Estimated peak bytes of ``kernel`` on ``n1`` (and ``n2``) inputs of ``spatial_shape + (channels,)``:
        the float64 outputs plus one block's working memory as XLA's buffer assignment reports it (see
        ``_block_bytes``; measured within 1.5x of the peak RSS increase, e.g. FCN erf n = 6000).  Uses the
        block size ``kernel`` would choose (or ``batch_size``); compiles the block computation, nothing else
        is allocated.  ``readout_full`` is ignored (kept for compatibility)."""
        gets = (get,) if isinstance(get, str) else tuple(get)
        shape = tuple(int(s) for s in spatial_shape) + (int(channels),)
        plan = self._plan((int(n1),) + shape, None if n2 is None else (int(n2),) + shape, bool(diagonal),
                          "ntk" in gets, batch_size, memory_limit, check=False)
        return int(plan["total"])

    def _executable(self, spatial, nsp, batch, same, want_ntk, shape1, shape2):
        """The block computation compiled for one input shape (cached), with XLA's memory analysis."""
        key = ("exe", spatial, nsp, batch, same, want_ntk, shape1, shape2)
        hit = self._cache.get(key)
        if hit is None:
            fn = self._compiled(spatial, nsp, batch, same, want_ntk)
            spec1 = jax.ShapeDtypeStruct(shape1, jnp.float64)
            spec2 = jax.ShapeDtypeStruct(shape2, jnp.float64)
            exe = fn.lower(spec1, spec2).compile()
            ma = exe.memory_analysis()
            xla = None
            if ma is not None:
                xla = (int(ma.temp_size_in_bytes), int(ma.argument_size_in_bytes), int(ma.output_size_in_bytes))
            hit = self._cache[key] = (exe, xla)
        return hit

    def _block_bytes(self, spatial, nsp, diagonal, same, want_ntk, b1, b2, n1, feat, out_tail, per_pair):
        """Executables and the two memory phases of one block, in bytes: ``xla`` = XLA's temporaries +
        arguments + outputs (its buffer assignment); ``host`` = its outputs + the block assembled on the host
        (triangle layout), after the temporaries are freed.  For x2 = x1 the diagonal blocks use the
        triangle layout and the others (present when ``n1 > b1``) a cross block; the larger counts."""
        kinds = []
        if diagonal:
            kinds.append(("diag", False, ((1, b1) + feat, (1, b1) + feat), 0))
        else:
            if same:
                m, b = _tri_layout(b1)
                kinds.append(("tri", True, ((m, b) + feat, (m, b) + feat), (m * b) ** 2))
            if not same or n1 > b1:
                kinds.append(("cross", False, ((1, b1) + feat, (1, b2) + feat), 0))
        exes, xla_max, host_max = {}, 0, 0
        for name, is_same, shapes, tri in kinds:
            exe, xla = self._executable(spatial, nsp, "diag" if diagonal else "cross", is_same, want_ntk, *shapes)
            exes[name] = exe
            if xla is None:  # no analysis from this backend: the first guess
                pairs = b1 if diagonal else b1 * b2
                xla_b, host_b = _LIVE_ARRAYS * 8 * pairs * per_pair, 0
            else:
                temp, args, out = xla
                xla_b, host_b = temp + args + out, out + tri * out_tail * 8 * (1 + want_ntk)
            xla_max, host_max = max(xla_max, xla_b), max(host_max, host_b)
        return exes, xla_max, host_max

    def _plan(self, shape1, shape2, diagonal, want_ntk, batch_size, memory_limit, check=True) -> dict:
        """Block size and memory estimate for ``kernel`` (issue 12: the estimate must be honest).

        Peak = outputs (``n1 n2`` float64 entries per kernel, times ``d^2`` without a readout) + one block
        (:meth:`_block_bytes`).  Without ``batch_size`` the largest block whose estimate fits
        ``memory_limit`` (default: the memory left after the outputs, at most 8 GiB) is chosen from a first
        guess corrected by XLA's report; a computation that cannot fit is refused before allocating.
        """
        nsp = len(shape1) - 2
        spatial = self._spatial_mode(len(shape1))
        n1 = shape1[0]
        same = shape2 is None
        n2 = n1 if same else shape2[0]
        feat = tuple(shape1[1:])
        sp_shape = shape1[1:-1]
        d = int(np.prod(sp_shape)) if nsp else 1
        per_pair = d * d if spatial == "full" else d
        readout = spatial == "none" or self._has(lambda lay: lay.has_readout())
        out_tail = 1 if readout else per_pair
        kernels_out = 1 + bool(want_ntk)
        out_bytes = 8 * kernels_out * out_tail * (n1 if diagonal else n1 * n2)
        if diagonal:
            out_bytes *= 2  # per-block pieces, then their concatenation
        avail = available_memory()
        usable = 0.9 * avail
        if memory_limit is not None and (not math.isfinite(memory_limit) or memory_limit <= 0):
            raise ValueError(f"memory_limit: must be a positive number of bytes, got {memory_limit!r}")
        budget = memory_limit if memory_limit is not None else min(_MAX_BLOCK_BYTES, max(usable - out_bytes, 0.0) / 1.2)
        nmax = n1 if diagonal else max(n1, n2)

        def rows_for(bytes_per_pair):
            if diagonal:
                return max(1, min(n1, int(budget // bytes_per_pair)))
            return max(1, min(nmax, math.isqrt(int(budget // bytes_per_pair))))

        if batch_size is not None:
            if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
                raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
            b = int(batch_size)
            b1, b2 = min(b, n1), (min(b, n1) if diagonal else min(b, n2))
            exe, xla, host = self._block_bytes(spatial, nsp, diagonal, same, want_ntk, b1, b2, n1, feat,
                                               out_tail, per_pair)
            block = max(xla, host)
        else:
            b = rows_for(_LIVE_ARRAYS * 8 * per_pair)
            for _ in range(4):
                b1, b2 = min(b, n1), (min(b, n1) if diagonal else min(b, n2))
                exe, xla, host = self._block_bytes(spatial, nsp, diagonal, same, want_ntk, b1, b2, n1, feat,
                                                   out_tail, per_pair)
                block = max(xla, host)
                if block <= budget or b == 1:
                    break
                pairs = b1 if diagonal else b1 * b2
                b = max(1, min(b - 1, rows_for(1.05 * block / pairs)))
        if not diagonal and n1 <= b1 and n2 <= b2:
            # one block: the outputs are only touched after XLA's temporaries are freed, one kernel after the
            # other (the assembled triangle block of the first is released once it is written)
            total = max(xla, host + (out_bytes // kernels_out if same else out_bytes))
        else:  # earlier blocks already fill the outputs
            total = out_bytes + block
        plan = dict(b1=b1, b2=b2, exe=exe, block=block, out=out_bytes, total=total, avail=avail)
        if not check:
            return plan
        what = (f"the {n1}x{'' if diagonal else n2} kernel ({'nngp and ntk' if want_ntk else 'nngp'}, "
                f"{out_tail} float64 entr{'y' if out_tail == 1 else 'ies'} per pair)")
        if memory_limit is not None and block > memory_limit:
            raise KernelMemoryError(
                f"kernel block of {b1}x{b2} inputs with {per_pair} spatial entries per pair needs about "
                f"{format_bytes(block)}, more than memory_limit={format_bytes(memory_limit)}. Pass a smaller "
                "batch_size or a larger memory_limit"
                + (" or use a Flatten readout / smaller images (GAP needs d^2 entries per pair)" if per_pair > 1 else ""))
        if out_bytes + (block if batch_size is not None else 0) > usable:
            options = ["reduce the number of inputs", "compute the kernel in parts (rows x1[i:j] against x2)"]
            if not diagonal:
                options.append("use diagonal=True for K(x, x) only")
            if want_ntk:
                options.append("get='nngp' to skip the NTK")
            reduce = ", ".join(options)
            if batch_size is not None and out_bytes <= usable:
                reduce = "pass a smaller batch_size"
        else:
            reduce = "pass a smaller batch_size" if batch_size is not None else "reduce the number of inputs"
        try:
            check_memory(total, what=f"{what}: outputs {format_bytes(out_bytes)} + a block of {b1}x{b2} inputs "
                                     f"{format_bytes(block)},", reduce=reduce)
        except InsufficientMemoryError as exc:
            raise KernelMemoryError(str(exc)) from None
        return plan

    def kernel(self, x1, x2=None, *, diagonal: bool = False, get: str | Sequence[str] = ("nngp", "ntk"),
               batch_size: int | None = None, memory_limit: float | None = None,
               verbose: bool | None = None) -> Kernel:
        r"""Infinite-width NNGP and NTK (spec §1.2, §3.1).

        Parameters
        ----------
        x1, x2:
            Inputs ``(n, n0)`` for fully-connected nets, ``(n, *spatial, C)`` (channels last) for CNNs.
            ``x2=None`` means x1 with itself (train-train); the result is symmetric.
        diagonal:
            Only ``K(x, x)`` for each row of ``x1`` (shape ``(n1,)``); ``x2`` must be None.
        get:
            ``("nngp", "ntk")`` (default) or ``"nngp"`` (skips the NTK recursion).
        batch_size:
            Rows per block.  ``None`` chooses the largest block that fits ``memory_limit``.
        memory_limit:
            Bytes allowed for one block (default: what the outputs leave of the available memory,
            at most 8 GiB).  The estimate (:meth:`memory_estimate`: the outputs plus one block, the block as
            XLA's buffer assignment reports it) is checked against :func:`learndyn.resources.available_memory`
            before anything is allocated: a computation that cannot fit raises :class:`KernelMemoryError`
            saying what to reduce (``LEARNDYN_MEMORY_LIMIT`` overrides the available memory).
        verbose:
            Print the memory estimate (default: only when it exceeds 512 MiB).
        """
        gets = (get,) if isinstance(get, str) else tuple(get)
        if not gets or any(g not in ("nngp", "ntk") for g in gets):
            raise ValueError(f"get: must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
        want_ntk = "ntk" in gets
        x1 = self._check_input(x1, "x1")
        if x2 is not None:
            if diagonal:
                raise ValueError("x2: must be None when diagonal=True")
            x2 = self._check_input(x2, "x2")
            if x2.shape[1:] != x1.shape[1:]:
                raise ValueError(f"x2: shape {x2.shape} does not match x1 {x1.shape} beyond the batch axis")
        nsp = x1.ndim - 2
        spatial = self._spatial_mode(x1.ndim)
        n1 = x1.shape[0]
        n2 = n1 if x2 is None else x2.shape[0]
        plan = self._plan(x1.shape, None if x2 is None else x2.shape, bool(diagonal), want_ntk, batch_size,
                          memory_limit)
        b1, b2 = plan["b1"], plan["b2"]
        if verbose or (verbose is None and plan["total"] > _PRINT_BYTES):
            nblocks = math.ceil(n1 / b1) * (1 if diagonal else math.ceil(n2 / b2))
            print(f"learndyn.kernels: {n1}x{'' if diagonal else n2} kernel in {nblocks} block(s) of {b1}x"
                  f"{'' if diagonal else b2}; estimated peak memory {format_bytes(plan['total'])} (outputs "
                  f"{format_bytes(plan['out'])}, one block {format_bytes(plan['block'])}; available "
                  f"{format_bytes(plan['avail'])})", file=sys.stderr, flush=True)

        if diagonal:
            fn = plan["exe"]["diag"]
            outs = []
            for i in range(0, n1, b1):
                xa = _rows(x1, i, b1)[None]
                k_, t_, ek_, et_ = fn(xa, xa)
                outs.append((np.asarray(k_)[0], None if t_ is None else np.asarray(t_)[0], float(ek_), float(et_)))
            nngp, ntk, ek, et = _merge_rows(outs, n1)
        else:
            nngp, ntk, ek, et = self._run_blocks(x1, x2, b1, b2, spatial, nsp, want_ntk, plan["exe"])
        if not want_ntk:
            ntk = None
        self._check_finite(nngp, ntk)
        return Kernel(nngp, ntk, ek, et, bool(diagonal), self)

    # ---- helpers ----------------------------------------------------------------------------
    def _check_input(self, x, name):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a numeric array") from None
        if x.ndim < 2:
            raise ValueError(f"{name}: expected shape (n, features) or (n, *spatial, channels), got {x.shape}")
        if x.shape[0] == 0 or x.shape[-1] == 0:
            raise ValueError(f"{name}: empty input of shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}: contains NaN or inf")
        self._check_magnitude(x, name)
        has_conv = self._has(lambda lay: isinstance(lay, Conv))
        if x.ndim == 2 and has_conv:
            raise ValueError(f"{name}: this network has convolutions and needs (n, *spatial, channels) inputs, "
                             f"got {x.shape}")
        if x.ndim > 2 and not has_conv:
            raise ValueError(f"{name}: a fully-connected network takes (n, features) inputs, got {x.shape}; "
                             "flatten the inputs first")
        return x

    def _check_magnitude(self, x, name):
        r"""Reject inputs whose kernel the float64 recursion cannot represent (issue 11).

        The input kernel ``x . x' / n_0`` is formed in float64 *before* the power-of-two rescaling of the
        recursion takes over, so every row's ``|x|^2`` must be a normal float64 with headroom: at most
        ``2^1020`` (else ``inf``; Cauchy-Schwarz bounds every entry and partial sum by it), and for a
        non-zero row at least ``2^-1000`` (else the products ``x_c x'_c`` fall into the subnormal range
        and the kernel silently becomes 0).  The erf closed form is evaluated at the physical scale:
        ``Vdot = (4/pi) / sqrt((1 + 2 Sigma_11)(1 + 2 Sigma_22) - 4 Sigma_12^2)``; for an input with itself
        the radicand is ``1 + 4q`` computed as a difference of two numbers of size ``4q^2``, so its relative
        error is about ``eps q`` (``eps = 2^-52``) and it rounds to 0 (an infinite NTK) near ``q ~ 2^50``.
        Every variance entering an erf layer is therefore bounded by ``2^20`` (relative error <~ 1e-10):
        the first layer's ``q_0 = weight_var |x|^2 / n_0 + bias_var`` and, since ``|V_erf| <= 1``, each
        later layer's ``weight_var + bias_var``.  Homogeneous nonlinearities (ReLU, leaky ReLU, linear)
        are rescaled by powers of two, and the quadrature ones only take square roots of variances.
        """
        flat = np.abs(x.reshape(x.shape[0], -1))
        n0 = x.shape[-1]
        scale = flat.max(axis=1)
        nz = scale > 0
        if not np.any(nz):
            return
        sc = scale[nz]
        # log2 |x|^2 per row, without forming |x|^2 (it may overflow or underflow)
        log2_sq = 2.0 * np.log2(sc) + np.log2(np.sum((flat[nz] / sc[:, None]) ** 2, axis=1))
        hi, lo = float(log2_sq.max()), float(log2_sq.min())
        fix = "rescale the inputs (e.g. to |x|^2 / n_0 ~ 1 per row, as the papers do)"
        if hi > _LOG2_MAX_SQNORM:
            raise ValueError(f"{name}: inputs of squared norm 2^{hi:.0f} (|x| up to {flat.max():.3g}) overflow "
                             f"the float64 input kernel x.x' (at most 2^{_LOG2_MAX_SQNORM:.0f}); {fix}")
        if lo < _LOG2_MIN_SQNORM:
            raise ValueError(f"{name}: non-zero inputs of squared norm 2^{lo:.0f} underflow the float64 input "
                             f"kernel x.x' (at least 2^{_LOG2_MIN_SQNORM:.0f}); {fix}")
        if self._has(lambda lay: isinstance(lay, Elementwise) and lay.activation.kernel_precision_limited):
            first = self.layers[0]
            wv, bv = (first.weight_var, first.bias_var) if isinstance(first, (Dense, Conv)) else (1.0, 0.0)
            log2_q0 = float(np.logaddexp2(math.log2(wv) + hi - math.log2(n0), math.log2(bv) if bv > 0 else -np.inf))
            if log2_q0 > _LOG2_MAX_ERF_VARIANCE:
                raise ValueError(
                    f"{name}: the first-layer variance weight_var |x|^2/n_0 + bias_var = 2^{log2_q0:.1f} exceeds "
                    f"2^{_LOG2_MAX_ERF_VARIANCE:.0f}, beyond which the float64 erf kernel loses its precision "
                    f"(relative error ~ 2^-52 x variance); {fix}")
            later = [lay.weight_var + lay.bias_var for lay in self._affine_layers()[1:]]
            if later and max(later) > 2.0 ** _LOG2_MAX_ERF_VARIANCE:
                raise ValueError(
                    f"weight_var: an erf network needs weight_var + bias_var <= 2^{_LOG2_MAX_ERF_VARIANCE:.0f} "
                    f"(the float64 erf kernel loses its precision beyond), got {max(later):.3g}")

    def _affine_layers(self) -> list:
        out = []

        def walk(layers):
            for lay in layers:
                if isinstance(lay, Repeat):
                    walk(lay.layers)
                elif isinstance(lay, (Dense, Conv)):
                    out.append(lay)

        walk(self.layers)
        return out

    def _run_blocks(self, x1, x2, b1, b2, spatial, nsp, want_ntk, exes):
        """Outer loop over memory blocks; diagonal blocks of x1 with itself use the triangle layout."""
        n1 = x1.shape[0]
        same = x2 is None
        n2 = n1 if same else x2.shape[0]
        f_same, f_cross = exes.get("tri"), exes.get("cross")
        # blocks are written straight into the outputs (no second copy of the kernel), each output with a
        # running power-of-two exponent: a block with a larger exponent first scales what is written down
        nngp = ntk = perm = None
        ek = et = None
        for i in range(0, n1, b1):
            for j in range(0, n2, b2):
                if same and j < i:
                    continue
                if same and i == j:
                    rows = b1  # a short last block is padded, so every diagonal block reuses one compilation
                    m, b = _tri_layout(rows)
                    xa = _rows(x1, i, rows)
                    xb = _rows(xa, 0, m * b).reshape((m, b) + x1.shape[1:])
                    k_, t_, ek_, et_ = f_same(xb, xb)
                    kb = _assemble_tri(np.asarray(k_), m, b, spatial, nsp)
                    del k_
                    tb = None if t_ is None else _assemble_tri(np.asarray(t_), m, b, spatial, nsp)
                else:
                    xa = _rows(x1, i, b1)[None]
                    xb = _rows(x1 if same else x2, j, b2)[None]
                    k_, t_, ek_, et_ = f_cross(xa, xb)
                    kb, tb = np.asarray(k_)[0], None if t_ is None else np.asarray(t_)[0]
                del t_
                if nngp is None:
                    tail = kb.shape[2:]
                    perm = _transpose_perm(spatial, nsp, len(tail))
                    nngp = np.zeros((n1, n2) + tail)  # zeros: pages are only touched when written
                    ntk = np.zeros((n1, n2) + tail) if want_ntk else None
                ri, rj = min(b1, n1 - i), min(b2, n2 - j)
                mirror = same and i != j
                ek = _write_block(nngp, kb, float(ek_), ek, i, j, ri, rj, mirror, perm)
                del kb
                if want_ntk:
                    et = _write_block(ntk, tb, float(et_), et, i, j, ri, rj, mirror, perm)
                del tb
        return nngp, ntk, ek, (0.0 if et is None else et)

    @staticmethod
    def _check_finite(nngp, ntk):
        for name, arr in (("nngp", nngp), ("ntk", ntk)):
            if arr is not None and not np.all(np.isfinite(arr)):
                raise FloatingPointError(
                    f"{name}: the kernel recursion produced non-finite values (NaN/inf); check the "
                    "inputs and variances (this should not happen for finite inputs: please report it)"
                )


class _DepthSweeper:
    """Compiled readin / advance / readout of a ``[readin, Repeat, *head]`` network on one input shape
    (train-train, all inputs in one block), for :meth:`Network.depth_sweep`."""

    def __init__(self, net: Network, x_shape, want_ntk: bool):
        self.net = net
        self.readin, rep, *self.head = net.layers
        self.body = rep.layers
        self.ctx = (net._spatial_mode(len(x_shape)), len(x_shape) - 2)
        self.want_ntk = want_ntk
        self.run = jax.jit(self._run)

    def _ctx(self):
        z = jnp.zeros((1,), jnp.int32)
        return _Ctx(self.ctx[0], self.ctx[1], "cross", z, z, True)

    def _start(self, x):
        ctx = self._ctx()
        xb = x[None]
        st = _rescale(self.net._input_state(xb, xb, ctx, self.want_ntk), ctx)
        return self.readin.kernel(st, ctx)[0]

    def _advance(self, st, n):
        ctx = self._ctx()

        def body(_, s):
            c = ctx
            for lay in self.body:
                s, c = lay.kernel(s, c)
            return s

        return lax.fori_loop(0, n, body, st)

    def _readout(self, st):
        ctx = self._ctx()
        for lay in self.head:
            st, ctx = lay.kernel(st, ctx)
        return st.nngp[0], (None if st.ntk is None else st.ntk[0]), st.ek, st.et

    def _run(self, x, counts):
        """Readin, then per segment ``counts[i]`` more repeated blocks and a readout (a ``lax.scan`` over
        segments, so a sweep compiles once whatever its depths)."""

        def seg(s, n):
            s = self._advance(s, n)
            return s, self._readout(s)

        return lax.scan(seg, self._start(x), counts)[1]


def _write_block(out, block, e_block, e_out, i, j, ri, rj, mirror, perm):
    """Write ``block * 2**e_block`` into ``out`` (held as ``out * 2**e_out``) at rows i, columns j (and its
    transpose at j, i when ``mirror``); returns the new exponent of ``out`` (the larger of the two).
    Powers of two are exact, so this equals scaling every block by ``2**(e_block - max e)`` at the end."""
    if e_out is None:
        e_out = e_block
    with np.errstate(under="ignore"):
        if e_block > e_out:
            np.ldexp(out, int(e_out - e_block), out=out)
            e_out = e_block
        view = out[i:i + ri, j:j + rj]
        view[...] = block[:ri, :rj]
        if e_block < e_out:
            np.ldexp(view, int(e_block - e_out), out=view)
    if mirror:
        out[j:j + rj, i:i + ri] = np.transpose(view, perm)
    return e_out


def _rows(x, start, size):
    """Rows start..start+size of x; rows past the end repeat row 0 (padding, discarded later)."""
    n = x.shape[0]
    idx = np.arange(start, start + size)
    idx[idx >= n] = 0
    return x[idx]


def _tri_layout(n: int, max_blocks: int = 16) -> tuple[int, int]:
    """(m, b): n inputs in m blocks of b; only the m(m+1)/2 blocks I <= J are computed."""
    m = min(n, max_blocks)
    b = -(-n // m)
    return -(-n // b), b


def _transpose_perm(spatial: str, nsp: int, tail_ndim: int):
    if spatial == "full" and tail_ndim == 2 * nsp and nsp > 0:
        return (1, 0) + tuple(range(2 + nsp, 2 + 2 * nsp)) + tuple(range(2, 2 + nsp))
    return (1, 0) + tuple(range(2, 2 + tail_ndim))


def _assemble_tri(blocks: np.ndarray, m: int, b: int, spatial: str, nsp: int) -> np.ndarray:
    """Blocks (T, b, b, ...) of the upper triangle -> the symmetric (m b, m b, ...) array."""
    tail = blocks.shape[3:]
    out = np.empty((m * b, m * b) + tail)
    perm = _transpose_perm(spatial, nsp, len(tail))
    t = 0
    for i in range(m):
        for j in range(i, m):
            out[i * b:(i + 1) * b, j * b:(j + 1) * b] = blocks[t]
            if i != j:
                out[j * b:(j + 1) * b, i * b:(i + 1) * b] = np.transpose(blocks[t], perm)
            t += 1
    return out


def _merge_rows(outs, n):
    ek = max(o[2] for o in outs)
    et = max(o[3] for o in outs)
    nngp = np.concatenate([np.ldexp(o[0], int(o[2] - ek)) for o in outs])[:n]
    ntk = None if outs[0][1] is None else np.concatenate([np.ldexp(o[1], int(o[3] - et)) for o in outs])[:n]
    return nngp, ntk, ek, et


# ============================================================================================
# builders
# ============================================================================================
def serial(*layers, name: str = "serial") -> Network:
    """A :class:`Network` from layers (``Dense``, ``Conv``, ``Elementwise``, ``Flatten``,
    ``GlobalAvgPool``, ``Repeat``)."""
    flat = []
    for lay in layers:
        if isinstance(lay, Network):
            flat.extend(lay.layers)
        elif isinstance(lay, (list, tuple)):
            flat.extend(lay)
        else:
            flat.append(lay)
    return Network(tuple(flat), name=name)


def _check_depth(depth, minimum=0) -> int:
    if isinstance(depth, bool) or int(depth) != depth or depth < minimum:
        raise ValueError(f"depth: must be an integer >= {minimum}, got {depth!r}")
    return int(depth)


def fcn(depth: int, activation: Any = "erf", weight_var: float = 1.0, bias_var: float = 0.0, *,
        width: int = 512, out_dim: int = 1, readin_weight_var: float | None = None,
        readin_bias_var: float | None = None) -> Network:
    r"""Fully-connected ``Dense, [phi, Dense] x depth`` (spec §1.1): ``depth`` hidden layers.

    ``activation``: a name (``"erf"`` = erf(x), ``"relu"``, ``"leaky_relu"``, ``"linear"``,
    ``"tanh"``, ...), an :class:`~learndyn.activations.Activation` or a callable.
    ``readin_*`` override the first layer's variances (the colab uses ``1, 0``).
    """
    depth = _check_depth(depth)
    wv = _check_var("weight_var", weight_var, False)
    bv = _check_var("bias_var", bias_var, True)
    rwv = wv if readin_weight_var is None else _check_var("readin_weight_var", readin_weight_var, False)
    rbv = bv if readin_bias_var is None else _check_var("readin_bias_var", readin_bias_var, True)
    phi = Elementwise(activation)
    if depth == 0:
        layers = [Dense(out_dim, rwv, rbv)]
    else:
        layers = [Dense(width, rwv, rbv), Repeat((phi, Dense(width, wv, bv)), depth - 1), phi,
                  Dense(out_dim, wv, bv)]
    return Network(tuple(layers), name=f"fcn(depth={depth}, {phi.activation}, {wv:g}, {bv:g})")


def cnn(depth: int, activation: Any = "relu", weight_var: float = 2.0, bias_var: float = 0.0, *,
        filter_shape: Sequence[int] = (3, 3), padding: str = "circular", readout: str = "flatten",
        channels: int = 64, out_dim: int = 1, readin_weight_var: float | None = None,
        readin_bias_var: float | None = None) -> Network:
    r"""Convolutional ``Conv, [phi, Conv] x (depth-1), phi, Flatten|GlobalAvgPool, Dense`` (spec §3).

    ``padding``: ``"circular"`` (torus) or ``"same"`` (zeros); ``readout``: ``"flatten"`` (CNN-F) or
    ``"gap"`` (global average pooling, CNN-P).  ``depth >= 1``.
    """
    depth = _check_depth(depth, 1)
    wv = _check_var("weight_var", weight_var, False)
    bv = _check_var("bias_var", bias_var, True)
    rwv = wv if readin_weight_var is None else _check_var("readin_weight_var", readin_weight_var, False)
    rbv = bv if readin_bias_var is None else _check_var("readin_bias_var", readin_bias_var, True)
    if readout not in READOUTS:
        raise ValueError(f"readout: must be one of {READOUTS}, got {readout!r}")
    if padding not in PADDINGS:
        raise ValueError(f"padding: must be one of {PADDINGS}, got {padding!r}")
    fs = tuple(filter_shape)
    phi = Elementwise(activation)
    conv = lambda v, b: Conv(channels, v, b, fs, padding)
    layers = [conv(rwv, rbv), Repeat((phi, conv(wv, bv)), depth - 1), phi,
              Flatten() if readout == "flatten" else GlobalAvgPool(), Dense(out_dim, wv, bv)]
    return Network(tuple(layers), name=f"cnn(depth={depth}, {phi.activation}, {wv:g}, {bv:g}, {fs}, "
                                       f"{padding}, {readout})")
