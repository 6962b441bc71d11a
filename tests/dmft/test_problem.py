"""dmft.Problem: validation (bad input), centring, Hermite expansions against closed-form kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learndyn import dmft


def test_api_example_and_derived_quantities():
    p = dmft.Problem(m=4, n_over_d=1.5, tau=1.0, a0=1.0, h=[0.0, 0.1, 0.5], target=None, train_second_layer=True)
    assert p.alpha == pytest.approx(1.5 / 4)
    assert p.pure_noise and p.phi_norm2 == 0.0
    # h, h', h'' of 0.1 z + 0.5 z^2 at z = 0.3, by hand
    assert p.h_series(0.3) == pytest.approx(0.03 + 0.045)
    assert p.h_series.d1(0.3) == pytest.approx(0.1 + 0.3)
    assert p.h_series.d2(0.3) == pytest.approx(1.0)
    # stiffness alpha a0^2 (h'(1)/m + (1 - 1/m) h'(0))
    assert p.stiffness == pytest.approx(0.375 * (1.1 / 4 + 0.75 * 0.1))
    q = dmft.Problem(m=4, n_over_d=1.5, h=[0, 0.9, 0.5], target="activation")
    assert np.allclose(q.hatphi.c, q.h_series.c) and q.phi_norm2 == pytest.approx(1.4)
    assert q.is_symmetric
    assert not dmft.Problem(m=3, n_over_d=1.0, a0=[1, 2, 3]).is_symmetric


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(m=0, n_over_d=1.0), "m"),
        (dict(m=2.5, n_over_d=1.0), "m"),
        (dict(m=True, n_over_d=1.0), "m"),
        (dict(m=2, n_over_d=0.0), "n_over_d"),
        (dict(m=2, n_over_d=-1.0), "n_over_d"),
        (dict(m=2, n_over_d=float("nan")), "n_over_d"),
        (dict(m=2, n_over_d=1.0, tau=-0.1), "tau"),
        (dict(m=2, n_over_d=1.0, tau=float("inf")), "tau"),
        (dict(m=2, n_over_d=1.0, a0=[1.0, 2.0, 3.0]), "a0"),
        (dict(m=2, n_over_d=1.0, h=[0.0, -0.1, 0.5]), "h"),
        (dict(m=2, n_over_d=1.0, h=[0.0, 0.0]), "h"),
        (dict(m=2, n_over_d=1.0, h="no-such-activation"), "h"),
        (dict(m=2, n_over_d=1.0, h=[0, 1.0], target=[0.1, 0.5]), "target"),
        (dict(m=2, n_over_d=1.0, h=[0, 1.0], target=[0, 0.5, 0.3]), "target"),
        (dict(m=2, n_over_d=1.0, h=[0, 1.0], target=[0, 0.5], target_norm2=0.1), "target_norm2"),
        (dict(m=2, n_over_d=1.0, target_norm2=1.0), "target_norm2"),
        (dict(m=2, n_over_d=1.0, C0=[[1.0, 1.5], [1.5, 1.0]]), "C0"),
        (dict(m=2, n_over_d=1.0, C0=[[1.0, 0.2], [0.3, 1.0]]), "C0"),
        (dict(m=2, n_over_d=1.0, C0=[[2.0, 0.0], [0.0, 1.0]]), "C0"),
        (dict(m=2, n_over_d=1.0, C0=np.eye(3)), "C0"),
        (dict(m=2, n_over_d=1.0, v0=0.5), "v0"),  # pure noise has no target direction
        (dict(m=2, n_over_d=1.0, target="activation", v0=[0.9, -0.9], C0=[[1, 0.9], [0.9, 1]]), "C0 - v0"),
        (dict(m=2, n_over_d=1.0, train_second_layer="yes"), "train_second_layer"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dmft.Problem(**kwargs)


def test_uncentred_h_is_refused_with_explanation():
    with pytest.raises(ValueError) as exc:
        dmft.Problem(m=2, n_over_d=1.0, h=[0.2, 0.3, 0.5])
    msg = str(exc.value)
    assert "h(0)" in msg and "centred" in msg and "E sigma(G)" in msg


def test_relu_kernel_is_centred_arc_cosine():
    # h(q) = E[relu(G1) relu(Gq)] - (E relu)^2: arc-cosine kernel minus 1/(2 pi) (closed form, independent)
    p = dmft.Problem(m=2, n_over_d=1.0, h="relu", target="relu", hermite_degree=40)
    assert p.h_series.c[0] == 0.0
    for q in (0.0, 0.3, 0.6):
        exact = (math.sqrt(1 - q * q) + q * (math.pi - math.acos(q))) / (2 * math.pi) - 1 / (2 * math.pi)
        assert float(p.h_series(q)) == pytest.approx(exact, abs=1e-12)
    # near q = 1 the truncation error of the slowly decaying ReLU series shows: degree 80 gives ~2e-9 at q = 0.9
    p80 = dmft.Problem(m=2, n_over_d=1.0, h="relu", hermite_degree=80)
    q = 0.9
    exact = (math.sqrt(1 - q * q) + q * (math.pi - math.acos(q))) / (2 * math.pi) - 1 / (2 * math.pi)
    assert float(p80.h_series(q)) == pytest.approx(exact, abs=1e-8)
    # ||phi||^2 = Var relu(G) = 1/2 - 1/(2 pi)
    assert p.phi_norm2 == pytest.approx(0.5 - 1 / (2 * math.pi), rel=1e-10)
    assert np.allclose(p.hatphi.c, p.h_series.c, atol=1e-12)


def test_erf_kernel_matches_arcsine_formula():
    # E[erf(x) erf(y)] = (2/pi) arcsin(2q/3) for unit-variance x, y with correlation q
    p = dmft.Problem(m=2, n_over_d=1.0, h="erf", hermite_degree=30)
    for q in (0.2, 0.5, 0.8):
        assert float(p.h_series(q)) == pytest.approx(2 / math.pi * math.asin(2 * q / 3), abs=1e-8)
        # h'(q) = (2/pi) (2/3) / sqrt(1 - 4q^2/9)
        assert float(p.h_series.d1(q)) == pytest.approx(4 / (3 * math.pi) / math.sqrt(1 - 4 * q * q / 9), abs=1e-7)


def test_quadratic_activation_exact_coefficients():
    # sigma = x^2 (mean 1, centred to x^2 - 1 = sqrt 2 He_2/sqrt 2!): h = 2 q^2
    p = dmft.Problem(m=2, n_over_d=1.0, h=lambda x: x**2, target=lambda x: 0.5 * x + x**2)
    assert np.allclose(p.h_series.c, [0, 0, 2], atol=1e-12)
    # phi = 0.5 He_1 + (He_2 + 1): f_1 = 0.5, f_2 = sqrt 2; hatphi = s_2 f_2 q^2 = 2 q^2; ||phi||^2 = 0.25 + 2
    assert np.allclose(p.hatphi.c[:3], [0, 0, 2], atol=1e-12)
    assert p.phi_norm2 == pytest.approx(2.25, rel=1e-12)


def test_target_coefficients_norm():
    p = dmft.Problem(m=2, n_over_d=1.0, h=[0, 0.9, 0.5], target=[0, 0.3, 0.2])
    assert p.phi_norm2 == pytest.approx(0.3**2 / 0.9 + 0.2**2 / 0.5)
    q = dmft.Problem(m=2, n_over_d=1.0, h=[0, 0.9, 0.5], target=[0, 0.3, 0.2], target_norm2=1.0)
    assert q.phi_norm2 == 1.0


def test_h_tilde():
    p = dmft.Problem(m=2, n_over_d=1.0, h=[0, 0.3, 0.5, 0.1])
    assert np.allclose(p.h_tilde().c, [0, 0, 0.5, 0.1])


def test_power_series_fused_derivatives_match_separate_horner():
    """PowerSeries.with_derivatives / .at (one Horner pass) against p, p', p'' from numpy.polynomial."""
    import numpy as np
    from numpy.polynomial import polynomial as P

    from learndyn.dmft.problem import PowerSeries

    c = [0.3, 0.9, -0.5, 1 / 6, 0.02, -0.003]
    ps = PowerSeries(c)
    x = np.linspace(-1.2, 1.2, 13)
    p, d1, d2 = ps.with_derivatives(x)
    np.testing.assert_allclose(p, P.polyval(x, c), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d1, P.polyval(x, P.polyder(c)), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d2, P.polyval(x, P.polyder(c, 2)), rtol=1e-13, atol=1e-15)
    for xi in (-0.7, 0.0, 0.37):
        np.testing.assert_allclose(ps.at(xi), [P.polyval(xi, c), P.polyval(xi, P.polyder(c)),
                                               P.polyval(xi, P.polyder(c, 2))], rtol=1e-13, atol=1e-15)
