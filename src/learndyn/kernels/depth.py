r"""Kernels of one network at many depths in one compiled pass (Xiao, Pennington & Schoenholz 2020, Sec. 2:
spectra against depth).

A network ``[readin, Repeat(block, r), *head]`` (what :func:`~learndyn.kernels.fcn` and
:func:`~learndyn.kernels.cnn` build) is run as: the readin, then per requested depth the extra repeated
blocks and a readout through the head layers -- a ``lax.scan`` over segments, so a sweep compiles once
whatever its depths, and its kernels are exactly those of the same network built with each depth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..results import InvalidInputError
from .layers import Repeat
from .state import _Ctx, _rescale

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network


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


def sweep_depths(net, x, repeats: Sequence[int], *, want_ntk: bool = True, cache=None) -> list:
    """Kernels of the rows of ``x`` with themselves for ``net`` with its :class:`Repeat` block run ``r``
    times, for each ``r`` in ``repeats`` (non-decreasing); see :meth:`Network.depth_sweep`.

    ``cache``: a function ``(key, build) -> value`` holding the compiled sweeper (default: build anew)."""
    if len(net.layers) < 2 or not isinstance(net.layers[1], Repeat):
        raise InvalidInputError("depth_sweep: expected a network [readin, Repeat(...), *head] as built by fcn / cnn")
    reps = [int(r) for r in repeats]
    if not reps or any(r < 0 for r in reps) or any(b < a for a, b in zip(reps, reps[1:])):
        raise InvalidInputError(f"repeats: must be a non-empty non-decreasing list of integers >= 0, got {repeats!r}")
    x = net._check_input(x, "x")
    key = ("depth_sweep", x.shape[1:], len(x.shape), bool(want_ntk))
    build = lambda: _DepthSweeper(net, x.shape, bool(want_ntk))
    sweeper = build() if cache is None else cache(net, key, build)
    counts = np.diff(np.asarray([0] + reps)).astype(np.int32)
    ks, ts, eks, ets = sweeper.run(jnp.asarray(x), jnp.asarray(counts))
    ks, eks = np.asarray(ks), np.asarray(eks)
    ts = None if ts is None else np.asarray(ts)
    out = []
    with np.errstate(over="ignore"):
        for i in range(len(reps)):
            out.append((np.ldexp(ks[i], int(eks[i])), None if ts is None else np.ldexp(ts[i], int(ets[i]))))
    return out
