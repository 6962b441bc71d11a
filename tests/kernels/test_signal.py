"""Mean-field quantities against the closed forms and golden values of spec ntk.md §1.4-1.6, §6."""

import math

import numpy as np
import pytest

from learndyn.kernels.signal import (c_map, chi, correlation_trajectory, critical_line, q_map,
                                     signal_propagation)


# spec §1.6 golden table, sigma_b^2 = 0.05 (erf): (sigma_w^2, q*, c*, chi_1, chi_c*, xi_1, xi_c, xi_*, p*)
GOLDEN_05 = [
    (0.50, 0.10594, 1, 0.53353, 0.53353, 1.592, 1.592, math.inf, 0.2271),
    (1.00, 0.28843, 1, 0.86759, 0.86759, 7.041, 7.041, math.inf, 2.1784),
    (1.25, 0.435166, 1, 0.961374, 0.961374, 25.386, 25.386, math.inf, 11.2661),
    (1.50, 0.601753, 0.820530, 1.034700, 0.969552, math.inf, 32.340, 15.377, 16.2164),
    (2.00, 0.96595, 0.43448, 1.15465, 0.90648, math.inf, 10.185, 4.133, 4.4878),
    (3.00, 1.75274, 0.19140, 1.34955, 0.85735, math.inf, 6.498, 2.204, 2.3518),
]


def test_erf_golden_table_sigma_b_005():
    wv = np.array([r[0] for r in GOLDEN_05])
    sp = signal_propagation("erf", wv, 0.05)
    names = ["q_star", "c_star", "chi_1", "chi_c", "xi_1", "xi_c", "xi_star", "p_star"]
    for k, name in enumerate(names):
        ref = np.array([r[k + 1] for r in GOLDEN_05])
        got = np.asarray(getattr(sp, name))
        fin = np.isfinite(ref)
        assert np.all(np.isinf(got[~fin])), name
        # the table is printed to 4-6 significant digits
        np.testing.assert_allclose(got[fin], ref[fin], rtol=6e-4, err_msg=name)
    assert list(sp.phase) == ["ordered"] * 3 + ["chaotic"] * 3


@pytest.mark.parametrize("wv,bv,q,c,chi1,chic", [
    (1.25, 0.05, 0.43516569907836, 1.0, 0.96137390440168, None),
    (1.5, 0.05, 0.60175316710972, 0.82053008799747, 1.03470012958161, 0.96955194132522),
    (2.0, 0.18, 1.16755017096063, 0.83707452285404, 1.06940177173357, 0.94235053531392),
])
def test_erf_high_precision_anchors(wv, bv, q, c, chi1, chic):
    d = signal_propagation("erf", wv, bv).scalar()
    assert d["q_star"] == pytest.approx(q, rel=1e-10)
    assert d["c_star"] == pytest.approx(c, rel=1e-9)
    assert d["chi_1"] == pytest.approx(chi1, rel=1e-10)
    if chic is not None:
        assert d["chi_c"] == pytest.approx(chic, rel=1e-9)


def test_erf_fixed_points_satisfy_closed_form_maps():
    """q* and c* solve the spec §1.3 closed forms (numpy, independent of learndyn.gaussian), and chi_1,
    chi_c* equal sigma_w^2 (4/pi)/sqrt((1+2q)^2 - 4q^2c^2)."""
    for wv, bv in [(0.7, 0.02), (1.8, 0.1), (2.6, 0.3)]:
        d = signal_propagation("erf", wv, bv).scalar()
        q, c = d["q_star"], d["c_star"]
        assert wv * 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q)) + bv == pytest.approx(q, rel=1e-12)
        assert (wv * 2 / np.pi * np.arcsin(2 * q * c / (1 + 2 * q)) + bv) / q == pytest.approx(c, rel=1e-10)
        assert d["chi_1"] == pytest.approx(wv * 4 / np.pi / np.sqrt(1 + 4 * q), rel=1e-12)
        assert d["chi_c"] == pytest.approx(wv * 4 / np.pi / np.sqrt((1 + 2 * q) ** 2 - 4 * q * q * c * c), rel=1e-10)


def test_erf_zero_bias_odd_activation():
    """spec §1.6: sigma_b^2 = 0 gives c* = 0; (q*, chi_1, chi_c*, xi_*) golden values."""
    sp = signal_propagation("erf", [1.0, 2.0], 0.0)
    np.testing.assert_allclose(sp.q_star, [0.14192377, 0.88075063], rtol=1e-7)
    np.testing.assert_allclose(sp.chi_1, [1.01690252, 1.19736539], rtol=1e-7)
    np.testing.assert_allclose(sp.chi_c, [0.99173735, 0.92213577], rtol=1e-7)
    np.testing.assert_allclose(sp.xi_star, [39.907, 3.8287], rtol=1e-4)
    assert np.all(np.abs(sp.c_star) < 1e-12)
    # chi_c* = sigma_w^2 (4/pi)/(1+2q*) for erf at c* = 0
    np.testing.assert_allclose(sp.chi_c, np.array([1.0, 2.0]) * 4 / np.pi / (1 + 2 * sp.q_star), rtol=1e-10)


def test_erf_critical_line_closed_form():
    """spec §1.5: sigma_w^2 = (pi/4) sqrt(1+4q*), sigma_b^2 = q* - sigma_w^2 (2/pi) arcsin(2q*/(1+2q*))."""
    qs = np.array([0.1, 0.5, 1.0, 2.0])
    w_cf = np.pi / 4 * np.sqrt(1 + 4 * qs)
    b_cf = qs - w_cf * 2 / np.pi * np.arcsin(2 * qs / (1 + 2 * qs))
    cl = critical_line("erf", b_cf)
    np.testing.assert_allclose(cl.weight_var, w_cf, rtol=1e-9)
    np.testing.assert_allclose(cl.q_star, qs, rtol=1e-7)
    cl0 = critical_line("erf", [0.0, 0.05, 0.18])
    np.testing.assert_allclose(cl0.weight_var, [np.pi / 4, 1.375839, 1.747604], rtol=1e-6)


def test_relu_closed_forms():
    """spec §1.4-1.5, §6 item 5: chi_1 = sigma_w^2/2, q* = sigma_b^2/(1 - sigma_w^2/2), p* = 1.6 at (1.5, 0.1);
    (2, 0) is critical with q* = q0; sigma_w^2 > 2 has no finite q*."""
    d = signal_propagation("relu", 1.5, 0.1).scalar()
    assert d["q_star"] == pytest.approx(0.4, rel=1e-12)
    assert d["chi_1"] == pytest.approx(0.75, rel=1e-12)
    assert d["p_star"] == pytest.approx(1.6, rel=1e-10)
    assert d["phase"] == "ordered"
    d = signal_propagation("relu", 2.0, 0.0, q0=0.7).scalar()
    assert d["phase"] == "critical" and d["chi_1"] == pytest.approx(1.0, abs=1e-14)
    assert d["q_star"] == pytest.approx(0.7)
    d = signal_propagation("relu", 2.5, 0.0).scalar()
    assert d["phase"] == "unbounded" and math.isinf(d["q_star"]) and d["chi_1"] == pytest.approx(1.25)
    assert critical_line("relu", [0.0]).weight_var[0] == pytest.approx(2.0, rel=1e-9)


def test_price_identity_tanh_quadrature():
    """spec §6 item 2: d C(c)/dc = sigma_w^2 Vdot (two different quadratures, i2 vs j2)."""
    wv, bv = 2.0, 0.05
    q = float(signal_propagation("tanh", wv, bv).q_star)
    for c in (0.1, 0.5, 0.9):
        h = 1e-5
        num = (c_map("tanh", wv, bv, q, c + h) - c_map("tanh", wv, bv, q, c - h)) / (2 * h)
        assert float(num) == pytest.approx(float(chi("tanh", wv, q, c)), rel=1e-6)
    assert float(q_map("tanh", wv, bv, q)) == pytest.approx(q, rel=1e-10)


def test_correlation_converges_at_rate_chi_c():
    """|c^l - c*| ~ chi_c*^l (spec §1.6; colab demo at sigma_b^2 = 0.05, sigma_w^2 = 1.5, c0 = 0.5)."""
    sp = signal_propagation("erf", 1.5, 0.05).scalar()
    _, c = correlation_trajectory("erf", 1.5, 0.05, 0.5, 300)
    dev = np.abs(c - sp["c_star"])
    # linear regime (|c - c*| ~ 1e-5): the local rate is chi_c* to O(|c - c*|)
    assert dev[300] / dev[240] == pytest.approx(sp["chi_c"] ** 60, rel=2e-3)


def test_validation():
    with pytest.raises(ValueError, match="weight_var"):
        signal_propagation("erf", -1.0, 0.1)
    with pytest.raises(ValueError, match="bias_var"):
        signal_propagation("erf", 1.0, float("nan"))
    with pytest.raises(ValueError, match="activation"):
        signal_propagation("softplusx", 1.0, 0.1)


def test_near_critical_chaotic_point():
    """spec §1.6 table (sigma_b^2 = 0.18, sigma_w^2 = 1.76) and §4.3 (1.75: xi_* = 718): c* close to 1
    must not be confused with the rounding noise of the c-map next to c = 1."""
    sp = signal_propagation("erf", [1.76, 1.75], 0.18)
    np.testing.assert_allclose(sp.c_star[0], 0.99091, rtol=1e-5)
    np.testing.assert_allclose(sp.chi_1[0], 1.00360, rtol=1e-5)
    np.testing.assert_allclose(sp.chi_c[0], 0.99644, rtol=1e-5)
    np.testing.assert_allclose(sp.xi_c[0], 280.41, rtol=1e-4)
    np.testing.assert_allclose(sp.xi_star[0], 139.74, rtol=1e-4)
    np.testing.assert_allclose(sp.p_star[0], 277.36, rtol=1e-4)
    assert sp.xi_star[1] == pytest.approx(718, rel=2e-3)


@pytest.mark.parametrize("c0", [2.0, -1.5, float("nan"), "x"])
def test_correlation_trajectory_refuses_a_correlation_outside_minus_one_one(c0):
    # issue 12: c0 = 2 returned correlations above 1 (c^1 = 1.23 for erf), which no pair of inputs can have
    with pytest.raises(ValueError, match="c0"):
        correlation_trajectory("erf", 1.5, 0.05, c0, 3)


def test_correlation_trajectory_stays_a_correlation_from_the_edges():
    # |c^l| <= 1 at every layer from c0 = +-1 (Cauchy-Schwarz for the post-activations)
    for c0 in (1.0, -1.0):
        _, c = correlation_trajectory("tanh", 1.5, 0.05, c0, 20)
        assert np.all(np.abs(c) <= 1 + 1e-12)
