"""Finite-N online SGD (issue 3): update rule vs autodiff, agreement with the ODE, faults, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learndyn import gaussian, online, results
from learndyn.online import sgd_engine, streams
from learndyn.online import compare

ALPHAS = np.array([0.0, 1.0, 2.0, 4.0, 6.0, 10.0])


def relu_i4_available() -> bool:
    try:
        gaussian.relu_i4(jnp.eye(4))
        return True
    except NotImplementedError:
        return False


# ------------------------------------------------------------------------------------------
# the update rule against autodiff of the loss
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation,both,kappa,B", [("erf", True, 0.0, 1), ("relu", False, 0.0, 1),
                                                      ("erf", True, 0.3, 3), ("tanh", True, 0.0, 2)])
def test_update_matches_autodiff_of_the_loss(activation, both, kappa, B):
    N, K, M = 40, 3, 2
    prob = online.Problem(M=M, K=K, activation=activation, lr=0.7, lr2=0.4, sigma=0.3, train_second_layer=both,
                          weight_decay=kappa)
    rng = np.random.default_rng(1)
    w, wt = rng.standard_normal((K, N)), rng.standard_normal((M, N))
    v, vt = rng.standard_normal(K), rng.standard_normal(M)
    x, zeta = rng.standard_normal((B, N)), rng.standard_normal(B)
    g = prob.g  # autodiff differentiates g itself, not the closed-form g' the simulator uses

    def loss(w, v):  # mean over the batch of (phi - y)^2 / 2
        y = g(x @ wt.T / math.sqrt(N)) @ vt + prob.sigma * zeta
        phi = g(x @ w.T / math.sqrt(N)) @ v
        return 0.5 * jnp.mean((phi - y) ** 2)

    gw, gv = jax.grad(loss, argnums=(0, 1))(jnp.asarray(w), jnp.asarray(v))
    # conventions: first layer steps eta on its gradient, second layer eta_2 / N; decay -(kappa/N) w
    w_exp = (1 - kappa / N) * w - prob.lr * np.asarray(gw)
    v_exp = (1 - kappa / N) * v - prob.eta2 / N * np.asarray(gv) if both else v
    w_new, v_new = online.sgd_update(prob, w, v, wt, vt, x if B > 1 else x[0], zeta if B > 1 else zeta[0])
    np.testing.assert_allclose(np.asarray(w_new), w_exp, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.asarray(v_new), v_exp, rtol=1e-12, atol=1e-13)


def _numpy_reference(prob, w, v, wt, vt, xs, zetas):
    """Plain step-by-step SGD in NumPy (Goldt et al. 2019, eqs. (2)-(3)): ``xs`` (T, B, N), ``zetas`` (T, B)."""
    from scipy.special import erf

    g = {"erf": lambda z: erf(z / math.sqrt(2)), "relu": lambda z: np.maximum(z, 0.0)}[prob.g.name]
    dg = {"erf": lambda z: math.sqrt(2 / math.pi) * np.exp(-z * z / 2), "relu": lambda z: (z > 0) * 1.0}[prob.g.name]
    N = w.shape[1]
    c = 1 - prob.weight_decay / N
    w, v = w.copy(), v.copy()
    out = [(w.copy(), v.copy())]
    for x, zeta in zip(xs, zetas):
        B = x.shape[0]
        lam, rho = w @ x.T / math.sqrt(N), wt @ x.T / math.sqrt(N)  # (K, B), (M, B)
        delta = v @ g(lam) - (vt @ g(rho) + prob.sigma * zeta)  # (B,)
        w_new = c * w - prob.lr / math.sqrt(N) * ((v[:, None] * dg(lam) * delta) @ x) / B
        if prob.train_second_layer:
            v = c * v - prob.eta2 / N * (g(lam) @ delta) / B
        w = w_new
        out.append((w.copy(), v.copy()))
    return out


@pytest.mark.parametrize("activation,both,kappa,B", [("erf", True, 0.0, 1), ("erf", False, 0.5, 1),
                                                      ("relu", True, 0.3, 3)])
def test_simulator_equals_step_by_step_reference(activation, both, kappa, B):
    """The simulator draws blocks of inputs ahead and applies them step by step; a plain NumPy loop over the
    same inputs must give the same weights to rounding. Records fall inside blocks (partial blocks)."""
    N, K, M, seeds = 60, 3, 2, [3, 11]
    prob = online.Problem(M=M, K=K, activation=activation, lr=0.8, lr2=0.6, sigma=0.4, train_second_layer=both,
                          weight_decay=kappa)
    steps = np.array([0, 1, 37, 100, 101, 250, 333])
    sim = online.simulate(prob, N, seeds=seeds, times=steps / N, batch_size=B)
    assert sim.success and sgd_engine.engine_shape(prob, N, len(seeds), B).block > 1
    st = sgd_engine.EngineShape(g=prob.g, K=K, M=M, N=N, batch=B, train_v=both, decay=kappa > 0, rng="splitmix",
                                block=1)
    offs = jnp.asarray(np.array([streams.seed_offset(s) for s in seeds], dtype=np.uint64))
    # compiled like the simulator's draw (op-by-op float32 evaluation would round differently)
    z = np.asarray(jax.jit(jax.vmap(lambda t: sgd_engine.draw(st, offs, jnp.full(len(seeds), t, jnp.int64))))(
        jnp.arange(steps[-1])))  # (T, S, 2 words)
    for i, s in enumerate(seeds):
        iw = online.initial_weights(prob, N, "large", s)
        xs = z[:, i, : B * N].reshape(-1, B, N)
        ref = _numpy_reference(prob, iw.w, iw.v, iw.w_teacher, iw.v_teacher, xs, z[:, i, B * N: B * N + B])
        for r, t in enumerate(steps):
            w, v = ref[t]
            np.testing.assert_allclose(sim.Q[i, r], w @ w.T / N, rtol=1e-10, atol=1e-13, err_msg=f"Q step {t}")
            np.testing.assert_allclose(sim.R[i, r], w @ iw.w_teacher.T / N, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(sim.v[i, r], v, rtol=1e-10, atol=1e-13)
        assert np.abs(ref[-1][0] - iw.w).max() > 0.1  # the weights did move


def test_box_muller_transform_against_float64():
    """The float32 Box-Muller of the simulator against float64 Box-Muller of the same 64 random bits,
    including the extremes (radius from q -> 1 via the series branch, and q = 2^-32)."""
    rng = np.random.default_rng(3)
    hi = np.concatenate([rng.integers(0, 2**32, 20000), [0, 1, 2**32 - 1, 2**32 - 2, 2**32 - 2**26, 2**31]])
    hi[:2000] = 2**32 - np.round(2.0 ** rng.uniform(0, 29, 2000)).astype(np.int64)  # q close to 1: small radii
    lo = rng.integers(0, 2**32, hi.size)
    lo[:4] = [0, 2**30 - 1, 2**30, 2**32 - 1]  # quadrant edges
    z = (hi.astype(np.uint64) << np.uint64(32)) | lo.astype(np.uint64)
    got = np.asarray(jax.jit(streams.normals_from_words)(jnp.asarray(z)))
    q = ((hi >> 1).astype(np.float64) + 0.5) * 2.0**-31
    r = np.sqrt(-2 * np.log1p(-(((2**31 - 1 - (hi >> 1)).astype(np.float64) + 0.5) * 2.0**-31)))
    assert np.allclose(r, np.sqrt(-2 * np.log(q)), rtol=1e-6, atol=0)
    theta = ((lo >> 30) + ((lo & (2**30 - 1)) + 0.5) * 2.0**-30) * (np.pi / 2)
    expect = np.concatenate([r * np.cos(theta), r * np.sin(theta)])
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-6)
    small = r[:2000] < 1e-2  # small radii keep their relative precision
    assert small.sum() > 500
    n = hi.size
    r_got = np.hypot(got[:n], got[n:])
    np.testing.assert_allclose(r_got[:2000][small], r[:2000][small], rtol=3e-6, atol=0)
    assert np.abs(got).max() < 6.67


def test_random_inputs_are_standard_normal_and_independent():
    st = sgd_engine.EngineShape(g=online.conventions.activation("erf"), K=1, M=1, N=999, batch=1, train_v=False,
                                decay=False, rng="splitmix", block=1)
    offs = jnp.asarray(np.array([streams.seed_offset(s) for s in range(4)], dtype=np.uint64))
    draw = jax.jit(jax.vmap(lambda t: sgd_engine.draw(st, offs, jnp.full(4, t, jnp.int64))))
    z = np.asarray(draw(jnp.arange(200)))  # (t, s, n)
    x = z[..., :1000]
    n = x.size
    assert abs(x.mean()) < 5 / math.sqrt(n)
    assert abs(x.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs((x**4).mean() - 3) < 5 * math.sqrt(96 / n)
    # no correlation between consecutive steps, between seeds, or between neighbouring coordinates
    for a, b in [(x[1:], x[:-1]), (x[:, 1:], x[:, :-1]), (x[..., 1:], x[..., :-1])]:
        assert abs(np.mean(a * b)) < 5 / math.sqrt(a.size)


# ------------------------------------------------------------------------------------------
# simulation against the ODE
# ------------------------------------------------------------------------------------------
def _agreement(prob, N=1000, seeds=8, alphas=ALPHAS, **kw):
    c = compare(prob, N=N, seeds=seeds, alphas=alphas, **kw)
    assert c.simulation.success and all(s == "success" for s in c.ode_status)
    # within statistical error: each time's mean deviation below 5 standard errors (t-distribution, 5-7 dof:
    # P(|t| > 5) < 0.005), and a small deviation in absolute terms
    assert c.z_max < 5.0, c.summary()
    assert c.max_rel_dev < 0.1, c.summary()
    # and not trivially: SGD runs do fluctuate around the ODE at finite N
    assert c.rms_dev > 0
    return c


@pytest.mark.parametrize("both", [True, False])
def test_sgd_matches_ode_erf(both):
    prob = online.Problem(M=2, K=3, activation="erf", lr=0.5, sigma=0.1, train_second_layer=both)
    _agreement(prob)


@pytest.mark.skipif(not relu_i4_available(), reason="ReLU I4 (gaussian.relu_i4) not available yet")
@pytest.mark.parametrize("both", [True, False])
def test_sgd_matches_ode_relu(both):
    prob = online.Problem(M=2, K=3, activation="relu", lr=0.3, sigma=0.1, train_second_layer=both)
    # the ReLU ODE evaluates its I4 by 1-D integrals (slow): 6 seeds, alpha <= 6, rtol 1e-6 (SGD errors ~1e-2)
    _agreement(prob, seeds=6, alphas=np.array([0.0, 0.5, 1.0, 2.0, 4.0, 6.0]), init="mixed" if both else "large",
               rtol=1e-6, atol=1e-10)


def test_initial_overlaps_hand_off_exactly():
    prob = online.Problem(M=2, K=3, activation="erf", lr=0.5, sigma=0.1, train_second_layer=True)
    N = 300
    sim = online.simulate(prob, N, seeds=[5, 9], alphas=ALPHAS)
    for s in (5, 9):
        iw = online.initial_weights(prob, N, "large", s)
        w, wt = iw.w, iw.w_teacher
        st = sim.initial_state(s)
        np.testing.assert_array_equal(st.R, w @ wt.T / N)
        np.testing.assert_allclose(st.Q, w @ w.T / N, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(st.v, iw.v)
        # the alpha = 0 record and the ODE started from the hand-off agree to rounding
        i = list(sim.seeds).index(s)
        np.testing.assert_allclose(sim.Q[i, 0], st.Q, atol=1e-13)
        traj = online.integrate(prob, st, alphas=ALPHAS)
        assert traj.eg[0] == pytest.approx(sim.eg[i, 0], rel=1e-12)
        assert traj.eg[0] == pytest.approx(online.generalisation_error(prob, st), rel=1e-12)
    # recorded eg equals the ODE module's eg of the recorded state (independent implementation)
    assert sim.eg[1, 1] == pytest.approx(online.generalisation_error(prob, sim.state(9, 1)), rel=1e-12)


def test_test_set_error_agrees_with_order_parameter_error():
    prob = online.Problem(M=2, K=3, activation="erf", lr=0.5, sigma=0.1, train_second_layer=True)
    P = 20000
    sim = online.simulate(prob, 400, seeds=2, alphas=[0.0, 2.0], test_set_size=P)
    # half squared error of a roughly Gaussian error: relative standard error sqrt(2/P) = 1%
    np.testing.assert_allclose(sim.eg_test, sim.eg, rtol=5 * math.sqrt(2 / P) * 1.5)
    ds = sim.to_xarray()
    assert set(ds["Q"].dims) == {"seed", "alpha", "k", "l"} and "eg_test" in ds


def test_minibatch_linear_asymptotic_error():
    """Mini-batch B divides the eta^2 terms by B: for linear first-layer training (v = v* = 1)
    eps* = K eta sigma^2 / (2 (2B - K eta)) (the linear first-layer fixed point with the batch average)."""
    K, eta, sigma = 2, 0.8, 0.5
    prob = online.Problem(M=1, K=K, activation="linear", lr=eta, sigma=sigma, train_second_layer=False)
    for B in (1, 4):
        sim = online.simulate(prob, 400, seeds=4, alphas=np.linspace(0, 40, 41), batch_size=B, init="small")
        late = sim.eg[:, 20:]  # stationary part
        expect = K * eta * sigma**2 / (2 * (2 * B - K * eta))
        assert np.mean(late) == pytest.approx(expect, rel=0.12), B


# ------------------------------------------------------------------------------------------
# faults and bad input
# ------------------------------------------------------------------------------------------
def test_divergence_reports_seed_and_alpha_and_keeps_data():
    prob = online.Problem(M=1, K=2, activation="linear", lr=1.5, train_second_layer=False)  # K eta > 2
    with pytest.warns(RuntimeWarning, match="diverged"):
        sim = online.simulate(prob, 200, seeds=2, alphas=np.arange(0, 30.0))
    assert sim.status == "diverged"
    assert list(sim.seed_status) == ["diverged", "diverged"]
    assert np.all((sim.diverged_alpha > 1) & (sim.diverged_alpha < 30))
    assert "seed 0" in sim.message and "seed 1" in sim.message
    first = int(np.searchsorted(sim.alpha, sim.diverged_alpha.min()))
    assert np.all(np.isfinite(sim.eg[:, :first]))  # data before the divergence is kept
    assert np.all(np.isnan(sim.eg[:, -1]))


def test_ctrl_c_leaves_readable_partial_file(tmp_path, monkeypatch):
    prob = online.Problem(M=2, K=2, activation="erf", lr=0.5, train_second_layer=False)
    real = sgd_engine.compiled
    calls = {"n": 0}

    def patched(st, shards=1):
        advance, overlaps, place = real(st, shards)

        def interrupting(state, n, params):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
            return advance(state, n, params)

        return interrupting, overlaps, place

    monkeypatch.setattr(sgd_engine, "compiled", patched)
    path = tmp_path / "partial.nc"
    with pytest.warns(RuntimeWarning, match="interrupted"):
        sim = online.simulate(prob, 100, seeds=2, alphas=np.arange(0, 10.0), save_path=path)
    assert sim.status == "interrupted"
    ds = results.load_dataset(path)
    assert ds.attrs["status"] == "interrupted"
    assert 1 <= ds.sizes["alpha"] < 10
    assert np.all(np.isfinite(ds["eg"].values))


def test_invalid_input_raises_clear_errors():
    prob = online.Problem(M=2, K=2, activation="erf", lr=0.5)
    for kw, match in [
        (dict(N=0, alpha_max=1), "N"), (dict(N=10.5, alpha_max=1), "N"),
        (dict(N=10, alpha_max=1, seeds=0), "seeds"), (dict(N=10, alpha_max=1, seeds=[1, 1]), "seeds"),
        (dict(N=10, alpha_max=1, seeds=[-2]), "seeds"), (dict(N=10, alpha_max=-1), "alpha_max"),
        (dict(N=10), "alpha_max"), (dict(N=10, alphas=[2.0, 1.0]), "alphas"),
        (dict(N=10, alpha_max=1, batch_size=0), "batch_size"), (dict(N=10, alpha_max=1, rng="mt"), "rng"),
        (dict(N=10, alpha_max=1, test_set_size=-1), "test_set_size"),
        (dict(N=10, alpha_max=1, init="huge"), "init"),
    ]:
        with pytest.raises(ValueError, match=match):
            online.simulate(prob, **kw)
    for bad in (dict(lr=0.0), dict(lr=-0.1), dict(lr=float("nan")), dict(lr2=-1.0), dict(sigma=-0.1)):
        with pytest.raises(ValueError, match="lr|sigma"):
            online.Problem(M=2, K=2, **bad)


def test_seeds_split_over_cpu_devices_give_the_same_run(monkeypatch):
    """Seeds split over several CPU devices (one shard per core) follow exactly the single-program run."""
    import jax

    if sgd_engine.seed_shards(4) < 2:
        pytest.skip("one CPU device only (LEARNDYN_CPU_DEVICES=1 or a single core)")
    prob = online.Problem(M=2, K=3, activation="erf", lr=0.6, sigma=0.2, train_second_layer=True)
    alphas = np.array([0.0, 0.5, 1.3, 2.0])
    split = online.simulate(prob, 80, seeds=[1, 2, 5, 9], alphas=alphas)
    monkeypatch.setattr(sgd_engine, "seed_shards", lambda S: 1)
    whole = online.simulate(prob, 80, seeds=[1, 2, 5, 9], alphas=alphas)
    assert len(jax.devices("cpu")) >= 2
    np.testing.assert_allclose(split.Q, whole.Q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(split.v, whole.v, rtol=1e-12, atol=1e-14)


def test_clear_cache_forgets_the_compiled_programs():
    """online.clear_cache empties the compile caches of the SGD engine (and of the ODEs); the next run compiles
    afresh and gives the same numbers."""
    prob = online.Problem(M=1, K=2, activation="erf", lr=0.5)
    opts = dict(seeds=2, alphas=[0.0, 1.0], test_set_size=256)
    first = online.simulate(prob, 64, **opts)
    assert sgd_engine.compiled.cache_info().currsize > 0 and sgd_engine.compiled_test_error.cache_info().currsize > 0
    online.clear_cache()
    assert sgd_engine.compiled.cache_info().currsize == 0 and sgd_engine.compiled_test_error.cache_info().currsize == 0
    again = online.simulate(prob, 64, **opts)
    np.testing.assert_array_equal(again.Q, first.Q)
    np.testing.assert_array_equal(again.eg_test, first.eg_test)
