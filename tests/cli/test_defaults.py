"""One grammar across the command line (issue 11 item 10): figure names, output names, progress bars, ``--init``
and the agreement of every command's defaults with the Python defaults."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from learndyn import dmft, online, results
from learndyn.cli import app
from learndyn.experiments import canonical_figure, goldt2019, montanari2025, resolve_figures, xiao2020

runner = CliRunner()


# ------------------------------------------------------------------------------------------
# defaults: CLI == Python
# ------------------------------------------------------------------------------------------
def _field(cls, name):
    f = {x.name: x for x in dataclasses.fields(cls)}[name]
    assert f.default is not dataclasses.MISSING, f"{cls.__name__}.{name} has no default"
    return f.default


def _arg(fn, name):
    p = inspect.signature(fn).parameters[name]
    assert p.default is not inspect.Parameter.empty, f"{fn.__qualname__}({name}) has no default"
    return p.default


def _problem_options(command):
    return {(command, k): (online.Problem, k)
            for k in ("activation", "lr", "lr2", "sigma", "train_second_layer", "weight_decay")}


def _init_options(command):
    return {(command, "init"): (online.initial_weights, "init"),
            (command, "init_scale"): (online.initial_weights, "scale")}


_REPRODUCE = {"goldt2019": goldt2019, "montanari2025": montanari2025, "xiao2020": xiao2020}

#: (command, option) -> (the Python dataclass or function, its field/parameter); the CLI default must equal it.
#: ``None`` as the CLI default means "not passed on": the Python default applies (checked by the tests below).
PYTHON_DEFAULT = {
    **_problem_options("ode"), **_problem_options("simulate"), **_problem_options("compare"),
    **_init_options("ode"), **_init_options("simulate"), **_init_options("compare"),
    ("ode", "seed"): (online.initial_weights, "seed"),
    ("ode", "alpha_max"): (online.default_alphas, "alpha_max"),
    ("ode", "n_alphas"): (online.default_alphas, "n"),
    ("ode", "rtol"): (online.integrate, "rtol"),
    ("ode", "atol"): (online.integrate, "atol"),
    ("ode", "method"): (online.integrate, "method"),
    ("ode", "dt"): (online.integrate, "dt"),
    ("simulate", "seeds"): (online.simulate, "seeds"),
    ("simulate", "batch_size"): (online.simulate, "batch_size"),
    ("simulate", "test_set_size"): (online.simulate, "test_set_size"),
    ("compare", "seeds"): (online.compare, "seeds"),
    ("dmft", "tau"): (dmft.Problem, "tau"),
    ("dmft", "a0"): (dmft.Problem, "a0"),
    ("dmft", "scheme"): (dmft.solve_symmetric, "scheme"),
    ("signal", "activation"): ("learndyn.kernels.signal:signal_propagation", "activation"),
    ("signal", "weight_var"): ("learndyn.kernels.signal:signal_propagation", "weight_var"),
    ("signal", "bias_var"): ("learndyn.kernels.signal:signal_propagation", "bias_var"),
    **{(f"reproduce {p}", "quick"): (m.run_figure, "quick") for p, m in _REPRODUCE.items()},
    **{(f"reproduce {p}", "out"): (m.run_figure, "out_dir") for p, m in _REPRODUCE.items()},
    ("reproduce goldt2019", "N"): (goldt2019.run_figure, "N"),
    ("reproduce goldt2019", "seeds"): (goldt2019.run_figure, "seeds"),
    **{("kernels evaluate", k): ("learndyn.kernels.evaluation:evaluate", k)
       for k in ("n_train", "n_test", "reg", "sgd", "steps", "batch_size", "lr_factor", "seeds", "seed", "image_size",
                 "fallback", "kernel_batch_size", "store", "scheduler")},
    ("kernels evaluate", "workers"): ("learndyn.kernels.evaluation:evaluate", "n_workers"),
    ("kernels evaluate", "data"): ("learndyn.kernels.evaluation:evaluate", "data"),
}

#: options whose CLI default differs from, or has no counterpart in, the Python API, with the reason
CLI_DEFAULT = {
    ("dmft", "h"): (None, "not passed on: dmft.Problem's h"),
    ("dmft", "target"): ("none", "'none' = dmft.Problem's target=None"),
    ("dmft", "frozen"): (False, "--frozen = not dmft.Problem.train_second_layer (default True)"),
    ("dmft", "seeds"): (None, "not passed on: the simulator's default"),
    ("kernels evaluate", "depth"): (5, "a network for real data, not kernels.Problem's depth=1"),
    ("kernels evaluate", "activation"): ("relu", "ReLU at (2.0, 0.01), near the critical line, for real data"),
    ("kernels evaluate", "weight_var"): (2.0, "ReLU's critical sigma_w^2"),
    ("kernels evaluate", "bias_var"): (0.01, "a small bias variance, as Xiao et al. 2020"),
    ("kernels evaluate", "width"): (None, "not passed on: kernels.Problem's width (fcn) or channels (cnn)"),
    ("kernels evaluate", "t"): ([float("inf")], "evaluate's t=inf, as a repeatable option"),
    ("kernels evaluate", "kinds"): ("nngp,ntk", "evaluate's kinds=('nngp', 'ntk'), comma-separated"),
}
#: options the Python API has no default for (required there) or that only the command line has
CLI_ONLY = {
    "ode": {"M", "K", "N", "init_state", "out", "fixed_point", "progress"},
    "simulate": {"M", "K", "N", "alpha_max", "n_alphas", "out", "progress"},
    "compare": {"M", "K", "N", "alpha_max", "n_alphas", "out", "progress"},
    "dmft": {"m", "n_over_d", "t_max", "dt", "simulate", "d", "batch", "out", "progress"},
    "signal": set(),
    "version": set(),
    **{f"reproduce {p}": {"figure", "claims", "progress"} for p in _REPRODUCE},
    # the sweep package's commands: a config file and a store, no Python counterparts with defaults
    "sweep": {"config", "dry_run", "calibrate", "store", "scheduler", "workers", "threads_per_worker", "overwrite",
              "progress", "allow_import"},
    "sweep-status": {"store", "limit"},
    "sweep-runners": set(),
    "plot": {"store", "x", "y", "hue", "col", "sel", "logx", "logy", "out"},
    "kernels evaluate": {"arch", "out"},
}


def _commands():
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        if name in ("reproduce", "kernels"):
            for sub, c in cmd.commands.items():
                yield f"{name} {sub}", c
        else:
            yield name, cmd


def _python_default(target, name):
    if isinstance(target, str):
        import importlib

        mod, attr = target.split(":")
        target = getattr(importlib.import_module(mod), attr)
    return _field(target, name) if dataclasses.is_dataclass(target) else _arg(target, name)


def _same(cli, py):
    if hasattr(cli, "value"):  # enums
        cli = cli.value
    if isinstance(cli, os.PathLike):
        cli = os.fspath(cli)
    if isinstance(py, (int, float)) and not isinstance(py, bool) and isinstance(cli, (int, float, str)):
        return float(cli) == float(py)
    if isinstance(cli, str) and not isinstance(py, str) and py is not None:
        return str(cli) == str(py)
    return cli == py


def test_every_cli_default_equals_the_python_default():
    """Every option of every command is classified; the mapped ones have the Python default."""
    seen, wrong = set(), []
    for command, cmd in _commands():
        assert command in CLI_ONLY, f"new command {command!r}: classify its options in tests/test_cli.py"
        for p in cmd.params:
            key = (command, p.name)
            seen.add(key)
            if key in PYTHON_DEFAULT:
                py = _python_default(*PYTHON_DEFAULT[key])
                if not _same(p.default, py):
                    wrong.append(f"{command} --{p.name}: CLI {p.default!r}, Python {py!r}")
            elif key in CLI_DEFAULT:
                if p.default != CLI_DEFAULT[key][0]:
                    wrong.append(f"{command} --{p.name}: CLI {p.default!r}, expected {CLI_DEFAULT[key]}")
            else:
                assert p.name in CLI_ONLY[command], f"{command} --{p.name}: not classified in tests/test_cli.py"
    assert not wrong, "\n".join(wrong)
    assert set(PYTHON_DEFAULT) <= seen and set(CLI_DEFAULT) <= seen  # no stale entries


def test_dmft_cli_default_h_is_the_problem_default(tmp_path):
    """``learndyn dmft`` without --h solves dmft.Problem's default h = 0.9q + q^3/6:
    e(0) = (tau^2 + a0^2 h(1)/m)/2 with h(1) = 0.9 + 1/6 (it used h = 0.1q + 0.5q^2 before)."""
    out = tmp_path / "run"
    res = runner.invoke(app, ["dmft", "--m", "2", "--t-max", "0.1", "--dt", "0.05", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ds = results.load_dataset(out.with_suffix(".nc"))
    assert ds["train_error"].values[0] == pytest.approx(0.5 * (1.0 + (0.9 + 1 / 6) / 2), rel=1e-12)


# ------------------------------------------------------------------------------------------
# --init: the same start in ode, simulate and compare
# ------------------------------------------------------------------------------------------
def test_init_options_are_the_same_in_ode_simulate_compare():
    cmds = dict(_commands())
    opts = {c: {p.name: p for p in cmds[c].params} for c in ("ode", "simulate", "compare")}
    for name in ("init", "N", "init_scale"):
        defaults = {c: opts[c][name].default for c in opts}
        assert len(set(defaults.values())) == 1, (name, defaults)
        flags = {c: tuple(opts[c][name].opts[:1]) for c in opts}
        assert len(set(flags.values())) == 1, (name, flags)


def test_ode_simulate_compare_start_from_the_same_state(tmp_path):
    """``ode --init small --N 64 --seed 3`` starts where seed 3 of ``simulate``/``compare`` with the same options
    starts: the same Q, R (exact overlaps of the same weights) and the same eps_g(0)."""
    common = ["--M", "1", "--K", "2", "--activation", "linear", "--lr", "0.2", "--sigma", "0.1", "--init", "small",
              "--N", "64", "--alpha-max", "1", "--n-alphas", "2", "--no-progress"]
    r1 = runner.invoke(app, ["ode", *common, "--seed", "3", "--no-fixed-point", "--out", str(tmp_path / "ode")])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, ["simulate", *common, "--seeds", "4", "--out", str(tmp_path / "sim")])
    assert r2.exit_code == 0, r2.output
    r3 = runner.invoke(app, ["compare", *common, "--seeds", "4", "--out", str(tmp_path / "cmp")])
    assert r3.exit_code == 0, r3.output
    ode = results.load_dataset(tmp_path / "ode.nc")
    sim = results.load_dataset(tmp_path / "sim.nc").sel(seed=3).isel(alpha=0)
    cmp = results.load_dataset(tmp_path / "cmp.nc").sel(seed=3).isel(alpha=0)
    np.testing.assert_allclose(ode["Q"].values[0], sim["Q"].values, rtol=1e-12)
    np.testing.assert_allclose(ode["R"].values[0], sim["R"].values, rtol=1e-12)
    # "small": |w| = 1e-3 N(0,1), so Q ~ 1e-6 (the old private random start had Q ~ 1)
    assert np.all(np.diag(ode["Q"].values[0]) < 1e-4)
    assert ode["eg"].values[0] == pytest.approx(float(sim["eg"]), rel=1e-10)
    assert ode["eg"].values[0] == pytest.approx(float(cmp["eg_ode"]), rel=1e-10)


# ------------------------------------------------------------------------------------------
# reproduce: figure names, output names, progress
# ------------------------------------------------------------------------------------------
def test_one_figure_naming_with_the_old_spellings_as_aliases():
    assert list(goldt2019.FIGURES) == ["fig1", "fig2", "fig3", "fig4"]
    assert list(montanari2025.FIGURES) == ["fig2", "fig3", "fig4", "fig6", "fig7", "threshold"]
    for mod in (goldt2019, montanari2025, xiao2020):
        for name in mod.FIGURES:
            assert re.fullmatch(r"fig\d+|[a-z]+", name), name
    assert canonical_figure("2", montanari2025.FIGURES) == "fig2"  # the old montanari2025 spelling
    assert canonical_figure("Fig. 6", montanari2025.FIGURES) == "fig6"
    assert canonical_figure("1", goldt2019.FIGURES) == "fig1"
    assert canonical_figure("PHASE", xiao2020.FIGURES) == "phase"
    assert resolve_figures(["2,fig3", "fig2", "claims"], montanari2025.FIGURES) == (["fig2", "fig3"], True)
    assert resolve_figures(["all"], xiao2020.FIGURES) == (list(xiao2020.FIGURES), False)
    with pytest.raises(ValueError, match="fig5"):
        canonical_figure("fig5", montanari2025.FIGURES)


@pytest.mark.parametrize("paper", sorted(_REPRODUCE))
def test_reproduce_commands_share_one_grammar(paper, tmp_path):
    cmd = dict(_commands())[f"reproduce {paper}"]
    params = {p.name: p for p in cmd.params}
    assert {"figure", "claims", "quick", "out", "progress"} <= set(params)
    assert params["progress"].default is True  # progress bars on by default
    assert params["figure"].multiple
    res = runner.invoke(app, ["reproduce", paper, "--figure", "nope", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "nope" in res.output
    res = runner.invoke(app, ["reproduce", paper, "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--figure" in res.output


def test_montanari_old_figure_number_runs_with_the_new_file_names_and_a_progress_bar(tmp_path):
    """``--figure 6`` (old spelling) is accepted, writes montanari2025_fig6.{png,nc}; the progress bar is on by
    default (tqdm's 'n/total [' counter on stderr) and ``--no-progress`` turns it off."""
    res = runner.invoke(app, ["reproduce", "montanari2025", "--figure", "6", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "montanari2025_fig6.png").stat().st_size > 10_000
    ds = results.load_dataset(tmp_path / "montanari2025_fig6.nc")
    assert ds.attrs["figure"] == "fig6" and ds.sizes["run"] == 1 and int(ds["m"][0]) == 4
    assert re.search(r"\d+/\d+ \[", res.output), res.output
    res = runner.invoke(app, ["reproduce", "montanari2025", "--figure", "fig6", "--quick", "--no-progress",
                              "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert not re.search(r"\d+/\d+ \[", res.output)
