"""Sweep configs: models generated from the Problem dataclass, and the messages for invalid configs."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from learndyn import online, sweep

from . import toy  # noqa: F401 - registers the "toy" runner
from learndyn.sweep.config import config_models


def toml(text: str) -> str:
    return textwrap.dedent(text)


ODE = toml("""
    [sweep]
    runner = "online.ode"
    seeds = 2
    [problem]
    M = 2
    lr = 0.5
    [options]
    alpha_max = 50.0
    n_alpha = 10
    [grid]
    K = [1, 2, 3]
    activation = ["erf", "relu", "linear"]
""")


def errors_of(text: str) -> list[str]:
    with pytest.raises(sweep.ConfigError) as info:
        sweep.load_config(text)
    assert isinstance(info.value, ValueError)
    return info.value.errors


def test_valid_config_grid_and_points():
    cfg = sweep.load_config(ODE)
    assert cfg.dims == ("K", "activation") and cfg.shape == (3, 3) and cfg.size == 9
    assert cfg.seeds == (0, 1)
    problem, options = cfg.point(5)  # row-major: K index 1, activation index 2
    assert problem == online.Problem(M=2, K=2, activation="linear", lr=0.5)
    assert options["alpha_max"] == 50.0 and options["n_alpha"] == 10
    assert options["rtol"] == 1e-8  # default taken from online.integrate's signature
    assert cfg.coords(5) == {"K": 2, "activation": "linear"}


def test_models_are_generated_from_the_problem_dataclass():
    runner = sweep.get_runner("online.ode")
    models = config_models(runner)
    fields = {f.name for f in dataclasses.fields(online.Problem)}
    assert set(models["problem"].model_fields) == fields
    assert set(models["grid"].model_fields) == fields | set(runner.options)
    # a Problem field added later would appear without any change here: the model follows the class
    @dataclasses.dataclass(frozen=True)
    class P2:
        x: int
        y: float = 1.0

    r2 = dataclasses.replace(runner, problem=P2, field_types={}, options={})
    assert set(config_models(r2)["problem"].model_fields) == {"x", "y"}


def test_identity_is_stable_and_sensitive():
    a, b = sweep.load_config(ODE), sweep.load_config(ODE)
    assert a.identity_hash() == b.identity_hash()
    c = sweep.load_config(ODE.replace("lr = 0.5", "lr = 0.4"))
    assert c.identity_hash() != a.identity_hash()
    # an option left at its default and the same option set to the default are the same sweep
    d = sweep.load_config(ODE.replace("n_alpha = 10", "n_alpha = 10\nrtol = 1e-8"))
    assert d.identity_hash() == a.identity_hash()


@pytest.mark.parametrize("old, new, expected", [
    ("lr = 0.5", "lr = 0.5\nKk = 3",
     "problem.Kk: unknown key; allowed keys in [problem] are K, M, activation, lr, lr2,"),
    ("K = [1, 2, 3]", "K = [1, 2.5, 3]", "grid.K[1]: Input should be a valid integer, got 2.5; expected an integer"),
    ("K = [1, 2, 3]", "K = [1, 0, 3]", "grid.K[1]: must be a positive integer, got 0"),
    ("K = [1, 2, 3]", "K = []", "grid.K: List should have at least 1 item"),
    ("K = [1, 2, 3]", "K = [1, 2, 1]", "grid.K: repeated values [1]"),
    ("lr = 0.5", "lr = -1.0", "problem.lr: must be finite and > 0, got -1.0"),
    ("lr = 0.5", 'lr = "fast"', "problem.lr: Input should be a valid number, got 'fast'; expected a number"),
    ('"relu", "linear"]', '"relu", "swish"]',
     "grid.activation[2]: unknown name 'swish'; allowed are 'erf', 'relu', 'linear', 'tanh', 'sigmoid', 'leaky_relu'"),
    ("n_alpha = 10", 'n_alpha = 10\nmethod = "rk4"',
     "options.method: Input should be 'dopri5', 'dopri8', 'euler' or 'heun', got 'rk4'"),
    ("n_alpha = 10", 'n_alpha = 10\nmethod = "euler"', "options.dt: the fixed-step method 'euler' needs dt > 0"),
    ("n_alpha = 10", "n_alpha = 10\nalpha_min = 100.0", "options.alpha_min: must satisfy 0 < alpha_min < alpha_max"),
    ("n_alpha = 10", 'n_alpha = 10\ninit = "denoise"', "options.init: 'denoise' splits the teacher's"),
    ("M = 2\n", "", "problem.M: required (set it in [problem] or sweep it in [grid])"),
    ("lr = 0.5", "lr = 0.5\nK = 2", "grid.K: also set in [problem]; a key is either fixed or swept, not both"),
    ('runner = "online.ode"', 'runner = "online.odee"', "sweep.runner: unknown runner 'online.odee'; allowed are"),
    ("seeds = 2", "seeds = 0", "sweep.seeds: a number of seeds n >= 1 (seeds 0..n-1) or a non-empty list"),
    ("seeds = 2", "seeds = [1, 1]", "sweep.seeds: a number of seeds n >= 1"),
    ("[grid]", "[grids]", "grids: unknown table; allowed tables are sweep, problem, options, grid, zip, dask"),
    ("[grid]", "[dask]\nn_workers = 0\n[grid]", "dask.n_workers: Input should be greater than or equal to 1, got 0"),
])
def test_invalid_configs_name_the_key_and_what_is_allowed(old, new, expected):
    text = ODE.replace(old, new, 1)
    assert text != ODE
    errors = errors_of(text)
    assert any(e.startswith(expected) for e in errors), errors


def test_several_errors_are_reported_together_and_bad_toml():
    errors = errors_of(ODE.replace("lr = 0.5", "lr = 0.5\nfoo = 1\nsigma = true"))
    assert any(e.startswith("problem.foo: unknown key") for e in errors)
    assert any(e.startswith("problem.sigma: Input should be a valid number") for e in errors)
    assert errors_of("[sweep\nrunner=1")[0].startswith("config: not valid TOML")
    assert errors_of("[problem]\nM = 1")[0].startswith("sweep.runner: required")


def test_config_from_dict_and_file(tmp_path):
    path = tmp_path / "eg.toml"
    path.write_text(ODE)
    cfg = sweep.load_config(path)
    # no sweep.store: results/sweeps/<stem>.zarr under the working directory, not beside the config
    assert cfg.name == "eg" and cfg.store == Path("results") / "sweeps" / "eg.zarr"
    path.write_text(ODE.replace("seeds = 2", 'seeds = 2\nstore = "here.zarr"'))
    assert sweep.load_config(path).store == tmp_path / "here.zarr"  # sweep.store: relative to the config
    assert sweep.load_config(path, store="x.zarr").store == Path("x.zarr")  # --store wins
    again = sweep.load_config(cfg.to_dict())
    assert again.identity_hash() == cfg.identity_hash()


def test_runner_by_import_path_and_deterministic_runner_rejects_seeds():
    cfg = sweep.load_config({"sweep": {"runner": "tests.sweep.toy:TOY"}, "problem": {"a": 1.0},
                             "grid": {"n": [1, 2]}}, allow_import=True)
    assert cfg.shape == (2,) and cfg.runner.name == "toy"
    errors = errors_of(toml("""
        [sweep]
        runner = "toy"
        [grid]
        a = [1.0, 2.0]
        kind = ["sin", "tan"]
    """))
    assert errors == ["grid.kind[1]: unknown 'tan'; allowed are ['sin', 'cos']"]


ZIP = toml("""
    [sweep]
    runner = "dmft"
    [problem]
    tau = 1.0
    [options]
    dt = 0.5
    n_out = 5
    [grid]
    m = [2, 4, 8]
    a0 = [0.5, 1.0]
    [zip.m]
    n_over_d = [0.6, 1.2, 2.4]
    t_max = [4.0, 8.0, 16.0]
""")


def test_zip_tables_vary_keys_together_with_an_axis():
    cfg = sweep.load_config(ZIP)
    assert cfg.shape == (3, 2) and cfg.seeds == ()
    problem, options = cfg.point(5)  # m = 8, a0 = 1.0
    assert (problem.m, problem.n_over_d, problem.a0) == (8, 2.4, 1.0)
    assert options["t_max"] == 16.0
    assert cfg.coords(5) == {"m": 8, "a0": 1.0}
    assert "zip" in cfg.identity()
    changed = sweep.load_config(ZIP.replace("t_max = [4.0, 8.0, 16.0]", "t_max = [4.0, 8.0, 12.0]"))
    assert changed.identity_hash() != cfg.identity_hash()


@pytest.mark.parametrize("old, new, expected", [
    ("t_max = [4.0, 8.0, 16.0]", "t_max = [4.0, 8.0]", "zip.m.t_max: has 2 values but grid.m has 3"),
    ("[zip.m]", "[zip.tau]", "zip.tau: 'tau' is not a grid axis"),
    ("t_max = [4.0, 8.0, 16.0]", "tau = [1.0, 1.0, 2.0]", "zip.m.tau: also set in [problem]"),
    ("n_over_d = [0.6, 1.2, 2.4]", "n_over_d = [0.6, -1.2, 2.4]", "zip.m.n_over_d[1]: must be > 0"),
    ("t_max = [4.0, 8.0, 16.0]", 't_max = [4.0, "8", 16.0]', "zip.m.t_max[1]: Input should be a valid number"),
])
def test_invalid_zip_tables(old, new, expected):
    errors = errors_of(ZIP.replace(old, new))
    assert any(e.startswith(expected) for e in errors), errors
