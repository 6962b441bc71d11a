r"""Eigendecomposition-based kernel linear algebra that never returns silent NaNs (spec §2, §5.7).

Deep ordered-phase kernels are nearly singular: ``Theta -> p* 1 1^T`` with a bulk of size
``O(l chi_1^l)`` (spec §2.3), so ``kappa = lambda_max / lambda_min`` passes ``1/eps`` after a few
multiples of ``xi_1``.  Every function here

* works from ``numpy.linalg.eigh`` of the symmetrised kernel and reports the condition number;
* takes an explicit regularisation ``reg`` (``K + reg I``; ``relative=True`` scales it by the
  mean diagonal, like neural-tangents' ``diag_reg``);
* raises :class:`IllConditionedKernelError` (with kappa in the message) instead of returning
  garbage when the (regularised) kernel is singular to working precision.

``P(Theta) Y = Theta(X*, X) Theta(X, X)^{-1} Y`` is the mean predictor of spec §2.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["IllConditionedKernelError", "Spectrum", "Solution", "eigh", "condition_number", "solve",
           "mean_predictor"]

#: Largest condition number accepted by :func:`solve` unless told otherwise (about 1e-4 / eps).
DEFAULT_MAX_COND = 1e12


class IllConditionedKernelError(FloatingPointError):
    """The kernel (plus regularisation) is singular to working precision."""


def _as_kernel(K, name: str = "K") -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError(f"{name}: contains NaN or inf")
    scale = np.max(np.abs(K)) if K.size else 0.0
    if scale > 0 and np.max(np.abs(K - K.T)) > 1e-8 * scale:
        raise ValueError(f"{name}: not symmetric (max |K - K^T| = {np.max(np.abs(K - K.T)):.3g})")
    return 0.5 * (K + K.T)


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues (ascending) and eigenvectors of a symmetric kernel, with its condition number."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[-1])

    @property
    def lambda_min(self) -> float:
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


@dataclass(frozen=True)
class Solution:
    """``x = (K + reg I)^{-1} y`` with diagnostics."""

    x: np.ndarray
    cond: float  #: condition number of K itself
    cond_regularized: float  #: condition number of K + reg I
    reg: float  #: absolute regularisation added to the diagonal
    spectrum: Spectrum


def solve(K, y, *, reg: float = 0.0, relative: bool = True, max_cond: float = DEFAULT_MAX_COND) -> Solution:
    r"""Solve ``(K + reg I) x = y`` through ``eigh`` (spec §5.7: "a solve, not an explicit inverse").

    Parameters
    ----------
    reg:
        Diagonal regularisation; with ``relative=True`` it is multiplied by ``mean(diag K)``.
    max_cond:
        Raise :class:`IllConditionedKernelError` if ``cond(K + reg I)`` exceeds this (default 1e12).
    """
    if not (isinstance(reg, (int, float)) and math.isfinite(reg) and reg >= 0):
        raise ValueError(f"reg: must be a finite number >= 0, got {reg!r}")
    if not (max_cond > 1):
        raise ValueError(f"max_cond: must be > 1, got {max_cond!r}")
    K = _as_kernel(K)
    y = np.asarray(y, dtype=np.float64)
    if y.shape[0] != K.shape[0]:
        raise ValueError(f"y: first dimension {y.shape[0]} does not match the kernel size {K.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y: contains NaN or inf")
    spec = eigh(K)
    reg_abs = float(reg) * (float(np.mean(np.diag(K))) if relative else 1.0)
    lam = spec.eigenvalues + reg_abs
    cond_reg = lam[-1] / lam[0] if lam[0] > 0 else math.inf
    if not cond_reg <= max_cond:
        raise IllConditionedKernelError(
            f"kernel is singular to working precision: condition number {spec.cond:.3g} "
            f"(lambda_min {spec.lambda_min:.3g}, lambda_max {spec.lambda_max:.3g})"
            + (f", {cond_reg:.3g} with reg={reg_abs:.3g}" if reg_abs else "")
            + f" > max_cond={max_cond:.3g}. Pass reg=... (e.g. reg=1e-10, relative to the mean diagonal) "
            "or a larger max_cond. Deep ordered-phase kernels are singular by construction (spec §2.3)."
        )
    V = spec.eigenvectors
    coef = V.T @ y
    x = V @ (coef / (lam[:, None] if coef.ndim == 2 else lam))
    return Solution(x, spec.cond, float(cond_reg), reg_abs, spec)


def mean_predictor(k_test_train, k_train_train, y_train, *, reg: float = 0.0, relative: bool = True,
                   max_cond: float = DEFAULT_MAX_COND) -> np.ndarray:
    r"""``P(Theta) Y = Theta(X*, X) (Theta(X, X) + reg I)^{-1} Y`` (spec §2.5)."""
    k_tt = np.asarray(k_test_train, dtype=np.float64)
    sol = solve(k_train_train, y_train, reg=reg, relative=relative, max_cond=max_cond)
    if k_tt.ndim != 2 or k_tt.shape[1] != sol.x.shape[0]:
        raise ValueError(f"k_test_train: expected shape (n_test, {sol.x.shape[0]}), got {k_tt.shape}")
    if not np.all(np.isfinite(k_tt)):
        raise ValueError("k_test_train: contains NaN or inf")
    return k_tt @ sol.x
