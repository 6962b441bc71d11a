"""The built-in runners against direct calls of the theories (in-process, no Dask)."""

from __future__ import annotations

import numpy as np
import pytest

from learndyn import online, sweep


def test_online_sgd_runner_matches_simulate():
    cfg = sweep.load_config({
        "sweep": {"runner": "online.sgd", "seeds": [2, 9]},
        "problem": {"M": 1, "K": 2, "activation": "erf", "lr": 0.5},
        "options": {"N": 40, "alpha_max": 2.0, "n_alpha": 6},
        "grid": {"sigma": [0.0, 0.2]},
    })
    problem, options = cfg.point(1)
    result, error, _ = sweep.run_point(cfg.runner, problem, options, cfg.seeds)
    assert error == "" and result.ok
    sim = online.simulate(problem, 40, 2.0, seeds=[2, 9], alphas=online.default_alphas(2.0, 6, 0.1), progress=False)
    np.testing.assert_array_equal(result.values["eg"], sim.eg)
    np.testing.assert_array_equal(result.values["eg_final"], sim.eg[:, -1])
    # the declared recording times are the ones the simulator used (rounded to whole steps)
    outs = cfg.runner.outputs(problem, options, 2)
    np.testing.assert_array_equal(outs["eg"].coords["alpha"], sim.alpha)


def test_online_ode_runner_flags_a_stopped_trajectory_and_keeps_its_data():
    cfg = sweep.load_config({
        "sweep": {"runner": "online.ode", "seeds": [0]},
        "problem": {"M": 1, "K": 2, "activation": "erf", "lr": 0.3, "train_second_layer": True},
        "options": {"alpha_max": 20.0, "n_alpha": 8, "N_init": 100, "init": "small"},
        # max(Q_kk, |v_k|) grows from 1.2e-3 (alpha < 1) to 7e-3 (alpha = 20): the second point stops mid-way
        "grid": {"divergence_threshold": [1e6, 1.5e-3]},
    })
    values = []
    for flat in (0, 1):
        problem, options = cfg.point(flat)
        result, error, _ = sweep.run_point(cfg.runner, problem, options, cfg.seeds)
        assert error == ""
        values.append(result)
    ok, stopped = values
    assert ok.ok and ok.values["ode_status"].tolist() == [0]
    assert not stopped.ok and stopped.values["ode_status"].tolist() == [1]
    assert "diverged" in stopped.message
    eg = stopped.values["eg"][0]
    assert eg.shape == (9,) and np.isfinite(eg[:4]).all() and np.isnan(eg[-1])
    n = int(np.sum(np.isfinite(eg)))
    # the part computed before the stop is kept, identical to the unstopped run
    np.testing.assert_allclose(eg[:n], ok.values["eg"][0, :n], rtol=1e-10)
    assert 1.0 < stopped.values["alpha_reached"][0] < 20.0
    assert np.isnan(stopped.values["eg_final"][0])
