"""Real two-layer networks: the Hermite activation realises h and hatphi, the population risk matches fresh data,
and a linear network (where the Gaussian model is exact, Montanari & Urbani 2025, App. D.4) matches Gaussian-model GD in law."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from learndyn import dmft
from learndyn.dmft import gaussian_model as gm
from learndyn.dmft import networks as nw


def test_activation_and_target_realise_h_and_hatphi():
    prob = dmft.Problem(m=2, n_over_d=1.0, tau=0.3, h=[0.0, 0.9, 0.3, 1 / 6], target=[0.0, 0.6, 0.0, 0.2])
    p = gm.model_params(prob)
    sigma, phi = nw.activation_function(p), nw.target_function(p)
    rng = np.random.default_rng(0)
    N = 400_000
    g1, g2 = rng.standard_normal((2, N))
    for q in (0.0, 0.4, -0.7, 1.0):
        gq = q * g1 + math.sqrt(1 - q * q) * g2
        for x, expected in ((np.asarray(sigma(g1) * sigma(gq)), prob.h_series(q)),
                            (np.asarray(phi(g1) * sigma(gq)), prob.hatphi(q))):
            assert abs(x.mean() - expected) < 4.5 * x.std() / math.sqrt(N), (q, x.mean(), expected)
    s = np.asarray(sigma(g1))
    assert abs(s.mean()) < 4.5 * s.std() / math.sqrt(N)  # centred
    np.testing.assert_allclose(float(np.sum(np.asarray(p.b) ** 2)) + p.extra_var, prob.phi_norm2, rtol=1e-12)


def test_population_risk_against_fresh_data():
    prob = dmft.Problem(m=3, n_over_d=1.0, tau=0.4, h=[0.0, 0.9, 0.0, 1 / 6], target="activation")
    p = gm.model_params(prob)
    d, N = 7, 300_000
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, d))
    W[0, 0] += 2.0
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    a = np.array([1.3, -0.4, 0.9])
    X, y = nw.training_data(p, 2, N, d)
    f = nw.activation_function(p)(X @ W.T) @ a / 3
    x = 0.5 * np.asarray(y - f) ** 2
    risk = float(gm.population_risk(p, jnp.asarray(a), jnp.asarray(W)))
    assert abs(x.mean() - risk) < 4.5 * x.std() / math.sqrt(N)


def test_linear_network_matches_gaussian_model():
    """For a linear activation f(x; theta) is exactly Gaussian, so network GD and Gaussian-model GD have the
    same law: their realisation means agree within a few standard errors at every recorded time."""
    prob = dmft.Problem(m=3, n_over_d=2.0, tau=0.5, a0=0.8, h=[0.0, 1.0], target="activation")
    kw = dict(d=12, t_max=2.0, dt=0.1, record_every=5)
    net = nw.simulate(prob, seeds=150, init="orthogonal", **kw)
    gmod = gm.simulate(prob, seeds=range(9900, 10050), **kw)
    assert net.success and gmod.success and net.kind == "network_gd"
    np.testing.assert_allclose(net.t, gmod.t)
    for name in ("train_error", "test_error", "a", "v"):
        diff = net.mean(name)[1:] - gmod.mean(name)[1:]
        se = np.hypot(net.sem(name)[1:], gmod.sem(name)[1:])
        assert np.all(np.abs(diff) < 4.0 * se + 1e-12), (name, diff, se)
    # learning happens: the overlap with the target direction grows, the error falls
    assert net.mean("v")[-1] > 0.3 and net.mean("test_error")[-1] < net.mean("test_error")[0]


def test_sgd_runs_and_validates():
    prob = dmft.Problem(m=2, n_over_d=2.0, tau=0.5, h=[0.0, 1.0], target="activation")
    sim = nw.simulate(prob, d=10, t_max=1.0, dt=0.05, seeds=3, batch=5)
    assert sim.kind == "network_sgd" and sim.success
    assert sim.settings["sgd_learning_rate"] == pytest.approx(0.05 * 20 / 10)
    ds = sim.to_xarray()
    assert ds["test_error"].dims == ("seed", "time") and ds.attrs["kind"] == "network_sgd"
    with pytest.raises(ValueError, match="batch"):
        nw.simulate(prob, d=10, t_max=1.0, dt=0.05, seeds=3, batch=100)
    with pytest.raises(ValueError, match="seeds"):
        nw.simulate(prob, d=10, t_max=1.0, dt=0.05, seeds=0)
