"""Tests of learndyn.gaussian against independent references.

References (never the function's own output):
* elementary closed forms derived by Gaussian integration by parts (Stein) for the degenerate
  index patterns of ReLU I4 (a=b, c=a, c=d, ...) and for 3-D orthant probabilities;
* scipy.stats.multivariate_normal.cdf (Genz) for 4-D orthant probabilities, and the integration-by-parts
  reduction of ReLU I4 (C_cd P4 + conditional 3-D moments) evaluated with that P4;
* numpy Monte Carlo with a tolerance of 5 standard errors.
"""

from __future__ import annotations

import itertools
import zlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import learndyn  # noqa: F401  (enables float64)
from learndyn import activations as A
from learndyn import gaussian as G

RNG_SEED = 20191


# ------------------------------------------------------------------------------------------
# numpy references
# ------------------------------------------------------------------------------------------
def _wishart(rng, n, k=None, scale=1.0):
    k = k or n + 3
    X = rng.normal(size=(n, k))
    return scale * X @ X.T / k


def _sub(C, idx):
    return C[np.ix_(idx, idx)]


def _arccos1(c11, c12, c22):
    r = np.clip(c12 / np.sqrt(c11 * c22), -1, 1)
    return (np.sqrt(max(c11 * c22 - c12**2, 0.0)) + c12 * (np.pi / 2 + np.arcsin(r))) / (2 * np.pi)


def _cond(C, x, keep):
    return C[np.ix_(keep, keep)] - np.outer(C[keep, x], C[x, keep]) / C[x, x]


def _e_theta_relu(S):
    """E[Theta(u) relu(w)] for (u, w) ~ N(0, S): Stein in w."""
    return (np.sqrt(S[1, 1]) + S[0, 1] / np.sqrt(S[0, 0])) / (2 * np.sqrt(2 * np.pi))


def _orth3(C):
    r = lambda i, j: C[i, j] / np.sqrt(C[i, i] * C[j, j])  # noqa: E731
    return 1 / 8 + (np.arcsin(r(0, 1)) + np.arcsin(r(0, 2)) + np.arcsin(r(1, 2))) / (4 * np.pi)


def _h3(C3):
    """E[Theta(a) relu(c) relu(d)], C3 over (a, c, d): Stein in c."""
    a, c, d = 0, 1, 2
    return (C3[c, a] / np.sqrt(2 * np.pi * C3[a, a]) * _e_theta_relu(_cond(C3, a, [c, d]))
            + C3[c, c] / np.sqrt(2 * np.pi * C3[c, c]) * _e_theta_relu(_cond(C3, c, [a, d]))
            + C3[c, d] * _orth3(C3))


def _k3(C3):
    """E[Theta(a) Theta(b) c^2 Theta(c)], C3 over (a, b, c): Stein in c."""
    a, b, c = 0, 1, 2
    return (C3[c, c] * _orth3(C3)
            + C3[c, a] / np.sqrt(2 * np.pi * C3[a, a]) * _e_theta_relu(_cond(C3, a, [b, c]))
            + C3[c, b] / np.sqrt(2 * np.pi * C3[b, b]) * _e_theta_relu(_cond(C3, b, [a, c])))


def _theta_c2_theta(C2):
    """E[Theta(a) c^2 Theta(c)] = C_cc P(a>0, c>0) + C_ca phi1(0; C_aa) E[relu(c) | a = 0] (Stein in c)."""
    rho = C2[0, 1] / np.sqrt(C2[0, 0] * C2[1, 1])
    return (C2[1, 1] * (0.25 + np.arcsin(rho) / (2 * np.pi))
            + C2[1, 0] / np.sqrt(2 * np.pi * C2[0, 0]) * np.sqrt(_cond(C2, 0, [1])[0, 0]) / np.sqrt(2 * np.pi))


def _p4_scipy(C):
    """scipy's Genz algorithm at its fast setting (measured error ~1e-7 for these C)."""
    return multivariate_normal.cdf(np.zeros(4), mean=np.zeros(4), cov=C, abseps=1e-7, releps=1e-7)


def _bvn_cdf(h, k, rho):
    """Phi2(h, k; rho) by Owen's T function (Owen 1956)."""
    from scipy.special import owens_t
    from scipy.stats import norm

    if h == 0 and k == 0:
        return 0.25 + np.arcsin(rho) / (2 * np.pi)
    h = h if h != 0 else math.copysign(1e-300, k)
    k = k if k != 0 else math.copysign(1e-300, h)
    s = math.sqrt(1 - rho * rho)
    beta = 0.0 if h * k > 0 else 0.5
    return (0.5 * (norm.cdf(h) + norm.cdf(k)) - owens_t(h, (k - rho * h) / (h * s))
            - owens_t(k, (h - rho * k) / (k * s)) - beta)


def _p4_owen(C):
    """P4 = int_{a,b>0} phi(a,b) P(c>0, d>0 | a, b) da db: scipy dblquad of an Owen-T bivariate CDF."""
    from scipy import integrate

    Cab = C[:2, :2]
    Bm = C[2:, :2] @ np.linalg.inv(Cab)
    S = C[2:, 2:] - Bm @ C[:2, 2:]
    sc, sd = math.sqrt(S[0, 0]), math.sqrt(S[1, 1])
    rho = S[0, 1] / (sc * sd)
    P = np.linalg.inv(Cab)
    norm_ = 2 * np.pi * math.sqrt(np.linalg.det(Cab))

    def f(y, x):
        ab = np.array([x, y])
        m = Bm @ ab
        return math.exp(-0.5 * ab @ P @ ab) / norm_ * _bvn_cdf(m[0] / sc, m[1] / sd, rho)

    lim = 12 * math.sqrt(max(C[0, 0], C[1, 1]))
    return integrate.dblquad(f, 0, lim, 0, lim, epsabs=1e-13, epsrel=1e-12)[0]


def _moment3(S):
    """E[X_3 Theta(X_1) Theta(X_2) Theta(X_3)] for X ~ N(0, S) (second integration by parts)."""
    out = 0.0
    for j in range(3):
        k, l = [m for m in range(3) if m != j]
        Sc = _cond(S, j, [k, l])
        rho = Sc[0, 1] / np.sqrt(Sc[0, 0] * Sc[1, 1])
        out += S[2, j] / np.sqrt(2 * np.pi * S[j, j]) * (0.25 + np.arcsin(rho) / (2 * np.pi))
    return out


def _relu_i4_spec(C, p4=None):
    """Spec §3.3: I4 = C_cd P4 + sum_{x in a,b,c} C_cx (2 pi C_xx)^(-1/2) E[d prod_{y != x} Theta(y) | x=0]."""
    a, b, c, d = range(4)
    out = C[c, d] * (_p4_scipy(C) if p4 is None else p4)
    for x in (a, b, c):
        rest = [y for y in (a, b, c) if y != x] + [d]  # d last: the moment variable
        S = _cond(C, x, rest)
        out += C[c, x] / np.sqrt(2 * np.pi * C[x, x]) * _moment3(S)
    return out


def _mc_samples(C, n, seed, chunk=1_000_000):
    """Yield chunks of N(0, C) samples (eigh factor: works for singular C)."""
    rng = np.random.default_rng(seed)
    lam, V = np.linalg.eigh(C)
    L = V * np.sqrt(np.clip(lam, 0, None))
    done = 0
    while done < n:
        m = min(chunk, n - done)
        yield rng.normal(size=(m, C.shape[0])) @ L.T
        done += m


def _mc_mean(fn, C, n, seed):
    s1 = s2 = 0.0
    for z in _mc_samples(C, n, seed):
        v = fn(z)
        s1 += v.sum()
        s2 += (v * v).sum()
    mean = s1 / n
    return mean, math.sqrt(max(s2 / n - mean * mean, 0.0) / n)


def _np_act(act):
    """numpy versions of g and g' for the MC references."""
    from scipy.special import erf

    s = act.scale
    if act.name == "erf":
        return (lambda x: erf(s * x)), (lambda x: s * 2 / np.sqrt(np.pi) * np.exp(-(s * x) ** 2))
    if act.name == "relu":
        return (lambda x: np.maximum(s * x, 0)), (lambda x: s * (x > 0))
    if act.name == "linear":
        return (lambda x: s * x), (lambda x: s * np.ones_like(x))
    if act.name == "abrelu":
        return (lambda x: np.where(x > 0, act.b * s * x, act.a * s * x)), (lambda x: s * np.where(x > 0, act.b, act.a))
    if act.name == "tanh":
        return (lambda x: np.tanh(s * x)), (lambda x: s / np.cosh(s * x) ** 2)
    raise AssertionError(act.name)


# ------------------------------------------------------------------------------------------
# 4-D orthant probability and ReLU I4
# ------------------------------------------------------------------------------------------
def test_orthant4_matches_scipy_genz():
    rng = np.random.default_rng(RNG_SEED)
    Cs = np.stack([_wishart(rng, 4) for _ in range(4)])
    ours = np.asarray(G.orthant4(Cs))
    ref = np.array([_p4_scipy(C) for C in Cs])
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)  # Genz at abseps=1e-7


def test_orthant4_matches_owen_t_quadrature_to_1e12():
    """High-accuracy independent reference: 2-D adaptive quadrature of an Owen-T bivariate CDF.
    (scipy's Genz result differs from both by ~3e-9 even at abseps=1e-11.)"""
    rng = np.random.default_rng(RNG_SEED + 2)
    C = _wishart(rng, 4)
    assert abs(float(G.orthant4(C)) - _p4_owen(C)) < 1e-12


def test_orthant4_singular_equals_3d_closed_form():
    rng = np.random.default_rng(RNG_SEED + 1)
    for _ in range(3):
        C3 = _wishart(rng, 3)
        for idx in ([0, 0, 1, 2], [0, 1, 2, 1], [2, 0, 1, 2]):
            assert abs(float(G.orthant4(_sub(C3, idx))) - _orth3(C3)) < 2e-9


@pytest.mark.parametrize("seed", range(3))
def test_relu_i4_degenerate_patterns_against_elementary_forms(seed):
    """Exactly singular C from repeated indices: the common case in the ODE (tolerance 2e-11)."""
    rng = np.random.default_rng(RNG_SEED + 10 + seed)
    C3 = _wishart(rng, 3, scale=rng.uniform(0.3, 3.0))
    C2 = _wishart(rng, 2)
    cases = [
        (_sub(C3, [0, 0, 1, 2]), _h3(C3)),  # a = b
        (_sub(C3, [0, 1, 0, 2]), _h3(_sub(C3, [1, 0, 2]))),  # c = a
        (_sub(C3, [0, 1, 2, 1]), _h3(_sub(C3, [0, 2, 1]))),  # d = b
        (_sub(C3, [0, 1, 2, 2]), _k3(C3)),  # c = d
        (_sub(C2, [0, 1, 0, 1]), _arccos1(C2[0, 0], C2[0, 1], C2[1, 1])),  # c = a, d = b
        (_sub(C2, [0, 0, 0, 1]), _arccos1(C2[0, 0], C2[0, 1], C2[1, 1])),  # a = b = c
        (_sub(C2, [0, 0, 1, 1]), _theta_c2_theta(C2)),  # a = b, c = d
        (_sub(C2, [0, 0, 0, 0]), C2[0, 0] / 2),  # all equal
    ]
    ours = np.asarray(G.relu_i4(np.stack([c for c, _ in cases])))
    ref = np.array([r for _, r in cases])
    np.testing.assert_allclose(ours, ref, atol=2e-11, rtol=0)


def test_relu_i4_random_pd_against_spec_reduction_with_scipy_p4():
    rng = np.random.default_rng(RNG_SEED + 20)
    Cs = np.stack([_wishart(rng, 4, scale=rng.uniform(0.3, 3.0)) for _ in range(2)])
    ours = np.asarray(G.relu_i4(Cs))
    ref = np.array([_relu_i4_spec(C) for C in Cs])
    np.testing.assert_allclose(ours, ref, atol=2e-6, rtol=0)  # limited by scipy's P4


@pytest.mark.slow
def test_relu_i4_against_spec_reduction_with_owen_t_p4():
    rng = np.random.default_rng(RNG_SEED + 21)
    C = _wishart(rng, 4, scale=2.0)
    assert abs(float(G.relu_i4(C)) - _relu_i4_spec(C, p4=_p4_owen(C))) < 1e-11


def test_relu_i4_monte_carlo():
    """PD (1e6 samples) and nearly collinear C (1e7 samples) against Monte Carlo, 5 standard errors."""
    rng = np.random.default_rng(RNG_SEED + 30)
    W = rng.normal(size=(4, 8)) / np.sqrt(8)
    C_pd = W @ W.T
    W2 = W.copy()
    W2[1] = W2[0] + 1e-4 * rng.normal(size=8)  # nearly collinear a ~ b
    C_near = W2 @ W2.T
    fn = lambda z: (z[:, 0] > 0) * (z[:, 1] > 0) * np.maximum(z[:, 2], 0) * np.maximum(z[:, 3], 0)  # noqa: E731
    ours = np.asarray(G.relu_i4(np.stack([C_pd, C_near])))
    for k, (C, n) in enumerate(((C_pd, 1_000_000), (C_near, 10_000_000))):
        mean, se = _mc_mean(fn, C, n, seed=100 + k)
        assert abs(ours[k] - mean) < 5 * se, (k, ours[k], mean, se)


def test_relu_i4_nearly_collinear_tends_to_degenerate_value():
    """b = a + sqrt(delta) eta: I4 -> the elementary a = b value as O(sqrt(delta)), no breakdown."""
    rng = np.random.default_rng(RNG_SEED + 40)
    W = rng.normal(size=(3, 6)) / np.sqrt(6)
    eta = rng.normal(size=6) / np.sqrt(6)
    limit = _h3(W @ W.T)
    for delta in (1e-6, 1e-10, 1e-14):
        V = np.stack([W[0], W[0] + math.sqrt(delta) * eta, W[1], W[2]])
        val = float(G.relu_i4(V @ V.T))
        assert np.isfinite(val)
        assert abs(val - limit) < 2 * math.sqrt(delta) + 1e-12, (delta, val - limit)


def test_relu_i4_zero_variance_batch_shape_jit_and_grad():
    rng = np.random.default_rng(RNG_SEED + 50)
    C = _wishart(rng, 4)
    Cz = C.copy()
    Cz[2, :] = Cz[:, 2] = 0.0  # unit with zero weights: relu(0) = 0
    Cz2 = C.copy()
    Cz2[0, :] = Cz2[:, 0] = 0.0  # Theta(0) = 0
    assert float(G.relu_i4(Cz)) == 0.0 and float(G.relu_i4(Cz2)) == 0.0
    # ODE-shaped batch: (K, K, K+M, K+M, 4, 4) sub-covariances of one joint covariance
    W = rng.normal(size=(5, 10)) / np.sqrt(10)
    J = W @ W.T
    K, n = 2, 5
    idx = np.stack(np.meshgrid(np.arange(K), np.arange(K), np.arange(n), np.arange(n), indexing="ij"), -1)
    sub = J[idx[..., :, None], idx[..., None, :]]
    out = jax.jit(G.relu_i4)(sub)
    assert out.shape == (K, K, n, n)
    assert np.all(np.isfinite(out))
    # symmetry I4(i,k,c,d) = I4(k,i,c,d) = I4(i,k,d,c) (an independent consistency property)
    np.testing.assert_allclose(out, np.swapaxes(out, 0, 1), atol=1e-13)
    np.testing.assert_allclose(out, np.swapaxes(out, 2, 3), atol=1e-13)


@pytest.mark.slow
def test_relu_i4_gradient_finite_and_matches_finite_differences():
    """Gradient (e.g. for a Newton fixed-point Jacobian) at an exactly singular C (a = b)."""
    rng = np.random.default_rng(RNG_SEED + 55)
    C = _sub(_wishart(rng, 3), [0, 0, 1, 2])
    grad = np.asarray(jax.grad(lambda c: G.relu_i4(c))(jnp.asarray(C)))
    assert np.all(np.isfinite(grad))
    E = np.zeros((4, 4))
    E[2, 3] = E[3, 2] = 1.0
    h = 1e-5
    fd = (float(G.relu_i4(C + h * E)) - float(G.relu_i4(C - h * E))) / (2 * h)
    assert abs(grad[2, 3] + grad[3, 2] - fd) < 1e-6


def test_relu_i4_nan_propagates():
    C = np.full((4, 4), np.nan)
    assert np.isnan(float(G.relu_i4(C)))


# ------------------------------------------------------------------------------------------
# closed forms = quadrature = Monte Carlo
# ------------------------------------------------------------------------------------------
CLOSED = [A.erf(1.0), A.erf(1.0 / math.sqrt(2.0)), A.relu(), A.linear(1.3), A.abrelu(-0.3, 1.2)]
# quadrature tolerances vs closed forms (unit-scale C, order 40 / i4 order 16): erf is smooth
# (fast convergence), relu/abrelu have a kink (algebraic convergence ~ order^-1.5)
# (i2/j2/i3 at order 60, i4 at order 20; erf(x) is twice as steep as erf(x/sqrt2))
_QTOL = {"erf": 2e-6, "linear": 1e-10, "relu": 6e-3, "abrelu": 6e-3}
# rank-adaptive tensor Gauss-Hermite at order 20 (measured max 1.1e-6 for erf(x) over all tuples of
# a K=4, M=2 state, benchmarks/gaussian.py; 8e-5 on the full-rank C below, whose erf(x)' is narrow)
_QTOL_I4 = {"erf": 2e-4, "linear": 1e-10, "relu": 2e-2}


@pytest.fixture(scope="module")
def cov_sets():
    rng = np.random.default_rng(RNG_SEED + 60)
    W = rng.normal(size=(4, 12)) / np.sqrt(12)
    W[1] = 0.8 * W[1] + 0.6 * W[0]
    C4 = W @ W.T
    return {2: C4[:2, :2], 3: C4[:3, :3], 4: C4, "sing3": _sub(C4, [0, 1, 0]), "sing4": _sub(C4, [0, 0, 1, 2])}


def _mc_all(C, act, kind, n, seed):
    g, dg = _np_act(act)
    fns = {
        "i2": lambda z: g(z[:, 0]) * g(z[:, 1]),
        "j2": lambda z: dg(z[:, 0]) * dg(z[:, 1]),
        "i3": lambda z: dg(z[:, 0]) * z[:, 1] * g(z[:, 2]),
        "i4": lambda z: dg(z[:, 0]) * dg(z[:, 1]) * g(z[:, 2]) * g(z[:, 3]),
    }
    return _mc_mean(fns[kind], C, n, seed)


@pytest.mark.parametrize("act", CLOSED, ids=str)
def test_closed_forms_equal_quadrature_and_monte_carlo(act, cov_sets):
    kinds = [("i2", 2), ("j2", 2)]
    if act.name != "abrelu":  # abrelu: I2/J2 closed forms only (I3/I4 fall back to quadrature)
        kinds += [("i3", 3), ("i3", "sing3"), ("i4", 4), ("i4", "sing4")]
    fn = {"i2": G.i2, "j2": G.j2, "i3": G.i3, "i4": G.i4}
    for kind, key in kinds:
        C = cov_sets[key]
        closed = float(fn[kind](act, C))
        order = 20 if kind == "i4" else 60
        quad = float(G.quadrature_integral(kind, act, C, order))
        tol = (_QTOL_I4 if kind == "i4" else _QTOL)[act.name]
        assert abs(closed - quad) < tol, (kind, key, closed, quad)
        mean, se = _mc_all(C, act, kind, 200_000, seed=zlib.crc32(f"{kind}{key}".encode()))
        assert abs(closed - mean) < 5 * se + 1e-12, (kind, key, closed, mean, se)


def test_erf_quadrature_converges_to_closed_forms(cov_sets):
    """Smooth activation: Gauss-Hermite error drops fast with order (measured, unit-scale C)."""
    g = A.erf(1 / math.sqrt(2))
    C3 = cov_sets[3]
    assert abs(float(G.quadrature_i3(g, C3, 32)) - float(G.i3(g, C3))) < 1e-9
    C4 = cov_sets[4]
    e8 = abs(float(G.quadrature_i4(g, C4, 8)) - float(G.i4(g, C4)))
    e12 = abs(float(G.quadrature_i4(g, C4, 12)) - float(G.i4(g, C4)))
    assert e12 < 1e-4 and e12 < e8 / 5, (e8, e12)


@pytest.mark.parametrize("kind", ["i2", "j2", "i3", "i4"])
def test_tanh_quadrature_against_monte_carlo(kind, cov_sets):
    act = A.tanh()
    C = cov_sets[{"i2": 2, "j2": 2, "i3": 3, "i4": 4}[kind]]
    fn = {"i2": G.i2, "j2": G.j2, "i3": G.i3, "i4": G.i4}[kind]
    val = float(fn(act, C, order=20 if kind == "i4" else 60))
    mean, se = _mc_all(C, act, kind, 1_000_000, seed=7)
    assert abs(val - mean) < 5 * se, (val, mean, se)
    est = float(G.quadrature_error_estimate(kind, act, C, 12 if kind == "i4" else 40))
    assert est < (3e-3 if kind == "i4" else 1e-5)


def test_i4_quadrature_rank_adaptive_on_degenerate_patterns():
    """Exactly singular tuples (a = b = c = d, a = b and c = d, ...) are integrated in their own rank:
    erf(x) against its closed form, order 12 (measured errors 1e-10 .. 1e-5)."""
    g = A.erf(1.0)
    rng = np.random.default_rng(RNG_SEED + 90)
    C3 = _wishart(rng, 3)
    pats = [[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1, 2], [0, 1, 2, 2]]
    Cs = np.stack([_sub(C3, p) for p in pats])
    err = np.abs(np.asarray(G.quadrature_i4(g, Cs, 12)) - np.asarray(G.i4(g, Cs)))
    assert err[0] < 1e-8 and err[1:3].max() < 1e-4 and err.max() < 5e-4, err


def test_custom_callable_equals_named_activation(cov_sets):
    C = cov_sets[3]
    named = float(G.i3(A.sigmoid(0.8), C))
    custom = float(G.i3(A.custom(lambda x: 1 / (1 + jnp.exp(-x)), scale=0.8), C))
    assert abs(named - custom) < 1e-12


def test_scale_rule_g_of_sx(cov_sets):
    """g(x) = f(s x): I2_g(C) = I2_f(s^2 C), J2_g = s^2 J2_f(s^2 C), I3_g = I3_f(s^2 C), I4_g = s^2 I4_f(s^2 C)."""
    s = 0.6
    for name in ("erf", "relu", "tanh"):
        g, f = A.Activation(name, scale=s), A.Activation(name, scale=1.0)
        C2, C3, C4 = cov_sets[2], cov_sets[3], cov_sets[4]
        assert abs(float(G.i2(g, C2)) - float(G.i2(f, s * s * C2))) < 1e-12
        assert abs(float(G.j2(g, C2)) - s * s * float(G.j2(f, s * s * C2))) < 1e-12
        assert abs(float(G.i3(g, C3)) - float(G.i3(f, s * s * C3))) < 1e-12
        assert abs(float(G.i4(g, C4, order=8)) - s * s * float(G.i4(f, s * s * C4, order=8))) < 1e-12


def test_zero_variance_conventions():
    """A field that is identically 0 has g'(0) = Theta(0) = 0 for ReLU (as Activation.grad)."""
    C2 = np.array([[0.0, 0.0], [0.0, 1.0]])
    assert float(G.j2("relu", C2)) == 0.0
    assert float(G.i2("relu", C2)) == 0.0
    C3 = np.array([[0.0, 0, 0], [0, 1.0, 0.5], [0, 0.5, 1.0]])
    assert float(G.i3("relu", C3)) == 0.0
    # abrelu: g'(0) = a, E[g'(v)] = (a + b)/2 for the non-degenerate field
    ab = A.abrelu(-0.3, 1.2)
    assert abs(float(G.j2(ab, C2)) - (-0.3) * (-0.3 + 1.2) / 2) < 1e-15


def test_bad_input():
    with pytest.raises(ValueError, match="C"):
        G.quadrature_i2("tanh", np.eye(3))
    with pytest.raises(ValueError, match="C"):
        G.relu_i4(np.eye(3))
    with pytest.raises(ValueError, match="order"):
        G.quadrature_i2("tanh", np.eye(2), order=0)
    with pytest.raises(ValueError, match="kind"):
        G.quadrature_error_estimate("i5", "tanh", np.eye(2), 10)


def test_psd_factor_exact_duplicates():
    rng = np.random.default_rng(RNG_SEED + 70)
    C = _sub(_wishart(rng, 3), [0, 1, 0, 2])
    L = np.asarray(G.psd_factor(C))
    np.testing.assert_allclose(L @ L.T, C, atol=1e-14)
    assert np.array_equal(L[0], L[2])  # duplicated field -> identical rows, exact zero pivot
    assert L[2, 2] == 0.0


@pytest.mark.slow
def test_relu_i4_ode_like_tuples_converged():
    """All (i,k,c,d) tuples of a K=4, M=2 state with copied units: 64 nodes vs 400 nodes < 1e-10."""
    rng = np.random.default_rng(RNG_SEED + 80)
    W = rng.normal(size=(6, 50)) / np.sqrt(50)
    W[1] = W[4]
    W[2] = W[0] + 1e-5 * rng.normal(size=50)
    J = W @ W.T
    Cs = np.stack([_sub(J, list(t)) for t in itertools.product(range(4), range(4), range(6), range(6))])
    err = np.abs(np.asarray(G.relu_i4(Cs)) - np.asarray(G.relu_i4(Cs, nodes=400)))
    assert err.max() < 1e-10


def _dblquad_theta_relu_relu(C):
    """E[Theta(a) relu(b) relu(c)] by SciPy dblquad over (b, c) > 0 with P(a > 0 | b, c) (independent reference)."""
    import scipy.integrate
    import scipy.stats

    Sbc = C[1:, 1:]
    w = C[0, 1:] @ np.linalg.inv(Sbc)
    sv = np.sqrt(C[0, 0] - w @ C[1:, 0])
    mvn = scipy.stats.multivariate_normal(np.zeros(2), Sbc)
    f = lambda y, x: x * y * mvn.pdf([x, y]) * scipy.stats.norm.cdf((w[0] * x + w[1] * y) / sv)
    return scipy.integrate.dblquad(f, 0, np.inf, 0, np.inf, epsabs=1e-14, epsrel=1e-12)[0]


def test_relu_orthant_moment_closed_forms():
    """Tallis' orthant second moments against SciPy dblquad (3-D), the elementary 2-D forms, Monte Carlo, and the
    1-D Price integral of relu_i4 on the same (degenerate) 4-field covariance (which is only ~1e-8 accurate there)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 3, 6))
    Cs = X @ X.transpose(0, 2, 1) / 6
    for C in Cs:
        ref = _dblquad_theta_relu_relu(C)
        assert float(G.relu_orthant_moment(C, 1, 2)) == pytest.approx(ref, abs=1e-11)
    # 2-D: E[Theta(a) relu(b)^2] and the arc-cosine kernel E[relu(a) relu(b)]
    C2 = Cs[:, :2, :2]
    r = C2[:, 0, 1] / np.sqrt(C2[:, 0, 0] * C2[:, 1, 1])
    th_b2 = C2[:, 1, 1] * (0.25 + np.arcsin(r) / (2 * np.pi) + r * np.sqrt(1 - r * r) / (2 * np.pi))
    arccos = np.sqrt(C2[:, 0, 0] * C2[:, 1, 1]) * (np.sqrt(1 - r * r) + r * (np.pi / 2 + np.arcsin(r))) / (2 * np.pi)
    np.testing.assert_allclose(G.relu_orthant_moment(C2, 1, 1), th_b2, rtol=1e-13)
    np.testing.assert_allclose(G.relu_orthant_moment(C2, 0, 1), arccos, rtol=1e-13)
    np.testing.assert_allclose(G.relu_orthant_moment(C2[:, :1, :1], 0, 0), C2[:, 0, 0] / 2, rtol=1e-15)
    # 3-D E[Theta(a) Theta(b) relu(c)^2] by Monte Carlo (5 standard errors)
    z = rng.standard_normal((1_000_000, 3)) @ np.linalg.cholesky(Cs[0]).T
    s = np.where(np.all(z > 0, axis=1), z[:, 2] ** 2, 0.0)
    assert abs(float(G.relu_orthant_moment(Cs[0], 2, 2)) - s.mean()) < 5 * s.std() / np.sqrt(s.size)
    # the same quantities as degenerate 4-field I4 (relu_i4's 1-D integral): agree to its accuracy there
    for idx, ij in (([0, 0, 1, 2], (1, 2)), ([0, 1, 2, 2], (2, 2))):
        C4 = Cs[:, idx][:, :, idx]
        np.testing.assert_allclose(G.relu_orthant_moment(Cs, *ij), G.relu_i4(C4, nodes=200), atol=1e-8)
    # nearly collinear fields (a specialised student unit) and exact copies stay finite and continuous
    a = rng.standard_normal(6)
    for eps in (1e-6, 1e-9, 0.0):
        Y = np.stack([a, a + eps * rng.standard_normal(6), rng.standard_normal(6)])
        C = Y @ Y.T / 6
        Cexact = np.stack([a, a, Y[2]]) @ np.stack([a, a, Y[2]]).T / 6
        np.testing.assert_allclose(G.relu_orthant_moment(C, 1, 2), G.relu_orthant_moment(Cexact, 1, 2),
                                   atol=10 * eps + 1e-12)
    # exact copies among the relu fields: E[Theta(a) relu(c) relu(c')] with c' = c is E[Theta(a) relu(c)^2]
    # (before: 0.2087 instead of 0.3674, the rounding noise of the residual of c' after c normalised to a unit vector)
    Y = np.array([[0.3, 0.5, 0.5, 0.2], [1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    for sign in (1.0, -1.0):  # the same field, and an exactly opposite one at the second place (P = 0 there)
        Ys = Y * np.array([[1.0], [1.0], [sign]])
        C3 = Ys @ Ys.T
        ref = _theta_relu2(C3[:2, :2]) if sign > 0 else 0.0
        for ij in ((1, 2), (1, 1), (2, 2)):
            assert float(G.relu_orthant_moment(C3, *ij)) == pytest.approx(ref, abs=1e-14)
            assert float(jax.jit(G.relu_orthant_moment, static_argnums=(1, 2))(C3, *ij)) == pytest.approx(ref, abs=1e-14)
    near = Y.copy()
    near[2, 3] = 1e-7
    assert float(G.relu_orthant_moment(near @ near.T, 1, 2)) == pytest.approx(_theta_relu2(C3[:2, :2]), abs=1e-6)
    with pytest.raises(ValueError, match="n in"):
        G.relu_orthant_moment(np.eye(4), 0, 1)


def _theta_relu2(C2):
    """E[Theta(a) relu(b)^2] of a 2x2 covariance (elementary closed form)."""
    r = C2[0, 1] / np.sqrt(C2[0, 0] * C2[1, 1])
    return C2[1, 1] * (0.25 + np.arcsin(r) / (2 * np.pi) + r * np.sqrt(1 - r * r) / (2 * np.pi))


def test_exact_degeneracy_survives_jit():
    """Duplicated fields stay exactly duplicated under jit (XLA rewrites x / d as x * (1/d), which made
    d / d = 1 - 1.1e-16 and put the square-root branch points of ReLU at 1.5e-8): psd_factor rows bitwise
    equal, and the ReLU closed forms at a repeated unit equal their elementary values
    (E[relu(u)^2] = c/2, E[Theta(u)^2] = 1/2, E[Theta(u) v relu(u)] = C_uv / 2) to rounding."""
    rng = np.random.default_rng(RNG_SEED + 71)
    pats = [[0, 0, 1, 2], [0, 1, 0, 2], [0, 1, 2, 1], [0, 1, 2, 2], [0, 1, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1]]
    Cs = np.stack([_sub(_wishart(rng, 3, scale=rng.uniform(0.1, 3.0)), p) for _ in range(40) for p in pats])
    P = pats * 40
    L = np.asarray(jax.jit(G.psd_factor)(Cs))
    for Lk, p in zip(L, P):
        for i, j in itertools.combinations(range(4), 2):
            if p[i] == p[j]:
                assert np.array_equal(Lk[i], Lk[j]), (p, Lk)
    c = rng.uniform(0.1, 3.0, size=100)
    C2 = c[:, None, None] * np.ones((2, 2))
    np.testing.assert_allclose(jax.jit(lambda C: G.i2("relu", C))(C2), c / 2, rtol=1e-15)
    np.testing.assert_allclose(jax.jit(lambda C: G.j2("relu", C))(C2), 0.5, rtol=1e-15)
    C3 = np.stack([[[x, 0.3, x], [0.3, 1.0, 0.3], [x, 0.3, x]] for x in c])
    np.testing.assert_allclose(jax.jit(lambda C: G.i3("relu", C))(C3), 0.15, rtol=1e-14)


def test_relu_product_moment_collapses_repeated_fields_to_closed_forms():
    """Averages over distinct fields with ``g = relu(s x)``, ``g' = s Theta``: ``E[(g' g)(z1) g(z2)] =
    s E[relu(s z1) relu(s z2)]`` (the arc-cosine kernel written above) and ``E[g'(z1) g(z2)^2]`` (Monte Carlo,
    5 standard errors)."""
    rng = np.random.default_rng(11)
    W = rng.standard_normal((2, 4))
    C = W @ W.T
    g = A.relu(1.3)
    s2 = 1.3 ** 2
    got = float(g.product_moment(("dg", "g"), C, order=8))
    assert abs(got - 1.3 * _arccos1(s2 * C[0, 0], s2 * C[0, 1], s2 * C[1, 1])) < 1e-13
    z = rng.multivariate_normal(np.zeros(2), C, size=2_000_000) * 1.3
    f = 1.3 * (z[:, 0] > 0) * np.maximum(z[:, 1], 0.0) ** 2
    got = float(g.product_moment(("d", "gg"), C, order=8))
    assert abs(got - f.mean()) < 5 * f.std() / np.sqrt(len(f))
