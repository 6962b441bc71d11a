"""Dask execution shared by the sweeps (:mod:`learndyn.sweep`) and the out-of-core kernels
(:mod:`learndyn.kernels.store`): a ``LocalCluster`` of single-threaded worker processes, a checked
scheduler address, and a client context that connects to one of them (or reuses a given client).

* :func:`local_cluster`: one worker *process* per core by default, each with one BLAS thread.
* :func:`check_scheduler`: ``[tcp|tls|ws|wss|ucx|inproc://]HOST[:PORT]``; anything else (a dashboard's
  ``http://`` address, a path) is refused with a one-line ``ValueError``.
* :func:`connect`: a context manager giving ``(client, description)``: the given ``client``; or a
  scheduler address, probed first (Dask's ``identity`` message) so that a non-Dask endpoint is reported
  in one line and leaves the process's Dask config untouched; or a LocalCluster whose scratch space is
  a temporary folder removed afterwards.

This module is low in the package: it imports nothing of learndyn's theories, sweeps or command line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from typing import Any, Callable, Iterator

__all__ = ["ClusterError", "CONNECT_TIMEOUT", "WORKER_ENV", "check_scheduler", "local_cluster", "connect",
           "probe_scheduler", "dask_config_kept", "one_line"]

#: how long to wait for a scheduler to answer before saying it is not one
CONNECT_TIMEOUT = "20s"
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
_ADDRESS = re.compile(r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\d+))?/?$")

#: environment of LocalCluster workers: one BLAS thread each (one worker per core). XLA_FLAGS are left
#: alone: they enter JAX's persistent compilation-cache key, and sharing that cache with the client
#: process saves each worker the JIT compilation of the theories.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class ClusterError(RuntimeError):
    """A Dask cluster could not be started or used (e.g. a worker died while starting); the message is one
    line saying what happened and what to try."""


def one_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"`` (at most 200 characters), for one-line error messages."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")[:200]


def check_scheduler(address: Any) -> str:
    """A Dask scheduler address, validated: ``[tcp|tls|ws|wss|ucx|inproc://]HOST[:PORT]`` (``tcp`` when no
    scheme is given). Raises ``ValueError`` for anything else (an ``http://`` URL, a path, spaces)."""
    hint = ("expected a Dask scheduler address such as tcp://HOST:8786, as printed by `dask scheduler` (not the "
            "dashboard's http:// address)")
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"scheduler: {address!r} is not an address; {hint}")
    text = address.strip()
    m = _ADDRESS.match(text)
    if m is None or (m["scheme"] or "tcp") not in _SCHEMES:
        raise ValueError(f"scheduler: {address!r} is not a Dask scheduler address; {hint}")
    if m["port"] is not None and not 0 < int(m["port"]) < 65536:
        raise ValueError(f"scheduler: port {m['port']} of {address!r} is out of range (1-65535); {hint}")
    return text if m["scheme"] else f"tcp://{text}"


def local_cluster(n_workers: int | None = None, threads_per_worker: int = 1, **kwargs: Any):
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes (default: one per core), each
    with the environment :data:`WORKER_ENV` (one BLAS thread)."""
    from distributed import LocalCluster

    n = int(n_workers or os.cpu_count() or 1)
    env = dict(WORKER_ENV)
    kwargs.setdefault("dashboard_address", None)
    kwargs.setdefault("silence_logs", logging.CRITICAL)
    return LocalCluster(n_workers=n, threads_per_worker=int(threads_per_worker), processes=True, env=env,
                        **kwargs)


@contextlib.contextmanager
def connect(scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int | None = None,
            n_tasks: int = 1, client: Any = None, *, cluster_factory: Callable[..., Any] | None = None,
            timeout: str | None = None, error: type[Exception] = ClusterError,
            fewer_hint: str = "use fewer workers (n_workers)") -> Iterator[tuple[Any, str]]:
    """A ``distributed.Client`` for a computation of ``n_tasks`` tasks, as ``(client, description)``.

    ``client`` (used as is, not closed), else ``scheduler`` (an address, checked by
    :func:`check_scheduler` and probed by :func:`probe_scheduler`; ``ValueError`` in one line when nothing
    or something else answers within ``timeout``, default :data:`CONNECT_TIMEOUT`), else a LocalCluster
    of ``n_workers`` processes (default: one per core, at most one per task) built by ``cluster_factory``
    (default :func:`local_cluster`) in a temporary scratch folder removed afterwards; a cluster that does
    not start raises ``error`` (default :class:`ClusterError`) in one line ending with ``fewer_hint``.
    The client and cluster made here are closed on exit.
    """
    from distributed import Client

    timeout = timeout or CONNECT_TIMEOUT
    if client is not None:
        yield client, f"client {client.scheduler.address}"
        return
    if scheduler:
        address = check_scheduler(scheduler)
        try:
            probe_scheduler(address, timeout)
            with dask_config_kept():
                c = Client(address, timeout=timeout, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, CommClosedError, protocol errors
            # a non-Dask endpoint (a web server, the dashboard, another service) accepts the connection but
            # does not speak Dask's protocol: its reply is misread (e.g. as an absurd message length)
            what = ("no Dask scheduler answered" if isinstance(exc, (OSError, TimeoutError)) else
                    "something answered, but not as a Dask scheduler,")
            raise ValueError(
                f"scheduler: {what} at {address} within {timeout} ({one_line(exc)}); check the address "
                "and that `dask scheduler` runs there (a web server or the dashboard is not a scheduler)") from None
        try:
            yield c, address
        finally:
            c.close()
        return
    factory = cluster_factory or local_cluster
    n = n_workers or min(os.cpu_count() or 1, max(n_tasks, 1))
    # the workers' scratch space in a folder of our own, removed afterwards (Dask leaves its
    # dask-scratch-space folder behind otherwise)
    scratch = tempfile.mkdtemp(prefix="learndyn-dask-")
    cluster = c = None
    try:
        try:
            import dask

            with dask.config.set({"temporary-directory": scratch}):
                cluster = factory(n, threads_per_worker or 1, local_directory=scratch)
            with dask_config_kept():
                c = Client(cluster, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - e.g. "Nanny failed to start" when a worker is killed
            raise error(
                f"cluster: the local Dask cluster of {n} worker(s) did not start ({one_line(exc)}); a worker "
                f"process died while starting (killed, or out of memory?): try again, or {fewer_hint}") from None
        yield c, f"LocalCluster({n} workers)"
    finally:
        with contextlib.suppress(Exception):
            if c is not None:
                c.close()
        with contextlib.suppress(Exception):
            if cluster is not None:
                cluster.close()
        shutil.rmtree(scratch, ignore_errors=True)


def probe_scheduler(address: str, timeout: str | None = None) -> None:
    """Ask the endpoint at ``address`` who it is (Dask's ``identity`` message) before a Client connects:
    a Client that fails to connect stays registered in the process (and its settings in the Dask
    config), which breaks every later Dask computation. Raises when the answer is not a scheduler's."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import dask
    from distributed.comm import connect as comm_connect

    seconds = dask.utils.parse_timedelta(timeout or CONNECT_TIMEOUT)

    async def probe() -> Any:
        comm = await comm_connect(address, timeout=seconds)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await asyncio.wait_for(comm.read(), seconds)
        finally:
            comm.abort()

    with ThreadPoolExecutor(1) as pool:  # its own event loop, also when the caller runs one (Jupyter)
        reply = pool.submit(asyncio.run, probe()).result()
    if not (isinstance(reply, dict) and reply.get("type") == "Scheduler"):
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise ValueError(f"the endpoint is a {kind}, not a Scheduler")


@contextlib.contextmanager
def dask_config_kept() -> Iterator[None]:
    """A ``distributed.Client`` that fails to connect leaves its settings (``scheduler="dask.distributed"``)
    in the process-wide Dask config, so that every later Dask computation of the process (xarray's
    writers included) fails with "no Client active": put them back when the connection fails."""
    import dask

    keys = ("scheduler", "shuffle")
    before = {k: dask.config.config[k] for k in keys if k in dask.config.config}
    try:
        yield
    except BaseException:
        for k in keys:
            if k in before:
                dask.config.config[k] = before[k]
            else:
                dask.config.config.pop(k, None)
        raise
