r"""The layers of an architecture: each one builds its finite part (``init``, ``apply``) and maps the
infinite-width kernels (``kernel``) -- one description, two views (Xiao, Pennington & Schoenholz 2020;
neural-tangents' NTK parameterisation, Novak et al. 2020).

Conventions:

* every weight and bias entry is iid ``N(0, 1)``; a layer computes
  ``z = sqrt(weight_var / fan_in) * W x + sqrt(bias_var) * b`` with ``fan_in = n_in`` (Dense) or
  ``C_in * prod(filter_shape)`` (Conv);
* the input kernel is ``x . x' / n_0`` (per spatial pair ``x_a . x'_a' / C`` for images, NHWC);
* ``Dense``:        ``K <- weight_var K + bias_var``,  ``Theta <- K_new + weight_var Theta``
  (Jacot et al. 2018, Theorem 1; Lee et al. 2019);
* ``Elementwise``:  ``K <- V_phi(Sigma)``,  ``Theta <- Vdot_phi(Sigma) Theta`` with
  ``V_phi(Sigma) = E[phi(u) phi(v)]``, ``Vdot_phi(Sigma) = E[phi'(u) phi'(v)]``, ``(u, v) ~ N(0, Sigma)``;
* ``Conv``:         the same as Dense after averaging over the filter window, shifting both spatial
  indices together (:mod:`.conv`; Xiao et al. 2020, Sec. 3; Novak et al. 2019);
* ``Flatten`` reads the spatial diagonal with weight ``1/d`` (``K <- (1/d) sum_a K_{a,a}``) and
  ``GlobalAvgPool`` reads every spatial pair with weight ``1/d^2`` (Xiao et al. 2020, Sec. 3).

Numerics.  Closed forms are written in the numerically stable ``arctan2`` forms used by
neural-tangents (``erf``: ``V = (2/pi) atan2(2K, sqrt((1+2K11)(1+2K22) - 4K^2))``; ``abrelu``/``relu``:
``theta = atan2(sqrt(K11 K22 - K^2), K)``), so the two libraries agree to rounding.  Other activations
use :func:`learndyn.gaussian.i2` / :func:`learndyn.gaussian.j2` (Gauss-Hermite quadrature).  The state the
layers pass on (:mod:`.state`) carries exact power-of-two scales, so deep kernels never over- or underflow.

The network built from these layers lives in :mod:`.network`; the names it defines (``Network``,
``Kernel``, ``fcn``, ``cnn``, ``serial``, ``KernelMemoryError``) stay importable from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import activations as _act
from ..results import InvalidInputError
from .conv import _conv_axes, _same_pads, _window_average
from .state import (_LOG2_MAX_ERF_VARIANCE, _LOG2_MAX_SQNORM, _LOG2_MIN_SQNORM, _KState, _Ctx, _affine_update,
                    _check_var, _pow2, _spatial_diag)

__all__ = [
    "run_layers", "Dense", "Conv", "Elementwise", "Flatten", "GlobalAvgPool", "Repeat", "PADDINGS", "READOUTS",
]

PADDINGS = ("circular", "same")
READOUTS = ("flatten", "gap")


# ============================================================================================
# the nonlinearity on kernel blocks
# ============================================================================================
def _self_map(act, s, t, ctx: _Ctx):
    """Nonlinearity on a self array (pairs of positions of the same input) and its NTK ``t``."""
    if ctx.spatial == "full" and ctx.selfdiag:
        # the spatial diagonal of a full self array: the same arithmetic as the diagonal entries below
        return _pair_map(act, s, s, s, t, True)
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


def _same_mask(ctx: _Ctx, b1: int, b2: int, d: int = 1):
    """Boolean mask of the entries of a cross block that pair an input position with itself (None unless x2
    is x1): block ``I[t]`` equals block ``J[t]``, row ``row0 + i`` equals column ``col0 + j`` and, in the full
    spatial layout flattened to ``(T, b1 d, b2 d)``, the two spatial positions are equal.  Shape
    ``(T, b1 d, b2 d)``; there the correlation is exactly 1 (see :func:`_pair_map`).  Kept in one place so
    that the block layout can change it alone.
    """
    if not ctx.same:
        return None
    # row r of the chunk is block row row0 + r, i.e. input (x1 block start) + row0 + r; column c is input
    # (x2 block start) + col0 + c = (x1 block start) + offset + col0 + c (``_Ctx.offset``)
    offset = ctx.row0 - ctx.col0 - ctx.offset
    if isinstance(offset, int) and offset == 0:
        eye = jnp.eye(b1 * d, b2 * d, dtype=bool)
    else:
        eye = (jnp.arange(b2 * d)[None, :] - jnp.arange(b1 * d)[:, None]) == offset * d
    return (ctx.I == ctx.J)[:, None, None] & eye[None]


def _pair_variances(v1, v2, ctx: _Ctx, b1: int, b2: int):
    """Variances of the rows ``(T, b1, *sp)`` and columns ``(T, b2, *sp)`` of a cross block (or of a chunk
    of it: rows from ``ctx.row0``, columns from ``ctx.col0``) from the per-input variances ``v1``, ``v2``."""
    a, b = v1[ctx.I], v2[ctx.J]  # (T, m*, *sp)
    if a.shape[1] != b1:
        a = lax.dynamic_slice_in_dim(a, ctx.row0, b1, axis=1)
    if b.shape[1] != b2:
        b = lax.dynamic_slice_in_dim(b, ctx.col0, b2, axis=1)
    return a, b


def _cross_map(act, K, T, v1, v2, ctx: _Ctx):
    """Nonlinearity on a cross pair array, variances v1 (m1, b1, *sp), v2 (m2, b2, *sp)."""
    k = ctx.nsp
    b1 = K.shape[1]
    b2 = K.shape[2 + k] if ctx.spatial == "full" else K.shape[2]
    a, b = _pair_variances(v1, v2, ctx, b1, b2)  # (T, b1, *sp), (T, b2, *sp)
    nT = a.shape[0]
    if ctx.spatial == "full":
        d = int(np.prod(a.shape[2:]))
        same = _same_mask(ctx, b1, b2, d)  # (T, b1 d, b2 d)
        shape = K.shape
        K = K.reshape((nT, b1 * d, b2 * d))
        T = None if T is None else T.reshape(K.shape)
        a, b = a.reshape((nT, b1 * d, 1)), b.reshape((nT, 1, b2 * d))
        V, T = _pair_map(act, K, a, b, T, same)
        return V.reshape(shape), (None if T is None else T.reshape(shape))
    if ctx.spatial == "diag":
        d = int(np.prod(a.shape[2:]))
        shape = K.shape
        K = K.reshape((nT, b1, b2, d))
        T = None if T is None else T.reshape(K.shape)
        a, b = a.reshape((nT, b1, 1, d)), b.reshape((nT, 1, b2, d))
        same = _same_mask(ctx, b1, b2)
        if same is not None:
            same = same[..., None]
        V, T = _pair_map(act, K, a, b, T, same)
        return V.reshape(shape), (None if T is None else T.reshape(shape))
    return _pair_map(act, K, a[:, :, None], b[:, None, :], T, _same_mask(ctx, b1, b2))



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
# layers
# ============================================================================================
class _Layer:
    """Base class: ``init(key, in_shape) -> (out_shape, params)``, ``apply``, ``kernel``."""

    def init(self, key, in_shape):  # pragma: no cover - abstract
        """``(output shape, parameters)`` for inputs of ``in_shape``."""
        raise NotImplementedError

    def apply(self, params, x):  # pragma: no cover - abstract
        """The finite layer on inputs ``x`` with ``params``."""
        raise NotImplementedError

    def kernel(self, st: _KState, ctx: _Ctx):  # pragma: no cover - abstract
        """The layer's map of the kernel state ``(K, Theta)``: ``(state, context) -> (state, context)``."""
        raise NotImplementedError

    def needs_full_spatial(self) -> bool:
        """Whether the layer needs every pair of spatial positions (global average pooling)."""
        return False

    def has_readout(self) -> bool:
        """Whether the layer removes the spatial axes (Flatten, GlobalAvgPool)."""
        return False


@dataclass(frozen=True)
class Dense(_Layer):
    """Fully-connected layer acting on the last (channel) axis, NTK parameterisation."""

    width: int
    weight_var: float = 1.0
    bias_var: float = 0.0

    def __post_init__(self):
        if int(self.width) != self.width or int(self.width) < 1:
            raise InvalidInputError(f"width: must be a positive integer, got {self.width!r}")
        object.__setattr__(self, "weight_var", _check_var("weight_var", self.weight_var, False))
        object.__setattr__(self, "bias_var", _check_var("bias_var", self.bias_var, True))

    def init(self, key, in_shape):
        """Output shape and N(0, 1) parameters ``W`` (n_in, width) and ``b`` (width,)."""
        kw, kb = jax.random.split(key)
        n_in = in_shape[-1]
        W = jax.random.normal(kw, (n_in, self.width), dtype=jnp.float64)
        b = jax.random.normal(kb, (self.width,), dtype=jnp.float64)
        return tuple(in_shape[:-1]) + (self.width,), {"W": W, "b": b}

    def apply(self, params, x):
        """``sqrt(weight_var / n_in) x W + sqrt(bias_var) b`` (NTK parameterisation)."""
        n_in = x.shape[-1]
        out = jnp.sqrt(self.weight_var / n_in) * (x @ params["W"])
        if self.bias_var > 0:
            out = out + jnp.sqrt(self.bias_var) * params["b"]
        return out

    def kernel(self, st, ctx):
        """``K <- weight_var K + bias_var``, ``Theta <- K_new + weight_var Theta`` (Jacot et al. 2018, Theorem 1)."""
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
            raise InvalidInputError(f"channels: must be a positive integer, got {self.channels!r}")
        object.__setattr__(self, "weight_var", _check_var("weight_var", self.weight_var, False))
        object.__setattr__(self, "bias_var", _check_var("bias_var", self.bias_var, True))
        fs = tuple(self.filter_shape) if isinstance(self.filter_shape, (tuple, list)) else None
        if not fs or any(int(f) != f or int(f) < 1 for f in fs):
            raise InvalidInputError(f"filter_shape: expected a tuple of positive integers, got {self.filter_shape!r}")
        object.__setattr__(self, "filter_shape", tuple(int(f) for f in fs))
        if self.padding not in PADDINGS:
            raise InvalidInputError(f"padding: must be one of {PADDINGS}, got {self.padding!r}")

    def init(self, key, in_shape):
        """Output shape and N(0, 1) parameters ``W`` (*filter_shape, C_in, C_out) and ``b`` (C_out,)."""
        if len(in_shape) != len(self.filter_shape) + 2:
            raise InvalidInputError(
                f"Conv with filter_shape {self.filter_shape} needs inputs (n, {len(self.filter_shape)} spatial "
                f"dims, channels), got shape {tuple(in_shape)}"
            )
        kw, kb = jax.random.split(key)
        W = jax.random.normal(kw, self.filter_shape + (in_shape[-1], self.channels), dtype=jnp.float64)
        b = jax.random.normal(kb, (self.channels,), dtype=jnp.float64)
        return tuple(in_shape[:-1]) + (self.channels,), {"W": W, "b": b}

    def apply(self, params, x):
        """Stride-1 convolution scaled by ``sqrt(weight_var / fan_in)`` plus ``sqrt(bias_var) b``."""
        k = len(self.filter_shape)
        fan_in = x.shape[-1] * int(np.prod(self.filter_shape))
        sp = "DHW"[-k:] if k <= 3 else None
        if sp is None:
            raise InvalidInputError("filter_shape: at most 3 spatial dimensions are supported")
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
        """``K_{a,a'} <- weight_var/|W| sum_b K_{a+b,a'+b} + bias_var``, and the NTK likewise (Xiao et al.
        2020, Sec. 3)."""
        if ctx.spatial == "none":
            raise InvalidInputError("Conv needs spatial inputs (n, *spatial, channels); got a flat kernel")
        if len(self.filter_shape) != ctx.nsp:
            raise InvalidInputError(f"filter_shape {self.filter_shape} does not match {ctx.nsp} spatial dimensions")
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
        """The shape is unchanged; no parameters."""
        return tuple(in_shape), {}

    def apply(self, params, x):
        """``phi(x)`` elementwise."""
        return self.activation(x)

    def kernel(self, st, ctx):
        """``K <- V_phi(Sigma)``, ``Theta <- Vdot_phi(Sigma) Theta`` (Jacot et al. 2018; Lee et al. 2019)."""
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
    """(1/d) sum_a K_aa: the spatial diagonal averaged (Flatten readout; Xiao et al. 2020, Sec. 3)."""
    k = ctx.nsp
    if ctx.spatial == "full" and not (kind == "self" and ctx.selfdiag):
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
    """(1/d^2) sum_{a,a'} K_aa' (global average pooling readout; Novak et al. 2019, Xiao et al. 2020, Sec. 3)."""
    k = ctx.nsp
    if kind == "pair":
        axes = tuple(range(2, 2 + k)) + tuple(range(3 + k, 3 + 2 * k))
    elif ctx.selfdiag:
        # only the spatial diagonal is held: its mean bounds (1/d^2) sum K_aa' (Cauchy-Schwarz), which is all
        # the layers after the readout read from a self array when run_layers chose this layout
        axes = tuple(range(2, 2 + k))
    else:
        axes = tuple(range(2, 2 + 2 * k))
    return jnp.mean(a, axis=axes)


@dataclass(frozen=True)
class Flatten(_Layer):
    """Flatten ``(n, *spatial, C) -> (n, d*C)``; kernel ``(1/d) sum_a K_aa`` (Xiao et al. 2020, Sec. 3)."""

    def init(self, key, in_shape):
        """Output shape ``(n, d C)``; no parameters."""
        return (in_shape[0], int(np.prod(in_shape[1:]))), {}

    def apply(self, params, x):
        """Reshape ``(n, *spatial, C) -> (n, d C)``."""
        return x.reshape((x.shape[0], -1))

    def has_readout(self):
        """True: this layer removes the spatial axes."""
        return True

    def kernel(self, st, ctx):
        """``K <- (1/d) sum_a K_{a,a}`` (and the NTK likewise; Xiao et al. 2020, Sec. 3)."""
        if ctx.spatial == "none":
            return st, ctx
        pk = "self" if ctx.batch == "diag" else "pair"
        st = _readout_state(st, ctx, lambda a: _flatten_reduce(a, ctx, pk), lambda a: _flatten_reduce(a, ctx, "self"))
        return st, ctx.replace(spatial="none", nsp=0)


@dataclass(frozen=True)
class GlobalAvgPool(_Layer):
    """Mean over spatial positions ``(n, *spatial, C) -> (n, C)``; kernel ``(1/d^2) sum_{a,a'} K_aa'``."""

    def init(self, key, in_shape):
        """Output shape ``(n, C)``; no parameters."""
        return (in_shape[0], in_shape[-1]), {}

    def apply(self, params, x):
        """Mean over the spatial axes."""
        return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))

    def has_readout(self):
        """True: this layer removes the spatial axes."""
        return True

    def needs_full_spatial(self):
        """True: the readout needs every pair of positions (d^2 entries per input pair)."""
        return True

    def kernel(self, st, ctx):
        """``K <- (1/d^2) sum_{a,a'} K_{a,a'}`` (and the NTK likewise; Novak et al. 2019)."""
        if ctx.spatial == "none":
            return st, ctx
        if ctx.spatial != "full":  # pragma: no cover - guarded by _LayerStack._spatial_mode
            raise InvalidInputError("GlobalAvgPool needs the full spatial kernel")
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
            raise InvalidInputError(f"n: must be a non-negative integer, got {self.n!r}")
        for lay in self.layers:
            if lay.has_readout():
                raise InvalidInputError("Repeat: a repeated block must keep its shape (no Flatten/GlobalAvgPool)")

    def needs_full_spatial(self):
        """Whether a repeated layer needs every pair of spatial positions."""
        return any(lay.needs_full_spatial() for lay in self.layers)

    def init(self, key, in_shape):
        """Independent parameters for each of the ``n`` repetitions, stacked along a leading axis."""
        if self.n == 0:
            return tuple(in_shape), []
        keys = jax.random.split(key, self.n)
        all_params = []
        for i in range(self.n):
            shape, p = _serial_init(self.layers, keys[i], in_shape)
            if tuple(shape) != tuple(in_shape):
                raise InvalidInputError(f"Repeat: the block changes the shape {tuple(in_shape)} -> {tuple(shape)}")
            all_params.append(p)
        stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *all_params)
        return tuple(in_shape), stacked

    def apply(self, params, x):
        """The block applied ``n`` times (``lax.scan`` over the stacked parameters)."""
        if self.n == 0:
            return x

        def body(h, p):
            return _serial_apply(self.layers, p, h), None

        return lax.scan(body, x, params)[0]

    def kernel(self, st, ctx):
        """The block's kernel maps applied ``n`` times (``lax.fori_loop``)."""
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
# running a stack of layers on a block, chunk by chunk
# ============================================================================================
#: float64 entries of one pair array per chunk in :func:`run_layers`: a chunk's working set (the pair
#: arrays and the temporaries of one layer, ~8 such arrays) then stays in the processor's caches
#: (measured on the CNN-GAP benchmark, 16x16 images: 2^18 entries per array about 5x faster per entry than
#: whole blocks of 32 MB per array, which stream from memory at every step of every layer)
_CHUNK_ENTRIES = 2 ** 18


def _reads_self_after_readout(layers) -> bool:
    """Whether a nonlinearity follows the first readout (it reads the self kernels of the pooled inputs)."""
    def has_elementwise(lay):
        return isinstance(lay, Elementwise) or (isinstance(lay, Repeat) and any(map(has_elementwise, lay.layers)))

    for i, lay in enumerate(layers):
        if lay.has_readout():
            return any(has_elementwise(later) for later in layers[i + 1:])
    return False


def _divisor_at_most(n: int, m: int) -> int:
    return max(c for c in range(1, min(n, max(m, 1)) + 1) if n % c == 0)


def _chunk_shape(layers, st: _KState, ctx: _Ctx):
    """``(c1, c2)`` rows and columns per chunk for :func:`run_layers`, or None to run the block whole."""
    if ctx.batch != "cross" or ctx.spatial != "full" or ctx.nsp == 0 or ctx.selfdiag:
        return None
    if _reads_self_after_readout(layers):
        return None
    k = ctx.nsp
    nT, b1 = st.nngp.shape[:2]
    b2 = st.nngp.shape[2 + k]
    d2 = int(np.prod(st.nngp.shape[2:2 + k])) ** 2
    pairs = max(1, _CHUNK_ENTRIES // d2)
    c1 = _divisor_at_most(b1, math.isqrt(pairs))
    c2 = _divisor_at_most(b2, pairs // c1)
    c1 = _divisor_at_most(b1, pairs // c2)
    if nT == 1 and c1 == b1 and c2 == b2:
        return None
    return c1, c2


def run_layers(layers, st: _KState, ctx: _Ctx, inputs=None):
    """Apply ``layers`` to the kernel state of one block: ``(state, context) -> (state, context)``.

    The same as ``for lay in layers: st, ctx = lay.kernel(st, ctx)``.  For a cross block in the full
    spatial layout (global average pooling, or no readout) the pair arrays are cut into chunks of ``c1`` rows
    by ``c2`` columns of ``_CHUNK_ENTRIES`` entries at most and the whole stack runs on one chunk after
    another (``lax.map``): each chunk stays in the caches through every layer instead of streaming
    ``b1 b2 d^2`` entries from memory at every step.  Every chunk carries the spatial diagonals of all
    the block's self kernels (a convolution maps the diagonal to itself, so these are exactly the
    variances the recursion needs, and they give every chunk the same power-of-two scales).  The values are
    those of the whole-block recursion: the same elementwise arithmetic on the same entries.

    ``inputs = (x1b, x2b, input_state)``, if given, are the block's inputs and the function
    ``input_state(xa, xb, ctx) -> _KState`` that built ``st`` before its power-of-two rescaling: each chunk
    then forms its own input kernel from its rows and columns (and the block's scale ``2**-st.ek``), so
    the pair arrays of the whole block are never formed (XLA drops them).

    Not used when a nonlinearity follows the readout (it needs the pooled self kernels, which the
    diagonals do not give): the self arrays this returns after a GAP readout are the means of the
    diagonals, an upper bound of the pooled self kernels that only sets the power-of-two scale.
    """
    chunk = _chunk_shape(layers, st, ctx)
    if chunk is None:
        for lay in layers:
            st, ctx = lay.kernel(st, ctx)
        return st, ctx
    c1, c2 = chunk
    k = ctx.nsp
    nT, b1 = st.nngp.shape[:2]
    sp = tuple(st.nngp.shape[2:2 + k])
    b2 = st.nngp.shape[2 + k]
    g1, g2 = b1 // c1, b2 // c2

    def diag(a):
        return None if a is None else _spatial_diag(a, ctx)

    s1, s2, t1, t2 = diag(st.s1), diag(st.s2), diag(st.t1), diag(st.t2)
    cctx0 = ctx.replace(selfdiag=True)
    final = []

    def body(idx):
        t, r, c = idx // (g1 * g2), (idx // g2) % g1, idx % g2
        r0, c0 = r * c1, c * c2
        zero = jnp.zeros((), idx.dtype)
        start = (t, r0) + (zero,) * k + (c0,) + (zero,) * k
        size = (1, c1) + sp + (c2,) + sp

        def cut(a):
            return None if a is None else lax.dynamic_slice(a, start, size)

        I, J = lax.dynamic_slice_in_dim(ctx.I, t, 1), lax.dynamic_slice_in_dim(ctx.J, t, 1)
        cctx = cctx0.replace(I=I, J=J, row0=r0, col0=c0)
        if inputs is None:
            K, T = cut(st.nngp), cut(st.ntk)
        else:
            x1b, x2b, input_state = inputs
            xa = lax.dynamic_slice_in_dim(x1b[I[0]], r0, c1, axis=0)[None]
            xb = lax.dynamic_slice_in_dim((x1b if x2b is None else x2b)[J[0]], c0, c2, axis=0)[None]
            z = jnp.zeros((1,), jnp.int32)
            own = input_state(xa, xb, ctx.replace(I=z, J=z, same=False))
            K = own.nngp * _pow2(-st.ek)  # the block's input rescaling (exact)
            T = None if own.ntk is None else own.ntk * _pow2(-st.et)
        cst = _KState(K, T, s1, s2, t1, t2, st.ek, st.et)
        for lay in layers:
            cst, cctx = lay.kernel(cst, cctx)
        final.append(cctx)
        return cst

    outs = lax.map(body, jnp.arange(nT * g1 * g2, dtype=jnp.int32))
    fctx = final[-1]
    x = fctx.nsp if fctx.spatial == "full" else 0

    def assemble(a):  # (n, 1, c1, *X, c2, *X) -> (T, b1, *X, b2, *X)
        if a is None:
            return None
        tail = a.shape[3:3 + x]
        a = a.reshape((nT, g1, g2, c1) + tail + (c2,) + tail)
        perm = (0, 1, 3) + tuple(range(4, 4 + x)) + (2, 4 + x) + tuple(range(5 + x, 5 + 2 * x))
        return a.transpose(perm).reshape((nT, b1) + tail + (b2,) + tail)

    def first(a):
        return None if a is None else a[0]

    out = _KState(assemble(outs.nngp), assemble(outs.ntk), first(outs.s1), first(outs.s2), first(outs.t1),
                  first(outs.t2), outs.ek[0], outs.et[0])
    return out, fctx.replace(I=ctx.I, J=ctx.J, row0=0, col0=0)


# ============================================================================================
# a stack of layers: walking it and checking inputs against it
# ============================================================================================
class _LayerStack:
    """What a serial stack of layers knows without running: which layers it holds, which spatial layout its
    kernel needs, and whether inputs fit it (shapes, and magnitudes the float64 recursion can hold)."""

    layers: tuple

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

    def _check_input(self, x, name):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{name}: expected a numeric array") from None
        if x.ndim < 2:
            raise InvalidInputError(f"{name}: expected shape (n, features) or (n, *spatial, channels), got {x.shape}")
        if x.shape[0] == 0 or x.shape[-1] == 0:
            raise InvalidInputError(f"{name}: empty input of shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise InvalidInputError(f"{name}: contains NaN or inf")
        self._check_magnitude(x, name)
        has_conv = self._has(lambda lay: isinstance(lay, Conv))
        if x.ndim == 2 and has_conv:
            raise InvalidInputError(f"{name}: this network has convolutions and needs (n, *spatial, channels) inputs, "
                             f"got {x.shape}")
        if x.ndim > 2 and not has_conv:
            raise InvalidInputError(f"{name}: a fully-connected network takes (n, features) inputs, got {x.shape}; "
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

        These are :class:`~learndyn.InvalidInputError`\ s, not a :class:`~learndyn.Status` on the result: the
        check runs before any kernel is computed and the remedy is to change the input (its scale, or
        ``weight_var``), not the numerics; a result with a status would hold nothing.
        """
        n0 = x.shape[-1]
        rows = x.reshape(x.shape[0], -1)
        chunk = max(1, 2**18 // max(rows.shape[1], 1))  # rows at a time: temporaries of ~2 MiB, not copies of x
        top, parts = 0.0, []
        for i in range(0, rows.shape[0], chunk):
            flat = np.abs(rows[i:i + chunk])
            scale = flat.max(axis=1)
            nz = scale > 0
            sc = scale[nz]
            top = max(top, float(flat.max()))
            # log2 |x|^2 per row, without forming |x|^2 (it may overflow or underflow)
            parts.append(2.0 * np.log2(sc) + np.log2(np.sum((flat[nz] / sc[:, None]) ** 2, axis=1)))
        log2_sq = np.concatenate(parts)
        if log2_sq.size == 0:
            return
        hi, lo = float(log2_sq.max()), float(log2_sq.min())
        fix = "rescale the inputs (e.g. to |x|^2 / n_0 ~ 1 per row, as the papers do)"
        if hi > _LOG2_MAX_SQNORM:
            raise InvalidInputError(f"{name}: inputs of squared norm 2^{hi:.0f} (|x| up to {top:.3g}) overflow "
                             f"the float64 input kernel x.x' (at most 2^{_LOG2_MAX_SQNORM:.0f}); {fix}")
        if lo < _LOG2_MIN_SQNORM:
            raise InvalidInputError(f"{name}: non-zero inputs of squared norm 2^{lo:.0f} underflow the float64 input "
                             f"kernel x.x' (at least 2^{_LOG2_MIN_SQNORM:.0f}); {fix}")
        if self._has(lambda lay: isinstance(lay, Elementwise) and lay.activation.kernel_precision_limited):
            first = self.layers[0]
            wv, bv = (first.weight_var, first.bias_var) if isinstance(first, (Dense, Conv)) else (1.0, 0.0)
            log2_q0 = float(np.logaddexp2(math.log2(wv) + hi - math.log2(n0), math.log2(bv) if bv > 0 else -np.inf))
            if log2_q0 > _LOG2_MAX_ERF_VARIANCE:
                raise InvalidInputError(
                    f"{name}: the first-layer variance weight_var |x|^2/n_0 + bias_var = 2^{log2_q0:.1f} exceeds "
                    f"2^{_LOG2_MAX_ERF_VARIANCE:.0f}, beyond which the float64 erf kernel loses its precision "
                    f"(relative error ~ 2^-52 x variance); {fix}")
            later = [lay.weight_var + lay.bias_var for lay in self._affine_layers()[1:]]
            if later and max(later) > 2.0 ** _LOG2_MAX_ERF_VARIANCE:
                raise InvalidInputError(
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


def __getattr__(name: str):
    """The network-level names that lived here before the split stay importable from this module."""
    if name in ("Network", "Kernel", "KernelMemoryError", "serial", "fcn", "cnn", "network_from_description"):
        from . import network

        return getattr(network, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
