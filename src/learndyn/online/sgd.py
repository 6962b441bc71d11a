r"""Finite-N online SGD for the teacher-student setup, vectorised over seeds (Goldt et al. 2019, eqs. (2)-(3)).

One SGD step draws a fresh input ``x ~ N(0, I_N)`` and label noise ``zeta ~ N(0, 1)`` and applies the
update rules of :mod:`learndyn.online.conventions` (spec ``teacher_student.md`` §1.2), with
``Delta = phi(x) - y``, ``y = sum_m v*_m g(rho_m) + sigma zeta``:

.. math::

    w_k &\leftarrow (1 - \kappa/N)\, w_k - \frac{\eta}{\sqrt N}\, \frac1B \sum_{b=1}^{B} v_k\, g'(\lambda_k^b)\,\Delta^b\, x^b \\
    v_k &\leftarrow (1 - \kappa/N)\, v_k - \frac{\eta_2}{N}\, \frac1B \sum_{b=1}^{B} g(\lambda_k^b)\, \Delta^b
    \qquad\text{(only when the second layer is trained)}

(mini-batch size ``B``, 1 by default: time still advances by ``1/N`` per step, spec §1.2). Time is
``alpha = steps / N``; the order parameters ``Q = w w^T/N``, ``R = w w*^T/N`` and ``v`` are recorded at
the requested ``alpha``, and the generalisation error ``eps_g = E[(phi - y_noiseless)^2]/2`` (paper eq. (4))
both from the order parameters (``u^T I2(C) u / 2``, spec §2.3; exact for erf, ReLU, linear) and,
optionally, on a held-out test set (any activation).

Implementation: the steps run inside one compiled XLA loop, ``jax.vmap``-ed over seeds, over blocks of up
to 32 steps whose inputs are drawn at once (option ``pipeline``: the next block's inputs are drawn beside the
current block's updates; measured slower since the seeds run one shard per CPU core, see :func:`_seed_shards`).
The steps of a block are applied one after the other (:func:`_make_step`); an alternative, ``mode="gram"``,
gets every step's fields from the block-start fields and the inputs' Gram matrix (:func:`_make_block`): fewer, larger operations, but more arithmetic,
and measured slower on a CPU (see :func:`_static_for`). Python only sees the recording points (and splits
long intervals so that a progress bar can move and Ctrl-C is handled promptly). Random inputs come from a counter-based
generator: the SplitMix64 finaliser of ``(seed offset + counter * golden ratio)`` gives 64 random bits,
which Box-Muller turns into two normals (float32 arithmetic, absolute error < 1e-6, ``|x| <= 6.66``; see
:func:`_normals_from_words`). Weights and all arithmetic are float64.
``rng="threefry"`` uses ``jax.random.normal`` (float64) instead: slower, for cross-checks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax

from ..resources import check_memory
from ..results import Result, check_output_path, problem_attrs, rebuild_problem
from . import conventions
from .initial import InitialWeights, initial_weights
from .ode import default_alphas, generalisation_error_arrays
from .problem import OrderParameters, Problem, _positive_number

__all__ = ["simulate", "Simulation", "sgd_update", "SEED_STATUS", "generalisation_error_batch", "simulate_bytes"]

#: per-seed status values
SEED_STATUS = {
    "ok": "simulated to the last requested alpha",
    "diverged": "weights or error became non-finite or exploded (learning rate above the stability limit?)",
    "interrupted": "the run was interrupted (Ctrl-C) before the last requested alpha",
}

_GOLDEN = 0x9E3779B97F4A7C15
_TEST_SALT = 0x7E57_5E7_0F_7E57


# ------------------------------------------------------------------------------------------
# random numbers: counter-based SplitMix64 + Box-Muller
# ------------------------------------------------------------------------------------------
def _mix64(z):
    """SplitMix64 output function (Steele, Lea & Flood 2014), on uint64 arrays."""
    z = (z ^ (z >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> 27)) * jnp.uint64(0x94D049BB133111EB)
    return z ^ (z >> 31)


def _seed_offset(seed: int, salt: int = 0) -> np.uint64:
    """A pseudo-random 64-bit stream offset for a seed (host-side SplitMix64)."""
    mask = (1 << 64) - 1
    z = (int(seed) * _GOLDEN + salt + _GOLDEN) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return np.uint64(z ^ (z >> 31))


_F32 = np.float32


def _normals_from_words(z):
    r"""``2 n`` standard normals (float64) from ``n`` uint64 random words (last axis), by Box-Muller.

    The high 32 bits give ``q = (m + 1/2) 2^-31`` (``m``: their top 31 bits), uniform in (0, 1), and the
    radius ``r = sqrt(-2 ln q)``; ``-ln q`` is the series ``p + p^2/2 + ... + p^8/8`` in the exactly formed
    ``p = 1 - q`` where ``p < 1/16`` (so small radii keep their relative precision) and ``log`` otherwise.
    The low 32 bits give the angle ``theta = (k + 1/2 + phi) pi/2``: quadrant ``k`` from the top two bits,
    ``phi`` in (-1/2, 1/2) from the other 30; ``sin`` and ``cos`` of ``phi pi/2`` are Taylor polynomials
    (truncation error < 2e-9). Returns ``[r cos theta | r sin theta]`` along the last axis. Arithmetic is
    float32: absolute error < 1e-6 against float64 Box-Muller of the same bits; ``|x| <= 6.66`` (the normal's
    mass beyond is 2.7e-11).
    """
    hi = (z >> 32).astype(jnp.uint32)
    lo = z.astype(jnp.uint32)
    m = (hi >> 1).astype(jnp.int32)
    q = (m.astype(jnp.float32) + _F32(0.5)) * _F32(2.0**-31)
    p = ((jnp.int32(2**31 - 1) - m).astype(jnp.float32) + _F32(0.5)) * _F32(2.0**-31)  # 1 - q, exactly
    series = _F32(1 / 8)
    for k in (7, 6, 5, 4, 3, 2, 1):
        series = _F32(1 / k) + series * p
    r = jnp.sqrt(_F32(2.0) * jnp.where(p < _F32(1 / 16), p * series, -jnp.log(q)))
    quadrant = (lo >> 30).astype(jnp.int32)
    f = ((lo & jnp.uint32(0x3FFFFFFF)).astype(jnp.int32).astype(jnp.float32) + _F32(0.5)) * _F32(2.0**-30)
    phi = (f - _F32(0.5)) * _F32(math.pi / 2)  # |phi| < pi/4
    phi2 = phi * phi
    s = _F32(1 / 362880)
    for c in (-1 / 5040, 1 / 120, -1 / 6, 1.0):
        s = _F32(c) + s * phi2
    s = s * phi
    c_ = _F32(-1 / 3628800)
    for c in (1 / 40320, -1 / 720, 1 / 24, -1 / 2, 1.0):
        c_ = _F32(c) + c_ * phi2
    # angle pi/4 + phi, then rotate by the quadrant
    ca = (c_ - s) * _F32(1 / math.sqrt(2))
    sa = (c_ + s) * _F32(1 / math.sqrt(2))
    odd = (quadrant & 1) == 1
    neg = jnp.where((quadrant & 2) == 2, _F32(-1.0), _F32(1.0)) * r
    X = jnp.where(odd, -sa, ca) * neg
    Y = jnp.where(odd, ca, sa) * neg
    return jnp.concatenate([X, Y], axis=-1).astype(jnp.float64)


def _counter_normals(offset, counter0, n_words: int):
    """``2 n_words`` normals from the stream at ``offset``, counters ``counter0 .. counter0 + n_words - 1``."""
    lane = jnp.arange(n_words, dtype=jnp.uint64)
    z = _mix64(offset + (counter0 + lane) * jnp.uint64(_GOLDEN))
    return _normals_from_words(z)


# ------------------------------------------------------------------------------------------
# one SGD step, exposed for tests and users (the simulator's own code path)
# ------------------------------------------------------------------------------------------
def sgd_update(problem: Problem, w, v, w_teacher, v_teacher, x, zeta=0.0):
    """One SGD step of the conventions (spec §1.2), computed by the simulator's own step
    (:func:`_make_step`).

    ``w`` (K x N), ``v`` (K), teacher ``w_teacher`` (M x N), ``v_teacher`` (M); inputs ``x`` (N,) or a
    mini-batch (B, N); label noise ``zeta`` (scalar or (B,)), so ``y = v*.g(w* x / sqrt N) + sigma zeta``.
    Returns the new ``(w, v)``:
    ``w_k <- (1 - kappa/N) w_k - (eta/sqrt N) mean_b[v_k g'(lambda_k) Delta x]``,
    ``v_k <- (1 - kappa/N) v_k - (eta_2/N) mean_b[g(lambda_k) Delta]`` (second layer only if trained).
    """
    w = jnp.asarray(w, dtype=jnp.float64)
    K, N = w.shape
    x = jnp.atleast_2d(jnp.asarray(x, dtype=jnp.float64))
    B = x.shape[0]
    zeta = jnp.broadcast_to(jnp.atleast_1d(jnp.asarray(zeta, dtype=jnp.float64)), (B,))
    st = _Static(g=problem.g, K=K, M=problem.M, N=N, batch=B, train_v=bool(problem.train_second_layer),
                 decay=problem.weight_decay > 0, rng="splitmix", block=1, mode="step")
    params = tuple(jnp.float64(p) for p in (problem.lr, problem.eta2, problem.sigma, problem.weight_decay))
    w_new, v_new, _ = _make_step(st)(w[None], jnp.asarray(v, dtype=jnp.float64)[None],
                                     jnp.asarray(w_teacher, dtype=jnp.float64)[None],
                                     jnp.asarray(v_teacher, dtype=jnp.float64)[None], x[None], zeta[None],
                                     jnp.zeros(1, jnp.int64), jnp.full(1, -1, jnp.int64), params)
    w_new, v_new = w_new[0], v_new[0]
    return w_new, v_new


# ------------------------------------------------------------------------------------------
# generalisation error from order parameters (vectorised over any batch)
# ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _eg_function(key: Problem):
    return jax.jit(jax.vmap(lambda Q, R, T, v, vt: generalisation_error_arrays(key, Q, R, T, v, vt)))


def generalisation_error_batch(problem: Problem, Q, R, T, v, v_teacher) -> np.ndarray:
    """``eps_g = u^T I2(C) u / 2``, ``u = (v, -v*)`` (spec §2.3) for a batch of states (leading axis).

    Returns NaN where the activation has no usable Gaussian integral (use a test set instead).
    """
    Q, R, T, v, vt = (np.asarray(a, dtype=np.float64) for a in (Q, R, T, v, v_teacher))
    key = problem.replace(lr=1.0, lr2=None, sigma=0.0, weight_decay=0.0)
    try:
        return np.asarray(_eg_function(key)(Q, R, T, v, vt))
    except NotImplementedError:
        return np.full(Q.shape[0], np.nan)


# ------------------------------------------------------------------------------------------
# compiled simulator: blocks of consecutive steps
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Static:
    """Everything that shapes the compiled program (``block``: SGD steps whose inputs are drawn at once)."""

    g: Any
    K: int
    M: int
    N: int
    batch: int
    train_v: bool
    decay: bool
    rng: str
    block: int
    unroll: int = 1
    pipeline: bool = True  # draw block i+1 beside the updates of block i (see _compiled)
    mode: str = "step"  # "step": _make_step, one step after the other; "gram": _make_block


def _words_per_step(st: "_Static") -> int:
    return (st.batch * st.N + st.batch + 1) // 2


def _draw(st: "_Static", offset, t):
    """The ``B N + B`` normals of step ``t`` (int64, per seed) of the streams at ``offset`` (uint64, per seed).

    Shapes: ``offset``, ``t``: (S,) -> (S, 2 * words). The counter of word ``j`` of step ``t`` is
    ``t * words + j``, so every (seed, step) has its own disjoint block of the stream.
    """
    n_words = _words_per_step(st)
    if st.rng == "splitmix":
        lane = jnp.arange(n_words, dtype=jnp.uint64)
        counters = t[:, None].astype(jnp.uint64) * jnp.uint64(n_words) + lane[None, :]
        return _normals_from_words(_mix64(offset[:, None] + counters * jnp.uint64(_GOLDEN)))
    return jax.vmap(lambda off, tt: _threefry_step(off, tt, 2 * n_words))(offset, t)


def _threefry_step(off, t, n):
    key = jax.random.wrap_key_data(jnp.stack([off >> 32, off & jnp.uint64(0xFFFFFFFF)]).astype(jnp.uint32))
    return jax.random.normal(jax.random.fold_in(key, t), (n,), dtype=jnp.float64)


def _draw_block(st: "_Static", offset, t0):
    """The normals of steps ``t0 .. t0 + block - 1`` of one seed's stream, (block, 2 * words): row ``s`` is
    exactly ``_draw``'s step ``t0 + s`` (consecutive steps are consecutive counters, one vectorised draw)."""
    n_words, L = _words_per_step(st), st.block
    if st.rng == "splitmix":
        lane = jnp.arange(L * n_words, dtype=jnp.uint64)
        z = _mix64(offset + (t0.astype(jnp.uint64) * jnp.uint64(n_words) + lane) * jnp.uint64(_GOLDEN))
        return _normals_from_words(z.reshape(L, n_words))
    return jax.vmap(lambda tt: _threefry_step(offset, tt, 2 * n_words))(t0 + jnp.arange(L, dtype=jnp.int64))


def _make_block(st: "_Static"):
    r"""``L = st.block`` consecutive SGD steps of one seed, given their inputs, as a few matrix products.

    With ``c = 1 - kappa/N`` (1 without weight decay) and ``d_{s,b} = v(s) g'(lambda_{s,b}) Delta_{s,b}``
    (a K-vector per sample ``b`` of step ``s``), the first-layer rule unrolls to
    ``w(t) = c^t w(0) - eta/(B sqrt N) sum_{s<t} c^{t-1-s} sum_b d_{s,b} x_{s,b}``, so the fields of step ``t``
    need only the block-start fields ``P = X w(0)^T / sqrt N`` and the Gram matrix ``G = X X^T / N`` of the
    block's inputs ``X`` (rows ``(s, b)``):

    .. math:: \lambda_{t,b'} = c^t P_{t,b'} - \frac{\eta}{B} A_{t,b'}, \qquad
              A_{t,b'} = \sum_{s<t} c^{t-1-s} \sum_b G_{(t,b'),(s,b)}\, d_{s,b},

    kept for all later rows by ``A <- c A + G_{:,(t,.)} d_t`` after step ``t`` (O(L B^2 K) per step). The
    second layer, the errors and the divergence flag run sequentially over the L steps on these K-vectors;
    afterwards ``w <- c^m w(0) - eta/(B sqrt N) sum_s c^{m-1-s} D_s^T X_s`` by one product. Only the first
    ``m <= L`` steps are applied (the rest are masked), so records can fall anywhere. This is algebraically
    the step-by-step rule of :func:`sgd_update`; only rounding differs.
    """
    N, B, L, K, M, g = st.N, st.batch, st.block, st.K, st.M, st.g
    R = L * B
    sqrt_n = math.sqrt(N)

    def block(w, v, wt, vt, x, zeta, t0, bad, m, params):
        """One seed: ``x`` (R, N) rows ``(s, b)``, ``zeta`` (L, B); returns ``(w, v, bad)`` after ``m`` steps."""
        lr, lr2, sigma, kappa = params
        c = 1.0 - kappa / N
        PR = x @ jnp.concatenate([w, wt]).T / sqrt_n  # (R, K + M): block-start student and teacher fields
        G = (x @ x.T / N).reshape(L, B, L, B) if L > 1 else None
        P = PR[:, :K].reshape(L, B, K)
        y = (g(PR[:, K:]) @ vt).reshape(L, B) + sigma * zeta

        def step(carry, inp):
            A, v, ct, bad = carry
            s, Ps, ys, Gs = inp
            lam = Ps if L == 1 else ct * Ps - (lr / B) * A[s]  # (B, K)
            gl = g(lam)
            delta = gl @ v - ys  # (B,)
            active = s < m
            d = jnp.where(active, v * g.grad(lam) * delta[:, None], 0.0)  # (B, K)
            ce = jnp.where(active, c, 1.0) if st.decay else None
            if L > 1:
                upd = jnp.einsum("blc,bk->lck", Gs, d)
                A = ce * A + upd if st.decay else A + upd
            if st.train_v:
                v_new = (c * v if st.decay else v) - (lr2 / N) * (gl.T @ delta) / B
                v = jnp.where(active, v_new, v)
            if st.decay:
                ct = ct * ce
            ok = jnp.all(jnp.isfinite(delta))
            bad = jnp.where((bad < 0) & ~ok & active, t0 + s, bad)
            return (A, v, ct, bad), d

        A0 = jnp.zeros((L, B, K) if L > 1 else (1,))
        xs = (jnp.arange(L), P, y, G if L > 1 else jnp.zeros(L))
        (_, v, ct, bad), D = lax.scan(step, (A0, v, jnp.ones((), w.dtype), bad), xs, unroll=st.unroll)
        if st.decay:
            s = jnp.arange(L)
            D = D * jnp.where(s < m, c ** jnp.maximum(m - 1 - s, 0), 0.0)[:, None, None]
            w = ct * w
        w = w - (lr / (B * sqrt_n)) * (D.reshape(R, K).T @ x)
        return w, v, bad

    return block


def _make_step(st: "_Static"):
    """One SGD step of all seeds at once, the rule of :func:`sgd_update` written out directly: ``x``
    (S, B, N), ``zeta`` (S, B), step index ``t`` (S,); returns ``(w, v, bad)``."""
    N, B, g = st.N, st.batch, st.g
    sqrt_n = math.sqrt(N)

    def step(w, v, wt, vt, x, zeta, t, bad, params):
        lr, lr2, sigma, kappa = params
        lam = jnp.einsum("sbn,skn->sbk", x, w) / sqrt_n
        rho = jnp.einsum("sbn,smn->sbm", x, wt) / sqrt_n
        y = jnp.einsum("sbm,sm->sb", g(rho), vt) + sigma * zeta
        gl = g(lam)
        delta = jnp.einsum("sbk,sk->sb", gl, v) - y  # (S, B)
        coef = v[:, None, :] * g.grad(lam) * delta[:, :, None]  # (S, B, K)
        dw = coef[:, 0, :, None] * x[:, 0, None, :] if B == 1 else jnp.einsum("sbk,sbn->skn", coef, x) / B
        if st.decay:
            w = (1.0 - kappa / N) * w
        w = w - (lr / sqrt_n) * dw
        if st.train_v:
            dv = jnp.einsum("sbk,sb->sk", gl, delta) / B
            if st.decay:
                v = (1.0 - kappa / N) * v
            v = v - (lr2 / N) * dv
        ok = jnp.all(jnp.isfinite(delta), axis=1)
        return w, v, jnp.where((bad < 0) & ~ok, t, bad)

    return step


def _split_normals(st: "_Static", xz):
    """(L, >= B N + B) normals of L steps -> inputs (L B, N) and label noise (L, B)."""
    N, B = st.N, st.batch
    L = xz.shape[0]
    return xz[:, : B * N].reshape(L * B, N), xz[:, B * N: B * N + B]


@functools.lru_cache(maxsize=16)
def _compiled(st: _Static, shards: int = 1):
    """``(advance, overlaps, place)``: the compiled loop over ``st``'s seeds (``st`` describes ONE shard when
    ``shards > 1``: the seeds are split evenly over ``shards`` CPU devices, each running its part of the loop
    on its own core, :func:`_seed_shards`), the order parameters, and ``place`` (puts a state on the devices)."""
    block = _make_block(st)

    def one_seed(w, v, wt, vt, xz, t, bad, m, params):
        x, zeta = _split_normals(st, xz)
        w, v, bad = block(w, v, wt, vt, x, zeta, t, bad, m, params)
        return w, v, t + m, bad

    step = _make_step(st)
    split = jax.vmap(lambda xz: _split_normals(st, xz))

    def step_by_step(w, v, wt, vt, xz, t, bad, m, params):
        x, zeta = split(xz)  # (S, L B, N), (S, L, B)
        B = st.batch

        def one(s, carry):
            xs = lax.dynamic_slice_in_dim(x, s * B, B, axis=1)
            zs = lax.dynamic_index_in_dim(zeta, s, axis=1, keepdims=False)
            return step(*carry[:2], wt, vt, xs, zs, t + s, carry[2], params)

        w, v, bad = lax.fori_loop(0, m, one, (w, v, bad))
        return w, v, t + m, bad

    if st.mode == "step":
        all_seeds = step_by_step
    else:
        all_seeds = jax.vmap(one_seed, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None))
    draw = jax.vmap(lambda off, t: lax.optimization_barrier(_draw_block(st, off, t)))

    def advance(state, n, params):
        w, v, wt, vt, offset, t, bad = state
        n_blocks = (n + st.block - 1) // st.block

        if st.pipeline:
            # the next block's inputs are drawn in the same loop iteration as this block's updates: the two
            # are independent, so XLA may run them concurrently (the draw is wasted after the last block)
            def body(i, carry):
                w, v, t, bad, xz = carry
                m = jnp.minimum(st.block, n - i * st.block)
                xz_next = draw(offset, t + st.block)
                return (*all_seeds(w, v, wt, vt, xz, t, bad, m, params), xz_next)

            w, v, t, bad, _ = lax.fori_loop(0, n_blocks, body, (w, v, t, bad, draw(offset, t)))
        else:
            def body(i, carry):
                w, v, t, bad = carry
                m = jnp.minimum(st.block, n - i * st.block)
                return all_seeds(w, v, wt, vt, draw(offset, t), t, bad, m, params)

            w, v, t, bad = lax.fori_loop(0, n_blocks, body, (w, v, t, bad))
        return (w, v, wt, vt, offset, t, bad)

    def overlaps(state):
        w, v, wt = state[0], state[1], state[2]
        Q = jnp.einsum("skn,sln->skl", w, w) / st.N
        R = jnp.einsum("skn,smn->skm", w, wt) / st.N
        big = jnp.maximum(jnp.max(jnp.abs(jnp.diagonal(Q, axis1=1, axis2=2)), axis=1), jnp.max(jnp.abs(v), axis=1))
        return Q, R, v, big

    if shards == 1:
        return jax.jit(advance, donate_argnums=0), jax.jit(overlaps), lambda state: state
    from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: PLC0415

    mesh = Mesh(np.array(jax.devices("cpu")[:shards]), ("seed",))
    spec = PartitionSpec("seed")
    sharded = jax.shard_map(advance, mesh=mesh, in_specs=((spec,) * 7, PartitionSpec(), PartitionSpec()),
                            out_specs=(spec,) * 7, check_vma=False)  # seeds never interact
    where = NamedSharding(mesh, spec)
    return (jax.jit(sharded, donate_argnums=0), jax.jit(overlaps),
            lambda state: tuple(jax.device_put(a, where) for a in state))


def _seed_shards(S: int) -> int:
    """How many CPU devices the seeds are split over: the largest number <= the CPU devices JAX exposes
    (``learndyn`` asks for one per core, see ``LEARNDYN_CPU_DEVICES``) that divides ``S`` evenly; 1 when
    JAX's default backend is not the CPU.  Each device runs its seeds' loop on its own thread -- measured
    (2 cores, N=500, 16 seeds): 3.2 us per step and seed in one program, 2.2 us in two shards; inside one
    program XLA's intra-op threads gain little on these small operations.
    """
    if jax.default_backend() != "cpu":
        return 1
    n = len(jax.devices("cpu"))
    return max(d for d in range(1, min(n, S) + 1) if S % d == 0)


def _program(problem: Problem, N: int, S: int, B: int, rng: str = "splitmix"):
    """``(static, advance, overlaps, place)`` for ``S`` seeds, as :func:`simulate` runs them."""
    shards = _seed_shards(S)
    st = _static_for(problem, N, S // shards, B, rng)
    return (st, *_compiled(st, shards))


#: mode "gram": steps per block at most (more steps make the Gram matrix, L B x L B, dominate the cost)
_MAX_BLOCK = 16


def _static_for(problem: Problem, N: int, S: int, B: int, rng: str = "splitmix", mode: str = "step") -> _Static:
    """The compiled program's shape for ``S`` seeds and mini-batch ``B`` (as :func:`simulate` runs it).

    ``mode="step"`` (default) applies the steps one after the other (:func:`_make_step`) to blocks of inputs
    drawn ahead; ``mode="gram"`` runs each block through its Gram matrix (:func:`_make_block`). Measured on a
    2-core x86 CPU (CPU time per step and seed, erf, M=2, K=4, both layers): N=500, 1 seed: step 4.2 us,
    gram 4.6 us; 16 seeds: 3.3 vs 4.1 us; N=5000, 16 seeds: 34 vs 54 us -- the Gram matrix adds L N work
    per step that the per-step overhead it saves does not repay on a CPU.
    """
    if mode == "gram":
        block, unroll = _block_length(S, N, B), (4 if S < 4 else 1)
    else:
        per = S * (B * N + B)  # numbers drawn per step, all seeds
        block, unroll = min(32, max(2**16 // per, min(4, 2**20 // per), 1)), 1
    # drawing the next block beside the current updates (pipeline=True) paid off in one XLA program on 2 cores
    # (session 2, below), but not since the seeds run one shard per CPU device: N=500, 1 seed, alternating runs:
    # 4.7 us with pipeline=False (block 16 or 32) against 6.4 us with it; 16 seeds: 1.8 vs 2.1 us.
    # Earlier: drawing ahead paid off (wall clock, 2 cores) only up to B N = 500:
    # 1 seed: 4.1 vs 4.9 us at N=500, but 8.5 vs 6.9 at N=700 and 9.9 vs 6.9 at N=1000 (XLA then splits the
    # draw over both cores, which the concurrent updates slow down)
    return _Static(g=problem.g, K=problem.K, M=problem.M, N=N, batch=B, train_v=bool(problem.train_second_layer),
                   decay=problem.weight_decay > 0, rng=rng, block=block, unroll=unroll, mode=mode,
                   pipeline=False)


def _block_length(S: int, N: int, B: int) -> int:
    """Mode "gram": SGD steps per block: up to ``_MAX_BLOCK`` (and at most ``_MAX_BLOCK`` samples per block, so a large
    mini-batch runs one step per block), with at most about 2^19 drawn numbers (4 MiB) for all seeds
    (measured: at N = 5000 with 16 seeds, 8 steps per block beat 16)."""
    return int(max(1, min(_MAX_BLOCK // B, 2**19 // max(1, S * (B * N + B)))))


@functools.lru_cache(maxsize=16)
def _compiled_test_error(g, K: int, M: int, N: int, n_blocks: int, block: int):
    """Held-out test error ``mean_p (phi(x_p) - y_noiseless(x_p))^2 / 2`` on a fixed counter-based test set."""
    n_words = (block * N + 1) // 2
    offset = jnp.uint64(_seed_offset(0, _TEST_SALT))

    def run(w, v, wt, vt):
        def body(i, acc):
            x = _counter_normals(offset, i.astype(jnp.uint64) * jnp.uint64(n_words), n_words)[: block * N]
            x = x.reshape(block, N)
            lam = jnp.einsum("pn,skn->spk", x, w) / math.sqrt(N)
            rho = jnp.einsum("pn,smn->spm", x, wt) / math.sqrt(N)
            err = jnp.einsum("spk,sk->sp", g(lam), v) - jnp.einsum("spm,sm->sp", g(rho), vt)
            return acc + jnp.sum(err * err, axis=1)

        tot = lax.fori_loop(0, n_blocks, body, jnp.zeros(w.shape[0]))
        return 0.5 * tot / (n_blocks * block)

    return jax.jit(run)


# ------------------------------------------------------------------------------------------
# result
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Simulation(Result):
    """Result of :func:`simulate`.

    Arrays over ``(seed, alpha, ...)``: ``Q`` (S, A, K, K), ``R`` (S, A, K, M), ``v`` (S, A, K),
    ``eg`` (S, A) from the order parameters (NaN where no Gaussian integral is available),
    ``eg_test`` (S, A) on the held-out test set (``None`` if ``test_set_size == 0``); per seed:
    ``T`` (S, M, M), ``v_teacher`` (S, M), ``seed_status`` and ``diverged_alpha`` (NaN unless diverged).
    ``alpha = steps / N`` are the recorded times. ``status`` is ``"success"``, ``"diverged"`` (some seed
    diverged; the others continued) or ``"interrupted"``; data recorded before a failure is kept and a
    diverged seed's later records are NaN. ``save_error`` is ``""``, or says why ``save_path`` was not
    written (the result itself is complete).
    """

    problem: Problem
    N: int
    seeds: np.ndarray
    alpha: np.ndarray
    steps: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    eg: np.ndarray
    eg_test: np.ndarray | None
    T: np.ndarray
    v_teacher: np.ndarray
    initial_states: tuple
    seed_status: np.ndarray
    diverged_alpha: np.ndarray
    status: str = "success"
    message: str = ""
    batch_size: int = 1
    test_set_size: int = 0
    init: str = "large"
    rng: str = "splitmix"
    wall_time: float = float("nan")
    save_error: str = ""

    @property
    def success(self) -> bool:
        return self.status == "success"

    def _index(self, seed: int) -> int:
        hits = np.flatnonzero(self.seeds == seed)
        if hits.size == 0:
            raise ValueError(f"seed: {seed!r} was not simulated; seeds are {self.seeds.tolist()}")
        return int(hits[0])

    def initial_state(self, seed: int | None = None) -> OrderParameters:
        """The exact initial order parameters of ``seed`` (default: the first seed), for
        ``online.integrate(problem, sim.initial_state(seed), ...)``."""
        return self.initial_states[0 if seed is None else self._index(seed)]

    def state(self, seed: int, index: int = -1) -> OrderParameters:
        """Order parameters of ``seed`` at record ``index``."""
        s = self._index(seed)
        Q = self.Q[s, index]
        return OrderParameters(Q=0.5 * (Q + Q.T), R=self.R[s, index], T=self.T[s], v=self.v[s, index],
                               v_teacher=self.v_teacher[s])

    @property
    def eg_mean(self) -> np.ndarray:
        """Seed average of ``eg`` (or of ``eg_test`` where ``eg`` is unavailable), ignoring diverged seeds."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all seeds diverged at some times
            return np.nanmean(self._eg_best, axis=0)

    @property
    def eg_sem(self) -> np.ndarray:
        """Standard error of the seed average (``std / sqrt(n_seeds)``; NaN for one seed)."""
        e = self._eg_best
        n = np.sum(np.isfinite(e), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanstd(e, axis=0, ddof=1) / np.sqrt(n)

    @property
    def _eg_best(self) -> np.ndarray:
        if np.all(np.isnan(self.eg)) and self.eg_test is not None:
            return self.eg_test
        return self.eg

    def to_xarray(self) -> xr.Dataset:
        K, M = self.problem.K, self.problem.M
        Q0 = np.stack([s.Q for s in self.initial_states])
        R0 = np.stack([s.R for s in self.initial_states])
        v0 = np.stack([s.v for s in self.initial_states])
        data = {
            "eg": (("seed", "alpha"), self.eg, {"long_name": "generalisation error from the order parameters",
                                               "definition": "E[(phi - y_noiseless)^2]/2"}),
            "Q": (("seed", "alpha", "k", "l"), self.Q, {"long_name": "student-student overlap w_k.w_l/N"}),
            "R": (("seed", "alpha", "k", "n"), self.R, {"long_name": "student-teacher overlap w_k.w*_n/N"}),
            "v": (("seed", "alpha", "k"), self.v, {"long_name": "student second-layer weights"}),
            "T": (("seed", "n", "m"), self.T, {"long_name": "teacher-teacher overlap"}),
            "v_teacher": (("seed", "n"), self.v_teacher, {"long_name": "teacher second-layer weights"}),
            "Q0": (("seed", "k", "l"), Q0, {"long_name": "exact initial Q"}),
            "R0": (("seed", "k", "n"), R0, {"long_name": "exact initial R"}),
            "v0": (("seed", "k"), v0, {"long_name": "initial v"}),
            "steps": (("alpha",), self.steps.astype(np.int64)),
            "seed_status": (("seed",), np.asarray(self.seed_status, dtype=str)),
            "diverged_alpha": (("seed",), self.diverged_alpha),
        }
        if self.eg_test is not None:
            data["eg_test"] = (("seed", "alpha"), self.eg_test,
                               {"long_name": f"generalisation error on {self.test_set_size} held-out inputs"})
        ds = xr.Dataset(
            data,
            coords={"seed": self.seeds, "alpha": self.alpha, "k": np.arange(K), "l": np.arange(K),
                    "n": np.arange(M), "m": np.arange(M)},
            attrs=problem_attrs(self.problem, kind="online.sgd", N=int(self.N), status=self.status,
                                message=self.message, batch_size=int(self.batch_size),
                                test_set_size=int(self.test_set_size), init=str(self.init), rng=self.rng,
                                wall_time_s=float(self.wall_time)),
        )
        ds["alpha"].attrs["long_name"] = "time alpha = steps / N"
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Simulation":
        """The simulation stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        a = ds.attrs
        T, vt = ds["T"].values, ds["v_teacher"].values
        initial_states = tuple(
            OrderParameters(Q=ds["Q0"].values[s], R=ds["R0"].values[s], T=T[s], v=ds["v0"].values[s],
                            v_teacher=vt[s]) for s in range(ds.sizes["seed"]))
        return cls(
            problem=rebuild_problem(ds, Problem), N=int(a["N"]), seeds=ds["seed"].values,
            alpha=ds["alpha"].values, steps=ds["steps"].values, Q=ds["Q"].values, R=ds["R"].values,
            v=ds["v"].values, eg=ds["eg"].values, eg_test=ds["eg_test"].values if "eg_test" in ds else None,
            T=T, v_teacher=vt, initial_states=initial_states, seed_status=ds["seed_status"].values.astype(str),
            diverged_alpha=ds["diverged_alpha"].values, status=str(a.get("status", "success")),
            message=str(a.get("message", "")), batch_size=int(a.get("batch_size", 1)),
            test_set_size=int(a.get("test_set_size", 0)), init=str(a.get("init", "large")),
            rng=str(a.get("rng", "splitmix")), wall_time=float(a.get("wall_time_s", np.nan)))


# ------------------------------------------------------------------------------------------
# simulate
# ------------------------------------------------------------------------------------------
def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def _check_seeds(seeds: Any) -> np.ndarray:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds: an integer means the number of seeds and must be >= 1, got {seeds}")
        return np.arange(int(seeds))
    try:
        arr = np.asarray(list(seeds))
    except TypeError:
        raise ValueError(f"seeds: expected a number of seeds or a sequence of integer seeds, got {seeds!r}") from None
    if arr.size == 0 or arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
        raise ValueError(f"seeds: expected a non-empty sequence of non-negative integers, got {seeds!r}")
    if np.any(arr > np.iinfo(np.int64).max):
        raise ValueError(f"seeds: must be below 2**63 (stored as int64), got {arr.max()}")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"seeds: contains duplicates: {arr.tolist()}")
    return arr.astype(np.int64)


def simulate_bytes(problem: Problem, N: int, n_seeds: int, n_records: int, batch_size: int = 1,
                   test_set_size: int = 0) -> int:
    """Estimated peak memory (bytes) of :func:`simulate`, from the sizes alone.

    The weights ``(K + M) N`` per seed are held about four times at the peak (the per-seed draws kept
    for the initial records, their stacked copy, the compiled loop's input and output states), plus the
    inputs drawn per block (at most ~2^16 numbers for all seeds), the test-set blocks, and the recorded
    series ``(K^2 + K M + K + 2)`` per seed and record, about three times (the buffers, the result and
    its ``eps_g`` evaluation). Measured: N=1e6, 4 seeds, K=4, M=2: peak resident memory +677 MB, estimate
    832 MB (1.23x).
    """
    K, M, S = problem.K, problem.M, n_seeds
    weights = 4 * S * (K + M) * N
    draws = 2 * max(2**16, S * batch_size * (N + 1))
    test = 0
    if test_set_size > 0:
        block = int(min(test_set_size, max(64, 2**22 // (N * S))))
        test = 2 * block * N + 4 * S * block * (K + M)
    records = 3 * S * n_records * (K * K + K * M + K + 2)
    return 8 * (weights + draws + test + records)


def _record_steps(N: int, alphas, alpha_max) -> np.ndarray:
    if alphas is None:
        if alpha_max is None:
            raise ValueError("alpha_max: give alpha_max or alphas")
        am = float(alpha_max)
        if not (np.isfinite(am) and am > 0):
            raise ValueError(f"alpha_max: must be finite and > 0, got {alpha_max!r}")
        alphas = default_alphas(am, n=60, alpha_min=min(0.1, am / 10))
    try:
        a = np.asarray(alphas, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError("alphas: must be a 1-D array of times") from None
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError("alphas: must be a non-empty array of finite times >= 0")
    if np.any(np.diff(a) <= 0):
        raise ValueError("alphas: times must be strictly increasing")
    if alpha_max is not None and a[-1] > float(alpha_max) * (1 + 1e-12):
        raise ValueError(f"alphas: the last time {a[-1]:g} exceeds alpha_max={alpha_max:g}")
    return np.unique(np.round(a * N).astype(np.int64))


def simulate(
    problem: Problem,
    N: int,
    alpha_max: float | None = None,
    seeds: int | Sequence[int] = 1,
    alphas: Sequence[float] | np.ndarray | None = None,
    *,
    init: Any = "large",
    v_teacher: Any = None,
    init_scale: float = 1e-3,
    batch_size: int = 1,
    test_set_size: int | None = None,
    rng: str = "splitmix",
    progress: bool | None = None,
    save_path: str | Path | None = None,
    save_every: float = 60.0,
    divergence_threshold: float = 1e6,
    max_seconds_per_call: float = 0.5,
) -> Simulation:
    """Run online SGD for every seed at once and record the order parameters at ``alphas``.

    Parameters
    ----------
    problem:
        The :class:`Problem` (K, M, activation, ``lr``, ``lr2``, ``sigma``, training mode, weight decay).
    N:
        Input dimension (positive integer).
    alpha_max, alphas:
        Recording times ``alpha = steps / N`` (rounded to whole steps; duplicates merged); default
        ``0`` plus 60 log-spaced times up to ``alpha_max``.
    seeds:
        Number of seeds (``0 .. n-1``) or a sequence of distinct non-negative integer seeds. Each seed
        draws its own teacher, initial student and input stream.
    init:
        ``"large"``, ``"small"``, ``"informed"``, ``"denoise"``, ``"mixed"`` (:mod:`.initial`),
        an :class:`InitialWeights` (same weights for every seed), a list of them (one per seed), a dict
        of weights, or a callable ``f(problem, N, rng)``.
    v_teacher, init_scale:
        Teacher second layer and the size of "small" weights (see :func:`initial_weights`).
    batch_size:
        Mini-batch size ``B`` (1 = the ODE's setting; the gradient is averaged over ``B`` fresh samples).
    test_set_size:
        Number of held-out inputs for ``eg_test``; ``None`` means 0 for activations with closed-form
        Gaussian integrals (erf, ReLU, linear) and 10000 otherwise.
    rng:
        ``"splitmix"`` (fast counter-based stream, the default) or ``"threefry"`` (``jax.random``).
    progress:
        Show a tqdm progress bar; ``None``: only for long runs.
    save_path, save_every:
        Write the (partial) result to this netCDF file atomically every ``save_every`` seconds, at the
        end, and on Ctrl-C or divergence. The path is checked before the run (a folder that cannot be
        written, or an existing file that is not netCDF, is refused with ``ValueError``). A save that
        fails during or after the run (e.g. disk full) does not stop it: a ``RuntimeWarning`` says so,
        the result is returned with ``save_error`` set, and an earlier file at ``save_path`` is unchanged.
    divergence_threshold:
        A seed diverges when ``Delta`` becomes non-finite or ``max(Q_kk, |v_k|)`` exceeds this.
    max_seconds_per_call:
        Work per compiled call (seconds, > 0): how often Python sees progress and Ctrl-C.

    Raises
    ------
    learndyn.resources.InsufficientMemoryError
        Before anything is allocated, when :func:`simulate_bytes` exceeds the available memory.
    """
    t_start = time.perf_counter()
    if not isinstance(problem, Problem):
        raise ValueError(f"problem: expected learndyn.online.Problem, got {type(problem).__name__}")
    N = _check_positive_int("N", N)
    seeds = _check_seeds(seeds)
    batch_size = _check_positive_int("batch_size", batch_size)
    if rng not in ("splitmix", "threefry"):
        raise ValueError(f"rng: must be 'splitmix' or 'threefry', got {rng!r}")
    divergence_threshold = _positive_number("divergence_threshold", divergence_threshold, finite=False)
    max_seconds_per_call = _positive_number("max_seconds_per_call", max_seconds_per_call, unit="seconds")
    if save_path is not None:
        save_path = check_output_path(save_path, name="save_path")
        save_every = _positive_number("save_every", save_every, finite=False, unit="seconds")
    g = problem.g
    if test_set_size is None:
        test_set_size = 0 if g.has_closed_form else 10_000
    if isinstance(test_set_size, bool) or not isinstance(test_set_size, (int, np.integer)) or test_set_size < 0:
        raise ValueError(f"test_set_size: must be an integer >= 0, got {test_set_size!r}")
    steps = _record_steps(N, alphas, alpha_max)
    S, K, M = len(seeds), problem.K, problem.M
    check_memory(simulate_bytes(problem, N, S, len(steps), batch_size, test_set_size),
                 what=f"online.simulate(N={N}, {S} seeds, K={K}, M={M}, {len(steps)} records)",
                 reduce="reduce N or the number of seeds (run the seeds in several calls), or the number of "
                        "recorded times")

    # initial weights, one set per seed
    if isinstance(init, (list, tuple)):
        if len(init) != S:
            raise ValueError(f"init: a list of initial weights needs one entry per seed ({S}), got {len(init)}")
        inits = [initial_weights(problem, N, i, int(s)) for i, s in zip(init, seeds)]
        init_name = "user"
    else:
        inits = [initial_weights(problem, N, init, int(s), v_teacher=v_teacher, scale=init_scale) for s in seeds]
        init_name = init if isinstance(init, str) else "user"
    initial_states = tuple(iw.order_parameters() for iw in inits)

    st, advance, overlaps, place = _program(problem, N, S, batch_size, rng)
    params = tuple(jnp.float64(p) for p in (problem.lr, problem.eta2, problem.sigma, problem.weight_decay))
    state = place((
        jnp.asarray(np.stack([iw.w for iw in inits])),
        jnp.asarray(np.stack([iw.v for iw in inits])),
        jnp.asarray(np.stack([iw.w_teacher for iw in inits])),
        jnp.asarray(np.stack([iw.v_teacher for iw in inits])),
        jnp.asarray(np.array([_seed_offset(int(s)) for s in seeds], dtype=np.uint64)),
        jnp.zeros(S, dtype=jnp.int64),
        jnp.full(S, -1, dtype=jnp.int64),
    ))
    T = np.stack([iw.order_parameters().T for iw in inits])
    vt = np.stack([iw.v_teacher for iw in inits])
    test_fn = None
    if test_set_size > 0:
        block = int(min(test_set_size, max(64, 2**22 // (N * S))))
        n_blocks = -(-test_set_size // block)
        test_fn = _compiled_test_error(g, K, M, N, n_blocks, block)
        test_set_size = n_blocks * block

    A = len(steps)
    Qs = np.full((S, A, K, K), np.nan)
    Rs = np.full((S, A, K, M), np.nan)
    vs = np.full((S, A, K), np.nan)
    egt = np.full((S, A), np.nan) if test_fn is not None else None
    seed_status = np.array(["ok"] * S, dtype=object)
    diverged_alpha = np.full(S, np.nan)
    status, message = "success", ""

    # calibrated call size: ~max_seconds_per_call of work per compiled call (first guess 1 us per N-vector op)
    per_step_guess = 2e-9 * N * S * batch_size + 5e-6
    call_steps = max(st.block, int(max_seconds_per_call / per_step_guess))
    total = int(steps[-1])
    show = progress if progress is not None else (total * per_step_guess > 20.0)
    from tqdm.auto import tqdm  # noqa: PLC0415

    bar = tqdm(total=total, disable=not show, unit="step", desc=f"SGD N={N} x{S} seeds", leave=False)
    current = 0
    n_done = 0
    save_error = ""
    last_save = time.perf_counter()

    def build(n_rec: int) -> Simulation:
        sl = slice(0, n_rec)
        Qc, Rc, vc = Qs[:, sl], Rs[:, sl], vs[:, sl]
        flatQ = Qc.reshape(S * n_rec, K, K)
        eg = np.full((S, n_rec), np.nan)
        if n_rec:
            eg = generalisation_error_batch(problem, flatQ, Rc.reshape(S * n_rec, K, M),
                                            np.repeat(T, n_rec, axis=0), vc.reshape(S * n_rec, K),
                                            np.repeat(vt, n_rec, axis=0)).reshape(S, n_rec)
            eg = np.where(np.isfinite(Qc).all(axis=(2, 3)), eg, np.nan)
        return Simulation(
            problem=problem, N=N, seeds=seeds, alpha=steps[sl] / N, steps=steps[sl], Q=Qc, R=Rc, v=vc, eg=eg,
            eg_test=None if egt is None else egt[:, sl], T=T, v_teacher=vt, initial_states=initial_states,
            seed_status=seed_status.astype(str), diverged_alpha=diverged_alpha.copy(), status=status,
            message=message, batch_size=batch_size, test_set_size=int(test_set_size), init=str(init_name),
            rng=rng, wall_time=time.perf_counter() - t_start,
        )

    try:
        for r, target in enumerate(steps):
            while current < target:
                n = int(min(target - current, call_steps))
                t0 = time.perf_counter()
                state = advance(state, jnp.int64(n), params)
                state[0].block_until_ready()
                dt = time.perf_counter() - t0
                if n >= 4 * st.block and dt > 0:  # adapt the call size to the measured speed
                    call_steps = max(st.block, int(n * max_seconds_per_call / dt))
                current += n
                bar.update(n)
            Q, R, v, big = (np.asarray(a) for a in overlaps(state))
            bad = np.asarray(state[6])
            Qs[:, r], Rs[:, r], vs[:, r] = Q, R, v
            if egt is not None:
                egt[:, r] = np.asarray(test_fn(state[0], state[1], state[2], state[3]))
            n_done = r + 1
            # divergence: non-finite Delta inside the loop, or exploding overlaps at the record
            newly = (seed_status == "ok") & ((bad >= 0) | ~np.isfinite(big) | (big > divergence_threshold))
            for s in np.flatnonzero(newly):
                seed_status[s] = "diverged"
                diverged_alpha[s] = (bad[s] if bad[s] >= 0 else target) / N
                warnings.warn(f"online.simulate: seed {int(seeds[s])} diverged at alpha = {diverged_alpha[s]:g} "
                              f"(N={N}, lr={problem.lr:g}); its data up to there is kept", RuntimeWarning,
                              stacklevel=2)
            dead = seed_status == "diverged"
            if dead.any():
                # records at or after the divergence are NaN
                for s in np.flatnonzero(dead):
                    late = steps[: r + 1] >= diverged_alpha[s] * N
                    Qs[s, : r + 1][late] = np.nan
                    Rs[s, : r + 1][late] = np.nan
                    vs[s, : r + 1][late] = np.nan
                    if egt is not None:
                        egt[s, : r + 1][late] = np.nan
                status = "diverged"
                message = "; ".join(f"seed {int(seeds[s])} diverged at alpha = {diverged_alpha[s]:g}"
                                    for s in np.flatnonzero(dead))
                if dead.all():
                    message += "; all seeds diverged, stopped"
                    n_done = len(steps)
                    break
            if save_path is not None and time.perf_counter() - last_save > save_every:
                save_error = _try_save(build(n_done), save_path, save_error, during=True)
                last_save = time.perf_counter()
    except KeyboardInterrupt:
        status = "interrupted"
        for s in np.flatnonzero(seed_status == "ok"):
            seed_status[s] = "interrupted"
        message = (f"interrupted at alpha = {current / N:g}; records up to alpha = "
                   f"{(steps[n_done - 1] / N if n_done else 0.0):g} are kept")
        warnings.warn(f"online.simulate: {message}", RuntimeWarning, stacklevel=2)
    finally:
        bar.close()
    if status == "success":
        message = SEED_STATUS["ok"]
    result = build(n_done)
    if save_path is not None:
        error = _try_save(result, save_path, save_error, during=False)
        if error:
            result = dataclasses.replace(result, save_error=error)
    return result


def _try_save(result: Simulation, path: Path, previous: str, *, during: bool) -> str:
    """Save ``result``; on failure warn (once per distinct error) and return the reason ("" on success)."""
    try:
        result.save(path)
        return ""
    except (OSError, ValueError, MemoryError) as exc:
        reason = f"{path} was not written: {exc}"
        if reason != previous:
            when = "the periodic save failed; the run continues" if during else "the result is returned"
            warnings.warn(f"online.simulate: {reason} ({when}; an earlier file there is unchanged)",
                          RuntimeWarning, stacklevel=3)
        return reason
