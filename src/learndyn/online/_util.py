"""Argument checks shared by the modules of :mod:`learndyn.online` (private to the package).

Every check raises :class:`learndyn.InvalidInputError` (a ``ValueError``) with a one-line message that
names the parameter and says what is expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..results import InvalidInputError

__all__ = ["positive_int", "nonneg_float", "positive_number", "numeric", "as_matrix", "check_seeds",
           "check_problem", "save_times"]


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1 (bools refused), else :class:`InvalidInputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def nonneg_float(name: str, value: Any, strict: bool = False) -> float:
    """``value`` as a finite float >= 0 (> 0 if ``strict``), else :class:`InvalidInputError` naming ``name``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a real number, got {value!r}") from None
    if not np.isfinite(x) or x < 0 or (strict and x == 0):
        bound = "> 0" if strict else ">= 0"
        raise InvalidInputError(f"{name}: must be finite and {bound}, got {value!r}")
    return x


def positive_number(name: str, value: Any, *, finite: bool = True, unit: str = "") -> float:
    """``value`` as a float > 0 (and finite if ``finite``), else :class:`InvalidInputError` naming ``name``."""
    what = f"a {'finite ' if finite else ''}number{' of ' + unit if unit else ''} > 0"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be {what}, got {value!r}") from None
    if isinstance(value, bool) or not (x > 0) or np.isnan(x) or (finite and np.isinf(x)):
        raise InvalidInputError(f"{name}: must be {what}, got {value!r}")
    return x


def numeric(name: str, value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array, else :class:`InvalidInputError` naming ``name``."""
    if isinstance(value, (str, bytes)):
        raise InvalidInputError(f"{name}: must be {what} of numbers, got the string {value!r}")
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be {what} of numbers, got {type(value).__name__} "
                                f"{value!r:.60}") from None


def as_matrix(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a finite float64 array of exactly ``shape``, else :class:`InvalidInputError`."""
    if isinstance(value, (str, bytes)):
        raise InvalidInputError(f"{name}: must be a numeric array of shape {shape}, got the string {value!r}")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a numeric array of shape {shape}, "
                                f"got {type(value).__name__}") from None
    if arr.shape != shape:
        raise InvalidInputError(f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name}: contains NaN or infinite entries")
    return arr


def check_seeds(seeds: Any) -> np.ndarray:
    """The seeds as an int64 array: an int ``n`` means ``0 .. n-1``; otherwise a non-empty sequence of
    distinct non-negative integers (below 2**63)."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise InvalidInputError(f"seeds: an integer means the number of seeds and must be >= 1, got {seeds}")
        return np.arange(int(seeds))
    try:
        arr = np.asarray(list(seeds))
    except TypeError:
        raise InvalidInputError("seeds: expected a number of seeds or a sequence of integer seeds, "
                                f"got {seeds!r}") from None
    if arr.size == 0 or arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
        raise InvalidInputError(f"seeds: expected a non-empty sequence of non-negative integers, got {seeds!r}")
    if np.any(arr > np.iinfo(np.int64).max):
        raise InvalidInputError(f"seeds: must be below 2**63 (stored as int64), got {arr.max()}")
    if np.unique(arr).size != arr.size:
        raise InvalidInputError(f"seeds: contains duplicates: {arr.tolist()}")
    return arr.astype(np.int64)


def check_problem(problem: Any) -> None:
    """Refuse anything but a :class:`learndyn.online.Problem`."""
    from .problem import Problem

    if not isinstance(problem, Problem):
        raise InvalidInputError(f"problem: expected learndyn.online.Problem, got {type(problem).__name__}")


def save_times(times: Any, alphas: Any) -> Any:
    """The explicit save grid from ``times=`` or its alias ``alphas=`` (at most one of them)."""
    if times is not None and alphas is not None:
        raise InvalidInputError("times: give the save grid as times= or as its alias alphas=, not both")
    return alphas if times is None else times
