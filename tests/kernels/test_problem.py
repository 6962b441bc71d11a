"""kernels.Problem: the frozen description every kernels function takes, the network it builds, the compile
cache keyed on it, and the statuses of the kernels results."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

import learndyn
from learndyn import kernels


def test_problem_is_frozen_hashable_and_builds_the_network():
    p = kernels.Problem("fcn", depth=3, activation="erf", weight_var=1.5, bias_var=0.05, out_dim=2)
    assert p == kernels.Problem("fcn", 3, "erf", 1.5, 0.05, out_dim=2) and hash(p) == hash(p.replace())
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.depth = 4
    assert {p: 1}[p.replace(depth=3)] == 1 and p.replace(depth=4) != p
    assert p.network() == kernels.fcn(3, "erf", 1.5, 0.05, out_dim=2)
    c = kernels.Problem("cnn", depth=2, activation="relu", weight_var=2.0, bias_var=0.1, filter_shape=(3, 2),
                        padding="same", readout="gap", channels=8)
    assert c.network() == kernels.cnn(2, "relu", 2.0, 0.1, filter_shape=(3, 2), padding="same", readout="gap",
                                      channels=8)
    x = np.random.default_rng(0).standard_normal((5, 6))
    k = kernels.kernel(p, x)
    ref = kernels.fcn(3, "erf", 1.5, 0.05).kernel(x)
    np.testing.assert_array_equal(k.ntk, ref.ntk)
    np.testing.assert_array_equal(p.kernel(x, diagonal=True).nngp, np.diag(ref.nngp))
    # the readin options
    assert kernels.Problem(readin="colab").readin_variances() == (1.0, 0.0)
    assert kernels.Problem(weight_var=2.0, readin_bias_var=0.3).readin_variances() == (2.0, 0.3)
    q = float(kernels.signal_propagation("erf", 1.5, 0.05).q_star)
    assert kernels.Problem(weight_var=1.5, bias_var=0.05, readin="qstar").readin_variances() == (q - 0.05, 0.05)
    with pytest.raises(learndyn.InvalidInputError, match="^readin: 'qstar' needs a finite q"):
        kernels.Problem(activation="relu", weight_var=3.0, readin="qstar").network()


@pytest.mark.parametrize("changes, name", [
    (dict(architecture="rnn"), "architecture"), (dict(depth=-1), "depth"), (dict(depth=1.5), "depth"),
    (dict(architecture="cnn", depth=0), "depth"), (dict(activation="nope"), "activation"),
    (dict(weight_var=0.0), "weight_var"), (dict(bias_var=-1.0), "bias_var"), (dict(readin="x"), "readin"),
    (dict(readin="qstar", readin_weight_var=1.0), "readin_weight_var"), (dict(width=0), "width"),
    (dict(out_dim=2.5), "out_dim"), (dict(filter_shape=(0, 3)), "filter_shape"), (dict(padding="valid"), "padding"),
    (dict(readout="max"), "readout"), (dict(activation=lambda x: np.tanh(x)), "activation"),
])
def test_problem_validation_names_the_parameter(changes, name):
    with pytest.raises(learndyn.InvalidInputError, match=f"^{name}"):
        kernels.Problem(**changes)


def test_theories_take_the_problem():
    p = kernels.Problem(activation="erf", weight_var=1.7, bias_var=0.1)
    a, b = kernels.signal_propagation(p), kernels.signal_propagation("erf", 1.7, 0.1)
    assert a.scalar() == b.scalar() and a.success and a.status == "success"
    with pytest.raises(learndyn.InvalidInputError, match="^weight_var: given twice"):
        kernels.signal_propagation(p, 2.0)
    np.testing.assert_array_equal(kernels.critical_line(p, [0.05]).weight_var,
                                  kernels.critical_line("erf", [0.05]).weight_var)
    for got, want in zip(kernels.correlation_trajectory(p, c0=0.3, depth=5),
                         kernels.correlation_trajectory("erf", 1.7, 0.1, 0.3, 5)):
        np.testing.assert_array_equal(got, want)
    # the vectorised loose form stays
    grid = kernels.signal_propagation("erf", np.array([1.0, 2.0]), 0.05)
    assert grid.q_star.shape == (2,) and grid.success


def test_compile_cache_is_keyed_on_the_frozen_network():
    """Equal networks (equal problems) share their compiled kernel; a custom activation's callable is part of
    the key, so two callables under one name never share (the cache-identity bug)."""
    x = np.random.default_rng(1).standard_normal((4, 3))
    kernels.clear_cache()

    def make(scale):
        def act(z):
            return jnp.sin(scale * z)
        return act

    f, g = make(1.0), make(2.0)
    assert f.__name__ == g.__name__
    kf = kernels.fcn(2, f, 1.5, 0.1).kernel(x).nngp
    kg = kernels.fcn(2, g, 1.5, 0.1).kernel(x).nngp
    assert not np.allclose(kf, kg)
    np.testing.assert_array_equal(kernels.fcn(2, g, 1.5, 0.1).kernel(x).nngp, kg)
    n = kernels.cache_info().currsize
    kernels.Problem(depth=2, activation=g, weight_var=1.5, bias_var=0.1).kernel(x)
    assert kernels.cache_info().currsize == n  # an equal network built again compiles nothing new
    kernels.clear_cache()
    assert kernels.cache_info() == (0, kernels.network.CACHE_SIZE)


def test_nonfinite_kernel_is_a_status_with_the_data(tmp_path):
    """A kernel recursion that produces NaN (an activation whose Gaussian integrals do not exist) is reported
    through Kernel.status / message, with the entries kept; the status survives save / load."""
    x = np.random.default_rng(2).standard_normal((3, 4))
    k = kernels.Problem(depth=1, activation=lambda z: jnp.log(z), weight_var=1.0).kernel(x)
    assert k.status == "nonfinite" and not k.success and k.message.startswith("nngp:")
    assert k.nngp_mantissa.shape == (3, 3)
    good = kernels.Problem(depth=2).kernel(x)
    assert good.success and good.message == ""
    back = learndyn.load(good.save(tmp_path / "k.nc"))
    assert isinstance(back, kernels.Kernel) and back.status == "success"
    np.testing.assert_array_equal(back.ntk, good.ntk)


def test_kernel_records_its_problem_and_loads_it_back(tmp_path):
    """A Kernel computed through a kernels.Problem knows it (Kernel.problem), writes it into its Dataset's
    ``problem`` attribute (with the network beside it) and gives it back on loading; a Kernel of a network
    built layer by layer has no Problem and stores the network description as before."""
    from learndyn import activations as A

    x = np.random.default_rng(4).standard_normal((4, 6))
    problems = (kernels.Problem("fcn", depth=2, activation="erf", weight_var=1.5, bias_var=0.05, readin="qstar"),
                kernels.Problem("cnn", depth=1, activation=A.get("leaky_relu"), weight_var=2.0, bias_var=0.1,
                                filter_shape=(2, 2), readout="gap", channels=3))
    for p, xs in zip(problems, (x, x.reshape(4, 2, 3, 1))):
        for k in (kernels.kernel(p, xs), p.kernel(xs, diagonal=True)):
            assert k.problem is p and k.network == p.network()
            ds = k.to_xarray()
            assert ds.attrs["problem_class"] == "Problem" and "network" in ds.attrs
            back = learndyn.load(k.save(tmp_path / "k.nc"))
            assert isinstance(back, kernels.Kernel) and back.problem == p and back.network == p.network()
            assert back.diagonal == k.diagonal
            np.testing.assert_array_equal(back.nngp, k.nngp)
            np.testing.assert_array_equal(back.ntk, k.ntk)
    plain = kernels.fcn(2, "erf", 1.5, 0.05).kernel(x)
    assert plain.problem is None and "network" not in plain.to_xarray().attrs
    back = learndyn.load(plain.save(tmp_path / "plain.nc"))
    assert back.problem is None and back.network == plain.network


def test_old_import_paths_still_work():
    from learndyn.kernels.layers import Kernel, KernelMemoryError, Network, cnn, fcn, serial  # noqa: F401

    assert Network is kernels.Network and fcn is kernels.fcn and Kernel is kernels.Kernel
