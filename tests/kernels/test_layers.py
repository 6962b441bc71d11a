"""Analytic NNGP/NTK kernels against independent references: Monte Carlo over finite networks built
from the SAME architecture description (output covariance; autodiff empirical NTK), closed forms
(arc-cosine kernel, learndyn.gaussian), the spec's fixed points (ntk.md §1.4-1.6, §6), CNN-F = FCN.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import learndyn  # noqa: F401
from learndyn import activations as A
from learndyn import gaussian, kernels
from learndyn.results import InvalidInputError


def _rows_with_sq_norm(rng, n, d, sq_norm_per_dim):
    x = rng.randn(n, d)
    return x / np.linalg.norm(x, axis=1, keepdims=True) * math.sqrt(sq_norm_per_dim * d)


# --------------------------------------------------------------------------------------------
# Monte Carlo: finite networks from the same description
# --------------------------------------------------------------------------------------------
def _mc_nngp(net, x, n_init, seed=0):
    """E[f(x) f(x')] over random inits, averaged over output units (all iid given the inputs)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), n_init)
    outs = jax.vmap(lambda k: net.apply(net.init(k, x.shape), x))(keys)  # (S, n, k)
    outs = np.asarray(outs)
    cov = np.einsum("sik,sjk->ij", outs, outs) / (outs.shape[0] * outs.shape[2])
    return cov, outs.shape[0] * outs.shape[2]


def _check_mc(k_analytic, k_mc, n_samples, rel_bias):
    # sampling std of a Gaussian second moment: sqrt((K_ii K_jj + K_ij^2) / N)
    d = np.diag(k_analytic)
    sd = np.sqrt((np.outer(d, d) + k_analytic**2) / n_samples)
    err = np.abs(k_mc - k_analytic)
    assert np.all(err < 5 * sd + rel_bias * np.abs(k_analytic)), (err / sd).max()


def test_fcn_nngp_matches_output_covariance_erf():
    rng = np.random.RandomState(0)
    x = rng.randn(4, 6)
    net = kernels.fcn(2, "erf", 1.6, 0.1, width=256, out_dim=32)
    k_mc, n = _mc_nngp(net, x, 200)
    _check_mc(net.kernel(x).nngp, k_mc, n, rel_bias=0.03)


def test_cnn_gap_nngp_matches_output_covariance_relu_same_padding():
    rng = np.random.RandomState(1)
    x = rng.randn(3, 4, 3, 2)
    net = kernels.cnn(2, "relu", 2.0, 0.1, filter_shape=(3, 2), padding="same", readout="gap",
                      channels=48, out_dim=16)
    k_mc, n = _mc_nngp(net, x, 100)
    _check_mc(net.kernel(x).nngp, k_mc, n, rel_bias=0.05)


def _mean_empirical_ntk(net, x, seeds):
    tot = 0.0
    for s in seeds:
        params = net.init(jax.random.PRNGKey(s), x.shape)
        ntk = np.asarray(net.empirical_ntk(params, x))  # (n, n, k, k)
        tot = tot + np.einsum("ijaa->ij", ntk) / ntk.shape[-1]
    return tot / len(seeds)


def test_fcn_ntk_matches_empirical_ntk_relu():
    rng = np.random.RandomState(3)
    x = rng.randn(3, 5)
    net = kernels.fcn(2, "relu", 2.0, 0.2, width=1024, out_dim=2)
    theta = net.kernel(x).ntk
    emp = _mean_empirical_ntk(net, x, seeds=(0, 1))
    np.testing.assert_allclose(emp, theta, rtol=0.06, atol=0.02 * np.max(theta))


def test_cnn_ntk_matches_empirical_ntk_erf_gap():
    rng = np.random.RandomState(4)
    x = rng.randn(2, 3, 4, 2)
    net = kernels.cnn(2, "erf", 1.5, 0.1, filter_shape=(3, 3), padding="circular", readout="gap",
                      channels=96, out_dim=1)
    theta = net.kernel(x).ntk
    emp = _mean_empirical_ntk(net, x, seeds=(0, 1))
    np.testing.assert_allclose(emp, theta, rtol=0.08, atol=0.03 * np.max(theta))


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------
def test_relu_one_layer_is_arc_cosine_kernel():
    """K1 = wv * (n/(2 pi)) (sin t + (pi - t) cos t) + bv with t = arccos(K0_12/n) (Cho & Saul)."""
    rng = np.random.RandomState(5)
    x = rng.randn(5, 7)
    wv, bv = 1.7, 0.3
    k0 = wv * x @ x.T / 7 + bv
    n = np.sqrt(np.outer(np.diag(k0), np.diag(k0)))
    t = np.arccos(np.clip(k0 / n, -1, 1))
    v = n / (2 * np.pi) * (np.sin(t) + (np.pi - t) * np.cos(t))
    vdot = (np.pi - t) / (2 * np.pi)
    k1 = wv * v + bv
    theta1 = k1 + wv * vdot * k0
    k = kernels.fcn(1, "relu", wv, bv).kernel(x)
    np.testing.assert_allclose(k.nngp, k1, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, theta1, rtol=1e-7)  # arccos is ill-conditioned at t = 0


@pytest.mark.parametrize("act", ["erf", "relu", A.abrelu(-0.3, 1.2), A.erf(0.7)], ids=str)
def test_one_layer_matches_learndyn_gaussian(act):
    rng = np.random.RandomState(6)
    x = rng.randn(4, 3)
    wv, bv = 1.3, 0.2
    k0 = wv * x @ x.T / 3 + bv
    C = np.stack([np.stack([np.diag(k0)[:, None] + 0 * k0, k0], -1),
                  np.stack([k0, np.diag(k0)[None, :] + 0 * k0], -1)], -2)
    k1 = wv * np.asarray(gaussian.i2(act, C)) + bv
    theta1 = k1 + wv * np.asarray(gaussian.j2(act, C)) * k0
    k = kernels.fcn(1, act, wv, bv).kernel(x)
    np.testing.assert_allclose(k.nngp, k1, rtol=1e-10)
    np.testing.assert_allclose(k.ntk, theta1, rtol=1e-7)


def test_ntk_diagonal_identity_erf_spec_anchor():
    """Theta^l(x,x) = q* sum_{j<=l} chi_1^j exactly when K0(x,x) = q* (spec §1.4; anchors §1.6)."""
    wv, bv = 1.25, 0.05
    q, chi = 0.43516569907836, 0.96137390440168
    x = _rows_with_sq_norm(np.random.RandomState(7), 3, 8, (q - bv) / wv)
    depth = 60
    k = kernels.fcn(depth, "erf", wv, bv).kernel(x, diagonal=True)
    expect = q * (1 - chi ** (depth + 1)) / (1 - chi)
    np.testing.assert_allclose(k.nngp, q, rtol=1e-11)
    np.testing.assert_allclose(k.ntk, expect, rtol=1e-11)


def test_relu_ntk_diagonal_is_exact():
    """ReLU: q_{l+1} = wv q_l / 2 + bv and Theta_{l+1} = q_{l+1} + wv Theta_l / 2 on the diagonal."""
    rng = np.random.RandomState(8)
    x = rng.randn(5, 9)
    wv, bv, depth = 2.0, 0.1, 12
    q = wv * np.sum(x * x, 1) / 9 + bv
    t = q.copy()
    for _ in range(depth):
        q = wv * q / 2 + bv
        t = q + wv * t / 2
    k = kernels.fcn(depth, "relu", wv, bv).kernel(x)
    np.testing.assert_allclose(np.diag(k.ntk), t, rtol=1e-14)
    np.testing.assert_allclose(np.diag(k.nngp), q, rtol=1e-14)


def test_relu_ordered_fixed_point_spec_check5():
    """ReLU (1.5, 0.1): q* = 0.4, chi_1 = 0.75, every NTK entry -> p* = 1.6 at depth 200 (spec §6.5)."""
    x = _rows_with_sq_norm(np.random.RandomState(9), 4, 6, (0.4 - 0.1) / 1.5)
    k = kernels.fcn(200, "relu", 1.5, 0.1).kernel(x)
    np.testing.assert_allclose(k.ntk, 1.6, rtol=1e-5)
    np.testing.assert_allclose(k.nngp, 0.4, rtol=1e-10)


def test_erf_chaotic_off_diagonal_limit_spec_check9():
    """erf (1.5, 0.05): Theta_o -> q* c* / (1 - chi_c*) = 16.21636 (rtol 1e-3 at l = 400)."""
    wv, bv, q = 1.5, 0.05, 0.60175316710972
    x = _rows_with_sq_norm(np.random.RandomState(10), 3, 16, (q - bv) / wv)
    k = kernels.fcn(400, "erf", wv, bv).kernel(x)
    off = k.ntk[~np.eye(3, dtype=bool)]
    np.testing.assert_allclose(off, 16.21636, rtol=1e-3)
    c_star = 0.82053008799747
    np.testing.assert_allclose(k.nngp[~np.eye(3, dtype=bool)], q * c_star, rtol=1e-6)


def test_cnn_flatten_diagonal_equals_fcn():
    """With every pixel of every image on the same sphere, CNN-F's (x, x) kernels equal the FCN's."""
    rng = np.random.RandomState(11)
    C = 3
    img = rng.randn(3, 5, 4, C)
    img = img / np.linalg.norm(img, axis=-1, keepdims=True) * math.sqrt(C)  # x_a . x_a / C = 1
    flat = img.reshape(3, -1)  # x . x / n0 = 1 as well
    for act, wv, bv in (("erf", 1.5, 0.05), ("relu", 2.0, 0.1)):
        kc = kernels.cnn(4, act, wv, bv, padding="circular", readout="flatten").kernel(img)
        kf = kernels.fcn(4, act, wv, bv).kernel(flat)
        np.testing.assert_allclose(np.diag(kc.nngp), np.diag(kf.nngp), rtol=1e-12)
        np.testing.assert_allclose(np.diag(kc.ntk), np.diag(kf.ntk), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# modes, batching, rescaling
# --------------------------------------------------------------------------------------------
def test_modes_and_batching_agree():
    """Blocked, triangle-packed, diagonal and cross code paths give the same numbers."""
    rng = np.random.RandomState(12)
    x1, x2 = rng.randn(37, 4), rng.randn(5, 4)
    net = kernels.fcn(3, "relu", 2.0, 0.1)
    full = net.kernel(x1)
    np.testing.assert_array_equal(full.nngp, full.nngp.T)
    blocked = net.kernel(x1, batch_size=10)
    np.testing.assert_allclose(blocked.ntk, full.ntk, rtol=1e-13)
    diag = net.kernel(x1, diagonal=True, batch_size=16)
    np.testing.assert_allclose(diag.ntk, np.diag(full.ntk), rtol=1e-13)
    cross = net.kernel(x2, x1)
    both = net.kernel(np.concatenate([x1, x2]))
    np.testing.assert_allclose(cross.ntk, both.ntk[37:, :37], rtol=1e-13)
    cross_b = net.kernel(x2, x1, batch_size=10)
    np.testing.assert_allclose(cross_b.nngp, cross.nngp, rtol=1e-13)
    only = net.kernel(x2, x1, get="nngp")
    np.testing.assert_allclose(only.nngp, cross.nngp, rtol=1e-13)
    with pytest.raises(ValueError, match="get='nngp'"):
        only.ntk


def test_cnn_diagonal_mode_and_blocks():
    rng = np.random.RandomState(17)
    x = rng.randn(5, 3, 3, 2)
    net = kernels.cnn(2, "relu", 2.0, 0.1, padding="same", readout="gap")
    full = net.kernel(x)
    np.testing.assert_allclose(net.kernel(x, diagonal=True).ntk, np.diag(full.ntk), rtol=1e-13)
    np.testing.assert_allclose(net.kernel(x, batch_size=3).nngp, full.nngp, rtol=1e-13)


def test_deep_chaotic_relu_rescaling_no_overflow():
    """ReLU with bias 0 is homogeneous: K_l(wv) = (wv/2)^l K_l(2).  At wv = 4 and l = 1500 the
    entries are ~2^1500 (beyond float64): mantissas stay finite, ``.nngp`` raises instead of inf."""
    x = np.random.RandomState(13).randn(3, 4)
    depth = 1500
    ref = kernels.fcn(depth, "relu", 2.0, 0.0).kernel(x)
    big = kernels.fcn(depth, "relu", 4.0, 0.0).kernel(x)
    small = kernels.fcn(depth, "relu", 1.0, 0.0).kernel(x)
    for k, log2_factor in ((big, depth + 1), (small, -(depth + 1))):
        assert np.all(np.isfinite(k.nngp_mantissa)) and np.all(np.isfinite(k.ntk_mantissa))
        np.testing.assert_allclose(k.nngp_mantissa * 2.0 ** (k.nngp_log2_scale - log2_factor), ref.nngp,
                                   rtol=1e-10)
        with pytest.raises(OverflowError, match="log2_scale"):
            k.nngp
        # Theta_l(wv) = (wv/2)^(l+1) Theta_l(2) as well (Vdot is scale-free)
        np.testing.assert_allclose(k.ntk_mantissa * 2.0 ** (k.ntk_log2_scale - log2_factor), ref.ntk, rtol=1e-10)


def test_finite_network_shapes_and_dtype():
    net = kernels.cnn(2, "erf", 1.5, 0.1, filter_shape=(3, 3), padding="circular", readout="flatten",
                      channels=4, out_dim=3)
    x = np.random.RandomState(14).randn(2, 5, 5, 2)
    params = net.init(jax.random.PRNGKey(0), x.shape)
    out = net.apply(params, x)
    assert out.shape == (2, 3) and out.dtype == jnp.float64


def test_to_xarray():
    x = np.random.RandomState(15).randn(3, 4)
    ds = kernels.fcn(2, "erf", 1.5, 0.05).kernel(x).to_xarray()
    assert ds["ntk_mantissa"].shape == (3, 3)
    assert "fcn" in ds.attrs["problem"]


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
def test_memory_estimate_and_clear_error(capsys):
    net = kernels.cnn(1, "relu", 2.0, 0.0, readout="gap")
    x = np.random.RandomState(16).randn(6, 4, 4, 1)
    with pytest.raises(kernels.KernelMemoryError, match="batch_size"):
        net.kernel(x, batch_size=6, memory_limit=1e4)
    k = net.kernel(x, memory_limit=2e6, verbose=True)  # forces blocks that fit
    assert "estimated peak memory" in capsys.readouterr().err
    np.testing.assert_allclose(k.nngp, net.kernel(x).nngp, rtol=1e-13)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: kernels.fcn(-1), "depth"),
        (lambda: kernels.fcn(2, weight_var=0.0), "weight_var"),
        (lambda: kernels.fcn(2, bias_var=-1.0), "bias_var"),
        (lambda: kernels.fcn(2, activation="nope"), "activation"),
        (lambda: kernels.cnn(2, padding="valid"), "padding"),
        (lambda: kernels.cnn(2, readout="max"), "readout"),
        (lambda: kernels.cnn(0), "depth"),
        (lambda: kernels.cnn(2, filter_shape=(0, 3)), "filter_shape"),
    ],
)
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs():
    fc = kernels.fcn(1)
    cn = kernels.cnn(1)
    with pytest.raises(ValueError, match="x1"):
        fc.kernel(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="flatten"):
        fc.kernel(np.ones((2, 3, 3, 1)))
    with pytest.raises(ValueError, match="spatial"):
        cn.kernel(np.ones((2, 3)))
    with pytest.raises(ValueError, match="x2"):
        fc.kernel(np.ones((2, 3)), np.ones((2, 3)), diagonal=True)
    with pytest.raises(ValueError, match="x2"):
        fc.kernel(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="batch_size"):
        fc.kernel(np.ones((2, 3)), batch_size=0)


def test_deep_chaotic_erf_kernel_diagonal_is_stable():
    """Chaotic erf (chi_1 > 1): rounding differences between the pair entry of an input with itself and its self
    variance grow like chi_1^depth unless the diagonal is pinned (found at depth ~240, NTK diagonal -> inf).
    Every row of a batch must get the NNGP/NTK diagonal of the same input alone (all inputs have equal norm),
    exact duplicates must keep |K_ij| <= sqrt(K_ii K_jj), and the NTK must stay PSD up to rounding."""
    import learndyn.kernels as kernels

    from dataclasses import replace

    from learndyn import datasets

    # digits average-pooled 2x2 to 4x4 images (d = 16), normalised: rows of norm 4; rows 0 and 37 triggered the bug
    raw = datasets.digits(n_train=48, n_test=32, seed=1)
    pool = lambda X: X.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)  # noqa: E731
    data = datasets.preprocess(replace(raw, x_train=pool(raw.x_train), x_test=pool(raw.x_test), image_shape=(4, 4, 1)))
    x = np.concatenate([data.x_train, data.x_test])[[0, 37, 2, 2]]  # and an exact duplicate (rows 2, 3)
    net = kernels.fcn(240, "erf", 2.0, 0.05)
    k = net.kernel(x)
    alone = net.kernel(x[:1])
    np.testing.assert_allclose(np.diag(k.nngp), alone.nngp[0, 0], rtol=1e-12)
    np.testing.assert_allclose(np.diag(k.ntk), alone.ntk[0, 0], rtol=1e-10)
    assert abs(k.nngp[2, 3]) <= np.sqrt(k.nngp[2, 2] * k.nngp[3, 3]) * (1 + 1e-12)
    w = np.linalg.eigvalsh(k.ntk / np.max(k.ntk))
    assert w[0] > -1e-10


# --------------------------------------------------------------------------------------------
# any callable activation (Gaussian quadrature path) against the closed form of sin
# --------------------------------------------------------------------------------------------
def _sin_maps(K, a, b):
    """For u, v jointly Gaussian, Var u = a, Var v = b, Cov = K:
    E[sin u sin v] = e^{-(a+b)/2} sinh K,  E[cos u cos v] = e^{-(a+b)/2} cosh K."""
    damp = np.exp(-0.5 * (a + b))
    return damp * np.sinh(K), damp * np.cosh(K)


def _numpy_fcn_sin(x, depth, wv, bv):
    K = wv * (x @ x.T) / x.shape[1] + bv
    T = K.copy()
    for _ in range(depth):
        q = np.diag(K)
        V, Vdot = _sin_maps(K, q[:, None], q[None, :])
        K = wv * V + bv
        T = K + wv * Vdot * T
    return K, T


def test_callable_activation_fcn_kernels_match_closed_form():
    """A user callable goes through learndyn.gaussian quadrature; sin has closed-form Gaussian integrals."""
    rng = np.random.RandomState(3)
    x = rng.randn(5, 7)
    net = kernels.fcn(3, jnp.sin, 1.7, 0.2)
    k = net.kernel(x)
    K_ref, T_ref = _numpy_fcn_sin(x, 3, 1.7, 0.2)
    np.testing.assert_allclose(k.nngp, K_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(k.ntk, T_ref, rtol=1e-9, atol=1e-12)
    d = net.kernel(x, diagonal=True)
    np.testing.assert_allclose(d.nngp, np.diag(K_ref), rtol=1e-9)
    np.testing.assert_allclose(d.ntk, np.diag(T_ref), rtol=1e-9)


def test_callable_activation_cnn_gap_matches_closed_form():
    """CNN-GAP (circular 3x3) with sin against a NumPy transcription of spec §3.1 with the closed form."""
    rng = np.random.RandomState(4)
    n, h, w, c = 3, 4, 4, 2
    x = rng.randn(n, h, w, c)
    wv, bv, depth = 1.5, 0.1, 2

    def conv(A):  # circular 3x3 window average on both positions of (n, n, h, w, h, w)
        out = sum(np.roll(A, (s, t, s, t), axis=(2, 3, 4, 5)) for s in (-1, 0, 1) for t in (-1, 0, 1))
        return out / 9.0

    K = wv * conv(np.einsum("ahwc,bHWc->abhwHW", x, x) / c) + bv
    T = K.copy()
    for layer in range(depth):
        var = np.einsum("aahwhw->ahw", K)
        V, Vdot = _sin_maps(K, var[:, None, :, :, None, None], var[None, :, None, None, :, :])
        T = T * Vdot
        if layer < depth - 1:
            K = wv * conv(V) + bv
            T = K + wv * conv(T)
        else:
            K = wv * V.mean(axis=(2, 3, 4, 5)) + bv
            T = K + wv * T.mean(axis=(2, 3, 4, 5))
    net = kernels.cnn(depth, jnp.sin, wv, bv, filter_shape=(3, 3), padding="circular", readout="gap")
    k = net.kernel(x)
    np.testing.assert_allclose(k.nngp, K, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(k.ntk, T, rtol=1e-9, atol=1e-12)


def test_network_depth_sweep_equals_kernels_of_each_depth_cnn():
    """Network.depth_sweep (one compiled pass) gives the kernels of cnn(l) built separately, l = 1, 2, 4."""
    rng = np.random.RandomState(5)
    x = rng.randn(3, 4, 4, 2)
    net = kernels.cnn(1, "relu", 2.0, 0.1, filter_shape=(3, 3), padding="same", readout="gap")
    sweep = net.depth_sweep(x, [0, 1, 3])
    for l, (K, T) in zip((1, 2, 4), sweep):
        k = kernels.cnn(l, "relu", 2.0, 0.1, filter_shape=(3, 3), padding="same", readout="gap").kernel(x)
        np.testing.assert_allclose(K, k.nngp, rtol=1e-12)
        np.testing.assert_allclose(T, k.ntk, rtol=1e-12)
    with pytest.raises(ValueError, match="non-decreasing"):
        net.depth_sweep(x, [2, 1])
    with pytest.raises(ValueError, match="Repeat"):
        kernels.serial(kernels.Dense(4)).depth_sweep(rng.randn(3, 2), [1])


def test_input_magnitude_is_validated():
    """Issue 11: inputs of size 1e200 gave a raw "should not happen ... please report it" FloatingPointError.
    The float64 input kernel x.x'/n0 needs |x|^2 in [2^-1000, 2^1020] (non-zero rows), and the erf closed
    form (its NTK radicand 1 + 4q is a difference of two O(q^2) numbers) variances <= 2^20: an InvalidInputError
    (bad input, nothing computed) names the input."""
    x = np.random.RandomState(3).randn(4, 8)
    relu, erf = kernels.fcn(2, "relu", 2.0, 0.0), kernels.fcn(2, "erf", 1.5, 0.05)
    for net in (relu, erf, kernels.fcn(2, "tanh", 1.5, 0.05)):
        with pytest.raises(InvalidInputError, match=r"^x1: .*overflow.*rescale the inputs"):
            net.kernel(1e200 * x)
        with pytest.raises(InvalidInputError, match=r"^x2: .*overflow"):
            net.kernel(x, 1e200 * x)
        with pytest.raises(InvalidInputError, match=r"^x1: .*underflow"):
            net.kernel(1e-200 * x)
    for scale in (1e100, 1e6):  # 1e6: q0 ~ 1e12, where the NTK diagonal came out inf
        with pytest.raises(InvalidInputError, match=r"^x1: .*first-layer variance.*erf"):
            erf.kernel(scale * x)
    with pytest.raises(InvalidInputError, match=r"^weight_var: an erf network"):
        kernels.fcn(2, "erf", 1e16, 0.0, readin_weight_var=1.0).kernel(x)
    with pytest.raises(InvalidInputError, match=r"^x: .*overflow"):
        relu.depth_sweep(1e200 * x, [1, 2])
    with pytest.raises(ValueError, match="weight_var"):
        kernels.fcn(2, "erf", 1e200, 0.0)
    # zero rows are fine; inside the bounds the kernels are right: ReLU (bias 0) is homogeneous of degree 2
    # in x, so scaling the inputs by 1e150 scales both kernels by exactly 1e300 up to rounding
    k1, kb = relu.kernel(x), relu.kernel(1e150 * x)
    np.testing.assert_allclose(kb.nngp, 1e300 * k1.nngp, rtol=1e-12)
    np.testing.assert_allclose(kb.ntk, 1e300 * k1.ntk, rtol=1e-12)
    assert np.all(relu.kernel(np.vstack([x, np.zeros(8)])).nngp[-1, :] == 0.0)
    # erf one hidden layer at first-layer variance ~ 2^18: the arcsine closed form (Williams 1997), in numpy
    one = kernels.fcn(1, "erf", 1.0, 0.0)
    xs = 2.0 ** 9 * x
    S = xs @ xs.T / 8
    d = np.diag(S)
    V = (2 / np.pi) * np.arcsin(2 * S / np.sqrt(np.outer(1 + 2 * d, 1 + 2 * d)))
    np.testing.assert_allclose(one.kernel(xs).nngp, V, rtol=1e-10, atol=1e-12)


_PEAK_SCRIPT = r"""
import json, sys
import numpy as np
def vm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
from learndyn import kernels
n, kind = int(sys.argv[1]), sys.argv[2]
if kind == "fcn":
    net, x = kernels.fcn(3, "erf", 1.5, 0.05), np.random.default_rng(0).standard_normal((n, 32))
else:
    net = kernels.cnn(2, "relu", 2.0, 0.0, readout="gap")
    x = np.random.default_rng(0).standard_normal((n, 4, 4, 1))
est = net.memory_estimate(n, spatial_shape=x.shape[1:-1], channels=x.shape[-1])
rss0 = vm("VmRSS")
net.kernel(x)
print(json.dumps({"est": est, "incr": vm("VmHWM") - rss0}))
"""


@pytest.mark.parametrize("n, kind, limit", [(3000, "fcn", "0"), pytest.param(6000, "fcn", "0", marks=pytest.mark.slow),
                                            pytest.param(6000, "fcn", "1G", marks=pytest.mark.slow),
                                            pytest.param(400, "gap", "0", marks=pytest.mark.slow)])
def test_memory_estimate_within_1p5x_of_measured_peak(n, kind, limit):
    """Issue 12.6: the estimate was 5.5x too low (255.9 MiB printed, 1413 MiB measured at n = 6000), so its
    guard did not protect.  The peak RSS increase of a fresh process computing the kernel (VmHWM minus the
    RSS before the call, so the interpreter and JAX are not counted) is within 1.5x of memory_estimate, in one
    block and (LEARNDYN_MEMORY_LIMIT=1G) in the blocks chosen to fit."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, LEARNDYN_MEMORY_LIMIT=limit)
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(n), kind], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["est"] / 1.5 <= r["incr"] <= 1.5 * r["est"], r


def test_kernel_too_large_is_refused_up_front(monkeypatch):
    """Issue 12.6: at n = 200000 the default blocking ran into XLA RESOURCE_EXHAUSTED (once an abort).  The
    outputs alone (n^2 float64 per kernel) are counted: a kernel that cannot fit the memory available
    (LEARNDYN_MEMORY_LIMIT here) is refused before anything is allocated, saying what to reduce."""
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "256M")
    net = kernels.fcn(3, "erf", 1.5, 0.05)
    x = np.random.default_rng(0).standard_normal((6000, 32))  # outputs 2 x 275 MiB
    with pytest.raises(kernels.KernelMemoryError, match=r"(?s)6000x6000 kernel.*reduce the number of inputs"):
        net.kernel(x)
    assert issubclass(kernels.KernelMemoryError, learndyn.resources.InsufficientMemoryError)
    with pytest.raises(kernels.KernelMemoryError, match="get='nngp'"):
        net.kernel(np.ones((200000, 4)))


def test_kernel_runs_blocked_within_the_available_memory(monkeypatch, capsys):
    """Issue 12.6: when the outputs fit but one block of all inputs does not, blocks are chosen from the
    estimate so that outputs + block fit the available memory; the blocked kernel equals the one-block one."""
    net = kernels.fcn(3, "erf", 1.5, 0.05)
    x = np.random.default_rng(1).standard_normal((1200, 16))
    ref = net.kernel(x, batch_size=1200)
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "40M")
    assert net.memory_estimate(1200, channels=16, batch_size=1200) > 0.9 * 40 * 2**20  # one block would not fit
    est = net.memory_estimate(1200, channels=16)
    assert est <= 0.9 * 40 * 2**20
    k = net.kernel(x, verbose=True)
    msg = capsys.readouterr().err
    nblocks = int(msg.split(" block(s)")[0].split()[-1])
    assert nblocks > 1, msg
    np.testing.assert_allclose(k.nngp, ref.nngp, rtol=1e-13, atol=1e-15)  # blocks change the summation order: rounding on ~0 entries
    np.testing.assert_allclose(k.ntk, ref.ntk, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------------------------
# CNN kernels of whole blocks and of cache-sized chunks (layers.run_layers) against NumPy
# --------------------------------------------------------------------------------------------
def _np_window(K, wv, bv, padding):
    """wv/9 sum over 3x3 shifts applied to both positions of K (n1, n2, h, w, H, W) + bv: np.roll for circular
    padding, explicit zero padding for 'same'."""
    out = np.zeros_like(K)
    h, w = K.shape[2:4]
    for dh in (-1, 0, 1):
        for dw in (-1, 0, 1):
            if padding == "circular":
                out += np.roll(K, (-dh, -dw, -dh, -dw), axis=(2, 3, 4, 5))
            else:
                P = np.pad(K, [(0, 0), (0, 0), (1, 1), (1, 1), (1, 1), (1, 1)])
                out += P[:, :, 1 + dh:1 + dh + h, 1 + dw:1 + dw + w, 1 + dh:1 + dh + h, 1 + dw:1 + dw + w]
    return wv * out / 9.0 + bv


def _np_cnn_relu(x1, x2, depth, wv, bv, padding, readout):
    """Independent NumPy recursion (Xiao et al. 2020, Sec. 3; Cho & Saul 2009) of
    ``kernels.cnn(depth, 'relu', wv, bv, padding=padding, readout=readout)`` or, with ``readout=None``, of
    its convolutional part alone (the spatial kernel (n1, n2, h, w, H, W))."""
    x = np.concatenate([x1, x2])
    n1, c = x1.shape[0], x.shape[-1]
    h, w = x.shape[1:3]
    K = _np_window(np.einsum("ahwc,bHWc->abhwHW", x, x) / c, wv, bv, padding)
    T = K.copy()
    for layer in range(depth):
        var = np.array([np.diagonal(K[i, i].reshape(h * w, h * w)).reshape(h, w) for i in range(len(x))])
        a, b = var[:, None, :, :, None, None], var[None, :, None, None, :, :]
        root = np.sqrt(np.maximum(a * b - K * K, 0))
        angle = np.arctan2(root, K)
        for i in range(len(x)):  # an input position with itself: correlation exactly 1
            angle[i, i].reshape(h * w, h * w)[np.arange(h * w), np.arange(h * w)] = 0.0
            root[i, i].reshape(h * w, h * w)[np.arange(h * w), np.arange(h * w)] = 0.0
        dot = 0.5 - angle / (2 * np.pi)
        V = root / (2 * np.pi) + dot * K
        T = T * dot
        if layer < depth - 1:
            K = _np_window(V, wv, bv, padding)
            T = K + wv * _np_window(T, 1.0, 0.0, padding)
        elif readout == "gap":
            K = wv * V.mean(axis=(2, 3, 4, 5)) + bv
            T = K + wv * T.mean(axis=(2, 3, 4, 5))
        else:
            K = V
    return K[:n1, n1:], T[:n1, n1:], K[:n1, :n1], T[:n1, :n1]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 2 input pairs of 4x4 images (the production size is 2^18 entries): every block is cut."""
    from learndyn.kernels import layers, network

    monkeypatch.setattr(layers, "_CHUNK_ENTRIES", 2 * 16 ** 2)
    network.clear_cache()
    yield
    network.clear_cache()


@pytest.mark.parametrize("padding", ["circular", "same"])
def test_cnn_gap_in_chunks_matches_numpy_recursion(small_chunks, padding):
    """Train-train (triangle blocks with the same-input mask at row/column offsets) and cross blocks, cut into
    chunks of 2 pairs, against the independent NumPy recursion."""
    from learndyn.kernels import layers

    rng = np.random.RandomState(5)
    x1, x2 = rng.randn(7, 4, 4, 2), rng.randn(3, 4, 4, 2)
    net = kernels.cnn(3, "relu", 2.0, 0.05, padding=padding, readout="gap")
    K12, T12, K11, T11 = _np_cnn_relu(x1, x2, 3, 2.0, 0.05, padding, "gap")
    st = layers._KState(jnp.zeros((1, 3, 4, 4, 5, 4, 4)), None, None, None, None, None, 0.0, 0.0)
    ctx = layers._Ctx("full", 2, "cross", jnp.zeros(1, jnp.int32), jnp.zeros(1, jnp.int32))
    assert layers._chunk_shape(net.layers, st, ctx) == (1, 1)  # this test really runs in chunks
    for batch_size in (None, 4):
        k11 = net.kernel(x1, batch_size=batch_size)
        np.testing.assert_allclose(k11.nngp, K11, rtol=1e-12)
        np.testing.assert_allclose(k11.ntk, T11, rtol=1e-12)
        k12 = net.kernel(x1, x2, batch_size=batch_size)
        np.testing.assert_allclose(k12.nngp, K12, rtol=1e-12)
        np.testing.assert_allclose(k12.ntk, T12, rtol=1e-12)
    np.testing.assert_allclose(net.kernel(x1, x2, get="nngp").nngp, K12, rtol=1e-12)


def test_cnn_without_readout_in_chunks_matches_numpy_recursion(small_chunks):
    """The full spatial kernel (no readout), assembled from chunks, against NumPy."""
    from learndyn.kernels import layers

    rng = np.random.RandomState(6)
    x1, x2 = rng.randn(5, 4, 4, 1), rng.randn(2, 4, 4, 1)
    net = kernels.serial(layers.Conv(8, 2.0, 0.1), layers.Elementwise("relu"), layers.Conv(8, 2.0, 0.1))
    # the NumPy recursion of Conv, relu (all 7 inputs with each other), then the last Conv
    _, _, Kall, Tall = _np_cnn_relu(np.concatenate([x1, x2]), x2[:0], 1, 2.0, 0.1, "circular", None)
    Kout = _np_window(Kall, 2.0, 0.1, "circular")
    Tout = Kout + 2.0 * _np_window(Tall, 1.0, 0.0, "circular")
    k = net.kernel(np.concatenate([x1, x2]), batch_size=3)
    np.testing.assert_allclose(k.nngp, Kout, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, Tout, rtol=1e-12)
    kc = net.kernel(x1, x2)
    np.testing.assert_allclose(kc.ntk, Tout[:5, 5:], rtol=1e-12)


@pytest.mark.parametrize("act", ["erf", "tanh", "leaky_relu(0.2)"])
def test_cnn_gap_chunks_equal_whole_blocks(monkeypatch, act):
    """Other activations: the chunked stack gives the whole-block numbers (same arithmetic per entry)."""
    from learndyn.kernels import layers, network

    rng = np.random.RandomState(8)
    x = rng.randn(5, 4, 4, 2) * 0.7
    whole = kernels.cnn(2, act, 1.7, 0.1, padding="same", readout="gap").kernel(x)
    monkeypatch.setattr(layers, "_CHUNK_ENTRIES", 2 * 16 ** 2)
    network.clear_cache()
    chunked = kernels.cnn(2, act, 1.7, 0.1, padding="same", readout="gap").kernel(x, batch_size=3)
    network.clear_cache()
    np.testing.assert_allclose(chunked.nngp, whole.nngp, rtol=1e-13)
    np.testing.assert_allclose(chunked.ntk, whole.ntk, rtol=1e-13)


def test_same_mask_at_chunk_offsets():
    """The same-input mask of a chunk (rows from row0, columns from col0) is the block's mask cut there."""
    from learndyn.kernels import layers

    I = jnp.asarray([0, 0, 1], jnp.int32)
    J = jnp.asarray([0, 1, 1], jnp.int32)
    whole = np.asarray(layers._same_mask(layers._Ctx("full", 1, "cross", I, J, True), 4, 4, 3))
    for r0, c0 in ((0, 0), (2, 0), (0, 2), (2, 2), (1, 3)):
        ctx = layers._Ctx("full", 1, "cross", I, J, True, row0=jnp.int32(r0), col0=jnp.int32(c0))
        part = np.asarray(layers._same_mask(ctx, 1, 1, 3))
        np.testing.assert_array_equal(part, whole[:, 3 * r0:3 * r0 + 3, 3 * c0:3 * c0 + 3])
    assert layers._same_mask(layers._Ctx("full", 1, "cross", I, J, False), 4, 4, 3) is None
