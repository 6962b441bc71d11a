"""`learndyn sweep --dry-run`, `sweep-status`, `sweep-runners`, `plot`; the example configs validate."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from learndyn import sweep
from learndyn.cli import app
from learndyn.sweep.store import Store

from tests.sweep.test_store import TOY, compute_into

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "sweeps").glob("*.toml"))
runner = CliRunner()


def test_examples_exist():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_validate_and_dry_run(path, tmp_path):
    cfg = sweep.load_config(path)
    assert cfg.size >= 1
    result = runner.invoke(app, ["sweep", str(path), "--dry-run", "--store", str(tmp_path / "x.zarr")])
    assert result.exit_code == 0, result.output
    seeds = f" x {len(cfg.seeds)} seed(s)" if cfg.runner.seeded else ""
    assert f"grid: {cfg.size} points{seeds}; {cfg.size} to compute" in result.output
    assert "time: ~" in result.output and "memory: store ~" in result.output
    assert not (tmp_path / "x.zarr").exists()  # a dry run writes nothing


def test_invalid_config_exits_with_the_messages(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nrunner = "online.ode"\n[problem]\nM = 2\n[grid]\nK = [1, 0]\nlr = [0.1, "x"]\n')
    result = runner.invoke(app, ["sweep", str(bad), "--dry-run"])
    assert result.exit_code == 2
    assert "grid.lr[1]: Input should be a valid number, got 'x'; expected a number" in result.output


def test_status_and_plot_commands(tmp_path):
    cfg = sweep.load_config(TOY)
    path = tmp_path / "toy.zarr"
    with Store.create_or_open(path, cfg) as st:
        compute_into(st, [0, 1, 2])
    result = runner.invoke(app, ["sweep-status", str(path)])
    assert result.exit_code == 0, result.output
    assert "6 points: 3 done" in result.output and "3 pending" in result.output
    assert "pending: a=1.0, kind='cos'" in result.output
    out = tmp_path / "fig.png"
    result = runner.invoke(app, ["plot", str(path), "--x", "a", "--y", "y_mean", "--hue", "kind", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000
    result = runner.invoke(app, ["plot", str(path), "--x", "i", "--y", "y", "--sel", "kind=sin", "--hue", "a",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plot", str(path), "--x", "a", "--y", "y_mean"])
    assert result.exit_code == 2 and "varies along kind" in result.output
    result = runner.invoke(app, ["plot", str(path), "--x", "a", "--y", "y_mean", "--hue", "kind", "--sel", "a=9"])
    assert result.exit_code == 2


def test_runners_command_lists_keys():
    result = runner.invoke(app, ["sweep-runners"])
    assert result.exit_code == 0, result.output
    assert "online.ode:" in result.output and "online.sgd:" in result.output
    assert "N_init = 1000" in result.output and "lr (a number)" in result.output
