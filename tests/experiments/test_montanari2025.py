"""Montanari & Urbani recipes: the threshold extraction on synthetic curves with known answers, and the CLI
``learndyn reproduce montanari2025 --figure 2 --quick`` writing PNG + netCDF."""

from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from learndyn.experiments import montanari2025 as mu


def test_t_rel_and_first_crossing():
    t = np.linspace(0, 50, 501)
    e = 0.5 * np.exp(-t / 2.0)  # e_tr < 1e-7 tau^2 at t = 2 ln(0.5e7 / tau^2)
    tau = 0.8
    assert mu.t_rel(t, e, tau) == pytest.approx(2.0 * math.log(0.5 / (1e-7 * tau**2)), rel=1e-3)
    assert math.isnan(mu.t_rel(t[:50], e[:50], tau))  # never reached
    assert mu.first_crossing(t, t**2, 9.0) == pytest.approx(3.0, abs=0.02)


def test_fit_threshold_recovers_known_parameters():
    abar = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    c, ag, nu = 3.0, 1.18, 2.0
    trel = c * (ag - abar) ** (-nu)
    f2 = mu.fit_threshold(abar, trel, nu=2.0)
    assert f2["abar_gf"] == pytest.approx(ag, rel=1e-10) and f2["c"] == pytest.approx(c, rel=1e-8)
    free = mu.fit_threshold(abar, 2.0 * (1.05 - abar) ** (-1.5))
    assert free["nu"] == pytest.approx(1.5, abs=0.03) and free["abar_gf"] == pytest.approx(1.05, abs=0.01)
    assert math.isnan(mu.fit_threshold(abar[:1], trel[:1])["abar_gf"])


def test_unknown_figure_is_refused():
    with pytest.raises(ValueError, match="figure"):
        mu.run_figure("5", quick=True)


def test_reproduce_figure2_quick_writes_png_and_netcdf(tmp_path):
    from learndyn.cli import app
    from learndyn.results import load_dataset as load

    res = CliRunner().invoke(app, ["reproduce", "montanari2025", "--figure", "fig2", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    png, nc = tmp_path / "montanari2025_fig2.png", tmp_path / "montanari2025_fig2.nc"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ds = load(nc)
    assert ds.attrs["figure"] == "fig2" and ds.attrs["quick"] == 1
    # the runs lie along a named dimension with their parameters as coordinates (issue 13)
    assert ds["m"].values.tolist() == [4, 8] and ds["n_over_d"].values == pytest.approx([1.6, 3.2])
    assert not [v for v in ds.variables if str(v).startswith("r0_")]
    # DMFT and SGD start from the same state: a(0) = a0 = 1 and e(0) = (tau^2 + a0^2 h(1)/m)/2
    for m in (4, 8):
        run = ds.swap_dims(run="m").sel(m=m)
        assert run["dmft_a"].values[0] == pytest.approx(1.0)
        assert run["sim_a"].values[:, 0] == pytest.approx(1.0)
        assert run["dmft_train_error"].values[0] == pytest.approx(0.5 * (0.36 + (0.9 + 1 / 6) / m), rel=1e-10)
    assert "DMFT" in res.output


def test_dmft_command_writes_files_and_refuses_uncentred_h(tmp_path):
    from learndyn.cli import app
    from learndyn.results import load

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["dmft", "--m", "2", "--h", "0,0.1,0.5", "--t-max", "1", "--dt", "0.05",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    ds = load(out.with_suffix(".nc")).to_xarray()
    assert ds["train_error"].values[0] == pytest.approx(0.5 * (1.0 + 0.6 / 2), rel=1e-12)  # (tau^2 + a0^2 h(1)/m)/2
    assert out.with_suffix(".png").exists()
    bad = CliRunner().invoke(app, ["dmft", "--h", "1,0.5", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "h(0)" in bad.output


def test_figure_file_mixes_runs_with_and_without_a_simulation():
    # full-size fig3 simulates only m = 4, 8 of m = 4 .. 32: the figure file refused the mixed set
    # ("'sim_step' not present in all datasets") after all the work was done
    from learndyn.experiments import montanari2025 as mu
    from learndyn.experiments.runner import combine_runs

    from learndyn import dmft

    sim = mu.Sim("gaussian", d=10, seeds=2, points=4)
    runs = [mu.Run(f"m={m}", dmft.Problem(m=m, n_over_d=1.5, tau=0.5), t_max=0.2 * m, dt=0.1, sim=sim if m < 4 else None)
            for m in (1, 2, 4, 8)]
    results = [mu.execute(r) for r in runs]
    ds = combine_runs([r.to_xarray() for r in results], labels=[r.run.label for r in results],
                      parameters={"m": [r.parameters()["m"] for r in results]})
    assert ds["m"].values.tolist() == [1, 2, 4, 8]
    assert np.isfinite(ds["sim_train_error"].isel(run=1)).any() and np.isnan(ds["sim_train_error"].isel(run=3)).all()
    assert np.isfinite(ds["t"].isel(run=3)).sum() > np.isfinite(ds["t"].isel(run=0)).sum()


def test_runs_compare_through_dmft_comparison_with_seeds_only():
    # issue 13: the recipe passes seeds= only (no deprecated keyword) and its DMFT-vs-simulation comparison is the
    # theory's (learndyn.dmft.comparison_of), for the Gaussian model, full-batch GD and SGD alike
    import warnings

    from learndyn import dmft

    p = dmft.Problem(m=2, n_over_d=2.0, tau=0.5, h=(0.0, 0.9, 0.0, 1.0 / 6.0))
    e0 = 0.5 * (0.25 + (0.9 + 1.0 / 6.0) / 2)  # (tau^2 + a0^2 h(1)/m)/2 with a0 = 1
    for sim in (mu.Sim("gaussian", d=10, seeds=2, points=4), mu.Sim("gd", d=10, seeds=2, points=4),
                mu.Sim("sgd", d=10, seeds=3, batch=5, lr=0.1, points=4)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            r = mu.execute(mu.Run(sim.kind, p, t_max=0.4, dt=0.05, sim=sim))
        c = r.comparison
        assert isinstance(c, dmft.Comparison) and c.simulation is r.sim and c.problem is p and c.success
        assert r.sim.seeds == tuple(range(sim.seeds))
        assert c.dmft_at("train_error")[0] == pytest.approx(e0, rel=1e-12)
        assert c.t[0] == 0.0 and 0.0 < c.t[-1] <= 0.4 + 1e-12
        assert np.isfinite(c.z_max("train_error"))
        if sim.kind == "sgd":
            assert r.sim.dt == pytest.approx(0.1 * 10 / 20)  # one step of lr 0.1 is lr d/n of GF time
    assert mu.execute(mu.Run("dmft only", p, t_max=0.2, dt=0.05)).comparison is None


def test_network_gap_note_names_the_public_function():
    """The note printed beside real-network runs names the function that measured it (old text: `gap_vs_d`)."""
    from learndyn import dmft

    assert "(learndyn.dmft.gap_vs_d: full-batch GD" in mu.NETWORK_GAP_NOTE and callable(dmft.gap_vs_d)
    assert "m = 4: gap = 0.024 +- 0.001 + (0.19 +- 0.07)/d over d = 25..400" in mu.NETWORK_GAP_NOTE
