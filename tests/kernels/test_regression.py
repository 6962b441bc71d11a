"""Kernel regression at dataset scale (kernels.regress): Cholesky at t = inf, one eigendecomposition for finite
times, explicit regularisation, and a status (never silent NaN) for kernels that cannot be solved in float64."""

import numpy as np
import pytest
import scipy.linalg

import learndyn
from learndyn import kernels
from learndyn.kernels import regression


def _spd(m, seed=0, shift=1.0):
    rng = np.random.RandomState(seed)
    A = rng.randn(m, m + 3)
    return A @ A.T / m + shift * np.eye(m), rng


def test_infinite_time_is_the_mean_predictor_by_cholesky():
    K, rng = _spd(40)
    Ks, y = rng.randn(7, 40), rng.randn(40, 3)
    r = kernels.regress(K, Ks, y)
    assert r.success and r.check() is r and r.params["method"] == "cholesky" and r.cond_method == "dpocon"
    assert r.predictions.shape == (1, 7, 3) and r.train_predictions.shape == (1, 40, 3)
    np.testing.assert_allclose(r.predictions[0], Ks @ np.linalg.solve(K, y), rtol=1e-10, atol=1e-12)
    # the independent eigh path of mean_predictor
    np.testing.assert_allclose(r.predictions[0], kernels.mean_predictor(K, Ks, y).mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.train_predictions[0], y, atol=1e-10)  # interpolates without reg
    # dpocon estimates the 1-norm condition number: compare with numpy's exact one
    exact1 = np.linalg.cond(K, 1)
    assert exact1 / 3 <= r.cond <= exact1 * 1.0000001
    # one target column
    r1 = kernels.regress(K, Ks, y[:, 0])
    assert r1.predictions.shape == (1, 7)
    np.testing.assert_allclose(r1.predictions[0], Ks @ np.linalg.solve(K, y[:, 0]), rtol=1e-10, atol=1e-12)


def test_explicit_regularisation_relative_and_absolute():
    K, rng = _spd(30, seed=1)
    Ks, y = rng.randn(5, 30), rng.randn(30, 2)
    md = np.mean(np.diag(K))
    r = kernels.regress(K, Ks, y, reg=0.1)
    Kr = K + 0.1 * md * np.eye(30)
    np.testing.assert_allclose(r.predictions[0], Ks @ np.linalg.solve(Kr, y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.train_predictions[0], K @ np.linalg.solve(Kr, y), rtol=1e-10, atol=1e-12)
    assert r.reg == pytest.approx(0.1 * md, rel=1e-14)
    a = kernels.regress(K, Ks, y, reg=0.1, relative=False)
    np.testing.assert_allclose(a.predictions[0], Ks @ np.linalg.solve(K + 0.1 * np.eye(30), y), rtol=1e-10)
    np.testing.assert_allclose(r.predictions[0], kernels.mean_predictor(K, Ks, y, reg=0.1).mean, rtol=1e-10)


def test_finite_time_gradient_flow_against_closed_form_and_expm():
    """f_t(X*) = K* K^{-1} (I - e^{-eta K t}) Y (Lee et al. 2019, eqs. (8)-(9)), checked against scipy's
    matrix exponential, and t -> inf against the Cholesky path; eta = 2 / lambda_max by default."""
    K, rng = _spd(25, seed=2)
    Ks, y = rng.randn(6, 25), rng.randn(25, 2)
    lmax = np.linalg.eigvalsh(K)[-1]
    times = [0.0, 1.0, 7.5, 100.0, np.inf]
    r = kernels.regress(K, Ks, y, t=times)
    assert r.success and r.params["method"] == "eigh" and r.cond_method == "eigh"
    eta = 2.0 / lmax
    assert r.learning_rate == pytest.approx(eta, rel=1e-13)
    w = np.linalg.eigvalsh(K)
    assert r.cond == pytest.approx(w[-1] / w[0], rel=1e-10)
    Kinv = np.linalg.inv(K)
    for i, t in enumerate(times[:-1]):
        flow = np.eye(25) - scipy.linalg.expm(-eta * K * t)
        np.testing.assert_allclose(r.predictions[i], Ks @ Kinv @ flow @ y, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(r.train_predictions[i], flow @ y, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(r.predictions[0], 0.0, atol=1e-14)
    np.testing.assert_allclose(r.predictions[-1], kernels.regress(K, Ks, y).predictions[0], rtol=1e-10)
    # explicit learning rate and regularisation: the flow of K + r I
    r2 = kernels.regress(K, Ks, y, t=3.0, reg=0.5, relative=False, learning_rate=0.01)
    Kr = K + 0.5 * np.eye(25)
    ref = Ks @ np.linalg.solve(Kr, (np.eye(25) - scipy.linalg.expm(-0.01 * Kr * 3.0)) @ y)
    np.testing.assert_allclose(r2.predictions[0], ref, rtol=1e-9, atol=1e-12)
    # lr_factor scales the default learning rate
    assert kernels.regress(K, Ks, y, t=1.0, lr_factor=0.5).learning_rate == pytest.approx(1.0 / lmax, rel=1e-13)


def test_finite_time_matches_gd_predictions_without_initial_noise():
    """gd_predictions (the NNGP-noise flow of Xiao et al. 2020) shares the flow filters; with a zero NNGP the
    initial outputs vanish and the two must agree."""
    K, rng = _spd(20, seed=3)
    Ks, y = rng.randn(4, 20), rng.randn(20, 2)
    T = np.block([[K, Ks.T], [Ks, np.eye(4) * 5]])
    times = [0.5, 10.0, np.inf]
    gd = kernels.gd_predictions(np.zeros_like(T), T, 20, y, times)
    r = kernels.regress(K, Ks, y, t=times)
    np.testing.assert_allclose(r.predictions, gd.f_test[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.train_predictions, gd.f_train[:, 0], rtol=1e-10, atol=1e-12)
    assert r.learning_rate == pytest.approx(gd.learning_rate, rel=1e-14)


def test_overwrite_factorises_in_place_and_leaves_test_kernel_alone():
    K, rng = _spd(50, seed=4)
    Ks, y = rng.randn(6, 50), rng.randn(50, 2)
    ref = Ks @ np.linalg.solve(K, y)
    for order in ("C", "F"):
        A = np.array(K, order=order)
        Ks_copy = Ks.copy()
        r = kernels.regress(A, Ks, y, overwrite=True)
        np.testing.assert_allclose(r.predictions[0], ref, rtol=1e-10)
        assert not np.array_equal(A, K)  # the factor was written into the caller's array (no copy)
        np.testing.assert_array_equal(Ks, Ks_copy)
    B = K.copy()
    kernels.regress(B, Ks, y)
    np.testing.assert_array_equal(B, K)  # without overwrite the input is untouched
    # a non-contiguous or non-float64 input is copied even with overwrite
    big = np.zeros((50, 100))
    big[:, ::2] = K
    C = big[:, ::2]
    np.testing.assert_allclose(kernels.regress(C, Ks, y, overwrite=True).predictions[0], ref, rtol=1e-10)
    np.testing.assert_array_equal(C, K)
    r32 = kernels.regress(K.astype(np.float32), Ks, y, overwrite=True)
    np.testing.assert_allclose(r32.predictions[0], Ks @ np.linalg.solve(K.astype(np.float32).astype(float), y),
                               rtol=1e-10)


def test_not_positive_definite_is_a_status_not_nan():
    """A kernel with a negative eigenvalue at roundoff level (-1e-13 of lambda_max, as a computed kernel of
    nearly dependent inputs has): the Cholesky factorisation fails; status ILL_CONDITIONED, NaN predictions
    flagged, a reg that fixes it in the message; check() raises; that reg works."""
    rng = np.random.RandomState(5)
    Q, _ = np.linalg.qr(rng.randn(30, 30))
    w = np.linspace(1.0, 10.0, 30)
    w[0] = -1e-12
    K = (Q * w) @ Q.T
    K = 0.5 * (K + K.T)
    Ks, y = rng.randn(3, 30), rng.randn(30, 2)
    r = kernels.regress(K, Ks, y)
    assert r.status == learndyn.Status.ILL_CONDITIONED and not r.success
    assert "not positive definite" in r.message and "reg=" in r.message and r.cond == np.inf
    assert np.all(np.isnan(r.predictions))
    with pytest.raises(kernels.IllConditionedKernelError, match="not positive definite"):
        r.check()
    suggested = float(r.message.split("reg=")[1].split()[0])
    fixed = kernels.regress(K, Ks, y, reg=suggested)
    assert fixed.success and np.all(np.isfinite(fixed.predictions)) and fixed.cond <= 1e12


def test_deep_ordered_ntk_is_ill_conditioned_with_cond_and_fixing_reg():
    """erf (0.8, 0.18) at depth 120 is deep in the ordered phase: singular in float64 (Xiao et al. 2020,
    Sec. 2).  Both paths report it; the suggested reg solves it; the finite-time flow stays finite."""
    rng = np.random.RandomState(1)
    x = rng.randn(40, 8)
    k = kernels.fcn(120, "erf", 0.8, 0.18).kernel(x)
    T = k.ntk
    Ttr, Tte, y = T[:30, :30], T[30:, :30], rng.randn(30, 2)
    bad = kernels.regress(Ttr, Tte, y)
    assert bad.status == "ill_conditioned" and "reg=" in bad.message
    assert ("condition number" in bad.message) or ("not positive definite" in bad.message)
    with pytest.raises(kernels.IllConditionedKernelError):
        bad.check()
    suggested = float(bad.message.split("reg=")[1].split()[0])
    good = kernels.regress(Ttr, Tte, y, reg=suggested)
    assert good.success and np.all(np.isfinite(good.predictions))
    # against the independent eigh path where both are accurate (cond ~1e8: relative errors ~1e-8)
    well = kernels.regress(Ttr, Tte, y, reg=1e4 * suggested)
    assert well.success and well.cond < 1e9
    ref = kernels.mean_predictor(Ttr, Tte, y, reg=1e4 * suggested)
    np.testing.assert_allclose(well.predictions[0], ref.mean, rtol=1e-6)
    flow = kernels.regress(Ttr, Tte, y, t=[10.0, np.inf])
    assert flow.status == "ill_conditioned" and np.all(np.isfinite(flow.predictions[0]))
    assert "condition number" in flow.message or "positive semi-definite" in flow.message


def test_max_cond_threshold_and_none():
    Q, _ = np.linalg.qr(np.random.RandomState(6).randn(10, 10))
    K = (Q * np.logspace(-9, 0, 10)) @ Q.T
    K = 0.5 * (K + K.T)
    Ks, y = np.ones((2, 10)), np.arange(10.0)
    assert kernels.regress(K, Ks, y, max_cond=1e6).status == "ill_conditioned"
    r = kernels.regress(K, Ks, y, max_cond=None)
    assert r.success and r.cond > 1e8
    e = kernels.regress(K, Ks, y, t=[1.0, 2.0], max_cond=1e6)
    assert e.success  # finite times do not invert the kernel


def test_bad_inputs_name_the_parameter():
    K, rng = _spd(5)
    Ks, y = rng.randn(2, 5), rng.randn(5)
    with pytest.raises(learndyn.InvalidInputError, match="k_train"):
        kernels.regress(np.ones((5, 4)), Ks, y)
    with pytest.raises(learndyn.InvalidInputError, match="k_test_train"):
        kernels.regress(K, np.ones((2, 4)), y)
    with pytest.raises(learndyn.InvalidInputError, match="y"):
        kernels.regress(K, Ks, np.ones(4))
    with pytest.raises(learndyn.InvalidInputError, match="symmetric"):
        kernels.regress(K + np.triu(np.ones((5, 5)), 1), Ks, y)
    bad = K.copy()
    bad[1, 1] = np.nan
    with pytest.raises(learndyn.InvalidInputError, match="NaN"):
        kernels.regress(bad, Ks, y)
    with pytest.raises(learndyn.InvalidInputError, match="NaN"):
        kernels.regress(K, Ks * np.nan, y)
    with pytest.raises(learndyn.InvalidInputError, match="reg"):
        kernels.regress(K, Ks, y, reg=-1.0)
    with pytest.raises(learndyn.InvalidInputError, match="t:"):
        kernels.regress(K, Ks, y, t=-1.0)
    with pytest.raises(learndyn.InvalidInputError, match="learning_rate"):
        kernels.regress(K, Ks, y, t=1.0, learning_rate=0.0)
    with pytest.raises(learndyn.InvalidInputError, match="max_cond"):
        kernels.regress(K, Ks, y, max_cond=0.5)


def test_large_kernel_scan_in_chunks(monkeypatch):
    """Validation and the 1-norm run in row chunks (no copy of a 20000^2 kernel); the chunked scan finds an
    asymmetry or NaN in the last chunk and gives the exact 1-norm."""
    monkeypatch.setattr(regression, "_CHUNK_ENTRIES", 37)
    K, rng = _spd(23, seed=7)
    md, n1 = regression._scan(K, "k")
    assert md == pytest.approx(np.mean(np.diag(K)), rel=1e-14) and n1 == pytest.approx(np.linalg.norm(K, 1))
    bad = K.copy()
    bad[22, 3] += 1.0
    with pytest.raises(learndyn.InvalidInputError, match="symmetric"):
        regression._scan(bad, "k")
    r = kernels.regress(K, rng.randn(3, 23), rng.randn(23, 2))
    assert r.success


def test_accuracy_mse_and_round_trip(tmp_path):
    K, rng = _spd(12, seed=8)
    Ks = rng.randn(4, 12)
    labels = rng.randint(0, 3, 12)
    y = np.eye(3)[labels] - 1 / 3
    r = kernels.regress(K, Ks, y, t=[1.0, np.inf])
    f = r.predictions
    test_labels = np.array([0, 1, 2, 1])
    np.testing.assert_allclose(r.accuracy(test_labels), np.mean(np.argmax(f, -1) == test_labels, axis=1))
    np.testing.assert_allclose(r.train_accuracy(labels)[-1], 1.0)
    yt = np.eye(3)[test_labels] - 1 / 3
    np.testing.assert_allclose(r.mse(yt), np.mean(np.sum((f - yt) ** 2, -1), -1))
    ds = r.to_xarray()
    assert ds["predictions"].dims == ("t", "test", "output") and ds.attrs["status"] == "success"
    back = learndyn.load(r.save(tmp_path / "r.nc"))
    assert isinstance(back, kernels.Regression)
    np.testing.assert_array_equal(back.predictions, r.predictions)
    assert back.cond == r.cond and back.params["method"] == "eigh" and np.isinf(back.t[-1])
    with pytest.raises(learndyn.InvalidInputError, match="labels"):
        r.accuracy(np.zeros(3, int))


def test_without_test_kernel_coef_and_predict():
    """k_test_train=None: the dual coefficients c_t give f_t(X*) = K(X*, X) c_t later (Regression.predict)."""
    K, rng = _spd(15, seed=9)
    Ks, y = rng.randn(4, 15), rng.randn(15, 2)
    for t in (np.inf, [2.0, np.inf]):
        full = kernels.regress(K, Ks, y, t=t)
        part = kernels.regress(K, None, y, t=t)
        assert part.predictions is None and part.params["n_test"] == 0
        np.testing.assert_allclose(part.predict(Ks), full.predictions, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(part.coef[-1], np.linalg.solve(K, y), rtol=1e-10)
        with pytest.raises(learndyn.InvalidInputError, match="predict"):
            part.accuracy(np.zeros(4, int))
        assert "predictions" not in part.to_xarray()


def test_blocked_cholesky_matches_lapack_and_reports_the_failing_row(monkeypatch):
    """The blocked in-place Cholesky (used because OpenBLAS's threaded dpotrf crashes on large matrices) gives
    numpy's factor and reports the first non-positive-definite row as
    dpotrf's info does; regress gives the same predictions through it."""
    K, rng = _spd(53, seed=10)
    A = np.asfortranarray(K.copy())
    assert regression._cholesky(A, block=8) == 0
    np.testing.assert_allclose(np.tril(A), np.linalg.cholesky(K), rtol=1e-12, atol=1e-14)
    for block in (8, 17, 53):
        bad = K.copy()
        bad[30, 30] = -1.0  # the leading minor of order 31 is not positive definite
        B = np.asfortranarray(bad)
        from scipy.linalg import lapack

        _, ref = lapack.dpotrf(bad.copy(order="F"), lower=1)
        assert regression._cholesky(B, block=block) == ref == 31
    monkeypatch.setattr(regression, "_CHOLESKY_BLOCK", 7)
    Ks, y = rng.randn(5, 53), rng.randn(53, 3)
    r = kernels.regress(K, Ks, y, reg=1e-3)
    Kr = K + 1e-3 * np.mean(np.diag(K)) * np.eye(53)
    np.testing.assert_allclose(r.predictions[0], Ks @ np.linalg.solve(Kr, y), rtol=1e-10, atol=1e-12)
    assert np.linalg.cond(Kr, 1) / 3 <= r.cond <= np.linalg.cond(Kr, 1) * 1.0000001


def test_memory_is_checked_before_solving(monkeypatch):
    from learndyn.resources import InsufficientMemoryError

    K, rng = _spd(300, seed=11)
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "2.5M")  # eigh: 0.7 MB copy + 2.2 MB; Cholesky in place 1.4 MB
    with pytest.raises(InsufficientMemoryError, match="t=inf only"):
        kernels.regress(K, None, rng.randn(300), t=1.0)
    assert kernels.regress(np.asfortranarray(K), None, rng.randn(300), overwrite=True).success
