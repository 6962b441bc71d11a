import numpy as np
import pytest

from learndyn import online


@pytest.mark.parametrize("kwargs, match", [
    (dict(M=0, K=2), "M"),
    (dict(M=2, K=2.5), "K"),
    (dict(M=2, K=2, lr=-0.1), "lr"),
    (dict(M=2, K=2, lr=0.0), "lr"),
    (dict(M=2, K=2, sigma=-1), "sigma"),
    (dict(M=2, K=2, weight_decay=-1), "weight_decay"),
    (dict(M=2, K=2, activation="softsign"), "activation"),
    (dict(M=2, K=2, lr2=float("nan")), "lr2"),
])
def test_problem_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        online.Problem(**kwargs)


def test_problem_conventions():
    p = online.Problem(M=2, K=3, activation="erf", lr=0.3)
    assert p.eta2 == 0.3 and p.replace(lr2=0.1).eta2 == 0.1
    x = np.linspace(-2, 2, 5)
    from scipy.special import erf
    np.testing.assert_allclose(p.g(x), erf(x / np.sqrt(2)))  # Goldt et al.: g(x) = erf(x / sqrt 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(Q=[[1.0, 0.5], [0.4, 1.0]], R=np.zeros((2, 1)), T=[[1.0]]), "symmetric"),
    (dict(Q=np.eye(2), R=[[2.0], [0.0]], T=[[1.0]]), "positive semi-definite"),
    (dict(Q=np.eye(2), R=np.zeros((1, 2)), T=[[1.0]]), "R: expected shape"),
    (dict(Q=np.eye(2), R=np.zeros((2, 1)), T=[[1.0]], v=[1.0]), "v: expected shape"),
    (dict(Q=np.eye(2), R=np.zeros((2, 1)), T=[[np.nan]]), "NaN"),
    (dict(Q=np.ones(3), R=np.zeros((2, 1)), T=[[1.0]]), "square"),
])
def test_order_parameter_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        online.OrderParameters(**kwargs)


def test_from_weights_overlaps():
    rng = np.random.default_rng(0)
    w, wt = rng.standard_normal((3, 50)), rng.standard_normal((2, 50))
    st = online.OrderParameters.from_weights(w, wt)
    np.testing.assert_allclose(st.Q, w @ w.T / 50)
    np.testing.assert_allclose(st.R, w @ wt.T / 50)
    np.testing.assert_allclose(st.covariance[:3, 3:], st.R)
    assert st.K == 3 and st.M == 2


def test_overlaps_on_the_psd_boundary_off_by_rounding_are_valid():
    """A student unit equal to a teacher unit puts [[Q, R], [R^T, T]] on the boundary of the PSD cone; an
    integrated state sits a rounding error (here -1.1e-9 of the scale, as goldt2019 fig1 produced) on
    either side and is valid. Exact smallest eigenvalue: -eps * lambda_max(T)."""
    T = np.array([[1.0, 0.1], [0.1, 1.0]])
    eps = 1e-9
    st = online.OrderParameters(Q=T, R=T * (1 + eps), T=T)
    C = st.covariance
    assert np.linalg.eigvalsh(C)[0] == pytest.approx(-eps * 1.1, rel=1e-3)
    # a material violation still raises, at any scale (the tolerance is relative to the largest variance)
    for scale in (1.0, 1e-12):
        with pytest.raises(ValueError, match="positive semi-definite"):
            online.OrderParameters(Q=scale * T, R=scale * T * 1.01, T=scale * T)
        online.OrderParameters(Q=scale * T, R=scale * T * (1 + eps), T=scale * T)


def test_a_state_the_integrator_accepted_reads_back():
    # the integrator's PSD test (ode.PSD_RTOL, set by quadrature error) is looser than input validation:
    # a trajectory state between the two tolerances must still read back (final_state raised before)
    from learndyn.online import ode

    Q = np.array([[1.0, 1.0], [1.0, 1.0 - 1e-4]])  # eigenvalue ~ -5e-5: within 1e-3, outside 1e-6
    R, T = np.array([[1.0], [1.0]]), np.eye(1)
    with pytest.raises(ValueError, match="positive semi-definite"):
        online.OrderParameters(Q=Q, R=R, T=T)
    state = online.OrderParameters(Q=Q, R=R, T=T, psd_rtol=ode.PSD_RTOL)
    assert state.K == 2
    with pytest.raises(ValueError, match="psd_rtol"):
        online.OrderParameters(Q=Q, R=R, T=T, psd_rtol=float("nan"))
