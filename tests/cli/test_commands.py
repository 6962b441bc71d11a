"""The command-line package on the top floor (issue 13, item 3): entry points, the shared start of ``ode``/
``simulate``/``compare``, and ``learndyn dmft`` built from the public DMFT API."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from learndyn import dmft, online, results
from learndyn.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_console_script_and_python_m_reach_the_cli_package():
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["learndyn"]
    assert script == "learndyn.cli:main"
    mod, attr = script.split(":")
    assert callable(getattr(importlib.import_module(mod), attr))
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "learndyn", "version"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    from learndyn import __version__

    assert res.stdout.strip() == __version__


@pytest.mark.parametrize("init, seed", [("large", 1), ("informed", 2)])
def test_ode_and_simulate_start_from_the_public_initial_weights(tmp_path, init, seed):
    """``ode --init I --seed s`` and seed ``s`` of ``simulate --init I`` start from the exact overlaps of
    ``online.initial_weights(problem, N, I, s, scale=init_scale)``."""
    common = ["--M", "1", "--K", "2", "--activation", "erf", "--lr", "0.3", "--init", init, "--N", "40",
              "--init-scale", "0.01", "--alpha-max", "0.5", "--n-alphas", "2", "--no-progress"]
    r1 = runner.invoke(app, ["ode", *common, "--seed", str(seed), "--no-fixed-point", "--out", str(tmp_path / "o")])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, ["simulate", *common, "--seeds", str(seed + 1), "--out", str(tmp_path / "s")])
    assert r2.exit_code == 0, r2.output
    problem = online.Problem(M=1, K=2, activation="erf", lr=0.3)
    start = online.initial_weights(problem, 40, init, seed, scale=0.01).order_parameters()
    ode = results.load_dataset(tmp_path / "o.nc")
    sim = results.load_dataset(tmp_path / "s.nc").sel(seed=seed).isel(alpha=0)
    for name in ("Q", "R"):
        np.testing.assert_allclose(ode[name].values[0], getattr(start, name), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(sim[name].values, getattr(start, name), rtol=1e-12, atol=1e-15)


def test_dmft_command_with_a_gaussian_model_simulation(tmp_path):
    """``--simulate gaussian --seeds 3``: the DMFT file, the simulation file (loads back as the simulator's result,
    3 realisations on about 30 recorded times of the DMFT grid) and the figure; the simulation starts from the
    DMFT's a(0) = a0."""
    out = tmp_path / "run"
    res = runner.invoke(app, ["dmft", "--m", "2", "--h", "0,0.1,0.5", "--t-max", "1", "--dt", "0.05",
                              "--simulate", "gaussian", "--d", "12", "--seeds", "3", "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "simulation (gaussian_model, d=12, 3 runs)" in res.output
    sol = results.load(out.with_suffix(".nc"))
    sim = results.load(tmp_path / "run_sim.nc")
    assert isinstance(sim, dmft.gaussian_model.Simulation) and sim.kind == "gaussian_model" and sim.values("train_error").shape[0] == 3
    # 20 steps, at most 30 points: every step recorded, on the DMFT grid
    np.testing.assert_allclose(sim.t, sol.t, atol=1e-12)
    np.testing.assert_allclose(sim.mean("a")[0], 1.0, rtol=1e-12)
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_dmft_command_refuses_an_unknown_simulation_before_solving(tmp_path, monkeypatch):
    """``--simulate nope`` was refused only after the DMFT had been solved (from the recipe's simulator)."""

    def refuse(*a, **k):
        raise AssertionError("solved before checking --simulate")

    monkeypatch.setattr(dmft, "solve", refuse)
    res = runner.invoke(app, ["dmft", "--simulate", "nope", "--no-progress", "--out", str(tmp_path / "x")])
    text = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "--simulate" in text and "nope" in text, res.output
    assert not list(tmp_path.iterdir())
