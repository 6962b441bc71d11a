"""Helpers shared by the DMFT solvers and simulations (package-private).

The time grid ``t_n = n dt`` of every DMFT solver, the BLAS thread limit, the one march loop that turns Ctrl-C
into a status (both two-time solvers use it), the validation of ``seeds``, ``problem`` and sizes, and the
reading of the statuses written by earlier versions (free text such as ``"ok"`` or ``"diverged at t = 3"``).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..results import InvalidInputError, Status

__all__ = ["time_grid", "blas_threads", "Stop", "march", "check_problem", "check_seeds", "check_size",
           "status_from_text"]


def check_time_step(t_max, dt) -> tuple[float, float]:
    """``(t_max, dt)`` as floats: ``dt`` finite and ``> 0``, ``t_max`` finite and ``>= 0`` (``InvalidInputError``
    naming the parameter otherwise); the one check of every DMFT time grid (solvers and simulations)."""
    try:
        dt = float(dt)
        t_max = float(t_max)
    except (TypeError, ValueError):
        raise InvalidInputError("dt, t_max: must be real numbers") from None
    if not (math.isfinite(dt) and dt > 0):
        raise InvalidInputError(f"dt: must be finite and > 0, got {dt!r}")
    if not (math.isfinite(t_max) and t_max >= 0):
        raise InvalidInputError(f"t_max: must be finite and >= 0, got {t_max!r}")
    return t_max, dt


def time_grid(t_max: float, dt: float, *, max_points: int = 200_000) -> int:
    """Number of grid points ``N`` of ``t_n = n dt``, ``n = 0..N-1``: the last point is the largest ``n dt <= t_max``
    (never past ``t_max``; round-off of ``t_max/dt`` up to 1e-9 is forgiven). At least 2 steps are required."""
    t_max, dt = check_time_step(t_max, dt)
    steps = int(math.floor(t_max / dt + 1e-9))
    if steps < 2:
        raise InvalidInputError(
            f"dt: the grid 0, dt, 2 dt, ... <= t_max = {t_max:g} has {steps} step(s) at dt = {dt:g}; at least 2 are "
            f"needed: take dt <= t_max/2 = {t_max / 2:g} (or a larger t_max)"
        )
    n = steps + 1
    if n > max_points:
        raise InvalidInputError(f"t_max/dt: {n} steps is too many for a dense two-time solver (memory ~ 28 N^2 bytes)")
    return n


def blas_threads(n: int | None):
    """A context limiting the BLAS threads to ``n`` (``None``: unchanged; no-op without threadpoolctl)."""
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")


@dataclass(frozen=True)
class Stop:
    """How a march ended: the status, its message and the last grid index whose rows are complete."""

    status: Status
    message: str
    last: int


def march(N: int, dt: float, step: Callable[[int], "Stop | None"], *, desc: str, progress: bool,
          threads: int | None) -> Stop:
    """Run ``step(n)`` for ``n = 0..N-1`` (a ``Stop`` from it ends the march early) under the BLAS thread limit,
    with floating-point overflow warnings silenced and an optional tqdm bar. Ctrl-C stops within one step: the
    rows before the interrupted step are kept (status ``INTERRUPTED``)."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=N, desc=desc, unit="step", mininterval=0.5)
    n = 0
    try:
        with blas_threads(threads), np.errstate(over="ignore", invalid="ignore"):
            for n in range(N):
                if bar is not None:
                    bar.update(1)
                stop = step(n)
                if stop is not None:
                    return stop
    except KeyboardInterrupt:
        # rows 0..n-1 are complete (row n of the residual kernels and row n+1 of C/R may be partial)
        return Stop(Status.INTERRUPTED,
                    f"interrupted at t = {n * dt:.6g} (step {n} of {N - 1}): Ctrl-C; the steps before are kept", n - 1)
    finally:
        if bar is not None:
            bar.close()
    return Stop(Status.SUCCESS, "", N - 1)


def check_problem(problem: Any, where: str) -> None:
    """``InvalidInputError`` unless ``problem`` is a :class:`learndyn.dmft.Problem`."""
    from .problem import Problem

    if not isinstance(problem, Problem):
        raise InvalidInputError(f"problem: {where} expects a learndyn.dmft.Problem, got {type(problem).__name__}")


def check_size(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, else ``InvalidInputError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seeds(seeds: Any) -> tuple[int, ...]:
    """``seeds``: an int ``n >= 1`` (seeds ``0..n-1``) or a non-empty sequence of distinct ints ``>= 0``."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        return tuple(range(check_size("seeds", seeds, 1)))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise InvalidInputError(f"seeds: must be a number of seeds or a sequence of ints, got {seeds!r}")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise InvalidInputError(f"seeds: each seed must be an integer >= 0, got {s!r}")
        out.append(int(s))
    if not out:
        raise InvalidInputError("seeds: give at least one seed")
    if len(set(out)) != len(out):
        raise InvalidInputError(f"seeds: must be distinct, got {out}")
    return tuple(out)


def check_threshold(value: Any, name: str = "divergence_threshold") -> float:
    """A divergence threshold: a number ``> 0`` (``inf`` switches the check off)."""
    if isinstance(value, bool):
        raise InvalidInputError(f"{name}: must be a number > 0, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a number > 0, got {value!r}") from None
    if not x > 0:
        raise InvalidInputError(f"{name}: must be > 0 (inf switches the check off), got {value!r}")
    return x


def status_from_text(value: Any, message: Any = None) -> tuple[Status, str]:
    """``(status, message)`` from a file's attributes: a :class:`Status` name, or the free text written before the
    statuses were unified (``"ok"``, ``"diverged at t = ..."``, ``"interrupted at t = ..."``), which becomes the
    message."""
    text = "success" if value is None else str(value)
    msg = "" if message is None else str(message)
    try:
        return Status.of(text), msg
    except InvalidInputError:
        pass
    for prefix, status in (("interrupted", Status.INTERRUPTED), ("diverged", Status.DIVERGED)):
        if text.startswith(prefix):
            return status, msg or text
    return Status.FAILED, msg or text
