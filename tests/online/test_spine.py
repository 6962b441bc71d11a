"""The common spine in learndyn.online: Status on every result, InvalidInputError for bad input, one name for the
save grid (times=), one integer coding of statuses, and the conventions module as the simulator's scalings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import learndyn
from learndyn import online, sweep
from learndyn.online import conventions, rk
from learndyn.results import InvalidInputError, Status

PROB = online.Problem(M=1, K=2, activation="erf", lr=0.5, sigma=0.1, train_second_layer=True)
START = online.OrderParameters(Q=[[1.0, 0.1], [0.1, 0.8]], R=[[0.2], [0.1]], T=[[1.0]], v=[0.5, 0.4])


def test_integrate_takes_times_and_keeps_alphas_as_alias():
    times = np.array([0.0, 0.5, 2.0])
    by_times = online.integrate(PROB, START, times=times)
    by_alias = online.integrate(PROB, START, alphas=times)
    positional = online.integrate(PROB, START, times)
    np.testing.assert_array_equal(by_times.alpha, times)
    np.testing.assert_array_equal(by_times.eg, by_alias.eg)
    np.testing.assert_array_equal(by_times.eg, positional.eg)
    with pytest.raises(InvalidInputError, match="^times:"):
        online.integrate(PROB, START, times=times, alphas=times)
    with pytest.raises(InvalidInputError, match="^times: times must be strictly increasing"):
        online.integrate(PROB, START, times=[1.0, 0.5])


def test_simulate_and_compare_take_times():
    times = [0.0, 0.5, 1.0]
    sim = online.simulate(PROB, 60, seeds=2, times=times)
    alias = online.simulate(PROB, 60, seeds=2, alphas=times)
    np.testing.assert_array_equal(sim.alpha, times)
    np.testing.assert_array_equal(sim.Q, alias.Q)
    with pytest.raises(InvalidInputError, match="^times:"):
        online.simulate(PROB, 60, seeds=2, times=times, alphas=times)
    with pytest.raises(InvalidInputError, match="^times: the last time"):
        online.simulate(PROB, 60, alpha_max=0.5, times=times)
    cmp = online.compare(PROB, 60, seeds=2, times=times)
    np.testing.assert_array_equal(cmp.alpha, times)
    np.testing.assert_array_equal(cmp.eg_sgd, sim.eg)  # the same seeds give the same run


def test_every_result_carries_a_status_and_loads_back(tmp_path):
    traj = online.integrate(PROB, START, times=[0.0, 1.0])
    sim = online.simulate(PROB, 60, seeds=2, times=[0.0, 1.0])
    cmp = online.compare(PROB, simulation=sim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one Newton iteration: not converged, said by the status
        fp = online.fixed_point(PROB, traj.final_state, max_iter=1, onward=())
    for result in (traj, sim, cmp, fp):
        assert isinstance(result.status, Status)
        assert result.success == (result.status is Status.SUCCESS)
        assert isinstance(result.message, str) and result.message
        path = result.save(tmp_path / f"{type(result).__name__}.nc")
        back = learndyn.load(path)
        assert type(back) is type(result)
        assert back.status is result.status and back.message == result.message
        assert back.to_xarray().attrs["status"] == result.status.value
    assert traj.status == "success" and sim.status == "success" and cmp.status == "success"
    assert fp.status is (Status.SUCCESS if fp.converged else Status.NOT_CONVERGED)
    assert list(sim.seed_status) == ["success", "success"]
    assert all(s is Status.SUCCESS for s in cmp.ode_status)


def test_fixed_point_not_converged_is_a_status_and_split_unstable_loads_back(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fp = online.fixed_point(PROB, START, tol=1e-300, max_iter=1, onward=())
    assert not fp.converged and fp.status is Status.NOT_CONVERGED and not fp.success
    flagged = online.FixedPoint(**{**{f: getattr(fp, f) for f in fp.__dataclass_fields__}, "split_unstable": True})
    back = learndyn.load(flagged.save(tmp_path / "fp.nc"))
    assert back.split_unstable and back.status is Status.NOT_CONVERGED


def test_comparison_status_reports_the_run_that_stopped():
    prob = online.Problem(M=1, K=2, activation="linear", lr=1.5)  # K eta > 2: diverges
    with pytest.warns(RuntimeWarning):
        sim = online.simulate(prob, 100, seeds=2, times=np.arange(0, 20.0))
        cmp = online.compare(prob, simulation=sim)
    assert sim.status is Status.DIVERGED
    assert cmp.status is Status.DIVERGED and not cmp.success
    assert cmp.message.startswith("simulation: seed 0 diverged")


def test_status_codes_are_one_mapping_shared_with_the_sweep():
    assert rk.STATUS_CODES[0] is Status.SUCCESS
    assert rk.STATUS_CODES[2] is Status.NONFINITE and rk.STATUS_CODES[3] is Status.MAX_STEPS
    assert all(isinstance(s, Status) for s in rk.STATUS_CODES.values())
    for code, status in rk.STATUS_CODES.items():
        assert rk.status_code(status) == code and rk.status_code(status.value) == code
    with pytest.raises(InvalidInputError, match="^status:"):
        rk.status_code(Status.NOT_CONVERGED)
    # the sweep stores the same codes: a run stopped by max_steps is 3, as in rk (the sweep had 2)
    cfg = sweep.load_config({
        "sweep": {"runner": "online.ode", "seeds": [0]},
        "problem": {"M": 1, "K": 1, "activation": "erf", "lr": 0.5},
        "options": {"N_init": 50, "alpha_max": 100.0, "n_alpha": 3, "max_steps": 2},
    })
    problem, options = cfg.point(0)
    result, error, _ = sweep.run_point(cfg.runner, problem, options, cfg.seeds)
    assert error == "" and not result.ok
    assert int(result.values["ode_status"][0]) == rk.status_code(Status.MAX_STEPS) == 3
    flags = cfg.runner.outputs(problem, options, 1)["ode_status"].attrs
    assert flags["flag_meanings"].split() == [rk.STATUS_CODES[c].value for c in flags["flag_values"]]


@pytest.mark.parametrize("call", [
    lambda: online.integrate(PROB, START, rtol=0.0),
    lambda: online.integrate("not a problem", START),
    lambda: online.simulate(PROB, 0, alpha_max=1.0),
    lambda: online.simulate(PROB, 10, alpha_max=1.0, seeds=[1, 1]),
    lambda: online.compare(PROB),
    lambda: online.fixed_point(PROB, START, tol=-1.0),
    lambda: online.initial_weights(PROB, 10, "huge", 0),
    lambda: online.Problem(M=0, K=1),
    lambda: online.OrderParameters(Q=[[1.0]], R=[[2.0]], T=[[1.0]]),
    lambda: online.eg_linear_first_layer(1.5, 0.1, 2),
])
def test_invalid_input_raises_invalid_input_error(call):
    with pytest.raises(InvalidInputError):
        call()


def test_the_simulator_takes_its_scalings_from_the_conventions_module(monkeypatch):
    """sgd_update runs the simulator's own step: changing the conventions' step sizes changes the update."""
    N, K, M = 30, 2, 1
    prob = online.Problem(M=M, K=K, activation="erf", lr=0.6, lr2=0.3, train_second_layer=True, weight_decay=0.2)
    rng = np.random.default_rng(0)
    w, wt, v, vt, x = (rng.standard_normal(s) for s in ((K, N), (M, N), K, M, N))
    w1, v1 = (np.asarray(a) for a in online.sgd_update(prob, w, v, wt, vt, x))
    monkeypatch.setattr(conventions, "first_layer_step", lambda N, lr: 2 * lr / np.sqrt(N))
    monkeypatch.setattr(conventions, "second_layer_step", lambda N, lr2: 0.0 * lr2)
    monkeypatch.setattr(conventions, "decay_factor", lambda N, kappa: 1.0 + 0.0 * kappa)
    w2, v2 = (np.asarray(a) for a in online.sgd_update(prob, w, v, wt, vt, x))
    c = 1 - prob.weight_decay / N
    np.testing.assert_allclose(w2 - w, 2 * (w1 - c * w), rtol=1e-12, atol=1e-14)  # doubled step, no decay
    np.testing.assert_array_equal(v2, v)
    assert np.abs(v1 - v).max() > 0


def test_public_names_replace_the_private_ones():
    assert online.static_key(PROB) == PROB.replace(lr=1.0, lr2=None, sigma=0.0, weight_decay=0.0)
    np.testing.assert_array_equal(online.record_steps(100, [0.0, 0.013, 0.5], None), [0, 1, 50])
    # default: 0 plus 60 log-spaced times up to alpha_max, rounded to whole steps and merged
    np.testing.assert_array_equal(online.record_steps(10, None, 1.0), np.arange(11))
