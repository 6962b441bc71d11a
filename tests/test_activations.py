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
