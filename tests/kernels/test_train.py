"""Finite-width SGD training of the same network description that gives the kernels."""

import numpy as np
import pytest

from learndyn import datasets, kernels
from learndyn.kernels.train import learning_rate, train


def test_tiny_network_learns_digits():
    """A width-32, depth-2 erf FCN near the critical line learns digits: train accuracy far above chance
    (0.1) and test accuracy well above chance after 200 SGD steps; the learning rate is tied to the NTK."""
    ds = datasets.load("digits", n_train=96, n_test=100, seed=0)
    net = kernels.fcn(2, "erf", 1.75, 0.18, width=32, out_dim=10)
    r = train(net, ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test, steps=200,
              batch_size=32, seeds=2, log_every=50)
    assert np.all(r.status == "ok")
    assert np.all(r.train_accuracy > 0.8), r.train_accuracy
    assert np.all(r.test_accuracy > 0.5), r.test_accuracy
    # loss decreases
    assert np.all(r.loss_curve[-1] < 0.5 * r.loss_curve[0])
    T = net.kernel(np.asarray(ds.x_train[:32])).ntk
    assert r.learning_rate == pytest.approx(0.5 * 2 * 32 / np.linalg.eigvalsh(T)[-1], rel=1e-12)
    assert r.to_xarray().train_accuracy.shape == (2,)


def test_validation():
    ds = datasets.load("digits", n_train=16, n_test=8)
    net = kernels.fcn(1, "erf", 1.0, 0.1, width=8, out_dim=10)
    with pytest.raises(ValueError, match="steps"):
        train(net, ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test, steps=0)
    with pytest.raises(ValueError, match="lr"):
        train(net, ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test, lr=-1.0)
