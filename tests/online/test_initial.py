"""Initialisations of the simulator (the --init options of the reference code of Goldt et al. 2019): overlaps of the drawn weights."""

import numpy as np
import pytest

from learndyn import online

N = 4000
TOL = 5 / np.sqrt(N)  # overlaps of independent N(0,1) vectors: std 1/sqrt(N)


def prob(**kw):
    base = dict(M=2, K=4, activation="erf", lr=0.5, train_second_layer=True)
    base.update(kw)
    return online.Problem(**base)


def test_large_init_overlaps_near_identity():
    iw = online.initial_weights(prob(), N, "large", seed=3)
    op = iw.order_parameters()
    assert np.max(np.abs(op.Q - np.eye(4))) < TOL
    assert np.max(np.abs(op.T - np.eye(2))) < TOL
    assert np.max(np.abs(op.R)) < TOL
    assert not np.allclose(iw.v, 1.0)  # trained second layer: v ~ N(0,1)
    np.testing.assert_array_equal(iw.v_teacher, np.ones(2))
    # first layer only: the soft committee machine v = 1
    np.testing.assert_array_equal(online.initial_weights(prob(train_second_layer=False), N, "large").v, np.ones(4))


def test_small_and_mixed_scales():
    small = online.initial_weights(prob(), N, "small").order_parameters()
    assert np.max(np.abs(small.Q - 1e-6 * np.eye(4))) < 1e-6 * TOL
    mixed = online.initial_weights(prob(), N, "mixed")
    q = mixed.order_parameters().Q
    assert np.max(np.abs(q - np.eye(4) / N)) < TOL / N
    assert abs(np.std(mixed.v) - 0.5) < 0.5  # std 1/sqrt(K) = 0.5 (only 4 samples)


def test_informed_copies_teacher_and_keeps_extras_small():
    iw = online.initial_weights(prob(), N, "informed", seed=1)
    op = iw.order_parameters()
    np.testing.assert_allclose(op.R[:2], op.T, atol=1e-8)
    np.testing.assert_allclose(op.Q[:2, :2], op.T, atol=1e-8)
    assert np.max(np.abs(op.Q[2:, 2:])) < 2e-6
    np.testing.assert_allclose(iw.v[:2], iw.v_teacher)
    assert np.max(np.abs(iw.v[2:])) < 1e-2


def test_denoise_splits_teacher_weights():
    iw = online.initial_weights(prob(K=5), N, "denoise", v_teacher=[1.0, -2.0])
    op = iw.order_parameters()
    owner = np.arange(5) % 2
    np.testing.assert_allclose(op.R, op.T[owner], atol=1e-8)
    # second-layer weights of the copies of each teacher unit add up to that unit's v*
    for m in range(2):
        assert iw.v[owner == m].sum() == pytest.approx(iw.v_teacher[m])
    np.testing.assert_allclose(iw.v, [1 / 3, -1.0, 1 / 3, -1.0, 1 / 3])


def test_user_weights_and_errors():
    rng = np.random.default_rng(0)
    w, wt = rng.standard_normal((4, 50)), rng.standard_normal((2, 50))
    iw = online.initial_weights(prob(), 50, {"w": w, "w_teacher": wt, "v": np.arange(4.0)})
    np.testing.assert_array_equal(iw.w, w)
    np.testing.assert_array_equal(iw.v, np.arange(4.0))
    np.testing.assert_allclose(iw.order_parameters().Q, w @ w.T / 50)
    with pytest.raises(ValueError, match="N"):
        online.initial_weights(prob(), 60, iw)
    with pytest.raises(ValueError, match="K=4"):
        online.initial_weights(prob(K=3), 50, iw)
    with pytest.raises(ValueError, match="init"):
        online.initial_weights(prob(), 50, "huge")
    with pytest.raises(ValueError, match="train_second_layer"):
        online.initial_weights(prob(train_second_layer=False), 50, "denoise")
    with pytest.raises(ValueError, match="K >= M"):
        online.initial_weights(prob(K=1), 50, "denoise")
    with pytest.raises(ValueError, match="N"):
        online.initial_weights(prob(), 0, "large")
    with pytest.raises(ValueError, match="v_teacher"):
        online.initial_weights(prob(), 50, "large", v_teacher=[1.0, 2.0, 3.0])
    # seeds are reproducible and distinct
    a, b = online.initial_weights(prob(), 50, "large", 7), online.initial_weights(prob(), 50, "large", 7)
    np.testing.assert_array_equal(a.w, b.w)
    assert not np.allclose(a.w, online.initial_weights(prob(), 50, "large", 8).w)
