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
    # first-layer linear student: eps_g* = K eta sigma^2 / (2 (2 - K eta)) (the fixed point of d eps/d alpha = -K eta (2 - K eta) eps + K^2 eta^2 sigma^2 / 2)
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


@pytest.mark.parametrize("args, option", [(["--alpha-max", "-5"], "--alpha-max"), (["--alpha-max", "nan"], "--alpha-max"),
                                          (["--n-alphas", "0"], "--n-alphas")])
def test_ode_command_rejects_bad_times_by_option_name(tmp_path, args, option):
    """--alpha-max -5 leaked a NumPy RuntimeWarning and blamed 'alphas'; --n-alphas 0 'succeeded' and
    reported a fixed point found from the unintegrated initial state."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked warning would become the error
        res = runner.invoke(app, ["ode", *args, "--no-progress", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2, res.output
    assert option in res.output and "eps_g*" not in res.output
    assert not (tmp_path / "x.nc").exists()


def test_ode_command_reports_eps_g_below_the_accuracy_floor(tmp_path):
    """README main job: K = M = 2, erf, sigma = 0 learns the teacher perfectly; eps_g(1000) printed as 1.57e-12
    (rounding noise). Values under the floor are reported as such; those above it are accurate (checked
    against the same start integrated at rtol 1e-13)."""
    from learndyn.cli import online as ode_cli

    out = tmp_path / "ode"
    res = runner.invoke(app, ["ode", "--M", "2", "--K", "2", "--activation", "erf", "--lr", "0.5", "--alpha-max", "1000",
                              "--n-alphas", "80", "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "eps_g(alpha=1000) = < 1e-09 (below the accuracy floor" in res.output
    assert "eps_g* = < 1e-09" in res.output
    ds = results.load_dataset(tmp_path / "ode.nc")
    prob = online.Problem(M=2, K=2, activation="erf", lr=0.5)
    start = online.OrderParameters(Q=ds["Q"].values[0], R=ds["R"].values[0], T=ds["T"].values)
    traj = online.integrate(prob, start, alphas=ds["alpha"].values, rtol=1e-8, atol=1e-12)
    ref = online.integrate(prob, start, alphas=ds["alpha"].values, rtol=1e-13, atol=1e-16)
    floor = ode_cli.accuracy_floor(traj)
    assert floor == pytest.approx(1e-9, rel=0.1)
    shown = traj.eg >= floor
    assert shown.sum() > 40 and (~shown).sum() > 5  # the tail is noise, the rest is data
    np.testing.assert_allclose(traj.eg[shown], ref.eg[shown], rtol=1e-2)
    assert np.max(np.abs(traj.eg[~shown] - ref.eg[~shown])) < floor


def test_simulate_with_one_seed_prints_no_nan_standard_error(tmp_path):
    # the CLI default is the Python default, one seed, which has no standard error: it printed "+- nan"
    res = runner.invoke(app, ["simulate", "--M", "1", "--K", "1", "--N", "50", "--alpha-max", "1", "--n-alphas", "3",
                              "--no-progress", "--out", str(tmp_path / "sim")])
    assert res.exit_code == 0, res.output
    assert "nan" not in res.output and "one seed" in res.output
