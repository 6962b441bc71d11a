"""`learndyn reproduce xiao2020` recipes at CI size: figures write PNG + netCDF, claims print the table."""

import math

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from learndyn.cli import app
from learndyn.experiments import xiao2020


def test_cli_figure_signal_quick(tmp_path):
    res = CliRunner().invoke(app, ["reproduce", "xiao2020", "--figure", "signal", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "xiao2020_signal.png").stat().st_size > 10_000
    with xr.open_dataset(tmp_path / "xiao2020_signal.nc", engine="h5netcdf") as ds:
        crit = ds["critical_weight_var_erf"].values
        assert crit[0] == pytest.approx(math.pi / 4, rel=1e-6)  # sigma_b^2 = 0
        assert np.all(np.diff(crit) > 0)
        # the depth-scale curves lie along a named sigma_b^2 dimension (issue 13), not in flat names
        assert ds["xi_1"].dims == ("curve_bias_var", "weight_var")
        assert ds["curve_bias_var"].values == pytest.approx([0.05, 0.18])
        assert ds["weight_var"].size == ds["xi_1"].shape[1]


def test_cli_rejects_unknown_figure(tmp_path):
    res = CliRunner().invoke(app, ["reproduce", "xiao2020", "--figure", "nope", "--out", str(tmp_path)])
    assert res.exit_code != 0


def test_phase_diagram_tiny_shows_the_phases():
    """NTK-GD with NNGP noise on 48 digits: chaotic deep nets fit train but test falls towards chance,
    ordered deep nets fail to train at finite t, near-critical nets do both (spec §4.3 phenomenology)."""
    from learndyn import datasets

    ds = datasets.load("digits", n_train=48, n_test=100, seed=0)
    a = xiao2020.ntk_phase_diagram(ds, [0.8, 1.75, 3.0], [2, 40], bias_var=0.18, times=(4096.0, math.inf))
    tr_inf = a.train_accuracy.sel(time=math.inf).values
    te_inf = a.test_accuracy.sel(time=math.inf).values
    tr_4k = a.train_accuracy.sel(time=4096.0).values
    assert tr_inf[2, 1] == pytest.approx(1.0)          # chaotic, depth 40 (= 17 xi_*): memorises
    assert te_inf[2, 1] < 0.25                           # ... but does not generalise
    assert tr_4k[0, 1] < 0.5                             # ordered, depth 40 (= 19 xi_1): untrainable at t=4096
    # near critical: trains, and generalises far above chance (0.1) and far above the chaotic net
    assert tr_inf[1, 1] == pytest.approx(1.0)
    assert te_inf[1, 1] > 0.3 and te_inf[1, 1] > te_inf[2, 1] + 0.15


def test_claims_quick_prints_table(tmp_path, monkeypatch):
    """--claims --quick runs end to end on a reduced grid and prints every claim row."""
    small = xiao2020.PhaseConfig(n_train=48, n_test=60, weight_vars=(0.8, 3.0), depths=(2, 30),
                                 times=(64.0, math.inf), n_draws=1, sgd_weight_vars=(3.0,), sgd_depths=(2,),
                                 width=16, steps=40, batch_size=16)
    monkeypatch.setattr(xiao2020.PhaseConfig, "quick", lambda self: small)
    monkeypatch.setattr(xiao2020, "CNN_QUICK", dict(n_train=12, n_test=8, max_depth=8, n_depths=3, sgd=dict(
        n_train=24, n_test=16, weight_vars=(3.0,), depths=(2,), channels=4, steps=20)))
    res = CliRunner().invoke(app, ["reproduce", "xiao2020", "--claims", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for tag in ("(a) chaotic", "(b) ordered", "(c) critical", "(d) CNN-F", "(d) finite width"):
        assert tag in res.output
    assert "8 xi_*" in res.output
    with xr.open_dataset(tmp_path / "xiao2020_claims.nc", engine="h5netcdf") as ds:
        assert ds.sizes["row"] >= 5
    with xr.open_dataset(tmp_path / "xiao2020_claims_cnn.nc", engine="h5netcdf") as ds:
        assert ds["kappa"].dims == ("phase", "architecture", "depth")
        assert list(ds["architecture"].values) == ["fcn", "cnn_flatten", "cnn_gap"]
        assert ds["sgd_test_accuracy"].dims == ("sgd_architecture", "sgd_weight_var", "sgd_depth")


def test_phase_and_cnn_figures_tiny_write_paper_named_files(tmp_path, monkeypatch):
    """The phase and cnn figures (tiny grids) write xiao2020_<figure>.{png,nc}; the cnn file keeps the
    architectures and phases along named dimensions."""
    tiny = xiao2020.PhaseConfig(n_train=24, n_test=24, weight_vars=(0.8, 3.0), depths=(2, 6), times=(64.0, math.inf),
                                n_draws=1, sgd_weight_vars=(3.0,), sgd_depths=(2,), width=8, steps=10, batch_size=8)
    monkeypatch.setattr(xiao2020.PhaseConfig, "quick", lambda self: tiny)
    monkeypatch.setattr(xiao2020, "CNN_QUICK", dict(n_train=12, n_test=8, max_depth=4, n_depths=2, sgd=dict(
        n_train=16, n_test=8, weight_vars=(3.0,), depths=(2,), channels=4, steps=10)))
    for name in ("phase", "cnn"):
        png, nc = xiao2020.run_figure(name, out_dir=tmp_path, quick=True)
        assert png == tmp_path / f"xiao2020_{name}.png" and nc == tmp_path / f"xiao2020_{name}.nc"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xiao2020_cnn.nc", "xiao2020_cnn.png", "xiao2020_phase.nc",
                                                          "xiao2020_phase.png"]
    with xr.open_dataset(tmp_path / "xiao2020_cnn.nc", engine="h5netcdf") as ds:
        assert ds["kappa"].dims == ("phase", "architecture", "depth")
        assert ds["sgd_test_accuracy"].dims == ("sgd_architecture", "sgd_weight_var", "sgd_depth")
    with xr.open_dataset(tmp_path / "xiao2020_phase.nc", engine="h5netcdf") as ds:
        assert ds["ntk_train_accuracy"].dims == ("time", "weight_var", "depth")
