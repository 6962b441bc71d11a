r"""Finite-width networks trained with mini-batch SGD in JAX (Xiao, Pennington & Schoenholz 2020, Sec. 5).

The network is the SAME description that gives the kernels (:func:`learndyn.kernels.fcn` /
:func:`learndyn.kernels.cnn`: NTK parameterisation, N(0,1) weights), trained on the MSE loss

    ``L = (1 / 2B) sum_{i in batch} |f(x_i) - y_i|^2``

(centred one-hot targets).  The learning rate is tied to the infinite-width NTK of a training
batch (Xiao et al. 2020, Sec. 2; Lee et al. 2019): in function space one SGD step is
``f <- f - (eta/B) Theta_BB (f - y)``, stable for ``eta < 2B / lambda_max(Theta_BB)``, so
``eta = lr_factor * 2B / lambda_max(Theta_BB)`` with the analytic ``Theta_BB`` of the same network
(``lr_factor < 1``).

Seeds are vectorised (``vmap``) and the step loop is one compiled ``lax.scan``.  A run whose loss
becomes non-finite stops being updated and is reported with status ``"diverged"`` (per seed in
``seed_status``; the result's ``status`` is ``DIVERGED`` if any seed diverged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..results import InvalidInputError, Result, Status, problem_attrs
from .problem import Problem

__all__ = ["TrainResult", "train", "learning_rate"]


@dataclass(frozen=True)
class TrainResult(Result):
    """Accuracies and losses per seed after ``steps`` SGD steps (:func:`train`).

    ``seed_status``: per seed ``"success"`` or ``"diverged"`` (the loss became non-finite; that seed's
    parameters stopped being updated, its numbers are kept); ``status`` is :attr:`~learndyn.Status.DIVERGED`
    if any seed diverged, with a ``message`` naming them.
    """

    train_accuracy: np.ndarray  # (seeds,)
    test_accuracy: np.ndarray
    train_loss: np.ndarray  # (seeds,) final full-batch loss
    loss_curve: np.ndarray  # (n_log, seeds) mini-batch loss, every log_every steps
    learning_rate: float
    seed_status: np.ndarray  # (seeds,) "success" | "diverged"
    params: dict
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def to_xarray(self) -> xr.Dataset:
        """Per-seed accuracies, losses and status over ``seed`` (the loss curve over ``log_step, seed``)."""
        return xr.Dataset(
            {"train_accuracy": ("seed", self.train_accuracy), "test_accuracy": ("seed", self.test_accuracy),
             "train_loss": ("seed", self.train_loss), "loss_curve": (("log_step", "seed"), self.loss_curve),
             "seed_status": ("seed", np.asarray(self.seed_status, dtype=str))},
            coords={"seed": np.asarray(self.params.get("seed_values", np.arange(len(self.train_accuracy))))},
            attrs=problem_attrs(self.params, learning_rate=self.learning_rate, status=str(self.status),
                                message=self.message))

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "TrainResult":
        """The result stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        from ..results import problem_json

        seed_status = ds["seed_status"] if "seed_status" in ds else ds["status"]
        return cls(ds["train_accuracy"].values, ds["test_accuracy"].values, ds["train_loss"].values,
                   ds["loss_curve"].values, float(ds.attrs["learning_rate"]), seed_status.values.astype(str),
                   problem_json(ds), Status.of(ds.attrs.get("status", "success")), str(ds.attrs.get("message", "")))


def learning_rate(net, x_batch, lr_factor: float = 0.5) -> float:
    """``lr_factor * 2B / lambda_max(Theta_BB)`` with the analytic NTK of ``net`` (a Network or a
    :class:`~learndyn.kernels.Problem`) on ``x_batch``: the largest stable SGD step is ``2B / lambda_max``
    (Xiao et al. 2020, Sec. 2; Lee et al. 2019)."""
    if isinstance(net, Problem):
        net = net.network()
    T = net.kernel(x_batch, get=("nngp", "ntk")).ntk
    lmax = float(np.linalg.eigvalsh(T)[-1])
    if not (np.isfinite(lmax) and lmax > 0):
        raise FloatingPointError(f"learning_rate: the batch NTK has lambda_max = {lmax}")
    return lr_factor * 2.0 * x_batch.shape[0] / lmax


def _check_targets(net, x_train, y_train, labels_train, x_test, labels_test) -> None:
    """Shapes of the data against each other and against the network's output width ``out_dim``.

    A network whose output width differs from the target width would broadcast the loss and train to
    chance accuracy without any error (``fcn``/``cnn`` default to ``out_dim=1``).
    """
    m, k = y_train.shape
    if x_test.shape[1:] != x_train.shape[1:]:
        raise InvalidInputError(f"x_test: shape {tuple(x_test.shape)} does not match x_train {tuple(x_train.shape)} "
                         "beyond the batch axis")
    for name, lab, n in (("labels_train", labels_train, m), ("labels_test", labels_test, x_test.shape[0])):
        if lab.shape != (n,):
            raise InvalidInputError(f"{name}: expected shape ({n},) (one class index per input), got {tuple(lab.shape)}")
    try:
        out = net.output_shape((1,) + tuple(x_train.shape[1:]))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"x_train: inputs of shape {tuple(x_train.shape)} do not fit the network: {exc}") from None
    if len(out) != 2:
        raise InvalidInputError(f"net: outputs of shape {out} per batch; the trainer needs (batch, out_dim) outputs "
                         "(add a Flatten or GlobalAvgPool readout)")
    if out[1] != k:
        raise InvalidInputError(f"out_dim: the network has {out[1]} outputs but y_train has {k} columns; build it "
                         f"with out_dim={k} (e.g. kernels.fcn(..., out_dim={k}))")
    for name, lab in (("labels_train", labels_train), ("labels_test", labels_test)):
        if lab.size and (not jnp.issubdtype(lab.dtype, jnp.integer) or int(lab.min()) < 0 or int(lab.max()) >= k):
            raise InvalidInputError(f"{name}: must be integer class indices in [0, {k}) (out_dim = {k}), got "
                             f"{lab.dtype} values in [{lab.min()}, {lab.max()}]")


def _accuracy(out, labels):
    return jnp.mean(jnp.argmax(out, axis=-1) == labels)


def _seed_keys(seeds, seed: int):
    """PRNG keys and seed labels: ``seeds`` a count (keys split from ``seed``, labelled 0..n-1) or a sequence of
    integer seeds (one ``PRNGKey`` each, labelled by the seed)."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise InvalidInputError(f"seeds: must be an integer >= 1 or a list of integer seeds, got {seeds!r}")
        if isinstance(seed, bool) or int(seed) != seed:
            raise InvalidInputError(f"seed: must be an integer, got {seed!r}")
        return jax.random.split(jax.random.PRNGKey(int(seed)), int(seeds)), np.arange(int(seeds))
    try:
        values = [int(v) for v in seeds]
        ok = values and all(v == w and not isinstance(w, bool) for v, w in zip(values, seeds))
    except (TypeError, ValueError):
        ok = False
    if not ok or len(set(values)) != len(values):
        raise InvalidInputError(f"seeds: must be an integer >= 1 or a list of distinct integer seeds, got {seeds!r}")
    return jnp.stack([jax.random.PRNGKey(v) for v in values]), np.asarray(values)


def _sgd_runs(net, x_train, y_train, labels_train, x_test, labels_test, keys, *, steps: int, batch_size: int,
              lr: float, log_every: int):
    """The compiled step loop (a ``lax.scan``), vectorised over the PRNG ``keys``: per seed the train/test
    accuracy, the final full-batch loss, the mini-batch loss curve and whether the loss stayed finite."""
    m = x_train.shape[0]
    n_log = steps // log_every

    def loss_fn(p, x, y):
        return 0.5 * jnp.mean(jnp.sum((net.apply(p, x) - y) ** 2, axis=-1))

    grad_fn = jax.value_and_grad(loss_fn)

    def one_seed(key):
        k_init, k_data = jax.random.split(key)
        params = net.init(k_init, (batch_size,) + tuple(x_train.shape[1:]))

        def step(carry, k):
            p, ok = carry
            idx = jax.random.choice(k, m, (batch_size,), replace=False)
            loss, g = grad_fn(p, x_train[idx], y_train[idx])
            finite = jnp.isfinite(loss) & ok
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a - lr * b, a), p, g)
            return (new, finite), loss

        step_keys = jax.random.split(k_data, steps)
        (params, ok), losses = jax.lax.scan(step, (params, jnp.array(True)), step_keys)
        out_tr = net.apply(params, x_train)
        out_te = net.apply(params, x_test)
        full_loss = 0.5 * jnp.mean(jnp.sum((out_tr - y_train) ** 2, axis=-1))
        curve = losses[: n_log * log_every].reshape(n_log, log_every).mean(axis=1) if n_log else losses[:0]
        return (_accuracy(out_tr, labels_train), _accuracy(out_te, labels_test), full_loss, curve,
                ok & jnp.isfinite(full_loss))

    return jax.jit(jax.vmap(one_seed))(keys)


def train(net, x_train, y_train, labels_train, x_test, labels_test, *, steps: int = 1000, batch_size: int = 64,
          lr: float | None = None, lr_factor: float = 0.5, seeds: int | Sequence[int] = 1, seed: int = 0,
          log_every: int = 50, ntk_batch=None) -> TrainResult:
    r"""Train independent copies of a finite-width network with mini-batch SGD on the MSE loss
    ``(1/2B) sum_batch |f(x) - y|^2`` (Xiao, Pennington & Schoenholz 2020, Sec. 5); returns train/test accuracy
    per seed.

    ``net``: a :class:`~learndyn.kernels.Problem` (its :meth:`~learndyn.kernels.Problem.network`) or a
    :class:`~learndyn.kernels.Network`, with ``out_dim = y_train.shape[1]``.
    ``seeds``: how many copies (PRNG keys split from ``seed``), or a list of integer seeds (one
    ``jax.random.PRNGKey(s)`` each, as in the other theories).
    ``lr``: the learning rate; ``None`` uses :func:`learning_rate` on the first ``batch_size`` training
    inputs (or on ``ntk_batch`` -- a precomputed ``Theta_BB`` -- if given).
    """
    problem = net if isinstance(net, Problem) else None
    if problem is not None:
        net = problem.network()
    x_train = jnp.asarray(x_train, jnp.float64)
    x_test = jnp.asarray(x_test, jnp.float64)
    y_train = jnp.asarray(y_train, jnp.float64)
    labels_train = jnp.asarray(labels_train)
    labels_test = jnp.asarray(labels_test)
    m = x_train.shape[0]
    for name, v, lo in (("steps", steps, 1), ("batch_size", batch_size, 1), ("log_every", log_every, 1)):
        if isinstance(v, bool) or int(v) != v or v < lo:
            raise InvalidInputError(f"{name}: must be an integer >= {lo}, got {v!r}")
    keys, seed_values = _seed_keys(seeds, seed)
    batch_size = min(int(batch_size), m)
    if y_train.ndim != 2 or y_train.shape[0] != m:
        raise InvalidInputError(f"y_train: expected shape ({m}, k), got {tuple(y_train.shape)}")
    _check_targets(net, x_train, y_train, labels_train, x_test, labels_test)
    if lr is None:
        if ntk_batch is not None:
            lmax = float(np.linalg.eigvalsh(np.asarray(ntk_batch))[-1])
            lr = lr_factor * 2.0 * np.asarray(ntk_batch).shape[0] / lmax
        else:
            lr = learning_rate(net, np.asarray(x_train[:batch_size]), lr_factor)
    if not (np.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr: must be a positive finite number, got {lr!r}")
    lr = float(lr)
    acc_tr, acc_te, fl, curve, ok = _sgd_runs(net, x_train, y_train, labels_train, x_test, labels_test, keys,
                                              steps=int(steps), batch_size=batch_size, lr=lr,
                                              log_every=int(log_every))
    ok = np.asarray(ok)
    seed_status = np.where(ok, Status.SUCCESS.value, Status.DIVERGED.value)
    status, message = Status.SUCCESS, ""
    if not np.all(ok):
        status = Status.DIVERGED
        message = (f"the loss became non-finite for seed(s) {', '.join(str(s) for s in seed_values[~ok])} at "
                   f"lr = {lr:.4g}; those runs stopped being updated (lower lr or lr_factor)")
    params = dict(network=net.describe(), steps=int(steps), batch_size=batch_size, lr_factor=lr_factor,
                  seeds=len(seed_values), seed=int(seed), m=int(m), n_test=int(x_test.shape[0]))
    if not isinstance(seeds, (int, np.integer)):
        params["seed_values"] = [int(v) for v in seed_values]
    if problem is not None:
        params["problem"] = problem
    return TrainResult(np.asarray(acc_tr, float), np.asarray(acc_te, float), np.asarray(fl, float),
                       np.asarray(curve, float).T, lr, seed_status, params, status, message)
