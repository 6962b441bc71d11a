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
    np.testing.assert_allclose(linalg.mean_predictor(kt, K, y), kt @ np.linalg.solve(K, y), rtol=1e-12)
    # explicit regularisation, relative to the mean diagonal (neural-tangents' diag_reg convention)
    reg = linalg.solve(K, y, reg=0.1)
    np.testing.assert_allclose(reg.x, np.linalg.solve(K + 0.1 * np.mean(np.diag(K)) * np.eye(6), y), rtol=1e-12)
    assert reg.reg == pytest.approx(0.1 * np.mean(np.diag(K)))


def test_deep_ordered_ntk_is_reported_singular_not_nan():
    """erf (0.8, 0.18) is deep in the ordered phase (chi_1 = 0.62): at depth 120 the NTK is singular
    in float64 (spec §2.3, §4.3); solve raises with the condition number; reg gives finite output."""
    rng = np.random.RandomState(1)
    x = rng.randn(12, 8)
    y = rng.randn(12)
    k = kernels.fcn(120, "erf", 0.8, 0.18).kernel(x)
    with pytest.raises(linalg.IllConditionedKernelError, match="condition number"):
        linalg.solve(k.ntk, y)
    sol = linalg.solve(k.ntk, y, reg=1e-6)
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
