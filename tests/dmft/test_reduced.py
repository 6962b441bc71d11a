"""Reduced m -> infinity systems (Montanari & Urbani 2025, App. F-G: closed forms, the mean-field ODE of Sec. 2.4 /
App. G.2, the p-spin mapping of App. G.1) and SymmDMFT converging to them at rate 1/m."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learndyn import dmft
from learndyn.dmft import reduced


def _lazy(m, **kw):
    base = dict(m=m, n_over_d=0.5 * m, tau=1.0, a0=math.sqrt(m), h=[0, 0.3, 0.5], train_second_layer=False)
    return dmft.Problem(**(base | kw))


def test_lazy_first_regime_closed_form_is_consistent():
    p = _lazy(8)
    th = np.linspace(0, 5, 51)
    cf = reduced.lazy_first_regime(p, th)
    assert np.allclose(np.diag(cf.Cd_hat), 0.0, atol=1e-15)  # C_d(t,t) = 1 + Cd_hat/m
    assert np.allclose(np.diag(cf.Co_hat), cf.Co_hat_tt, atol=1e-15)
    kappa = 0.5 * 0.3
    assert cf.train_error[0] == pytest.approx(0.5 * (1 + 0.8))  # (tau^2 + gamma0^2 h(1))/2
    assert reduced.lazy_first_regime(p, [1e3]).train_error[0] == pytest.approx(0.5 * (1 + 0.8 - 0.3))
    assert cf.kappa[0] == pytest.approx(kappa)


def test_symmdmft_approaches_lazy_first_regime_at_rate_1_over_m():
    """§6.2.2: e_tr(t_hat/m) and m C_o(t,t) -> closed forms (pure noise), error ~ 1/m."""
    errs, errs_co = [], []
    for m in (16, 64):
        p = _lazy(m)
        sol = dmft.solve(p, t_max=2.0 / m, dt=0.01 / m)
        cf = reduced.lazy_first_regime(p, sol.t * m)
        errs.append(np.max(np.abs(sol.train_error - cf.train_error)))
        errs_co.append(np.max(np.abs(m * np.diag(sol.C_o) - cf.Co_hat_tt)))
        two = np.max(np.abs(m * sol.C_o - cf.Co_hat)), np.max(np.abs(m * sol.R_o - cf.Ro_hat))
    assert 2.8 < errs[0] / errs[1] < 5.5 and errs[1] < 0.08
    assert 2.8 < errs_co[0] / errs_co[1] < 5.5
    assert max(two) < 0.1  # two-time closed forms at m = 64


def test_symmdmft_approaches_lazy_first_regime_single_index():
    """Single index, hatphi = h odd (so a hatphi(v) has no O(1/sqrt m) term): e_tr, sqrt(m) v -> closed forms."""
    errs = []
    for m in (16, 64):
        p = dmft.Problem(m=m, n_over_d=0.3 * m, tau=0.3, a0=math.sqrt(m), h=[0, 0.9, 0, 1 / 6], target="activation",
                         train_second_layer=False)
        sol = dmft.solve(p, t_max=2.0 / m, dt=0.01 / m)
        cf = reduced.lazy_first_regime(p, sol.t * m)
        errs.append((np.max(np.abs(sol.train_error - cf.train_error)), np.max(np.abs(math.sqrt(m) * sol.v - cf.v_hat))))
    for k in range(2):
        assert errs[0][k] / errs[1][k] > 2.8
    assert errs[1][0] < 0.04 and errs[1][1] < 0.05


def test_symmdmft_approaches_mf_first_regime():
    """§6.2.2: MF init, pure noise: m C_o(t,t) -> closed form, e_tr -> tau^2/2; error ~ 1/m."""
    errs = []
    for m in (16, 64, 256):
        p = dmft.Problem(m=m, n_over_d=0.3 * m, tau=0.6, a0=1.0, h=[0, 0.9, 0, 1 / 6])
        sol = dmft.solve(p, t_max=4.0, dt=0.01)
        cf = reduced.mf_first_regime(p, sol.t)
        errs.append((np.max(np.abs(m * np.diag(sol.C_o) - cf.mC_o_tt)), np.max(np.abs(sol.train_error - 0.18)),
                     np.max(np.abs(m * sol.C_o - cf.mC_o))))
    for k in range(3):
        assert errs[0][k] / errs[1][k] > 2.5 and errs[1][k] / errs[2][k] > 2.5
    assert errs[2][0] < 5e-3 and errs[2][1] < 5e-3


def test_mean_field_ode_fixed_point():
    """§6.2.3: hatphi = h, h'(0) > 0: (a, v) -> (1, 1) and e -> tau^2/2 (Bayes). Near v = 1 both factors of
    dv/dt = alpha a (1 - v^2)(h'(v) - a h'(v^2) v) vanish, so the approach is algebraic (~1/t)."""
    p = dmft.Problem(m=100, n_over_d=30.0, tau=0.6, a0=0.5, h=[0, 0.9, 0, 1 / 6], target="activation")
    ode = reduced.mean_field_ode(p, np.linspace(0, 300, 301))
    assert ode.a[-1] == pytest.approx(1.0, abs=0.03) and ode.v[-1] == pytest.approx(1.0, abs=0.03)
    assert abs(ode.a[-1] - 1) < 0.5 * abs(ode.a[100] - 1) and abs(ode.v[-1] - 1) < 0.5 * abs(ode.v[100] - 1)
    assert ode.test_error[-1] == pytest.approx(0.18, abs=1e-3)
    assert np.all(np.diff(ode.test_error) <= 1e-12)  # gradient flow on the population risk
    assert ode.test_error[0] == pytest.approx(0.5 * (0.36 + 16 / 15))  # tau^2 + h(1), a0 hatphi(0) = 0


def test_symmdmft_approaches_mean_field_ode():
    """§6.2.3: single index, MF init: SymmDMFT -> mean-field ODE at t = O(1) with error ~ 1/m."""
    errs = []
    for m in (16, 64, 256):
        p = dmft.Problem(m=m, n_over_d=0.3 * m, tau=0.6, a0=1.0, h=[0, 0.9, 0, 1 / 6], target="activation")
        coarse = dmft.solve(p, t_max=4.0, dt=0.02)
        fine = dmft.solve(p, t_max=4.0, dt=0.01)
        ode = reduced.mean_field_ode(p, coarse.t)
        rich = {k: 2 * getattr(fine, k)[::2] - getattr(coarse, k) for k in ("test_error", "train_error", "a", "v")}
        errs.append([np.max(np.abs(rich[k] - getattr(ode, k))) for k in ("test_error", "train_error", "a", "v")])
    errs = np.array(errs)
    assert np.all(errs[0] / errs[1] > 2.8) and np.all(errs[1] / errs[2] > 2.8)
    assert np.all(errs[2] < 0.01)


def test_lazy_second_regime_linear_activation_and_initial_value():
    """§6.2.7: h~ = 0 gives Sigma_R = 0 and e_tr^{lz2} = tau'^2/2 for all t; e_tr(0) = (tau'^2 + gamma0^2 h~(1))/2."""
    p = dmft.Problem(m=1, n_over_d=0.5, tau=0.8, a0=1.0, h=[0, 0.7], train_second_layer=False)
    r = reduced.lazy_second_regime(p, t_max=3.0, dt=0.05, gamma0=1.3)
    assert np.allclose(r.train_error, 0.32, rtol=1e-12)
    q = dmft.Problem(m=1, n_over_d=0.5, tau=0.8, a0=1.0, h=[0, 0.3, 0.5], target=[0, 0.2], target_norm2=0.3,
                     train_second_layer=False)
    tau2p = 0.64 + 0.3 - 0.2**2 / 0.3
    assert reduced.effective_noise(q) == pytest.approx(tau2p)
    r = reduced.lazy_second_regime(q, t_max=1.0, dt=0.05, gamma0=1.3)
    assert r.train_error[0] == pytest.approx(0.5 * (tau2p + 1.69 * 0.5))
    assert np.allclose(r.test_error, 0.5 * (tau2p + 1.69 * 0.5))
    assert np.allclose(np.diag(r.C), 1.0) and np.all(np.diag(r.R, -1) == 1.0) and np.all(np.triu(r.R) == 0)


def test_symmdmft_approaches_lazy_second_regime():
    """Lazy init, t = O(1): SymmDMFT -> the reduced (gamma0^2-corrected, flag F5) system; error ~ 1/m."""
    p1 = _lazy(1)
    red = reduced.lazy_second_regime(p1, t_max=2.0, dt=0.01, gamma0=1.0)
    errs = []
    for m in (16, 64):
        sol = dmft.solve(_lazy(m), t_max=2.0, dt=0.01, scheme="implicit")
        late = sol.t >= 0.5
        errs.append((np.max(np.abs(sol.train_error[late] - red.train_error[late])),
                     np.max(np.abs(sol.C_d[-1] - red.C[-1]))))
    assert errs[0][0] / errs[1][0] > 2.3 and errs[1][0] < 0.01
    assert errs[1][1] < errs[0][1] and errs[1][1] < 0.01


def test_mf_second_regime_clock_invariance():
    """Frozen a: the system depends on alpha tau^2 a0^2 only through the clock t~ = tau sqrt(alpha) a0 t; the energy
    in that clock is parameter free."""
    curves = []
    for al, a0 in ((0.3, 1.0), (1.2, 1.0), (0.3, 2.0)):
        p = dmft.Problem(m=1, n_over_d=al, tau=0.6, a0=a0, h=[0, 0.9, 0, 1 / 6], train_second_layer=False)
        s = 0.6 * math.sqrt(al) * a0
        r = reduced.mf_second_regime(p, t_max=6.0 / s, dt=0.02 / s)
        assert np.allclose(np.diag(r.C), 1.0) and r.status == "success"
        curves.append(r.energy)
    assert np.allclose(curves[0], curves[1], atol=1e-12) and np.allclose(curves[0], curves[2], atol=1e-12)
    assert curves[0][-1] < -0.5


@pytest.mark.slow
def test_mf_second_regime_pspin_energy_and_growth():
    """p-spin mapping (App. G.1): h~ = z^3/6 (c^2 = 1/6, p = 3): E -> -2 c sqrt(2/3) = -2/3 (aging, E - E_inf ~ t~^{-2/3}), and with the
    second layer trained a(t)/t -> A_inf = -tau sqrt(alpha) E_inf = 0.219 (App. G.1)."""
    e_inf = reduced.pspin_threshold_energy(math.sqrt(1 / 6), 3)
    assert e_inf == pytest.approx(-2 / 3)
    p = dmft.Problem(m=1, n_over_d=0.3, tau=0.6, a0=1.0, h=[0, 0.9, 0, 1 / 6], train_second_layer=False)
    r = reduced.mf_second_regime(p, t_max=60, dt=0.05)
    x = np.zeros_like(r.clock)
    x[1:] = r.clock[1:] ** (-2 / 3)
    i1, i2 = np.searchsorted(r.clock, [10.0, 19.0])
    slope = (r.energy[i1] - r.energy[i2]) / (x[i1] - x[i2])
    assert r.energy[i2] - slope * x[i2] == pytest.approx(e_inf, rel=0.01)
    q = p.replace(train_second_layer=True)
    r = reduced.mf_second_regime(q, t_max=60, dt=0.05)
    rate = np.gradient(r.a, r.t)
    assert np.all(np.diff(rate[-200:]) > 0)
    assert rate[-1] == pytest.approx(-0.6 * math.sqrt(0.3) * e_inf, rel=0.03)
