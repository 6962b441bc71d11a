"""Result base class: every theory and simulation returns a Result that converts to ``xarray``.

A Result knows its Problem and the package version and writes both into the Dataset's attributes.
Files are written atomically (temporary file + ``os.replace``), so an interrupted run never leaves
a half-written file behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["Result", "problem_attrs", "atomic_write_netcdf", "load"]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def problem_attrs(problem: Any, **extra: Any) -> dict[str, Any]:
    """netCDF-safe attributes describing a problem: its JSON, its class, the package version."""
    from . import __version__

    attrs: dict[str, Any] = {
        "learndyn_version": __version__,
        "problem_class": type(problem).__qualname__,
        "problem": json.dumps(_jsonable(problem)),
    }
    for key, value in extra.items():
        value = _jsonable(value)
        attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
    return attrs


def _umask() -> int:
    """The process's umask, read without changing it: ``os.umask`` can only read it by setting it, which
    for a moment changes the permissions of files other threads create. Linux reports it in
    ``/proc/self/status`` (``Umask:``); elsewhere the usual 022 is assumed."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _publish(tmp: str, path: Path) -> None:
    """Give a finished temporary file the ordinary permissions (mkstemp makes it 0600) and move it
    into place atomically."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def atomic_write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically (temp file in the same directory, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    """Load a result file written by :meth:`Result.save` (fully into memory)."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


class Result:
    """Mixin for result objects: subclasses implement :meth:`to_xarray`."""

    def to_xarray(self) -> xr.Dataset:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> Path:
        """Save as netCDF (atomically)."""
        return atomic_write_netcdf(self.to_xarray(), path)
