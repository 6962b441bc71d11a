"""eigh-based kernel linear algebra: condition numbers, explicit regularisation, no silent NaNs."""

import numpy as np
import pytest

import learndyn  # noqa: F401
from learndyn import kernels
from learndyn.kernels import linalg


def test_solve_and_mean_predictor_match_direct_solve():
    rng = np.random.RandomState(0)
    A = rng.randn(6, 6)
    K = A @ A.T + 6 * np.eye(6)
    y = rng.randn(6, 2)
    sol = linalg.solve(K, y)
    np.testing.assert_allclose(sol.x, np.linalg.solve(K, y), rtol=1e-12)
    w = np.linalg.eigvalsh(K)
    assert sol.cond == pytest.approx(w[-1] / w[0], rel=1e-12)
    assert linalg.condition_number(K) == pytest.approx(w[-1] / w[0], rel=1e-12)
    kt = rng.randn(3, 6)
    np.testing.assert_allclose(linalg.mean_predictor(K, kt, y).mean, kt @ np.linalg.solve(K, y), rtol=1e-12)
    # explicit regularisation, relative to the mean diagonal (neural-tangents' diag_reg convention)
    reg = linalg.solve(K, y, reg=0.1)
    np.testing.assert_allclose(reg.x, np.linalg.solve(K + 0.1 * np.mean(np.diag(K)) * np.eye(6), y), rtol=1e-12)
    assert reg.reg == pytest.approx(0.1 * np.mean(np.diag(K)))


def test_deep_ordered_ntk_is_reported_singular_not_nan():
    """erf (0.8, 0.18) is deep in the ordered phase (chi_1 = 0.62): at depth 120 the NTK is singular
    in float64 (Xiao et al. 2020, Sec. 2); solve reports it through the status with the condition number
    (x is NaN, the spectrum is kept; check() raises); reg gives finite output."""
    rng = np.random.RandomState(1)
    x = rng.randn(12, 8)
    y = rng.randn(12)
    k = kernels.fcn(120, "erf", 0.8, 0.18).kernel(x)
    bad = linalg.solve(k.ntk, y)
    assert bad.status == "ill_conditioned" and not bad.success and "condition number" in bad.message
    assert np.all(np.isnan(bad.x)) and bad.spectrum.eigenvalues.shape == (12,) and not bad.cond_regularized <= 1e12
    with pytest.raises(linalg.IllConditionedKernelError, match="condition number"):
        bad.check()
    sol = linalg.solve(k.ntk, y, reg=1e-6)
    assert sol.success and sol.check() is sol
    assert np.all(np.isfinite(sol.x)) and sol.cond_regularized < 1e12
    assert sol.cond > 1e12 or not np.isfinite(sol.cond)


def test_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        linalg.eigh(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        linalg.solve(np.array([[1.0, np.nan], [np.nan, 1.0]]), np.ones(2))
    with pytest.raises(ValueError, match="symmetric"):
        linalg.condition_number(np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="reg"):
        linalg.solve(np.eye(2), np.ones(2), reg=-1.0)
    with pytest.raises(ValueError, match="y"):
        linalg.solve(np.eye(2), np.ones(3))


def test_mean_predictor_is_one_function_with_one_order():
    """linalg.mean_predictor and spectrum.mean_predictor are the same function: (k_train, k_test_train, y),
    reg relative to the mean diagonal unless relative=False; an ill-conditioned kernel is a status."""
    from learndyn.kernels import spectrum

    assert spectrum.mean_predictor is linalg.mean_predictor is kernels.mean_predictor
    rng = np.random.RandomState(2)
    A = rng.randn(5, 5)
    K = A @ A.T + np.eye(5)
    kt, y = rng.randn(3, 5), rng.randn(5, 2)
    p = linalg.mean_predictor(K, kt, y, reg=0.1)
    ref = kt @ np.linalg.solve(K + 0.1 * np.mean(np.diag(K)) * np.eye(5), y)
    np.testing.assert_allclose(p.mean, ref, rtol=1e-12)
    assert p.reg == pytest.approx(0.1 * np.mean(np.diag(K)))
    absolute = linalg.mean_predictor(K, kt, y, reg=0.1, relative=False)
    np.testing.assert_allclose(absolute.mean, kt @ np.linalg.solve(K + 0.1 * np.eye(5), y), rtol=1e-12)
    mean, cond = p  # unpacks as (mean, cond)
    assert mean is p.mean and p.success and p.to_xarray()["mean"].dims == ("test", "output")
    singular = np.ones((4, 4))
    q = linalg.mean_predictor(singular, np.ones((2, 4)), np.arange(4.0))
    assert q.status == "ill_conditioned" and "condition number" in q.message and np.all(np.isfinite(q.mean))
    assert linalg.mean_predictor(singular, np.ones((2, 4)), np.arange(4.0), max_cond=None).success
    with pytest.raises(linalg.IllConditionedKernelError):
        q.check()
    with pytest.raises(learndyn.InvalidInputError, match="^reg:"):
        linalg.mean_predictor(K, kt, y, reg=-1.0)
