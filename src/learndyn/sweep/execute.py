"""Running a sweep on ``dask.distributed``: one task per grid point (its seeds batched), results
written to the store by the client as they finish.

* Default cluster: a ``LocalCluster`` of worker *processes* sized to the machine (one single-threaded
  worker per core, at most one per pending point); ``scheduler="tcp://host:8786"`` connects to a
  running scheduler instead (a real cluster; its workers must have learndyn installed), and
  ``client=`` reuses an existing :class:`distributed.Client`.
* A task that raises records the error for its point (status ``error``; re-run the sweep to retry it).
  A worker that dies mid-task (killed, out of memory) is handled by the Dask scheduler: the task is
  re-run on another worker, up to ``distributed.scheduler.allowed-failures`` times.
* Before anything is submitted (and before the store is created) the cluster is connected to, and each
  pending point's memory estimate (the runner's ``memory``) is checked against this machine (a
  LocalCluster) or the workers' memory limit (a scheduler): an impossible point is refused with what
  to reduce, instead of failing with ``MemoryError`` after work started.
* Only the client writes the store (workers never touch it, so no shared file system is needed);
  see :mod:`learndyn.sweep.store` for why a kill at any moment loses no finished point and
  duplicates none.

The cluster machinery (LocalCluster, scheduler check and probe, client context) is
:mod:`learndyn.cluster`, shared with the out-of-core kernels (:func:`learndyn.kernels.kernel_store`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import cluster as _cluster
from ..cluster import ClusterError, check_scheduler, local_cluster
from ..resources import available_memory, check_memory, format_bytes
from .config import SweepConfig, load_config
from .registry import PointResult, Runner
from .store import Store, layout, open_store

__all__ = ["run", "estimate", "Estimate", "run_point", "local_cluster", "check_scheduler", "SweepError"]

#: how long to wait for a scheduler to answer before saying it is not one (read at each run, so it can be
#: changed here)
CONNECT_TIMEOUT = _cluster.CONNECT_TIMEOUT


class SweepError(ClusterError):
    """A sweep could not run for a reason outside its config (e.g. the Dask cluster did not start);
    the message is one line saying what happened and what to try."""


def run_point(runner: Runner, problem: Any, options: dict[str, Any], seeds: tuple[int, ...]
              ) -> tuple[PointResult | None, str, float]:
    """The task of one grid point: ``(result, error message, seconds)``. Exceptions are caught and
    returned as the message, so a bug or an invalid combination fails only its own point."""
    t0 = time.perf_counter()
    try:
        result = runner.evaluate(problem, options, seeds)
        return result, "", time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - reported per point
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" [{Path(tb[-1].filename).name}:{tb[-1].lineno}]" if tb else ""
        return None, f"{type(exc).__name__}: {exc}{where}", time.perf_counter() - t0


def _client(scheduler: str | None, n_workers: int | None, threads_per_worker: int | None, n_tasks: int,
            client: Any = None):
    """The shared client context (:func:`learndyn.cluster.connect`) with this module's ``local_cluster`` and
    ``CONNECT_TIMEOUT`` (looked up at each call) and the sweep's error and hint."""
    return _cluster.connect(scheduler, n_workers, threads_per_worker, n_tasks, client, cluster_factory=local_cluster,
                            timeout=CONNECT_TIMEOUT, error=SweepError, fewer_hint="use fewer --workers")


def _check_point_memory(cfg: SweepConfig, todo: list[int], client: Any = None, local: bool = True) -> None:
    """Refuse a sweep whose largest pending point needs more memory than a worker can have: this
    machine's available memory (LocalCluster) or the smallest worker memory limit of the scheduler."""
    if cfg.runner.memory is None or not todo:
        return
    need, worst = -1.0, todo[0]
    for flat in todo:
        problem, options = cfg.point(flat)
        try:
            m = float(cfg.runner.memory(problem, options, len(cfg.seeds)))
        except Exception:  # noqa: BLE001 - an estimate never stops a run by failing itself
            continue
        if m > need:
            need, worst = m, flat
    if need <= 0:
        return
    coords = ", ".join(f"{k}={v!r}" for k, v in cfg.swept(worst).items()) or "the single point"
    what = f"sweep point {coords} (runner {cfg.runner_name})"
    reduce = "reduce that point's sizes (e.g. N, seeds, n_alpha, t_max/dt) or leave it out of the grid"
    if local:
        check_memory(need, what=what, reduce=reduce)
        return
    limits = []
    with contextlib.suppress(Exception):
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    limits = [x for x in limits if x > 0]
    if limits and need > 0.9 * min(limits):
        from ..resources import InsufficientMemoryError

        raise InsufficientMemoryError(
            f"{what} needs about {format_bytes(need)} of memory, but the cluster's workers have at most "
            f"{format_bytes(min(limits))} each; {reduce}, or give the workers more memory")


def _key(cfg: SweepConfig, flat: int, token: str) -> str:
    return f"learndyn-point-{cfg.identity_hash()[:8]}-{flat}-{token}"


def run(config: Any, *, store: str | os.PathLike | None = None, scheduler: str | None = None,
        n_workers: int | None = None, threads_per_worker: int | None = None, client: Any = None,
        progress: bool = True, overwrite: bool = False) -> xr.Dataset:
    """Run (or resume) a sweep and return its store as an ``xarray.Dataset``.

    Parameters
    ----------
    config:
        A :class:`SweepConfig`, a TOML path or text, or a dict of tables (:func:`load_config`).
    store:
        The Zarr directory (default: ``sweep.store`` of the config, or ``results/sweeps/<config
        stem>.zarr`` under the working directory). If it exists it must hold the same sweep: done
        points are skipped (after checking their data is there), pending and failed ones run.
    scheduler, client:
        A Dask scheduler address (``tcp://host:8786``; validated by :func:`check_scheduler` and
        connected to before the store is created) or a ``distributed.Client``; default (and ``[dask]
        scheduler`` unset): a LocalCluster of ``n_workers`` processes (default: one per core).
    overwrite:
        Delete an existing store and start afresh -- only a store this package wrote, never the
        working directory, its parents or the config's folder.

    Raises ``ValueError`` for bad input (a one-line message), ``InsufficientMemoryError`` (a
    ``MemoryError``) when a point cannot fit in a worker's memory, :class:`SweepError` when the local
    cluster does not start; in each case nothing has been computed and no store created.
    """
    cfg = config if isinstance(config, SweepConfig) else load_config(config)
    path = Path(store) if store is not None else cfg.store
    if path is None:
        raise ValueError("store: give a store path (argument, or sweep.store in the config)")
    scheduler = scheduler or cfg.dask.get("scheduler")
    n_workers = n_workers or cfg.dask.get("n_workers")
    threads_per_worker = threads_per_worker or cfg.dask.get("threads_per_worker")
    if n_workers is not None and (isinstance(n_workers, bool) or int(n_workers) < 1):
        raise ValueError(f"n_workers: must be a positive integer, got {n_workers!r}")
    if scheduler and client is None:
        scheduler = check_scheduler(scheduler)
    from tqdm.auto import tqdm

    # lock, check and verify first; the cluster is connected to (and each point's memory checked)
    # before the store is created, so a failure there leaves nothing behind
    with Store.prepare(path, cfg, overwrite=overwrite) as st:
        todo = st.pending()
        if not todo:
            st.materialise()
        else:
            local = client is None and not scheduler
            if local:
                _check_point_memory(cfg, todo)
            costs = _costs(cfg, todo)
            order = sorted(todo, key=lambda f: -costs.get(f, 0.0))  # longest first: better packing
            with _client(scheduler, n_workers, threads_per_worker, len(todo), client) as (c, where):
                from distributed import as_completed

                if not local:
                    _check_point_memory(cfg, todo, c, local=False)
                st.materialise()
                run_id = st.start_run(cluster=where, points=len(todo))
                token = uuid.uuid4().hex[:8]
                points = [cfg.point(flat) for flat in order]
                # one graph submission for all points, longest first. (The runner is not scattered:
                # scattered data dies with its worker and cannot be recomputed, tasks can.)
                futs = c.map(run_point, [cfg.runner] * len(order), [p for p, _ in points],
                             [o for _, o in points], [cfg.seeds] * len(order),
                             key=[_key(cfg, flat, token) for flat in order], pure=False)
                futures = dict(zip(futs, order))
                bar = tqdm(total=len(todo), desc=cfg.name, unit="pt", disable=not progress)
                counts = {"done": 0, "error": 0}
                try:
                    for fut in as_completed(futures, loop=c.loop):  # c is not the default client
                        flat = futures.pop(fut)
                        try:
                            result, error, seconds = fut.result()
                        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated deaths
                            result, error, seconds = None, f"{type(exc).__name__}: {exc}", float("nan")
                        code = st.write_point(flat, result, run=run_id, seconds=seconds, error=error)
                        counts["error" if code == 3 else "done"] += 1
                        bar.update(1)
                        bar.set_postfix(counts, refresh=False)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
                finally:
                    bar.close()
                st.finish_run(run_id, **counts)
    return open_store(path)


# ------------------------------------------------------------------------------------------
# estimates (--dry-run)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """What ``learndyn sweep --dry-run`` prints: sizes, and rough time and memory estimates."""

    points: int
    pending: int
    seeds: int
    n_workers: int
    seconds_serial: float | None
    seconds_wall: float | None
    setup_seconds: float | None
    n_setups: int
    store_bytes: int
    task_memory_bytes: float | None
    worker_memory_bytes: float | None
    calibrated: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a person: points, estimated time and memory."""
        def t(s: float | None) -> str:
            if s is None:
                return "unknown (the runner gives no cost model)"
            if s < 120:
                return f"{s:.0f} s"
            if s < 7200:
                return f"{s / 60:.1f} min"
            return f"{s / 3600:.1f} h"

        lines = [
            f"grid: {self.points} points" + (f" x {self.seeds} seed(s)" if self.seeds else "") + f"; {self.pending} to compute "
            f"({self.points - self.pending} already done)",
            f"time: ~{t(self.seconds_serial)} on one core, ~{t(self.seconds_wall)} on {self.n_workers} workers "
            f"({'calibrated on this machine' if self.calibrated else 'rough cost model'}; includes "
            f"{self.n_setups} one-off compilation(s) of ~{t(self.setup_seconds)})",
            f"memory: store ~{_bytes(self.store_bytes)} on disk (uncompressed)"
            + (f", ~{_bytes(self.task_memory_bytes)} per task" if self.task_memory_bytes is not None else "")
            + (f" (worker limit ~{_bytes(self.worker_memory_bytes)})" if self.worker_memory_bytes else ""),
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _costs(cfg: SweepConfig, flats: list[int]) -> dict[int, float]:
    if cfg.runner.cost is None:
        return {}
    out = {}
    for flat in flats:
        problem, options = cfg.point(flat)
        try:
            out[flat] = float(cfg.runner.cost(problem, options, len(cfg.seeds)))
        except Exception:  # noqa: BLE001 - an estimate must never stop a run
            out[flat] = 0.0
    return out


def estimate(config: Any, *, store: str | os.PathLike | None = None, n_workers: int | None = None,
             calibrate: bool = False) -> Estimate:
    """Grid size and rough time/memory estimates of a sweep, without running it (``--dry-run``).

    Time comes from the runner's cost model (seconds on one core of a 2020s laptop, per point) plus a
    one-off setup (JIT compilation) per distinct ``setup_key`` and worker; ``calibrate=True`` times
    the cheapest pending point twice in this process (first call: setup + run; second: run) and
    rescales the model by the measurements. Memory: the store's uncompressed size and the runner's
    per-task estimate.
    """
    cfg = config if isinstance(config, SweepConfig) else load_config(config)
    path = Path(store) if store is not None else cfg.store
    done = set()
    if path is not None and (Path(path) / ".zgroup").exists():
        ds = open_store(path, only_done=False)
        if ds.attrs.get("identity_hash") == cfg.identity_hash():
            st = np.asarray(ds["sweep_status"].values).reshape(-1)
            done = set(np.flatnonzero((st == 1) | (st == 2)).tolist())
    pending = [f for f in cfg.points() if f not in done]
    workers = int(n_workers or cfg.dask.get("n_workers") or min(os.cpu_count() or 1, max(len(pending), 1)))
    runner = cfg.runner
    notes: list[str] = []
    lay = layout(cfg)
    n_seeds = len(cfg.seeds)
    per_point = sum(int(np.prod(o.shape(n_seeds))) * np.dtype(o.dtype).itemsize for o in lay.outputs.values())
    store_bytes = cfg.size * (per_point + 256 * 4 + 16)
    costs = _costs(cfg, pending)
    setups: dict[Any, float] = {}
    mem = None
    for flat in pending:
        problem, options = cfg.point(flat)
        if runner.setup_cost is not None:
            key = runner.setup_key(problem, options) if runner.setup_key else flat
            setups.setdefault(key, float(runner.setup_cost(problem, options)))
        if runner.memory is not None:
            m = float(runner.memory(problem, options, n_seeds))
            mem = m if mem is None else max(mem, m)
    calibrated = False
    scale_run, scale_setup = 1.0, 1.0
    if calibrate and pending and runner.cost is not None:
        flat = min(pending, key=lambda f: costs.get(f, 0.0))
        problem, options = cfg.point(flat)
        t0 = time.perf_counter()
        r1, err, _ = run_point(runner, problem, options, cfg.seeds)
        t1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_point(runner, problem, options, cfg.seeds)
        t2 = time.perf_counter() - t0
        if r1 is None:
            notes.append(f"calibration point {cfg.coords(flat)} failed: {err}")
        else:
            pred_run = costs.get(flat, 0.0)
            if pred_run > 0:
                scale_run = t2 / pred_run
            if runner.setup_cost is not None:
                pred_setup = float(runner.setup_cost(problem, options))
                if pred_setup > 0:
                    scale_setup = max(t1 - t2, 0.0) / pred_setup
            calibrated = True
            notes.append(f"calibration at {cfg.coords(flat) or 'the single point'}: first call {t1:.2f} s, "
                         f"second call {t2:.3f} s")
    if runner.cost is None:
        serial = wall = None
    else:
        run_s = sum(costs.values()) * scale_run
        setup_s = sum(setups.values()) * scale_setup
        overhead = 0.005 * len(pending) + (3.0 if pending else 0.0)  # task overhead + cluster start
        serial = run_s + setup_s
        # the run time splits across workers; each worker compiles every setup key it meets once
        per_worker_tasks = math.ceil(len(pending) / workers) if pending else 0
        setup_avg = setup_s / max(len(setups), 1)
        wall = run_s / workers + setup_avg * min(len(setups), per_worker_tasks) + overhead
        wall = max(wall, max(costs.values(), default=0.0) * scale_run)
    worker_mem = None
    try:
        import psutil

        worker_mem = psutil.virtual_memory().total / max(workers, 1)
    except Exception:  # noqa: BLE001
        pass
    if mem is not None and mem > 0.9 * available_memory():
        notes.append(f"a task needs ~{_bytes(mem)}, more than the {_bytes(available_memory())} available here: a run "
                     "on a LocalCluster refuses it; reduce the point's sizes (e.g. N)")
    elif mem is not None and worker_mem is not None and mem > 0.8 * worker_mem:
        notes.append("a task may need more memory than one worker gets; use fewer workers (--workers)")
    return Estimate(points=cfg.size, pending=len(pending), seeds=n_seeds, n_workers=workers, seconds_serial=serial,
                    seconds_wall=wall, setup_seconds=(sum(setups.values()) * scale_setup / max(len(setups), 1))
                    if setups else 0.0, n_setups=len(setups), store_bytes=int(store_bytes),
                    task_memory_bytes=mem, worker_memory_bytes=worker_mem, calibrated=calibrated, notes=notes)

