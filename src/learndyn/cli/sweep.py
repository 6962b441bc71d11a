"""``learndyn sweep``, ``learndyn sweep-status`` and ``learndyn sweep-runners``: parameter sweeps of any theory
(:mod:`learndyn.sweep`: TOML configs, Dask execution, a Zarr store per sweep, resume)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import fail

__all__ = ["register", "sweep_command", "status_command", "runners_command"]


def sweep_command(
    config: Path = typer.Argument(..., help="sweep config (TOML)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate, print grid size, time and memory estimates; "
                                                          "run nothing"),
    calibrate: bool = typer.Option(False, "--calibrate", help="with --dry-run: time the cheapest point here to "
                                                             "calibrate the estimate"),
    store: Optional[Path] = typer.Option(None, help="results store (default: sweep.store of the config, relative "
                                                    "to it, or results/sweeps/CONFIG-STEM.zarr here)"),
    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address, e.g. tcp://host:8786 "
                                                       "(default: a LocalCluster on this machine)"),
    workers: Optional[int] = typer.Option(None, help="LocalCluster worker processes (default: one per core)"),
    threads_per_worker: Optional[int] = typer.Option(None, help="threads per LocalCluster worker (default 1)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="delete an existing store and start afresh (only a "
                                                              "store learndyn wrote)"),
    allow_import: bool = typer.Option(False, "--allow-import", help="let sweep.runner be an import path "
                                                                    "'package.module:attribute' (imports and runs "
                                                                    "that module: trust the config like a script)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Run (or resume) the parameter sweep described by CONFIG; finished points are skipped.

    A config is code: it names the runner every point executes and where results are written; trust
    it as you would a script."""
    from ..sweep import ConfigError, SweepError, estimate, load_config, run, status

    try:
        cfg = load_config(config, store=store, allow_import=allow_import)
    except ConfigError as exc:
        fail(exc)
    typer.echo(cfg.summary())
    typer.echo(f"store: {cfg.store}")
    if dry_run:
        try:
            est = estimate(cfg, n_workers=workers, calibrate=calibrate)
        except ValueError as exc:
            fail(exc)
        for d, values in cfg.grid.items():
            shown = ", ".join(repr(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
            typer.echo(f"  {d}: {shown}")
        typer.echo(est.summary())
        return
    try:
        run(cfg, scheduler=scheduler, n_workers=workers, threads_per_worker=threads_per_worker,
            progress=progress, overwrite=overwrite)
    except (ValueError, SweepError, MemoryError) as exc:
        fail(exc)
    st = status(cfg.store)
    typer.echo(st.summary())
    if st.counts["error"]:
        raise typer.Exit(code=1)


def status_command(
    store: Path = typer.Argument(..., help="results store of a sweep"),
    limit: int = typer.Option(10, help="list at most this many pending / failed / flagged points"),
) -> None:
    """Show how many points of a sweep are done, pending or failed."""
    from ..sweep import status

    try:
        st = status(store)
    except (ValueError, FileNotFoundError) as exc:
        fail(exc)
    typer.echo(st.summary(limit=limit))


def runners_command() -> None:
    """List the sweep runners and their config keys."""
    from ..sweep import available_runners, get_runner
    from ..sweep.config import describe_type, problem_fields

    for name, desc in available_runners().items():
        typer.echo(f"{name}: {desc}")
        try:
            r = get_runner(name)
        except ValueError:
            continue
        pf = problem_fields(r)
        typer.echo(f"  [problem] ({r.problem.__module__}.{r.problem.__qualname__}): "
                   + ", ".join(f"{k} ({describe_type(t)})" for k, (t, _) in pf.items()))
        typer.echo("  [options]: " + ", ".join(
            f"{k} = {o.default!r}" if not o.required else f"{k} (required)" for k, o in r.options.items()))


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    """Add ``sweep``, ``sweep-status`` and ``sweep-runners`` to ``app``."""
    app.command("sweep")(sweep_command)
    app.command("sweep-status")(status_command)
    app.command("sweep-runners")(runners_command)
