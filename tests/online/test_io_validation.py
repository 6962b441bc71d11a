"""online: output paths checked before the run, failed saves that do not lose the result, memory checks
before allocating, and one-line errors naming the parameter for bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import learndyn
from learndyn import online
from learndyn.cli import app
from learndyn.online import ode as ode_mod
from learndyn.online import sgd_engine
from learndyn.resources import InsufficientMemoryError

runner = CliRunner()


def _text(res) -> str:
    """The command's output with the error box's borders and line breaks removed."""
    return " ".join(res.output.replace("│", " ").split())
PROB = online.Problem(M=2, K=2, activation="erf", lr=0.5)


def _no_compute(monkeypatch):
    """Make any attempt to start the simulation fail loudly (the check must come first)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the simulation started before the check")

    monkeypatch.setattr(sgd_engine, "program", refuse)


# ------------------------------------------------------------------------------------------------
# save paths
# ------------------------------------------------------------------------------------------------
def test_simulate_checks_the_save_path_before_running(tmp_path, monkeypatch):
    _no_compute(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"^save_path: cannot write"):
        online.simulate(PROB, 50, alpha_max=1, save_path=blocker / "out.nc")
    notes = tmp_path / "notes.nc"
    notes.write_text("keep me")
    with pytest.raises(ValueError, match=r"^save_path: .* not a netCDF file"):
        online.simulate(PROB, 50, alpha_max=1, save_path=notes)
    assert notes.read_text() == "keep me"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(tmp_path) else real_access(p, m))
    with pytest.raises(ValueError, match=r"^save_path: .* not writable"):
        online.simulate(PROB, 50, alpha_max=1, save_path=tmp_path / "out.nc")


def _failing_replace(monkeypatch, calls):
    def replace(src, dst):
        calls.append(dst)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)


def test_simulate_returns_its_result_when_the_final_save_fails(tmp_path, monkeypatch):
    calls: list = []
    _failing_replace(monkeypatch, calls)
    path = tmp_path / "run.nc"
    with pytest.warns(RuntimeWarning, match=r"run.nc was not written: .*No space left.*the result is returned"):
        sim = online.simulate(PROB, 50, alpha_max=1, seeds=2, save_path=path)
    assert calls and sim.status == "success" and np.all(np.isfinite(sim.eg))
    assert "No space left" in sim.save_error and str(path) in sim.save_error
    assert not path.exists() and [p for p in tmp_path.iterdir()] == []  # no temporary file left behind


def test_a_failing_periodic_save_does_not_abort_the_run(tmp_path, monkeypatch):
    calls: list = []
    _failing_replace(monkeypatch, calls)
    with pytest.warns(RuntimeWarning, match="periodic save failed; the run continues") as rec:
        sim = online.simulate(PROB, 50, alphas=np.arange(0.0, 6.0), seeds=2, save_path=tmp_path / "p.nc",
                              save_every=1e-9)
    assert sim.alpha.size == 6 and sim.status == "success" and sim.save_error
    assert len(calls) >= 5  # tried at every record and at the end
    assert sum("was not written" in str(w.message) for w in rec) == 1  # one warning for the same failure


def test_simulate_save_round_trip(tmp_path):
    sim = online.simulate(PROB, 50, alpha_max=1, seeds=2, save_path=tmp_path / "s.nc")
    assert sim.save_error == ""
    back = learndyn.load(tmp_path / "s.nc")
    assert isinstance(back, online.Simulation) and back.problem == PROB
    np.testing.assert_array_equal(back.Q, sim.Q)


def test_cli_checks_out_before_computing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")

    def refuse(*a, **k):
        raise AssertionError("integrated before checking --out")

    monkeypatch.setattr(ode_mod, "integrate", refuse)
    res = runner.invoke(app, ["ode", "--M", "1", "--K", "1", "--no-progress", "--out", str(blocker / "r")])
    assert res.exit_code == 2 and "--out" in _text(res) and "not a folder" in _text(res)
    _no_compute(monkeypatch)
    for cmd in ("simulate", "compare"):
        res = runner.invoke(app, [cmd, "--M", "1", "--K", "1", "--N", "20", "--no-progress", "--out",
                                  str(blocker / "r")])
        assert res.exit_code == 2 and "not a folder" in _text(res), (cmd, res.output)


# ------------------------------------------------------------------------------------------------
# memory
# ------------------------------------------------------------------------------------------------
def test_simulate_refuses_too_much_memory_before_allocating(monkeypatch):
    _no_compute(monkeypatch)
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "64M")
    with pytest.raises(InsufficientMemoryError, match=r"online.simulate\(N=1000000, 4 seeds.*reduce N or the number "
                                                      r"of seeds"):
        online.simulate(PROB, 10**6, alpha_max=1e-5, seeds=4)
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "0")  # off
    with pytest.raises(AssertionError, match="started before the check"):
        online.simulate(PROB, 10**6, alpha_max=1e-5, seeds=4)


def test_integrate_refuses_large_K_before_compiling(monkeypatch):
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "1G")

    def refuse(*a, **k):
        raise AssertionError("compiled before the check")

    monkeypatch.setattr(ode_mod, "rhs", refuse)  # traced when the right-hand side compiles
    K = 300
    init = online.OrderParameters(Q=np.eye(K), R=np.zeros((K, 2)), T=np.eye(2))
    with pytest.raises(InsufficientMemoryError, match=r"online.integrate\(K=300.*needs about .*GiB.*reduce K"):
        online.integrate(online.Problem(M=2, K=K), init, alpha_max=1.0)
    # the estimate grows like K^2 (K+M)^2: K=300 needs hundreds of GiB
    assert ode_mod.integrate_bytes(online.Problem(M=2, K=K), 10) > 500 * 2**30


_PEAK = r"""
import sys
import numpy as np
import learndyn.online as o
from learndyn.online.ode import integrate_bytes
from learndyn.online.sgd import simulate_bytes
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key))
def vmrss():
    return status("VmRSS:")
def peak():  # this process's high-water mark (ru_maxrss would include the parent's from before exec)
    return status("VmHWM:")
kind = sys.argv[1]
if kind == "ode":
    o.integrate(o.Problem(M=1, K=1), o.OrderParameters(Q=[[1.0]], R=[[0.0]], T=[[1.0]]), alphas=[0, 1.0])
    base = max(vmrss(), peak())
    p = o.Problem(M=2, K=24)
    rng = np.random.default_rng(0)
    init = o.OrderParameters.from_weights(rng.standard_normal((24, 400)), rng.standard_normal((2, 400)))
    o.integrate(p, init, alphas=[0, 0.5, 1.0])
    est = integrate_bytes(p, 4)
else:
    p = o.Problem(M=2, K=4)
    o.simulate(p, 100, alpha_max=0.1, seeds=4)
    base = max(vmrss(), peak())
    N = 400_000
    alphas = np.arange(0, 21) / N
    o.simulate(p, N, alphas=alphas, seeds=4)
    est = simulate_bytes(p, N, 4, len(alphas))
print(peak() - base, est)
"""


@pytest.mark.parametrize("kind", ["ode", "sgd"])
def test_memory_estimate_within_1_5x_of_the_measured_peak(kind):
    """The estimates against the growth of the peak resident memory of a fresh process (after a warm-up
    run that loads and compiles everything of fixed size)."""
    env = dict(os.environ, LEARNDYN_JAX_CACHE="0", LEARNDYN_MEMORY_LIMIT="0")
    out = subprocess.run([sys.executable, "-c", _PEAK, kind], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    measured, estimate = (float(x) for x in out.stdout.split()[-2:])
    assert measured > 0
    assert 1 / 1.5 <= estimate / measured <= 1.5, (measured, estimate)


# ------------------------------------------------------------------------------------------------
# one-line ValueErrors naming the parameter
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: online.OrderParameters(Q="abc", R=[[0.0]], T=[[1.0]]), r"^Q: .*string 'abc'"),
    (lambda: online.OrderParameters(Q=[[1.0]], R="x", T=[[1.0]]), r"^R: "),
    (lambda: online.OrderParameters(Q=[[1.0]], R=[[0.0]], T=[["a"]]), r"^T: "),
    (lambda: online.OrderParameters(Q=[[1.0]], R=[[0.0]], T=[[1.0]], v={"a": 1}), r"^v: "),
])
def test_order_parameters_reject_non_numbers(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("kw, match", [
    (dict(rtol="x"), r"^rtol: must be a finite number > 0, got 'x'"), (dict(atol=float("nan")), r"^atol: "),
    (dict(rtol=None), r"^rtol: "), (dict(max_steps=0), r"^max_steps: "), (dict(max_steps=2.5), r"^max_steps: "),
    (dict(method="euler", dt="big"), r"^dt: "), (dict(divergence_threshold=float("nan")), r"^divergence_threshold"),
    (dict(alpha_max="a"), r"^alpha_max: "),
])
def test_integrate_rejects_bad_arguments(kw, match):
    init = online.OrderParameters(Q=[[1.0]], R=[[0.0]], T=[[1.0]])
    kw = {"alpha_max": 1.0, **kw}
    with pytest.raises(ValueError, match=match):
        online.integrate(online.Problem(M=1, K=1), init, **kw)


@pytest.mark.parametrize("kw, match", [
    (dict(seeds=[2**63]), r"^seeds: must be below 2\*\*63"), (dict(seeds=[2**64 + 1]), r"^seeds: "),
    (dict(max_seconds_per_call=float("nan")), r"^max_seconds_per_call: "),
    (dict(max_seconds_per_call="x"), r"^max_seconds_per_call: "), (dict(max_seconds_per_call=0), r"^max_seconds"),
    (dict(max_seconds_per_call=float("inf")), r"^max_seconds_per_call: must be a finite number of seconds > 0"),
    (dict(divergence_threshold="x"), r"^divergence_threshold: "),
    (dict(save_path="x.nc", save_every=float("nan")), r"^save_every: "),
    (dict(save_path=3), r"^save_path: expected a file path"),
])
def test_simulate_rejects_bad_arguments(kw, match, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    _no_compute(monkeypatch)
    with pytest.raises(ValueError, match=match):
        online.simulate(PROB, 50, alpha_max=1, **kw)


def test_cli_init_file_and_init_N(tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    res = runner.invoke(app, ["ode", "--M", "1", "--K", "1", "--init", str(bad), "--no-progress", "--out",
                              str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a netCDF file" in _text(res) and "Traceback" not in res.output
    res = runner.invoke(app, ["ode", "--M", "1", "--K", "1", "--init-N", "0", "--no-progress", "--out",
                              str(tmp_path / "o")])
    assert res.exit_code == 2 and "N: must be a positive integer" in _text(res)
    res = runner.invoke(app, ["simulate", "--M", "1", "--K", "1", "--init", str(bad), "--no-progress", "--out",
                              str(tmp_path / "o")])
    assert res.exit_code == 2 and "init" in _text(res) and "Traceback" not in res.output


@pytest.mark.parametrize("kw, match", [
    (dict(seed=-1), r"^seed: "), (dict(seed="x"), r"^seed: "), (dict(scale="x"), r"^scale: "),
    (dict(v_teacher=[["a"]]), r"^v_teacher: "),
])
def test_initial_weights_reject_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        online.initial_weights(PROB, 10, **kw)
    with pytest.raises(ValueError, match=r"^w: .*string"):
        online.InitialWeights(w="abc", v=None, w_teacher=[[1.0]], v_teacher=None)


def test_initial_weights_refuse_too_much_memory(monkeypatch):
    monkeypatch.setenv("LEARNDYN_MEMORY_LIMIT", "16M")
    with pytest.raises(InsufficientMemoryError, match=r"initial_weights\(N=1000000, K=2, M=2\).*reduce N"):
        online.initial_weights(PROB, 10**6)
    assert online.initial_weights(PROB, 1000).w.shape == (2, 1000)
