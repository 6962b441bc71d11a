"""ODE theory of online SGD (Goldt et al. 2019) against independent references.

References used: the reference C++ right-hand side (its published test vector), the exact solution of the linear
network, autodiff of the closed-form generalisation error (gradient-flow structure of the O(eta)
terms), the Saad-Solla plateau (Saad & Solla 1995) and the notebook's closed-form asymptotic errors (Goldt et al. 2019, Sec. 4).
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import learndyn  # noqa: F401  (enables float64)
from learndyn import gaussian, online
from learndyn.results import InvalidInputError
from learndyn.online import ode

Q_REF = np.array([[1.0, 0.2, 0.1], [0.2, 0.8, -0.1], [0.1, -0.1, 0.5]])
R_REF = np.array([[0.6, 0.1], [0.0, 0.5], [0.2, -0.3]])
V_REF = np.array([0.9, 1.1, -0.4])
VT_REF = np.array([1.0, 0.7])

# the reference test vector, reproduced by the reference C++ integrator to 6 decimals
EXPECTED = {
    "erf": dict(
        eg=0.3214812813,
        dQ=[[-0.02414768, -0.12462575, 0.04747755], [-0.12462575, -0.11731978, 0.06955254],
            [0.04747755, 0.06955254, -0.01332738]],
        dR=[[0.09674519, -0.01410701], [0.1014091, 0.01829293], [-0.03890664, 0.00407155]],
        dv=[-0.04289368, -0.08390809, 0.0276547],
    ),
    "linear": dict(
        eg=0.888,
        dQ=[[-0.00126, -0.11354, 0.01306], [-0.11354, -0.27566, 0.06574], [0.01306, 0.06574, -0.01136]],
        dR=[[0.243, -0.027], [0.297, -0.033], [-0.108, 0.012]],
        dv=[-0.123, -0.225, 0.063],
    ),
}


def _ref_state():
    return online.OrderParameters(Q=Q_REF, R=R_REF, T=np.eye(2), v=V_REF, v_teacher=VT_REF)


@pytest.mark.parametrize("activation", ["erf", "linear"])
def test_rhs_matches_reference_cpp_vector(activation):
    prob = online.Problem(M=2, K=3, activation=activation, lr=0.5, lr2=0.3, sigma=0.2, train_second_layer=True)
    st = _ref_state()
    exp = EXPECTED[activation]
    assert online.generalisation_error(prob, st) == pytest.approx(exp["eg"], abs=1e-9)
    dQ, dR, dv = jax.jit(functools.partial(ode.rhs, prob))(*(jnp.asarray(a) for a in (st.Q, st.R, st.v, st.T,
                                                                                   st.v_teacher)))
    np.testing.assert_allclose(dQ, exp["dQ"], atol=2e-8)
    np.testing.assert_allclose(dR, exp["dR"], atol=2e-8)
    np.testing.assert_allclose(dv, exp["dv"], atol=2e-8)


@pytest.mark.parametrize("activation", ["erf", "linear"])
def test_vector_field_is_the_rhs_integrate_steps(activation):
    """online.ode.vector_field: the compiled right-hand side of integrate at one state, against the reference
    C++ vector; a state of other sizes is refused by name."""
    prob = online.Problem(M=2, K=3, activation=activation, lr=0.5, lr2=0.3, sigma=0.2, train_second_layer=True)
    exp = EXPECTED[activation]
    dQ, dR, dv = ode.vector_field(prob, _ref_state())
    np.testing.assert_allclose(dQ, exp["dQ"], atol=2e-8)
    np.testing.assert_allclose(dR, exp["dR"], atol=2e-8)
    np.testing.assert_allclose(dv, exp["dv"], atol=2e-8)
    with pytest.raises(InvalidInputError, match="state has K=3, M=2 but the problem has K=2"):
        ode.vector_field(prob.replace(K=2), _ref_state())


def test_i4_tuples_layout_and_shapes():
    """online.ode.i4_tuples: one row per student pair i <= k and field pair c <= d, students first; wrong
    overlap shapes are refused by name."""
    K, M = 3, 2
    prob = online.Problem(M=M, K=K, activation="erf")
    st = _ref_state()
    tuples, values = ode.i4_tuples(prob, st.Q, st.R, st.T)
    n = K + M
    assert tuples.shape == (K * (K + 1) // 2 * n * (n + 1) // 2, 4) and values.shape == (len(tuples),)
    assert np.all(tuples[:, 0] <= tuples[:, 1]) and np.all(tuples[:, 2] <= tuples[:, 3])
    assert np.all(tuples[:, :2] < K) and len({tuple(t) for t in tuples}) == len(tuples)
    with pytest.raises(InvalidInputError, match="i4_tuples: Q, R, T must have shapes"):
        ode.i4_tuples(prob, st.Q, st.R.T, st.T)


@pytest.mark.parametrize("activation", ["erf", "linear"])
def test_first_order_terms_are_gradient_flow_of_eg(activation):
    """At O(eta) and sigma = 0 the ODE is gradient flow dw_k/dalpha = -eta N grad_{w_k} eps_g, and
    dv/dalpha = -eta_2 grad_v eps_g. Checked with autodiff of the closed-form eps_g(Q, R, v) (uses I2 only,
    whereas the ODE uses the I3 closed forms)."""
    K, M = 3, 2
    st = _ref_state()
    T, vt = jnp.asarray(st.T), jnp.asarray(st.v_teacher)
    Q, R, v = jnp.asarray(st.Q), jnp.asarray(st.R), jnp.asarray(st.v)
    prob = online.Problem(M=M, K=K, activation=activation, lr=1.0, lr2=0.7, sigma=0.0, train_second_layer=True)

    def eg(Q, R, v):
        return ode.generalisation_error_arrays(prob, Q, R, T, v, vt)

    gQ, gR, gv = jax.grad(eg, argnums=(0, 1, 2))(Q, R, v)
    S = gQ + gQ.T  # derivative w.r.t. the symmetric matrix, both entries
    # grad_{w_k} eps = (1/N) [sum_l S_kl w_l + sum_n gR_kn w*_n]  =>  projections onto w and w*
    proj_w = S @ Q + gR @ R.T  # (k, l): w_l . N grad_{w_k} eps / N
    proj_t = S @ R + gR @ T  # (k, n)
    dR_flow = -proj_t
    dQ_flow = -(proj_w + proj_w.T)
    h = 1e-3
    f = jax.jit(lambda lr: ode.rhs(prob, Q, R, v, T, vt, lr=lr, lr2=0.7))
    f1, f2 = f(h), f(2 * h)
    lin = [(4 * a - b) / (2 * h) for a, b in zip(f1, f2)]  # exact O(eta) coefficient of a quadratic
    np.testing.assert_allclose(lin[0], dQ_flow, atol=1e-9)
    np.testing.assert_allclose(lin[1], dR_flow, atol=1e-9)
    np.testing.assert_allclose(f1[2], -0.7 * gv, atol=1e-12)


def test_linear_first_layer_matches_exact_regression_dynamics():
    """Linear student, first layer only, v = v* = 1: eps obeys d eps/d alpha = -K eta (2 - K eta) eps
    + K^2 eta^2 sigma^2 / 2, solved exactly."""
    K, M, lr, sigma = 3, 2, 0.2, 0.3
    rng = np.random.default_rng(3)
    N = 400
    st = online.OrderParameters.from_weights(rng.standard_normal((K, N)) * 0.5, rng.standard_normal((M, N)))
    prob = online.Problem(M=M, K=K, activation="linear", lr=lr, sigma=sigma)
    alphas = np.linspace(0, 20, 41)
    traj = online.integrate(prob, st, alphas=alphas, rtol=1e-11, atol=1e-13)
    assert traj.success
    rate = K * lr * (2 - K * lr)
    eps_inf = online.eg_linear_first_layer(lr, sigma, K)
    exact = eps_inf + (traj.eg[0] - eps_inf) * np.exp(-rate * alphas)
    np.testing.assert_allclose(traj.eg, exact, rtol=1e-8)


@pytest.fixture(scope="module")
def plateau_trajectory():
    """K = M = 2 erf, eta = 0.5, initial overlaps 1e-9 (reference code's init 1; Saad & Solla 1995)."""
    rng = np.random.default_rng(0)
    eps0 = 1e-9
    Q = np.eye(2) + eps0 * rng.standard_normal((2, 2))
    Q = 0.5 * (Q + Q.T)
    prob = online.Problem(M=2, K=2, activation="erf", lr=0.5)
    st = online.OrderParameters(Q=Q, R=eps0 * rng.random((2, 2)), T=np.eye(2))
    return prob, online.integrate(prob, st, alphas=online.default_alphas(3000.0))


def test_saad_solla_plateau_and_escape(plateau_trajectory):
    prob, traj = plateau_trajectory
    assert traj.success and traj.alpha[-1] == pytest.approx(3000.0)
    on_plateau = (traj.alpha > 200) & (traj.alpha < 450)
    # full-ODE symmetric fixed point at eta = 0.5: eps = 0.014677 (C++ sits at 0.01464-0.01472)
    np.testing.assert_allclose(traj.eg[on_plateau], 0.014677, rtol=5e-3)
    assert traj.eg[-1] < 1e-8  # escapes and learns the teacher perfectly (sigma = 0, K = M)
    R = traj.R[-1]
    assert np.allclose(np.sort(np.abs(R).ravel()), [0, 0, 1, 1], atol=1e-4)  # specialised: a permutation


def test_plateau_fixed_point_matches_saad_solla():
    K = 2
    q, r, eps = online.plateau_erf(K)
    assert eps == pytest.approx(0.011611, abs=1e-6)  # Saad & Solla 1995 plateau
    prob = online.Problem(M=K, K=K, activation="erf", lr=0.5)
    start = online.OrderParameters(Q=np.full((K, K), 0.34), R=np.full((K, K), 0.41), T=np.eye(K))
    fp = online.fixed_point(prob, start)
    assert fp.converged and not fp.stable  # the plateau is a saddle
    np.testing.assert_allclose(fp.state.Q, 0.33958, atol=2e-5)  # eta = 0.5
    np.testing.assert_allclose(fp.state.R, 0.41016, atol=2e-5)
    assert fp.eg == pytest.approx(0.014677, abs=2e-6)
    # eta -> 0: the Saad-Solla closed form
    small = online.fixed_point(prob.replace(lr=1e-4), online.OrderParameters(
        Q=np.full((K, K), q), R=np.full((K, K), r), T=np.eye(K)))
    assert small.eg == pytest.approx(eps, rel=2e-4)
    np.testing.assert_allclose(small.state.Q, q, rtol=5e-4)


def _informed_state(M, L, extra_norm):
    """Students 1..M copy the teacher units; the L extra units have tiny norm (R = 0)."""
    K = M + L
    Q = np.zeros((K, K))
    Q[:M, :M] = np.eye(M)
    Q[M:, M:] = extra_norm * np.eye(L)
    R = np.zeros((K, M))
    R[:M, :M] = np.eye(M)
    return online.OrderParameters(Q=Q, R=R, T=np.eye(M))


@pytest.mark.parametrize("L, expected", [(0, 0.01920), (1, 0.03695)])
def test_fixed_point_matches_notebook_asymptotic_error(L, expected):
    """erf, first layer only, M = 2, eta = 0.1: eps*/sigma^2 from the closed form of the authors' notebook
    (Goldt et al. 2019, Sec. 4), reached from an informed start and refined by Newton."""
    M, lr, sigma = 2, 0.1, 0.01
    prob = online.Problem(M=M, K=M + L, activation="erf", lr=lr, sigma=sigma)
    traj = online.integrate(prob, _informed_state(M, L, 1e-4), alphas=[0.0, 2e4, 1e5])
    fp = online.fixed_point(prob, traj.final_state)
    assert fp.converged and fp.stable
    assert fp.eg / sigma**2 == pytest.approx(expected, rel=5e-4)
    assert traj.eg[-1] / sigma**2 == pytest.approx(expected, rel=5e-4)
    # the small-eta expansion is right to O(eta^3): at eta = 0.1 the O(eta^3) remainder is < 1%
    assert fp.eg == pytest.approx(online.eg_erf_first_layer(lr, sigma, M, L), rel=1e-2)


def test_fixed_point_small_lr_expansion():
    """At eta = 0.01 the second-order expansion of Goldt et al. 2019, Sec. 4, must hold to ~eta^2 relative."""
    M, L, lr, sigma = 2, 1, 0.01, 0.01
    prob = online.Problem(M=M, K=M + L, activation="erf", lr=lr, sigma=sigma)
    fp = online.fixed_point(prob, _informed_state(M, L, 1e-5))
    assert fp.converged
    assert fp.eg == pytest.approx(online.eg_erf_first_layer(lr, sigma, M, L, order=2), rel=2e-4)
    assert fp.eg == pytest.approx(online.eg_erf_first_layer(lr, sigma, M, L, order=1), rel=3e-2)


def test_linear_fixed_point_matches_closed_form():
    K, M, lr, sigma = 3, 2, 0.1, 0.1
    rng = np.random.default_rng(5)
    st = online.OrderParameters.from_weights(rng.standard_normal((K, 300)), rng.standard_normal((M, 300)))
    prob = online.Problem(M=M, K=K, activation="linear", lr=lr, sigma=sigma)
    traj = online.integrate(prob, st, alphas=[0.0, 200.0])
    fp = online.fixed_point(prob, traj.final_state)
    # linear first-layer fixed point: K=3, eta=0.1, sigma=0.1 -> 8.82353e-4 (also the C++ reference value)
    assert fp.eg == pytest.approx(8.82353e-4, rel=1e-5)
    assert fp.eg == pytest.approx(online.eg_linear_first_layer(lr, sigma, K), rel=1e-9)
    assert fp.stable or fp.marginal  # directions that leave sum_k w_k unchanged are neutral


def test_divergence_is_reported_and_partial_trajectory_kept():
    """Linear K = M = 1 perceptron is unstable for eta > 2 (online Adaline)."""
    prob = online.Problem(M=1, K=1, activation="linear", lr=2.5, sigma=0.1)
    st = online.OrderParameters(Q=[[0.5]], R=[[0.1]], T=[[1.0]])
    with pytest.warns(RuntimeWarning, match="diverged"):
        traj = online.integrate(prob, st, alphas=np.linspace(0, 100, 101), divergence_threshold=1e4)
    assert traj.status == "diverged" and not traj.success
    assert 0 < len(traj.alpha) < 101 and np.all(np.isfinite(traj.eg))
    assert traj.alpha_reached < 100
    assert np.all(np.diff(traj.eg[1:]) > 0)  # grew monotonically before the stop
    ds = traj.to_xarray()
    assert ds.attrs["status"] == "diverged"


def test_euler_reference_scheme_agrees_with_adaptive(plateau_trajectory):
    prob, traj = plateau_trajectory
    st = traj.state(0)
    alphas = np.array([0.0, 1.0, 5.0, 20.0, 50.0])
    a = online.integrate(prob, st, alphas=alphas)
    e = online.integrate(prob, st, alphas=alphas, method="euler", dt=0.01)
    np.testing.assert_allclose(e.eg, a.eg, rtol=5e-3)  # O(dt) Euler error


def test_to_xarray_roundtrip(tmp_path, plateau_trajectory):
    prob, traj = plateau_trajectory
    path = traj.save(tmp_path / "traj.nc")
    assert isinstance(learndyn.load(path), online.Trajectory)
    ds = learndyn.results.load_dataset(path)
    np.testing.assert_allclose(ds["eg"].values, traj.eg)
    assert ds["Q"].dims == ("alpha", "k", "l")
    assert ds.attrs["learndyn_version"] == learndyn.__version__
    assert '"lr": 0.5' in ds.attrs["problem"]


def test_alphas_not_starting_at_zero_and_warning_free():
    prob = online.Problem(M=1, K=1, activation="linear", lr=0.5)
    st = online.OrderParameters(Q=[[0.5]], R=[[0.1]], T=[[1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traj = online.integrate(prob, st, alphas=[1.0, 2.0])
    np.testing.assert_allclose(traj.alpha, [1.0, 2.0])
    # linear K = M = 1, sigma = 0: eps(alpha) = eps0 exp(-eta(2 - eta) alpha)
    eps0 = online.generalisation_error(prob, st)
    np.testing.assert_allclose(traj.eg, eps0 * np.exp(-0.75 * np.array([1.0, 2.0])), rtol=1e-6)


@pytest.mark.parametrize("bad, match", [
    (dict(alphas=[0.0, 2.0, 1.0]), "increasing"),
    (dict(alphas=[-1.0, 1.0]), ">= 0"),
    (dict(method="rk99"), "method"),
    (dict(method="euler"), "dt"),
    (dict(rtol=-1.0), "rtol"),
])
def test_integrate_rejects_bad_arguments(bad, match):
    prob = online.Problem(M=1, K=1, activation="linear", lr=0.5)
    st = online.OrderParameters(Q=[[0.5]], R=[[0.1]], T=[[1.0]])
    with pytest.raises(ValueError, match=match):
        online.integrate(prob, st, **bad)


def test_integrate_rejects_mismatched_state():
    prob = online.Problem(M=2, K=3)
    st = online.OrderParameters(Q=np.eye(2), R=np.zeros((2, 2)), T=np.eye(2))
    with pytest.raises(ValueError, match="K=2"):
        online.integrate(prob, st)


@pytest.mark.parametrize("activation, K, M, train_v, sigma", [("erf", 4, 2, True, 0.1), ("erf", 3, 3, False, 0.0)])
def test_dense_output_agrees_with_independent_integrator(activation, K, M, train_v, sigma):
    """Our compiled Dopri8 (default tolerances) vs SciPy's DOP853 at rtol 1e-11 on the same right-hand side:
    eps_g must agree to 1e-4 relative at every saved alpha (the acceptance bar is 1e-3)."""
    import scipy.integrate

    rng = np.random.default_rng(11)
    N = 500
    st = online.OrderParameters.from_weights(rng.standard_normal((K, N)), rng.standard_normal((M, N)),
                                             v=rng.standard_normal(K) if train_v else None)
    prob = online.Problem(M=M, K=K, activation=activation, lr=0.8, sigma=sigma, train_second_layer=train_v)
    alphas = online.default_alphas(300.0, 40)
    traj = online.integrate(prob, st, alphas)
    T, vt = jnp.asarray(st.T), jnp.asarray(st.v_teacher)

    @jax.jit
    def f(t, y):
        Q, R, v = y[:K * K].reshape(K, K), y[K * K:K * K + K * M].reshape(K, M), y[K * K + K * M:]
        dQ, dR, dv = ode.rhs(prob, Q, R, v, T, vt)
        return jnp.concatenate([dQ.ravel(), dR.ravel(), dv])

    y0 = np.concatenate([st.Q.ravel(), st.R.ravel(), st.v])
    sol = scipy.integrate.solve_ivp(lambda t, y: np.asarray(f(t, y)), (0, alphas[-1]), y0, method="DOP853",
                                    rtol=1e-11, atol=1e-13, t_eval=alphas)
    eg_ref = [online.generalisation_error(prob, online.OrderParameters(
        Q=0.5 * (y[:K * K].reshape(K, K) + y[:K * K].reshape(K, K).T), R=y[K * K:K * K + K * M].reshape(K, M),
        T=st.T, v=y[K * K + K * M:], v_teacher=st.v_teacher)) for y in sol.y.T]
    np.testing.assert_allclose(traj.eg, eg_ref, rtol=1e-4)


def _monte_carlo_drift(prob, st, n_samples=2_000_000, seed=0):
    """The ODE drift estimated directly from its definition (Goldt et al. 2019, eqs. (6)-(8)) by sampling the local fields,
    with no Gaussian-integral formula: returns (mean, standard error) of dQ, dR, dv."""
    K, M = prob.K, prob.M
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(st.covariance + 1e-12 * np.eye(K + M))
    z = rng.standard_normal((n_samples, K + M)) @ L.T
    lam, rho = z[:, :K], z[:, K:]
    g = prob.g
    gl, dgl = np.asarray(g(lam)), np.asarray(g.grad(lam))
    err = np.asarray(g(rho)) @ st.v_teacher - gl @ st.v  # y_noiseless - phi
    eta, eta2, s2 = prob.lr, prob.eta2, prob.sigma**2
    a = err[:, None] * dgl  # (y - phi) g'(lambda_i)
    samples_R = eta * st.v[None, :, None] * a[:, :, None] * rho[:, None, :]
    first = eta * st.v[None, :, None] * a[:, :, None] * lam[:, None, :]
    second = eta**2 * np.outer(st.v, st.v)[None] * (err[:, None, None] ** 2 + s2) * dgl[:, :, None] * dgl[:, None, :]
    samples_Q = first + np.swapaxes(first, 1, 2) + second
    samples_v = eta2 * err[:, None] * gl
    out = []
    for smp in (samples_Q, samples_R, samples_v):
        out.append((smp.mean(0), smp.std(0) / np.sqrt(n_samples)))
    return out


@pytest.mark.parametrize("activation", ["erf", "linear", "relu", "tanh"])
def test_rhs_matches_monte_carlo_drift(activation):
    prob = online.Problem(M=2, K=3, activation=activation, lr=0.5, lr2=0.3, sigma=0.2, train_second_layer=True)
    st = _ref_state()
    rhs = jax.jit(functools.partial(ode.rhs, prob))(*(jnp.asarray(a) for a in (st.Q, st.R, st.v, st.T,
                                                                             st.v_teacher)))
    for got, (mean, se) in zip(rhs, _monte_carlo_drift(prob, st)):
        assert np.all(np.abs(np.asarray(got) - mean) < 5 * se + 1e-12), (np.asarray(got), mean, se)


def test_relu_rhs_closed_forms_match_the_one_dimensional_integral():
    """ReLU: the RHS evaluates repeated-field I4 by Tallis' closed forms; the same I4 by the 1-D Price integral on
    every tuple (gaussian.i4) gives the same dQ to its accuracy (~1e-8 on degenerate tuples)."""
    rng = np.random.default_rng(3)
    K, M = 3, 2
    st = online.OrderParameters.from_weights(rng.standard_normal((K, 40)), rng.standard_normal((M, 40)),
                                             v=rng.standard_normal(K))
    prob = online.Problem(M=M, K=K, activation="relu", lr=0.7, sigma=0.1, train_second_layer=True)
    tuples, grouped = ode.i4_tuples(prob, st.Q, st.R, st.T)
    C = np.block([[st.Q, st.R], [st.R.T, st.T]])
    direct = gaussian.i4(prob.g, jnp.asarray(C[tuples[:, :, None], tuples[:, None, :]]))
    np.testing.assert_allclose(grouped, direct, atol=2e-8)
    assert np.max(np.abs(grouped - direct)) > 0  # the two paths really differ in method


def _min_eig_rel(traj):
    """Smallest eigenvalue of [[Q, R], [R^T, T]] over the kept states, relative to max C_ii (numpy)."""
    out = []
    for Q, R in zip(traj.Q, traj.R):
        C = np.block([[Q, R], [R.T, traj.T]])
        out.append(np.linalg.eigvalsh(C).min() / np.abs(np.diag(C)).max())
    return min(out)


@pytest.mark.parametrize("dt", [10.0, 1e6])
def test_fixed_step_blow_up_is_not_success_and_keeps_only_valid_states(dt):
    """Euler with a far too large step: every state variable and positive semi-definiteness are checked, so the
    run stops (it used to report "success"/"diverged" with kept states whose overlap matrix had eigenvalue -2e6,
    or the first step's R = -1.6e9 with eps_g clamped to 0); the kept part is a valid state."""
    prob = online.Problem(M=2, K=2, activation="linear", lr=0.5)
    st = online.OrderParameters(Q=[[0.5, 0.1], [0.1, 0.4]], R=[[0.2, 0.1], [0.0, 0.3]], T=np.eye(2))
    with pytest.warns(RuntimeWarning, match="not_psd|diverged"):
        traj = online.integrate(prob, st, alphas=np.linspace(0, 200, 21), method="euler", dt=dt)
    assert traj.status in ("not_psd", "diverged") and not traj.success
    assert len(traj.alpha) >= 1 and traj.alpha_reached < 200
    assert _min_eig_rel(traj) > -1e-6
    np.testing.assert_allclose(traj.eg[0], online.generalisation_error(prob, st))


def test_an_infinite_step_is_refused_by_name():
    # issue 12: dt = inf used to report success with eps_g clamped to 0 and an eigenvalue of -89
    prob = online.Problem(M=2, K=2, activation="linear", lr=0.5)
    st = online.OrderParameters(Q=[[0.5, 0.1], [0.1, 0.4]], R=[[0.2, 0.1], [0.0, 0.3]], T=np.eye(2))
    with pytest.raises(ValueError, match="dt: must be a finite number > 0"):
        online.integrate(prob, st, alphas=np.linspace(0, 200, 21), method="euler", dt=np.inf)


@pytest.mark.parametrize("bad, match", [
    (dict(divergence_threshold=float("nan")), "divergence_threshold"),
    (dict(divergence_threshold=0.0), "divergence_threshold"),
    (dict(max_steps=0), "max_steps"),
    (dict(max_steps=2.5), "max_steps"),
])
def test_integrate_rejects_bad_stop_criteria(bad, match):
    prob = online.Problem(M=1, K=1, activation="linear", lr=0.5)
    st = online.OrderParameters(Q=[[0.5]], R=[[0.1]], T=[[1.0]])
    with pytest.raises(ValueError, match=match):
        online.integrate(prob, st, **bad)


def test_relu_repeated_units_start_is_as_cheap_as_a_generic_one():
    """Issue 11: ReLU, M=2, K=4 from exact copies of units (the start used to stall at alpha ~ 4e-5 with steps of
    ~5e-9: under jit the exactly repeated fields were not exactly repeated, which put the square-root branch
    points of the ReLU averages at the rounding level). Now it integrates in ~240 steps, on jax 0.7 too, and the
    copies stay exact copies, as in SGD (identical weights get identical updates).

    Slightly separated copies (starts perturbed by eps orthogonally to the teachers) converge, linearly in eps,
    to a different solution, which splits the copies: the O(lr^2) term makes d|w_0 - w_1|^2/d alpha grow like
    |w_0 - w_1| (the two units' ReLU gates differ on a wedge of angle ~ |w_0 - w_1|), a right-hand side that is
    not Lipschitz at the copies. Before, rounding errors of ~5e-14 of the 1-D I4 integral split the exact copies
    too, onto that solution (jax 0.10) or outside the PSD cone, where the step collapsed (jax 0.7)."""
    prob = online.Problem(M=2, K=4, activation="relu", lr=0.5)
    W = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0.5, 0.5, 0]])  # teachers e_1, e_2
    v = np.array([0.5, 0.5, 1.0, 1.0])

    def run(Wx):  # the call: default alphas up to alpha_max = 50 (stalled; other save times may not)
        st = online.OrderParameters(Q=Wx @ Wx.T, R=Wx[:, :2], T=np.eye(2), v=v, v_teacher=np.ones(2))
        return online.integrate(prob, st, alpha_max=50, max_steps=1000)

    exact = run(W)
    assert exact.status == "success" and exact.n_steps < 400
    np.testing.assert_allclose(exact.Q[0], [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]])
    for a, b in ((0, 1), (2, 3)):  # the copies stay exact copies (before: 5.9e-5 apart at alpha = 50)
        assert np.array_equal(exact.Q[:, a, a], exact.Q[:, a, b]) and np.array_equal(exact.Q[:, b, b], exact.Q[:, a, b])
        assert np.array_equal(exact.R[:, a], exact.R[:, b]) and np.array_equal(exact.Q[:, a], exact.Q[:, b])
    assert exact.Q[-1, 0, 0] != exact.Q[0, 0, 0]  # they moved
    D = np.random.default_rng(1).normal(size=(4, 4))
    pert = []
    for eps in (1e-4, 1e-5, 1e-6):
        Wp = W.copy()
        Wp[:, 2:] += eps * D[:, 2:]
        pert.append(run(Wp))
        assert pert[-1].status == "success" and pert[-1].n_steps < 400
    # measured: 1.9e-5, 1.9e-6 (the separated copies converge linearly in eps) ...
    diffs = [np.max(np.abs(p.eg - q.eg)) for p, q in zip(pert[1:], pert[:-1])]
    assert diffs[0] < 1e-4 and diffs[1] < diffs[0] / 5, diffs
    # ... to a solution whose copies split (Q_00 - Q_01 ~ 6e-5 at alpha = 50) and whose eps_g differs by ~3e-4
    assert 1e-5 < pert[-1].Q[-1, 0, 0] - pert[-1].Q[-1, 0, 1] < 1e-3
    assert 1e-4 < np.max(np.abs(pert[-1].eg - exact.eg)) < 1e-3


def test_relu_rhs_keeps_exact_copies_of_units():
    """The right-hand side maps a state with an exact copy of a student unit (equal rows of Q and R, equal v) to
    exactly equal derivatives, eagerly and under jit, also when the copies equal a teacher unit. Before, the
    1-D integral of I4(0, 1, c, d) on the copies differed from the closed form of I4(0, 0, c, d) by ~5e-14,
    so dQ_00 - dQ_01 was ~3e-15."""
    prob = online.Problem(M=2, K=4, activation="relu", lr=0.5, train_second_layer=True)
    W = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0.3, 0.5, 0.5, 0.2], [0.3, 0.5, 0.5, 0.2]])
    args = (W @ W.T, W[:, :2], np.array([0.5, 0.5, 1.0, 1.0]), np.eye(2), np.ones(2))
    f = functools.partial(ode.rhs, prob)
    for fn in (f, jax.jit(f)):
        dQ, dR, dv = (np.asarray(x) for x in fn(*(jnp.asarray(a) for a in args)))
        for a, b in ((0, 1), (2, 3)):
            assert dQ[a, a] == dQ[a, b] == dQ[b, a] == dQ[b, b]
            assert np.array_equal(dQ[a], dQ[b]) and np.array_equal(dR[a], dR[b]) and dv[a] == dv[b]
