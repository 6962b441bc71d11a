"""Result base class: every theory and simulation returns a Result that converts to ``xarray``.

A Result knows its Problem and the package version and writes both into the Dataset's attributes, and
its class (``result_class``), so :func:`load` gives back the same kind of object. Files are written
atomically (serialised in memory, free space checked, temporary file + ``os.replace``), so an
interrupted run or a full disk never leaves a half-written file behind or damages an existing one.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import importlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr


# ------------------------------------------------------------------------------------------------
# the spine shared by every theory: one error class for invalid input, one status vocabulary
# ------------------------------------------------------------------------------------------------
class InvalidInputError(ValueError):
    """A parameter given to learndyn is invalid; the message names it and says what to change.

    Every public function of the three theories raises this (a ``ValueError``) for bad input, before any
    work is done.
    """


class Status(str, enum.Enum):
    """How a computation ended: the same vocabulary for every theory and simulation.

    A ``str`` enum, so ``result.status == "success"`` and the value written into netCDF attributes are the
    plain names. :meth:`describe` gives the standard explanation; results carry their own ``message``
    with the specifics (where, why, what to change).
    """

    SUCCESS = "success"
    DIVERGED = "diverged"
    NONFINITE = "nonfinite"
    MAX_STEPS = "max_steps"
    STEP_TOO_SMALL = "step_too_small"
    NOT_PSD = "not_psd"
    NOT_CONVERGED = "not_converged"
    ILL_CONDITIONED = "ill_conditioned"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    def describe(self) -> str:
        """The standard one-line explanation of this status."""
        return _STATUS_TEXT[self]

    @classmethod
    def of(cls, value: "Status | str") -> "Status":
        """The :class:`Status` named by ``value`` (a member or its name; the legacy ``"ok"`` is success)."""
        if isinstance(value, cls):
            return value
        text = str(value)
        if text == "ok":
            return cls.SUCCESS
        try:
            return cls(text)
        except ValueError:
            raise InvalidInputError(f"status: {text!r} is not one of {', '.join(s.value for s in cls)}") from None


_STATUS_TEXT = {
    Status.SUCCESS: "finished: every requested time / point was computed",
    Status.DIVERGED: "stopped: the state grew past the divergence threshold (lower the learning rate)",
    Status.NONFINITE: "stopped: a NaN or infinity appeared (lower the learning rate or the step size)",
    Status.MAX_STEPS: "stopped: the step budget ran out before the end (raise max_steps)",
    Status.STEP_TOO_SMALL: "stopped: the adaptive step fell below its minimum (stiff or non-smooth problem)",
    Status.NOT_PSD: "stopped: an overlap matrix left the positive semi-definite cone",
    Status.NOT_CONVERGED: "finished without converging to the requested tolerance",
    Status.ILL_CONDITIONED: "stopped: a kernel / linear system is too ill-conditioned to solve in float64",
    Status.INTERRUPTED: "stopped by the user (Ctrl-C); what was computed is kept",
    Status.FAILED: "failed",
}

__all__ = ["Result", "Status", "InvalidInputError", "problem_attrs", "publish_file", "atomic_write_netcdf", "check_output_path", "check_output_folder",
           "is_netcdf_file", "load",
           "load_dataset", "ResultFormatError"]


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
    if callable(value):  # e.g. a custom activation: its qualified name (a callable cannot round-trip)
        from .activations import qualified_name

        return qualified_name(value)
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


def publish_file(tmp: str, path: Path) -> None:
    """Give a finished temporary file the ordinary permissions (mkstemp makes it 0600) and move it
    into place atomically."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# output paths: checked before computing, written without ever damaging an existing file
# ------------------------------------------------------------------------------------------------
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")


def is_netcdf_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is a netCDF-3 or netCDF-4/HDF5 file (by its magic bytes; an HDF5 superblock may
    follow a user block of 512, 1024, 2048, ... bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head[:4] in _NETCDF3_MAGIC or head == _HDF5_MAGIC:
                return True
            size = os.fstat(fh.fileno()).st_size
            offset = 512
            while offset + 8 <= size:
                fh.seek(offset)
                if fh.read(8) == _HDF5_MAGIC:
                    return True
                offset *= 2
    except OSError:
        return False
    return False


def check_output_path(path: str | os.PathLike, *, name: str = "path", overwrite: bool = False) -> Path:
    """Check, before any work, that a result can be written to ``path``; return it as a :class:`Path`.

    Refused (``ValueError`` naming the parameter ``name``): a path that is a folder; a folder on the way
    that is a file; a folder (the nearest existing one) this process may not write to; an existing file
    that is not netCDF/HDF5 (it would be overwritten) unless ``overwrite``. Nothing is created.
    """
    if path is None or isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{name}: expected a file path, got {path!r}")
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise ValueError(f"{name}: expected a file path, got {str(path)!r}")
    if p.is_dir():
        raise ValueError(f"{name}: {p} is a folder; give a file name such as {p / 'result.nc'}")
    _check_folder(p.parent, name, p)
    if p.exists() and not overwrite and not is_netcdf_file(p):
        raise ValueError(f"{name}: {p} exists and is not a netCDF file, so saving would destroy it; choose "
                         "another path or pass overwrite=True")
    return p


def _check_folder(folder: Path, name: str, target: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name}: cannot write {target}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write {target}: the folder {existing} is not writable; choose a "
                         "writable location")


def check_output_folder(folder: str | os.PathLike, *, name: str = "out_dir") -> Path:
    """Check, before any work, that files can be written into ``folder`` (existing or to be created);
    ``ValueError`` naming the parameter ``name`` otherwise. Nothing is created."""
    if folder is None or isinstance(folder, bool) or not isinstance(folder, (str, os.PathLike)):
        raise ValueError(f"{name}: expected a folder path, got {folder!r}")
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name}: {p} is a file, not a folder; choose another path")
    _check_folder(p, name, p)
    return p


def _serialise(ds: xr.Dataset) -> bytes:
    """The netCDF-4 file contents of ``ds`` in memory (so a failed write cannot leave a broken file)."""
    return bytes(ds.to_netcdf(engine="h5netcdf"))


def _check_free_space(folder: Path, nbytes: int, path: Path) -> None:
    import shutil

    from .resources import format_bytes

    free = shutil.disk_usage(folder).free
    if nbytes + 2**20 > free:
        raise OSError(errno.ENOSPC, f"not enough disk space to save {path}: it needs {format_bytes(nbytes)} and "
                      f"{format_bytes(free)} is free on {folder}; nothing was written"
                      + (" (the existing file is unchanged)" if path.exists() else ""))


def atomic_write_netcdf(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``ds`` to ``path`` as netCDF-4 atomically, never damaging what is there.

    The file is serialised in memory first, the free disk space is checked against its size, then it is
    written with ordinary file I/O to a temporary file beside ``path`` and moved into place
    (``os.replace``). Any failure (``OSError``: disk full, permissions, ...) removes the temporary file
    and leaves an existing ``path`` unchanged. An existing file that is not netCDF is refused
    (``ValueError``) unless ``overwrite``. A Dataset too large to hold twice in memory is written by the
    netCDF library straight into the temporary file, after checking the free space against its size.
    """
    from .resources import available_memory

    path = check_output_path(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    in_memory = 2 * ds.nbytes < 0.5 * available_memory()
    data = _serialise(ds) if in_memory else None
    _check_free_space(path.parent, len(data) if in_memory else int(1.05 * ds.nbytes), path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if in_memory:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if not in_memory:
            ds.to_netcdf(tmp, engine="h5netcdf")
        publish_file(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


# ------------------------------------------------------------------------------------------------
# loading: a registry of the result classes (no import of names read from a file)
# ------------------------------------------------------------------------------------------------
RESULT_CLASS_ATTR = "result_class"

#: result-class key (written into the file) -> (module, class name); fixed here, never read from files.
_REGISTRY: dict[str, tuple[str, str]] = {
    "online.Trajectory": ("learndyn.online.ode", "Trajectory"),
    "online.Simulation": ("learndyn.online.sgd", "Simulation"),
    "online.Comparison": ("learndyn.online.comparison", "Comparison"),
    "online.FixedPoint": ("learndyn.online.fixed_points", "FixedPoint"),
    "dmft.SymmetricSolution": ("learndyn.dmft.results", "SymmetricSolution"),
    "dmft.GeneralSolution": ("learndyn.dmft.results", "GeneralSolution"),
    "dmft.RichardsonSolution": ("learndyn.dmft.results", "RichardsonSolution"),
    "dmft.ReducedSolution": ("learndyn.dmft.reduced", "ReducedSolution"),
    "dmft.Simulation": ("learndyn.dmft.simulation", "Simulation"),
    "dmft.Comparison": ("learndyn.dmft.comparison", "Comparison"),
    "kernels.Kernel": ("learndyn.kernels.network", "Kernel"),
    "kernels.SignalPropagation": ("learndyn.kernels.signal", "SignalPropagation"),
    "kernels.CriticalLine": ("learndyn.kernels.signal", "CriticalLine"),
    "kernels.SpectrumResult": ("learndyn.kernels.spectrum", "SpectrumResult"),
    "kernels.TrainResult": ("learndyn.kernels.training", "TrainResult"),
    "kernels.GDPredictions": ("learndyn.kernels.spectrum", "GDPredictions"),
    "kernels.Regression": ("learndyn.kernels.regression", "Regression"),
    "kernels.Evaluation": ("learndyn.kernels.evaluation", "Evaluation"),
}


def result_class_key(cls: type) -> str:
    """The registry key of a result class (``"online.Trajectory"``), or ``""`` if it is not registered."""
    for key, (module, name) in _REGISTRY.items():
        if cls.__module__ == module and cls.__qualname__ == name:
            return key
    return ""


class ResultFormatError(InvalidInputError):
    """A file's contents do not describe a result that can be rebuilt (e.g. a custom activation)."""


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """The Dataset stored in a netCDF file (fully loaded into memory)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"path: {p} does not exist or is not a file")
    if not is_netcdf_file(p):
        raise ValueError(f"path: {p} is not a netCDF file (written by learndyn's save or to_netcdf)")
    with xr.open_dataset(p, engine="h5netcdf") as ds:
        return ds.load()


def load(path: str | os.PathLike) -> Any:
    """Load a file written by :meth:`Result.save`: the same kind of result object that wrote it
    (:class:`~learndyn.online.Trajectory`, :class:`~learndyn.online.Simulation`, a DMFT solution, a
    :class:`~learndyn.kernels.Kernel`, ...), with the data and the problem.

    The class is looked up by the ``result_class`` attribute in a fixed registry of learndyn's result
    classes. Files without it (e.g. the experiment summaries, or other netCDF files) come back as the
    ``xarray.Dataset``; so do files whose result cannot be rebuilt (then with a warning), e.g. a problem
    with a user-supplied activation function. Every result gives its Dataset with ``.to_xarray()``.
    """
    ds = load_dataset(path)
    key = ds.attrs.get(RESULT_CLASS_ATTR)
    if not isinstance(key, str) or key not in _REGISTRY:
        return ds
    module, name = _REGISTRY[key]
    cls = getattr(importlib.import_module(module), name)
    try:
        return cls.from_xarray(ds)
    except (ResultFormatError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        warnings.warn(f"learndyn.load: {path} holds a {key} that cannot be rebuilt ({exc}); returning the "
                      "Dataset", RuntimeWarning, stacklevel=2)
        return ds


def problem_json(ds: xr.Dataset) -> Any:
    """The problem description stored by :func:`problem_attrs`."""
    try:
        return json.loads(ds.attrs["problem"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ResultFormatError(f"no readable problem description ({exc})") from None


def activation_from_json(value: Any) -> Any:
    """An activation as stored by :func:`problem_attrs`: a name, or the fields of an
    :class:`~learndyn.activations.Activation` (a ``"custom"`` function cannot be restored)."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, dict) and "name" in value:
        if value["name"] == "custom":
            raise ResultFormatError("the activation is a user-supplied function, which a file cannot hold")
        from .activations import Activation

        return Activation(**{k: value[k] for k in ("name", "scale", "a", "b", "label") if k in value})
    raise ResultFormatError(f"cannot restore the activation {value!r}")


def _restore(value: Any) -> Any:
    if isinstance(value, dict) and "name" in value and "scale" in value:
        return activation_from_json(value)
    if isinstance(value, list):
        return tuple(_restore(v) for v in value)
    return value


def rebuild_problem(ds: xr.Dataset, cls: type) -> Any:
    """The problem (an instance of the dataclass ``cls``) described by ``ds``'s ``problem`` attribute.

    JSON lists come back as tuples and activations as :class:`~learndyn.activations.Activation`; the
    problem's own validation runs again. ``ResultFormatError`` if the file holds another kind of problem.
    """
    stored = ds.attrs.get("problem_class")
    if stored is not None and stored != cls.__qualname__:
        raise ResultFormatError(f"the file holds a {stored}, not a {cls.__qualname__}")
    data = problem_json(ds)
    if not isinstance(data, dict):
        raise ResultFormatError(f"the problem description is not a JSON object: {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _restore(v) for k, v in data.items() if k in names})


def json_attr(ds: xr.Dataset, name: str, default: Any = None) -> Any:
    """An attribute written by :func:`problem_attrs` (JSON-decoded where it was JSON-encoded)."""
    if name not in ds.attrs:
        return default
    value = ds.attrs[name]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


class Result:
    """Mixin for result objects: subclasses implement :meth:`to_xarray` and :meth:`from_xarray`.

    Every result has a ``status`` (a :class:`Status`, or its name), ``success`` (``status`` is success) and a
    ``message``; it converts to an ``xarray.Dataset`` (:meth:`to_xarray`), saves atomically as netCDF
    (:meth:`save`) and :func:`load` gives back the same class.
    """

    @property
    def success(self) -> bool:
        """True when the computation finished (``status == Status.SUCCESS``)."""
        return Status.of(getattr(self, "status", Status.SUCCESS)) is Status.SUCCESS

    def to_xarray(self) -> xr.Dataset:  # pragma: no cover - abstract
        """The result as an ``xarray.Dataset``: named dimensions, the problem and status in the attributes."""
        raise NotImplementedError

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Result":  # pragma: no cover - abstract
        """The result a Dataset written by :meth:`to_xarray` describes (the inverse of :meth:`to_xarray`)."""
        raise NotImplementedError

    def _file_dataset(self) -> xr.Dataset:
        ds = self.to_xarray()
        key = result_class_key(type(self))
        if key:
            ds.attrs[RESULT_CLASS_ATTR] = key
        return ds

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save as netCDF-4, atomically; :func:`learndyn.load` gives this result back.

        Raises ``ValueError`` for a path that cannot be written or an existing file that is not netCDF
        (unless ``overwrite``), and ``OSError`` when writing fails (disk full, ...); an existing file at
        ``path`` is then left unchanged.
        """
        return atomic_write_netcdf(self._file_dataset(), path, overwrite=overwrite)
