r"""Spatial window averages of the convolutional kernel recursion (Xiao, Pennington & Schoenholz 2020,
Sec. 3; Novak et al. 2019, Sec. 2).

A stride-1 convolution with filter window ``W`` maps a kernel over pairs of spatial positions by
``K_{a,a'} <- weight_var/|W| sum_b K_{a+b,a'+b} + bias_var``: both positions shift together.
``'circular'`` padding wraps around (a torus), ``'same'`` reads zeros outside the image, the padded entries
counting in the ``1/|W|`` average exactly as in neural-tangents.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .state import _Ctx

def _same_pads(size: int, f: int) -> tuple[int, int]:
    """(low, high) zero padding of one axis for a 'same' convolution with a filter of size ``f``."""
    total = f - 1
    lo = total // 2
    return lo, total - lo


def _window_average(x, filter_shape, padding, axes_groups):
    """(1/|W|) sum_b x[a+b, a'+b] over a window, shifting every axis group together.

    ``axes_groups``: for each filter dim i, the tuple of array axes that shift by b_i together (one
    axis in the spatially-diagonal layout, two in the full layout).  Separable over filter dims,
    like neural-tangents; shifts wrap around for ``'circular'`` and read zeros outside the image
    for ``'same'`` (padding offsets as in ``lax.padtype_to_pads(..., 'SAME')``).  Each axis group is padded
    once (wrapped around, or with zeros) and the shifted reads are static slices of it, which XLA fuses
    into one vectorised loop (constant-index gathers were about 3x slower on CPU).

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
            lo, hi = _same_pads(size, f)
            # pad every axis of the group (wrapping around, or with zeros), then the shifted reads are static
            # slices: entry a of shift beta reads a + beta - lo, zero outside the image for 'same'
            p = y
            for ax in axes:
                if padding == "circular":
                    p = _wrap_pad(p, ax, lo, hi)
                else:
                    p = lax.pad(p, jnp.zeros((), p.dtype), [(lo, hi, 0) if a == ax else (0, 0, 0)
                                                            for a in range(p.ndim)])
            acc = None
            for beta in range(f):
                piece = p
                for ax in axes:
                    piece = lax.slice_in_dim(piece, beta, beta + size, axis=ax)
                acc = piece if acc is None else acc + piece
            y = acc / float(f)
        return y

    first = x.reshape(-1)[0]
    return lax.cond(first == first, average, lambda y: jnp.full_like(y, jnp.nan), x)


def _wrap_pad(y, ax: int, lo: int, hi: int):
    """``y`` extended along ``ax`` by ``lo`` entries before and ``hi`` after, wrapping around (a torus)."""
    size = y.shape[ax]
    parts = []
    while lo > 0:  # filters wider than the image wrap more than once
        take = min(lo, size)
        parts.append(lax.slice_in_dim(y, size - take, size, axis=ax))
        lo -= take
    parts = parts[::-1] + [y]
    while hi > 0:
        take = min(hi, size)
        parts.append(lax.slice_in_dim(y, 0, take, axis=ax))
        hi -= take
    return jnp.concatenate(parts, axis=ax) if len(parts) > 1 else y


def _conv_axes(ctx: _Ctx, kind: str):
    """Axis groups shifted together by a convolution, per spatial dim (see ``_KState`` layouts)."""
    k = ctx.nsp
    if ctx.spatial == "full" and not (kind == "self" and ctx.selfdiag):
        if kind == "pair":
            return [(2 + i, 3 + k + i) for i in range(k)]
        return [(2 + i, 2 + k + i) for i in range(k)]
    off = 3 if kind == "pair" else 2
    return [(off + i,) for i in range(k)]

