r"""Eigendecomposition-based kernel linear algebra that never returns silent NaNs.

Deep ordered-phase kernels are nearly singular: ``Theta -> p* 1 1^T`` with a bulk of size
``O(l chi_1^l)`` (Xiao, Pennington & Schoenholz 2020, Sec. 2), so ``kappa = lambda_max / lambda_min``
passes ``1/eps`` after a few multiples of ``xi_1``.  Every function here

* works from ``numpy.linalg.eigh`` of the kernel and reports the condition number;
* takes an explicit regularisation in ONE convention: ``K + reg I`` where ``reg`` is multiplied by the mean
  diagonal of ``K`` when ``relative=True`` (the default; neural-tangents' ``diag_reg``) and is absolute
  when ``relative=False``;
* reports a kernel that is singular to working precision through the result's ``status``
  (:attr:`~learndyn.Status.ILL_CONDITIONED`, kappa in the ``message``) instead of returning garbage.

``P(Theta) Y = Theta(X*, X) Theta(X, X)^{-1} Y`` is the infinite-width mean predictor after gradient flow to
convergence (Lee et al. 2019; Xiao et al. 2020, Sec. 2), :func:`mean_predictor`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..results import InvalidInputError, Result, Status

__all__ = ["IllConditionedKernelError", "Spectrum", "Solution", "Prediction", "eigh", "condition_number", "solve",
           "mean_predictor", "DEFAULT_MAX_COND"]

#: Largest condition number accepted by :func:`solve` unless told otherwise (about 1e-4 / eps).
DEFAULT_MAX_COND = 1e12


class IllConditionedKernelError(FloatingPointError):
    """The kernel (plus regularisation) is singular to working precision: raised by :meth:`Solution.check`
    and :meth:`Prediction.check` for a result whose status is ``ILL_CONDITIONED``."""


def _as_kernel(K, name: str = "K") -> np.ndarray:
    """``K`` validated (square, finite, symmetric to 1e-8 of its scale) and symmetrised."""
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise InvalidInputError(f"{name}: expected a square matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise InvalidInputError(f"{name}: contains NaN or inf")
    scale = np.max(np.abs(K)) if K.size else 0.0
    if scale > 0 and np.max(np.abs(K - K.T)) > 1e-8 * scale:
        raise InvalidInputError(f"{name}: not symmetric (max |K - K^T| = {np.max(np.abs(K - K.T)):.3g})")
    return 0.5 * (K + K.T)


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues (ascending) and eigenvectors of a symmetric kernel, with its condition number."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @property
    def lambda_max(self) -> float:
        """The largest eigenvalue."""
        return float(self.eigenvalues[-1])

    @property
    def lambda_min(self) -> float:
        """The smallest eigenvalue."""
        return float(self.eigenvalues[0])

    @property
    def cond(self) -> float:
        """``lambda_max / lambda_min``; ``inf`` when ``lambda_min <= 0`` (numerically singular)."""
        lo, hi = self.lambda_min, self.lambda_max
        return hi / lo if lo > 0 else math.inf


def eigh(K) -> Spectrum:
    """Spectrum of a symmetric kernel matrix (validated: square, finite, symmetric)."""
    w, v = np.linalg.eigh(_as_kernel(K))
    return Spectrum(w, v)


def condition_number(K) -> float:
    """``lambda_max / lambda_min`` from ``eigvalsh`` (``inf`` if ``lambda_min <= 0``)."""
    w = np.linalg.eigvalsh(_as_kernel(K))
    return float(w[-1] / w[0]) if w[0] > 0 else math.inf


def _ill_conditioned_message(spec: Spectrum, cond_reg: float, reg_abs: float, max_cond: float) -> str:
    return (f"kernel is singular to working precision: condition number {spec.cond:.3g} "
            f"(lambda_min {spec.lambda_min:.3g}, lambda_max {spec.lambda_max:.3g})"
            + (f", {cond_reg:.3g} with reg={reg_abs:.3g}" if reg_abs else "")
            + f" > max_cond={max_cond:.3g}. Pass reg=... (e.g. reg=1e-10, relative to the mean diagonal) "
            "or a larger max_cond. Deep ordered-phase kernels are singular by construction (Xiao et al. 2020, "
            "Sec. 2).")


def _check_reg(reg, max_cond) -> None:
    if isinstance(reg, bool) or not (isinstance(reg, (int, float, np.floating)) and math.isfinite(reg) and reg >= 0):
        raise InvalidInputError(f"reg: must be a finite number >= 0, got {reg!r}")
    if max_cond is not None and not (max_cond > 1):
        raise InvalidInputError(f"max_cond: must be > 1, got {max_cond!r}")


class _Checked:
    def check(self):
        """This result if it succeeded; :class:`IllConditionedKernelError` with the message otherwise."""
        if self.status is not Status.SUCCESS:
            raise IllConditionedKernelError(self.message)
        return self


@dataclass(frozen=True)
class Solution(_Checked, Result):
    """``x = (K + reg I)^{-1} y`` with diagnostics (:func:`solve`).

    ``status`` is :attr:`~learndyn.Status.ILL_CONDITIONED` when ``cond(K + reg I) > max_cond``: then ``x`` is
    NaN (no trustworthy solution exists in float64), the spectrum and condition numbers are kept and the
    ``message`` says what to change; :meth:`check` turns it into :class:`IllConditionedKernelError`.
    """

    x: np.ndarray
    cond: float  #: condition number of K itself
    cond_regularized: float  #: condition number of K + reg I
    reg: float  #: absolute regularisation added to the diagonal
    spectrum: Spectrum
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def to_xarray(self) -> xr.Dataset:
        """``x`` (dims ``row[, column]``) and the eigenvalues; condition numbers, reg and status as attributes."""
        dims = ("row",) if np.ndim(self.x) == 1 else ("row", "column")
        return xr.Dataset({"x": (dims, np.asarray(self.x)), "eigenvalues": ("mode", self.spectrum.eigenvalues)},
                          attrs=dict(cond=float(self.cond), cond_regularized=float(self.cond_regularized),
                                     reg=float(self.reg), status=str(self.status), message=self.message))


def solve(K, y, *, reg: float = 0.0, relative: bool = True, max_cond: float = DEFAULT_MAX_COND) -> Solution:
    r"""Solve ``(K + reg I) x = y`` through ``eigh`` (a solve, never an explicit inverse).

    Parameters
    ----------
    reg:
        Diagonal regularisation; with ``relative=True`` it is multiplied by ``mean(diag K)``.
    max_cond:
        Largest accepted ``cond(K + reg I)`` (default 1e12): beyond it the :class:`Solution` has status
        ``ILL_CONDITIONED`` and ``x`` is NaN (``Solution.check()`` raises :class:`IllConditionedKernelError`).
    """
    _check_reg(reg, max_cond)
    K = _as_kernel(K)
    y = np.asarray(y, dtype=np.float64)
    if y.shape[0] != K.shape[0]:
        raise InvalidInputError(f"y: first dimension {y.shape[0]} does not match the kernel size {K.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise InvalidInputError("y: contains NaN or inf")
    spec = eigh(K)
    reg_abs = float(reg) * (float(np.mean(np.diag(K))) if relative else 1.0)
    lam = spec.eigenvalues + reg_abs
    cond_reg = lam[-1] / lam[0] if lam[0] > 0 else math.inf
    if not cond_reg <= max_cond:
        return Solution(np.full(y.shape, np.nan), spec.cond, float(cond_reg), reg_abs, spec, Status.ILL_CONDITIONED,
                        _ill_conditioned_message(spec, cond_reg, reg_abs, max_cond))
    V = spec.eigenvectors
    coef = V.T @ y
    x = V @ (coef / (lam[:, None] if coef.ndim == 2 else lam))
    return Solution(x, spec.cond, float(cond_reg), reg_abs, spec)


@dataclass(frozen=True)
class Prediction(_Checked, Result):
    r"""The kernel mean predictor ``P(K) Y = K(X*, X) (K(X, X) + reg I)^{-1} Y`` (:func:`mean_predictor`).

    ``mean``: ``(n_test,)`` or ``(n_test, k)``; ``cond``: ``lambda_max / lambda_min`` of ``K(X, X) + reg I``
    (``inf`` if not positive definite); ``reg``: the absolute regularisation added.  ``status`` is
    :attr:`~learndyn.Status.ILL_CONDITIONED` when ``cond > max_cond``: ``mean`` is still the pseudo-inverse
    prediction (eigenvalues ``<= rcond * lambda_max`` dropped), to be read with that caveat.  Unpacks as
    ``mean, cond = mean_predictor(...)``.
    """

    mean: np.ndarray
    cond: float
    reg: float
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def __iter__(self):
        """``mean, cond = prediction``."""
        return iter((self.mean, self.cond))

    def to_xarray(self) -> xr.Dataset:
        """``mean`` over ``(test[, output])``; cond, reg and status as attributes."""
        dims = ("test",) if np.ndim(self.mean) == 1 else ("test", "output")
        return xr.Dataset({"mean": (dims, np.asarray(self.mean))},
                          attrs=dict(cond=float(self.cond), reg=float(self.reg), status=str(self.status),
                                     message=self.message))


def _check_regression(k_train, k_test_train, y, names=("k_train", "k_test_train", "y")):
    """Kernel-regression shapes: ``k_train`` (m, m), ``k_test_train`` (n_test, m), ``y`` (m,) or (m, k)."""
    kn, ktn, yn = names
    k_train = np.asarray(k_train, float)
    k_test_train = np.asarray(k_test_train, float)
    y = np.asarray(y, float)
    if k_train.ndim != 2 or k_train.shape[0] != k_train.shape[1]:
        raise InvalidInputError(f"{kn}: expected a square (m, m) kernel, got shape {k_train.shape}")
    m = k_train.shape[0]
    if k_test_train.ndim != 2 or k_test_train.shape[1] != m:
        raise InvalidInputError(f"{ktn}: expected shape (n_test, {m}) (test rows against the {m} training inputs), "
                                f"got {k_test_train.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != m:
        raise InvalidInputError(f"{yn}: expected {m} rows (one target per training input), got shape {y.shape}")
    for name, arr in ((kn, k_train), (ktn, k_test_train), (yn, y)):
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(f"{name}: contains NaN or inf")
    return k_train, k_test_train, y


def mean_predictor(k_train, k_test_train, y, *, reg: float = 0.0, relative: bool = True, rcond: float = 0.0,
                   max_cond: float | None = DEFAULT_MAX_COND) -> Prediction:
    r"""The kernel mean predictor ``P(K) Y = K(X*, X) (K(X, X) + reg I)^{-1} Y`` via ``eigh`` -- with the NTK
    the infinite-width network's prediction after gradient flow to convergence, with the NNGP the exact
    Bayesian posterior mean (Lee et al. 2019; Xiao, Pennington & Schoenholz 2020, Sec. 2).

    ``k_train``: ``K(X, X)`` ``(m, m)``; ``k_test_train``: ``K(X*, X)`` ``(n_test, m)``; ``y``: ``(m,)`` or
    ``(m, k)``.  ``reg`` is multiplied by ``mean(diag K(X, X))`` when ``relative`` (the one convention of this
    module).  Eigenvalues ``<= rcond * lambda_max`` are dropped (pseudo-inverse; 0 keeps every positive one).
    ``max_cond``: beyond it the result's status is ``ILL_CONDITIONED`` (``None``: never).  Returns a
    :class:`Prediction`, which unpacks as ``(mean, cond)``.
    """
    _check_reg(reg, max_cond)
    k_train, k_test_train, y = _check_regression(k_train, k_test_train, y)
    reg_abs = float(reg) * (float(np.mean(np.diag(k_train))) if relative else 1.0)
    w, V = np.linalg.eigh(k_train + reg_abs * np.eye(k_train.shape[0]))
    keep = w > max(rcond * w[-1], 0.0)
    inv = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    coef = V @ (inv[:, None] * (V.T @ y)) if y.ndim == 2 else V @ (inv * (V.T @ y))
    cond = float(w[-1] / w[0]) if w[0] > 0 else np.inf
    status, message = Status.SUCCESS, ""
    if max_cond is not None and not cond <= max_cond:
        status = Status.ILL_CONDITIONED
        message = _ill_conditioned_message(Spectrum(w, V), cond, reg_abs, max_cond).replace(
            "Pass reg=", "The mean is the pseudo-inverse prediction; pass reg=")
    return Prediction(k_test_train @ coef, cond, reg_abs, status, message)
