"""Resource checks made *before* work starts: memory a computation needs against what the machine has.

Every theory and simulation estimates the bytes it will hold at its peak from the problem's sizes and calls
:func:`check_memory` before allocating, so an impossible request is refused at once with a message that
says what to reduce, instead of failing with ``MemoryError`` (or being killed) after the work started.

``LEARNDYN_MEMORY_LIMIT`` (bytes, or with a suffix ``K``/``M``/``G``/``T``) overrides the memory the
checks believe is available; ``LEARNDYN_MEMORY_LIMIT=0`` turns the checks off.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["InsufficientMemoryError", "available_memory", "check_memory", "format_bytes", "StoreLock"]

_SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class InsufficientMemoryError(MemoryError):
    """A computation would need more memory than this machine has; raised before anything is allocated."""


def format_bytes(n: float) -> str:
    """``1536 -> '1.5 KiB'``: a byte count in binary units, three significant digits."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} TiB"  # pragma: no cover


def _limit_from_env() -> int | None:
    text = os.environ.get("LEARNDYN_MEMORY_LIMIT", "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return None
    suffix = text[-1] if text[-1] in _SUFFIX and not text[-1].isdigit() else ""
    try:
        return int(float(text[: len(text) - len(suffix)]) * _SUFFIX[suffix])
    except ValueError:
        return None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def available_memory() -> int:
    """Bytes a new computation can use now: ``MemAvailable`` (Linux), capped by a cgroup limit.

    ``LEARNDYN_MEMORY_LIMIT`` overrides it (``0``: unlimited, returned as a very large number).
    """
    env = _limit_from_env()
    if env is not None:
        return env if env > 0 else 2**62
    avail: int | None = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 8 * 2**30
    cg = _cgroup_limit()
    return min(avail, cg) if cg is not None else avail


def check_memory(required_bytes: float, *, what: str, reduce: str, fraction: float = 0.9) -> None:
    """Refuse a computation whose estimated peak memory exceeds ``fraction`` of :func:`available_memory`.

    Parameters
    ----------
    required_bytes:
        The estimated peak memory of the computation.
    what:
        What is being computed, e.g. ``"dmft.solve(N=4000)"``.
    reduce:
        What the user can change, e.g. ``"reduce t_max / dt (the number of time steps N)"``.

    Raises
    ------
    InsufficientMemoryError
        With both numbers and the advice, before anything is allocated.
    """
    avail = available_memory()
    if required_bytes > fraction * avail:
        raise InsufficientMemoryError(
            f"{what} needs about {format_bytes(required_bytes)} of memory, but only {format_bytes(avail)} is "
            f"available on this machine; {reduce} (LEARNDYN_MEMORY_LIMIT overrides the available amount)"
        )


class StoreLock:
    """Exclusive, non-blocking ``flock`` on the hidden sibling ``.<name>.lock`` of a store folder ``real`` (its
    resolved path, so two spellings of one store share one lock); the file holds the owner's pid.  A store that
    another process holds raises :class:`~learndyn.InvalidInputError` ``"<busy> (lock <file>); wait for it or
    stop it first"``.  :meth:`release` removes the file while still holding it, so a process that locked the
    old file sees it is gone and locks the current one instead (one owner at a time, never two)."""

    def __init__(self, real: str | os.PathLike, busy: str) -> None:
        from .results import InvalidInputError

        real = Path(real)
        self.path = real.parent / f".{real.name}.lock"
        real.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InvalidInputError(f"{busy} (lock {self.path}); wait for it or stop it first") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd: int | None = fd

    @property
    def held(self) -> bool:
        """Whether this process still holds the lock."""
        return self.fd is not None

    def release(self) -> None:
        """Remove the lock file and unlock (idempotent)."""
        if self.fd is not None:
            try:
                os.unlink(self.path)  # while still holding it (see the class docstring)
            except FileNotFoundError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
