"""Runners: what one point of a sweep computes.

A :class:`Runner` ties a sweep to a theory or simulation:

* ``problem`` -- the frozen Problem dataclass whose fields become the ``[problem]`` (and ``[grid]``)
  keys of a sweep config; the pydantic models that validate configs are generated from it
  (:mod:`learndyn.sweep.config`), so there is no second list of parameters;
* ``options`` -- the runner's other parameters (time horizon, tolerances, initialisation, ``N``...),
  each an :class:`Option`; :func:`options_from` takes their types and defaults from the signature of
  the callable they are passed to, so those are not listed twice either;
* ``init`` -- how to build the initial state of one seed from the config keys (``None``: the callable
  draws it itself);
* ``call`` -- the theory or simulation itself;
* ``reduce`` -- the per-point variables (e.g. ``eg_final`` and the ``eg`` curve) from its result;
* ``outputs`` -- the names, dimensions and coordinates of those variables, known *before* running
  (they size the results store and the memory estimate).

Seeds of one point are batched into one task: with ``vectorised=True`` the callable receives all seeds
at once (e.g. the compiled, seed-vectorised SGD); otherwise the runner loops over them inside the task.

Built-in runners are imported lazily by name (``"online.ode"`` -> :mod:`learndyn.sweep.runners.online`),
so a theory module that is missing or broken never breaks the sweep package.

Configs are code: naming a runner runs the code behind it. So a config may name only

* a built-in runner (:data:`BUILTIN_RUNNERS`);
* a runner registered in this process with :func:`register`;
* a runner an installed package declares in the entry-point group ``learndyn.sweep_runners``
  (``[project.entry-points."learndyn.sweep_runners"] my-runner = "my_pkg.runners:RUNNER"``), loaded
  only when a config names it;
* an import path ``"package.module:attribute"`` only with ``allow_import=True`` (command line:
  ``--allow-import``), which imports that module -- from the working directory too -- exactly as a
  script would. Trust such a config as you would trust a script.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "Option", "Output", "PointResult", "Runner", "options_from", "problem_from_signature", "register", "get_runner",
    "available_runners", "BUILTIN_RUNNERS", "ENTRY_POINT_GROUP",
]

_MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class Option:
    """A runner option (a config key that is not a Problem field).

    ``type`` is a type pydantic understands (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
    ``float | None``...); ``default`` is used when the config does not set the key (``Option.REQUIRED``:
    the config must set it).
    """

    type: Any
    default: Any = _MISSING
    help: str = ""

    REQUIRED: typing.ClassVar[Any] = _MISSING

    @property
    def required(self) -> bool:
        """True when the option has no default (a config must set it)."""
        return self.default is _MISSING


@dataclass(frozen=True)
class Output:
    """One per-point variable: its dimensions (``"seed"`` for per-seed values) and the coordinates of
    every other dimension. Its shape at one point is ``(n_seeds, *len(coords[d]) ...)``."""

    dims: tuple[str, ...] = ()
    coords: Mapping[str, Any] = field(default_factory=dict)
    dtype: str = "f8"
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def shape(self, n_seeds: int) -> tuple[int, ...]:
        """The array shape of this output for one point with ``n_seeds`` seeds."""
        return tuple(n_seeds if d == "seed" else len(self.coords[d]) for d in self.dims)

    @property
    def fill(self) -> Any:
        """The value stored for a point not (yet) computed: NaN for floats, "" for strings, False, or -1."""
        kind = np.dtype(self.dtype).kind
        if kind == "f":
            return np.nan
        if kind in "US":
            return ""
        if kind == "b":
            return False
        return -1


@dataclass(frozen=True)
class PointResult:
    """What a runner's ``reduce`` returns for one point: the variables, and whether the numerics
    succeeded (``ok=False`` keeps the data computed so far; the point counts as done and is flagged)."""

    values: dict[str, Any]
    ok: bool = True
    message: str = ""


@dataclass(frozen=True)
class Runner:
    """See the module docstring. ``call(problem, x, **options)`` receives ``x`` = the initial state of
    one seed (``init`` given), the seed (``init=None``), or the list of seeds (``vectorised=True``);
    ``reduce(result, problem, options, seeds)`` returns a :class:`PointResult` or a dict.

    ``cost(problem, options, n_seeds)`` and ``memory(problem, options, n_seeds)`` are rough estimates
    (seconds on one core, bytes) for ``learndyn sweep --dry-run``; ``setup_cost(problem)`` is a
    once-per-worker cost (e.g. JIT compilation) shared by all points with the same ``setup_key``.
    ``check(problem, options)`` raises ``ValueError("key: ...")`` for combinations the types alone do
    not catch. ``field_types`` gives config types for Problem fields annotated with non-TOML types
    (e.g. ``activation: Any`` -> ``str``); ``exclude`` lists Problem fields not exposed in configs.
    """

    name: str
    problem: type
    call: Callable[..., Any]
    reduce: Callable[..., Any]
    outputs: Callable[..., Mapping[str, Output]]
    options: Mapping[str, Option] = field(default_factory=dict)
    init: Callable[..., Any] | None = None
    vectorised: bool = False
    seeded: bool = True
    check: Callable[..., None] | None = None
    cost: Callable[..., float] | None = None
    memory: Callable[..., float] | None = None
    setup_cost: Callable[..., float] | None = None
    setup_key: Callable[..., Any] | None = None
    field_types: Mapping[str, Any] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not (dataclasses.is_dataclass(self.problem) and isinstance(self.problem, type)):
            raise ValueError(f"problem: a runner needs a Problem dataclass, got {self.problem!r}")
        clash = set(self.options) & {f.name for f in dataclasses.fields(self.problem)}
        if clash:
            raise ValueError(f"options: {sorted(clash)} are Problem fields; an option must have another name")

    # -- evaluation of one point (runs on a worker) ------------------------------------------
    def evaluate(self, problem: Any, options: Mapping[str, Any], seeds: Sequence[int]) -> PointResult:
        """Run the callable for every seed of one point and reduce the result (one task)."""
        options = dict(options)
        call_kwargs = {k: v for k, v in options.items() if k in _call_parameters(self.call)}
        if not self.seeded:
            result = self.call(problem, **call_kwargs)
            return _as_point_result(self.reduce(result, problem, options, list(seeds)))
        if self.vectorised:
            result = self.call(problem, list(seeds), **call_kwargs)
            return _as_point_result(self.reduce(result, problem, options, list(seeds)))
        parts = []
        for seed in seeds:
            x = self.init(problem, options, int(seed)) if self.init is not None else int(seed)
            result = self.call(problem, x, **call_kwargs)
            parts.append(_as_point_result(self.reduce(result, problem, options, [int(seed)])))
        return _stack_seeds(parts, self.outputs(problem, options, len(seeds)))


def _call_parameters(func: Callable) -> set[str]:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return _ALL
    return set(params)


class _AllNames(set):
    def __contains__(self, item: object) -> bool:  # every name is accepted by a **kwargs callable
        return True


_ALL = _AllNames()


def _as_point_result(value: Any) -> PointResult:
    if isinstance(value, PointResult):
        return value
    if isinstance(value, Mapping):
        return PointResult(values=dict(value))
    raise TypeError(f"reduce: must return a PointResult or a dict, got {type(value).__name__}")


def _stack_seeds(parts: list[PointResult], outputs: Mapping[str, Output]) -> PointResult:
    values: dict[str, Any] = {}
    for name, out in outputs.items():
        arrays = [np.asarray(p.values[name]) for p in parts]
        if "seed" in out.dims:
            axis = out.dims.index("seed")
            values[name] = np.concatenate(arrays, axis=axis)
        else:
            values[name] = arrays[0]
    ok = all(p.ok for p in parts)
    message = "; ".join(p.message for p in parts if p.message)
    return PointResult(values=values, ok=ok, message=message)


def options_from(func: Callable, names: Sequence[str], **overrides: Option) -> dict[str, Option]:
    """Options for the keyword arguments ``names`` of ``func``, with the types and defaults of its
    signature (``overrides`` replace single entries, e.g. to restrict a ``str`` to its allowed values)."""
    sig = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the defaults' types
        hints = {}
    out: dict[str, Option] = {}
    for name in names:
        if name in overrides:
            out[name] = overrides[name]
            continue
        if name not in sig.parameters:
            raise ValueError(f"options_from: {func.__qualname__} has no parameter {name!r}")
        p = sig.parameters[name]
        tp = hints.get(name, type(p.default) if p.default is not inspect.Parameter.empty else Any)
        default = _MISSING if p.default is inspect.Parameter.empty else p.default
        out[name] = Option(type=tp, default=default, help=f"{func.__qualname__}({name}=...)")
    for name, opt in overrides.items():
        out.setdefault(name, opt)
    return out


def problem_from_signature(func: Callable, names: Sequence[str], *, name: str,
                           validate: Callable[[Any], None] | None = None, doc: str = "") -> type:
    """A frozen Problem dataclass for a theory that takes its parameters as function arguments: the
    fields are the arguments ``names`` of ``func`` with their annotated types and defaults (so they are
    not listed a second time); ``validate(problem)`` runs in ``__post_init__`` and should reuse the
    theory's own checks (raising ``ValueError("name: ...")``)."""
    sig = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001
        hints = {}
    fields_ = []
    for n in names:
        p = sig.parameters[n]
        tp = hints.get(n, type(p.default) if p.default is not inspect.Parameter.empty else Any)
        if p.default is inspect.Parameter.empty:
            fields_.append((n, tp))
        else:
            fields_.append((n, tp, dataclasses.field(default=p.default)))

    def __post_init__(self) -> None:
        if validate is not None:
            validate(self)

    cls = dataclasses.make_dataclass(name, fields_, frozen=True, namespace={"__post_init__": __post_init__})
    cls.__doc__ = doc or f"Parameters of {func.__module__}.{func.__qualname__} ({', '.join(names)})."
    cls.__module__ = getattr(validate, "__module__", __name__) if validate is not None else __name__
    return cls


def pad(values: Any, shape: tuple[int, ...], fill: Any = np.nan) -> np.ndarray:
    """``values`` placed at the start of an array of ``shape`` filled with ``fill`` (a trajectory that
    stopped early keeps its computed part and is NaN afterwards)."""
    arr = np.asarray(values)
    out = np.full(shape, fill, dtype=np.result_type(arr.dtype, np.float64) if arr.dtype.kind in "fiub" else arr.dtype)
    if arr.ndim != len(shape):
        raise ValueError(f"pad: expected {len(shape)} dimensions, got shape {arr.shape}")
    out[tuple(slice(0, min(a, b)) for a, b in zip(arr.shape, shape))] = arr[
        tuple(slice(0, min(a, b)) for a, b in zip(arr.shape, shape))]
    return out


# ------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------
#: built-in runners: name -> "module:attribute" (imported on first use)
BUILTIN_RUNNERS: dict[str, str] = {
    "online.ode": "learndyn.sweep.runners.online:ODE",
    "online.sgd": "learndyn.sweep.runners.online:SGD",
    "dmft": "learndyn.sweep.runners.dmft:DMFT",
    "kernels.signal": "learndyn.sweep.runners.kernels:SIGNAL",
}

_REGISTERED: dict[str, Runner] = {}

#: entry-point group through which installed packages offer sweep runners (name -> "module:attribute")
ENTRY_POINT_GROUP = "learndyn.sweep_runners"


def _entry_points() -> dict[str, Any]:
    """The runners installed packages declare in :data:`ENTRY_POINT_GROUP` (nothing is imported)."""
    from importlib.metadata import entry_points

    try:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # noqa: BLE001 - broken package metadata must not break the sweep package
        return {}


def register(runner: Runner, *, replace: bool = False) -> Runner:
    """Register a runner under ``runner.name`` (in this process; workers receive the runner object
    itself with each task, so runners registered at run time work on any cluster)."""
    if not isinstance(runner, Runner):
        raise ValueError(f"runner: expected learndyn.sweep.Runner, got {type(runner).__name__}")
    if not replace and (runner.name in _REGISTERED or runner.name in BUILTIN_RUNNERS):
        raise ValueError(f"runner: the name {runner.name!r} is taken; pass replace=True to override it")
    _REGISTERED[runner.name] = runner
    return runner


def _import_ref(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def get_runner(name: str, *, allow_import: bool = False) -> Runner:
    """The runner called ``name``: a registered or built-in name, an entry point of the group
    ``learndyn.sweep_runners``, or -- only with ``allow_import=True`` -- an import path ``"pkg.mod:attr"``
    (which imports and runs that module: trust the config as you would a script).

    Raises ``ValueError`` naming the allowed runners when the name is unknown, saying why when a
    built-in runner's theory module is not available, and saying how to allow an import path.
    """
    if isinstance(name, Runner):
        return name
    if not isinstance(name, str) or not name:
        raise ValueError(f"sweep.runner: expected a runner name, got {name!r}")
    if name in _REGISTERED:
        return _REGISTERED[name]
    eps = {} if name in BUILTIN_RUNNERS else _entry_points()
    if name in BUILTIN_RUNNERS:
        try:
            runner = _import_ref(BUILTIN_RUNNERS[name])
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"sweep.runner: {name!r} is not available here ({type(exc).__name__}: {exc})") from None
    elif name in eps:
        try:
            runner = eps[name].load()
        except Exception as exc:  # noqa: BLE001 - an installed plug-in that fails to import
            raise ValueError(f"sweep.runner: the installed runner {name!r} ({eps[name].value}) failed to load "
                             f"({type(exc).__name__}: {exc})") from None
    elif ":" in name:
        if not allow_import:
            raise ValueError(
                f"sweep.runner: {name!r} is an import path, and importing a module a config names runs its code; "
                f"use a registered runner ({ENTRY_POINT_GROUP} entry point, or learndyn.sweep.register), or pass "
                "--allow-import (allow_import=True) if you trust this config like a script")
        try:
            runner = _import_ref(name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"sweep.runner: cannot import {name!r} ({type(exc).__name__}: {exc})") from None
    else:
        allowed = sorted(set(BUILTIN_RUNNERS) | set(_REGISTERED) | set(eps))
        raise ValueError(f"sweep.runner: unknown runner {name!r}; allowed are {allowed}, a runner registered "
                         f"through the {ENTRY_POINT_GROUP!r} entry points, or with --allow-import an import path "
                         "'package.module:attribute'")
    if not isinstance(runner, Runner):
        raise ValueError(f"sweep.runner: {name!r} is a {type(runner).__name__}, not a learndyn.sweep.Runner")
    return runner


def available_runners() -> dict[str, str]:
    """Every known runner name -> its description, or why it is unavailable."""
    out = {}
    for name in sorted(set(BUILTIN_RUNNERS) | set(_REGISTERED) | set(_entry_points())):
        try:
            out[name] = get_runner(name).description or "(no description)"
        except ValueError as exc:
            out[name] = f"unavailable: {exc}"
    return out
