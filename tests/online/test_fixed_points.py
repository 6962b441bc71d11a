"""online.fixed_point from hard starts: states on the boundary of the PSD cone (copied teacher units),
non-differentiable right-hand sides (ReLU), non-converging searches. References: the ODE integrated from the
same start (the RK integrator, an independent code path), closed-form fixed points, and the growth of a
perturbation under the integrated ODE against the Jacobian's eigenvalue."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import learndyn  # noqa: F401  (enables float64)
from learndyn import online
from learndyn.online.ode import rhs


def _denoiser(M, K):
    """Goldt et al. (2019) denoiser start: student unit k copies teacher unit k mod M (Q = 1 between copies),
    v_k = 1 / (number of copies), T = I, v* = 1."""
    copies = np.bincount(np.arange(K) % M, minlength=M)
    R = np.zeros((K, M))
    R[np.arange(K), np.arange(K) % M] = 1.0
    Q = (np.arange(K)[:, None] % M == np.arange(K)[None, :] % M).astype(float)
    v = 1.0 / copies[np.arange(K) % M]
    return online.OrderParameters(Q=Q, R=R, T=np.eye(M), v=v, v_teacher=np.ones(M))


def _denoiser_case(K):
    prob = online.Problem(M=2, K=K, activation="erf", lr=0.2, sigma=0.1, train_second_layer=True)
    return prob, _denoiser(2, K)


def _check_denoiser(K, alpha_end):
    prob, start = _denoiser_case(K)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # converged: no warning
        fp = online.fixed_point(prob, start)
    assert fp.converged and fp.residual <= 1e-12, fp.message
    assert np.linalg.eigvalsh(fp.state.covariance)[0] >= -online.problem.PSD_RTOL
    # the ODE from the same start converges to the same point
    traj = online.integrate(prob, start, alphas=[0.0, alpha_end])
    assert traj.success
    assert fp.eg == pytest.approx(traj.eg[-1], rel=1e-6)
    np.testing.assert_allclose(fp.state.Q, traj.Q[-1], atol=1e-6)
    np.testing.assert_allclose(fp.state.R, traj.R[-1], atol=1e-6)
    np.testing.assert_allclose(fp.state.v, traj.v[-1], atol=1e-6)
    # ... which keeps copies identical: only splitting them grows (checked below for K = 4)
    assert not fp.stable and fp.split_unstable and "split the identical student units" in fp.message
    return prob, fp


def _coordinates(problem):
    """Coordinates of a state for the Jacobian: the upper triangle of Q, R, and v when it is trained (the
    eigenvalues of the Jacobian do not depend on this linear choice)."""
    K, M = problem.K, problem.M
    iu = np.triu_indices(K)
    train_v = problem.train_second_layer

    def pack(Q, R, v):
        return jnp.concatenate([Q[iu], R.ravel()] + ([v] if train_v else []))

    def unpack(x, v_fixed):
        n_q = len(iu[0])
        Qu = jnp.zeros((K, K)).at[iu].set(x[:n_q])
        return (Qu + Qu.T - jnp.diag(jnp.diag(Qu)), x[n_q:n_q + K * M].reshape(K, M),
                x[n_q + K * M:] if train_v else v_fixed)

    return pack, unpack


def test_denoiser_fixed_point_from_exact_copies_k4():
    """K = 4 raised 'left the PSD cone' (Newton in (Q, R, v) stepped to smallest eigenvalue -0.026)."""
    prob, fp = _check_denoiser(4, 2e4)
    # the growing direction is real: a small realisable push along the top eigenvector grows under the
    # integrated ODE as exp(mu * alpha), mu the Jacobian's largest eigenvalue (4.9e-5)
    pack, unpack = _coordinates(prob)
    T, vt, v0 = jnp.asarray(fp.state.T), jnp.asarray(fp.state.v_teacher), jnp.asarray(fp.state.v)
    x = np.asarray(pack(jnp.asarray(fp.state.Q), jnp.asarray(fp.state.R), v0))
    J = np.asarray(jax.jacfwd(lambda y: pack(*rhs(prob, *unpack(y, v0), T, vt)))(x))
    w, V = np.linalg.eig(J)
    top = int(np.argmax(w.real))
    mu, u = float(w[top].real), V[:, top].real / np.linalg.norm(V[:, top].real)
    assert mu == pytest.approx(float(np.max(fp.eigenvalues.real)))
    eps, span = 1e-5, 2e4
    for sign in (1.0, -1.0):  # one sign leaves the cone (merges the copies beyond identical)
        Q, R, v = (np.asarray(a) for a in unpack(jnp.asarray(x + sign * eps * u), v0))
        try:
            start = online.OrderParameters(Q=Q, R=R, T=fp.state.T, v=v, v_teacher=fp.state.v_teacher)
            break
        except ValueError:
            continue
    traj = online.integrate(prob, start, alphas=[0.0, span], rtol=1e-12, atol=1e-15)
    end = np.asarray(pack(jnp.asarray(traj.Q[-1]), jnp.asarray(traj.R[-1]), jnp.asarray(traj.v[-1])))
    growth = float(u @ (end - x)) / (sign * eps)
    assert growth == pytest.approx(np.exp(mu * span), rel=0.05)


@pytest.mark.slow
def test_denoiser_fixed_point_from_exact_copies_k6():
    _check_denoiser(6, 2e4)


def test_not_converged_warns_and_keeps_the_best_point():
    """The README quick tour got converged=False without a word."""
    prob = online.Problem(M=2, K=3, activation="erf", lr=0.5, sigma=0.1)
    rng = np.random.default_rng(1)
    st = online.OrderParameters.from_weights(rng.standard_normal((3, 200)), rng.standard_normal((2, 200)))
    with pytest.warns(RuntimeWarning, match="NOT converged"):
        fp = online.fixed_point(prob, st, max_iter=1, onward=())
    assert not fp.converged and "NOT converged" in fp.message
    assert np.isfinite(fp.eg) and fp.residual > 1e-12


def test_relu_perfectly_learned_teacher_is_a_fixed_point():
    """ReLU, sigma = 0, student = teacher: a fixed point (eps_g = 0 exactly) where the Jacobian is not finite
    (collinear fields); this raised LinAlgError. Now: converged, stability reported as not classified."""
    prob = online.Problem(M=2, K=2, activation="relu", lr=0.5)
    st = online.OrderParameters(Q=np.eye(2), R=np.eye(2), T=np.eye(2))
    fp = online.fixed_point(prob, st, onward=())
    assert fp.converged and fp.eg == pytest.approx(0.0, abs=1e-12)
    assert not fp.stable and not fp.marginal and "not classified" in fp.message


@pytest.mark.parametrize("bad, match", [(dict(tol=0.0), "tol"), (dict(max_iter=0), "max_iter"),
                                        (dict(onward=(10.0, 5.0)), "onward")])
def test_fixed_point_rejects_bad_options(bad, match):
    prob, start = _denoiser_case(2)
    with pytest.raises(ValueError, match=match):
        online.fixed_point(prob, start, **bad)
