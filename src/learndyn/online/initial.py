r"""Initial weights for finite-N online SGD (the initialisations of the simulations of Goldt et al. 2019).

Every initialisation returns an :class:`InitialWeights` (student ``w`` (K x N), ``v`` (K); teacher
``w_teacher`` (M x N), ``v_teacher`` (M)); its :meth:`InitialWeights.order_parameters` are the exact
overlaps ``Q = w w^T / N``, ``R = w w*^T / N``, ``T = w* w*^T / N`` that the ODE theory starts from.

The teacher is always ``w*_m ~ N(0, I_N)`` (so ``T = I_M + O(1/sqrt N)``) with second layer
``v* = 1`` unless ``v_teacher`` is given (an array, a constant, or ``"normal"`` for ``N(0, 1)``).

Student initialisations (the ``--init`` options of the paper's reference code):

========== ======================================================= ==============================================
name       first layer ``w``                                        second layer ``v`` (when trained)
========== ======================================================= ==============================================
large      ``N(0, 1)`` per component (``Q ~ I``)                    ``N(0, 1)``
small      ``scale * N(0, 1)``, ``scale = 1e-3``                    ``scale * N(0, 1)``
informed   ``w_k = w*_k + 1e-9 N(0,1)`` for ``k < M``; extra units   ``v_k = v*_k`` for ``k < M``; extras
           ``scale * N(0, 1)`` (near-zero norm)                       ``scale * N(0, 1)``
denoise    unit ``k`` copies teacher unit ``k mod M``                ``v*_{k mod M} / (copies of that unit)``
mixed      ``N(0, 1/N)`` per component (``Q ~ I/N``)               ``N(0, 1/K)``
========== ======================================================= ==============================================

When only the first layer is trained, ``v`` is fixed to ``1`` (the soft committee machine) for every
initialisation except ``denoise``, which needs a trained second layer, and except user weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..resources import check_memory
from ..results import InvalidInputError
from ._util import numeric as _numeric
from .problem import OrderParameters, Problem

__all__ = ["InitialWeights", "initial_weights", "INITIALISATIONS", "teacher_second_layer"]

#: names accepted by :func:`initial_weights`
INITIALISATIONS = ("large", "small", "informed", "denoise", "mixed")


def _check_N(N: Any) -> int:
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise InvalidInputError(f"N: must be a positive integer (input dimension), got {N!r}")
    return int(N)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed: must be an integer >= 0, got {seed!r}")
    return int(seed)


@dataclass(frozen=True, eq=False)
class InitialWeights:
    """Microscopic initial state: student ``w`` (K x N), ``v`` (K); teacher ``w_teacher`` (M x N), ``v_teacher`` (M)."""

    w: Any
    v: Any
    w_teacher: Any
    v_teacher: Any

    def __post_init__(self) -> None:
        w = _numeric("w", self.w, "an array")
        wt = _numeric("w_teacher", self.w_teacher, "an array")
        if w.ndim != 2 or wt.ndim != 2 or w.shape[1] != wt.shape[1]:
            raise InvalidInputError(f"w, w_teacher: must be K x N and M x N arrays, got shapes {w.shape} and "
                                    f"{wt.shape}")
        K, N = w.shape
        M = wt.shape[0]
        v = _numeric("v", np.ones(K) if self.v is None else self.v, "an array")
        vt = _numeric("v_teacher", np.ones(M) if self.v_teacher is None else self.v_teacher, "an array")
        if v.shape != (K,):
            raise InvalidInputError(f"v: expected shape ({K},), got {v.shape}")
        if vt.shape != (M,):
            raise InvalidInputError(f"v_teacher: expected shape ({M},), got {vt.shape}")
        for name, arr in (("w", w), ("v", v), ("w_teacher", wt), ("v_teacher", vt)):
            if not np.all(np.isfinite(arr)):
                raise InvalidInputError(f"{name}: contains NaN or infinite entries")
            object.__setattr__(self, name, arr)

    @property
    def K(self) -> int:
        """Number of student hidden units."""
        return self.w.shape[0]

    @property
    def M(self) -> int:
        """Number of teacher hidden units."""
        return self.w_teacher.shape[0]

    @property
    def N(self) -> int:
        """Input dimension."""
        return self.w.shape[1]

    def check_problem(self, problem: Problem, N: int | None = None) -> None:
        """Refuse (:class:`learndyn.InvalidInputError`) weights whose ``K``, ``M`` (or ``N``) do not fit."""
        if (self.K, self.M) != (problem.K, problem.M):
            raise InvalidInputError(f"init: weights have K={self.K}, M={self.M} but the problem has "
                                    f"K={problem.K}, M={problem.M}")
        if N is not None and self.N != N:
            raise InvalidInputError(f"init: weights have N={self.N} but N={N} was requested")

    def order_parameters(self) -> OrderParameters:
        """Exact overlaps of these weights (Goldt et al. 2019, eq. (5)): ``Q = w w^T/N``, ``R = w w*^T/N``,
        ``T = w* w*^T/N``."""
        return OrderParameters.from_weights(self.w, self.w_teacher, v=self.v, v_teacher=self.v_teacher)


def teacher_second_layer(M: int, v_teacher: Any, rng: np.random.Generator) -> np.ndarray:
    """``v*``: ``None`` -> ones; a number -> that constant; ``"normal"`` -> ``N(0, 1)``; an array of length M."""
    if v_teacher is None:
        return np.ones(M)
    if isinstance(v_teacher, str):
        if v_teacher == "normal":
            return rng.standard_normal(M)
        if v_teacher == "ones":
            return np.ones(M)
        raise InvalidInputError(f"v_teacher: unknown {v_teacher!r}; allowed are None, 'ones', 'normal', a number or "
                                f"an array of length M={M}")
    arr = _numeric("v_teacher", v_teacher, "an array")
    if arr.ndim == 0:
        arr = np.full(M, float(arr))
    if arr.shape != (M,) or not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"v_teacher: must be finite with shape ({M},), got {arr.shape}")
    return arr.copy()


def initial_weights(
    problem: Problem,
    N: int,
    init: "str | InitialWeights | dict | Callable" = "large",
    seed: int = 0,
    *,
    v_teacher: Any = None,
    scale: float = 1e-3,
) -> InitialWeights:
    """Draw teacher and student weights for one seed (see the module docstring for the table).

    Parameters
    ----------
    problem, N:
        The :class:`Problem` (K, M, training mode) and the input dimension.
    init:
        ``"large"``, ``"small"``, ``"informed"``, ``"denoise"``, ``"mixed"``; an :class:`InitialWeights`
        or a dict with keys ``w, v, w_teacher, v_teacher`` (user weights, returned as given); or a
        callable ``f(problem, N, rng) -> InitialWeights``.
    seed:
        Seed of the ``numpy`` generator that draws the weights (teacher and student).
    v_teacher:
        Teacher second layer (see :func:`teacher_second_layer`); ignored for user weights.
    scale:
        Size of the "small" weights and of the extra units of "informed".
    """
    N = _check_N(N)
    if isinstance(init, InitialWeights):
        init.check_problem(problem, N)
        return init
    if isinstance(init, dict):
        missing = {"w", "w_teacher"} - set(init)
        if missing:
            raise InvalidInputError(f"init: a dict of user weights needs keys w, v, w_teacher, v_teacher (missing "
                                    f"{sorted(missing)})")
        iw = InitialWeights(w=init["w"], v=init.get("v"), w_teacher=init["w_teacher"],
                            v_teacher=init.get("v_teacher"))
        iw.check_problem(problem, N)
        return iw
    rng = np.random.default_rng(np.random.SeedSequence([_check_seed(seed), 0x5EED]))
    if callable(init) and not isinstance(init, str):
        iw = init(problem, N, rng)
        if not isinstance(iw, InitialWeights):
            raise InvalidInputError("init: a callable must return learndyn.online.InitialWeights")
        iw.check_problem(problem, N)
        return iw
    if not isinstance(init, str) or init not in INITIALISATIONS:
        raise InvalidInputError(f"init: unknown initialisation {init!r}; allowed are {list(INITIALISATIONS)}, "
                                "InitialWeights, a dict of weights or a callable")
    try:
        scale_ok = not isinstance(scale, bool) and np.isfinite(float(scale)) and float(scale) >= 0
    except (TypeError, ValueError):
        scale_ok = False
    if not scale_ok:
        raise InvalidInputError(f"scale: must be finite and >= 0, got {scale!r}")
    K, M = problem.K, problem.M
    # the draws and the validated copy InitialWeights keeps
    check_memory(2 * 8 * (K + M) * N, what=f"online.initial_weights(N={N}, K={K}, M={M})", reduce="reduce N")
    both = bool(problem.train_second_layer)
    wt = rng.standard_normal((M, N))
    vt = teacher_second_layer(M, v_teacher, rng)
    v = np.ones(K)
    if init == "large":
        w = rng.standard_normal((K, N))
        if both:
            v = rng.standard_normal(K)
    elif init == "small":
        w = scale * rng.standard_normal((K, N))
        if both:
            v = scale * rng.standard_normal(K)
    elif init == "mixed":
        w = rng.standard_normal((K, N)) / np.sqrt(N)
        if both:
            v = rng.standard_normal(K) / np.sqrt(K)
    elif init == "informed":
        w = scale * rng.standard_normal((K, N))
        n = min(K, M)
        w[:n] = wt[:n] + 1e-9 * rng.standard_normal((n, N))
        if both:
            v = scale * rng.standard_normal(K)
            v[:n] = vt[:n]
    else:  # denoise
        if not both:
            raise InvalidInputError("init: 'denoise' splits the teacher's second-layer weights among copies and needs "
                                    "train_second_layer=True")
        if K < M:
            raise InvalidInputError(f"init: 'denoise' needs K >= M, got K={K}, M={M}")
        owner = np.arange(K) % M
        copies = np.bincount(owner, minlength=M)
        w = wt[owner] + 1e-9 * rng.standard_normal((K, N))
        v = vt[owner] / copies[owner]
    return InitialWeights(w=w, v=v, w_teacher=wt, v_teacher=vt)
