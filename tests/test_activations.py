"""Tests of learndyn.activations: scale rule g(x) = f(s x), derivatives, resolution and validation."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf as np_erf

import learndyn  # noqa: F401  (enables float64)
from learndyn import activations as A

X = np.linspace(-3.0, 3.0, 41)

NUMPY_BASE = {
    "erf": np_erf,
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


@pytest.mark.parametrize("name", sorted(NUMPY_BASE))
@pytest.mark.parametrize("scale", [1.0, 1.0 / math.sqrt(2.0), 2.5])
def test_scale_rule_value(name, scale):
    g = A.Activation(name, scale=scale)
    np.testing.assert_allclose(np.asarray(g(X)), NUMPY_BASE[name](scale * X), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", sorted(NUMPY_BASE))
@pytest.mark.parametrize("scale", [1.0, 0.7])
def test_grad_matches_central_differences(name, scale):
    g = A.Activation(name, scale=scale)
    x = X[np.abs(X) > 0.05]  # away from the ReLU kink
    h = 1e-6
    fd = (NUMPY_BASE[name](scale * (x + h)) - NUMPY_BASE[name](scale * (x - h))) / (2 * h)
    np.testing.assert_allclose(np.asarray(g.grad(x)), fd, rtol=1e-7, atol=1e-8)


def test_erf_convention_of_the_teacher_student_literature():
    """erf(x/sqrt2) (Saad & Solla; Goldt et al.) has g'(0) = sqrt(2/pi)."""
    g = A.erf(1.0 / math.sqrt(2.0))
    assert abs(float(g.grad(0.0)) - math.sqrt(2.0 / math.pi)) < 1e-15


def test_abrelu_and_leaky_relu():
    g = A.abrelu(-0.3, 1.2, scale=2.0)
    np.testing.assert_allclose(np.asarray(g(X)), np.where(X > 0, 1.2 * 2 * X, -0.3 * 2 * X), rtol=1e-15)
    np.testing.assert_allclose(np.asarray(g.grad(X)), 2 * np.where(X > 0, 1.2, -0.3), rtol=1e-15)
    lk = A.get("leaky_relu")
    assert lk.name == "abrelu" and lk.a == 0.01 and lk.b == 1.0


def test_relu_grad_at_zero_is_zero():
    """Theta(0) = 0: the convention behind the zero-variance cases of learndyn.gaussian."""
    assert float(A.relu().grad(jnp.asarray(0.0))) == 0.0
    assert float(A.abrelu(-0.3, 1.2).grad(jnp.asarray(0.0))) == -0.3


def test_custom_callable_and_get():
    g = A.get(lambda x: jnp.sin(x), scale=0.5)
    assert g.name == "custom" and not g.has_closed_form
    np.testing.assert_allclose(np.asarray(g(X)), np.sin(0.5 * X), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(g.grad(X)), 0.5 * np.cos(0.5 * X), rtol=1e-13, atol=1e-15)
    assert A.get("ReLU").name == "relu"
    assert A.get("erf", scale=0.5).scale == 0.5
    e = A.erf()
    assert A.get(e) is e
    assert A.relu().has_closed_form and not A.tanh().has_closed_form


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: A.Activation("softsign"), "unknown name"),
        (lambda: A.get("softsign"), "unknown name"),
        (lambda: A.Activation("tanh", scale=0.0), "scale"),
        (lambda: A.Activation("tanh", scale=-1.0), "scale"),
        (lambda: A.Activation("custom"), "callable"),
        (lambda: A.get("abrelu"), "slopes"),
        (lambda: A.get(3.0), "expected a name"),
    ],
)
def test_validation_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_str():
    assert str(A.relu()) == "relu"
    assert "0.5" in str(A.tanh(0.5))
    assert str(A.custom(np.sin, label="sine")) == "sine"


# ------------------------------------------------------------------------------------------
# adding an activation is one place: a Family, registered once, reaches every theory
# ------------------------------------------------------------------------------------------
class _Sine(A.Family):
    """``sin``, with the closed forms ``E[sin u sin v] = e^{-(a+b)/2} sinh(c)`` and
    ``E[cos u cos v] = e^{-(a+b)/2} cosh(c)``; I3, I4 and the rest inherited (quadrature)."""

    name = "test_sine"
    known_traceable = True
    calls: set = set()

    def base(self, act):
        return jnp.sin

    def i2(self, act, C, order):
        self.calls.add("i2")
        s2 = act.scale ** 2
        return jnp.exp(-s2 * (C[..., 0, 0] + C[..., 1, 1]) / 2) * jnp.sinh(s2 * C[..., 0, 1])

    def j2(self, act, C, order):
        self.calls.add("j2")
        s2 = act.scale ** 2
        return s2 * jnp.exp(-s2 * (C[..., 0, 0] + C[..., 1, 1]) / 2) * jnp.cosh(s2 * C[..., 0, 1])


_SINE = _Sine()


@pytest.fixture(autouse=True, scope="module")
def _registered_sine():
    """``test_sine`` is known only while this module's tests run (the registry is per process, and other test
    modules in the same worker must see the built-in names only)."""
    A.register(_SINE, replace=True)
    yield
    A.unregister("test_sine")


def test_unregister_forgets_the_name_and_keeps_the_built_ins():
    probe = type("_Probe", (A.Family,), {"name": "probe_unregister"})()
    A.register(probe)
    assert "probe_unregister" in A.families()
    A.unregister("probe_unregister")
    assert "probe_unregister" not in A.families() and "probe_unregister" not in A.allowed()
    with pytest.raises(ValueError, match="unknown name"):
        A.get("probe_unregister")
    with pytest.raises(ValueError, match="built-in"):
        A.unregister("erf")
    with pytest.raises(ValueError, match="no family"):
        A.unregister("probe_unregister")


def _np_sin_i2(a, b, c):
    return np.exp(-(a + b) / 2.0) * np.sinh(c)


def _np_cos_j2(a, b, c):
    return np.exp(-(a + b) / 2.0) * np.cosh(c)


def test_registered_family_is_resolved_by_name():
    g = A.get("test_sine")
    assert g.name == "test_sine" and g.family is _SINE and str(g) == "test_sine"
    assert g == A.get("Test_Sine") and g != A.custom(jnp.sin) and A.get("test_sine", scale=0.5).scale == 0.5
    np.testing.assert_allclose(np.asarray(g.grad(X)), np.cos(X), rtol=1e-14)  # autodiff of the base function
    assert not g.has_closed_form and not g.exact_integrals and g.homogeneous_gain is None and g.ode_method == "dopri8"
    with pytest.raises(ValueError, match="built-in"):
        A.register(type("Erf2", (A.Family,), {"name": "erf"})())
    with pytest.raises(ValueError, match="taken"):
        A.register(_Sine())
    with pytest.raises(ValueError, match="lower-case identifier"):
        A.register(type("Bad", (A.Family,), {"name": "Bad name"})())


def test_registered_family_reaches_the_ode_the_kernels_and_signal_propagation():
    """One Family definition gives the ODE, the NNGP/NTK and signal propagation, checked against sin's closed
    forms written here in NumPy and against the same activation as a custom callable (all by quadrature)."""
    from scipy.optimize import brentq

    from learndyn import kernels, online
    from learndyn.kernels import signal

    _SINE.calls.clear()
    # ODE: eps_g along the trajectory is sin's closed form; the trajectory is the quadrature one's
    rng = np.random.default_rng(0)
    init = online.OrderParameters.from_weights(0.5 * rng.standard_normal((2, 300)), rng.standard_normal((1, 300)),
                                               v=np.array([0.8, -0.4]))
    alphas = np.array([0.5, 1.0, 2.0])
    kw = dict(M=1, K=2, lr=0.5, sigma=0.1, train_second_layer=True, quadrature_order=10)
    fam = online.integrate(online.Problem(activation="test_sine", **kw), init, alphas)
    quad = online.integrate(online.Problem(activation=A.custom(jnp.sin), **kw), init, alphas)
    assert fam.success and quad.success and {"i2", "j2"} <= _SINE.calls
    for i in range(len(alphas)):
        C = np.block([[fam.Q[i], fam.R[i]], [fam.R[i].T, fam.T]])
        d = np.diag(C)
        u = np.concatenate([fam.v[i], -fam.v_teacher])
        assert abs(fam.eg[i] - 0.5 * u @ _np_sin_i2(d[:, None], d[None, :], C) @ u) < 1e-12
    np.testing.assert_allclose(fam.Q, quad.Q, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fam.v, quad.v, rtol=0, atol=1e-8)

    # kernels: depth-1 NNGP and NTK, K1 = wv V(K0) + bv, Theta1 = K1 + wv Vdot(K0) Theta0 (Theta0 = K0)
    _SINE.calls.clear()
    wv, bv = 1.5, 0.1
    x = rng.standard_normal((3, 5))
    k = kernels.fcn(1, "test_sine", wv, bv).kernel(x)
    K0 = wv * x @ x.T / x.shape[1] + bv
    d = np.diag(K0)
    K1 = wv * _np_sin_i2(d[:, None], d[None, :], K0) + bv
    np.testing.assert_allclose(np.asarray(k.nngp).reshape(3, 3), K1, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(k.ntk).reshape(3, 3),
                               K1 + wv * _np_cos_j2(d[:, None], d[None, :], K0) * K0, rtol=1e-12)
    assert {"i2", "j2"} <= _SINE.calls

    # signal propagation: q* = wv (1 - e^{-2q*})/2 + bv, chi_1 = wv E[cos^2] = wv (1 + e^{-2q*})/2
    _SINE.calls.clear()
    sp = signal.signal_propagation("test_sine", wv, bv)
    q_ref = brentq(lambda q: wv * (1 - np.exp(-2 * q)) / 2 + bv - q, 1e-6, 10.0, xtol=1e-15)
    assert abs(float(sp.q_star) - q_ref) < 1e-10
    assert abs(float(sp.chi_1) - wv * (1 + np.exp(-2 * q_ref)) / 2) < 1e-9
    assert "i2" in _SINE.calls
