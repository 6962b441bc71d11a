r"""Real two-layer networks with unit-norm first-layer rows, trained by GD/SGD in JAX (Montanari & Urbani 2025, Sec. 2, App. I).

Network and data (their Sec. 2): ``f(x) = (1/m) sum_i a_i sigma(<w_i, x>)`` with ``||w_i|| = 1``,
``x ~ N(0, I_d)``, ``y = phi(<u, x>) + tau eps`` (``u = e_1``; pure noise: ``phi = 0``), ``n = round(abar d)``.
The activation is the one whose kernel is the problem's ``h``: with normalised Hermite polynomials
``He_k / sqrt(k!)``,

.. math::

    \sigma(x) = \sum_{k\ge1} \sqrt{h_k}\, \frac{He_k(x)}{\sqrt{k!}}, \qquad
    \phi(x) = \sum_{k\ge1} \frac{\hat\phi_k}{\sqrt{h_k}}\, \frac{He_k(x)}{\sqrt{k!}}

so that ``E sigma(G_1) sigma(G_q) = h(q)`` and ``E phi(G_1) sigma(G_q) = hatphi(q)`` (the paper's kernel functions; e.g.
``h = 0.9z + z^3/6`` gives ``sigma(x) = sqrt(0.9) x + (x^3 - 3x)/6``). A target variance ``||phi||^2`` beyond
``sum_k hatphi_k^2/h_k`` is added as independent Gaussian noise (it is invisible to every hidden unit).

Training (App. D.2 / App. I): one step of size ``dt`` in GF time,

.. math::

    a \leftarrow a - dt\,\tfrac{n}{d}\,\nabla_a \hat R_B, \qquad
    w_i \leftarrow \mathrm{normalize}\big(w_i - dt\,\tfrac{n}{d}\,\nabla_{w_i} \hat R_B\big),

``Rhat_B = (1/(2|B|)) sum_{mu in B} (y_mu - f(x_mu))^2`` over the full training set (GD) or a mini-batch of
``batch`` samples drawn uniformly with replacement (SGD; the SGD learning rate is ``eta = dt n/d``, the
paper's mapping ``t = k eta d/n``). Data, initial weights and mini-batches of seed ``s`` come from NumPy's
``default_rng([0, s])`` on the host (no PRNG inside the compiled program). Observables on the DMFT time axis: train error ``Rhat_n`` on the full
training set, test error = population risk (exact for given weights), ``a``, ``v`` and ``C_d``,
``C_o`` as for :mod:`learndyn.dmft.gaussian_model`. Seeds are ``jax.vmap``-ed, the step loop is a
``lax.scan``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..results import InvalidInputError
from ._common import check_problem, check_seeds, check_size, check_threshold
from .problem import Problem
from .simulation import (ModelParams, Simulation, finish, initial_weights, model_params, record, record_plan,
                         run_seeds, two_time)

__all__ = ["simulate", "hermite_function", "activation_function", "target_function", "loss", "training_data",
           "Simulation"]


def hermite_function(coef, x):
    """``sum_k coef[k] He_k(x)/sqrt(k!)`` (probabilists' Hermite polynomials, recursion
    ``He_{k+1} = x He_k - k He_{k-1}``)."""
    he_prev, he = jnp.ones_like(x), x
    out = coef[0] * he_prev if len(coef) else jnp.zeros_like(x)
    for k in range(1, len(coef)):
        if coef[k] != 0:
            out = out + coef[k] * he / math.sqrt(math.factorial(k))
        he_prev, he = he, x * he - k * he_prev
    return out


def activation_function(p: ModelParams):
    """sigma with ``E sigma(G_1) sigma(G_q) = h(q)``: normalised Hermite coefficients ``sqrt(h_k)``."""
    c = tuple(p.c)
    return lambda x: hermite_function(c, x)


def target_function(p: ModelParams):
    """phi with ``E phi(G_1) sigma(G_q) = hatphi(q)``: normalised Hermite coefficients ``hatphi_k/sqrt(h_k)``."""
    b = tuple(p.b)
    return lambda x: hermite_function(b, x)


def loss(p: ModelParams, X, y, a, W):
    """``(n/d) Rhat`` on the samples ``(X, y)`` with ``n`` the full training-set size: here ``X.shape[0]``."""
    sigma = activation_function(p)
    F = y - sigma(X @ W.T) @ a / p.m
    return 0.5 * jnp.sum(F**2) / W.shape[-1]


def training_data(p: ModelParams, rng, n: int, d: int):
    """Training set ``(X, y)``: ``x ~ N(0, I_d)``, ``y = phi(x_1) + tau eps`` (+ the target variance no hidden unit
    sees, as independent noise), drawn with the NumPy generator ``rng`` (or a seed)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    X = rng.standard_normal((n, d))
    y = p.tau * rng.standard_normal(n)
    if any(p.b):
        y = y + np.asarray(target_function(p)(X[:, 0]))
    if p.extra_var > 0:
        y = y + math.sqrt(p.extra_var) * rng.standard_normal(n)
    return X, y


@functools.lru_cache(maxsize=16)
def _compiled(p: ModelParams, n: int, d: int, dt: float, every: int, n_rec: int, batch: int | None,
              keep_C: bool):
    sigma = activation_function(p)
    m = p.m
    scale = n / d  # GF time rescaling

    def rhat(params, X, y):
        a, W = params
        F = y - sigma(X @ W.T) @ a / m
        return 0.5 * jnp.mean(F**2)

    grad = jax.grad(rhat)

    def one(X, y, W0, batches):
        a0 = jnp.asarray(p.a0)

        def step(state, idx):
            a, W = state
            if batch is None:
                Xb, yb = X, y
            else:
                Xb, yb = X[idx], y[idx]
            ga, gW = grad((a, W), Xb, yb)
            if p.train_second_layer:
                a = a - dt * scale * ga
            W = W - dt * scale * gW
            W = W / jnp.linalg.norm(W, axis=1, keepdims=True)
            return (a, W), None

        def rec(state, idx):
            a, W = state
            F = y - sigma(X @ W.T) @ a / m
            out = record(p, a, W, F, keep_C)
            state, _ = lax.scan(step, state, idx)
            return state, out

        _, recs = lax.scan(rec, (a0, W0), batches)
        recs.update(two_time(recs.pop("W"), m))
        return recs

    return jax.jit(jax.vmap(one))


def simulate(problem: Problem, d: int, t_max: float, dt: float, seeds: int | tuple = 10, *, batch: int | None = None,
             init: str = "uniform", record_every: int | None = None, max_records: int = 201,
             memory_gb: float = 1.0, divergence_threshold: float = 1e8) -> Simulation:
    """Train one network of ``problem`` in dimension ``d`` per seed (``seeds``: a number ``S``, seeds ``0..S-1``,
    or a sequence of ints; seed ``s`` draws from NumPy's ``default_rng([0, s])``), up to ``t_max`` on the DMFT
    time grid ``t = k dt``.

    ``batch=None``: full-batch projected GD with step ``dt`` (GF time); an integer: SGD with that mini-batch
    size and learning rate ``dt * n/d`` (Montanari & Urbani 2025, App. I). ``init="uniform"`` draws rows i.i.d. on
    the sphere (the paper's SGD runs); ``"orthogonal"`` imposes ``C(0,0) = C0`` and ``v(0) = v0`` exactly.
    Divergence is relative: a seed whose error exceeds ``divergence_threshold`` times its initial test error has
    diverged (status ``DIVERGED``, data before it kept).
    """
    check_problem(problem, "networks.simulate")
    p = model_params(problem)
    d = check_size("d", d, 2)
    seeds = check_seeds(seeds)
    threshold = check_threshold(divergence_threshold)
    if batch is not None:
        batch = check_size("batch", batch, 1)
    if init not in ("orthogonal", "uniform"):
        raise InvalidInputError(f"init: must be 'orthogonal' or 'uniform', got {init!r}")
    if init == "uniform" and (not np.allclose(np.asarray(p.C0), np.eye(p.m)) or np.any(np.asarray(p.v0) != 0)):
        raise InvalidInputError("init: 'uniform' gives C(0,0) = I, v(0) = 0; use init='orthogonal' for other C0, v0")
    n = int(round(p.abar * d))
    if n < 1:
        raise InvalidInputError(f"d: n = round(n_over_d * d) = {n}; take a larger d")
    if batch is not None and batch > n:
        raise InvalidInputError(f"batch: must be <= n = {n}, got {batch}")
    every, n_rec = record_plan(t_max, dt, record_every, max_records)
    keep_C = p.m <= 8
    per = 8 * (3 * n * d + 4 * n * p.m + 2 * n_rec * (n_rec + p.m * d) + (batch or n) * (d + 2 * p.m) * 3
               + n_rec * every * (batch or 0))
    S = len(seeds)
    chunk = int(max(1, min(S, memory_gb * 2**30 // per)))
    fn = _compiled(p, n, d, float(dt), every, n_rec, batch, keep_C)

    def draw(rng):  # seed s: its data, initial weights and mini-batches, in this order, from default_rng([0, s])
        X, y = training_data(p, rng, n, d)
        W0 = initial_weights(p, rng, d, init)
        batches = rng.integers(0, n, size=(n_rec, every, batch if batch is not None else 0), dtype=np.int32)
        return X, y, W0, batches

    recs = run_seeds(seeds, chunk, draw, fn)
    settings = dict(init=init, record_every=every, batch=batch, abar_effective=n / d,
                    sgd_learning_rate=dt * n / d)
    return finish(problem, "network_gd" if batch is None else "network_sgd", recs, every, dt, d, n, seeds, settings,
                  n_rec, threshold)
