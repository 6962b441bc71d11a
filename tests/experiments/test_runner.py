"""The shared recipe runner: runs stacked along a named ``run`` dimension, one progress/report loop, atomic files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import xarray as xr

from learndyn import results
from learndyn.experiments import goldt2019, montanari2025, runner, xiao2020


@dataclass(frozen=True)
class _Run:
    label: str
    n: int
    with_seeds: bool = True


@dataclass(frozen=True)
class _Result:
    run: _Run

    def to_xarray(self) -> xr.Dataset:
        n = self.run.n
        data = {"curve": (("time",), np.arange(n, dtype=float)), "status": ((), f"done {n}")}
        if self.run.with_seeds:
            data["per_seed"] = (("seed", "time"), np.ones((2, n)))
        return xr.Dataset(data)

    def parameters(self) -> dict:
        return {"n": self.run.n, "kind": "odd" if self.run.n % 2 else "even"}


def test_combine_runs_pads_sizes_and_missing_dimensions():
    subs = [_Result(_Run("a", 2)).to_xarray(), _Result(_Run("b", 3, with_seeds=False)).to_xarray()]
    ds = runner.combine_runs(subs, labels=["a", "b"], parameters={"n": [2, 3]}, attrs={"figure": "x"})
    assert ds["curve"].dims == ("run", "time") and ds.sizes["run"] == 2 and ds.sizes["time"] == 3
    assert ds["label"].values.tolist() == ["a", "b"] and ds["n"].values.tolist() == [2, 3]
    assert np.isnan(ds["curve"].values[0, 2]) and ds["curve"].values[1].tolist() == [0.0, 1.0, 2.0]
    # the run without seeds is padded with NaN, not refused
    assert ds["per_seed"].dims == ("run", "seed", "time") and np.isnan(ds["per_seed"].values[1]).all()
    assert ds["status"].values.tolist() == ["done 2", "done 3"] and ds.attrs["figure"] == "x"
    with pytest.raises(ValueError, match="labels"):
        runner.combine_runs(subs, labels=["a"])
    with pytest.raises(ValueError, match="at least one run"):
        runner.combine_runs([], labels=[])


def test_run_figure_writes_png_and_netcdf_with_a_run_dimension(tmp_path):
    fig = runner.Figure("demo", "a demo figure", "curves", (_Run("first", 2), _Run("second", 3), _Run("third", 4)))
    lines, plotted = [], []

    def plot(res, ds, path):
        from learndyn.plotting import figure, save_figure

        plotted.append((len(res), ds.sizes["run"]))
        f, ax = figure()
        ax.plot(ds["curve"].values.T)
        return save_figure(f, path)

    out = runner.run_figure("paper", fig, tmp_path, execute=_Result, plot=plot, parameters=_Result.parameters,
                            report=lambda run, r: f"ran {run.label}",
                            stop=lambda r: "stopped" if r.run.label == "second" else None,
                            finish=lambda res, ds: ds.assign_attrs(n_results=len(res)),
                            attrs={"paper": "A & B 2020"}, log=lines.append)
    assert (out.png, out.nc) == (tmp_path / "paper_demo.png", tmp_path / "paper_demo.nc")
    assert lines == ["ran first", "ran second", "stopped"]  # the stop message ends the figure early
    assert plotted == [(2, 2)] and len(out.results) == 2
    ds = results.load_dataset(out.nc)
    assert ds.attrs["paper"] == "A & B 2020" and ds.attrs["figure"] == "demo" and ds.attrs["title"] == "a demo figure"
    assert ds.attrs["n_results"] == 2
    assert ds["label"].values.tolist() == ["first", "second"] and ds["kind"].values.tolist() == ["even", "odd"]
    assert out.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper_demo.nc", "paper_demo.png"]


def test_every_paper_declares_its_figures_for_the_runner():
    for mod in (goldt2019, montanari2025, xiao2020):
        for name, fig in mod.FIGURES.items():
            assert isinstance(fig, runner.Figure) and fig.name == name and str(fig) == fig.title
    # runs are frozen Problems of the theories
    for fig in goldt2019.FIGURES.values():
        assert all(isinstance(r.problem, goldt2019.online.Problem) and hash(r) == hash(r) for r in fig.runs)
    for fig in montanari2025.FIGURES.values():
        assert all(isinstance(r.problem, montanari2025.dmft.Problem) for r in fig.runs + fig.quick)
