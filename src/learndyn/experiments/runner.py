"""The one runner behind every paper recipe: execute a figure's runs, combine them, plot, write the files.

A recipe is a declaration: a :class:`Figure` (its name, the paper figure it reproduces, a tuple of runs of
frozen Problems) and three small functions of the paper module -- how to execute one run (a theory beside a
simulation), what to print about it, and the plot. :func:`run_figure` does the rest, the same way for every
paper:

1. executes the runs in order under one progress bar (stderr), printing one line per run;
2. stacks each run's ``to_xarray()`` along a named ``run`` dimension (:func:`combine_runs`): the variables
   keep their own named dimensions, runs of different sizes are padded with NaN, and the runs' parameters
   (``label``, ``m``, ``K``, ...) become coordinates along ``run``;
3. draws the plot and writes ``<out>/<paper>_<figure>.png`` and ``<out>/<paper>_<figure>.nc`` atomically
   (:func:`write_figure`; the netCDF file is read back by :func:`learndyn.results.load_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from ..results import atomic_write_netcdf
from . import output_paths, progress_bar

__all__ = ["Figure", "FigureOutput", "combine_runs", "execute_runs", "write_figure", "run_figure"]


@dataclass(frozen=True)
class Figure:
    """A paper figure as a declaration: its ``name`` (``fig2``, ``threshold``, ...), a one-line ``title`` stating
    the setting, the ``kind`` of plot, and the ``runs`` (frozen run declarations, each with a ``label``).

    Paper modules subclass it to add their own plot settings (axis labels, panels, CI-sized runs).
    ``str(figure)`` is its title."""

    name: str
    title: str
    kind: str
    runs: tuple

    def __str__(self) -> str:
        return self.title


@dataclass(frozen=True)
class FigureOutput:
    """What :func:`run_figure` made: the two files, the per-run results and the Dataset written."""

    png: Path
    nc: Path
    results: list
    dataset: xr.Dataset


def _string_variables(subs: Sequence[xr.Dataset]) -> set:
    return {name for sub in subs for name, var in sub.variables.items() if var.dtype.kind in "USO"
            and name not in sub.dims}


def combine_runs(datasets: Sequence[xr.Dataset], *, labels: Sequence[str],
                 parameters: Mapping[str, Sequence[Any]] | None = None, attrs: Mapping[str, Any] | None = None,
                 dim: str = "run") -> xr.Dataset:
    """Stack the runs' Datasets along the named dimension ``dim`` (coordinate ``0 .. R-1``).

    Every variable keeps its own named dimensions; dimensions of different sizes are outer-joined (padded
    with NaN), and a dimension that some runs lack (a run without a simulation has no ``seed``) is padded the
    same way. String variables missing in a run become ``""``. ``labels`` and ``parameters`` (name -> one
    value per run) become coordinates along ``dim``; the runs' own attributes are dropped for ``attrs``."""
    subs = list(datasets)
    if not subs:
        raise ValueError("datasets: a figure needs at least one run")
    if len(labels) != len(subs):
        raise ValueError(f"labels: expected one per run ({len(subs)}), got {len(labels)}")
    strings = _string_variables(subs)
    dims = sorted({d for sub in subs for d in sub.dims})
    # a dimension whose size differs between runs (or that some runs lack) needs an index to be outer-joined
    ragged = {d for d in dims if len({sub.sizes.get(d, 0) for sub in subs}) > 1}
    prepared = []
    for sub in subs:
        sub = sub.assign_coords({d: np.arange(sub.sizes[d]) for d in ragged if d in sub.dims and d not in sub.coords})
        # a dimension this run lacks: an empty coordinate, so that the outer join pads the run with NaN
        sub = sub.assign_coords({d: np.arange(0) for d in dims if d not in sub.dims})
        prepared.append(sub.assign({k: sub[k].astype(object) for k in strings if k in sub.data_vars}))
    ds = xr.concat(prepared, dim=dim, join="outer", combine_attrs="drop", data_vars="all", coords="different",
                   compat="equals")
    for k in strings:
        if k in ds.data_vars:
            values = np.vectorize(lambda x: x if isinstance(x, str) else "", otypes=[object])(ds[k].values)
            ds[k] = (ds[k].dims, values.astype(str))
    coords = {dim: np.arange(len(subs)), "label": (dim, list(labels))}
    coords.update({k: (dim, list(v)) for k, v in (parameters or {}).items()})
    ds = ds.assign_coords(coords)
    ds.attrs.update(dict(attrs or {}))
    return ds


def execute_runs(runs: Sequence[Any], execute: Callable[[Any], Any], *, desc: str, progress: bool = False,
                 log: Callable[[str], None] | None = print, report: Callable[[Any, Any], str | None] | None = None,
                 stop: Callable[[Any], str | None] | None = None) -> list:
    """Execute ``runs`` in order under one progress bar (``desc``); after each run print ``report(run, result)``
    (when not None). ``stop(result)``: a message that ends the figure early (e.g. an interrupted solver); the
    results computed so far are returned."""
    results = []
    bar = progress_bar(len(runs), desc, progress)
    try:
        for run in runs:
            bar.set_postfix_str(str(getattr(run, "label", "")))
            result = execute(run)
            bar.update()
            results.append(result)
            line = report(run, result) if report is not None else None
            if line is not None and log is not None:
                log(line)
            msg = stop(result) if stop is not None else None
            if msg:
                if log is not None:
                    log(msg)
                break
    finally:
        bar.close()
    return results


def write_figure(paper: str, name: str, out_dir: str | Path, dataset: xr.Dataset,
                 plot: Callable[[Path], Path]) -> tuple[Path, Path]:
    """Draw ``plot(png_path)`` and write ``dataset`` atomically: ``<out_dir>/<paper>_<name>.{png,nc}``."""
    png_path, nc_path = output_paths(paper, name, out_dir)
    png = plot(png_path)
    nc = atomic_write_netcdf(dataset, nc_path)
    return png, nc


def run_figure(paper: str, figure: Figure, out_dir: str | Path, *, execute: Callable[[Any], Any],
               plot: Callable[[list, xr.Dataset, Path], Path], parameters: Callable[[Any], Mapping[str, Any]],
               runs: Sequence[Any] | None = None, report: Callable[[Any, Any], str | None] | None = None,
               stop: Callable[[Any], str | None] | None = None,
               finish: Callable[[list, xr.Dataset], xr.Dataset] | None = None,
               attrs: Mapping[str, Any] | None = None, progress: bool = False,
               log: Callable[[str], None] | None = print) -> FigureOutput:
    """Make one figure: execute ``runs`` (default ``figure.runs``; see :func:`execute_runs`), stack each
    result's ``to_xarray()`` along ``run`` with ``parameters(result)`` as coordinates (:func:`combine_runs`),
    let ``finish(results, dataset)`` add figure-level numbers (fits, tables), then ``plot(results, dataset,
    png_path)`` and write both files (:func:`write_figure`)."""
    runs = figure.runs if runs is None else runs
    results = execute_runs(runs, execute, desc=f"{paper} {figure.name}", progress=progress, log=log,
                           report=report, stop=stop)
    params = [dict(parameters(r)) for r in results]
    names = list(params[0]) if params else []
    extra = dict(attrs or {})
    head = {"paper": extra.pop("paper")} if "paper" in extra else {}
    ds = combine_runs([r.to_xarray() for r in results], labels=[r.run.label for r in results],
                      parameters={k: [p[k] for p in params] for k in names},
                      attrs={**head, "figure": figure.name, "title": figure.title, **extra})
    if finish is not None:
        ds = finish(results, ds)
    png, nc = write_figure(paper, figure.name, out_dir, ds, lambda path: plot(results, ds, path))
    return FigureOutput(png, nc, results, ds)
