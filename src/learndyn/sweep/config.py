"""Sweep configs: TOML files validated by pydantic models generated from the runner's Problem dataclass.

A config has five tables::

    [sweep]                      # what to run and where to store it
    runner = "online.ode"        # a runner name (learndyn sweep-runners); see "Configs are code" below
    name = "eg_vs_K"             # optional; default: the file's stem
    store = "eg_vs_K.zarr"       # optional; relative to the config file. Default (no key, no --store):
                                 # results/sweeps/<config stem>.zarr under the working directory
    seeds = 3                    # a number n (seeds 0..n-1) or a list of seeds; all run in one task

    [problem]                    # fixed fields of the runner's Problem dataclass
    M = 2
    lr = 0.5

    [options]                    # fixed runner options (time horizon, tolerances, N, ...)
    alpha_max = 1000.0

    [grid]                       # swept keys (Problem fields or options): cartesian product, in order
    K = [1, 2, 3, 4, 5, 6]
    activation = ["erf", "relu", "linear"]

    [zip.m]                      # optional: keys that vary *together with* a grid axis (same length)
    n_over_d = [0.6, 1.2, 2.4]   # e.g. abar = 0.3 m for m = [2, 4, 8]; stored as coordinates on m

    [dask]                       # optional execution defaults (command-line flags win)
    scheduler = "tcp://host:8786"
    n_workers = 4

The ``[problem]``, ``[options]`` and ``[grid]`` models are generated here from the Problem dataclass's
fields (types from its annotations, defaults from its defaults) and from the runner's options; value
ranges and cross-field rules are then checked by constructing the Problem itself for every grid point
(its ``__post_init__`` is the one place that knows them). Every error names the key path
(``grid.K[2]``, ``problem.lr``, ``options.N``) and what is allowed.

Configs are code: a config names the runner whose code every point runs, and may point the store
anywhere. Trust a config as you would trust a script. An import path ``runner = "pkg.mod:attr"`` is
refused unless ``allow_import=True`` (``--allow-import``); installed packages offer runners by name
through the ``learndyn.sweep_runners`` entry points (:mod:`learndyn.sweep.registry`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .registry import Option, Runner, get_runner

__all__ = ["ConfigError", "SweepConfig", "load_config", "config_models", "TABLES"]

TABLES = ("sweep", "problem", "options", "grid", "zip", "dask")
_MAX_ERRORS = 12


class ConfigError(ValueError):
    """An invalid sweep config; ``errors`` lists one ``"key.path: what is wrong; what is allowed"`` each."""

    def __init__(self, errors: list[str], source: str | None = None) -> None:
        self.errors = list(errors)
        head = f"invalid sweep config{f' {source}' if source else ''}"
        super().__init__(head + ":\n  " + "\n  ".join(self.errors))


# ------------------------------------------------------------------------------------------
# model generation
# ------------------------------------------------------------------------------------------
_STRICT = ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=False)


def _toml_type(tp: Any) -> Any:
    """A config type for a dataclass annotation (``Any`` -> any TOML scalar)."""
    if tp is Any or tp is object:
        return int | float | bool | str
    return tp


_FIELDS_CACHE: dict[int, tuple[Runner, dict[str, tuple[Any, Any]]]] = {}


def problem_fields(runner: Runner) -> dict[str, tuple[Any, Any]]:
    """``name -> (config type, default or MISSING)`` for every exposed field of the runner's Problem."""
    hit = _FIELDS_CACHE.get(id(runner))
    if hit is not None and hit[0] is runner:
        return hit[1]
    out = _problem_fields(runner)
    _FIELDS_CACHE[id(runner)] = (runner, out)
    return out


def _problem_fields(runner: Runner) -> dict[str, tuple[Any, Any]]:
    cls = runner.problem
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: use Any
        hints = {}
    out: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in runner.exclude or f.name.startswith("_"):
            continue
        tp = runner.field_types.get(f.name, _toml_type(hints.get(f.name, Any)))
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = dataclasses.MISSING
        out[f.name] = (tp, default)
    return out


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_describe(a) for a in args)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {_describe(args[0])}" if args else "a list"
    return getattr(tp, "__name__", str(tp))


def describe_type(tp: Any) -> str:
    """How a value of the config type ``tp`` is named in messages and by ``learndyn sweep-runners`` (e.g. "a
    number", "one of 'erf', 'relu'")."""
    return _describe(tp)


def config_models(runner: Runner) -> dict[str, type[BaseModel]]:
    """The pydantic models of one runner's config tables, generated from its Problem and options."""
    pf = problem_fields(runner)
    opts: dict[str, Option] = dict(runner.options)
    problem_model = create_model(
        f"{runner.problem.__name__}Config", __config__=_STRICT,
        **{name: (tp, Field(default=None, description=_describe(tp))) for name, (tp, _) in pf.items()},
    )
    options_model = create_model(
        "OptionsConfig", __config__=_STRICT,
        **{name: (o.type, Field(default=None, description=o.help or _describe(o.type))) for name, o in opts.items()},
    )
    axes = {name: tp for name, (tp, _) in pf.items()} | {name: o.type for name, o in opts.items()}
    grid_model = create_model(
        "GridConfig", __config__=_STRICT,
        **{name: (list[tp], Field(default=None, min_length=1, description=f"a non-empty list of {_describe(tp)}"))
           for name, tp in axes.items()},
    )
    sweep_model = create_model(
        "SweepSection", __config__=_STRICT,
        runner=(str, ...), name=(str, None), description=(str, ""), store=(str, None), seeds=(Any, None),
    )
    dask_model = create_model(
        "DaskSection", __config__=_STRICT,
        scheduler=(str, None), n_workers=(int, Field(default=None, ge=1)),
        threads_per_worker=(int, Field(default=None, ge=1)),
    )
    return {"sweep": sweep_model, "problem": problem_model, "options": options_model, "grid": grid_model,
            "dask": dask_model}


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _format_pydantic(table: str, exc: ValidationError, model: type[BaseModel]) -> list[str]:
    errors = []
    allowed = sorted(model.model_fields)
    for err in exc.errors():
        loc = (table, *err["loc"])
        # for a union type pydantic adds the member type to the location: drop it
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("int", "float", "bool", "str"))))
        path = _path(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            errors.append(f"{path}: unknown key; allowed keys in [{table}] are {', '.join(allowed)}")
            continue
        if kind == "missing":
            errors.append(f"{path}: required")
            continue
        key = err["loc"][0] if err["loc"] else None
        expected = model.model_fields[key].description if key in model.model_fields else None
        if key in model.model_fields and len(err["loc"]) > 1 and isinstance(err["loc"][1], int):
            args = typing.get_args(model.model_fields[key].annotation)  # an element of a list[T]
            expected = _describe(args[0]) if args else expected
        msg = err["msg"]
        got = err.get("input")
        text = f"{path}: {msg}, got {got!r}"
        if expected and kind != "literal_error":
            text += f"; expected {expected}"
        errors.append(text)
    # a union type reports one error per member at the same path: keep the first of each path
    seen, out = set(), []
    for e in errors:
        p = e.split(":", 1)[0]
        if p not in seen:
            seen.add(p)
            out.append(e)
    return out


# ------------------------------------------------------------------------------------------
# the validated config
# ------------------------------------------------------------------------------------------
def _check_seeds(value: Any) -> tuple[int, ...]:
    hint = ("sweep.seeds: a number of seeds n >= 1 (seeds 0..n-1) or a non-empty list of distinct "
            "non-negative integers")
    if value is None:
        return (0,)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError([f"{hint}, got {value!r}"])
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                for s in value):
        if len(set(value)) != len(value):
            raise ConfigError([f"{hint}; got duplicates in {value!r}"])
        return tuple(value)
    raise ConfigError([f"{hint}, got {value!r}"])


def _jsonable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, np.generic):
        return v.item()
    return repr(v)


@dataclass(frozen=True, eq=False)
class SweepConfig:
    """A validated sweep: runner, fixed Problem fields, fixed options, grid axes, seeds.

    Build it with :func:`load_config` (a TOML path, TOML text or a dict). ``dims``/``shape`` describe
    the grid; :meth:`point` gives the Problem and the full options of one grid point.
    """

    runner: Runner
    runner_name: str
    name: str
    problem: dict[str, Any]
    options: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: tuple[int, ...]
    zipped: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    description: str = ""
    store: Path | None = None
    dask: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    path: Path | None = None

    # -- grid ------------------------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        """Names of the grid axes, in order."""
        return tuple(self.grid)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of values along each grid axis."""
        return tuple(len(v) for v in self.grid.values())

    @property
    def size(self) -> int:
        """Number of grid points."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def problem_keys(self) -> set[str]:
        """The runner's problem fields (the keys a grid axis or fixed value may set)."""
        return set(problem_fields(self.runner))

    def index(self, flat: int) -> tuple[int, ...]:
        """Grid indices of the flat point number ``flat`` (C order)."""
        return tuple(int(i) for i in np.unravel_index(flat, self.shape)) if self.shape else ()

    def coords(self, flat: int) -> dict[str, Any]:
        """The grid-axis values at the flat grid index ``flat``."""
        return {d: self.grid[d][i] for d, i in zip(self.dims, self.index(flat))}

    def swept(self, flat: int) -> dict[str, Any]:
        """Every swept key's value at ``flat``: the grid axes and the keys zipped to them."""
        out = {}
        for d, i in zip(self.dims, self.index(flat)):
            out[d] = self.grid[d][i]
            for key, values in self.zipped.get(d, {}).items():
                out[key] = values[i]
        return out

    @property
    def swept_keys(self) -> dict[str, str]:
        """swept key -> the grid axis it follows (itself for an axis)."""
        out = {d: d for d in self.grid}
        for d, table in self.zipped.items():
            out.update({k: d for k in table})
        return out

    def full_options(self, swept: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The runner's options with defaults filled in, the fixed ones and ``swept`` applied."""
        out = {name: o.default for name, o in self.runner.options.items() if not o.required}
        out.update(self.options)
        pk = self.problem_keys
        out.update({k: v for k, v in (swept or {}).items() if k not in pk})
        return out

    def point(self, flat: int) -> tuple[Any, dict[str, Any]]:
        """``(problem, options)`` at the flat grid index ``flat``."""
        swept = self.swept(flat)
        pk = self.problem_keys
        kwargs = dict(self.problem)
        kwargs.update({k: v for k, v in swept.items() if k in pk})
        return self.runner.problem(**kwargs), self.full_options(swept)

    def points(self) -> Iterator[int]:
        """The flat point numbers, in order."""
        return iter(range(self.size))

    # -- identity (resume) -------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """Everything that determines the numbers of the sweep (not its name, store or execution).
        Defaults are filled in, so a changed package default is detected on resume."""
        pf = problem_fields(self.runner)
        sk = self.swept_keys
        problem = {k: (self.problem[k] if k in self.problem else d) for k, (_, d) in pf.items()
                   if k not in sk and (k in self.problem or d is not dataclasses.MISSING)}
        fixed_opts = {k: v for k, v in self.full_options().items() if k not in sk}
        out = {
            "runner": self.runner_name,
            "problem": problem,
            "options": fixed_opts,
            "grid": [[k, v] for k, v in self.grid.items()],
            "seeds": list(self.seeds),
        }
        if self.zipped:
            out["zip"] = {d: [[k, v] for k, v in t.items()] for d, t in self.zipped.items()}
        return _jsonable(out)

    def identity_hash(self) -> str:
        """SHA-256 of :meth:`identity` (everything that determines the numbers), to match a store on resume."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The config as a dict (``load_config`` of it gives the same sweep)."""
        sweep: dict[str, Any] = {"runner": self.runner_name, "name": self.name}
        if self.runner.seeded:
            sweep["seeds"] = list(self.seeds)
        if self.description:
            sweep["description"] = self.description
        if self.store is not None:
            sweep["store"] = str(self.store)
        out = {"sweep": sweep, "problem": dict(self.problem), "options": dict(self.options),
               "grid": {k: list(v) for k, v in self.grid.items()}}
        if self.zipped:
            out["zip"] = {d: {k: list(v) for k, v in t.items()} for d, t in self.zipped.items()}
        if self.dask:
            out["dask"] = dict(self.dask)
        return _jsonable(out)

    def summary(self) -> str:
        """One line for a person: runner, axes and sizes."""
        axes = ", ".join(f"{k}[{len(v)}]" for k, v in self.grid.items()) or "(no axes: one point)"
        seeds = f"{len(self.seeds)} seed(s) per point" if self.runner.seeded else "deterministic (no seeds)"
        return f"sweep {self.name!r}: runner {self.runner_name}, grid {axes} = {self.size} points, {seeds}"


def _parse_source(config: Any) -> tuple[dict[str, Any], str, Path | None]:
    if isinstance(config, Mapping):
        return dict(config), "", None
    if isinstance(config, Path) or (isinstance(config, str) and "\n" not in config and config.endswith(".toml")):
        path = Path(config)
        if not path.exists():
            raise ConfigError([f"config: file {path} does not exist"])
        text = path.read_text()
        src_path: Path | None = path
    elif isinstance(config, str):
        text, src_path = config, None
    else:
        raise ConfigError([f"config: expected a TOML path, TOML text or a dict, got {type(config).__name__}"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config: not valid TOML ({exc})"], str(src_path or "")) from None
    return data, text, src_path


#: where a sweep's store goes when neither ``store=``/``--store`` nor ``sweep.store`` names one:
#: ``results/sweeps/<config stem>.zarr`` relative to the working directory (not beside the config)
DEFAULT_STORE_DIR = Path("results") / "sweeps"


def load_config(config: Any, *, store: str | Path | None = None, allow_import: bool = False) -> SweepConfig:
    """Validate a sweep config (a ``.toml`` path, TOML text, or a dict of tables) into a :class:`SweepConfig`.

    Raises :class:`ConfigError` (a ``ValueError``) listing every problem with its key path and what is
    allowed. ``store`` overrides ``sweep.store`` (itself relative to the config file); with neither, a
    config file's store is ``results/sweeps/<stem>.zarr`` under the working directory.
    ``allow_import=True`` lets ``sweep.runner`` be an import path ``"pkg.mod:attr"`` (it imports and runs
    that module: trust the config like a script); otherwise only built-in, registered and entry-point
    runners are accepted (:func:`learndyn.sweep.get_runner`).

    The stages, each raising a :class:`ConfigError` before the next runs: the tables' names and kinds
    (:func:`_check_tables`), the runner (:func:`_resolve_runner`), each table against its generated model
    (:func:`_parse_tables`), the seeds (:func:`_resolve_seeds`), the keys across tables
    (:func:`_check_keys`), then every grid point's Problem (:func:`_check_points`).
    """
    data, text, path = _parse_source(config)
    where = str(path) if path else None
    _check_tables(data, where)
    runner = _resolve_runner(data, allow_import, where)
    parsed, zipped = _parse_tables(data, config_models(runner), where)
    sweep = parsed["sweep"]
    seeds = _resolve_seeds(sweep, runner, where)
    problem = {k: getattr(parsed["problem"], k) for k in parsed["problem"].model_fields_set}
    options = {k: getattr(parsed["options"], k) for k in parsed["options"].model_fields_set}
    grid_model = parsed["grid"]
    given_grid = list(data.get("grid", {}))  # keeps the file's order
    grid = {k: list(getattr(grid_model, k)) for k in given_grid}
    errors = _check_keys(runner, problem, options, grid, zipped)
    if errors:
        raise ConfigError(errors[:_MAX_ERRORS], where)

    name = sweep.name or (path.stem if path else "sweep")
    dask = {k: getattr(parsed["dask"], k) for k in parsed["dask"].model_fields_set}
    cfg = SweepConfig(runner=runner, runner_name=sweep.runner, name=name, problem=problem, options=options,
                      grid=grid, seeds=seeds, zipped=zipped, description=sweep.description,
                      store=_store_path(store, sweep.store, path), dask=dask, source=text, path=path)
    _check_points(cfg, where)
    return cfg


def _check_tables(data: Mapping[str, Any], where: str | None) -> None:
    """Refuse unknown top-level tables and top-level keys that are not tables."""
    errors: list[str] = []
    unknown = [k for k in data if k not in TABLES]
    for k in unknown:
        errors.append(f"{k}: unknown table; allowed tables are {', '.join(TABLES)}")
    for k in TABLES:
        if k in data and not isinstance(data[k], Mapping):
            errors.append(f"{k}: must be a table ([{k}]), got {type(data[k]).__name__}")
    if errors:
        raise ConfigError(errors, where)


def _resolve_runner(data: Mapping[str, Any], allow_import: bool, where: str | None) -> Runner:
    """The runner named by ``sweep.runner`` (required)."""
    sweep_raw = data.get("sweep")
    if sweep_raw is None or "runner" not in sweep_raw:
        raise ConfigError(["sweep.runner: required (a runner name, see `learndyn sweep-runners`)"], where)
    try:
        return get_runner(sweep_raw["runner"], allow_import=allow_import)
    except ValueError as exc:
        raise ConfigError([str(exc)], where) from None


def _parse_tables(data: Mapping[str, Any], models: dict[str, type[BaseModel]], where: str | None
                  ) -> tuple[dict[str, BaseModel], dict[str, dict[str, list[Any]]]]:
    """Each table validated by its model, and the ``[zip.AXIS]`` tables by the grid model; every error of
    every table is collected before raising."""
    errors: list[str] = []
    parsed: dict[str, BaseModel] = {}
    for table, model in models.items():
        try:
            parsed[table] = model.model_validate(data.get(table, {}))
        except ValidationError as exc:
            errors.extend(_format_pydantic(table, exc, model))
    zipped: dict[str, dict[str, list[Any]]] = {}
    for axis, table in data.get("zip", {}).items():
        if not isinstance(table, Mapping):
            errors.append(f"zip.{axis}: must be a table ([zip.{axis}]) of keys that vary with grid axis {axis!r}")
            continue
        try:
            zm = models["grid"].model_validate(table)
            zipped[axis] = {k: list(getattr(zm, k)) for k in table}
        except ValidationError as exc:
            errors.extend(_format_pydantic(f"zip.{axis}", exc, models["grid"]))
    if errors:
        raise ConfigError(errors[:_MAX_ERRORS], where)
    return parsed, zipped


def _resolve_seeds(sweep: BaseModel, runner: Runner, where: str | None) -> tuple[int, ...]:
    """The seeds of ``sweep.seeds``; none for a deterministic runner (which refuses the key)."""
    try:
        seeds = _check_seeds(sweep.seeds)
    except ConfigError as exc:
        raise ConfigError(exc.errors, where) from None
    if not runner.seeded:
        if sweep.seeds is not None:
            raise ConfigError([f"sweep.seeds: runner {runner.name!r} is deterministic and takes no seeds; remove "
                               "the key"], where)
        seeds = ()
    return seeds


def _check_keys(runner: Runner, problem: dict[str, Any], options: dict[str, Any], grid: dict[str, list[Any]],
                zipped: dict[str, dict[str, list[Any]]]) -> list[str]:
    """The rules across tables: a key is fixed, swept or zipped once; axis values are distinct; zipped keys
    follow an axis with one value each; every required Problem field and option is given."""
    errors: list[str] = []
    for k, values in grid.items():
        if k in problem or k in options:
            table = "problem" if k in problem else "options"
            errors.append(f"grid.{k}: also set in [{table}]; a key is either fixed or swept, not both")
        dup = [v for i, v in enumerate(values) if values.index(v) != i]
        if dup:
            errors.append(f"grid.{k}: repeated values {dup!r}; every value of an axis must be distinct")
    seen_zip: set[str] = set()
    for axis, table in zipped.items():
        if axis not in grid:
            errors.append(f"zip.{axis}: {axis!r} is not a grid axis; [zip.AXIS] attaches keys to an axis of [grid] "
                          f"(axes: {', '.join(grid) or 'none'})")
            continue
        for k, values in table.items():
            if k in problem or k in options or k in grid or k in seen_zip:
                where_ = ("[problem]" if k in problem else "[options]" if k in options else "[grid]" if k in grid
                          else "another [zip] table")
                errors.append(f"zip.{axis}.{k}: also set in {where_}; a key is fixed, swept or zipped, once")
            elif len(values) != len(grid[axis]):
                errors.append(f"zip.{axis}.{k}: has {len(values)} values but grid.{axis} has {len(grid[axis])}; "
                              "zipped keys need one value per value of their axis")
            seen_zip.add(k)
    pf = problem_fields(runner)
    for k, (_, default) in pf.items():
        if default is dataclasses.MISSING and k not in problem and k not in grid and k not in seen_zip:
            errors.append(f"problem.{k}: required (set it in [problem] or sweep it in [grid])")
    for k, o in runner.options.items():
        if o.required and k not in options and k not in grid and k not in seen_zip:
            errors.append(f"options.{k}: required ({o.help or _describe(o.type)}); set it in [options] or [grid]")
    return errors


def _store_path(store: str | Path | None, sweep_store: str | None, path: Path | None) -> Path | None:
    """The store: ``store`` as given, else ``sweep.store`` relative to the config file, else
    ``results/sweeps/<stem>.zarr`` for a config file (none for TOML text or a dict)."""
    store_path = Path(store) if store is not None else (Path(sweep_store) if sweep_store else None)
    if store_path is not None and not store_path.is_absolute() and path is not None and store is None:
        store_path = path.parent / store_path
    if store_path is None and path is not None:
        store_path = DEFAULT_STORE_DIR / f"{path.stem}.zarr"
    return store_path


def _strip(name: str, message: str) -> str:
    prefix = f"{name}: "
    while message.startswith(prefix):
        message = message[len(prefix):]
    return message


def _check_points(cfg: SweepConfig, where: str | None) -> None:
    """Construct the Problem (and run the runner's ``check``) at grid points; map each failure to the
    key that caused it: ``grid.K[0]`` when the key is swept, ``problem.K``/``options.N`` when fixed.

    First every axis value is tried with the other axes at their first value (so each bad value is
    reported), then, if those pass, every combination (cross-key rules such as ``K >= M``)."""
    errors: list[str] = []
    seen: set[str] = set()
    pk = cfg.problem_keys
    shape = cfg.shape

    def probes() -> Iterator[int]:
        yield 0
        for axis, n in enumerate(shape):
            for i in range(1, n):
                idx = [0] * len(shape)
                idx[axis] = i
                yield int(np.ravel_multi_index(idx, shape))

    for combos, phase in ((False, probes()), (True, cfg.points())):
        for flat in phase:
            swept = cfg.swept(flat)
            try:
                problem, options = cfg.point(flat)
                if cfg.runner.check is not None:
                    cfg.runner.check(problem, options)
                _check_outputs(cfg, problem, options)
            except (ValueError, TypeError) as exc:
                message = str(exc)
                key = message.split(":", 1)[0].strip() if ":" in message else ""
                axis_of = cfg.swept_keys
                if key in cfg.grid:
                    loc = f"grid.{key}[{cfg.grid[key].index(swept[key])}]"
                elif key in axis_of:
                    ax = axis_of[key]
                    loc = f"zip.{ax}.{key}[{cfg.grid[ax].index(swept[ax])}]"
                elif key in pk:
                    loc = f"problem.{key}"
                elif key in cfg.runner.options:
                    loc = f"options.{key}"
                else:
                    loc = "config"
                text = f"{loc}: {_strip(key, message) if key else message}"
                if text in seen:
                    continue
                seen.add(text)
                others = {k: v for k, v in cfg.coords(flat).items() if k != key}
                if combos and key not in axis_of and others:  # a rule between a fixed and a swept key
                    text += " (at " + ", ".join(f"{k}={v!r}" for k, v in others.items()) + ")"
                errors.append(text)
                if len(errors) >= _MAX_ERRORS:
                    break
        if errors:
            raise ConfigError(errors, where)


def _check_outputs(cfg: SweepConfig, problem: Any, options: dict[str, Any]) -> None:
    outs = cfg.runner.outputs(problem, options, len(cfg.seeds))
    for name, out in outs.items():
        missing = [d for d in out.dims if d != "seed" and d not in out.coords]
        if missing:
            raise ValueError(f"runner {cfg.runner.name!r}: output {name!r} has no coordinates for {missing}")
        if name in cfg.swept_keys or any(d in cfg.swept_keys for d in out.dims):
            raise ValueError(f"runner {cfg.runner.name!r}: output {name!r} clashes with a grid axis name")
