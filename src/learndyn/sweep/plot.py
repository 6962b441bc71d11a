"""Plots of a sweep store: one variable against one dimension, one line per ``hue`` value, one panel
per ``col`` value; a ``seed`` dimension is averaged (error bars: standard error of the mean).

``learndyn plot STORE --x K --y eg_final --hue activation`` is :func:`plot` with ``out=...``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

__all__ = ["plot", "select"]


def _coerce(coord: xr.DataArray, value: Any) -> Any:
    """A command-line string as a value of ``coord`` (numbers parsed; strings kept)."""
    if not isinstance(value, str):
        return value
    kind = coord.dtype.kind
    try:
        if kind in "iu":
            return int(value)
        if kind == "f":
            return float(value)
        if kind == "b":
            return value.lower() in ("1", "true", "yes")
    except ValueError:
        raise ValueError(f"sel: {coord.name}={value!r} is not a value of {coord.name} "
                         f"(allowed: {coord.values.tolist()})") from None
    return value


def select(ds: xr.Dataset, sel: Mapping[str, Any] | None) -> xr.Dataset:
    """``ds.sel`` with values given as strings and nearest match on float coordinates, with errors
    that list the allowed values."""
    for dim, value in (sel or {}).items():
        if dim not in ds.dims:
            raise ValueError(f"sel: {dim!r} is not a dimension; dimensions are {list(ds.dims)}")
        coord = ds[dim]
        v = _coerce(coord, value)
        try:
            ds = ds.sel({dim: v}, method="nearest" if coord.dtype.kind == "f" else None)
        except KeyError:
            raise ValueError(f"sel: {dim}={value!r} is not among the values {coord.values.tolist()}") from None
    return ds


def plot(data: Any, x: str, y: str, hue: str | None = None, col: str | None = None,
         sel: Mapping[str, Any] | None = None, *, ax: Any = None, logx: bool | None = None,
         logy: bool | None = None, out: str | os.PathLike | None = None, title: str | None = None):
    """Plot variable ``y`` of a sweep (a store path or a Dataset from :func:`learndyn.sweep.open_store`)
    against dimension ``x``; ``hue`` gives one line per value, ``col`` one panel per value, ``sel``
    fixes other dimensions (``{"lr": 0.5}``). Every other dimension must have one value.
    Returns the matplotlib figure; ``out`` also saves it as PNG.
    """
    from ..plotting import SIM_STYLE, figure, plt, save_figure
    from .store import open_store

    ds = open_store(data) if isinstance(data, (str, os.PathLike)) else data
    if y not in ds.data_vars:
        allowed = [v for v in ds.data_vars if not str(v).startswith("sweep_")]
        raise ValueError(f"y: {y!r} is not a variable of the sweep; allowed are {allowed}")
    ds = select(ds, sel)
    da = ds[y]
    for name, role in ((x, "x"), (hue, "hue"), (col, "col")):
        if name is not None and name not in da.dims:
            raise ValueError(f"{role}: {name!r} is not a dimension of {y}; its dimensions are {list(da.dims)}")
    roles = {d for d in (x, hue, col) if d is not None}
    if len(roles) != len([d for d in (x, hue, col) if d is not None]):
        raise ValueError("x, hue, col: must be different dimensions")
    extra = [d for d in da.dims if d not in roles and d != "seed" and da.sizes[d] > 1]
    if extra:
        hints = ", ".join(f"{d} ({da.sizes[d]} values: {ds[d].values.tolist()[:6]})" for d in extra)
        raise ValueError(f"{y} varies along {hints}; fix it with sel (--sel {extra[0]}=VALUE) or use it as "
                         "hue/col")
    da = da.squeeze([d for d in da.dims if d not in roles and d != "seed"], drop=False)
    xvalues_var = f"{x}_values"
    varying_x = x not in ds.coords and xvalues_var in ds

    cols = list(ds[col].values) if col else [None]
    own_fig = ax is None
    if own_fig:
        fig, axes = figure(1, len(cols), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
        if len(cols) > 1:
            raise ValueError("col: needs its own figure (do not pass ax)")
    hues = list(ds[hue].values) if hue else [None]
    cmap = plt.get_cmap("viridis" if hue and ds[hue].dtype.kind in "iuf" and len(hues) > 6 else "tab10")
    for a, cv in zip(axes, cols):
        panel = da.sel({col: cv}) if col else da
        for j, hv in enumerate(hues):
            line = panel.sel({hue: hv}) if hue else panel
            vals = np.asarray(line.transpose(..., x).values if "seed" not in line.dims
                              else line.transpose("seed", x).values, dtype=np.float64)
            if "seed" in line.dims:
                n = np.sum(np.isfinite(vals), axis=0)
                with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # points not computed yet: NaN
                    mean = np.nanmean(vals, axis=0) if vals.size else vals
                    sem = np.where(n > 1, np.nanstd(vals, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)), np.nan)
            else:
                mean, sem = vals.reshape(-1), None
            if varying_x:
                xv_da = ds[xvalues_var]
                for d, v in (((col, cv),) if col else ()) + (((hue, hv),) if hue else ()):
                    if d in xv_da.dims:
                        xv_da = xv_da.sel({d: v})
                xv_da = xv_da.squeeze([d for d in xv_da.dims if d != x])
                xv = np.asarray(xv_da.values)
            else:
                xv = np.asarray(ds[x].values)
            label = f"{hue}={hv}" if hue else None
            color = cmap(j / max(len(hues) - 1, 1)) if cmap.name == "viridis" else cmap(j % 10)
            if xv.dtype.kind in "US":
                xv = xv.astype(str)
            many = len(xv) > 30
            if sem is not None and np.any(np.isfinite(sem)) and not many:
                style = {**SIM_STYLE, "fmt": "o-"}
                a.errorbar(xv, mean, yerr=np.nan_to_num(sem), color=color, label=label, **style)
            else:
                a.plot(xv, mean, "-" if many else "o-", color=color, label=label, ms=3.5, lw=1.5)
                if sem is not None and many and np.any(np.isfinite(sem)):
                    a.fill_between(xv, mean - np.nan_to_num(sem), mean + np.nan_to_num(sem), color=color, alpha=0.2)
        xs = np.asarray(ds[xvalues_var].values if varying_x else ds[x].values)
        numeric_x = xs.dtype.kind in "iuf"
        lx = logx if logx is not None else (numeric_x and x == "alpha")
        finite = np.asarray(da.values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        ly = logy if logy is not None else (y.startswith("eg") and finite.size > 0 and bool(np.all(finite > 0))
                                            and finite.max() / finite.min() > 50)
        if lx:
            a.set_xscale("log")
        if ly:
            a.set_yscale("log")
        a.set_xlabel(x)
        a.set_ylabel(da.attrs.get("long_name", y) if len(da.attrs.get("long_name", "")) < 40 else y)
        if col:
            a.set_title(f"{col}={cv}")
        if hue:
            a.legend(title=hue, fontsize=8)
    if title or ds.attrs.get("sweep_name"):
        fig.suptitle(title or f"sweep {ds.attrs.get('sweep_name')}", fontsize=10)
    if out is not None:
        save_figure(fig, Path(out))
    return fig
