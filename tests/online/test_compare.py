"""ODE vs SGD agreement as a number (issue 3, item 2): the deviation shrinks as N grows."""

import math

import numpy as np
import pytest

from learndyn import online
from learndyn.online import compare, deviation_exponent

ALPHAS = np.array([0.0, 1.0, 2.0, 4.0, 6.0, 10.0])  # same grid as test_sgd: the compiled ODE is reused


def test_deviation_shrinks_with_N():
    prob = online.Problem(M=2, K=3, activation="erf", lr=0.5, sigma=0.1, train_second_layer=True)
    small = compare(prob, N=200, seeds=8, alphas=ALPHAS)
    large = compare(prob, N=1600, seeds=8, alphas=ALPHAS)
    for c in (small, large):
        assert c.mask.sum() == len(ALPHAS) - 1
        assert np.isfinite(c.rms_dev_sem) and c.rms_dev_sem > 0
    # one run's deviation from the ODE (O(1/sqrt N) fluctuations): it must fall, by more than three
    # combined standard errors ...
    combined = math.hypot(small.rms_dev_sem, large.rms_dev_sem)
    assert large.rms_dev < small.rms_dev - 3 * combined, (small.summary(), large.summary())
    # ... and by the expected factor sqrt(8) within three standard errors of the log-ratio
    ratio = small.rms_dev / large.rms_dev
    log_err = math.hypot(small.rms_dev_sem / small.rms_dev, large.rms_dev_sem / large.rms_dev)
    assert abs(math.log(ratio) - 0.5 * math.log(8)) < 3 * log_err + 0.05, (ratio, log_err)
    # the seed-averaged curve is consistent with the ODE within its statistical error at both sizes
    assert small.z_max < 5 and large.z_max < 5
    assert large.max_rel_dev < small.max_rel_dev + 3 * math.hypot(small.max_rel_dev_sem, large.max_rel_dev_sem)
    # the numbers are what the arrays say
    i = np.flatnonzero(large.mask)
    dev = np.abs(large.eg_sgd.mean(0) - large.eg_ode.mean(0))[i] / large.eg_ode.mean(0)[i]
    assert large.max_rel_dev == pytest.approx(dev.max()) and large.mean_rel_dev == pytest.approx(dev.mean())
    ds = large.to_xarray()
    assert ds.attrs["rms_dev"] == pytest.approx(large.rms_dev)
    assert "max relative deviation" in large.summary()


def test_deviation_exponent_fit():
    Ns = np.array([500, 1000, 2000, 4000, 8000])
    b, err = deviation_exponent(Ns, 3.0 * Ns**-0.5)
    assert b == pytest.approx(-0.5, abs=1e-12) and err < 1e-10
    rng = np.random.default_rng(0)
    dev = 2.0 * Ns**-0.5 * np.exp(0.05 * rng.standard_normal(5))
    b, err = deviation_exponent(Ns, dev, 0.05 * dev)
    assert abs(b + 0.5) < 4 * err and 0.01 < err < 0.1


def test_compare_needs_a_simulation_or_N():
    prob = online.Problem(M=1, K=1, activation="erf", lr=0.5)
    with pytest.raises(ValueError, match="N"):
        compare(prob)
    with pytest.raises(ValueError, match="simulation"):
        compare(prob, simulation="not a simulation")
