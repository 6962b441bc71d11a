r"""End to end on real data: NNGP / NTK kernel regression beside finite-width SGD of the same network
(Xiao, Pennington & Schoenholz 2020, Sec. 2 and 5; Lee et al. 2019).

:func:`evaluate` loads a data set (Fashion-MNIST by default; MNIST-5k, then scikit-learn's digits when it is
not installed, saying so), preprocesses it as Xiao et al. 2020 (Sec. 4; :func:`learndyn.datasets.preprocess`),
computes the train-train and test-train NNGP and NTK of one :class:`~learndyn.kernels.Problem` in one pass
each, solves the kernel regression (:func:`~learndyn.kernels.regress`), trains the finite network of the
same Problem with SGD (:func:`~learndyn.kernels.train`), and returns the test accuracies and mean squared errors
with the time and memory of every stage as an :class:`Evaluation`.

Memory plan (FCN, ``m`` training and ``n`` test images): the train-train NNGP and NTK (``2 m^2`` float64,
6.4 GB at ``m = 20000``) are factorised in place one after the other and freed, keeping only the dual
coefficients ``c = (K + r I)^{-1} Y``; only then is the test-train kernel (``2 n m`` float64, 3.2 GB at
``n = 10000``) computed and applied, ``f(X*) = K(X*, X) c``.  The peak is the train-train kernels plus the
kernel computation's working block, never both kernels at once.
"""

from __future__ import annotations

import math
import os
import resource
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from .. import datasets as _datasets
from ..results import InvalidInputError, Result, Status, problem_attrs
from .linalg import DEFAULT_MAX_COND
from .problem import Problem
from .regression import regress

__all__ = ["Evaluation", "evaluate", "load_data", "FALLBACKS"]

#: data sets tried, in order, when the requested one is not installed
FALLBACKS = {"fashion_mnist": ("mnist5k", "digits"), "mnist5k": ("digits",), "digits": ()}
_SIZES = {"digits": 1797, "mnist5k": 5000}
_KINDS = ("nngp", "ntk")


@dataclass(frozen=True)
class Evaluation(Result):
    r"""Test accuracy and MSE of NNGP / NTK kernel regression and of finite-width SGD on one data set
    (:func:`evaluate`).

    ``kinds``: the kernels solved (``"nngp"``, ``"ntk"``); ``t``: the training times (``inf``: converged).
    Per kind (dicts keyed by kind): ``test_accuracy``, ``test_mse``, ``train_accuracy`` over ``t``;
    ``predictions`` ``(t, n_test, classes)``; ``cond`` (the condition number of ``K + r I``, see
    :class:`~learndyn.kernels.Regression`), ``reg`` (absolute), ``kernel_status`` / ``kernel_message``.
    ``sgd``: per seed ``test_accuracy``, ``train_accuracy``, ``train_loss`` and the ``learning_rate``
    (empty without SGD).  ``stages``: per stage ``(name, seconds, rss_bytes, peak_bytes)`` -- the resident
    memory after the stage and the peak during it (sampled every 20 ms; the process's peak so far where the
    resident size cannot be read).  ``params``: the problem, the data set actually used (``data``) and
    the one asked for (``data_requested``), sizes, regularisation and SGD settings; ``notes``: what was changed
    from the request (a fallback data set, smaller sizes).

    ``status``: the first of the kernel computation (``NONFINITE``), a kernel solve (``ILL_CONDITIONED``) or
    SGD (``DIVERGED``) that did not succeed, with its ``message``; what was computed is kept.
    """

    kinds: tuple
    t: np.ndarray
    test_accuracy: dict
    test_mse: dict
    train_accuracy: dict
    predictions: dict
    labels_test: np.ndarray
    cond: dict
    reg: dict
    kernel_status: dict
    kernel_message: dict
    sgd: dict
    stages: tuple
    params: dict
    notes: tuple = ()
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def table(self) -> str:
        """The results as a plain-text table: one row per kernel (and time) and one per SGD run."""
        lines = [f"{'model':<14}{'t':>8}{'test acc':>10}{'test MSE':>10}{'train acc':>10}{'cond':>10}"
                 f"{'reg':>10}  status"]
        for kind in self.kinds:
            for i, ti in enumerate(self.t):
                lines.append(f"{kind.upper() + ' regression':<14}{_fmt_t(ti):>8}{self.test_accuracy[kind][i]:>10.4f}"
                             f"{self.test_mse[kind][i]:>10.4f}{self.train_accuracy[kind][i]:>10.4f}"
                             f"{self.cond[kind]:>10.3g}{self.reg[kind]:>10.3g}  {self.kernel_status[kind]}")
        if self.sgd:
            steps = self.params.get("sgd_steps")
            for s, (acc, tr) in enumerate(zip(self.sgd["test_accuracy"], self.sgd["train_accuracy"])):
                lines.append(f"{'SGD seed ' + str(s):<14}{steps:>8}{acc:>10.4f}{'':>10}{tr:>10.4f}{'':>10}{'':>10}  "
                             f"{self.sgd['seed_status'][s]}")
        return "\n".join(lines)

    def stage_table(self) -> str:
        """Seconds, resident memory after and peak memory during each stage, as a plain-text table."""
        from ..resources import format_bytes

        lines = [f"{'stage':<28}{'seconds':>9}{'RSS after':>12}{'peak':>12}"]
        for name, sec, rss, peak in self.stages:
            lines.append(f"{name:<28}{sec:>9.1f}{format_bytes(rss):>12}{format_bytes(peak):>12}")
        total = sum(s[1] for s in self.stages)
        peak = max((s[3] for s in self.stages), default=0)
        lines.append(f"{'total':<28}{total:>9.1f}{'':>12}{format_bytes(peak):>12}")
        return "\n".join(lines)

    def to_xarray(self) -> xr.Dataset:
        """Accuracies and MSE over ``(kind, t)``, predictions over ``(kind, t, test, class)``, cond / reg /
        status over ``kind``, SGD results over ``seed``, stage seconds and bytes over ``stage``; parameters,
        notes, status and message as attributes."""
        kinds = list(self.kinds)
        data: dict[str, Any] = {}
        for name in ("test_accuracy", "test_mse", "train_accuracy"):
            data[name] = (("kind", "t"), np.array([getattr(self, name)[k] for k in kinds], float).reshape(len(kinds), -1))
        if kinds:
            data["predictions"] = (("kind", "t", "test", "class"), np.stack([self.predictions[k] for k in kinds]))
        data["cond"] = ("kind", np.array([self.cond[k] for k in kinds], float))
        data["reg"] = ("kind", np.array([self.reg[k] for k in kinds], float))
        data["kernel_status"] = ("kind", np.array([self.kernel_status[k] for k in kinds], dtype=str))
        data["kernel_message"] = ("kind", np.array([self.kernel_message[k] for k in kinds], dtype=str))
        data["labels_test"] = ("test", np.asarray(self.labels_test, np.int64))
        for name in ("test_accuracy", "train_accuracy", "train_loss"):
            if self.sgd:
                data[f"sgd_{name}"] = ("seed", np.asarray(self.sgd[name], float))
        if self.sgd:
            data["sgd_seed_status"] = ("seed", np.asarray(self.sgd["seed_status"], dtype=str))
        data["stage_seconds"] = ("stage", np.array([s[1] for s in self.stages], float))
        data["stage_rss_bytes"] = ("stage", np.array([s[2] for s in self.stages], np.int64))
        data["stage_peak_bytes"] = ("stage", np.array([s[3] for s in self.stages], np.int64))
        coords = {"kind": np.array(kinds, dtype=str), "t": np.asarray(self.t, float),
                  "stage": np.array([s[0] for s in self.stages], dtype=str)}
        attrs = problem_attrs(self.params, notes=list(self.notes), status=str(self.status), message=self.message,
                              sgd_learning_rate=float(self.sgd.get("learning_rate", math.nan)) if self.sgd else math.nan)
        return xr.Dataset(data, coords=coords, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Evaluation":
        """The evaluation stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        from ..results import json_attr, problem_json

        kinds = tuple(str(k) for k in ds["kind"].values)
        per = {name: {k: ds[name].values[i] for i, k in enumerate(kinds)}
               for name in ("test_accuracy", "test_mse", "train_accuracy", "cond", "reg")}
        preds = {k: ds["predictions"].values[i] for i, k in enumerate(kinds)} if "predictions" in ds else {}
        ks = {k: str(ds["kernel_status"].values[i]) for i, k in enumerate(kinds)}
        km = {k: str(ds["kernel_message"].values[i]) for i, k in enumerate(kinds)}
        sgd = {}
        if "sgd_test_accuracy" in ds:
            sgd = {name: ds[f"sgd_{name}"].values for name in ("test_accuracy", "train_accuracy", "train_loss")}
            sgd["seed_status"] = ds["sgd_seed_status"].values.astype(str)
            sgd["learning_rate"] = float(ds.attrs["sgd_learning_rate"])
        stages = tuple((str(n), float(s), int(r), int(p)) for n, s, r, p in zip(
            ds["stage"].values, ds["stage_seconds"].values, ds["stage_rss_bytes"].values, ds["stage_peak_bytes"].values))
        return cls(kinds, ds["t"].values, per["test_accuracy"], per["test_mse"], per["train_accuracy"], preds,
                   ds["labels_test"].values, per["cond"], per["reg"], ks, km, sgd, stages, problem_json(ds),
                   tuple(json_attr(ds, "notes", []) or ()), Status.of(ds.attrs.get("status", "success")),
                   str(ds.attrs.get("message", "")))


def _fmt_t(t: float) -> str:
    return "inf" if np.isinf(t) else f"{t:.3g}"


# ============================================================================================
# data
# ============================================================================================
def load_data(data: str = "fashion_mnist", n_train: int = 20000, n_test: int = 10000, *, seed: int = 0,
              image_size: int | None = None, fallback: bool = True,
              log: Callable[[str], None] | None = None) -> tuple[_datasets.Dataset, tuple[str, ...]]:
    """The preprocessed data set ``data`` (:func:`learndyn.datasets.load`) and notes on what changed.

    When ``data`` is not installed and ``fallback`` is true, the next of :data:`FALLBACKS` is used
    (Fashion-MNIST -> MNIST-5k -> digits), with a ``RuntimeWarning`` and a note; sizes larger than the
    fallback holds are reduced (the test set to at most a fifth of it), and so is an ``image_size`` larger
    than its images (digits are 8x8), each with a note.
    """
    if data not in FALLBACKS:
        raise InvalidInputError(f"data: unknown data set {data!r}; allowed are {list(FALLBACKS)}")
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidInputError(f"{name}: must be a positive integer, got {v!r}")
    notes: list[str] = []
    candidates = (data,) + (FALLBACKS[data] if fallback else ())
    errors = []
    for name in candidates:
        total = _SIZES.get(name)
        ntr, nte = int(n_train), int(n_test)
        if total is not None and ntr + nte > total:
            nte = min(nte, total // 5)
            ntr = min(ntr, total - nte)
        size = image_size
        try:
            raw = {"digits": _datasets.digits, "mnist5k": _datasets.mnist5k,
                   "fashion_mnist": _datasets.fashion_mnist}[name](n_train=ntr, n_test=nte, seed=seed)
        except (FileNotFoundError, ImportError) as exc:
            errors.append(f"{name}: {exc}")
            continue
        if name != data:
            text = f"{data} is not installed ({errors[0]}); using {name} instead"
            notes.append(text)
            warnings.warn(text, RuntimeWarning, stacklevel=2)
        if (ntr, nte) != (n_train, n_test):
            notes.append(f"{name} holds {total} images: n_train={ntr}, n_test={nte} instead of {n_train}, {n_test}")
        if size is not None and size > min(raw.image_shape[:2]):
            notes.append(f"{name} images are {raw.image_shape[0]}x{raw.image_shape[1]}: kept at that size instead of "
                         f"image_size={size}")
            size = None
        if size is not None:
            raw = _datasets.downsample(raw, size)
        if log is not None:
            for note in notes:
                log(f"note: {note}")
        return _datasets.preprocess(raw), tuple(notes)
    raise FileNotFoundError("data: no data set could be loaded: " + "; ".join(errors))


# ============================================================================================
# stages: time and memory
# ============================================================================================
def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _peak_so_far() -> int:
    """The process's peak resident memory so far (Linux ``VmHWM``; ``ru_maxrss`` elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class _Stages:
    """Times each stage and records the resident memory after it and the peak during it.

    The peak is sampled every 20 ms by a background thread reading the resident size (``/proc/self/statm``),
    so the process's own peak record (what ``/usr/bin/time`` or ``ru_maxrss`` report) is left untouched; where
    that file does not exist, the process's peak so far is reported."""

    interval = 0.02

    def __init__(self, log):
        self.rows: list[tuple[str, float, int, int]] = []
        self.log = log

    def __call__(self, name: str):
        stages = self

        class _Stage:
            def __enter__(self):
                import threading

                self.peak = _rss()
                self.stop = threading.Event()

                def sample():
                    while not self.stop.wait(stages.interval):
                        self.peak = max(self.peak, _rss())

                self.thread = threading.Thread(target=sample, daemon=True)
                self.thread.start()
                self.t0 = time.perf_counter()
                if stages.log is not None:
                    stages.log(f"{name} ...")

            def __exit__(self, *exc):
                from ..resources import format_bytes

                seconds = time.perf_counter() - self.t0
                self.stop.set()
                self.thread.join()
                rss = _rss()
                peak = max(self.peak, rss) if rss else _peak_so_far()
                row = (name, seconds, rss, peak)
                stages.rows.append(row)
                if stages.log is not None and exc[0] is None:
                    stages.log(f"{name}: {row[1]:.1f} s, RSS {format_bytes(row[2])}, peak {format_bytes(row[3])}")
                return False

        return _Stage()


# ============================================================================================
# the evaluation
# ============================================================================================
def _check_kinds(kinds) -> tuple[str, ...]:
    ks = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not ks or any(k not in _KINDS for k in ks) or len(set(ks)) != len(ks):
        raise InvalidInputError(f"kinds: must be 'nngp', 'ntk' or both (no repeats), got {kinds!r}")
    return tuple(k for k in _KINDS if k in ks)


def evaluate(problem: Problem, data: "str | _datasets.Dataset" = "fashion_mnist", n_train: int = 20000,
             n_test: int = 10000, *, reg: float = 0.0, relative: bool = True, t: float | Sequence[float] = np.inf,
             kinds: str | Sequence[str] = ("nngp", "ntk"), max_cond: float | None = DEFAULT_MAX_COND,
             sgd: bool = True, steps: int = 2000, batch_size: int = 128, lr_factor: float = 0.5,
             seeds: int | Sequence[int] = 1, seed: int = 0, image_size: int | None = None, fallback: bool = True,
             kernel_batch_size: int | None = None, memory_limit: float | None = None,
             store: "str | os.PathLike | None" = None, scheduler: str | None = None, n_workers: int | None = None,
             log: Callable[[str], None] | None = None) -> Evaluation:
    r"""NNGP and NTK kernel regression on a real data set beside finite-width SGD of the same network: test
    accuracy (largest output) and MSE (Xiao, Pennington & Schoenholz 2020, Sec. 2 and 5; Lee et al. 2019).

    Parameters
    ----------
    problem:
        The network (:class:`~learndyn.kernels.Problem`): ``"fcn"`` takes flat inputs, ``"cnn"`` images
        (channels last); its ``out_dim`` is set to the number of classes, its ``width`` / ``channels`` is the
        SGD network's.
    data:
        ``"fashion_mnist"`` (default), ``"mnist5k"``, ``"digits"`` (:func:`load_data`, with the fallbacks of
        :data:`FALLBACKS` when ``fallback``), or a :class:`learndyn.datasets.Dataset` (preprocessed here if
        it has no targets yet; ``n_train``/``n_test`` then ignored).
    n_train, n_test:
        Training and test images (random subsets of the official splits, by ``seed``).
    reg, relative, t, max_cond:
        As :func:`~learndyn.kernels.regress` (``t``: the gradient-flow times; ``inf`` the converged predictor).
    kinds:
        ``"nngp"``, ``"ntk"`` or both (one kernel pass computes both).
    sgd, steps, batch_size, lr_factor, seeds:
        Finite-width SGD (:func:`~learndyn.kernels.train`) of the same network: on or off, steps, mini-batch,
        ``eta = lr_factor * 2B / lambda_max(Theta_BB)``, independent initialisations.
    image_size:
        Downsample the images to ``image_size x image_size`` (area averaging, e.g. 16 for a CNN-GAP kernel).
    kernel_batch_size, memory_limit:
        Passed to :meth:`Problem.kernel <learndyn.kernels.Problem.kernel>` (rows per block, bytes per block).
        ``kernel_batch_size=None``: the kernel's own plan (cache-sized blocks).
    store, scheduler, n_workers:
        Out of core: with ``store`` (a folder), the train-train and test-train kernels are computed block by block
        into the Zarr stores ``store/train.zarr`` and ``store/test.zarr`` (:func:`~learndyn.kernels.kernel_store`:
        resumable -- the same call after a kill continues where it stopped --, on Dask workers with
        ``scheduler``/``n_workers``) and solved by preconditioned conjugate gradients streaming the blocks
        (:meth:`KernelStore.predict <learndyn.kernels.KernelStore.predict>`); only ``t = inf``.  For training
        sets whose kernels do not fit in memory.
    log:
        Called with a line of progress per stage (e.g. ``print``).

    Returns an :class:`Evaluation`; it never raises for a numerical failure (status and message instead).
    """
    if not isinstance(problem, Problem):
        raise InvalidInputError(f"problem: expected a kernels.Problem, got {type(problem).__name__}")
    ks = _check_kinds(kinds)
    times = np.asarray(t, dtype=float).reshape(-1)
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidInputError(f"{name}: must be a positive integer, got {v!r}")
    if store is not None and not np.all(np.isinf(times)):
        raise InvalidInputError("t: out of core (store=...) only the converged predictor t = inf is solved "
                                "(conjugate gradients); finite times need the kernel in memory (store=None)")
    if store is None and (scheduler is not None or n_workers is not None):
        raise InvalidInputError("scheduler, n_workers: Dask workers compute the blocks of an out-of-core kernel; "
                                "pass store=<folder> too")
    stages = _Stages(log)
    with stages("load data"):
        if isinstance(data, _datasets.Dataset):
            ds, notes = (data if data.y_train is not None else _datasets.preprocess(data)), ()
            if image_size is not None:
                raise InvalidInputError("image_size: downsample a Dataset yourself (datasets.downsample) or pass "
                                        "the data set by name")
        else:
            ds, notes = load_data(data, n_train, n_test, seed=seed, image_size=image_size, fallback=fallback, log=log)
        if problem.architecture == "cnn":
            ds = ds.images()
        else:
            ds = ds.flat()
    problem = problem.replace(out_dim=ds.n_classes)
    params = dict(problem=problem, data=ds.name, data_requested=data if isinstance(data, str) else ds.name,
                  n_train=ds.n_train, n_test=ds.n_test, input_shape=list(ds.x_train.shape[1:]), reg_given=float(reg),
                  relative=bool(relative), max_cond=max_cond, seed=int(seed), sgd_steps=int(steps) if sgd else 0,
                  sgd_batch_size=int(batch_size), sgd_lr_factor=float(lr_factor))
    params["kernel_batch_size"] = kernel_batch_size
    if store is not None:
        params["store"] = str(store)
    kopts = dict(get=ks, batch_size=kernel_batch_size, memory_limit=memory_limit)
    n_t, n_cls = len(times), ds.n_classes
    nanv = {k: np.full(n_t, np.nan) for k in ks}
    out: dict[str, Any] = dict(test_accuracy=dict(nanv), test_mse={k: v.copy() for k, v in nanv.items()},
                               train_accuracy={k: v.copy() for k, v in nanv.items()},
                               predictions={k: np.full((n_t, ds.n_test, n_cls), np.nan) for k in ks},
                               cond={k: math.nan for k in ks}, reg={k: math.nan for k in ks},
                               kernel_status={k: "not computed" for k in ks}, kernel_message={k: "" for k in ks})
    status, message = Status.SUCCESS, ""

    def result(sgd_out=None, final_status=None, final_message=None):
        return Evaluation(ks, times, out["test_accuracy"], out["test_mse"], out["train_accuracy"], out["predictions"],
                          ds.labels_test, out["cond"], out["reg"], out["kernel_status"], out["kernel_message"],
                          sgd_out or {}, tuple(stages.rows), params, tuple(notes),
                          status if final_status is None else final_status,
                          message if final_message is None else final_message)

    if store is not None:
        _out_of_core(problem, ds, ks, Path(store), stages, out, reg=reg, relative=relative, block_size=kernel_batch_size,
                     memory_limit=memory_limit, scheduler=scheduler, n_workers=n_workers)
        bad = [k for k in ks if out["kernel_status"][k] != str(Status.SUCCESS)]
        if bad:
            status, message = Status.of(out["kernel_status"][bad[0]]), f"{bad[0]}: {out['kernel_message'][bad[0]]}"
        return _with_sgd(problem, ds, sgd, steps, batch_size, lr_factor, seeds, seed, stages, result, status, message)
    # 1. train-train kernels, factorised in place one after the other; only the dual coefficients are kept
    with stages(f"kernel train-train {ds.n_train}^2"):
        kt = problem.kernel(ds.x_train, **kopts)
    if not kt.success:
        status, message = kt.status, f"train-train kernel: {kt.message}"
        return result()
    train_k = {k: getattr(kt, k) for k in ks}  # physical scale (the mantissas themselves when the scale is 2^0)
    del kt
    solved = {}
    for k in ks:
        with stages(f"solve {k} (m={ds.n_train})"):
            r = regress(train_k.pop(k), None, ds.y_train, t=times, reg=reg, relative=relative, max_cond=max_cond,
                        overwrite=True)
        solved[k] = r
        out["cond"][k], out["reg"][k] = float(r.cond), float(r.reg)
        out["kernel_status"][k], out["kernel_message"][k] = str(r.status), r.message
        out["train_accuracy"][k] = r.train_accuracy(ds.labels_train)
        if not r.success and status is Status.SUCCESS:
            status, message = r.status, f"{k}: {r.message}"
    # 2. test-train kernels, applied to the dual coefficients
    with stages(f"kernel test-train {ds.n_test}x{ds.n_train}"):
        kx = problem.kernel(ds.x_test, ds.x_train, **kopts)
    if not kx.success:
        status, message = kx.status, f"test-train kernel: {kx.message}"
        return result()
    with stages("predict"):
        for k in ks:
            f = solved[k].predict(getattr(kx, k))
            out["predictions"][k] = f
            out["test_accuracy"][k] = np.mean(np.argmax(f, -1) == ds.labels_test[None], axis=1)
            out["test_mse"][k] = np.mean(np.sum((f - ds.y_test[None]) ** 2, -1), -1)
        del kx
    # 3. finite-width SGD of the same network
    return _with_sgd(problem, ds, sgd, steps, batch_size, lr_factor, seeds, seed, stages, result, status, message)


def _out_of_core(problem, ds, ks, root: Path, stages, out: dict, *, reg, relative, block_size, memory_limit,
                 scheduler, n_workers) -> None:
    """Train-train and test-train kernels into ``root/train.zarr`` and ``root/test.zarr`` (resumed if there),
    then the t = inf predictions by streamed conjugate gradients, written into ``out``."""
    from .store import kernel_store

    opts = dict(get=ks, block_size=block_size, memory_limit=memory_limit, scheduler=scheduler, n_workers=n_workers,
                progress=False)
    root.mkdir(parents=True, exist_ok=True)
    with stages(f"kernel train-train {ds.n_train}^2 (store {root / 'train.zarr'})"):
        train = kernel_store(problem, ds.x_train, path=root / "train.zarr", **opts)
    with stages(f"kernel test-train {ds.n_test}x{ds.n_train} (store {root / 'test.zarr'})"):
        test = kernel_store(problem, ds.x_test, ds.x_train, path=root / "test.zarr", **opts)
    for k in ks:
        with stages(f"solve + predict {k} (conjugate gradients, m={ds.n_train})"):
            p = train.predict(test, ds.y_train, kind=k, reg=reg, relative=relative)
        f = np.asarray(p.mean)[None]
        out["predictions"][k] = f
        out["test_accuracy"][k] = np.mean(np.argmax(f, -1) == ds.labels_test[None], axis=1)
        out["test_mse"][k] = np.mean(np.sum((f - ds.y_test[None]) ** 2, -1), -1)
        out["reg"][k] = float(p.reg)
        out["kernel_status"][k], out["kernel_message"][k] = str(p.status), p.message


def _with_sgd(problem, ds, sgd, steps, batch_size, lr_factor, seeds, seed, stages, result, status, message):
    """Finite-width SGD of the same network (when ``sgd``), then the :class:`Evaluation`."""
    sgd_out = None
    if sgd:
        from .training import train

        with stages(f"SGD {steps} steps x {seeds if isinstance(seeds, int) else len(seeds)} seed(s)"):
            tr = train(problem, ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test, steps=int(steps),
                       batch_size=int(batch_size), lr_factor=lr_factor, seeds=seeds, seed=seed,
                       log_every=max(1, int(steps) // 20))
        sgd_out = dict(test_accuracy=tr.test_accuracy, train_accuracy=tr.train_accuracy, train_loss=tr.train_loss,
                       seed_status=np.asarray(tr.seed_status, dtype=str), learning_rate=float(tr.learning_rate))
        if not tr.success and status is Status.SUCCESS:
            status, message = tr.status, f"SGD: {tr.message}"
    return result(sgd_out, status, message)
