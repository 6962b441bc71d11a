"""A custom activation's callable is part of its identity, everywhere an activation is used.

Regression tests for: two custom activations with the same label compared equal, so every cache of
compiled programs (ODE right-hand side, eps_g, SGD loop, test error) silently reused the first one.
References are closed forms for ``g = sin`` (no quadrature, no cache): for jointly Gaussian ``u, v``
with variances ``a, b`` and covariance ``c``, ``E[sin u sin v] = exp(-(a + b)/2) sinh(c)``, and the
normalised Hermite coefficients of ``sin`` are ``(-1)^((k-1)/2) e^{-1/2} / sqrt(k!)`` (odd ``k``).
"""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import learndyn  # noqa: F401  (enables float64)
from learndyn import activations as A
from learndyn import dmft, kernels, online
from learndyn.cli import app
from learndyn.kernels import signal
from learndyn.online import ode


def _tanh(x):
    return jnp.tanh(x)


def _sin(x):
    return jnp.sin(x)


def _sin_i2(a, b, c):
    """E[sin u sin v] for (u, v) ~ N(0, [[a, c], [c, b]])."""
    return np.exp(-(a + b) / 2.0) * np.sinh(c)


def _sin_eg(Q, R, T, v, vt):
    """eps_g = u^T I2(C) u / 2 with u = (v, -v*) for g = sin, in closed form."""
    C = np.block([[Q, R], [R.T, T]])
    d = np.diag(C)
    I2 = _sin_i2(d[:, None], d[None, :], C)
    u = np.concatenate([v, -vt])
    return 0.5 * u @ I2 @ u


# ------------------------------------------------------------------------------------------
# identity
# ------------------------------------------------------------------------------------------
def test_custom_activations_with_different_callables_differ():
    t = A.custom(lambda x: jnp.tanh(x), label="f")
    s = A.custom(lambda x: jnp.sin(x), label="f")
    assert t != s
    assert len({t, s}) == 2
    # the same callable: equal and hash-equal (a cache hit, no recompilation)
    assert A.custom(_sin, label="f") == A.custom(_sin, label="f")
    assert hash(A.custom(_sin)) == hash(A.custom(_sin))
    assert A.get(_sin) == A.get(_sin)
    # a custom tanh is not the named tanh (different programs), and fn belongs to custom only
    assert A.custom(_tanh, label="tanh") != A.tanh()
    with pytest.raises(ValueError, match="fn is only used with name='custom'"):
        A.Activation("tanh", fn=_sin)


def test_unhashable_callable_compares_by_identity():
    class Sin:
        __hash__ = None  # e.g. a dataclass with eq=True

        def __call__(self, x):
            return jnp.sin(x)

    f = Sin()
    assert A.custom(f) == A.custom(f) and hash(A.custom(f)) == hash(A.custom(f))
    assert A.custom(f) != A.custom(Sin())


# ------------------------------------------------------------------------------------------
# online: ODE and SGD caches
# ------------------------------------------------------------------------------------------
def _state():
    rng = np.random.default_rng(0)
    return online.OrderParameters.from_weights(0.5 * rng.standard_normal((1, 400)), rng.standard_normal((1, 400)),
                                               v=np.array([0.8]))


def test_ode_custom_callables_are_not_confused():
    init = _state()
    alphas = np.array([0.5, 1.0, 2.0])
    kw = dict(M=1, K=1, lr=0.5, quadrature_order=10)
    named = online.integrate(online.Problem(activation="tanh", **kw), init, alphas)
    ctanh = online.integrate(online.Problem(activation=A.custom(lambda x: jnp.tanh(x), label="f"), **kw), init, alphas)
    p_sin = online.Problem(activation=A.custom(lambda x: jnp.sin(x), label="f"), **kw)
    csin = online.integrate(p_sin, init, alphas)
    assert named.success and ctanh.success and csin.success
    # a custom tanh is the named tanh (same quadrature): ODE to 1e-6
    np.testing.assert_allclose(ctanh.eg, named.eg, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ctanh.Q, named.Q, rtol=0, atol=1e-6)
    # a custom sin with the same label is not: its eps_g is sin's closed form along its own trajectory
    assert np.max(np.abs(csin.eg - ctanh.eg)) > 1e-2
    ref = [_sin_eg(csin.Q[i], csin.R[i], csin.T, csin.v[i], csin.v_teacher) for i in range(len(csin.alpha))]
    np.testing.assert_allclose(csin.eg, ref, rtol=1e-8)
    # ... and its compiled right-hand side is sin's (the cached vector field against the eager rhs)
    cached = np.concatenate([np.ravel(a) for a in ode.vector_field(p_sin, init)])
    dQ, dR, dv = ode.rhs(p_sin, init.Q, init.R, init.v, init.T, init.v_teacher)
    np.testing.assert_allclose(cached, np.concatenate([np.ravel(dQ), np.ravel(dR), np.ravel(dv)]),
                               rtol=1e-12, atol=1e-14)


def test_sgd_custom_callables_are_not_confused():
    kw = dict(M=1, K=2, lr=0.5)
    opts = dict(N=64, alpha_max=2.0, seeds=2, alphas=np.array([1.0, 2.0]), test_set_size=512)
    tanh_run = online.simulate(online.Problem(activation=A.custom(lambda x: jnp.tanh(x), label="f"), **kw), **opts)
    p_sin = online.Problem(activation=A.custom(lambda x: jnp.sin(x), label="f"), **kw)
    sin_run = online.simulate(p_sin, **opts)
    assert np.max(np.abs(sin_run.Q - tanh_run.Q)) > 1e-3
    # eps_g from the overlaps is sin's closed form
    for s in range(2):
        ref = [_sin_eg(sin_run.Q[s, i], sin_run.R[s, i], sin_run.T[s], sin_run.v[s, i], sin_run.v_teacher[s])
               for i in range(len(sin_run.alpha))]
        np.testing.assert_allclose(sin_run.eg[s], ref, rtol=1e-8)
    # the SGD loop and the test error are sin's: the same run compiled afresh gives the same numbers
    online.clear_cache()
    fresh = online.simulate(p_sin, **opts)
    np.testing.assert_array_equal(fresh.Q, sin_run.Q)
    np.testing.assert_array_equal(fresh.eg_test, sin_run.eg_test)


# ------------------------------------------------------------------------------------------
# kernels and dmft
# ------------------------------------------------------------------------------------------
def test_kernels_custom_callables_are_not_confused():
    wv, bv = 1.5, 0.1
    q = np.array([0.3, 1.0, 2.5])
    tq = signal.q_map(A.custom(lambda x: jnp.tanh(x), label="f"), wv, bv, q)
    sq = signal.q_map(A.custom(lambda x: jnp.sin(x), label="f"), wv, bv, q)
    np.testing.assert_allclose(tq, signal.q_map("tanh", wv, bv, q), rtol=1e-10)
    np.testing.assert_allclose(sq, wv * (1 - np.exp(-2 * q)) / 2 + bv, rtol=1e-10)
    # fcn: NNGP of depth 1 = wv E[sin u sin v] + bv over the readin kernel
    x = np.random.default_rng(1).standard_normal((3, 5))
    k_t = kernels.fcn(1, lambda x: jnp.tanh(x), wv, bv).kernel(x, get="nngp").nngp
    k_s = kernels.fcn(1, lambda x: jnp.sin(x), wv, bv).kernel(x, get="nngp").nngp
    K0 = wv * x @ x.T / x.shape[1] + bv
    d = np.diag(K0)
    np.testing.assert_allclose(np.asarray(k_s).reshape(3, 3), wv * _sin_i2(d[:, None], d[None, :], K0) + bv,
                               rtol=1e-9)
    assert np.max(np.abs(np.asarray(k_t) - np.asarray(k_s))) > 1e-2


def test_dmft_custom_callables_are_not_confused():
    kw = dict(m=2, n_over_d=1.0, hermite_degree=9)
    pt = dmft.Problem(h=A.custom(lambda x: jnp.tanh(x), label="f"), **kw)
    ps = dmft.Problem(h=A.custom(lambda x: jnp.sin(x), label="f"), **kw)
    k = np.arange(10)
    ref = np.where(k % 2 == 1, np.exp(-1.0) / np.array([math.factorial(int(i)) for i in k]), 0.0)  # h = sinh(q)/e
    np.testing.assert_allclose(ps.h_series.c, ref, atol=1e-12)
    assert np.max(np.abs(pt.h_series.c - ps.h_series.c)) > 1e-2
    # NumPy-only callables remain fine here (DMFT evaluates activations on NumPy arrays)
    pn = dmft.Problem(h=lambda x: np.sin(np.asarray(x)), **kw)
    np.testing.assert_allclose(pn.h_series.c, ref, atol=1e-12)


# ------------------------------------------------------------------------------------------
# messages and accepted names
# ------------------------------------------------------------------------------------------
NAMES = ["erf", "relu", "linear", "leaky_relu", "abrelu(-0.5, 1)", "tanh", "sigmoid", "TanH", "leaky-relu",
         "leaky_relu(0.2)", "abrelu(a=-0.3, b=1.2)"]


@pytest.mark.parametrize("name", NAMES)
def test_every_name_is_accepted_everywhere(name):
    g = online.Problem(M=1, K=1, activation=name).g
    assert isinstance(g, A.Activation)
    assert kernels.fcn(2, name).layers[2].activation == A.get(name)
    assert math.isfinite(float(signal.q_map(name, 1.0, 0.1, 1.0)))
    assert dmft.Problem(m=2, n_over_d=1.0, h=name, hermite_degree=6).h_series.c[1] >= 0


def test_abrelu_strings_round_trip_through_str():
    for act in (A.abrelu(-0.3, 1.2), A.leaky_relu(0.2), A.abrelu(0.0, 2.5)):
        assert A.get(str(act)) == act


@pytest.mark.parametrize("build", [
    lambda bad: online.Problem(M=1, K=1, activation=bad),
    lambda bad: kernels.fcn(2, bad),
    lambda bad: signal.signal_propagation(bad, 1.0, 0.1),
    lambda bad: A.get(bad),
])
def test_unknown_name_one_message(build):
    with pytest.raises(ValueError) as exc:
        build("softsign")
    msg = str(exc.value)
    assert msg.startswith("activation: unknown name 'softsign'; allowed are")
    assert msg.count("activation:") == 1
    for name in ("erf", "relu", "linear", "tanh", "sigmoid", "leaky_relu", "abrelu(a, b)"):
        assert f"'{name}'" in msg
    assert "\n" not in msg


def test_dmft_unknown_name_names_the_parameter():
    with pytest.raises(ValueError, match=r"^h: unknown name 'softsign'; allowed are .*'leaky_relu'"):
        dmft.Problem(m=2, n_over_d=1.0, h="softsign")
    with pytest.raises(ValueError, match=r"^target: unknown name 'softsign'"):
        dmft.Problem(m=2, n_over_d=1.0, h=[0, 1.0], target="softsign")


def test_abrelu_without_slopes_says_how():
    with pytest.raises(ValueError, match=r"^activation: 'abrelu' needs its slopes: write 'abrelu\(a, b\)'"):
        online.Problem(M=1, K=1, activation="abrelu")


def _numpy_tanh(x):
    return np.tanh(np.asarray(x))


@pytest.mark.parametrize("build", [
    lambda f: online.Problem(M=1, K=1, activation=f),
    lambda f: kernels.fcn(2, f),
    lambda f: signal.q_map(f, 1.0, 0.1, 1.0),
    lambda f: learndyn.gaussian.quadrature_i2(f, np.eye(2)),
])
def test_numpy_callable_is_refused_at_the_boundary(build):
    with pytest.raises(ValueError) as exc:
        build(_numpy_tanh)
    msg = str(exc.value)
    assert msg.startswith("activation: '_numpy_tanh'") and "_numpy_tanh" in msg
    assert "JAX-traceable" in msg and "jax.numpy" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("fn, got", [
    (lambda x: "abc", "a str"),
    (lambda x: jnp.sum(x), "shape ()"),
    (lambda x: jnp.stack([x, x]), "shape (2, 3)"),
    (lambda x: x > 0, "dtype bool"),
])
def test_non_float_or_shape_changing_callable_is_refused(fn, got):
    for build in (lambda: online.Problem(M=1, K=1, activation=fn), lambda: kernels.fcn(1, fn)):
        with pytest.raises(ValueError, match=r"^activation: '<lambda>' \(.*<lambda>\): must map a float64 array "
                                             r"elementwise to floats of the same shape") as exc:
            build()
        assert got in str(exc.value)


def test_dmft_callable_returning_a_string_is_named():
    with pytest.raises(ValueError, match=r"^h: activation '<lambda>' \(.*<lambda>\): must map an array elementwise "
                                         r"to real numbers of the same shape .* it returned a str"):
        dmft.Problem(m=2, n_over_d=1.0, h=lambda x: "abc")


def test_cli_activation_names_and_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["ode", "--M", "1", "--K", "1", "--activation", "softsign", "--alpha-max", "1",
                              "--out", str(tmp_path / "x")])
    assert res.exit_code != 0
    text = " ".join(res.output.split())
    assert "unknown name 'softsign'" in text and "'leaky_relu'" in text and "activation: activation" not in text
    res = runner.invoke(app, ["signal", "--activation", "abrelu(-0.5, 1)"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["dmft", "--h", "softsign", "--out", str(tmp_path / "d")])
    assert res.exit_code != 0
    text = " ".join(res.output.split())
    assert "h: unknown name 'softsign'" in text and "'leaky_relu'" in text


# ------------------------------------------------------------------------------------------
# result files
# ------------------------------------------------------------------------------------------
def test_result_attrs_store_the_callables_qualified_name():
    p = online.Problem(M=1, K=1, activation=A.custom(_sin, label="sine"))
    stored = json.loads(learndyn.results.problem_attrs(p)["problem"])["activation"]
    assert stored["fn"] == f"{__name__}._sin"
    assert stored["name"] == "custom" and stored["label"] == "sine"
    raw = online.Problem(M=1, K=1, activation=_sin)
    assert json.loads(learndyn.results.problem_attrs(raw)["problem"])["activation"] == f"{__name__}._sin"
