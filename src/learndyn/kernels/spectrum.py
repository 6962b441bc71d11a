r"""NTK/NNGP spectra against depth, the mean predictor, and infinite-width gradient-descent predictions
(Xiao, Pennington & Schoenholz 2020, Sec. 2; Lee et al. 2019).  Every function takes a
:class:`~learndyn.kernels.Problem`.

* :func:`depth_sweep` -- NNGP and NTK of ``fcn(l)`` / ``cnn(l)`` for many depths ``l`` in ONE pass: the
  layers of :mod:`learndyn.kernels.layers` are applied block by block (``Dense, [phi, Dense] x l``), so
  the kernels are exactly those of ``net.kernel`` (a test checks it) at a cost linear in the largest depth.
* :func:`spectrum_vs_depth` -- lambda_max, lambda_min, lambda_bulk, kappa, Theta_d, Theta_o and the mean
  predictor ``P(Theta) Y = Theta(X*, X) Theta(X, X)^{-1} Y`` (and the NNGP analogues) against depth, with
  the large-depth predictions of Xiao et al. 2020 (Sec. 2) in the phase of (``weight_var``, ``bias_var``):

  ====================  ===========================  =====================  ============================
  quantity              ordered (chi_1 < 1)          critical (chi_1 = 1)   chaotic (chi_1 > 1)
  ====================  ===========================  =====================  ============================
  Theta_d               q* sum_{j<=l} chi_1^j  (exact in every phase, inputs with K^0(x,x) = q*)
  Theta_o               -> p* = q*/(1-chi_1)         ~ l q*/3 (ReLU l q/4)  -> p* = q* c*/(1-chi_c*)
  lambda_max            -> m p*                      (m+2)/3 l q*           Theta_d + (m-1) p*
  lambda_bulk           ~ l chi_1^l                  (2/3) l q*             Theta_d - p*
  kappa                 ~ m p* / (l chi_1^l)         -> (m+2)/2 (ReLU (m+3)/3)  -> 1 + m p*/(Theta_d - p*)
  |P(Theta) Y|          -> O(1) constant             ~ 1/l                  ~ l (chi_c*/chi_1)^l
  ====================  ===========================  =====================  ============================

  Rates given only up to a constant ("~") are drawn through the computed value at a reference depth.
  A point whose depth scale (xi_1 ordered, xi_* chaotic) exceeds the largest swept depth gets the
  critical-line column (its exponential regime is not reached within the sweep).
* :func:`gd_predictions` -- train/test outputs of an infinite-width network after ``t`` steps of
  gradient flow at learning rate ``eta`` (Jacot et al. 2018; Lee et al. 2019):
  ``f_t(X) = Y + e^{-eta Theta t}(f_0(X) - Y)``,
  ``f_t(X*) = f_0(X*) + Theta(X*,X) Theta^{-1} (I - e^{-eta Theta t}) (Y - f_0(X))``, with the initial
  outputs ``f_0`` drawn from the NNGP ``N(0, K)`` of the same network (Xiao et al. 2020, Sec. 2: without this
  initialisation noise the chaotic-phase collapse of test accuracy does not show).

Kernels of deep ordered-phase networks are near singular: inverses go through ``eigh`` with a reported
condition number and an explicit ``reg`` option; a non-finite kernel stops the sweep with a status
and keeps the depths computed so far.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import xarray as xr

from .. import activations as _act
from ..results import InvalidInputError, Result, Status, problem_attrs
from .linalg import mean_predictor
from .network import _want_ntk
from .problem import Problem
from .regression import _flow_factors
from .signal import SignalPropagation, signal_propagation

__all__ = ["depth_sweep", "SpectrumResult", "spectrum_vs_depth", "asymptotes", "GDPredictions", "gd_predictions",
           "mean_predictor", "eig_stats"]


# ============================================================================================
# depth sweep through the layer objects
# ============================================================================================
def _legacy_problem(kind: str, options: dict, **defaults) -> Problem:
    """The :class:`Problem` of a call in the loose-argument form (``activation=..., weight_var=..., ...``)."""
    fields = {f.name for f in dataclasses.fields(Problem)} - {"depth"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise InvalidInputError(f"{unknown[0]}: not an option of {kind} (pass a kernels.Problem as the first "
                                f"argument; its fields are {', '.join(sorted(fields))})")
    args = {**defaults, **options}
    return Problem(depth=1, **args)


def depth_sweep(problem, x, depths: Sequence[int] | None = None, *, get=("nngp", "ntk"),
                **legacy) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    r"""Yield ``(l, K_l, Theta_l)`` -- the NNGP and NTK of ``problem``'s network at depth ``l`` on the rows of
    ``x`` with themselves, for each ``l`` in ``depths`` (increasing), in a single pass over the layers (the
    layer recursion of Jacot et al. 2018 / Lee et al. 2019, as in Xiao et al. 2020, Sec. 2).

    The kernels are exactly those of ``problem.replace(depth=l).kernel(x)``: the same layer objects are
    applied (readin, ``l - 1`` hidden blocks ``[phi, Dense]``, then ``phi, Dense`` (FCN) or
    ``phi, Flatten|GAP, Dense`` (CNN)).  An FCN allows ``l = 0`` (readin only); a CNN needs ``l >= 1``.
    ``problem.depth`` is not used.  Values beyond float64 range come back as ``inf`` (the caller reports a
    status).  The loose form ``depth_sweep(x, depths, activation=..., weight_var=..., ...)`` still works.
    """
    if not isinstance(problem, Problem):
        problem, x, depths = _legacy_problem("depth_sweep", legacy), problem, x
    elif legacy:
        raise InvalidInputError(f"{sorted(legacy)[0]}: set it on the Problem (problem.replace(...))")
    want_ntk = _want_ntk(get)
    if depths is None:
        raise InvalidInputError("depths: the depths to sweep are required")
    ds = [int(d) for d in depths]
    if not ds or any(d != dd for d, dd in zip(ds, depths)) or any(d < 0 for d in ds):
        raise InvalidInputError(f"depths: must be non-negative integers, got {depths!r}")
    if sorted(set(ds)) != ds:
        raise InvalidInputError("depths: must be strictly increasing")
    if problem.architecture == "cnn" and ds[0] < 1:
        raise InvalidInputError("depths: a CNN needs depth >= 1")
    if ds[0] == 0:  # fcn(0): the readin Dense alone
        k0 = problem.replace(depth=0).kernel(x, get=get)
        yield 0, k0.nngp, (k0.ntk if want_ntk else None)
        ds = ds[1:]
    if not ds:
        return
    # fcn(l) / cnn(l) = readin, l - 1 repeated blocks, head
    net = problem.replace(depth=1).network()
    for d, (k, t) in zip(ds, net.depth_sweep(x, [d - 1 for d in ds], want_ntk=want_ntk)):
        yield d, k, t


# ============================================================================================
# linear algebra
# ============================================================================================
def eig_stats(A: np.ndarray) -> dict[str, float]:
    """lambda_max, lambda_min, lambda_bulk (mean of all but the largest eigenvalue) and kappa = lambda_max /
    lambda_min (inf if lambda_min <= 0) of a symmetric matrix."""
    w = np.linalg.eigvalsh(A)
    lmax, lmin = float(w[-1]), float(w[0])
    bulk = float(np.mean(w[:-1])) if w.size > 1 else lmax
    return {"lambda_max": lmax, "lambda_min": lmin, "lambda_bulk": bulk,
            "kappa": lmax / lmin if lmin > 0 else np.inf}


# ============================================================================================
# spectra against depth
# ============================================================================================
_Q = ("theta_d", "theta_o", "lambda_max", "lambda_min", "lambda_bulk", "kappa", "py_rms",
      "k_lambda_min", "k_kappa", "pky_rms")


@dataclass(frozen=True)
class SpectrumResult(Result):
    """Computed NTK/NNGP spectra against depth beside the large-depth asymptotes of Xiao, Pennington &
    Schoenholz 2020, Sec. 2 (``theory``; :func:`asymptotes`).

    ``status`` is :attr:`~learndyn.Status.NONFINITE` when a kernel left the float64 range: the sweep stopped
    there, ``depth`` holds the depths computed before and ``message`` says where it stopped.
    """

    depth: np.ndarray
    measured: dict  # name -> array over depth (see _Q)
    theory: dict  # name -> array over depth (nan where the phase gives no prediction)
    signal: Any  # SignalPropagation at (weight_var, bias_var)
    params: dict
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def to_xarray(self) -> xr.Dataset:
        """Measured and ``theory_*`` quantities over ``depth``; parameters, status and q*, chi_1, ... as attributes."""
        data = {k: ("depth", np.asarray(v, float)) for k, v in self.measured.items()}
        data.update({f"theory_{k}": ("depth", np.asarray(v, float)) for k, v in self.theory.items()})
        sp = self.signal.scalar()
        attrs = problem_attrs(self.params, status=str(self.status), message=self.message,
                              **{f"sp_{k}": v for k, v in sp.items()})
        return xr.Dataset(data, coords={"depth": self.depth}, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "SpectrumResult":
        """The result stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`); ``signal`` is
        the scalar :class:`SignalPropagation` at (``weight_var``, ``bias_var``)."""
        from ..results import problem_json

        params = problem_json(ds)
        measured = {k: ds[k].values for k in ds.data_vars if not str(k).startswith("theory_")}
        theory = {str(k)[len("theory_"):]: ds[k].values for k in ds.data_vars if str(k).startswith("theory_")}
        names = ("weight_var", "bias_var", "q_star", "c_star", "chi_1", "chi_c", "xi_1", "xi_c", "xi_star", "p_star")
        signal = SignalPropagation(str(params.get("activation", "")),
                                   *(np.asarray(float(ds.attrs[f"sp_{n}"])) for n in names),
                                   np.asarray(str(ds.attrs["sp_phase"])))
        return cls(ds["depth"].values, measured, theory, signal, params, Status.of(ds.attrs.get("status", "success")),
                   str(ds.attrs.get("message", "")))


def asymptotes(signal, depth, m: int, measured: dict | None = None, ref_index: int | None = None,
               activation: Any = None, **deprecated) -> dict:
    r"""Large-depth predictions of Xiao, Pennington & Schoenholz 2020 (Sec. 2: the NTK as a multiple of the
    identity plus a constant matrix, by phase) against depth (``m`` training points; inputs with ``K^0(x,x) = q*``).

    ``signal``: the scalar :class:`~learndyn.kernels.SignalPropagation` at (``weight_var``, ``bias_var``), or a
    :class:`~learndyn.kernels.Problem` (its :func:`~learndyn.kernels.signal_propagation`).  ``activation`` (a
    name, an :class:`~learndyn.activations.Activation` or a callable) decides the critical-phase column: a
    kinked one (ReLU-like, ``Activation.kinked``) has its own; by default the Problem's activation, or the one
    ``signal.activation`` names (a name that does not resolve counts as smooth).  The former keyword
    ``activation_name`` still works, with a ``DeprecationWarning``.

    Exact or constant-free predictions are absolute; rates known up to a constant are anchored to
    ``measured`` at ``depth[ref_index]`` (default: the last depth).
    """
    if "activation_name" in deprecated:
        warnings.warn("asymptotes: the keyword activation_name is now activation", DeprecationWarning, stacklevel=2)
        if activation is not None:
            raise InvalidInputError("activation_name: given together with activation; use activation alone")
        activation = deprecated.pop("activation_name")
    if deprecated:
        raise InvalidInputError(f"{sorted(deprecated)[0]}: not an option of asymptotes")
    if isinstance(signal, Problem):
        activation = signal.act if activation is None else activation
        signal = signal_propagation(signal)
    if not isinstance(signal, SignalPropagation):
        raise InvalidInputError(f"signal: expected a kernels.SignalPropagation or kernels.Problem, got "
                                f"{type(signal).__name__}")
    sp = signal
    if activation is None:
        activation = sp.activation
    d = sp.scalar()
    l = np.asarray(depth, float)
    q, chi1, chic, pstar, phase = d["q_star"], d["chi_1"], d["chi_c"], d["p_star"], d["phase"]
    nan = np.full(l.shape, np.nan)
    out = {k: nan.copy() for k in _Q}
    if not np.isfinite(q):
        return out
    # exact diagonal: q* sum_{j=0..l} chi_1^j
    out["theta_d"] = q * (l + 1) if abs(chi1 - 1) < 1e-12 else q * (1 - chi1 ** (l + 1)) / (1 - chi1)
    ref = len(l) - 1 if ref_index is None else ref_index
    # within the swept depths, a point whose depth scale exceeds the largest depth behaves critically
    scale = d["xi_1"] if phase == "ordered" else (d["xi_star"] if phase == "chaotic" else np.inf)
    if l.size and scale > l.max():
        phase = "critical"

    def anchor(name, shape_fn):
        if measured is None:
            return nan.copy()
        mv = np.asarray(measured[name], float)
        s = shape_fn(l)
        if not (np.isfinite(mv[ref]) and np.isfinite(s[ref]) and s[ref] != 0):
            return nan.copy()
        return s * mv[ref] / s[ref]

    try:  # ReLU-like (positively homogeneous with a kink): the activation says so
        relu_like = _act.get(activation).kinked
    except ValueError:  # a display name that does not resolve (a custom label): smooth
        relu_like = False
    if phase == "ordered":
        out["theta_o"] = np.full(l.shape, pstar)
        out["lambda_max"] = np.full(l.shape, m * pstar)
        out["lambda_bulk"] = anchor("lambda_bulk", lambda x: x * chi1 ** x)
        out["lambda_min"] = anchor("lambda_min", lambda x: x * chi1 ** x)
        out["kappa"] = anchor("kappa", lambda x: 1.0 / (x * chi1 ** x))
        out["py_rms"] = anchor("py_rms", lambda x: np.ones_like(x))
        out["k_lambda_min"] = anchor("k_lambda_min", lambda x: chi1 ** x)
        out["k_kappa"] = anchor("k_kappa", lambda x: chi1 ** (-x))
        out["pky_rms"] = anchor("pky_rms", lambda x: np.ones_like(x))
    elif phase == "chaotic":
        td = out["theta_d"]
        out["theta_o"] = np.full(l.shape, pstar)
        out["lambda_max"] = td + (m - 1) * pstar
        out["lambda_bulk"] = td - pstar
        out["kappa"] = (td + (m - 1) * pstar) / (td - pstar)
        out["lambda_min"] = anchor("lambda_min", lambda x: q * (1 - chi1 ** (x + 1)) / (1 - chi1))
        out["py_rms"] = anchor("py_rms", lambda x: x * (chic / chi1) ** x)
        c = d["c_star"]
        out["k_kappa"] = np.full(l.shape, 1 + m * c / (1 - c))
        out["k_lambda_min"] = np.full(l.shape, q * (1 - c))
        out["pky_rms"] = anchor("pky_rms", lambda x: chic ** x)
    elif phase == "critical":
        if relu_like:
            out["theta_o"] = l * q / 4
            out["lambda_max"] = (m + 3) / 4 * l * q
            out["lambda_bulk"] = 0.75 * l * q
            out["kappa"] = np.full(l.shape, (m + 3) / 3)
        else:
            out["theta_o"] = l * q / 3
            out["lambda_max"] = (m + 2) / 3 * l * q
            out["lambda_bulk"] = (2.0 / 3.0) * l * q
            out["kappa"] = np.full(l.shape, (m + 2) / 2)
        out["py_rms"] = anchor("py_rms", lambda x: 1.0 / x)
        out["k_kappa"] = anchor("k_kappa", lambda x: x)
        out["pky_rms"] = anchor("pky_rms", lambda x: 1.0 / x)
    return out


def spectrum_vs_depth(problem, x_train, y_train=None, x_test=None, depths: Sequence[int] | None = None, *,
                      reg: float = 0.0, **legacy) -> SpectrumResult:
    r"""NTK/NNGP spectra and the mean predictor against depth (Xiao, Pennington & Schoenholz 2020, Sec. 2), with
    the large-depth predictions of :func:`asymptotes`, for ``problem``'s network at each of ``depths``.

    Per depth ``l`` (train kernels ``Theta``, ``K`` on ``x_train``): ``theta_d``/``theta_o`` (mean diagonal /
    off-diagonal entry), ``lambda_max``, ``lambda_min``, ``lambda_bulk`` (mean of all but the largest
    eigenvalue), ``kappa``, the RMS of ``P(Theta) Y`` on ``x_test`` (:func:`~learndyn.kernels.mean_predictor`,
    ``reg`` relative to the mean diagonal; the former keyword ``diag_reg`` still works, with a
    ``DeprecationWarning``) and the NNGP's ``k_lambda_min``, ``k_kappa``, ``pky_rms``.
    ``problem.readin="qstar"`` makes the diagonal prediction exact for rows with ``|x|^2 / n_0 = 1`` (Xiao et al.
    2020, Sec. 2.1).  ``y_train`` should be mean-centred.  A kernel beyond float64 range stops the sweep with
    status ``NONFINITE``, keeping the depths computed before.

    The loose form ``spectrum_vs_depth(x_train, y_train, x_test, depths, activation=..., weight_var=1.5,
    bias_var=0.05, architecture="fcn", readin="qstar", ...)`` still works.
    """
    if "diag_reg" in legacy:
        reg = _deprecated_reg("spectrum_vs_depth", reg, {"diag_reg": legacy.pop("diag_reg")})
    if not isinstance(problem, Problem):
        problem, x_train, y_train, x_test, depths = (
            _legacy_problem("spectrum_vs_depth", legacy, activation="erf", weight_var=1.5, bias_var=0.05,
                            readin="qstar"), problem, x_train, y_train, x_test if depths is None else depths)
    elif legacy:
        raise InvalidInputError(f"{sorted(legacy)[0]}: set it on the Problem (problem.replace(...))")
    for name, value in (("y_train", y_train), ("x_test", x_test), ("depths", depths)):
        if value is None:
            raise InvalidInputError(f"{name}: required")
    sp = signal_propagation(problem.activation, problem.weight_var, problem.bias_var)
    rwv, rbv = problem.readin_variances()
    x_train = np.asarray(x_train, float)
    x_test = np.asarray(x_test, float)
    y_train = np.asarray(y_train, float)
    if y_train.ndim == 1:
        y_train = y_train[:, None]
    m = x_train.shape[0]
    if y_train.shape[0] != m:
        raise InvalidInputError(f"y_train: {y_train.shape[0]} rows for {m} training inputs")
    x = np.concatenate([x_train, x_test])
    meas = {k: [] for k in _Q}
    done = []
    status, message = Status.SUCCESS, ""
    for l, K, T in depth_sweep(problem, x, depths):
        if not (np.all(np.isfinite(K)) and np.all(np.isfinite(T))):
            status = Status.NONFINITE
            message = f"non-finite kernel at depth {l} (beyond float64 range); stopped"
            break
        vals = _spectrum_at_depth(K, T, m, y_train, reg)
        for k in _Q:
            meas[k].append(vals[k])
        done.append(l)
    depth = np.asarray(done, int)
    meas = {k: np.asarray(v, float) for k, v in meas.items()}
    th = asymptotes(sp, depth, m, meas, activation=problem.act) if len(depth) else {}
    params = dict(activation=str(sp.activation), weight_var=problem.weight_var, bias_var=problem.bias_var,
                  architecture=problem.architecture, readin=problem.readin, readin_weight_var=rwv,
                  readin_bias_var=rbv, m=m, n_test=x_test.shape[0], reg=reg)
    if problem.architecture == "cnn":
        params.update(filter_shape=str(problem.filter_shape), padding=problem.padding, readout=problem.readout)
    return SpectrumResult(depth, meas, th, sp, params, status, message)


def _spectrum_at_depth(K, T, m: int, y_train, reg: float) -> dict[str, float]:
    """The measured quantities of :func:`spectrum_vs_depth` from the joint NNGP ``K`` and NTK ``T`` of one depth
    (first ``m`` rows: train)."""
    Ttt, Tst = T[:m, :m], T[m:, :m]
    Ktt, Kst = K[:m, :m], K[m:, :m]
    es = eig_stats(Ttt)
    py = mean_predictor(Ttt, Tst, y_train, reg=reg, max_cond=None).mean
    ek = eig_stats(Ktt)
    pky = mean_predictor(Ktt, Kst, y_train, reg=reg, max_cond=None).mean
    off = ~np.eye(m, dtype=bool)
    return dict(theta_d=float(np.mean(np.diag(Ttt))), theta_o=float(np.mean(Ttt[off])),
                lambda_max=es["lambda_max"], lambda_min=es["lambda_min"], lambda_bulk=es["lambda_bulk"],
                kappa=es["kappa"], py_rms=float(np.sqrt(np.mean(py ** 2))),
                k_lambda_min=ek["lambda_min"], k_kappa=ek["kappa"], pky_rms=float(np.sqrt(np.mean(pky ** 2))))


# ============================================================================================
# infinite-width gradient descent with NNGP initialisation noise
# ============================================================================================
@dataclass(frozen=True)
class GDPredictions(Result):
    r"""Outputs of infinite-width networks after gradient flow from NNGP initial outputs
    (:func:`gd_predictions`; Jacot et al. 2018, Lee et al. 2019, as used in Xiao et al. 2020, Sec. 2).

    ``f_train``: ``(time, draw, train, output)``, ``f_test``: ``(time, draw, test, output)``; ``learning_rate``:
    ``eta = lr_factor * 2 / lambda_max(Theta_train)``.  ``train_accuracy`` / ``test_accuracy``: per time, the
    fraction of (draw, input) pairs whose largest output is the label (``None`` without labels).
    ``status`` is :attr:`~learndyn.Status.NONFINITE` (outputs kept, ``message`` says where) if an output is NaN
    or infinite.  Unpacks as ``f_train, f_test, eta = gd_predictions(...)``.
    """

    times: np.ndarray
    f_train: np.ndarray
    f_test: np.ndarray
    learning_rate: float
    params: dict
    train_accuracy: np.ndarray | None = None
    test_accuracy: np.ndarray | None = None
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def __iter__(self):
        """``f_train, f_test, eta = predictions``."""
        return iter((self.f_train, self.f_test, self.learning_rate))

    def to_xarray(self) -> xr.Dataset:
        """Outputs over ``(time, draw, train|test, output)``, accuracies over ``time``; parameters, learning
        rate and status as attributes."""
        data = {"f_train": (("time", "draw", "train", "output"), self.f_train),
                "f_test": (("time", "draw", "test", "output"), self.f_test)}
        for name in ("train_accuracy", "test_accuracy"):
            if getattr(self, name) is not None:
                data[name] = ("time", np.asarray(getattr(self, name), float))
        return xr.Dataset(data, coords={"time": np.asarray(self.times, float)},
                          attrs=problem_attrs(self.params, learning_rate=float(self.learning_rate),
                                              status=str(self.status), message=self.message))

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "GDPredictions":
        """The result stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        from ..results import problem_json

        acc = {name: ds[name].values if name in ds else None for name in ("train_accuracy", "test_accuracy")}
        return cls(ds["time"].values, ds["f_train"].values, ds["f_test"].values, float(ds.attrs["learning_rate"]),
                   problem_json(ds), status=Status.of(ds.attrs.get("status", "success")),
                   message=str(ds.attrs.get("message", "")), **acc)


def _labels(name: str, labels, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"{name}: expected {n} integer class indices (one per input), got "
                                f"{labels.dtype} of shape {labels.shape}")
    return labels


def gd_predictions(K, T, m: int, y_train, times: Sequence[float], *, n_draws: int = 1, lr_factor: float = 1.0,
                   reg: float = 0.0, seed: int = 0, rng: np.random.Generator | None = None, labels_train=None,
                   labels_test=None, **deprecated) -> GDPredictions:
    r"""Outputs of infinite-width networks after gradient flow for each ``t`` in ``times`` (``inf`` allowed):
    ``f_t(X) = Y + e^{-eta Theta t}(f_0(X) - Y)`` and
    ``f_t(X*) = f_0(X*) + Theta(X*,X) Theta^{-1} (I - e^{-eta Theta t}) (Y - f_0(X))`` (Jacot et al. 2018;
    Lee et al. 2019), with NNGP initial outputs as in Xiao, Pennington & Schoenholz 2020, Sec. 2.

    ``K``, ``T``: joint NNGP / NTK over ``train + test`` (the first ``m`` rows are train).  The learning
    rate is ``eta = lr_factor * 2 / lambda_max(T_train)`` (Xiao et al. 2020, Sec. 2: the trainability
    bound).  Initial outputs are
    ``n_draws`` independent draws ``f_0 ~ N(0, K)`` (one per logit, iid over logits).

    The draws come from ``rng`` if given, else from ``numpy.random.default_rng(seed)``.  ``reg`` is
    added to ``T_train`` relative to its mean diagonal (the convention of :func:`~learndyn.kernels.mean_predictor`;
    the former keyword ``diag_reg`` still works, with a ``DeprecationWarning``).  ``labels_train`` /
    ``labels_test`` (integer classes): the result also holds the accuracies of the largest output.

    Returns a :class:`GDPredictions` (``f_train`` of shape ``(len(times), n_draws, m, k)``, ``f_test``
    ``(..., n_test, k)``, the learning rate), which unpacks as the former tuple ``(f_train, f_test, eta)``.
    """
    reg = _deprecated_reg("gd_predictions", reg, deprecated)
    params = dict(m=m, n_draws=n_draws, lr_factor=lr_factor, reg=reg)
    if rng is None:
        params["seed"] = seed
    rng = rng or np.random.default_rng(seed)
    K, T, y = np.asarray(K, float), np.asarray(T, float), np.asarray(y_train, float)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise InvalidInputError(f"K: expected the square joint NNGP over train + test, got shape {K.shape}")
    if T.shape != K.shape:
        raise InvalidInputError(f"T: expected the joint NTK of the same shape as K {K.shape}, got {T.shape}")
    if isinstance(m, bool) or int(m) != m or not 1 <= m <= K.shape[0]:
        raise InvalidInputError(f"m: the number of training rows must be an integer in [1, {K.shape[0]}], got {m!r}")
    m = int(m)
    if y.ndim != 2 or y.shape[0] != m:
        raise InvalidInputError(f"y_train: expected shape ({m}, k) (one row of k outputs per training input), "
                         f"got {y.shape}")
    labels_train = _labels("labels_train", labels_train, m)
    labels_test = _labels("labels_test", labels_test, K.shape[0] - m)
    times = np.asarray(times, float).reshape(-1)
    k = y.shape[1]
    Ttt, Tst = T[:m, :m], T[m:, :m]
    Treg = Ttt + reg * np.mean(np.diag(Ttt)) * np.eye(m)
    w, V = np.linalg.eigh(Treg)
    lmax = w[-1]
    eta = lr_factor * 2.0 / lmax
    w = np.maximum(w, 0.0)
    # f0 ~ N(0, K) jointly on train + test: symmetric square root with clipped eigenvalues
    wk, Vk = np.linalg.eigh(K)
    L = Vk * np.sqrt(np.maximum(wk, 0.0))
    n = K.shape[0]
    f0 = np.einsum("ij,djk->dik", L, rng.standard_normal((n_draws, n, k)))
    f0_tr, f0_te = f0[:, :m], f0[:, m:]
    r0 = np.einsum("ij,djk->dik", V.T, y[None] - f0_tr)  # eigen-coordinates of Y - f0(X)
    out_tr, out_te = [], []
    for t in times:
        decay, g = _flow_factors(w, eta, t, lmax)  # e^{-eta w t} and (1 - e^{-eta w t}) / w
        ftr = y[None] - np.einsum("ij,djk->dik", V, decay[None, :, None] * r0)
        fte = f0_te + np.einsum("ij,djk->dik", Tst @ V, g[None, :, None] * r0)
        out_tr.append(ftr)
        out_te.append(fte)
    f_train = np.asarray(out_tr).reshape(len(times), n_draws, m, k)
    f_test = np.asarray(out_te).reshape(len(times), n_draws, n - m, k)
    acc = {}
    for name, f, lab in (("train_accuracy", f_train, labels_train), ("test_accuracy", f_test, labels_test)):
        if lab is not None:
            acc[name] = np.mean(np.argmax(f, -1) == lab[None, None], axis=(1, 2))
    status, message = Status.SUCCESS, ""
    for name, f in (("f_train", f_train), ("f_test", f_test)):
        bad = ~np.isfinite(f)
        if np.any(bad):
            status = Status.NONFINITE
            message = (f"{name}: {int(bad.sum())} of {bad.size} outputs are NaN or infinite (lambda_max of the "
                       f"train NTK = {lmax:.3g}); the kernels are not finite and positive definite")
            break
    return GDPredictions(times, f_train, f_test, float(eta), params, status=status, message=message, **acc)


def _deprecated_reg(func: str, reg: float, deprecated: dict) -> float:
    """``reg``, or the value of the former keyword ``diag_reg`` (with a ``DeprecationWarning``)."""
    if "diag_reg" in deprecated:
        warnings.warn(f"{func}: the keyword diag_reg is now reg (the same relative regularisation as "
                      "mean_predictor)", DeprecationWarning, stacklevel=3)
        if reg != 0.0:
            raise InvalidInputError("diag_reg: given together with reg; use reg alone")
        reg = deprecated.pop("diag_reg")
    if deprecated:
        raise InvalidInputError(f"{sorted(deprecated)[0]}: not an option of {func}")
    return reg
