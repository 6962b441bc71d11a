"""The built-in runners against direct calls of the theories (in-process, no Dask). The online.ode
runner is checked against online.integrate on a LocalCluster in test_execute.py."""

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


def test_dmft_and_signal_runners_match_direct_calls():
    from learndyn import dmft
    from learndyn.kernels import signal

    cfg = sweep.load_config({
        "sweep": {"runner": "dmft"},
        "problem": {"m": 4, "n_over_d": 1.2, "tau": 0.6},
        "options": {"t_max": 2.0, "dt": 0.1, "n_out": 5},
        "grid": {"a0": [0.5, 1.0]},
    })
    problem, options = cfg.point(1)
    result, error, _ = sweep.run_point(cfg.runner, problem, options, cfg.seeds)
    assert error == "" and result.ok
    sol = dmft.solve(problem, 2.0, 0.1)
    np.testing.assert_allclose(result.values["test_error"], sol.test_error[::5], rtol=1e-13)
    np.testing.assert_allclose(result.values["gap_final"], sol.test_error[-1] - sol.train_error[-1], rtol=1e-13)
    np.testing.assert_allclose(cfg.runner.outputs(problem, options, 0)["a"].coords["t"], sol.t[::5], rtol=1e-13)

    cfg = sweep.load_config({"sweep": {"runner": "kernels.signal"}, "problem": {"activation": "erf"},
                             "grid": {"weight_var": [0.5, 2.0], "bias_var": [0.0, 0.1]}})
    problem, options = cfg.point(3)
    result, error, _ = sweep.run_point(cfg.runner, problem, options, cfg.seeds)
    ref = signal.signal_propagation("erf", 2.0, 0.1).scalar()
    assert error == "" and result.values["chi_1"] == ref["chi_1"] and result.values["q_star"] == ref["q_star"]
    assert signal.PHASES[int(result.values["phase"])] == ref["phase"]
    # the runner's Problem is kernels.Problem; only the fields signal propagation reads are config keys
    from learndyn import kernels

    assert isinstance(problem, kernels.Problem) and problem == kernels.Problem(activation="erf", weight_var=2.0,
                                                                               bias_var=0.1)
    import pytest

    with pytest.raises(ValueError, match="problem.depth: unknown key"):
        sweep.load_config({"sweep": {"runner": "kernels.signal"}, "problem": {"activation": "erf", "depth": 3}})


def test_online_ode_runner_ctrl_c_stops_the_sweep(monkeypatch):
    """An ODE run stopped by Ctrl-C (status "interrupted") must not be recorded as a finished point."""
    import dataclasses

    import pytest

    from learndyn.sweep.runners import online as runner

    prob = online.Problem(M=1, K=1, activation="linear", lr=0.5)
    st = online.OrderParameters(Q=[[0.5]], R=[[0.1]], T=[[1.0]])
    real = online.integrate

    def interrupted(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), status="interrupted")

    monkeypatch.setattr(runner.online, "integrate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.ODE.call(prob, st, alpha_max=1.0, n_alpha=3, alpha_min=0.1)


def test_online_ode_cost_asks_the_activation_not_its_name(request):
    """The online.ode runner's cost estimate follows the activation's properties (closed-form integrals,
    homogeneity), so a registered activation with erf's closed forms costs like erf (it used to get ReLU's
    55 s per seed, by name); the built-ins keep their measured figures."""
    from learndyn import activations as A
    from learndyn.sweep.runners.online import ODE

    erf_family = type(A.get("erf").family)
    A.register(type("_CostProbe", (erf_family,), {"name": "cost_probe_erf"})(), replace=True)
    request.addfinalizer(lambda: A.unregister("cost_probe_erf"))
    opts = {"alpha_max": 3000.0, "method": "dopri8", "dt": None}

    def cost(activation, K=2, M=2):
        return ODE.cost(online.Problem(M=M, K=K, activation=activation), opts, 1)

    assert cost("erf") == pytest.approx(0.078 * 4) and cost("linear") == pytest.approx(0.035 * 4)
    assert cost("relu") == pytest.approx(55.0) and cost("tanh") == cost("relu") == cost("abrelu(-0.5, 1)")
    assert cost("cost_probe_erf") == cost("erf") and cost("cost_probe_erf", K=4) == cost("erf", K=4)
