"""The DMFT on the shared spine: a frozen, hashable Problem; frozen results with a Status, message, success,
to_xarray / save / load; one name per concept (seeds, divergence_threshold); the DMFT beside a simulation
(dmft.compare)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import learndyn
from learndyn import dmft
from learndyn.dmft import gaussian_model as gm
from learndyn.dmft import networks as nw
from learndyn.results import InvalidInputError, Status

PN = dict(m=3, n_over_d=1.5, tau=1.0, a0=1.0, h=[0.0, 0.1, 0.5])


# ---------------------------------------------------------------------------------------------
# Problem
# ---------------------------------------------------------------------------------------------
def test_problem_is_hashable_and_equal_whatever_the_sequence_type():
    """Old code: lists and arrays were kept as passed, so hash(Problem(h=[...])) raised TypeError."""
    C0 = [[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0]]
    p = dmft.Problem(m=3, n_over_d=1.2, a0=[1.0, 0.5, -0.5], h=[0, 0.9, 0.5], target=[0, 0.3], C0=C0, v0=[0.1] * 3)
    q = dmft.Problem(m=3, n_over_d=1.2, a0=np.array([1.0, 0.5, -0.5]), h=(0.0, 0.9, 0.5), target=np.array([0, 0.3]),
                     C0=np.array(C0), v0=(0.1, 0.1, 0.1))
    assert p == q and hash(p) == hash(q) and len({p, q}) == 1
    assert p.h == (0.0, 0.9, 0.5) and p.target == (0.0, 0.3) and p.C0[0] == (1.0, 0.2, 0.2)
    assert p.replace(tau=0.5) != p and hash(p.replace(tau=0.5)) != hash(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.m = 4  # type: ignore[misc]


def test_initial_state_is_public_and_read_only():
    p = dmft.Problem(m=2, n_over_d=1.0, a0=[1.0, -0.5])
    a, C, v = p.initial_state
    np.testing.assert_array_equal(a, [1.0, -0.5])
    np.testing.assert_array_equal(C, np.eye(2))
    with pytest.raises(ValueError):
        a[0] = 3.0
    b = p.a0_vector
    b[0] = 3.0  # the copies stay writable
    assert p.initial_state[0][0] == 1.0


@pytest.mark.parametrize("kw", [dict(m=0), dict(n_over_d=-1.0), dict(h=[1.0, 0.5]), dict(a0=[1.0, 2.0])])
def test_invalid_problem_raises_the_package_error(kw):
    with pytest.raises(InvalidInputError):
        dmft.Problem(**(PN | kw))


# ---------------------------------------------------------------------------------------------
# results: frozen, Status, message, load back
# ---------------------------------------------------------------------------------------------
def test_solutions_are_frozen_with_a_status_enum():
    p = dmft.Problem(**PN)
    for method in ("symmetric", "general"):
        sol = dmft.solve(p, 0.5, 0.05, method=method)
        assert sol.status is Status.SUCCESS and sol.status == "success" and sol.success
        assert sol.message == ""
        with pytest.raises(dataclasses.FrozenInstanceError):
            sol.status = Status.FAILED  # type: ignore[misc]
    red = dmft.reduced.lazy_second_regime(dmft.Problem(m=8, n_over_d=4.0, a0=np.sqrt(8.0), h=[0, 0.3, 0.5]), 1.0, 0.05)
    assert red.status is Status.SUCCESS and red.success


def test_divergence_threshold_stops_the_march_with_the_data_kept():
    """One name (divergence_threshold) and a Status: old code had `blowup` and a free-text status."""
    p = dmft.Problem(**PN)
    with pytest.warns(RuntimeWarning, match="diverged"):
        sol = dmft.solve(p, 2.0, 0.05, divergence_threshold=0.3)  # |C_d(t, t)| = 1 exceeds it at the first step
    assert sol.status is Status.DIVERGED and not sol.success and sol.message.startswith("diverged at t = ")
    assert sol.t.size == 1 and sol.train_error.size == 1
    with pytest.warns(RuntimeWarning, match="diverged"):
        gen = dmft.solve(p, 2.0, 0.05, method="general", divergence_threshold=0.5)
    assert gen.status is Status.DIVERGED and gen.t.size == 1
    red = dmft.reduced.lazy_second_regime(dmft.Problem(m=8, n_over_d=4.0, a0=np.sqrt(8.0), h=[0, 0.3, 0.5]), 1.0,
                                          0.05, divergence_threshold=0.5)
    assert red.status is Status.DIVERGED and red.message.startswith("diverged at t = ")
    for bad in (0.0, -1.0, "big", True):
        with pytest.raises(InvalidInputError, match="divergence_threshold"):
            dmft.solve(p, 2.0, 0.05, divergence_threshold=bad)


def test_files_with_the_old_free_text_status_load(tmp_path):
    """Files written before the statuses were unified hold "ok" or "diverged at t = ..."."""
    p = dmft.Problem(**PN)
    sol = dmft.solve(p, 0.5, 0.05)
    for text, status, message in (("ok", Status.SUCCESS, ""), ("diverged at t = 0.3 (step 6): |C| or |R| = 2e3",
                                                                Status.DIVERGED, "diverged at t = 0.3 (step 6)"),
                                  ("interrupted at t = 0.2 (step 4 of 10): Ctrl-C", Status.INTERRUPTED, "interrupted")):
        ds = sol.to_xarray()
        ds.attrs.update(result_class="dmft.SymmetricSolution", status=text)
        del ds.attrs["message"]
        ds.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
        back = learndyn.load(tmp_path / "old.nc")
        assert isinstance(back, dmft.SymmetricSolution) and back.status is status
        assert back.message.startswith(message)
        np.testing.assert_array_equal(back.train_error, sol.train_error)


def test_old_simulation_files_with_a_realisation_dimension_load(tmp_path):
    sim = gm.simulate(dmft.Problem(m=2, n_over_d=2.0, target=[0, 0.5]), d=12, t_max=0.2, dt=0.05, seeds=2)
    ds = sim.to_xarray().rename({"seed": "realisation"})
    ds.attrs.update(result_class="dmft.Simulation", status="ok")
    ds.attrs["seed"] = 0
    ds.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    back = learndyn.load(tmp_path / "old.nc")
    assert isinstance(back, dmft.Simulation) and back.status is Status.SUCCESS and back.seeds == (0, 1)
    np.testing.assert_array_equal(back.train_error, sim.train_error)


# ---------------------------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------------------------
def test_a_seed_gives_the_same_run_whatever_the_other_seeds_and_the_chunking():
    """seeds: a number n (0..n-1) or a sequence of ints (old code: `realisations` here, `seeds` + `seed` for
    networks). Seed s is the same run in any company, order or chunk size."""
    p = dmft.Problem(m=2, n_over_d=2.0, tau=0.5, h=[0, 0.9, 0.5], target="activation")
    kw = dict(d=12, t_max=0.3, dt=0.05)
    ref = gm.simulate(p, seeds=4, **kw)
    assert ref.seeds == (0, 1, 2, 3) and ref.n_seeds == 4
    sub = gm.simulate(p, seeds=[3, 1], memory_gb=1e-6, **kw)  # one seed per chunk
    # the same draws give the same run; XLA may round a batch of 4 and a batch of 1 differently in the last bit
    # (seen with jax 0.7: 2e-16), while another seed's draws differ at O(1e-2)
    np.testing.assert_allclose(sub.train_error, ref.train_error[[3, 1]], rtol=1e-13, atol=0)
    np.testing.assert_array_equal(sub.to_xarray()["seed"].values, [3, 1])
    net = nw.simulate(p, seeds=3, **kw)
    net2 = nw.simulate(p, seeds=(2,), **kw)
    np.testing.assert_allclose(net2.train_error, net.train_error[[2]], rtol=1e-13, atol=0)
    for bad in (0, [], [1, 1], [-1], [0.5], "3", True):
        with pytest.raises(InvalidInputError, match="seeds"):
            gm.simulate(p, seeds=bad, **kw)


def test_simulations_take_the_dmft_problem_only():
    with pytest.raises(InvalidInputError, match="problem"):
        gm.simulate(gm.model_params(dmft.Problem(**PN)), d=12, t_max=0.3, dt=0.05, seeds=2)
    with pytest.raises(InvalidInputError, match="problem"):
        nw.simulate({"m": 2}, d=12, t_max=0.3, dt=0.05, seeds=2)


def test_relative_divergence_threshold_of_the_simulations():
    p = dmft.Problem(m=2, n_over_d=2.0, tau=1.0, a0=30.0, h=[0.0, 1.0, 0.5])
    sim = gm.simulate(p, d=10, t_max=50.0, dt=5.0, seeds=2, divergence_threshold=1e3)
    assert sim.status is Status.DIVERGED and "2 of 2 seeds diverged" in sim.message
    assert "divergence_threshold = 1000" in sim.message
    assert np.isfinite(sim.train_error[:, 0]).all() and np.isnan(sim.train_error[:, -1]).all()
    with pytest.raises(InvalidInputError, match="divergence_threshold"):
        nw.simulate(p, d=10, t_max=1.0, dt=0.1, seeds=2, divergence_threshold=0.0)


# ---------------------------------------------------------------------------------------------
# the DMFT beside a simulation
# ---------------------------------------------------------------------------------------------
def test_compare_gaussian_model_with_the_dmft_and_load_it_back(tmp_path):
    """Gaussian-model GD is the DMFT's own model: the gaps are O(1/d) plus noise, z_max = O(1)."""
    p = dmft.Problem(m=2, n_over_d=2.0, tau=0.5, a0=1.0, h=[0.0, 0.5, 0.5], target="activation")
    c = dmft.compare(p, 1.0, 0.05, d=40, seeds=24, record_every=5)
    assert isinstance(c, dmft.Comparison) and c.status is Status.SUCCESS and c.kind == "gaussian_model"
    sol = dmft.solve(p, 1.0, 0.05)
    np.testing.assert_allclose(c.dmft_at("train_error"), sol.train_error[::5], rtol=1e-12)
    np.testing.assert_allclose(c.dmft_at("test_error")[0], 0.5 * (0.25 + 1.0 + 1.0 / 2.0), rtol=1e-12)  # e_ts(0)
    assert c.z_max("train_error") < 4.0 and c.z_max("test_error") < 4.0
    gap, se = c.final_gap("test_error")
    assert abs(gap) < 4 * se + 0.02
    c.save(tmp_path / "c.nc")
    back = learndyn.load(tmp_path / "c.nc")
    assert isinstance(back, dmft.Comparison) and back.simulation.seeds == tuple(range(24))
    np.testing.assert_array_equal(back.z("train_error"), c.z("train_error"))
    assert "DMFT vs gaussian_model" in c.summary()


def test_compare_linear_network_agrees_with_the_dmft():
    """A linear activation makes the real network the Gaussian model (Montanari & Urbani 2025, App. D.4): full-batch
    GD and SGD agree with the DMFT within their standard errors."""
    p = dmft.Problem(m=3, n_over_d=1.6, tau=0.6, a0=1.0, h=[0.0, 1.0])
    gd = dmft.compare(p, 1.5, 0.05, d=40, seeds=24, kind="network", record_every=10)
    assert gd.kind == "network_gd" and gd.z_max("train_error") < 4.0 and gd.z_max("test_error") < 4.0
    sgd = dmft.compare(p, 1.5, 0.05, d=40, seeds=24, kind="network", batch=64, lr=0.2, solution=gd_solution(p))
    assert sgd.kind == "network_sgd" and sgd.simulation.settings["batch"] == 64


def gd_solution(p):
    return dmft.solve(p, 1.5, 0.05)


def test_compare_validates_and_reports_a_failed_dmft():
    p = dmft.Problem(m=2, n_over_d=2.0, h=[0.0, 1.0])
    with pytest.raises(InvalidInputError, match="kind"):
        dmft.compare(p, 1.0, 0.05, d=10, seeds=2, kind="sgd")
    with pytest.raises(InvalidInputError, match="batch"):
        dmft.compare(p, 1.0, 0.05, d=10, seeds=2, batch=4)
    with pytest.raises(InvalidInputError, match="solution"):
        dmft.compare(p, 1.0, 0.05, d=10, seeds=2, solution=dmft.solve(p.replace(tau=0.5), 1.0, 0.05))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bad = dmft.solve(p, 1.0, 0.05, divergence_threshold=0.3)
    c = dmft.compare(p, 1.0, 0.05, d=10, seeds=2, solution=bad)
    assert c.status is Status.DIVERGED and c.message.startswith("DMFT: diverged at t = ")
    assert np.isnan(c.dmft_at("train_error")[1:]).all()


def test_pooled_sem_uses_the_relative_spread_of_all_times():
    x = np.array([[1.0, 10.0], [3.0, 30.0]])  # relative sd sqrt(2)/2 at both times
    np.testing.assert_allclose(dmft.pooled_sem(x), np.array([2.0, 20.0]) * (np.sqrt(2) / 2) / np.sqrt(2))


def test_the_old_seed_keywords_are_gone():
    """One name for the seeds: the simulators' old `realisations=R` / `seed=s` keywords (deprecated while callers
    moved to seeds=) are refused, so a stale call fails loudly instead of silently meaning something else."""
    p = dmft.Problem(m=2, n_over_d=2.0, h=[0.0, 1.0])
    kw = dict(d=10, t_max=0.2, dt=0.05)
    with pytest.raises(TypeError, match="realisations"):
        gm.simulate(p, realisations=2, **kw)
    with pytest.raises(TypeError, match="seed"):
        gm.simulate(p, seeds=2, seed=0, **kw)
    with pytest.raises(TypeError, match="seed"):
        nw.simulate(p, seeds=2, seed=3, **kw)
    with pytest.raises(TypeError, match="realisation"):
        nw.simulate(p, realisation=2, **kw)


def test_comparison_of_a_general_solution_uses_the_neuron_mean():
    p = dmft.Problem(m=2, n_over_d=1.5, a0=[1.0, -0.5], h=[0.0, 0.1, 0.5])
    sol = dmft.solve(p, 0.6, 0.05)
    assert isinstance(sol, dmft.GeneralSolution)
    sim = gm.simulate(p, d=16, t_max=0.6, dt=0.05, seeds=3, record_every=4)
    c = dmft.comparison_of(p, sol, sim)
    np.testing.assert_allclose(c.dmft_at("a"), sol.a.mean(axis=1)[::4], rtol=1e-12)
    np.testing.assert_allclose(c.mean("a")[0], 0.25, rtol=1e-12)  # mean of a_i(0) = (1 - 0.5)/2
    with pytest.raises(InvalidInputError, match="simulation"):
        dmft.comparison_of(p, sol, sol)


# ---------------------------------------------------------------------------------------------
# numerical failure is a status on the result (with the partial data), never an exception
# ---------------------------------------------------------------------------------------------
def test_mean_field_ode_reports_an_overflow_through_its_status():
    """Old code raised RuntimeError("mean_field_ode: Required step size is less than spacing between numbers.")."""
    p = dmft.Problem(m=4, n_over_d=2.0, tau=0.5, a0=1e200, target="activation", v0=0.3, train_second_layer=False)
    sol = dmft.reduced.mean_field_ode(p, np.linspace(0.0, 1.0, 11))
    assert sol.status is Status.NONFINITE and not sol.success
    assert sol.message.startswith("mean_field_ode: the right-hand side became non-finite at t = 0")
    # the initial state is kept (the integrator failed on its first step)
    np.testing.assert_array_equal(sol.t, [0.0])
    np.testing.assert_array_equal(sol.v, [0.3])
    np.testing.assert_array_equal(sol.a, [1e200])
    ok = dmft.reduced.mean_field_ode(p.replace(a0=1.0), np.linspace(0.0, 1.0, 11))
    assert ok.status is Status.SUCCESS and ok.message == "" and ok.t.size == 11


def test_richardson_returns_a_result_and_reports_a_diverged_solve(tmp_path):
    """Old code: a dict, and RuntimeError("richardson: a solve failed: ...") when either solve blew up. Here the
    coarse step is 1.3 x the explicit-Euler limit (the coarse solve diverges), the fine one 0.65 x (stable)."""
    p = dmft.Problem(m=4, n_over_d=1.5, tau=1.0, a0=3.0, h=[0, 0.1, 0.5], train_second_layer=False)
    dt = 1.3 * dmft.step_limits(p).dt_max("euler")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = dmft.richardson(p, 300 * dt, dt, allow_unstable=True)
    assert isinstance(r, dmft.RichardsonSolution)
    assert r.status is Status.DIVERGED and not r.success
    assert r.message.startswith(f"richardson: the coarse solve (dt = {dt:g}) stopped: diverged at t = ")
    assert r.coarse.status is Status.DIVERGED and r.fine.success
    n = r.coarse.t.size
    assert 2 <= n < 300 and r.t.size == n
    np.testing.assert_array_equal(r.t, r.coarse.t)
    for name in ("train_error", "test_error", "a", "v"):  # the estimate on the steps both solves reached
        np.testing.assert_array_equal(getattr(r, name),
                                      2.0 * getattr(r.fine, name)[::2][:n] - getattr(r.coarse, name))
    path = tmp_path / "r.nc"
    r.save(path)
    back = learndyn.load(path)
    assert isinstance(back, dmft.RichardsonSolution) and back.status is Status.DIVERGED and back.message == r.message
    assert back.problem == p and back.dt == r.dt and back.coarse is None
    np.testing.assert_array_equal(back.train_error, r.train_error)


def test_ctrl_c_in_richardson_skips_the_fine_solve():
    """Old code ran the 8x costlier fine solve after the interrupted coarse one, then raised RuntimeError."""
    import os
    import signal
    import threading
    import time

    p = dmft.Problem(**PN)
    sent = []
    timer = threading.Timer(0.8, lambda: (sent.append(time.perf_counter()), os.kill(os.getpid(), signal.SIGINT)))
    timer.start()
    try:
        with pytest.warns(RuntimeWarning, match="interrupted"):
            r = dmft.richardson(p, 30.0, 0.01)
        done = time.perf_counter()
    finally:
        timer.cancel()
    assert sent, "the coarse solve finished before the interrupt: make it longer"
    assert done - sent[0] < 2.0
    assert r.status is Status.INTERRUPTED and "coarse solve" in r.message and r.fine is None and r.t.size == 0
    assert r.coarse.status is Status.INTERRUPTED and r.coarse.t.size >= 2


def test_one_name_per_concept_on_the_results():
    """The `ok` (= success) and `realisations` (= n_seeds) aliases are gone."""
    p = dmft.Problem(**PN)
    for res in (dmft.solve(p, 0.5, 0.05), dmft.solve(p, 0.5, 0.05, method="general"),
                dmft.reduced.mean_field_ode(dmft.Problem(m=4, n_over_d=2.0, target="activation", v0=0.3), [0.0, 1.0]),
                gm.simulate(p, 20, 0.5, 0.05, seeds=2)):
        assert res.success and not hasattr(res, "ok")
    assert not hasattr(gm.simulate(p, 20, 0.5, 0.05, seeds=2), "realisations")
