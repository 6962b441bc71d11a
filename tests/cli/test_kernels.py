"""``learndyn kernels evaluate``: kernel regression on a real data set beside SGD, from the command line."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

import learndyn
from learndyn import kernels
from learndyn.cli import app

runner = CliRunner()


def test_evaluate_command_writes_result_plot_and_tables(tmp_path):
    out = tmp_path / "ev"
    res = runner.invoke(app, ["kernels", "evaluate", "--data", "digits", "--n-train", "60", "--n-test", "30",
                              "--depth", "2", "--width", "32", "--steps", "5", "--batch-size", "16", "--t", "3",
                              "--t", "inf", "--reg", "1e-8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "NNGP regression" in res.output and "NTK regression" in res.output and "SGD seed 0" in res.output
    assert "kernel train-train 60^2" in res.output and "total" in res.output and "status: success" in res.output
    ev = learndyn.load(out.with_suffix(".nc"))
    assert isinstance(ev, kernels.Evaluation) and ev.params["n_train"] == 60 and ev.params["reg_given"] == 1e-8
    np.testing.assert_array_equal(ev.t, [3.0, np.inf])
    p = kernels.Problem("fcn", depth=2, activation="relu", weight_var=2.0, bias_var=0.01, width=32, out_dim=10)
    assert kernels.Problem(**ev.params["problem"]) == p
    assert out.with_suffix(".png").stat().st_size > 5_000


def test_evaluate_command_cnn_gap_and_nngp_only(tmp_path):
    out = tmp_path / "cnn"
    res = runner.invoke(app, ["kernels", "evaluate", "--data", "digits", "--arch", "cnn-gap", "--n-train", "16",
                              "--n-test", "8", "--depth", "1", "--width", "4", "--image-size", "4", "--kinds", "nngp",
                              "--no-sgd", "--reg", "1e-6", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ev = learndyn.load(out.with_suffix(".nc"))
    assert ev.kinds == ("nngp",) and not ev.sgd and ev.params["problem"]["readout"] == "gap"
    assert ev.params["input_shape"] == [4, 4, 1]


def test_evaluate_command_refuses_bad_options(tmp_path):
    res = runner.invoke(app, ["kernels", "evaluate", "--data", "digits", "--kinds", "rbf", "--out",
                              str(tmp_path / "x")])
    assert res.exit_code != 0 and "kinds" in res.output
    res = runner.invoke(app, ["kernels", "evaluate", "--data", "digits", "--depth", "-1", "--out",
                              str(tmp_path / "x")])
    assert res.exit_code != 0 and "depth" in res.output
    (tmp_path / "d.nc").mkdir()
    res = runner.invoke(app, ["kernels", "evaluate", "--data", "digits", "--out", str(tmp_path / "d")])
    assert res.exit_code != 0 and "folder" in res.output
