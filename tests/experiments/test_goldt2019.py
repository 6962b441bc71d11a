"""Goldt et al. 2019 recipes: solution classifier, final-error estimate, trend rule, and the quick CLI run."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from learndyn import results
from learndyn.cli import app
from learndyn.experiments import goldt2019 as G


def test_classify_solution_types():
    T, vt = np.eye(2), np.array([1.0, 1.0])
    # specialised: one student per teacher
    s = G.classify_solution(np.eye(2), np.eye(2), T, np.ones(2), vt)
    assert s["kind"] == "specialised" and s["groups"] == {0: [0], 1: [1]}
    # denoising copies: units 0, 2 copy teacher 0, units 1, 3 copy teacher 1, with split output weights
    owner = np.array([0, 1, 0, 1])
    R = T[owner]
    Q = R @ R.T
    s = G.classify_solution(Q, R, T, np.full(4, 0.5), vt)
    assert s["kind"] == "denoising copies" and s["groups"] == {0: [0, 2], 1: [1, 3]}
    assert "sum +1.00" in s["detail"]
    # two specialised units and an inactive extra unit (zero output weight)
    R3 = np.vstack([np.eye(2), [[0.3, 0.1]]])
    Q3 = np.eye(3)
    s = G.classify_solution(Q3, R3, T, np.array([1.0, 1.0, 0.0]), vt)
    assert s["kind"] == "specialised + 1 inactive" and s["inactive"] == [2]
    # the Saad-Solla plateau: every unit overlaps equally with both teachers
    q, r = 1 / 3, 1 / math.sqrt(6)
    s = G.classify_solution(np.full((2, 2), q) + np.eye(2) * 0, np.full((2, 2), r), T, np.ones(2), vt)
    assert s["kind"] == "unspecialised"


def test_final_error_and_trend():
    alpha = np.concatenate([[0.0], np.logspace(-1, 3, 41)])
    vals = np.vstack([np.where(alpha >= 99.99, 2.0, 5.0), np.where(alpha >= 99.99, 4.0, 5.0)])
    m, se = G.final_error(vals, alpha)  # last quarter of the log axis: alpha >= 100
    assert m == pytest.approx(3.0) and se == pytest.approx(1.0)
    x = np.array([2, 3, 4])
    assert G.trend(x, np.array([1.0, 1.5, 2.0]), np.full(3, 0.01)) == "grows"
    assert G.trend(x, np.array([2.0, 1.5, 1.0]), np.full(3, 0.01)) == "falls"
    assert G.trend(x, np.array([1.0, 1.02, 1.05]), np.full(3, 0.01)) == "stays constant"
    assert G.trend(x, np.array([1.0, 1.5, 2.0]), np.full(3, 1.0)) == "stays constant"  # within errors


def test_recipes_are_declarative_and_valid():
    for name, fig in G.FIGURES.items():
        assert fig.kind in ("curves", "sweep", "specialisation") and fig.runs
        for run in fig.runs:
            run.make_problem()  # every recipe is a valid Problem
            q = run.quick()
            assert q.N <= 100 and q.seeds == 2 and q.alpha_max <= 20


def test_reproduce_fig1_quick_writes_png_and_netcdf(tmp_path):
    res = CliRunner().invoke(app, ["reproduce", "goldt2019", "--figure", "fig1", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    png, nc = tmp_path / "goldt2019_fig1.png", tmp_path / "goldt2019_fig1.nc"
    assert png.stat().st_size > 10_000
    ds = results.load_dataset(nc)
    # the runs lie along a named dimension whose coordinates are their parameters (issue 13)
    assert ds.sizes["run"] == 1 and ds["label"].values.tolist() == ["K=2"]
    assert int(ds["K"][0]) == 2 and float(ds["lr"][0]) == 0.5 and ds["activation"].values[0] == "erf"
    assert not [v for v in ds.variables if str(v).startswith("r0_")]
    eg, ode = ds["eg"].sel(run=0).values, ds["eg_ode"].sel(run=0).values
    assert eg.shape == ode.shape and eg.shape[0] == 2
    np.testing.assert_allclose(eg[:, 0], ode[:, 0], rtol=1e-10)  # same starting point
    assert "max rel. deviation" in res.output


def test_reproduce_needs_figure_or_claims(tmp_path):
    res = CliRunner().invoke(app, ["reproduce", "goldt2019", "--out", str(tmp_path)])
    assert res.exit_code != 0
    res = CliRunner().invoke(app, ["reproduce", "goldt2019", "--figure", "fig9", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "fig9" in res.output


@pytest.mark.parametrize("figure", ["fig2", "fig3", "fig4"])
def test_reproduce_other_figures_quick(tmp_path, figure):
    res = CliRunner().invoke(app, ["reproduce", "goldt2019", "--figure", figure, "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / f"goldt2019_{figure}.png").exists() and (tmp_path / f"goldt2019_{figure}.nc").exists()


def test_claims_quick(tmp_path):
    res = CliRunner().invoke(app, ["reproduce", "goldt2019", "--claims", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    ds = results.load_dataset(tmp_path / "goldt2019_claims.nc")
    assert "a_exponent" in ds.attrs and "(d)" in res.output
    # (b)-(d) run the figure recipes at --quick size, not the last N / seed count of claim (a)
    assert ds.attrs["b_N"] == 100 and ds.attrs["b_seeds"] == 2
    assert ds.attrs["c_N"] == 100 and ds.attrs["c_seeds"] == 2


def test_fig1_compares_theory_and_simulation_through_online_compare(tmp_path):
    """The curve figure's ODE-vs-SGD numbers are those of learndyn.online.compare (no second implementation):
    the ODE lines written are each seed's ODE from its own initial overlaps."""
    from learndyn import online

    lines = []
    png, nc, res = G.run_figure("fig1", tmp_path, quick=True, log=lines.append, N=60, seeds=2)
    c = res[0].comparison
    assert isinstance(c, online.Comparison) and c.N == 60 and c.n_seeds == 2
    ds = results.load_dataset(nc)
    np.testing.assert_array_equal(ds["eg_ode"].sel(run=0).values, c.eg_ode)
    sim = res[0].simulation
    traj = online.integrate(res[0].problem, sim.initial_state(int(sim.seeds[1])), alphas=sim.alpha)
    np.testing.assert_allclose(ds["eg_ode"].sel(run=0).values[1], traj.eg, rtol=1e-6)
    assert f"max rel. deviation {c.max_rel_dev:.2e}" in lines[0]
