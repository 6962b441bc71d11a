"""The compiled Runge-Kutta loop (learndyn.online.rk) against exact solutions and known convergence orders."""

import jax.numpy as jnp
import numpy as np
import pytest

import learndyn  # noqa: F401  (float64)
from learndyn.online import rk


def decay(t, y, args):  # y' = -k y + sin(t): exact solution known
    return -args * y + jnp.sin(t)


def exact_decay(t, y0, k):
    # y = (k sin t - cos t)/(1+k^2) + C e^{-kt}
    part = (k * np.sin(t) - np.cos(t)) / (1 + k * k)
    c = y0 + 1.0 / (1 + k * k)
    return part + c * np.exp(-k * t)


def blow_up(t, y, args):  # y' = y^2, y(0)=1: singular at t = 1
    return y * y


@pytest.mark.parametrize("method, tol", [("dopri8", 1e-9), ("dopri5", 1e-7)])
def test_adaptive_methods_meet_tolerance_on_exact_solution(method, tol):
    ts = np.linspace(0.0, 10.0, 21)
    y0 = np.array([1.0, -2.0, 0.5])
    k = jnp.asarray([0.5, 2.0, 5.0])
    ys, n_acc, status = rk.solve(decay, y0, ts, k, method=method, rtol=1e-10, atol=1e-12)
    assert status == "success" and n_acc >= len(ts) - 1
    np.testing.assert_allclose(ys, exact_decay(ts[:, None], y0, np.asarray(k)), atol=tol)


@pytest.mark.parametrize("method, order", [("euler", 1), ("heun", 2)])
def test_fixed_step_convergence_order(method, order):
    ts = np.array([0.0, 2.0])
    y0 = np.array([1.0])
    errs = []
    for dt in (0.02, 0.01):
        ys, n_acc, status = rk.solve(decay, y0, ts, jnp.asarray([1.0]), method=method, dt0=dt)
        assert status == "success" and n_acc == round(2.0 / dt)
        errs.append(abs(ys[-1, 0] - exact_decay(2.0, 1.0, 1.0)))
    assert np.log2(errs[0] / errs[1]) == pytest.approx(order, abs=0.1)


def test_saved_times_are_hit_exactly_and_tolerance_scales():
    """Saved states are exact RK states at the requested times (no interpolation): tightening rtol by 1e3
    reduces the error by well over 1e2 for the 8th-order scheme."""
    ts = np.concatenate([[0.0], np.logspace(-3, 1, 30)])
    y0 = np.array([0.3])
    ref = exact_decay(ts, 0.3, 3.0)
    e = []
    for rtol in (1e-6, 1e-9):
        ys, _, _ = rk.solve(decay, y0, ts, jnp.asarray([3.0]), rtol=rtol, atol=1e-14)
        e.append(np.max(np.abs(ys[:, 0] - ref)))
    assert e[1] < e[0] / 100 and e[1] < 1e-9


def test_singularity_stops_with_status_and_keeps_earlier_states():
    ts = np.array([0.0, 0.5, 0.9, 1.5, 2.0])
    ys, _, status = rk.solve(blow_up, np.array([1.0]), ts, None, rtol=1e-8)
    assert status in ("step_too_small", "nonfinite")
    np.testing.assert_allclose(ys[:3, 0], 1.0 / (1.0 - ts[:3]), rtol=1e-6)
    assert np.all(np.isnan(ys[3:]))


def test_divergence_test_and_max_steps():
    ts = np.array([0.0, 0.5, 0.99])
    ys, _, status = rk.solve(blow_up, np.array([1.0]), ts, None, diverged=_big, threshold=10.0)
    assert status == "diverged" and ys[1, 0] == pytest.approx(2.0, rel=1e-6)
    _, n_acc, status = rk.solve(decay, np.array([1.0]), np.array([0.0, 100.0]), jnp.asarray([1.0]), max_steps=5)
    assert status == "max_steps" and n_acc <= 5


def _big(y, threshold):
    return jnp.max(jnp.abs(y)) > threshold


def test_keyboard_interrupt_stops_within_a_chunk_and_keeps_states():
    """Ctrl-C (SIGINT) during a long compiled integration returns within ~1 s with status "interrupted" and the
    states saved so far (checked against the exact solution), instead of being ignored until the loop ends."""
    import os
    import signal
    import threading
    import time

    ts = np.concatenate([[0.0, 1.0, 2.0], np.linspace(3.0, 1e9, 5)])  # ~1e10 steps: never reaches the end
    # bounded (about 1 min of steps) as a safety net: should the SIGINT be lost, the test fails on its status
    # instead of hanging; tests/conftest.py gives every test Python's own SIGINT handler
    kw = dict(rtol=1e-12, atol=1e-14, max_steps=50_000_000)
    rk.solve(decay, np.array([1.0]), np.linspace(0.0, 0.1, ts.size), jnp.asarray([1.0]), **kw)  # compile first
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        ys, n_acc, status = rk.solve(decay, np.array([1.0]), ts, jnp.asarray([1.0]), **kw)
    except KeyboardInterrupt:
        pytest.fail("the KeyboardInterrupt escaped instead of stopping the integration with a status")
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - t0
    assert status == "interrupted" and n_acc > 0
    assert elapsed < 1.0 + 2.0, elapsed
    np.testing.assert_allclose(ys[:3, 0], exact_decay(ts[:3], 1.0, 1.0), atol=1e-10)
    assert np.all(np.isnan(ys[-1]))


def test_max_steps_must_be_positive_and_check_codes():
    with pytest.raises(ValueError, match="max_steps"):
        rk.solve(decay, np.array([1.0]), np.array([0.0, 1.0]), jnp.asarray([1.0]), max_steps=0)
    # an integer code from the state check is reported as that status and the failing state is not kept
    ys, _, status = rk.solve(blow_up, np.array([1.0]), np.array([0.0, 0.5, 0.9]), None, diverged=_psd_like,
                             threshold=1.5)
    assert status == "not_psd"
    assert ys[0, 0] == 1.0 and np.all(np.isnan(ys[1:]))


def _psd_like(y, threshold):
    return jnp.where(jnp.max(y) > threshold, 5, 0)
