r"""NNGP / NTK kernel regression at dataset scale (tens of thousands of training points, in memory), float64.

:func:`regress` gives the predictions of an infinite-width network on test inputs ``X*`` from the kernels
``K = K(X, X)`` (train-train) and ``K* = K(X*, X)`` (test-train) and the targets ``Y``:

* ``t = inf``: the kernel mean predictor ``f(X*) = K* (K + r I)^{-1} Y`` -- with the NTK the network trained
  by gradient flow to convergence, with the NNGP the Bayesian posterior mean (Lee et al. 2019, eqs. (8)-(9) at
  ``t -> inf``; Xiao, Pennington & Schoenholz 2020, Sec. 2).  Solved by a blocked Cholesky factorisation
  (LAPACK ``dpotrf`` on diagonal blocks, ``dtrsm``, matrix products; ``dpotrs``; ``m^3 / 3`` flops), in place
  with ``overwrite=True``, so that ``m = 20000``
  needs no memory beyond the kernels (``20000^2`` float64 = 3.2 GB each).
* finite ``t``: gradient flow on the MSE loss from a zero function,
  ``f_t(X*) = K* (K + r I)^{-1} (I - e^{-eta (K + r I) t}) Y`` (Lee et al. 2019, eqs. (8)-(9);
  Xiao et al. 2020, Sec. 2), through ONE eigendecomposition ``K + r I = V diag(w) V^T`` for every ``t``:
  ``f_t(X*) = K* V diag((1 - e^{-eta w t}) / w) V^T Y``.  ``eta = lr_factor * 2 / lambda_max`` unless
  ``learning_rate`` is given (the convention of :func:`~learndyn.kernels.gd_predictions`); ``t`` counts steps
  of size ``eta``.  An eigendecomposition costs about ``9 m^3`` flops -- some 25 Cholesky solves.

Regularisation ``r`` is explicit, in the one convention of :mod:`learndyn.kernels.linalg`: ``reg`` times the
mean diagonal of ``K`` when ``relative=True`` (neural-tangents' ``diag_reg``), absolute otherwise.

Nothing comes back as silent NaN: a kernel that is not positive definite in float64 (the Cholesky
factorisation stops) or whose condition number exceeds ``max_cond`` gives a :class:`Regression` with status
:attr:`~learndyn.Status.ILL_CONDITIONED`, the condition number and a ``reg`` that is sufficient to solve it in
the ``message``; :meth:`Regression.check` raises :class:`~learndyn.kernels.IllConditionedKernelError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import xarray as xr

from ..results import InvalidInputError, Result, Status, problem_attrs
from .linalg import DEFAULT_MAX_COND, _Checked

__all__ = ["Regression", "regress"]

#: rows per chunk when a large kernel is scanned (validation, norms): 2**22 entries = 32 MiB per chunk
_CHUNK_ENTRIES = 2 ** 22


@dataclass(frozen=True)
class Regression(_Checked, Result):
    r"""Kernel-regression predictions for each training time (:func:`regress`).

    ``t``: the times (``inf``: the converged mean predictor ``K* (K + r I)^{-1} Y``); ``predictions``:
    ``f_t(X*)`` of shape ``(len(t), n_test[, k])`` (``None`` when no test kernel was given);
    ``train_predictions``: ``f_t(X)`` on the training inputs, ``(len(t), m[, k])`` (at ``t = inf``:
    ``Y - r (K + r I)^{-1} Y``); ``coef``: the dual coefficients ``c_t``, ``(len(t), m[, k])``, with
    ``f_t(X*) = K(X*, X) c_t`` for any test inputs (:meth:`predict`; at ``t = inf``, ``c = (K + r I)^{-1} Y``).  ``cond``: the condition number of
    ``K + r I`` as ``cond_method`` computed it -- ``"dpocon"``: LAPACK's estimate of the 1-norm condition number
    ``||A||_1 ||A^{-1}||_1`` from the Cholesky factor (Higham's estimator; within a factor ``m`` of
    ``lambda_max / lambda_min``, and equal to it for a kernel whose top eigenvector is constant), ``"eigh"``:
    ``lambda_max / lambda_min`` exactly (``inf`` when ``lambda_min <= 0``), ``"cholesky failed"``: ``inf``.
    ``reg``: the absolute regularisation ``r`` added to the diagonal; ``learning_rate``: ``eta`` (NaN when
    only ``t = inf`` was asked).

    ``status`` is :attr:`~learndyn.Status.ILL_CONDITIONED` when ``K + r I`` is not positive definite in
    float64 (the predictions are NaN: no solution exists) or ``cond > max_cond`` (the predictions are kept, to
    be read with that caveat); ``message`` gives the condition number and a ``reg`` that suffices, and
    :meth:`check` raises :class:`~learndyn.kernels.IllConditionedKernelError`.
    """

    t: np.ndarray
    predictions: np.ndarray | None
    train_predictions: np.ndarray
    coef: np.ndarray
    cond: float
    cond_method: str
    reg: float
    learning_rate: float
    params: dict = field(default_factory=dict)
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def predict(self, k_test_train) -> np.ndarray:
        """``f_t(X*) = K(X*, X) c_t`` for each time, ``(len(t), n_test[, k])``, from a test-train kernel
        ``(n_test, m)`` (e.g. computed after the training kernel was factorised and freed)."""
        m = self.coef.shape[1]
        Ks = _as_float64(k_test_train, "k_test_train", (2,))
        if Ks.shape[1] != m:
            raise InvalidInputError(f"k_test_train: expected shape (n_test, {m}), got {Ks.shape}")
        return np.stack([Ks @ c for c in self.coef])

    def accuracy(self, labels) -> np.ndarray:
        """Per time, the fraction of test inputs whose largest output is ``labels`` (integer classes)."""
        return _accuracy(self._test(), labels, "labels")

    def train_accuracy(self, labels) -> np.ndarray:
        """Per time, the fraction of training inputs whose largest output is ``labels``."""
        return _accuracy(self.train_predictions, labels, "labels")

    def mse(self, y_test) -> np.ndarray:
        """Per time, the mean squared error ``mean_i |f_t(x*_i) - y*_i|^2`` (summed over outputs)."""
        f = self._test()
        y = np.asarray(y_test, float)
        if y.shape != f.shape[1:]:
            raise InvalidInputError(f"y_test: expected shape {f.shape[1:]}, got {y.shape}")
        err = (f - y[None]) ** 2
        return err.reshape(err.shape[0], err.shape[1], -1).sum(-1).mean(-1)

    def _test(self) -> np.ndarray:
        if self.predictions is None:
            raise InvalidInputError("k_test_train: this regression was solved without a test kernel; use "
                                    "predict(k_test_train)")
        return self.predictions

    def to_xarray(self) -> xr.Dataset:
        """``predictions`` over ``(t, test[, output])`` (when computed), ``train_predictions`` and ``coef`` over
        ``(t, train[, output])``; cond, reg, learning rate, parameters and status as attributes."""
        tail = ("output",) if self.coef.ndim == 3 else ()
        data = {"train_predictions": (("t", "train") + tail, self.train_predictions),
                "coef": (("t", "train") + tail, self.coef)}
        if self.predictions is not None:
            data["predictions"] = (("t", "test") + tail, self.predictions)
        attrs = problem_attrs(self.params, cond=float(self.cond), cond_method=self.cond_method,
                              reg=float(self.reg), learning_rate=float(self.learning_rate),
                              status=str(self.status), message=self.message)
        return xr.Dataset(data, coords={"t": np.asarray(self.t, float)}, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Regression":
        """The result stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        from ..results import problem_json

        a = ds.attrs
        pred = ds["predictions"].values if "predictions" in ds else None
        return cls(ds["t"].values, pred, ds["train_predictions"].values, ds["coef"].values, float(a["cond"]),
                   str(a["cond_method"]), float(a["reg"]), float(a["learning_rate"]), problem_json(ds),
                   Status.of(a.get("status", "success")), str(a.get("message", "")))


def _accuracy(f: np.ndarray, labels, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if f.ndim != 3:
        raise InvalidInputError(f"{name}: accuracies need one output per class (targets of shape (m, k))")
    if labels.shape != (f.shape[1],) or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"{name}: expected {f.shape[1]} integer class indices, got {labels.dtype} of "
                                f"shape {labels.shape}")
    return np.mean(np.argmax(f, axis=-1) == labels[None], axis=1)


#: columns per block of :func:`_cholesky`; LAPACK's own threaded dpotrf is called only on blocks this size
_CHOLESKY_BLOCK = 4096


def _cholesky(A: np.ndarray, block: int | None = None) -> int:
    r"""Factorise the Fortran-ordered symmetric ``A = L L^T`` in place (``L`` in the lower triangle; the strict
    upper triangle is overwritten with intermediate values) by the right-looking blocked algorithm: per block column ``k``, LAPACK
    ``dpotrf`` on the diagonal block, ``dtrsm`` for the panel below it and a matrix product
    ``A_22 -= L_21 L_21^T`` on the lower part of the trailing matrix.  Same flops (``m^3 / 3``) and rounding
    behaviour as ``dpotrf`` on the whole matrix; the work is in the matrix products.  It exists because
    OpenBLAS's multithreaded ``dpotrf`` crashes (segmentation fault) on matrices of order ~16000 and more with
    two threads (OpenMathLib/OpenBLAS issues 2562, 2821), where the kernels of 20000 images live.
    Returns 0, or the (1-based) row where a leading minor is not positive definite, as ``dpotrf``'s ``info``."""
    import scipy.linalg.blas as blas
    import scipy.linalg.lapack as lapack

    m = A.shape[0]
    nb = int(block or _CHOLESKY_BLOCK)
    if m <= nb:
        _, info = lapack.dpotrf(A, lower=1, clean=0, overwrite_a=1)
        return int(info)
    for k in range(0, m, nb):
        e = min(k + nb, m)
        diag = np.asfortranarray(A[k:e, k:e])
        diag, info = lapack.dpotrf(diag, lower=1, clean=0, overwrite_a=1)
        A[k:e, k:e] = diag
        if info != 0:
            return int(k + info)
        if e == m:
            break
        panel = blas.dtrsm(1.0, diag, np.asfortranarray(A[e:, k:e]), side=1, lower=1, trans_a=1, overwrite_b=1)
        A[e:, k:e] = panel
        for j in range(e, m, nb):  # the lower part of the trailing matrix, one block column at a time
            f = min(j + nb, m)
            A[j:, j:f] -= panel[j - e:] @ panel[j - e:f - e].T
        del panel
    return 0


def _flow_factors(w: np.ndarray, eta: float, t: float, lmax: float) -> tuple[np.ndarray, np.ndarray]:
    r"""``(e^{-eta w t}, (1 - e^{-eta w t}) / w)`` per eigenvalue ``w`` of the kernel: the gradient-flow filters of
    Lee et al. 2019, eqs. (8)-(9).  The second is evaluated stably for small ``eta w t`` (``-> eta t``); at
    ``t = inf`` it is the pseudo-inverse ``1 / w`` for ``w > 1e-14 lambda_max`` and 0 below (negative
    eigenvalues -- roundoff of a positive semi-definite kernel -- count as 0 at finite ``t``)."""
    if np.isinf(t):
        pos = w > 1e-14 * lmax
        return np.zeros_like(w), np.where(pos, 1.0 / np.where(pos, w, 1.0), 0.0)
    w = np.maximum(w, 0.0)
    x = eta * w * t
    decay = np.exp(-x)
    g = np.where(x > 1e-8, -np.expm1(-x) / np.where(w > 0, w, 1.0), eta * t * (1 - x / 2))
    return decay, g


def _scan(K: np.ndarray, name: str) -> tuple[float, float]:
    """Validate a large square kernel without copying it (finite; symmetric to 1e-8 of its scale) and return
    ``(mean diagonal, 1-norm = max absolute row sum)``: finiteness and row sums in row chunks, symmetry by
    comparing each tile above the diagonal with the transposed tile below it (cache-sized tiles)."""
    m = K.shape[0]
    rows = max(1, _CHUNK_ENTRIES // max(m, 1))
    norm1, scale = 0.0, 0.0
    for i in range(0, m, rows):
        blk = K[i:i + rows]
        if not np.all(np.isfinite(blk)):
            raise InvalidInputError(f"{name}: contains NaN or inf (rows {i}..{i + blk.shape[0] - 1}); the kernel "
                                    "computation reported a non-finite status -- fix that first")
        a = np.abs(blk)
        norm1 = max(norm1, float(a.sum(axis=1).max()))
        scale = max(scale, float(a.max()))
    tile = max(1, int(math.isqrt(_CHUNK_ENTRIES // 8)))
    tol = 1e-8 * scale
    for i in range(0, m, tile):
        for j in range(i, m, tile):
            d = float(np.max(np.abs(K[i:i + tile, j:j + tile] - K[j:j + tile, i:i + tile].T)))
            if d > tol:
                raise InvalidInputError(f"{name}: not symmetric (|K - K^T| = {d:.3g} in rows {i}.., columns {j}..; "
                                        f"entries up to {scale:.3g})")
    return float(np.mean(np.diag(K))), norm1


def _sufficient_reg(norm1: float, m: int, max_cond: float | None, mean_diag: float, relative: bool) -> str:
    r"""A regularisation that makes ``K + r I`` solvable: for a positive semi-definite ``K``, ``r >= sqrt(m)
    ||K||_1 / (C - sqrt(m))`` gives a 1-norm condition number ``<= C`` (``||A||_2 <= ||A||_1 <= sqrt(m)
    ||A||_2`` for symmetric ``A``, and ``lambda_min(K + r I) >= r``)."""
    target = max_cond if max_cond is not None else DEFAULT_MAX_COND
    root = math.sqrt(m)
    r = root * norm1 / max(target - root, 1.0)
    rel = r / mean_diag if mean_diag > 0 else math.inf
    suggestion = f"reg={rel:.2g}" if relative else f"reg={r:.2g} (absolute)"
    return (f"{suggestion} suffices for a kernel that is positive semi-definite up to roundoff (it bounds the "
            f"condition number by max_cond={target:.3g}); a smaller one often does")


def _check_times(t, learning_rate, lr_factor) -> np.ndarray:
    try:
        times = np.asarray(t, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidInputError(f"t: expected a time or a sequence of times (numbers >= 0, inf allowed), got {t!r}"
                                ) from None
    if times.size == 0 or np.any(np.isnan(times)) or np.any(times < 0):
        raise InvalidInputError(f"t: times must be numbers >= 0 (inf: the converged predictor), got {t!r}")
    if learning_rate is not None and (isinstance(learning_rate, bool) or not np.isfinite(learning_rate)
                                      or learning_rate <= 0):
        raise InvalidInputError(f"learning_rate: must be a positive finite number or None, got {learning_rate!r}")
    if isinstance(lr_factor, bool) or not (np.isfinite(lr_factor) and lr_factor > 0):
        raise InvalidInputError(f"lr_factor: must be a positive finite number, got {lr_factor!r}")
    return times


def _as_float64(a, name: str, ndim: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != np.float64:
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise InvalidInputError(f"{name}: expected a real array, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if arr.ndim not in ndim:
        raise InvalidInputError(f"{name}: expected a {' or '.join(f'{d}-d' for d in ndim)} array, got shape "
                                f"{arr.shape}")
    return arr


def regress(k_train, k_test_train, y, *, t: float | Sequence[float] = np.inf, reg: float = 0.0,
            relative: bool = True, learning_rate: float | None = None, lr_factor: float = 1.0,
            max_cond: float | None = DEFAULT_MAX_COND, overwrite: bool = False) -> Regression:
    r"""NNGP / NTK kernel regression: predictions of an infinite-width network on test inputs after training
    time ``t`` of gradient flow on the MSE loss (Lee et al. 2019, eqs. (8)-(9); Xiao, Pennington & Schoenholz
    2020, Sec. 2), float64.

    ``f_t(X*) = K* (K + r I)^{-1} (I - e^{-eta (K + r I) t}) Y``; at ``t = inf`` the mean predictor
    ``K* (K + r I)^{-1} Y`` (Cholesky, ``m^3/3`` flops), at finite ``t`` through one eigendecomposition of
    ``K + r I`` shared by every time (``~9 m^3`` flops and ``3 m^2`` float64 of workspace; also used for ``inf``
    when finite times are asked too).  The memory needed is checked first
    (:class:`~learndyn.resources.InsufficientMemoryError` before anything is allocated).

    Parameters
    ----------
    k_train:
        ``K(X, X)``, ``(m, m)``, symmetric.  With ``overwrite=True`` it is factorised in place (its contents are
        undefined afterwards) when it is a C- or Fortran-contiguous float64 array; otherwise a copy is made.
    k_test_train:
        ``K(X*, X)``, ``(n_test, m)``; only read.  ``None``: only the dual coefficients and the training
        predictions are computed (:meth:`Regression.predict` applies them to a test kernel later, so the
        training kernel can be freed before the test kernel is computed).
    y:
        Targets ``(m,)`` or ``(m, k)`` (e.g. centred one-hot labels, :func:`learndyn.datasets.preprocess`).
    t:
        A time or a sequence of times ``>= 0`` in steps of ``eta``; ``inf`` (default): converged.
    reg, relative:
        ``r = reg * mean(diag K)`` when ``relative`` (default), else ``r = reg``.
    learning_rate, lr_factor:
        ``eta``; default ``lr_factor * 2 / lambda_max(K + r I)`` (:func:`~learndyn.kernels.gd_predictions`).
    max_cond:
        Largest accepted condition number of ``K + r I`` (default 1e12); beyond it the status is
        ``ILL_CONDITIONED``.  ``None``: only a failed factorisation is reported.

    Returns a :class:`Regression`: predictions per time, ``cond`` (LAPACK ``dpocon`` estimate after a
    Cholesky solve, exact ``lambda_max / lambda_min`` after an eigendecomposition), ``reg``, status, message.
    """
    import scipy.linalg

    times = _check_times(t, learning_rate, lr_factor)
    from .linalg import _check_reg

    _check_reg(reg, max_cond)
    K = _as_float64(k_train, "k_train", (2,))
    if K.shape[0] != K.shape[1]:
        raise InvalidInputError(f"k_train: expected a square (m, m) kernel, got shape {K.shape}")
    m = K.shape[0]
    Ks = None if k_test_train is None else _as_float64(k_test_train, "k_test_train", (2,))
    if Ks is not None and Ks.shape[1] != m:
        raise InvalidInputError(f"k_test_train: expected shape (n_test, {m}) (test rows against the {m} training "
                                f"inputs), got {Ks.shape}")
    Y = _as_float64(y, "y", (1, 2))
    if Y.shape[0] != m:
        raise InvalidInputError(f"y: expected {m} rows (one target per training input), got shape {Y.shape}")
    if m == 0:
        raise InvalidInputError("k_train: needs at least one training input")
    for name, arr in (("k_test_train", Ks), ("y", Y)):
        if arr is None:
            continue
        rows = max(1, _CHUNK_ENTRIES // max(arr[0].size, 1))
        if not all(np.all(np.isfinite(arr[i:i + rows])) for i in range(0, arr.shape[0], rows)):
            raise InvalidInputError(f"{name}: contains NaN or inf")
    mean_diag, norm1 = _scan(K, "k_train")
    r = float(reg) * (mean_diag if relative else 1.0)
    params = dict(reg_given=float(reg), relative=bool(relative), lr_factor=float(lr_factor),
                  max_cond=(None if max_cond is None else float(max_cond)), m=int(m),
                  n_test=(0 if Ks is None else int(Ks.shape[0])))
    Y2 = Y if Y.ndim == 2 else Y[:, None]
    k = Y2.shape[1]
    shape_tr = (len(times), m) + Y.shape[1:]
    shape_te = None if Ks is None else (len(times), Ks.shape[0]) + Y.shape[1:]
    # the working matrix: k_train itself (overwrite) or one copy; Fortran order so LAPACK works in place
    from ..resources import check_memory

    copy_bytes = 0 if overwrite and (K.flags.f_contiguous or K.flags.c_contiguous) else 8 * m * m
    finite = not np.all(np.isinf(times))
    # Cholesky: the panel and its product, 2 x 4096 columns; eigh (LAPACK dsyevd): eigenvectors + 2 m^2 workspace
    work = (3 * 8 * m * m if finite else 2 * 8 * m * min(m, _CHOLESKY_BLOCK)) + 8 * m * Y.size // max(m, 1) * 4
    check_memory(copy_bytes + work, what=f"kernels.regress(m={m}, {'eigh' if finite else 'cholesky'})",
                 reduce=("ask for t=inf only (a Cholesky solve, no eigendecomposition)" if finite else
                         "pass overwrite=True with a float64 C- or Fortran-ordered k_train (no copy)"))
    if overwrite and K.flags.f_contiguous:
        A = K
    elif overwrite and K.flags.c_contiguous:
        A = K.T  # the same symmetric matrix, Fortran-contiguous: no copy
    else:
        A = np.array(K, dtype=np.float64, order="F", copy=True)
    del K
    if r:
        A.flat[:: m + 1] += r
    norm1 += abs(r)
    fix = _sufficient_reg(norm1 - abs(r), m, max_cond, mean_diag, relative)

    if not finite:
        params["method"] = "cholesky"
        info = _cholesky(A)
        c = A
        del A
        if info != 0:
            msg = (f"k_train + reg I is not positive definite in float64 (the Cholesky factorisation stopped at "
                   f"row {info} of {m}; reg = {r:.3g} absolute): no solution exists. Pass a larger reg: " + fix
                   + ". The predictions are NaN.")
            nan = np.full(shape_tr, np.nan)
            return Regression(times, None if Ks is None else np.full(shape_te, np.nan), nan, nan.copy(), math.inf,
                              "cholesky failed", r, math.nan, params, Status.ILL_CONDITIONED, msg)
        alpha, info = scipy.linalg.lapack.dpotrs(c, np.asfortranarray(Y2), lower=1)
        rcond, _ = scipy.linalg.lapack.dpocon(c, norm1, uplo="L")
        del c
        cond = 1.0 / rcond if rcond > 0 else math.inf
        pred = None if Ks is None else (Ks @ alpha).reshape(shape_te)
        train = (Y2 - r * alpha).reshape(shape_tr)
        status, message = Status.SUCCESS, ""
        if max_cond is not None and not cond <= max_cond:
            status = Status.ILL_CONDITIONED
            message = (f"k_train + reg I is ill-conditioned: condition number ~{cond:.3g} (1-norm, LAPACK dpocon "
                       f"estimate; reg = {r:.3g} absolute) > max_cond={max_cond:.3g}; the predictions carry "
                       f"relative errors up to ~{cond * 2.2e-16:.2g}. Pass a larger reg: " + fix + ".")
        return Regression(times, pred, train, alpha.reshape(shape_tr), cond, "dpocon", r, math.nan, params, status,
                          message)

    # finite times: one eigendecomposition K + r I = V diag(w) V^T for every t
    params["method"] = "eigh"
    w, V = scipy.linalg.eigh(A, overwrite_a=True, check_finite=False, driver="evd")
    del A
    lmax, lmin = float(w[-1]), float(w[0])
    cond = lmax / lmin if lmin > 0 else math.inf
    params.update(lambda_max=lmax, lambda_min=lmin)
    eta = float(learning_rate) if learning_rate is not None else lr_factor * 2.0 / lmax
    ycoord = V.T @ Y2  # eigen-coordinates of Y
    coef = np.empty((len(times), m, k))
    train = np.empty((len(times), m, k))
    for i, ti in enumerate(times):
        _, g = _flow_factors(w, eta, ti, lmax)
        coef[i] = V @ (g[:, None] * ycoord)  # c_t = (K + r I)^{-1} (I - e^{-eta (K + r I) t}) Y
        # f_t(X) = K c_t = V diag((w - r) g) V^T Y
        train[i] = V @ (((w - r) * g)[:, None] * ycoord)
    del V
    pred = None if Ks is None else np.stack([Ks @ c for c in coef]).reshape(shape_te)
    status, message = Status.SUCCESS, ""
    if lmin < -1e-8 * lmax:
        status = Status.ILL_CONDITIONED
        message = (f"k_train + reg I is not positive semi-definite (lambda_min = {lmin:.3g}, lambda_max = "
                   f"{lmax:.3g}; reg = {r:.3g} absolute): not a valid kernel in float64. Pass a larger reg: "
                   + fix + ".")
    elif np.any(np.isinf(times)) and max_cond is not None and not cond <= max_cond:
        status = Status.ILL_CONDITIONED
        message = (f"k_train + reg I is ill-conditioned: condition number {cond:.3g} (lambda_max / lambda_min; "
                   f"reg = {r:.3g} absolute) > max_cond={max_cond:.3g}; the t = inf predictions drop eigenvalues "
                   f"below 1e-14 lambda_max (pseudo-inverse). Pass a larger reg: " + fix + ".")
    return Regression(times, pred, train.reshape(shape_tr), coef.reshape(shape_tr), cond, "eigh", r, eta, params,
                      status, message)
