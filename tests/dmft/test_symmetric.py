"""SymmDMFT solver: exact checks (initial values, constraints, causality, scale
invariance, linear activation), stability handling, the implicit and Richardson schemes, and the fast
solver against the plain transcription of the App. D algorithm (Montanari & Urbani 2025)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from learndyn import dmft
from learndyn.dmft.reference import plain_symmetric

PN = dict(m=4, n_over_d=1.5, tau=1.0, a0=1.0, h=[0.0, 0.1, 0.5])  # the example (pure noise)
SI = dict(m=3, n_over_d=1.2, tau=0.5, a0=0.7, h=[0.0, 0.9, 0.5, 0.2], target="activation")


@pytest.fixture(scope="module")
def pn_solution():
    return dmft.solve(dmft.Problem(**PN), t_max=8.0, dt=0.025)


@pytest.fixture(scope="module")
def si_solution():
    return dmft.solve(dmft.Problem(**SI), t_max=5.0, dt=0.02)


def test_api_example(pn_solution):
    sol = pn_solution
    n = 321
    assert sol.success and sol.t.shape == (n,) and sol.t[-1] == pytest.approx(8.0)
    for name in ("train_error", "test_error", "a", "v", "nu"):
        assert getattr(sol, name).shape == (n,)
    for name in ("C_d", "C_o", "R_d", "R_o", "C_A", "R_A", "Sigma_C"):
        assert getattr(sol, name).shape == (n, n)
    ds = sol.to_xarray()
    assert set(ds.data_vars) >= {"train_error", "test_error", "a", "v", "nu", "C_d", "C_o", "R_d", "R_o", "C_A"}
    assert ds["C_d"].dims == ("time", "time2") and "problem" in ds.attrs and ds.attrs["status"] == "success"
    # overfitting pure noise: train error falls, test error rises, a grows (paper Sec. 2.2)
    assert sol.train_error[-1] < 0.1 * sol.train_error[0]
    assert sol.test_error[-1] > sol.test_error[0]


@pytest.mark.parametrize("kw", [PN, SI, dict(SI, v0=0.2, C0=np.full((3, 3), 0.3) + 0.7 * np.eye(3))])
def test_initial_values(kw):
    """§6.2.4: e_tr(0) = e_ts(0) = Sigma_C(0,0)/2 = (tau^2 + ||phi||^2 - 2 a0 hatphi(v0) + a0^2 [h(1)/m + (1-1/m) h(c0)])/2."""
    p = dmft.Problem(**kw)
    sol = dmft.solve(p, t_max=0.1, dt=0.05)
    m, a0 = p.m, kw["a0"]
    c = np.asarray(kw["h"])
    h = lambda q: sum(ck * q**k for k, ck in enumerate(c))  # noqa: E731
    v0 = kw.get("v0", 0.0)
    c0 = 0.3 if "C0" in kw else 0.0
    phi2 = h(1.0) if kw.get("target") == "activation" else 0.0
    expected = 0.5 * (kw["tau"] ** 2 + phi2 - 2 * a0 * (h(v0) if phi2 else 0.0)
                      + a0**2 * (h(1.0) / m + (1 - 1 / m) * h(c0)))
    assert sol.train_error[0] == pytest.approx(expected, rel=1e-14)
    assert sol.test_error[0] == pytest.approx(expected, rel=1e-14)


def test_constraints(pn_solution, si_solution):
    """§6.2.5: C_d(t,t) = 1, C symmetric, R causal with unit jump, C_A <= 0 on the diagonal, e_tr >= 0,
    R_A lower triangular with 1/dt diagonal, the overlap matrix C(t,t) PSD."""
    for sol in (pn_solution, si_solution):
        m, dt = sol.problem.m, sol.dt
        Cd, Co, Rd, Ro = sol.C_d, sol.C_o, sol.R_d, sol.R_o
        assert np.allclose(np.diag(Cd), 1.0, rtol=0, atol=1e-14)
        assert np.array_equal(Cd, Cd.T) and np.array_equal(Co, Co.T)
        assert np.all(np.triu(Rd) == 0) and np.all(np.triu(Ro) == 0)
        assert np.all(np.diag(Rd, -1) == 1.0) and np.all(np.diag(Ro, -1) == 0.0)
        RA = sol.R_A
        assert np.all(np.triu(RA, 1) == 0) and np.allclose(np.diag(RA), 1 / dt, rtol=0, atol=1e-9)
        assert np.all(np.diag(sol.C_A) <= 0) and np.all(sol.train_error >= 0)
        co = np.diag(Co)
        assert np.all(co <= 1 + 1e-12) and np.all(co >= -1 / (m - 1) - 1e-12)
        assert np.all(np.abs(Cd) <= 1 + 1e-9) and np.all(np.abs(Co) <= 1 + 1e-9)


def test_causality():
    """The past does not depend on the horizon: a run to T/2 equals the first half of a run to T."""
    p = dmft.Problem(**SI)
    full = dmft.solve(p, t_max=4.0, dt=0.02)
    half = dmft.solve(p, t_max=2.0, dt=0.02)
    n = half.t.size
    for name in ("train_error", "test_error", "a", "v"):
        assert np.array_equal(getattr(full, name)[:n], getattr(half, name))
    assert np.array_equal(full.C_o[:n, :n], half.C_o) and np.array_equal(full.R_d[:n, :n], half.R_d)


def test_pure_noise_scale_invariance():
    """§6.2.6 (frozen second layer): (tau, a) -> (c tau, c a) gives e -> c^2 e at t -> t/c^2."""
    c = 2.0
    p1 = dmft.Problem(m=5, n_over_d=2.0, tau=0.7, a0=1.3, h=[0, 0.3, 0.5, 0.1], train_second_layer=False)
    p2 = p1.replace(tau=c * 0.7, a0=c * 1.3)
    s1 = dmft.solve(p1, t_max=4.0, dt=0.04)
    s2 = dmft.solve(p2, t_max=4.0 / c**2, dt=0.04 / c**2)
    assert np.allclose(s2.train_error, c**2 * s1.train_error, rtol=1e-10, atol=0)
    assert np.allclose(s2.test_error, c**2 * s1.test_error, rtol=1e-10, atol=0)
    assert np.allclose(s2.C_o, s1.C_o, rtol=0, atol=1e-12)
    assert np.max(np.abs(s1.C_o)) > 0.01  # the check is not vacuous


def test_linear_activation_lazy_first_regime():
    """§6.2.7: linear h = s^2 z (Gaussian model = real network): lazy first regime
    e_tr(t_hat/m) -> (tau^2 + gamma0^2 s^2 e^{-2 kappa t_hat})/2, kappa = alpha gamma0^2 s^2, at rate 1/m."""
    s2, g0, tau, al = 0.8, 1.2, 0.9, 0.5
    errs = []
    for m in (16, 64):
        p = dmft.Problem(m=m, n_over_d=al * m, tau=tau, a0=g0 * math.sqrt(m), h=[0, s2], train_second_layer=False)
        sol = dmft.solve(p, t_max=4.0 / m, dt=0.01 / m)
        kappa = al * g0**2 * s2
        closed = 0.5 * (tau**2 + g0**2 * s2 * np.exp(-2 * kappa * sol.t * m))
        errs.append(np.max(np.abs(sol.train_error - closed)))
    assert errs[1] < 0.015 and 3.0 < errs[0] / errs[1] < 5.0  # ~ 4 for 4x m


@pytest.mark.parametrize("m", [16, 32])
def test_linear_activation_reaches_least_squares(m):
    """§6.2.7 at finite m: with a linear activation the network is the linear model y ~ <beta, x> with d parameters and
    n = alpha m d samples; gradient flow ends at least squares: e_tr = (tau^2/2)(1 - d/n), e_ts = (tau^2/2) n/(n - d)
    (independent random-matrix closed forms), and the lazy second regime adds nothing (e_tr stays ~ tau^2/2)."""
    s2, g0, tau, al = 0.8, 1.2, 0.9, 0.5
    p = dmft.Problem(m=m, n_over_d=al * m, tau=tau, a0=g0 * math.sqrt(m), h=[0, s2], train_second_layer=False)
    sol = dmft.solve(p, t_max=6.0, dt=0.01, scheme="implicit")
    r = 1.0 / (al * m)  # d/n
    assert sol.train_error[-1] == pytest.approx(tau**2 / 2 * (1 - r), rel=1e-6)
    assert sol.test_error[-1] == pytest.approx(tau**2 / 2 / (1 - r), rel=1e-6)
    late = sol.t >= 0.5
    assert np.max(np.abs(sol.train_error[late] - tau**2 / 2)) <= tau**2 / 2 * r * 1.01


def test_fast_solver_equals_plain_transcription():
    """The channel/packed implementation reproduces the literal App. D algorithm (Montanari & Urbani 2025) to
    round-off, on the same time grid (t_max, dt)."""
    for kw in (PN, SI, dict(m=5, n_over_d=1.2, tau=0.5, a0=2.0, h=[0.0, 0.3, 0.5], target=[0, 0.3, 0.2],
                            train_second_layer=False)):
        p = dmft.Problem(**kw)
        ref = plain_symmetric(p, t_max=119 * 0.03, dt=0.03)
        assert ref["e_tr"].shape == (120,)
        sol = dmft.solve(p, t_max=119 * 0.03, dt=0.03)
        for mine, theirs in (("train_error", "e_tr"), ("test_error", "e_ts"), ("a", "a"), ("v", "v"),
                             ("C_d", "Cd"), ("C_o", "Co"), ("R_d", "Rd"), ("R_o", "Ro"), ("C_A", "CA")):
            assert np.max(np.abs(getattr(sol, mine) - ref[theirs])) < 1e-12, mine


# ---------------------------------------------------------------------------------------------
# stability, blow-up, schemes
# ---------------------------------------------------------------------------------------------
LAZY = dict(m=64, n_over_d=0.5 * 64, tau=1.0, a0=8.0, h=[0, 0.3, 0.5], train_second_layer=False)


def test_step_beyond_stability_bound_is_refused_or_warned():
    p = dmft.Problem(**LAZY)
    lam = p.stiffness  # ~ alpha a0^2 h'(0) = 9.6 + h'(1)/m part
    assert lam == pytest.approx(0.5 * 64 * (1.3 / 64 + (63 / 64) * 0.3))
    with pytest.raises(ValueError, match="dt"):
        dmft.solve(p, t_max=1.0, dt=2.5 / lam)
    with pytest.warns(dmft.StabilityWarning):
        dmft.solve(p, t_max=0.2, dt=1.0 / lam)
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmft.StabilityWarning)
        dmft.solve(p, t_max=1.0, dt=2.5 / lam, scheme="implicit")  # below the implicit limit (7.77 / lam)


@pytest.mark.parametrize("kw, match", [
    (dict(dt=0.0), "dt"), (dict(dt=-0.1), "dt"), (dict(dt=float("nan")), "dt"),
    (dict(t_max=-1.0), "t_max"), (dict(scheme="rk4"), "scheme"), (dict(method="magic"), "method"),
])
def test_bad_solver_arguments(kw, match):
    args = dict(t_max=1.0, dt=0.1) | kw
    with pytest.raises(ValueError, match=match):
        dmft.solve(dmft.Problem(**PN), **args)


def test_blow_up_is_reported_with_data_kept():
    p = dmft.Problem(**LAZY)
    dt = 3.0 / p.stiffness
    with pytest.warns(RuntimeWarning, match="diverged"):
        sol = dmft.solve(p, t_max=40 * dt, dt=dt, allow_unstable=True)
    assert not sol.success and sol.status in ("diverged", "nonfinite") and sol.message.startswith("diverged at t = ")
    n = sol.t.size
    assert 2 <= n < 41
    assert float(sol.message.split("t = ")[1].split()[0]) == pytest.approx(n * dt, rel=1e-6)
    assert np.all(np.isfinite(sol.train_error)) and sol.C_d.shape == (n, n)


def test_implicit_scheme_error_against_plain_scheme():
    """Both schemes are first order with the same limit: their difference is O(dt); the implicit one stays accurate
    where the explicit one is refused."""
    p = dmft.Problem(**LAZY)
    lam = p.stiffness
    big_dt = 4.0 / lam  # explicit Euler is refused at this step
    t_max = 4 * big_dt
    ref = dmft.solve(p, t_max=t_max, dt=big_dt / 80)  # fine explicit reference
    diffs = []
    for dt in (big_dt / 10, big_dt / 20):
        e = dmft.solve(p, t_max=t_max, dt=dt)
        i = dmft.solve(p, t_max=t_max, dt=dt, scheme="implicit")
        diffs.append(np.max(np.abs(e.train_error - i.train_error)))
    assert diffs[1] < 0.65 * diffs[0]  # O(dt)
    big = dmft.solve(p, t_max=t_max, dt=big_dt, scheme="implicit")
    err = np.max(np.abs(big.train_error - ref.train_error[::80]))
    assert big.success and big.t.size == 5 and err < 0.1 * ref.train_error[0]


def test_richardson_is_second_order():
    """Successive differences shrink ~4x per halving for Richardson, ~2x for the plain scheme."""
    p = dmft.Problem(**SI)
    rich, plain = [], []
    for dt in (0.04, 0.02, 0.01):
        r = dmft.richardson(p, 2.0, dt)
        stride = int(round(dt / 0.04))  # compare on the coarsest grid
        assert isinstance(r, dmft.RichardsonSolution) and r.success
        rich.append(r.test_error[::stride] if stride > 1 else r.test_error)
        plain.append(r.coarse.test_error[:: max(stride, 1)])
    for series in (rich, plain):
        series[1] = series[1][::2]
        series[2] = series[2][::4]
    d_rich = [np.max(np.abs(rich[0] - rich[1])), np.max(np.abs(rich[1] - rich[2]))]
    d_plain = [np.max(np.abs(plain[0] - plain[1])), np.max(np.abs(plain[1] - plain[2]))]
    assert 1.6 < d_plain[0] / d_plain[1] < 2.5  # first order
    assert d_rich[0] / d_rich[1] > 3.0  # second order
    assert d_rich[1] < 0.2 * d_plain[1]


def test_warns_when_the_local_rate_grows_during_the_run():
    """The stiff rate alpha a^2 h'^+(C_o(t,t))/m grows as features are learnt (C_o -> v^2): warn when it crosses."""
    p = dmft.Problem(m=16, n_over_d=0.3 * 16, tau=0.3, a0=1.0, h=[0, 0.9, 0, 1 / 6], target="activation")
    dt = 0.4 / p.stiffness  # fine at t = 0
    with pytest.warns(dmft.StabilityWarning, match="grew"):
        sol = dmft.solve(p, t_max=40 * dt, dt=dt)
    assert sol.success
