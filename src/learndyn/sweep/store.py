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
owns the store (an exclusive ``flock`` on the hidden sibling file ``.<store>.lock`` of the store's
*resolved* path, so every spelling of one store -- a symlink included -- shares one lock; the file is
removed when the store is closed). The small
bookkeeping arrays are kept in memory and flushed (status last) at most once a second and when the
run ends, so per-point cost stays a few chunk writes. A point whose stored status says done is never
recomputed; a point whose status was not yet flushed when the process died is recomputed and
overwrites the same chunks, so nothing is duplicated and nothing half-written is ever marked done.

Verified on every open (resume, :func:`open_store`, :func:`status`): each chunk of a finished point
must exist (every chunk is written, even one equal to the fill value) and decode to its size; a point
whose data is missing or unreadable counts as pending again, with a warning naming it, and is
recomputed by the next run. ``overwrite`` deletes only a store this package wrote
(:func:`check_deletable`).
"""

from __future__ import annotations

import datetime as _dt
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

from ..cluster import one_line
from ..resources import StoreLock
from .config import SweepConfig
from .registry import Output, PointResult

__all__ = ["Store", "StoreStatus", "open_store", "status", "PENDING", "DONE", "FLAGGED", "ERROR",
           "STATUS_NAMES"]

PENDING, DONE, FLAGGED, ERROR = 0, 1, 2, 3
STATUS_NAMES = {PENDING: "pending", DONE: "done", FLAGGED: "done (flagged)", ERROR: "error"}
_MESSAGE_LEN = 240
_BOOK = ("sweep_status", "sweep_run", "sweep_seconds", "sweep_message")
_BOOK_FILL = {"sweep_status": (PENDING, np.int8), "sweep_run": (-1, np.int32), "sweep_seconds": (np.nan, np.float64),
              "sweep_message": ("", f"<U{_MESSAGE_LEN}")}
#: 2: every written chunk is stored, even one equal to the fill value, so a missing chunk of a finished
#: point means lost data; the store carries the marker attribute ``learndyn_store = "sweep"``
_STORE_VERSION = 2


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
        """True when no point is pending or failed."""
        return self.counts["pending"] == 0 and self.counts["error"] == 0

    def summary(self, limit: int = 10) -> str:
        """A few lines for a person: counts per status and the first failures."""
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
    """A sweep's Zarr store, opened for writing by one process at a time (see the module docstring).

    ``path`` is the path as given (shown in messages); every file operation and the lock use its
    resolved form ``real`` (symlinks followed), so two spellings of one store share one lock.
    """

    def __init__(self, path: str | os.PathLike, cfg: SweepConfig) -> None:
        self.path = Path(path)
        self.real = self.path.resolve()
        self.cfg = cfg
        self._group = None
        self._layout: _Layout | None = None
        self._lock: StoreLock | None = None
        self._arrays: dict[str, Any] = {}
        self._book: dict[str, np.ndarray] | None = None
        self._dirty = False
        self._last_flush = 0.0
        self._flush_cost = 0.0
        self._needs_create = False
        self._overwrite = False
        #: bookkeeping (status, run, seconds, message) is written at most this often (seconds); a
        #: point finished since the last flush counts as pending after a kill and is recomputed
        self.flush_interval = 1.0

    # -- creation / opening -------------------------------------------------------------------
    @classmethod
    def create_or_open(cls, path: str | os.PathLike, cfg: SweepConfig, *, overwrite: bool = False) -> "Store":
        """Open the store of ``cfg`` at ``path`` (creating it if needed) and take its lock.

        An existing store must have been created by the same sweep (identity hash of runner, problem,
        options with defaults, grid and seeds); otherwise ``ValueError`` says what differs. Its finished
        points are verified: one whose data is missing or unreadable is pending again (a warning names
        it). ``overwrite=True`` deletes an existing store first -- only a store this package wrote, and
        never the working directory, a parent of it, or the config's folder (:func:`check_deletable`).
        """
        store = cls.prepare(path, cfg, overwrite=overwrite)
        try:
            store.materialise()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def prepare(cls, path: str | os.PathLike, cfg: SweepConfig, *, overwrite: bool = False) -> "Store":
        """Take the lock and check the path; open (and verify) an existing store of the same sweep.
        A new store is created, or an old one deleted for ``overwrite``, only by :meth:`materialise`
        (so a run can connect to its cluster first and leave nothing behind when that fails)."""
        store = cls(path, cfg)
        store._overwrite = overwrite
        if store.real.exists() and not store.real.is_dir():
            raise ValueError(f"store: {store.path} is a file, not a sweep store directory; choose another store path")
        store._acquire()
        try:
            if overwrite and store.real.exists():
                check_deletable(store.path, cfg)
                store._needs_create = True
            elif (store.real / ".zgroup").exists():
                store._check_identity()
                store._open_group()
                store._repair()
            elif store.real.exists() and any(store.real.iterdir()):
                raise ValueError(f"store: {store.path} exists and is not a learndyn sweep store; choose another "
                                 "store path (--store)")
            else:
                store._needs_create = True
        except BaseException:
            store.close()
            raise
        return store

    def materialise(self) -> None:
        """Delete the old store (``overwrite``) and create the new one, if :meth:`prepare` found one due."""
        if self._needs_create:
            if self._overwrite and self.real.exists():
                check_deletable(self.path, self.cfg)
                self._clear()
            self._create()
            self._open_group()
            self._needs_create = False

    def _open_group(self) -> None:
        import zarr

        try:
            self._group = zarr.open_group(str(self.real), mode="r+", zarr_format=2)
        except Exception as exc:  # noqa: BLE001 - damaged metadata
            raise ValueError(f"store: {self.path} cannot be opened ({one_line(exc)}); its metadata is damaged: "
                             "move it away (or delete it) and run the sweep again") from None
        self._arrays.clear()
        self._book = None

    @property
    def lock_path(self) -> Path:
        """The lock file: a hidden sibling of the (resolved) store, removed when the store is closed."""
        return self.real.parent / f".{self.real.name}.lock"

    def _acquire(self) -> None:
        self._lock = StoreLock(self.real, f"store: {self.path} is in use by another sweep process")

    def close(self) -> None:
        """Release the store's lock (idempotent)."""
        try:
            if self._lock is not None and self._lock.held and self._group is not None:
                self.flush()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _clear(self) -> None:
        shutil.rmtree(self.real)

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
            "learndyn_store": "sweep",
            "learndyn_store_version": _STORE_VERSION,
            "outputs": json.dumps(list(lay.outputs)),
        }
        ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        # built in a temporary directory and renamed into place: a store exists whole or not at all
        for stale in self.real.parent.glob(f".{self.real.name}.creating-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.real.parent / f".{self.real.name}.creating-{os.getpid()}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.to_zarr(str(tmp), mode="w", compute=False, zarr_format=2, consolidated=False,
                           encoding=encoding)
                # the small bookkeeping arrays and coordinates are written in full now
                ds[list(_BOOK)].to_zarr(str(tmp), mode="r+", zarr_format=2, consolidated=False)
            if self.real.exists():
                self.real.rmdir()  # an empty directory (checked by the caller)
            os.rename(tmp, self.real)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _check_identity(self) -> None:
        attrs = _read_attrs(self.real, self.path)
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
        """The open Zarr group of this store."""
        if self._group is None:
            raise ValueError("store: not open")
        return self._group

    @property
    def outputs(self) -> dict[str, Output]:
        """The outputs the runner declared, by name (read from the store's layout)."""
        if self._layout is None:
            self._layout = layout(self.cfg)
        return self._layout.outputs

    def _array(self, name: str):
        if name not in self._arrays:
            if name in _BOOK:
                arr = self.group[name]
            else:  # store every chunk, so that a missing one means lost data (the setting is read at opening)
                import zarr

                with zarr.config.set({"array.write_empty_chunks": True}):
                    arr = self.group[name]
            self._arrays[name] = arr
        return self._arrays[name]

    @property
    def book(self) -> dict[str, np.ndarray]:
        """In-memory bookkeeping arrays (flat over the grid), written back by :meth:`flush`."""
        if self._book is None:
            self._book, problems = _load_book(self.real, self.cfg.shape, self.group)
            if problems:
                self._dirty = True  # rewritten whole at the next flush
                warnings.warn(f"store {self.path}: {'; '.join(problems)}", RuntimeWarning, stacklevel=2)
        return self._book

    def _repair(self) -> None:
        """Finished points whose stored data is missing or unreadable become pending again."""
        book = self.book
        bad = _damaged(self.real, _read_attrs(self.real, self.path), book["sweep_status"], self.cfg.shape)
        if not bad:
            return
        for flat, why in bad.items():
            book["sweep_status"][flat] = PENDING
            book["sweep_message"][flat] = f"data lost ({why}); recomputed"[:_MESSAGE_LEN]
        self._dirty = True
        self.flush()
        warnings.warn(_damage_message(self.path, bad, self.cfg.coords, "they are pending again and will be "
                                      "recomputed"), RuntimeWarning, stacklevel=3)

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
        """A copy of the per-point sweep status codes (pending / done / flagged / error)."""
        return self.book["sweep_status"].copy()

    def start_run(self, **info: Any) -> int:
        """Record the start of one execution of the sweep in the store's history; returns its number."""
        runs = json.loads(self.group.attrs.get("runs", "[]"))
        from .. import __version__

        runs.append({"run": len(runs), "started": _now(), "learndyn_version": __version__, **info})
        self.group.attrs["runs"] = json.dumps(runs)
        return len(runs) - 1

    def finish_run(self, run: int, **info: Any) -> None:
        """Record the end of execution ``run`` with ``info`` (counts, wall time)."""
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

    def pending(self) -> list[int]:
        """Flat indices of the points still to compute (pending or failed; every point of a store
        that :meth:`materialise` has yet to create)."""
        if self._needs_create:
            return list(range(self.cfg.size))
        st = self.statuses()
        return [int(i) for i in np.flatnonzero((st == PENDING) | (st == ERROR))]

    def status(self) -> StoreStatus:
        """The store's :class:`StoreStatus` (counts, failures, whether it is complete)."""
        return status(self.path)

    def dataset(self) -> xr.Dataset:
        """The store opened as an ``xarray.Dataset`` (lazy, one variable per output)."""
        return open_store(self.path)


def _read_attrs(real: Path, shown: Path | None = None) -> dict[str, Any]:
    """The store's root attributes (``.zattrs``), or a one-line ``ValueError`` when they are damaged."""
    shown = shown if shown is not None else real
    try:
        attrs = json.loads((real / ".zattrs").read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"store: {shown}/.zattrs is damaged ({one_line(exc)}); the store cannot be identified: "
                         "restore the file, or move the store away and run the sweep again") from None
    if not isinstance(attrs, dict):
        raise ValueError(f"store: {shown}/.zattrs is damaged (not a JSON object); restore the file, or move the "
                         "store away and run the sweep again")
    return attrs


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a sweep store this package wrote: a Zarr group whose attributes carry the
    marker ``learndyn_store = "sweep"`` (or, for stores of older versions, the sweep's identity hash,
    grid dimensions and run records that only this package writes)."""
    real = Path(path).resolve()
    if not real.is_dir() or not (real / ".zgroup").is_file():
        return False
    try:
        attrs = _read_attrs(real)
    except ValueError:
        return False
    if attrs.get("learndyn_store") == "sweep":
        return True
    return (all(k in attrs for k in ("identity_hash", "grid_dims", "runs", "learndyn_version"))
            and str(attrs.get("title", "")).startswith("learndyn sweep"))


def check_deletable(path: str | os.PathLike, cfg: SweepConfig | None = None) -> None:
    """Refuse (``ValueError``) to delete ``path`` for ``overwrite`` unless it is a store this package
    wrote (:func:`is_store`), and never the working directory, one of its parents, the config's folder
    or one of its parents, or the home or root directory -- whatever the path names."""
    shown = Path(path)
    real = shown.resolve()
    cwd = Path.cwd().resolve()
    guarded = {"the working directory": cwd, "the home directory": Path.home().resolve(),
               "the root directory": Path(real.anchor)}
    if cfg is not None and cfg.path is not None:
        guarded["the folder of the config"] = Path(cfg.path).resolve().parent
    for what, p in guarded.items():
        if real == p or p.is_relative_to(real):
            raise ValueError(f"store: refusing to delete {shown} for --overwrite: it is {what}"
                             f"{'' if real == p else ' or a parent of it'}; give a store path of its own (--store)")
    if not is_store(real):
        raise ValueError(f"store: refusing to delete {shown} for --overwrite: it is not a sweep store written by "
                         "learndyn; choose another store path, or remove it yourself if you mean to")


def _load_book(real: Path, shape: tuple[int, ...], group: Any = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """The bookkeeping arrays (flat); an unreadable one is replaced by its fill (status: pending) and
    reported in the list of problems."""
    import zarr

    size = int(np.prod(shape, dtype=np.int64))
    book, problems = {}, []
    try:
        g = group if group is not None else zarr.open_group(str(real), mode="r", zarr_format=2)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"store: {real} cannot be opened ({one_line(exc)}); its metadata is damaged") from None
    for name in _BOOK:
        fill, dtype = _BOOK_FILL[name]
        try:
            arr = np.array(g[name][...], dtype=dtype).reshape(-1)  # a 0-d grid reads back as a scalar (<U1)
            if arr.size != size:
                raise ValueError(f"{arr.size} entries, expected {size}")
        except Exception as exc:  # noqa: BLE001 - damaged chunk or metadata
            arr = np.full(size, fill, dtype=dtype)
            what = "every point counts as pending and is recomputed" if name == "sweep_status" else "reset"
            problems.append(f"{name} is unreadable ({one_line(exc)}); {what}")
        book[name] = arr
    return book, problems


def _output_names(real: Path, attrs: Mapping[str, Any]) -> list[str]:
    if "outputs" in attrs:
        return list(json.loads(attrs["outputs"]))
    # a store of an older version: the arrays on the grid dimensions that are not bookkeeping or coordinates
    grid_dims = json.loads(attrs.get("grid_dims", "[]"))
    zipped = set()
    try:
        for table in json.loads(attrs.get("config", "{}")).get("zip", {}).values():
            zipped |= set(table)
    except (json.JSONDecodeError, AttributeError):
        pass
    out = []
    for child in sorted(real.iterdir()):
        name = child.name
        if name in _BOOK or name in grid_dims or name in zipped or name.endswith("_values"):
            continue
        try:
            dims = json.loads((child / ".zattrs").read_text()).get("_ARRAY_DIMENSIONS", [])
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if list(dims[:len(grid_dims)]) == list(grid_dims):
            out.append(name)
    return out


def _damaged(real: Path, attrs: Mapping[str, Any], status_flat: np.ndarray, shape: tuple[int, ...]) -> dict[int, str]:
    """``flat -> what is wrong`` for every finished point whose stored values are missing (a chunk file
    gone; stores of version >= 2, which store every chunk) or unreadable (a chunk that does not decode
    to its size). Each chunk is read and decoded on its own, one at a time."""
    import numcodecs

    done = np.flatnonzero((status_flat == DONE) | (status_flat == FLAGGED))
    if done.size == 0:
        return {}
    check_missing = int(attrs.get("learndyn_store_version", 1)) >= 2
    bad: dict[int, str] = {}
    for name in _output_names(real, attrs):
        try:
            meta = json.loads((real / name / ".zarray").read_text())
            codec = numcodecs.get_codec(dict(meta["compressor"])) if meta.get("compressor") else None
            filters = [numcodecs.get_codec(dict(f)) for f in meta.get("filters") or []]
            nbytes = int(np.prod(meta["chunks"], dtype=np.int64)) * np.dtype(meta["dtype"]).itemsize
            sep = meta.get("dimension_separator") or "."
            n_extra = len(meta["shape"]) - len(shape)
        except Exception as exc:  # noqa: BLE001 - damaged or missing metadata of the variable
            for flat in done:
                bad.setdefault(int(flat), f"{name}: metadata unreadable ({one_line(exc)})")
            continue
        for flat in done:
            idx = np.unravel_index(int(flat), shape) if shape else ()
            key = sep.join([str(int(i)) for i in idx] + ["0"] * n_extra) or "0"
            try:
                raw = (real / name / key).read_bytes()
            except FileNotFoundError:
                if check_missing:
                    bad.setdefault(int(flat), f"{name}: chunk {key} missing")
                continue
            except OSError as exc:
                bad.setdefault(int(flat), f"{name}: chunk {key} unreadable ({one_line(exc)})")
                continue
            try:
                data = codec.decode(raw) if codec is not None else raw
                for flt in reversed(filters):
                    data = flt.decode(data)
                got = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8).size
                if got != nbytes:
                    raise ValueError(f"{got} bytes, expected {nbytes}")
            except Exception as exc:  # noqa: BLE001 - any decoding failure
                bad.setdefault(int(flat), f"{name}: chunk {key} unreadable ({one_line(exc)})")
    return bad


def _damage_message(shown: Path, bad: Mapping[int, str], coords: Any, consequence: str, limit: int = 5) -> str:
    items = sorted(bad.items())
    listed = "; ".join(f"{_fmt_coords(coords(f))} ({why})" for f, why in items[:limit])
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return (f"store {shown}: {len(items)} finished point(s) have missing or unreadable data: {listed}{more}; "
            f"{consequence}")


def _store_dir(path: str | os.PathLike) -> Path:
    """The resolved store directory, or a one-line ``ValueError`` saying why ``path`` is not a store."""
    shown = Path(path)
    real = shown.resolve()
    if real.exists() and not real.is_dir():
        raise ValueError(f"store: {shown} is a file, not a sweep store directory")
    if not (real / ".zgroup").exists():
        raise ValueError(f"store: {shown} is not a learndyn sweep store (no .zgroup)")
    return real


class _Verified:
    """A store opened for reading: lazily indexed dataset, bookkeeping and damaged points."""

    def __init__(self, path: str | os.PathLike, consequence: str) -> None:
        self.shown = Path(path)
        self.real = _store_dir(path)
        attrs = _read_attrs(self.real, self.shown)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # chunks=None: plain lazily indexed arrays, read here (never by a Dask cluster that may be active)
                self.ds = xr.open_zarr(str(self.real), consolidated=False, zarr_format=2, chunks=None)
        except Exception as exc:  # noqa: BLE001 - damaged metadata
            raise ValueError(f"store: {self.shown} cannot be opened ({one_line(exc)}); its metadata is damaged: "
                             "move it away (or delete it) and run the sweep again") from None
        self.grid_dims = json.loads(attrs.get("grid_dims", "[]"))
        self.shape = tuple(int(self.ds.sizes[d]) for d in self.grid_dims)
        self.book, problems = _load_book(self.real, self.shape)
        self.bad = _damaged(self.real, attrs, self.book["sweep_status"], self.shape)
        for flat in self.bad:
            self.book["sweep_status"][flat] = PENDING
        if problems:
            warnings.warn(f"store {self.shown}: {'; '.join(problems)}", RuntimeWarning, stacklevel=3)
        if self.bad:
            warnings.warn(_damage_message(self.shown, self.bad, self.coords, consequence), RuntimeWarning,
                          stacklevel=3)

    def coords(self, flat: int) -> dict[str, Any]:
        idx = np.unravel_index(flat, self.shape) if self.shape else ()
        return {d: self.ds[d].values[i].item() for d, i in zip(self.grid_dims, idx)}


def open_store(path: str | os.PathLike, *, only_done: bool = True) -> xr.Dataset:
    """Load a sweep store as one ``xarray.Dataset`` (into memory). With ``only_done`` the values of
    points that are not done are NaN (a failed point may hold part of an earlier attempt).

    Finished points are verified first: one whose data is missing or unreadable counts as pending
    (``sweep_status`` 0 in the returned dataset, a warning names it; the next run recomputes it), and
    an unreadable chunk reads as missing values instead of making the whole store unreadable."""
    v = _Verified(path, "they count as pending (the next run recomputes them)")
    ds = v.ds
    gshape = v.shape
    for name in list(ds.variables):
        if name in _BOOK:
            continue
        var = ds.variables[name]
        try:
            var.load()
        except Exception:  # noqa: BLE001 - a damaged chunk: read the variable point by point
            if tuple(var.dims[:len(v.grid_dims)]) != tuple(v.grid_dims) or not gshape:
                raise ValueError(f"store: {v.shown}: variable {name!r} cannot be read; its data is damaged: move "
                                 "the store away and run the sweep again") from None
            fill = np.nan if var.dtype.kind == "f" else -1
            data = np.full(var.shape, fill, dtype=var.dtype)
            for flat in range(int(np.prod(gshape))):
                idx = np.unravel_index(flat, gshape)
                try:
                    data[idx] = np.asarray(var[idx].values)
                except Exception:  # noqa: BLE001
                    if flat not in v.bad and v.book["sweep_status"][flat] in (DONE, FLAGGED):
                        v.book["sweep_status"][flat] = PENDING
            ds[name] = xr.Variable(var.dims, data, var.attrs, var.encoding)
    for name in _BOOK:
        ds[name] = xr.Variable(ds[name].dims, v.book[name].reshape(gshape), ds[name].attrs)
    if only_done:
        done = ds["sweep_status"].isin([DONE, FLAGGED])
        for name in list(ds.data_vars):
            if name in _BOOK or not set(v.grid_dims) <= set(ds[name].dims):
                continue
            ds[name] = ds[name].where(done)
    return ds


def status(path: str | os.PathLike) -> StoreStatus:
    """Done / pending / failed counts of the store at ``path`` (the store need not be complete). A
    finished point whose data is missing or unreadable counts as pending (with a warning)."""
    v = _Verified(path, "they count as pending (the next run recomputes them)")
    ds = v.ds
    st = v.book["sweep_status"].reshape(v.shape)
    msg = v.book["sweep_message"].reshape(v.shape)
    secs = v.book["sweep_seconds"]
    at = v.coords

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
