r"""The compiled step engine of the online-SGD simulator (Goldt et al. 2019, eqs. (2)-(3)).

One SGD step of every seed (:func:`make_step`) applies the update rules of :mod:`learndyn.online.conventions`
(Goldt et al. 2019, eqs. (2)-(3)) with ``Delta = phi(x) - y``, ``y = sum_m v*_m g(rho_m) + sigma zeta``:

.. math::

    w_k &\leftarrow (1 - \kappa/N)\, w_k - \frac{\eta}{\sqrt N}\, \frac1B \sum_{b=1}^{B} v_k\, g'(\lambda_k^b)\,\Delta^b\, x^b \\
    v_k &\leftarrow (1 - \kappa/N)\, v_k - \frac{\eta_2}{N}\, \frac1B \sum_{b=1}^{B} g(\lambda_k^b)\, \Delta^b
    \qquad\text{(only when the second layer is trained)}

(mini-batch size ``B``, 1 by default: time still advances by ``1/N`` per step). :func:`compiled` runs such
steps inside one compiled XLA loop over blocks of up to 32 steps whose inputs are drawn at once
(:func:`draw_block`, from :mod:`learndyn.online.streams`) and applied one after the other; the seeds are split
over the CPU devices (:func:`seed_shards`), each running its shard's loop on its own core.
:func:`compiled_test_error` is the held-out test error of the same weights.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import conventions
from .problem import Problem
from .streams import GOLDEN, TEST_SALT, counter_normals, mix64, normals_from_words, seed_offset, threefry_normals

__all__ = ["EngineShape", "engine_shape", "program", "compiled", "seed_shards", "make_step", "draw", "draw_block",
           "words_per_step", "split_normals", "compiled_test_error", "sgd_update"]


@dataclass(frozen=True)
class EngineShape:
    """Everything that shapes a compiled simulator program (``block``: SGD steps whose inputs are drawn at once).

    ``g`` the activation, ``K``, ``M`` the units, ``N`` the input dimension, ``batch`` the mini-batch size,
    ``train_v`` whether the second layer is trained, ``decay`` whether weight decay is on, ``rng``
    ``"splitmix"`` or ``"threefry"``. The rates, noise and decay themselves are traced arguments.
    """

    g: Any
    K: int
    M: int
    N: int
    batch: int
    train_v: bool
    decay: bool
    rng: str
    block: int


def words_per_step(st: EngineShape) -> int:
    """64-bit random words per SGD step and seed: two normals each for the ``B N`` inputs and ``B`` noises."""
    return (st.batch * st.N + st.batch + 1) // 2


def draw(st: EngineShape, offset, t):
    """The ``B N + B`` normals of step ``t`` (int64, per seed) of the streams at ``offset`` (uint64, per seed).

    Shapes: ``offset``, ``t``: (S,) -> (S, 2 * words). The counter of word ``j`` of step ``t`` is
    ``t * words + j``, so every (seed, step) has its own disjoint block of the stream.
    """
    n_words = words_per_step(st)
    if st.rng == "splitmix":
        lane = jnp.arange(n_words, dtype=jnp.uint64)
        counters = t[:, None].astype(jnp.uint64) * jnp.uint64(n_words) + lane[None, :]
        return normals_from_words(mix64(offset[:, None] + counters * jnp.uint64(GOLDEN)))
    return jax.vmap(lambda off, tt: threefry_normals(off, tt, 2 * n_words))(offset, t)


def draw_block(st: EngineShape, offset, t0):
    """The normals of steps ``t0 .. t0 + block - 1`` of one seed's stream, (block, 2 * words): row ``s`` is
    exactly :func:`draw`'s step ``t0 + s`` (consecutive steps are consecutive counters, one vectorised draw)."""
    n_words, L = words_per_step(st), st.block
    if st.rng == "splitmix":
        lane = jnp.arange(L * n_words, dtype=jnp.uint64)
        z = mix64(offset + (t0.astype(jnp.uint64) * jnp.uint64(n_words) + lane) * jnp.uint64(GOLDEN))
        return normals_from_words(z.reshape(L, n_words))
    return jax.vmap(lambda tt: threefry_normals(offset, tt, 2 * n_words))(t0 + jnp.arange(L, dtype=jnp.int64))


def make_step(st: EngineShape):
    """One SGD step of all seeds at once (Goldt et al. 2019, eqs. (2)-(3), the scalings of
    :mod:`learndyn.online.conventions`): ``x`` (S, B, N), ``zeta`` (S, B), step index ``t`` (S,); returns
    ``(w, v, bad)`` with ``bad`` the first step whose error ``Delta`` was not finite (-1: none)."""
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
            w = conventions.decay_factor(N, kappa) * w
        w = w - conventions.first_layer_step(N, lr) * dw
        if st.train_v:
            dv = jnp.einsum("sbk,sb->sk", gl, delta) / B
            if st.decay:
                v = conventions.decay_factor(N, kappa) * v
            v = v - conventions.second_layer_step(N, lr2) * dv
        ok = jnp.all(jnp.isfinite(delta), axis=1)
        return w, v, jnp.where((bad < 0) & ~ok, t, bad)

    return step


def split_normals(st: EngineShape, xz):
    """(L, >= B N + B) normals of L steps -> inputs (L B, N) and label noise (L, B)."""
    N, B = st.N, st.batch
    L = xz.shape[0]
    return xz[:, : B * N].reshape(L * B, N), xz[:, B * N: B * N + B]


@functools.lru_cache(maxsize=16)
def compiled(st: EngineShape, shards: int = 1):
    """``(advance, overlaps, place)``: the compiled loop over ``st``'s seeds, the order parameters, and ``place``
    (puts a state on the devices). ``st`` describes ONE shard when ``shards > 1``: the seeds are split evenly
    over ``shards`` CPU devices, each running its part of the loop on its own core (:func:`seed_shards`).

    ``advance(state, n, params)`` applies ``n`` SGD steps to ``state = (w, v, w_teacher, v_teacher, offset, t,
    bad)`` (all per seed) with ``params = (lr, lr2, sigma, weight_decay)``; ``overlaps(state)`` gives
    ``(Q, R, v, max(Q_kk, |v_k|))`` per seed.
    """
    step = make_step(st)
    split = jax.vmap(lambda xz: split_normals(st, xz))
    draw_all = jax.vmap(lambda off, t: lax.optimization_barrier(draw_block(st, off, t)))

    def one_block(w, v, wt, vt, xz, t, bad, m, params):
        x, zeta = split(xz)  # (S, L B, N), (S, L, B)
        B = st.batch

        def one(s, carry):
            xs = lax.dynamic_slice_in_dim(x, s * B, B, axis=1)
            zs = lax.dynamic_index_in_dim(zeta, s, axis=1, keepdims=False)
            return step(*carry[:2], wt, vt, xs, zs, t + s, carry[2], params)

        w, v, bad = lax.fori_loop(0, m, one, (w, v, bad))
        return w, v, t + m, bad

    def advance(state, n, params):
        w, v, wt, vt, offset, t, bad = state
        n_blocks = (n + st.block - 1) // st.block

        def body(i, carry):
            w, v, t, bad = carry
            m = jnp.minimum(st.block, n - i * st.block)
            return one_block(w, v, wt, vt, draw_all(offset, t), t, bad, m, params)

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


def seed_shards(S: int) -> int:
    """How many CPU devices ``S`` seeds are split over: the largest number <= the CPU devices JAX exposes
    (``learndyn`` asks for one per core, see ``LEARNDYN_CPU_DEVICES``) that divides ``S`` evenly; 1 when
    JAX's default backend is not the CPU.  Each device runs its seeds' loop on its own thread -- measured
    (2 cores, N=500, 16 seeds): 3.2 us per step and seed in one program, 2.2 us in two shards; inside one
    program XLA's intra-op threads gain little on these small operations.
    """
    if jax.default_backend() != "cpu":
        return 1
    n = len(jax.devices("cpu"))
    return max(d for d in range(1, min(n, S) + 1) if S % d == 0)


def program(problem: Problem, N: int, S: int, B: int, rng: str = "splitmix"):
    """``(shape, advance, overlaps, place)`` for ``S`` seeds, as :func:`learndyn.online.simulate` runs them
    (see :func:`compiled`; ``shape`` is the :class:`EngineShape` of one shard)."""
    shards = seed_shards(S)
    st = engine_shape(problem, N, S // shards, B, rng)
    return (st, *compiled(st, shards))


def engine_shape(problem: Problem, N: int, S: int, B: int, rng: str = "splitmix") -> EngineShape:
    """The compiled program's shape for ``S`` seeds (of one shard) and mini-batch ``B``.

    Steps per block: up to 32, with about 2^16 numbers drawn at once for all seeds (at least 4 steps while
    that stays under 2^20 numbers).
    """
    per = S * (B * N + B)  # numbers drawn per step, all seeds
    block = min(32, max(2**16 // per, min(4, 2**20 // per), 1))
    return EngineShape(g=problem.g, K=problem.K, M=problem.M, N=N, batch=B, train_v=bool(problem.train_second_layer),
                       decay=problem.weight_decay > 0, rng=rng, block=block)


@functools.lru_cache(maxsize=16)
def compiled_test_error(g, K: int, M: int, N: int, n_blocks: int, block: int):
    """Held-out test error ``mean_p (phi(x_p) - y_noiseless(x_p))^2 / 2`` (Goldt et al. 2019, eq. (4), estimated
    on ``n_blocks * block`` fixed counter-based inputs): a compiled ``f(w, v, w_teacher, v_teacher)`` per seed."""
    n_words = (block * N + 1) // 2
    offset = jnp.uint64(seed_offset(0, TEST_SALT))

    def run(w, v, wt, vt):
        def body(i, acc):
            x = counter_normals(offset, i.astype(jnp.uint64) * jnp.uint64(n_words), n_words)[: block * N]
            x = x.reshape(block, N)
            lam = jnp.einsum("pn,skn->spk", x, w) / math.sqrt(N)
            rho = jnp.einsum("pn,smn->spm", x, wt) / math.sqrt(N)
            err = jnp.einsum("spk,sk->sp", g(lam), v) - jnp.einsum("spm,sm->sp", g(rho), vt)
            return acc + jnp.sum(err * err, axis=1)

        tot = lax.fori_loop(0, n_blocks, body, jnp.zeros(w.shape[0]))
        return 0.5 * tot / (n_blocks * block)

    return jax.jit(run)


def sgd_update(problem: Problem, w, v, w_teacher, v_teacher, x, zeta=0.0):
    """One SGD step (Goldt et al. 2019, eqs. (2)-(3)), computed by the simulator's own step (:func:`make_step`).

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
    st = EngineShape(g=problem.g, K=K, M=problem.M, N=N, batch=B, train_v=bool(problem.train_second_layer),
                     decay=problem.weight_decay > 0, rng="splitmix", block=1)
    params = tuple(jnp.float64(p) for p in (problem.lr, problem.eta2, problem.sigma, problem.weight_decay))
    w_new, v_new, _ = make_step(st)(w[None], jnp.asarray(v, dtype=jnp.float64)[None],
                                    jnp.asarray(w_teacher, dtype=jnp.float64)[None],
                                    jnp.asarray(v_teacher, dtype=jnp.float64)[None], x[None], zeta[None],
                                    jnp.zeros(1, jnp.int64), jnp.full(1, -1, jnp.int64), params)
    return w_new[0], v_new[0]
