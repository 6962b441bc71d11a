"""Parameter sweeps: TOML configs, execution on Dask, one Zarr results store per sweep, resume, plots.

Python equivalents of the command line::

    from learndyn import sweep
    cfg = sweep.load_config("eg_vs_K.toml")      # validated (ConfigError names key path + allowed values)
    print(sweep.estimate(cfg).summary())         # learndyn sweep eg_vs_K.toml --dry-run
    ds = sweep.run(cfg)                          # learndyn sweep eg_vs_K.toml   (resumes if interrupted)
    print(sweep.status(cfg.store).summary())     # learndyn sweep-status results/sweeps/eg_vs_K.zarr
    sweep.plot(cfg.store, x="K", y="eg_final", hue="activation", out="eg_vs_K.png")

Configs (:mod:`learndyn.sweep.config`): ``[sweep]`` (runner, seeds, store), ``[problem]`` (fixed fields of
the runner's Problem dataclass), ``[options]`` (runner options), ``[grid]`` (swept keys, cartesian
product), ``[zip.AXIS]`` (keys that vary together with one axis, e.g. ``t_max = 150 m``), ``[dask]``.
Examples of paper-figure sweeps: ``examples/sweeps/*.toml``.

Runners (what one point computes) live in :mod:`learndyn.sweep.registry`; the built-in ones are
``online.ode``, ``online.sgd``, ``dmft`` and ``kernels.signal`` (each imported only when named, so a
missing theory never breaks this package). Configs are code -- trust one as you would a script: other
runners come from :func:`register`, from installed packages' ``learndyn.sweep_runners`` entry points,
or, only with ``allow_import=True`` / ``--allow-import``, from an import path ``"module:attribute"``.

A store is written under ``results/sweeps/<config stem>.zarr`` of the working directory unless the
config (``sweep.store``, relative to the config file) or ``--store`` says otherwise. See
``docs/sweeps.md``.
"""

from .config import ConfigError, SweepConfig, config_models, load_config
from .execute import Estimate, SweepError, check_scheduler, estimate, local_cluster, run, run_point
from .plot import plot
from .registry import (BUILTIN_RUNNERS, Option, Output, PointResult, Runner, available_runners, get_runner,
                       options_from, register)
from .store import Store, StoreStatus, check_deletable, is_store, open_store, status

__all__ = [
    "ConfigError", "SweepConfig", "config_models", "load_config", "Estimate", "SweepError", "check_scheduler",
    "estimate", "local_cluster", "run", "check_deletable", "is_store",
    "run_point", "plot", "BUILTIN_RUNNERS", "Option", "Output", "PointResult", "Runner", "available_runners",
    "get_runner", "options_from", "register", "Store", "StoreStatus", "open_store", "status",
]
