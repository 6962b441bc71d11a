"""Finite-width SGD training of the same network description that gives the kernels."""

import numpy as np
import pytest

from learndyn import datasets, kernels
from learndyn.kernels import train


def test_tiny_network_learns_digits():
    """A width-32, depth-2 erf FCN near the critical line learns digits: train accuracy far above chance
    (0.1) and test accuracy well above chance after 200 SGD steps; the learning rate is tied to the NTK."""
    ds = datasets.load("digits", n_train=96, n_test=100, seed=0)
    net = kernels.fcn(2, "erf", 1.75, 0.18, width=32, out_dim=10)
    r = train(net, ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test, steps=200,
              batch_size=32, seeds=2, log_every=50)
    assert r.status == "success" and r.success and np.all(r.seed_status == "success")
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


def test_output_width_must_match_targets():
    """Issue 11.6: fcn(...) defaults to out_dim=1; with 10-class one-hot targets the trainer used to broadcast
    the loss and report chance accuracy (0.097). A target width that does not match is an error naming out_dim."""
    ds = datasets.load("digits", n_train=16, n_test=8)
    args = (ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test)
    with pytest.raises(ValueError, match=r"out_dim.*1 outputs.*10 columns.*out_dim=10"):
        train(kernels.fcn(1, "erf", 1.0, 0.1, width=8), *args, steps=2)
    with pytest.raises(ValueError, match="out_dim"):
        train(kernels.cnn(1, "relu", 2.0, 0.0, channels=4, out_dim=3), ds.x_train.reshape(16, 8, 8, 1),
              ds.y_train, ds.labels_train, ds.x_test.reshape(8, 8, 8, 1), ds.labels_test, steps=2)
    net = kernels.fcn(1, "erf", 1.0, 0.1, width=8, out_dim=10)
    with pytest.raises(ValueError, match="labels_test"):
        train(net, ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test[:5], steps=2)
    with pytest.raises(ValueError, match="labels_train"):
        train(net, ds.x_train, ds.y_train, ds.labels_train + 10, ds.x_test, ds.labels_test, steps=2)
    with pytest.raises(ValueError, match="x_test"):
        train(net, ds.x_train, ds.y_train, ds.labels_train, ds.x_test[:, :10], ds.labels_test, steps=2)
    # the matching width trains
    r = train(net, *args, steps=2, batch_size=8)
    assert r.train_accuracy.shape == (1,)


def test_train_is_a_function_of_the_package():
    """``learndyn.kernels.train`` is the trainer itself (the module is ``learndyn.kernels.training``)."""
    import learndyn.kernels.training as training

    assert kernels.train is training.train and callable(kernels.train)
    assert kernels.learning_rate is training.learning_rate
    assert kernels.TrainResult is training.TrainResult


def test_train_takes_a_problem_and_reports_divergence():
    """kernels.train takes a kernels.Problem (its network) and the same seeds as the other theories (a list);
    a learning rate that blows the loss up gives status DIVERGED with the per-seed numbers kept."""
    import learndyn

    ds = datasets.load("digits", n_train=16, n_test=8)
    args = (ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test)
    p = kernels.Problem("fcn", depth=1, activation="erf", weight_var=1.0, bias_var=0.1, width=8, out_dim=10)
    r_net = train(p.network(), *args, steps=4, batch_size=8, seeds=2, seed=3)
    r_p = train(p, *args, steps=4, batch_size=8, seeds=2, seed=3)
    np.testing.assert_array_equal(r_p.train_loss, r_net.train_loss)
    listed = train(p, *args, steps=4, batch_size=8, seeds=[5, 7])
    assert listed.to_xarray()["seed"].values.tolist() == [5, 7]
    # a seed's run does not depend on the others (vectorised over 1 or 2 seeds: rounding only)
    np.testing.assert_allclose(train(p, *args, steps=4, batch_size=8, seeds=[7]).train_loss,
                               listed.train_loss[1:], rtol=1e-12)
    bad = train(p, *args, steps=20, batch_size=8, seeds=2, lr=1e200)
    assert bad.status == "diverged" and not bad.success and np.all(bad.seed_status == "diverged")
    assert "lower lr" in bad.message and bad.train_accuracy.shape == (2,)
    with pytest.raises(learndyn.InvalidInputError, match="^seeds:"):
        train(p, *args, steps=2, seeds=[1, 1])
