r"""Projected gradient descent on the Gaussian model of Montanari & Urbani (2025), many realisations batched.

The Gaussian model (Montanari & Urbani 2025, App. D.4) replaces each hidden unit's output
``sigma(<w, x_mu>)``, viewed as a random function of ``w`` on the sphere, by a Gaussian process with
covariance ``h(<w, w'>)``. With ``h(z) = sum_k c_k^2 z^k`` (``c_k = sqrt(h_k)``, degrees ``k = 1..3``) and one
independent set of i.i.d. ``N(0, 1)`` tensors ``J^(k)_mu in (R^d)^{(x)k}`` per sample ``mu``:

.. math::

    \sigma_\mu(w) = \sum_k c_k \langle J^{(k)}_\mu, w^{\otimes k}\rangle,\qquad
    f^g_\mu(a, W) = \frac1m \sum_i a_i\, \sigma_\mu(w_i),\qquad
    y_\mu = \sum_k b_k \langle J^{(k)}_\mu, u^{\otimes k}\rangle + \xi_\mu + \tau\,\varepsilon_\mu,

with ``b_k = hatphi_k / c_k`` so that ``E[sigma_mu(w) y_mu] = hatphi(<u, w>)``, ``xi_mu ~ N(0, ||phi||^2 -
sum_k b_k^2)`` independent (zero when the target is the activation itself) and ``u = e_1``. Then
``E[sigma_mu(w) sigma_mu(w')] = h(<w, w'>)`` and ``E y_mu^2 = tau^2 + ||phi||^2``: every covariance of the
DMFT holds exactly (checked by sampling in the tests). Only the symmetric part of ``J^(k)`` enters, so the
tensors are stored symmetrised and ``grad_w <J, w^k> = k J(w, ..., w, .)``.

Training is projected GD (paper Eq. D.9) on ``L = (n/d) Rhat_n = (1/(2d)) sum_mu (y_mu - f^g_mu)^2``:

.. math::

    a \leftarrow a - \eta\, \nabla_a L,\qquad w_i \leftarrow \frac{w_i - \eta \nabla_{w_i} L}{\|w_i - \eta \nabla_{w_i} L\|},
    \qquad t = k\,\eta,

with the explicit gradients ``grad_{a_i} L = -(1/(d m)) sum_mu F_mu sigma_mu(w_i)`` and
``grad_{w_i} L = -(a_i/(d m)) sum_k k c_k (sum_mu F_mu J^(k)_mu)(w_i, ..., w_i, .)`` (``F = y - f^g``; tested
against JAX autodiff). The observables are those of the DMFT (Sec. 2 of the paper): the train error ``Rhat_n``, the
test error (the population risk, exact for given weights)

.. math::

    e_{ts} = \tfrac12\Big[\tau^2 + \|\phi\|^2 - \tfrac2m \sum_i a_i \hat\phi(v_i) + \tfrac1{m^2}\sum_{ij} a_i a_j h(C_{ij})\Big],

``a = mean_i a_i``, ``v = mean_i <u, w_i>``, and the two-time overlaps ``C_d(t, s) = mean_i <w_i(t), w_i(s)>``,
``C_o(t, s) = mean_{i != j} <w_i(t), w_j(s)>``.

Implementation: one realisation is a pure JAX function of its tensors, labels and initial weights (time loop
in ``lax.scan``); seeds are ``jax.vmap``-ed in chunks that fit the memory budget. The random numbers
are drawn on the host by NumPy, seed ``s`` from ``default_rng([0, s])`` (so results do not depend on
the chunking, and the compiled program holds no PRNG: XLA compiles it several times faster).
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
from .simulation import (ModelParams, Simulation, finish, initial_weights, model_params, population_risk, record,
                         record_plan, run_seeds, two_time)

__all__ = ["simulate", "Simulation", "ModelParams", "model_params", "sample_features", "unit_outputs", "loss",
           "gradients", "population_risk", "initial_weights"]

MAX_TENSOR_DEGREE = 3


# ------------------------------------------------------------------------------------------
# one realisation: features, loss, gradients
# ------------------------------------------------------------------------------------------
def _symmetrise_np(J: np.ndarray, k: int) -> np.ndarray:
    """The symmetric part of each sample's order-``k`` tensor ``J[mu]`` (axes 1..k)."""
    if k == 1:
        return J
    if k == 2:
        return 0.5 * (J + np.swapaxes(J, 1, 2))
    perms = [(0, 1, 2, 3), (0, 1, 3, 2), (0, 2, 1, 3), (0, 2, 3, 1), (0, 3, 1, 2), (0, 3, 2, 1)]
    return sum(np.transpose(J, q) for q in perms) / 6.0


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def sample_features(p: ModelParams, rng, n: int, d: int):
    """Draw one realisation with the NumPy generator ``rng`` (or a seed): symmetrised tensors ``J[k]`` of shape
    (n, d^k) for the degrees present in h, and the labels ``y`` (n,). Returns ``(tensors, y)``, ``tensors`` a
    tuple indexed by degree - 1 (``None`` for absent degrees)."""
    K = p.degree
    if K > MAX_TENSOR_DEGREE:
        raise InvalidInputError(f"h: degree {K} > {MAX_TENSOR_DEGREE} is not supported by the Gaussian-model simulator "
                         "(it stores n d^k numbers per realisation)")
    rng = _rng(rng)
    y = p.tau * rng.standard_normal(n)
    if p.extra_var > 0:
        y = y + math.sqrt(p.extra_var) * rng.standard_normal(n)
    tensors = []
    for k in range(1, MAX_TENSOR_DEGREE + 1):
        if k > K or p.c[k] == 0:
            tensors.append(None)
            continue
        J = _symmetrise_np(rng.standard_normal((n,) + (d,) * k), k)
        tensors.append(J)
        if p.b[k] != 0:
            y = y + p.b[k] * J[(slice(None),) + (0,) * k]
    return tuple(tensors), y


def unit_outputs(p: ModelParams, tensors, W):
    """``sigma_mu(w_i) = sum_k c_k <J^(k)_mu, w_i^(x)k>`` for all samples and neurons: (n, m) (Gaussian model,
    Montanari & Urbani 2025, App. D.4)."""
    out = 0.0
    for k, J in enumerate(tensors, start=1):
        if J is None:
            continue
        if k == 1:
            val = J @ W.T
        elif k == 2:
            val = jnp.einsum("nab,ia,ib->ni", J, W, W)
        else:
            val = jnp.einsum("nabc,ia,ib,ic->ni", J, W, W, W)
        out = out + p.c[k] * val
    return out


def loss(p: ModelParams, tensors, y, a, W):
    """``L = (n/d) Rhat_n = (1/(2d)) sum_mu (y_mu - f^g_mu(a, W))^2`` (the gradient-flow time rescaling by n/d of Montanari & Urbani 2025, Sec. 2)."""
    d = W.shape[-1]
    F = y - unit_outputs(p, tensors, W) @ a / p.m
    return 0.5 * jnp.sum(F**2) / d


def gradients(p: ModelParams, tensors, y, a, W):
    """Explicit ``(grad_a L, grad_W L, F, sigma)`` with ``F = y - f^g`` (n,) and ``sigma`` (n, m)."""
    m = p.m
    d = W.shape[-1]
    S = unit_outputs(p, tensors, W)
    F = y - S @ a / m
    grad_a = -(F @ S) / (d * m)
    gW = jnp.zeros_like(W)
    for k, J in enumerate(tensors, start=1):
        if J is None:
            continue
        if k == 1:
            g = jnp.broadcast_to(F @ J, W.shape)
        elif k == 2:
            Q = jnp.einsum("n,nab->ab", F, J)
            g = 2.0 * W @ Q
        else:
            Q = jnp.einsum("n,nabc->abc", F, J)
            g = 3.0 * jnp.einsum("abc,ia,ib->ic", Q, W, W)
        gW = gW + p.c[k] * g
    grad_W = -(a[:, None] / (d * m)) * gW
    return grad_a, grad_W, F, S



# ------------------------------------------------------------------------------------------
# the batched simulation
# ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _compiled(p: ModelParams, n: int, d: int, dt: float, every: int, n_rec: int, keep_C: bool):
    def one(tensors, y, W0):
        a0 = jnp.asarray(p.a0)

        def step(state, _):
            a, W = state
            ga, gW, F, _ = gradients(p, tensors, y, a, W)
            if p.train_second_layer:
                a = a - dt * ga
            W = W - dt * gW
            W = W / jnp.linalg.norm(W, axis=1, keepdims=True)
            return (a, W), None

        def rec(state, _):
            a, W = state
            F = y - unit_outputs(p, tensors, W) @ a / p.m
            out = record(p, a, W, F, keep_C)
            state, _ = lax.scan(step, state, None, length=every)
            return state, out

        _, recs = lax.scan(rec, (a0, W0), None, length=n_rec)
        recs.update(two_time(recs.pop("W"), p.m))
        return recs

    return jax.jit(jax.vmap(one))


def _bytes_per_realisation(p: ModelParams, n: int, d: int, n_rec: int) -> int:
    tensor = sum(n * d**k for k in range(1, p.degree + 1) if p.c[k] != 0)
    return 8 * (3 * tensor + 2 * n_rec * (n_rec + p.m * d + p.m * p.m) + 4 * n * p.m)


def simulate(problem: Problem, d: int, t_max: float, dt: float, seeds: int | tuple = 100, *,
             init: str = "orthogonal", record_every: int | None = None, max_records: int = 201,
             memory_gb: float = 1.0, divergence_threshold: float = 1e8) -> Simulation:
    """Projected GD on the Gaussian model of ``problem`` (Montanari & Urbani 2025, App. D.2-D.4, Eq. (D.9)) in
    dimension ``d`` with ``n = round(n_over_d * d)`` samples, step ``dt`` up to ``t_max``, for each of ``seeds``
    (a number ``S``: seeds ``0..S-1``; or a sequence of ints), each an independent draw of the random tensors,
    labels and initial weights (seed ``s`` from NumPy's ``default_rng([0, s])``).

    Records every ``record_every``-th step (default: at most ``max_records`` records), i.e. on the DMFT time grid
    ``t = k dt`` (``sim.t``). Seeds run ``jax.vmap``-ed in chunks of at most ``memory_gb``. Divergence is relative:
    a seed whose error exceeds ``divergence_threshold`` times its initial test error has diverged (status
    ``DIVERGED``, data before it kept).
    """
    check_problem(problem, "gaussian_model.simulate")
    p = model_params(problem)
    d = check_size("d", d, 2)
    seeds = check_seeds(seeds)
    threshold = check_threshold(divergence_threshold)
    if init not in ("orthogonal", "uniform"):
        raise InvalidInputError(f"init: must be 'orthogonal' or 'uniform', got {init!r}")
    if init == "uniform" and (not np.allclose(np.asarray(p.C0), np.eye(p.m)) or np.any(np.asarray(p.v0) != 0)):
        raise InvalidInputError("init: 'uniform' gives C(0,0) = I, v(0) = 0; use init='orthogonal' for other C0, v0")
    if p.m > d - 1 and init == "orthogonal":
        raise InvalidInputError(f"d: need d > m = {p.m} for orthonormal initial rows orthogonal to u")
    if p.degree > MAX_TENSOR_DEGREE:
        raise InvalidInputError(f"h: degree {p.degree} > {MAX_TENSOR_DEGREE} is not supported by the Gaussian-model "
                                "simulator (it stores n d^k numbers per seed)")
    n = int(round(p.abar * d))
    if n < 1:
        raise InvalidInputError(f"d: n = round(n_over_d * d) = {n}; take a larger d")
    every, n_rec = record_plan(t_max, dt, record_every, max_records)
    keep_C = p.m <= 8
    per = _bytes_per_realisation(p, n, d, n_rec)
    S = len(seeds)
    chunk = int(max(1, min(S, memory_gb * 2**30 // per)))
    fn = _compiled(p, n, d, float(dt), every, n_rec, keep_C)

    def draw(rng):  # seed s: its tensors, labels and initial weights, in this order, from default_rng([0, s])
        tensors, y = sample_features(p, rng, n, d)
        return (*tensors, y, initial_weights(p, rng, d, init))

    K = MAX_TENSOR_DEGREE
    recs = run_seeds(seeds, chunk, draw, lambda *x: fn(tuple(x[:K]), x[K], x[K + 1]))
    settings = dict(init=init, record_every=every, abar_effective=n / d)
    return finish(problem, "gaussian_model", recs, every, dt, d, n, seeds, settings, n_rec, threshold)
