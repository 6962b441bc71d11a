"""NTK spectra against depth vs the large-depth asymptotes of Xiao, Pennington & Schoenholz 2020, Sec. 2
(m = 32 random inputs of dimension 100 plus 16 test points, erf, sigma_b^2 = 0.05, depth <= 400)."""

import numpy as np
import pytest

from learndyn import datasets, kernels
from learndyn.kernels.signal import critical_line
from learndyn.kernels.spectrum import depth_sweep, gd_predictions, mean_predictor, spectrum_vs_depth

DEPTHS = [100, 200, 400]


@pytest.fixture(scope="module")
def data():
    return datasets.gaussian_data(n_train=32, n_test=16, dim=100, n_classes=4, seed=1)


@pytest.fixture(scope="module")
def ordered(data):
    return spectrum_vs_depth(kernels.Problem(weight_var=1.25, bias_var=0.05, readin="qstar"), data.x_train,
                             data.y_train, data.x_test, DEPTHS)


@pytest.fixture(scope="module")
def chaotic(data):
    return spectrum_vs_depth(kernels.Problem(weight_var=1.5, bias_var=0.05, readin="qstar"), data.x_train,
                             data.y_train, data.x_test, DEPTHS)


def test_depth_sweep_equals_network_kernel():
    """The one-pass sweep gives exactly the kernels of kernels.fcn(l).kernel (same layer objects)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5))
    for l, K, T in depth_sweep(kernels.Problem(activation="erf", weight_var=1.7, bias_var=0.1), x, [0, 4]):
        k = kernels.fcn(l, "erf", 1.7, 0.1).kernel(x)
        np.testing.assert_allclose(K, k.nngp, rtol=1e-13)
        np.testing.assert_allclose(T, k.ntk, rtol=1e-13)


def test_diagonal_exact_every_phase(ordered, chaotic):
    """Theta^l(x,x) = q* sum_{j<=l} chi_1^j exactly (every phase), computed by hand here."""
    for r in (ordered, chaotic):
        sp = r.signal.scalar()
        l = r.depth
        ref = sp["q_star"] * (1 - sp["chi_1"] ** (l + 1)) / (1 - sp["chi_1"])
        np.testing.assert_allclose(r.measured["theta_d"], ref, rtol=1e-9)


def test_ordered_limits(ordered):
    """Ordered phase: Theta_o -> p* = 11.26611, lambda_max -> m p* = 360.515 (rtol 1e-3 at l = 400);
    lambda_min ~ l chi_1^l (ratio 200/100 within 30%), lambda_min(K) ~ chi_1^l (within 5%);
    P(Theta)Y stays O(1)."""
    sp = ordered.signal.scalar()
    assert sp["p_star"] == pytest.approx(11.26611, rel=1e-5)
    assert ordered.measured["theta_o"][-1] == pytest.approx(sp["p_star"], rel=1e-3)
    assert ordered.measured["lambda_max"][-1] == pytest.approx(360.515, rel=1e-3)
    chi1 = sp["chi_1"]
    lm = ordered.measured["lambda_min"]
    assert lm[1] / lm[0] == pytest.approx(2 * chi1 ** 100, rel=0.3)
    km = ordered.measured["k_lambda_min"]
    assert km[1] / km[0] == pytest.approx(chi1 ** 100, rel=0.05)
    py = ordered.measured["py_rms"]
    assert 0.02 < py[-1] < 1 and py[-1] / py[0] == pytest.approx(1.0, rel=0.3)


def test_chaotic_limits(chaotic, data):
    """Chaotic phase: Theta_o -> q* c*/(1 - chi_c*) = 16.21636 (rtol 1e-3 at l = 400), kappa -> 1,
    kappa(K) -> 1 + m c*/(1 - c*) = 147.303; rates of P(Theta)Y ~ l (chi_c*/chi_1)^l and
    P(K)Y ~ chi_c*^l."""
    sp = chaotic.signal.scalar()
    m = data.n_train
    assert chaotic.measured["theta_o"][-1] == pytest.approx(16.21636, rel=1e-3)
    assert chaotic.measured["kappa"][-1] == pytest.approx(1.0, abs=1e-3)
    assert chaotic.measured["k_kappa"][-1] == pytest.approx(1 + m * sp["c_star"] / (1 - sp["c_star"]), rel=1e-3)
    assert chaotic.theory["k_kappa"][-1] == pytest.approx(147.303, rel=1e-5)
    # kappa - 1 against the asymptote m p*/(Theta_d - p*) at l = 200
    assert chaotic.measured["kappa"][1] - 1 == pytest.approx(chaotic.theory["kappa"][1] - 1, rel=0.05)
    py, pk = chaotic.measured["py_rms"], chaotic.measured["pky_rms"]
    r = sp["chi_c"] / sp["chi_1"]
    # log-slope of |P(Theta)Y| between l = 200 and 400 against ln(chi_c/chi_1) + ln(2)/200
    slope = np.log(py[2] / py[1]) / 200
    assert slope == pytest.approx(np.log(r) + np.log(2) / 200, rel=0.03)
    assert pk[2] / pk[1] == pytest.approx(sp["chi_c"] ** 200, rel=0.1)


def test_critical_erf(data):
    """Critical line: at (1.375839, 0.05): Theta_o/(l q*) -> 1/3 (2% at l = 400), kappa/((m+2)/2) -> 1
    (3%), lambda_bulk / ((2/3) l q*) -> 1 and kappa(K) grows linearly in l."""
    wv = float(critical_line("erf", [0.05]).weight_var[0])
    r = spectrum_vs_depth(kernels.Problem(weight_var=wv, bias_var=0.05, readin="qstar"), data.x_train, data.y_train,
                          data.x_test, [200, 400])
    q = r.signal.scalar()["q_star"]
    m = data.n_train
    assert r.measured["theta_o"][-1] / (400 * q) == pytest.approx(1 / 3, rel=0.02)
    assert r.measured["kappa"][-1] == pytest.approx((m + 2) / 2, rel=0.03)
    assert r.measured["lambda_bulk"][-1] == pytest.approx(2 / 3 * 400 * q, rel=0.03)
    assert r.measured["k_kappa"][1] / r.measured["k_kappa"][0] == pytest.approx(2.0, rel=0.02)
    # the theory columns are the critical ones (depth scales exceed the swept depths)
    assert r.theory["kappa"][-1] == pytest.approx((m + 2) / 2)


def test_relu_ordered_every_entry_equals_pstar(data):
    """ReLU (1.5, 0.1), depth 200: every NTK entry and lambda_max/m equal p* = 1.6."""
    x = data.x_train
    (l, K, T), = list(depth_sweep(kernels.Problem(activation="relu", weight_var=1.5, bias_var=0.1), x, [200]))
    np.testing.assert_allclose(T, 1.6, rtol=1e-5)
    assert np.linalg.eigvalsh(T)[-1] / x.shape[0] == pytest.approx(1.6, rel=1e-5)


def test_relu_critical_diagonal():
    """ReLU at (2, 0): Theta^l(x,x) = (l+1) q0 exactly."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 10))
    q0 = np.sum(x * x, axis=1) / 10 * 2.0
    for l, K, T in depth_sweep(kernels.Problem(activation="relu", weight_var=2.0, bias_var=0.0), x, [1, 10, 50]):
        np.testing.assert_allclose(np.diag(T), (l + 1) * q0, rtol=1e-12)
        np.testing.assert_allclose(np.diag(K), q0, rtol=1e-12)


def test_mean_predictor_and_gd_predictions():
    """P(Theta)Y against a direct solve; gradient flow: t=0 gives f0, t=inf interpolates the train set,
    and the test outputs at finite t match the spectral formula evaluated independently."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((9, 6))
    Tj = A @ A.T + 0.5 * np.eye(9)
    Kj = 0.7 * Tj + 0.1 * np.eye(9)
    m = 6
    Y = rng.standard_normal((m, 3))
    py, cond = mean_predictor(Tj[:m, :m], Tj[m:, :m], Y)
    np.testing.assert_allclose(py, Tj[m:, :m] @ np.linalg.solve(Tj[:m, :m], Y), rtol=1e-10)
    w = np.linalg.eigvalsh(Tj[:m, :m])
    assert cond == pytest.approx(w[-1] / w[0])
    ftr, fte, eta = gd_predictions(Kj, Tj, m, Y, [0.0, 7.0, np.inf], n_draws=2, rng=np.random.default_rng(5))
    f0 = ftr[0]
    np.testing.assert_allclose(ftr[2], np.broadcast_to(Y, ftr[2].shape), atol=1e-9)
    from scipy.linalg import expm
    Ttt, Tst = Tj[:m, :m], Tj[m:, :m]
    E = expm(-eta * Ttt * 7.0)
    for d in range(2):
        np.testing.assert_allclose(ftr[1, d], Y + E @ (f0[d] - Y), rtol=1e-9, atol=1e-12)
        ref_te = fte[0, d] + Tst @ np.linalg.solve(Ttt, (np.eye(m) - E) @ (Y - f0[d]))
        np.testing.assert_allclose(fte[1, d], ref_te, rtol=1e-9, atol=1e-12)
    assert eta == pytest.approx(2.0 / w[-1])


def test_kernel_regression_shape_mismatch_names_the_parameter():
    """Issue 11.6: mismatched shapes in the mean predictor / gradient-flow predictor are a ValueError naming
    the parameter (they used to fail inside numpy with a matmul message, or silently slice the kernels)."""
    rng = np.random.default_rng(2)
    A = rng.standard_normal((9, 6))
    Tj = A @ A.T + 0.5 * np.eye(9)
    m = 6
    Y = rng.standard_normal((m, 3))
    with pytest.raises(ValueError, match="^y:"):
        mean_predictor(Tj[:m, :m], Tj[m:, :m], Y[:5])
    with pytest.raises(ValueError, match="^k_test_train:"):
        mean_predictor(Tj[:m, :m], Tj[m:, :m].T, Y)
    with pytest.raises(ValueError, match="^k_train:"):
        mean_predictor(Tj[:m, :5], Tj[m:, :m], Y)
    with pytest.raises(ValueError, match="^y_train:"):
        gd_predictions(Tj, Tj, m, Y[:5], [1.0])
    with pytest.raises(ValueError, match="^y_train:"):
        gd_predictions(Tj, Tj, m, Y[:, 0], [1.0])
    with pytest.raises(ValueError, match="^m:"):
        gd_predictions(Tj, Tj, 12, rng.standard_normal((12, 3)), [1.0])
    with pytest.raises(ValueError, match="^T:"):
        gd_predictions(Tj, Tj[:8, :8], m, Y, [1.0])


def test_loose_argument_forms_still_work():
    """The loose forms (activation=..., weight_var=... keywords) give exactly the Problem forms' numbers;
    spectrum_vs_depth's loose form keeps its defaults (1.5, 0.05, readin 'qstar')."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 5))
    new = list(depth_sweep(kernels.Problem(activation="relu", weight_var=1.8, bias_var=0.1, readin_weight_var=1.0),
                           x, [0, 3]))
    old = list(depth_sweep(x, [0, 3], activation="relu", weight_var=1.8, bias_var=0.1, readin_weight_var=1.0))
    for (l1, K1, T1), (l2, K2, T2) in zip(new, old):
        assert l1 == l2
        np.testing.assert_array_equal(K1, K2)
        np.testing.assert_array_equal(T1, T2)
    y = rng.standard_normal((4, 2))
    a = spectrum_vs_depth(x[:4], y, x[4:], [2, 5])
    b = spectrum_vs_depth(kernels.Problem(weight_var=1.5, bias_var=0.05, readin="qstar"), x[:4], y, x[4:], [2, 5])
    for k in a.measured:
        np.testing.assert_array_equal(a.measured[k], b.measured[k])
    assert a.params == b.params and a.params["readin"] == "qstar"
    with pytest.raises(ValueError, match="^widht:"):
        list(depth_sweep(x, [1], widht=3))
    with pytest.raises(ValueError, match="^weight_var: set it on the Problem"):
        list(depth_sweep(kernels.Problem(), x, [1], weight_var=2.0))


def test_spectrum_sweep_beyond_float64_stops_with_a_status(tmp_path):
    """A ReLU kernel at weight_var 4 grows like 2^depth: past float64 the sweep stops with status NONFINITE,
    keeping the depths computed before; the result saves and loads back with its status."""
    import learndyn

    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5))
    y = rng.standard_normal((4, 1))
    r = spectrum_vs_depth(kernels.Problem(activation="relu", weight_var=4.0), x[:4], y, x[4:], [5, 2000])
    assert r.status == "nonfinite" and not r.success and "depth 2000" in r.message
    assert r.depth.tolist() == [5] and np.isfinite(r.measured["lambda_max"][0])
    back = learndyn.load(r.save(tmp_path / "s.nc"))
    assert isinstance(back, type(r)) and back.status == "nonfinite" and back.message == r.message
    np.testing.assert_array_equal(back.measured["lambda_max"], r.measured["lambda_max"])


def test_gd_predictions_is_a_result_with_accuracies(tmp_path):
    """gd_predictions returns a frozen GDPredictions (outputs over time, draw, input, output; the learning rate;
    accuracies when labels are given) that still unpacks as (f_train, f_test, eta) and saves / loads back."""
    import dataclasses

    import learndyn

    rng = np.random.default_rng(7)
    A = rng.standard_normal((10, 7))
    Tj = A @ A.T + 0.5 * np.eye(10)
    Kj = 0.6 * Tj + 0.1 * np.eye(10)
    m, labels = 6, np.array([0, 1, 2, 0, 1, 2, 1, 0, 2, 2])
    Y = np.eye(3)[labels[:m]] - 1.0 / 3.0
    r = gd_predictions(Kj, Tj, m, Y, [0.0, 5.0, np.inf], n_draws=3, seed=2, labels_train=labels[:m],
                       labels_test=labels[m:])
    assert isinstance(r, kernels.GDPredictions) and r.success and r.message == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.learning_rate = 1.0
    ftr, fte, eta = r
    assert ftr is r.f_train and fte is r.f_test and eta == r.learning_rate
    assert ftr.shape == (3, 3, m, 3) and fte.shape == (3, 3, 4, 3) and r.times.tolist() == [0.0, 5.0, np.inf]
    assert r.train_accuracy[-1] == 1.0  # t = inf interpolates the one-hot targets
    for t in range(3):
        hits = [np.argmax(fte[t, d, i]) == labels[m + i] for d in range(3) for i in range(4)]
        assert r.test_accuracy[t] == pytest.approx(np.mean(hits))
    same = gd_predictions(Kj, Tj, m, Y, [0.0, 5.0, np.inf], n_draws=3, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(same.f_test, r.f_test)  # seed = the default_rng(seed) draws
    assert same.train_accuracy is None and "train_accuracy" not in same.to_xarray()
    ds = r.to_xarray()
    assert ds["f_train"].dims == ("time", "draw", "train", "output") and ds["test_accuracy"].dims == ("time",)
    back = learndyn.load(r.save(tmp_path / "gd.nc"))
    assert isinstance(back, kernels.GDPredictions) and back.status == "success"
    assert back.learning_rate == r.learning_rate and back.params == r.params
    for name in ("times", "f_train", "f_test", "train_accuracy", "test_accuracy"):
        np.testing.assert_array_equal(getattr(back, name), getattr(r, name))
    with pytest.raises(ValueError, match="^labels_test:"):
        gd_predictions(Kj, Tj, m, Y, [1.0], labels_test=labels)


def test_gd_predictions_nonfinite_kernel_is_a_status():
    """A non-finite output (here an NTK with an infinite entry) is reported through status / message with the
    outputs kept, not raised."""
    Tj = np.eye(5) + 0.1
    Tj[4, 0] = Tj[0, 4] = np.inf
    with np.errstate(invalid="ignore"):
        r = gd_predictions(np.eye(5), Tj, 3, np.ones((3, 1)), [1.0])
    assert r.status == "nonfinite" and not r.success and r.message.startswith("f_test:")
    assert r.f_test.shape == (1, 1, 2, 1) and np.all(np.isfinite(r.f_train))


def test_regularisation_is_reg_and_diag_reg_is_deprecated():
    """One name for the relative regularisation, as in mean_predictor: reg; the former keyword diag_reg gives
    the same numbers with a DeprecationWarning."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((7, 5))
    y = rng.standard_normal((4, 2))
    p = kernels.Problem(weight_var=1.5, bias_var=0.05, readin="qstar")
    a = spectrum_vs_depth(p, x[:4], y, x[4:], [2, 5], reg=1e-3)
    with pytest.warns(DeprecationWarning, match="diag_reg"):
        b = spectrum_vs_depth(p, x[:4], y, x[4:], [2, 5], diag_reg=1e-3)
    with pytest.warns(DeprecationWarning, match="diag_reg"):
        c = spectrum_vs_depth(x[:4], y, x[4:], [2, 5], diag_reg=1e-3)  # the loose form too
    for k in a.measured:
        np.testing.assert_array_equal(a.measured[k], b.measured[k])
        np.testing.assert_array_equal(a.measured[k], c.measured[k])
    assert a.params["reg"] == 1e-3 and "diag_reg" not in a.params
    assert not np.array_equal(a.measured["py_rms"], spectrum_vs_depth(p, x[:4], y, x[4:], [2, 5]).measured["py_rms"])
    A = rng.standard_normal((7, 6))
    T = A @ A.T
    g = gd_predictions(T, T, 4, y, [3.0], reg=0.1, seed=1)
    with pytest.warns(DeprecationWarning, match="diag_reg"):
        h = gd_predictions(T, T, 4, y, [3.0], diag_reg=0.1, seed=1)
    np.testing.assert_array_equal(g.f_test, h.f_test)
    assert g.learning_rate == h.learning_rate != gd_predictions(T, T, 4, y, [3.0], seed=1).learning_rate
    with pytest.raises(ValueError, match="^diag_reg: given together with reg"), pytest.warns(DeprecationWarning):
        gd_predictions(T, T, 4, y, [3.0], reg=0.1, diag_reg=0.1)


def test_asymptotes_take_the_signal_or_the_problem():
    """asymptotes(signal, ...) takes the SignalPropagation or the Problem; the critical column follows the
    activation (its kink), by default the one the signal / Problem holds -- the former default was erf's,
    whatever the signal's activation."""
    from learndyn import activations as A
    from learndyn.kernels.signal import signal_propagation
    from learndyn.kernels.spectrum import asymptotes

    depth = np.array([10.0, 20.0])
    relu = kernels.Problem(activation="relu", weight_var=2.0, bias_var=0.0)
    sp = signal_propagation(relu)
    assert sp.scalar()["phase"] == "critical"
    q = sp.scalar()["q_star"]
    for out in (asymptotes(sp, depth, 8), asymptotes(relu, depth, 8),
                asymptotes(sp, depth, 8, activation=A.get("relu"))):
        np.testing.assert_array_equal(out["theta_o"], depth * q / 4)  # ReLU: Theta_o ~ l q*/4
        np.testing.assert_array_equal(out["kappa"], np.full(2, 11 / 3))
    smooth = asymptotes(sp, depth, 8, activation="erf")
    np.testing.assert_array_equal(smooth["theta_o"], depth * q / 3)
    with pytest.warns(DeprecationWarning, match="activation_name"):
        old = asymptotes(sp, depth, 8, activation_name="erf")
    np.testing.assert_array_equal(old["theta_o"], smooth["theta_o"])
    with pytest.raises(ValueError, match="^signal:"):
        asymptotes({"q_star": 1.0}, depth, 8)
