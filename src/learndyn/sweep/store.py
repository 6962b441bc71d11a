"""The results store of a sweep: one Zarr directory, every grid point on labelled dimensions.

Layout (Zarr format 2, readable with ``xarray.open_zarr``):

* one array per runner output, dimensions ``(*grid axes, *output dims)``, chunked **one grid point per
  chunk**: a point's values are written in whole chunks, each chunk file replaced atomically
  (zarr's local store writes a temporary file and renames it);
* ``sweep_status`` (grid): ``0`` pending, ``1`` done, ``2`` done but flagged by the numerics
  (diverged, step limit; the data computed so far is kept), ``3`` failed with an error (re-run);
* ``sweep_run`` (which invocation wrote the point), ``sweep_seconds`` (compute time of its task),
  ``sweep_message`` (the runner's or the error's message);
* attributes: the config (TOML text and JSON), its identity hash, the runner, the package version,
  and one entry per invocation in ``runs``.

Exactly once: a point's status is written *after* its values, by the single client process that
owns the store (an exclusive ``flock`` on the hidden sibling file ``.<store>.lock``). The small
bookkeeping arrays are kept in memory and flushed (status last) at most once a second and when the
run ends, so per-point cost stays a few chunk writes. A point whose stored status says done is never
recomputed; a point whose status was not yet flushed when the process died is recomputed and
overwrites the same chunks, so nothing is duplicated and nothing half-written is ever marked done.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from .config import SweepConfig
from .registry import Output, PointResult

__all__ = ["Store", "StoreStatus", "open_store", "status", "PENDING", "DONE", "FLAGGED", "ERROR",
           "STATUS_NAMES"]

PENDING, DONE, FLAGGED, ERROR = 0, 1, 2, 3
STATUS_NAMES = {PENDING: "pending", DONE: "done", FLAGGED: "done (flagged)", ERROR: "error"}
_MESSAGE_LEN = 240
_BOOK = ("sweep_status", "sweep_run", "sweep_seconds", "sweep_message")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _coord_values(values: list[Any]) -> np.ndarray:
    """Axis values as a coordinate: numbers and strings as they are, anything else as JSON text."""
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=bool)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64)
    if all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=str)
    return np.asarray([json.dumps(v) for v in values], dtype=str)


@dataclass(frozen=True)
class _Layout:
    outputs: dict[str, Output]
    index_coords: dict[str, np.ndarray]          # output dims whose coordinates are the same everywhere
    varying_coords: dict[str, np.ndarray]        # dim -> array (*grid, len) when they change across points


def layout(cfg: SweepConfig) -> _Layout:
    """Output variables of the sweep from the runner's declared outputs at every grid point."""
    n_seeds = len(cfg.seeds)
    first: dict[str, Output] | None = None
    dim_coords: dict[str, list[np.ndarray]] = {}
    for flat in cfg.points():
        problem, options = cfg.point(flat)
        outs = dict(cfg.runner.outputs(problem, options, n_seeds))
        if first is None:
            first = outs
        elif set(outs) != set(first):
            raise ValueError(f"runner {cfg.runner.name!r}: the output names differ across grid points "
                             f"({sorted(first)} vs {sorted(outs)} at {cfg.coords(flat)})")
        point_dims: dict[str, np.ndarray] = {}
        for name, out in outs.items():
            if out.dims != first[name].dims:
                raise ValueError(f"runner {cfg.runner.name!r}: output {name!r} has dims {out.dims} at "
                                 f"{cfg.coords(flat)} but {first[name].dims} elsewhere")
            if np.dtype(out.dtype).kind not in "fi":
                raise ValueError(f"runner {cfg.runner.name!r}: output {name!r} has dtype {out.dtype}; "
                                 "outputs are floats (NaN = missing) or integers (-1 = missing)")
            for d in out.dims:
                if d == "seed":
                    continue
                c = np.asarray(out.coords[d])
                if d in point_dims and not np.array_equal(point_dims[d], c):
                    raise ValueError(f"runner {cfg.runner.name!r}: dimension {d!r} has different coordinates "
                                     f"in two outputs at {cfg.coords(flat)}")
                point_dims[d] = c
        for d, c in point_dims.items():
            dim_coords.setdefault(d, []).append(c)
    assert first is not None
    index_coords, varying = {}, {}
    for d, cs in dim_coords.items():
        lengths = {len(c) for c in cs}
        if len(lengths) > 1:
            raise ValueError(f"runner {cfg.runner.name!r}: dimension {d!r} has lengths {sorted(lengths)} at "
                             "different grid points; its length must not depend on a swept key")
        if all(np.array_equal(cs[0], c) for c in cs[1:]):
            index_coords[d] = cs[0]
        else:
            varying[d] = np.stack(cs).reshape(*cfg.shape, len(cs[0]))
    return _Layout(outputs=first, index_coords=index_coords, varying_coords=varying)


@dataclass(frozen=True)
class StoreStatus:
    """Counts of a store's points (``learndyn sweep-status``)."""

    path: Path
    name: str
    size: int
    counts: dict[str, int]
    pending: list[dict[str, Any]]
    errors: list[tuple[dict[str, Any], str]]
    flagged: list[tuple[dict[str, Any], str]]
    runs: list[dict[str, Any]]
    version: str
    seconds: float

    @property
    def complete(self) -> bool:
        return self.counts["pending"] == 0 and self.counts["error"] == 0

    def summary(self, limit: int = 10) -> str:
        c = self.counts
        lines = [f"{self.path}: sweep {self.name!r}, {self.size} points: {c['done']} done "
                 f"({c['flagged']} flagged), {c['pending']} pending, {c['error']} failed"
                 f"{' -- complete' if self.complete else ''}",
                 f"compute time so far: {self.seconds:.1f} s in {len(self.runs)} run(s); learndyn {self.version}"]
        for title, rows in (("failed", self.errors), ("flagged", self.flagged)):
            for coords, msg in rows[:limit]:
                lines.append(f"  {title}: {_fmt_coords(coords)}: {msg}")
            if len(rows) > limit:
                lines.append(f"  ... and {len(rows) - limit} more {title}")
        if self.pending:
            shown = ", ".join(_fmt_coords(p) for p in self.pending[:limit])
            more = f" and {len(self.pending) - limit} more" if len(self.pending) > limit else ""
            lines.append(f"  pending: {shown}{more}")
        return "\n".join(lines)


def _fmt_coords(coords: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in coords.items()) or "(the single point)"


class Store:
    """A sweep's Zarr store, opened for writing by one process at a time (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, cfg: SweepConfig) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self._group = None
        self._layout: _Layout | None = None
        self._lock_fd: int | None = None
        self._arrays: dict[str, Any] = {}
        self._book: dict[str, np.ndarray] | None = None
        self._dirty = False
        self._last_flush = 0.0
        self._flush_cost = 0.0
        #: bookkeeping (status, run, seconds, message) is written at most this often (seconds); a
        #: point finished since the last flush counts as pending after a kill and is recomputed
        self.flush_interval = 1.0

    # -- creation / opening -------------------------------------------------------------------
    @classmethod
    def create_or_open(cls, path: str | os.PathLike, cfg: SweepConfig, *, overwrite: bool = False) -> "Store":
        """Open the store of ``cfg`` at ``path`` (creating it if needed) and take its lock.

        An existing store must have been created by the same sweep (identity hash of runner, problem,
        options with defaults, grid and seeds); otherwise ``ValueError`` says what differs.
        ``overwrite=True`` deletes an existing store first.
        """
        store = cls(path, cfg)
        store._acquire()
        try:
            if overwrite and store.path.exists():
                store._clear()
            if not (store.path / ".zgroup").exists():
                if store.path.exists() and any(store.path.iterdir()):
                    raise ValueError(f"store: {store.path} exists and is not a learndyn sweep store")
                store._create()
            else:
                store._check_identity()
            import zarr

            store._group = zarr.open_group(str(store.path), mode="r+", zarr_format=2)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def lock_path(self) -> Path:
        """The lock file: a hidden sibling of the store (inside it, it would count as store content)."""
        return self.path.parent / f".{self.path.name}.lock"

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"store: {self.path} is in use by another sweep process (lock {self.lock_path}); "
                             "wait for it or stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def close(self) -> None:
        try:
            if self._lock_fd is not None and self._group is not None:
                self.flush()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _clear(self) -> None:
        shutil.rmtree(self.path)

    def _create(self) -> None:
        import dask.array as da

        from .. import __version__

        cfg = self.cfg
        lay = self._layout = layout(cfg)
        grid_dims = cfg.dims
        gshape = cfg.shape
        n_seeds = len(cfg.seeds)
        coords: dict[str, Any] = {d: _coord_values(v) for d, v in cfg.grid.items()}
        for d, values in cfg.grid.items():
            if coords[d].dtype.kind == "U" and not all(isinstance(v, str) for v in values):
                coords[d] = xr.Variable((d,), coords[d], {"values_encoding": "json"})
        for axis, table in cfg.zipped.items():  # keys that vary with an axis: coordinates on it
            for key, values in table.items():
                coords[key] = ((axis,), _coord_values(values))
        if cfg.runner.seeded:
            coords["seed"] = np.asarray(cfg.seeds, dtype=np.int64)
        coords.update(lay.index_coords)
        for d, arr in lay.varying_coords.items():
            coords[f"{d}_values"] = ((*grid_dims, d), arr)
        data_vars: dict[str, Any] = {}
        encoding: dict[str, Any] = {}
        for name, out in lay.outputs.items():
            shape = gshape + out.shape(n_seeds)
            chunks = (1,) * len(gshape) + out.shape(n_seeds)
            dtype = np.dtype(out.dtype)
            fill = np.nan if dtype.kind == "f" else -1
            arr = da.full(shape, fill, dtype=dtype, chunks=chunks)
            data_vars[name] = ((*grid_dims, *out.dims), arr, dict(out.attrs))
            encoding[name] = {"chunks": chunks, "_FillValue": fill}
        data_vars["sweep_status"] = (grid_dims, np.zeros(gshape, dtype=np.int8),
                                     {"flag_values": list(STATUS_NAMES), "flag_meanings":
                                      " ".join(s.replace(" ", "_").replace("(", "").replace(")", "")
                                               for s in STATUS_NAMES.values())})
        data_vars["sweep_run"] = (grid_dims, np.full(gshape, -1, dtype=np.int32),
                                  {"long_name": "invocation that wrote the point (-1: none)"})
        data_vars["sweep_seconds"] = (grid_dims, np.full(gshape, np.nan),
                                      {"long_name": "compute time of the point's task", "units": "s"})
        data_vars["sweep_message"] = (grid_dims, np.full(gshape, "", dtype=f"<U{_MESSAGE_LEN}"),
                                      {"long_name": "runner or error message"})
        for name in _BOOK:
            encoding[name] = {"chunks": gshape if gshape else None}
            if gshape == ():
                encoding[name].pop("chunks")
        attrs = {
            "title": f"learndyn sweep {cfg.name}",
            "sweep_name": cfg.name,
            "description": cfg.description,
            "runner": cfg.runner_name,
            "problem_class": f"{cfg.runner.problem.__module__}.{cfg.runner.problem.__qualname__}",
            "learndyn_version": __version__,
            "config_toml": cfg.source,
            "config": json.dumps(cfg.to_dict()),
            "identity": json.dumps(cfg.identity(), sort_keys=True),
            "identity_hash": cfg.identity_hash(),
            "grid_dims": json.dumps(list(grid_dims)),
            "created": _now(),
            "runs": json.dumps([]),
        }
        ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        # built in a temporary directory and renamed into place: a store exists whole or not at all
        for stale in self.path.parent.glob(f".{self.path.name}.creating-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.path.parent / f".{self.path.name}.creating-{os.getpid()}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.to_zarr(str(tmp), mode="w", compute=False, zarr_format=2, consolidated=False,
                           encoding=encoding)
                # the small bookkeeping arrays and coordinates are written in full now
                ds[list(_BOOK)].to_zarr(str(tmp), mode="r+", zarr_format=2, consolidated=False)
            if self.path.exists():
                self.path.rmdir()  # an empty directory (checked by the caller)
            os.rename(tmp, self.path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _check_identity(self) -> None:
        import zarr

        g = zarr.open_group(str(self.path), mode="r", zarr_format=2)
        attrs = dict(g.attrs)
        if attrs.get("identity_hash") == self.cfg.identity_hash():
            from .. import __version__

            if attrs.get("learndyn_version") != __version__:
                warnings.warn(f"store {self.path} was created by learndyn {attrs.get('learndyn_version')}; "
                              f"resuming with {__version__}", RuntimeWarning, stacklevel=3)
            return
        old = json.loads(attrs.get("identity", "{}"))
        new = self.cfg.identity()
        diffs = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        raise ValueError(
            f"store: {self.path} holds a different sweep (differs in: {', '.join(diffs) or 'identity'}); "
            "resume only with the same config, or choose another store, or pass overwrite=True / --overwrite")

    # -- bookkeeping ----------------------------------------------------------------------------
    @property
    def group(self):
        if self._group is None:
            raise ValueError("store: not open")
        return self._group

    @property
    def outputs(self) -> dict[str, Output]:
        if self._layout is None:
            self._layout = layout(self.cfg)
        return self._layout.outputs

    def _array(self, name: str):
        if name not in self._arrays:
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    @property
    def book(self) -> dict[str, np.ndarray]:
        """In-memory bookkeeping arrays (flat over the grid), written back by :meth:`flush`."""
        if self._book is None:
            self._book = {name: np.array(self._array(name)[...]).reshape(-1) for name in _BOOK}
        return self._book

    def flush(self) -> None:
        """Write the bookkeeping arrays: message, seconds and run first, the status last."""
        if not self._dirty:
            return
        t0 = time.monotonic()
        shape = self.cfg.shape
        for name in ("sweep_message", "sweep_seconds", "sweep_run", "sweep_status"):
            self._array(name)[...] = self.book[name].reshape(shape)
        self._dirty = False
        self._last_flush = time.monotonic()
        self._flush_cost = self._last_flush - t0

    def statuses(self) -> np.ndarray:
        return self.book["sweep_status"].copy()

    def pending(self) -> list[int]:
        """Flat indices of the points still to compute (pending or failed)."""
        st = self.statuses()
        return [int(i) for i in np.flatnonzero((st == PENDING) | (st == ERROR))]

    def start_run(self, **info: Any) -> int:
        runs = json.loads(self.group.attrs.get("runs", "[]"))
        from .. import __version__

        runs.append({"run": len(runs), "started": _now(), "learndyn_version": __version__, **info})
        self.group.attrs["runs"] = json.dumps(runs)
        return len(runs) - 1

    def finish_run(self, run: int, **info: Any) -> None:
        runs = json.loads(self.group.attrs.get("runs", "[]"))
        if 0 <= run < len(runs):
            runs[run].update({"finished": _now(), **info})
            self.group.attrs["runs"] = json.dumps(runs)

    def write_point(self, flat: int, result: PointResult | None, *, run: int, seconds: float = float("nan"),
                    error: str = "") -> int:
        """Write one finished point: its values first, then its status (see the module docstring).
        ``result=None`` records a failure (``error``); the point stays to be computed. Returns the status."""
        idx = self.cfg.index(flat)
        n_seeds = len(self.cfg.seeds)
        if result is not None:
            try:
                arrays = {}
                for name, out in self.outputs.items():
                    if name not in result.values:
                        raise ValueError(f"runner result lacks output {name!r}")
                    arr = np.asarray(result.values[name], dtype=np.dtype(out.dtype))
                    if arr.shape != out.shape(n_seeds):
                        raise ValueError(f"output {name!r} has shape {arr.shape}, expected {out.shape(n_seeds)}")
                    arrays[name] = arr
                extra = set(result.values) - set(self.outputs)
                if extra:
                    raise ValueError(f"runner result has undeclared outputs {sorted(extra)}")
            except (ValueError, TypeError) as exc:
                result, error = None, f"bad runner result: {exc}"
        if result is None:
            code, message = ERROR, error
        else:
            for name, arr in arrays.items():
                self._array(name)[idx] = arr  # whole chunks, each replaced atomically
            code, message = (DONE, result.message) if result.ok else (FLAGGED, result.message or "flagged")
        book = self.book
        book["sweep_message"][flat] = (message or "")[:_MESSAGE_LEN]
        book["sweep_seconds"][flat] = seconds
        book["sweep_run"][flat] = run
        book["sweep_status"][flat] = code  # marks the point done once flushed (after its values)
        self._dirty = True
        if time.monotonic() - self._last_flush >= max(self.flush_interval, 20 * self._flush_cost):
            self.flush()
        return code

    def status(self) -> StoreStatus:
        return status(self.path)

    def dataset(self) -> xr.Dataset:
        return open_store(self.path)


def _open_raw(path: str | os.PathLike) -> xr.Dataset:
    path = Path(path)
    if not (path / ".zgroup").exists():
        raise ValueError(f"store: {path} is not a learndyn sweep store (no .zgroup)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # chunks=None: plain lazily indexed arrays, read here (never by a Dask cluster that may be active)
        return xr.open_zarr(str(path), consolidated=False, zarr_format=2, chunks=None)


def open_store(path: str | os.PathLike, *, only_done: bool = True) -> xr.Dataset:
    """Load a sweep store as one ``xarray.Dataset`` (into memory). With ``only_done`` the values of
    points that are not done are NaN (a failed point may hold part of an earlier attempt)."""
    ds = _open_raw(path).load()
    if only_done:
        done = ds["sweep_status"].isin([DONE, FLAGGED])
        grid_dims = json.loads(ds.attrs.get("grid_dims", "[]"))
        for name in list(ds.data_vars):
            if name in _BOOK or not set(grid_dims) <= set(ds[name].dims):
                continue
            ds[name] = ds[name].where(done)
    return ds


def status(path: str | os.PathLike) -> StoreStatus:
    """Done / pending / failed counts of the store at ``path`` (the store need not be complete)."""
    ds = _open_raw(path)
    st = np.asarray(ds["sweep_status"].values)
    msg = np.asarray(ds["sweep_message"].values)
    secs = np.asarray(ds["sweep_seconds"].values)
    grid_dims = json.loads(ds.attrs.get("grid_dims", "[]"))
    coords = {d: ds[d].values for d in grid_dims}

    def at(flat: int) -> dict[str, Any]:
        idx = np.unravel_index(flat, st.shape) if st.shape else ()
        return {d: coords[d][i].item() for d, i in zip(grid_dims, idx)}

    flat_st = st.reshape(-1)
    flat_msg = msg.reshape(-1)
    counts = {
        "done": int(np.sum((flat_st == DONE) | (flat_st == FLAGGED))),
        "flagged": int(np.sum(flat_st == FLAGGED)),
        "pending": int(np.sum(flat_st == PENDING)),
        "error": int(np.sum(flat_st == ERROR)),
    }
    return StoreStatus(
        path=Path(path), name=str(ds.attrs.get("sweep_name", "")), size=int(flat_st.size), counts=counts,
        pending=[at(i) for i in np.flatnonzero(flat_st == PENDING)],
        errors=[(at(i), str(flat_msg[i])) for i in np.flatnonzero(flat_st == ERROR)],
        flagged=[(at(i), str(flat_msg[i])) for i in np.flatnonzero(flat_st == FLAGGED)],
        runs=json.loads(ds.attrs.get("runs", "[]")), version=str(ds.attrs.get("learndyn_version", "?")),
        seconds=float(np.nansum(secs)),
    )
