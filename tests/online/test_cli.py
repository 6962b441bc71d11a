import numpy as np
import pytest
from typer.testing import CliRunner

from learndyn import online, results
from learndyn.cli import app

runner = CliRunner()


def test_every_command_has_help():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    assert runner.invoke(app, ["ode", "--help"]).exit_code == 0


def test_ode_command_writes_netcdf_and_png(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["ode", "--M", "1", "--K", "2", "--activation", "linear", "--lr", "0.2", "--sigma", "0.1",
                              "--alpha-max", "200", "--n-alphas", "20", "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run.png").stat().st_size > 1000
    ds = results.load_dataset(tmp_path / "run.nc")
    # first-layer linear student: eps_g* = K eta sigma^2 / (2 (2 - K eta)) (spec §4.2)
    assert ds["eg"].values[-1] == pytest.approx(online.eg_linear_first_layer(0.2, 0.1, 2), rel=1e-6)
    assert "eps_g* =" in res.output

    # the saved trajectory is a valid initial-state file for a second run
    # (--init-state; the old spelling --init FILE is still accepted)
    for flag, name in (("--init-state", "b"), ("--init", "c")):
        res2 = runner.invoke(app, ["ode", "--M", "1", "--K", "2", "--activation", "linear", "--lr", "0.2",
                                   flag, str(tmp_path / "run.nc"), "--alpha-max", "1", "--n-alphas", "3",
                                   "--no-progress", "--no-fixed-point", "--out", str(tmp_path / name)])
        assert res2.exit_code == 0, res2.output
        np.testing.assert_allclose(results.load(tmp_path / f"{name}.nc").to_xarray()["Q"].values[0], ds["Q"].values[0])


def test_ode_command_rejects_bad_input(tmp_path):
    res = runner.invoke(app, ["ode", "--lr", "-1", "--no-progress", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0
    assert "lr" in res.output
