"""Result objects of the DMFT solvers (symmetric, general, Richardson; Montanari & Urbani 2025), with ``.to_xarray()``.

All are frozen; ``status`` is a :class:`learndyn.Status` (``SUCCESS``, ``DIVERGED``, ``NONFINITE``,
``INTERRUPTED``), ``message`` says where and why a run stopped, and the arrays keep the steps computed before.

Two-time functions of the symmetric solver are kept in packed lower-triangular storage (row ``n``
holds ``X(t_n, t_s)``, ``s <= n``; see :mod:`learndyn.dmft.symmetric`) and expanded to ``(time, time)``
arrays on access.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ..results import Result, Status, json_attr, problem_attrs, rebuild_problem
from ._common import status_from_text
from .problem import Problem

__all__ = ["SymmetricSolution", "GeneralSolution", "RichardsonSolution", "unpack"]


def unpack(packed: np.ndarray, n: int, symmetric: bool) -> np.ndarray:
    """Expand a packed lower triangle (row-major, ``X[i, j]`` at ``i(i+1)/2 + j``) into an ``(n, n)`` array.

    ``symmetric``: mirror into the upper triangle; otherwise the upper triangle is 0 (causal)."""
    out = np.zeros((n, n))
    rows, cols = np.tril_indices(n)
    out[rows, cols] = packed[: n * (n + 1) // 2]
    if symmetric:
        out[cols, rows] = packed[: n * (n + 1) // 2]
    return out


@dataclass(frozen=True, eq=False)
class SymmetricSolution(Result):
    r"""Solution of the symmetric DMFT (SymmDMFT, Montanari & Urbani 2025, App. D) on the grid ``t_n = n dt``.

    One-time observables (length ``len(t)``): ``a``, ``v``, ``nu``, ``train_error`` (``-C_A(t,t)/2``),
    ``test_error`` (``Sigma_C(t,t)/2``). Two-time functions (``(time, time)`` arrays, row = first time):
    ``C_d``, ``C_o``, ``R_d``, ``R_o`` (causal: zero on and above the diagonal), ``C_A``, ``R_A`` (with the
    ``1/dt`` diagonal of the discretised delta), ``Sigma_C``.

    ``status`` is :attr:`Status.SUCCESS` or says why the march stopped (``DIVERGED``: ``|C|`` or ``|R|`` past the
    divergence threshold; ``NONFINITE``; ``INTERRUPTED``: Ctrl-C), with ``message`` saying where; the arrays then
    hold the steps computed before it.
    """

    problem: Problem
    dt: float
    scheme: str
    t: np.ndarray
    a: np.ndarray
    v: np.ndarray
    nu: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    status: Status = Status.SUCCESS
    packed: dict = field(default_factory=dict, repr=False)
    stats: dict = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.of(self.status))

    @property
    def n_steps(self) -> int:
        """Number of computed grid points (``len(t)``)."""
        return int(self.t.size)

    def _two_time(self, name: str, symmetric: bool) -> np.ndarray:
        m = self.problem.m
        n = self.n_steps
        P = self.packed
        if name in ("C_d", "C_o"):
            plus, minus = P["C+"], P["C-"]
            sym = True
        elif name in ("R_d", "R_o"):
            plus, minus = P["R+"], P["R-"]
            sym = False
        else:
            if name not in P:
                raise AttributeError(f"{name}: not kept (solve with keep=True)")
            return unpack(P[name], n, symmetric)
        k = n * (n + 1) // 2
        if name.endswith("_d"):
            x = (plus[:k] + (m - 1) * minus[:k]) / m
        else:
            x = (plus[:k] - minus[:k]) / m
        return unpack(x, n, sym)

    @property
    def C_d(self) -> np.ndarray:
        """``C_d(t, s) = <w_i(t), w_i(s)>``."""
        return self._two_time("C_d", True)

    @property
    def C_o(self) -> np.ndarray:
        """``C_o(t, s) = <w_i(t), w_j(s)>``, ``i != j``."""
        return self._two_time("C_o", True)

    @property
    def R_d(self) -> np.ndarray:
        """``R_d(t, s) = R_ii(t, s)``, the diagonal response (causal)."""
        return self._two_time("R_d", False)

    @property
    def R_o(self) -> np.ndarray:
        """``R_o(t, s) = R_ij(t, s)``, ``i != j`` (causal)."""
        return self._two_time("R_o", False)

    @property
    def C_A(self) -> np.ndarray:
        """``C_A(t, s)``, minus the residual correlation (``e_tr = -C_A(t, t)/2``); kept with ``keep=True``."""
        return self._two_time("CA", True)

    @property
    def R_A(self) -> np.ndarray:
        """``R_A(t, s)``, the residual resolvent, with the ``1/dt`` diagonal of the discretised delta."""
        return self._two_time("RA", False)

    @property
    def Sigma_C(self) -> np.ndarray:
        """``Sigma_C(t, s)``, the residual covariance (``e_ts = Sigma_C(t, t)/2``); kept with ``keep=True``."""
        return self._two_time("SC", True)

    @property
    def gamma(self) -> np.ndarray:
        """Complexity ``a(t)/sqrt(m)``."""
        return self.a / np.sqrt(self.problem.m)

    def to_xarray(self, two_time: bool = True) -> xr.Dataset:
        """The one-time observables over ``time`` and (``two_time``) the two-time functions over ``(time, time2)``;
        the problem, ``dt``, ``scheme``, ``status``, ``message`` and run statistics in the attributes."""
        t = self.t
        data = {
            "train_error": ("time", self.train_error),
            "test_error": ("time", self.test_error),
            "a": ("time", self.a),
            "v": ("time", self.v),
            "nu": ("time", self.nu),
        }
        if two_time:
            kept = {"CA": "C_A", "RA": "R_A", "SC": "Sigma_C"}
            for name in ("C_d", "C_o", "R_d", "R_o") + tuple(v for k, v in kept.items() if k in self.packed):
                data[name] = (("time", "time2"), getattr(self, name))
        ds = xr.Dataset(data, coords={"time": t, "time2": t} if two_time else {"time": t})
        ds.attrs.update(problem_attrs(self.problem, solver="dmft.symmetric", dt=self.dt, scheme=self.scheme,
                                      status=self.status.value, message=self.message, stats=self.stats))
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "SymmetricSolution":
        """The solution stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`); the packed
        two-time functions are rebuilt from the stored ``(time, time)`` arrays
        (``C+ = C_d + (m-1) C_o``, ``C- = C_d - C_o``, the same for ``R``)."""
        problem = rebuild_problem(ds, Problem)
        m = problem.m
        rows, cols = np.tril_indices(ds.sizes["time"])
        packed = {}
        if "C_d" in ds:
            tri = {name: ds[name].values[rows, cols] for name in ("C_d", "C_o", "R_d", "R_o")}
            packed = {"C+": tri["C_d"] + (m - 1) * tri["C_o"], "C-": tri["C_d"] - tri["C_o"],
                      "R+": tri["R_d"] + (m - 1) * tri["R_o"], "R-": tri["R_d"] - tri["R_o"]}
            for key, name in (("CA", "C_A"), ("RA", "R_A"), ("SC", "Sigma_C")):
                if name in ds:
                    packed[key] = ds[name].values[rows, cols]
        return cls(problem=problem, dt=float(ds.attrs["dt"]), scheme=str(ds.attrs["scheme"]), t=ds["time"].values,
                   a=ds["a"].values, v=ds["v"].values, nu=ds["nu"].values, train_error=ds["train_error"].values,
                   test_error=ds["test_error"].values, packed=packed, stats=json_attr(ds, "stats", {}),
                   **_status(ds))


@dataclass(frozen=True, eq=False)
class GeneralSolution(Result):
    r"""Solution of the general m x m DMFT (Montanari & Urbani 2025, Sec. 2 and App. C) on ``t_n = n dt``.

    ``a``, ``v``, ``nu``: ``(time, m)``; ``C``, ``R``: ``(time, time, m, m)`` with ``C[t, s, i, j] = C_ij(t, s)``
    and ``R`` causal (zero for ``s >= t``); ``C_A``, ``R_A``: ``(time, time)``. ``status`` and ``message`` as for
    :class:`SymmetricSolution`.
    """

    problem: Problem
    dt: float
    scheme: str
    t: np.ndarray
    a: np.ndarray
    v: np.ndarray
    nu: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    C: np.ndarray = field(repr=False)
    R: np.ndarray = field(repr=False)
    C_A: np.ndarray = field(repr=False)
    R_A: np.ndarray = field(repr=False)
    status: Status = Status.SUCCESS
    stats: dict = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.of(self.status))

    @property
    def C_d(self) -> np.ndarray:
        """Neuron-averaged ``C_ii(t, s)``."""
        return np.einsum("tsii->ts", self.C) / self.problem.m

    @property
    def C_o(self) -> np.ndarray:
        """Average of ``C_ij(t, s)`` over ``i != j`` (0 for m = 1)."""
        m = self.problem.m
        if m == 1:
            return np.zeros(self.C.shape[:2])
        return (self.C.sum(axis=(2, 3)) - np.einsum("tsii->ts", self.C)) / (m * (m - 1))

    @property
    def R_d(self) -> np.ndarray:
        """Neuron-averaged ``R_ii(t, s)``."""
        return np.einsum("tsii->ts", self.R) / self.problem.m

    @property
    def R_o(self) -> np.ndarray:
        """Average of ``R_ij(t, s)`` over ``i != j`` (0 for m = 1)."""
        m = self.problem.m
        if m == 1:
            return np.zeros(self.R.shape[:2])
        return (self.R.sum(axis=(2, 3)) - np.einsum("tsii->ts", self.R)) / (m * (m - 1))

    def to_xarray(self, two_time: bool = True) -> xr.Dataset:
        """One-time observables over ``(time, neuron)``, two-time ``C``, ``R`` over ``(time, time2, neuron,
        neuron2)`` and ``C_A``, ``R_A`` over ``(time, time2)``; problem, status and message in the attributes."""
        t = self.t
        data = {
            "train_error": ("time", self.train_error),
            "test_error": ("time", self.test_error),
            "a": (("time", "neuron"), self.a),
            "v": (("time", "neuron"), self.v),
            "nu": (("time", "neuron"), self.nu),
        }
        coords: dict = {"time": t, "neuron": np.arange(self.problem.m)}
        if two_time:
            data["C"] = (("time", "time2", "neuron", "neuron2"), self.C)
            data["R"] = (("time", "time2", "neuron", "neuron2"), self.R)
            data["C_A"] = (("time", "time2"), self.C_A)
            coords.update(time2=t, neuron2=np.arange(self.problem.m))
        if two_time:
            data["R_A"] = (("time", "time2"), self.R_A)
        ds = xr.Dataset(data, coords=coords)
        ds.attrs.update(problem_attrs(self.problem, solver="dmft.general", dt=self.dt, scheme=self.scheme,
                                      status=self.status.value, message=self.message, stats=self.stats))
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "GeneralSolution":
        """The solution stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        def two(name):
            return ds[name].values if name in ds else None

        return cls(problem=rebuild_problem(ds, Problem), dt=float(ds.attrs["dt"]), scheme=str(ds.attrs["scheme"]),
                   t=ds["time"].values, a=ds["a"].values, v=ds["v"].values, nu=ds["nu"].values,
                   train_error=ds["train_error"].values, test_error=ds["test_error"].values, C=two("C"),
                   R=two("R"), C_A=two("C_A"), R_A=two("R_A"), stats=json_attr(ds, "stats", {}), **_status(ds))


@dataclass(frozen=True, eq=False)
class RichardsonSolution(Result):
    r"""Second-order (Richardson) estimate ``X = 2 X(dt/2) - X(dt)`` of the SymmDMFT one-time observables
    (Montanari & Urbani 2025, App. D, whose scheme is first order) on the coarse grid ``t_n = n dt``.

    ``train_error``, ``test_error``, ``a``, ``v``: the estimate; ``coarse`` and ``fine``: the two
    :class:`SymmetricSolution` (steps ``dt`` and ``dt/2``) it combines (``None`` when read back from a file, or
    ``fine`` when the coarse solve was interrupted). ``status`` is the first non-success status of the two solves
    and ``message`` says which; the estimate then covers the grid points both solves reached.
    """

    problem: Problem
    dt: float
    t: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    a: np.ndarray
    v: np.ndarray
    coarse: SymmetricSolution | None = field(default=None, repr=False)
    fine: SymmetricSolution | None = field(default=None, repr=False)
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.of(self.status))

    def to_xarray(self) -> xr.Dataset:
        """The estimate over ``time``; problem, ``dt``, status and message in the attributes (the coarse and fine
        solutions are not written: save them on their own)."""
        data = {name: ("time", getattr(self, name)) for name in ("train_error", "test_error", "a", "v")}
        ds = xr.Dataset(data, coords={"time": self.t})
        ds.attrs.update(problem_attrs(self.problem, solver="dmft.richardson", dt=self.dt, status=self.status.value,
                                      message=self.message))
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "RichardsonSolution":
        """The estimate stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        return cls(problem=rebuild_problem(ds, Problem), dt=float(ds.attrs["dt"]), t=ds["time"].values,
                   train_error=ds["train_error"].values, test_error=ds["test_error"].values, a=ds["a"].values,
                   v=ds["v"].values, **_status(ds))


def _status(ds: xr.Dataset) -> dict:
    """``status`` and ``message`` stored in ``ds`` (files written before the statuses were unified hold free text,
    e.g. ``"ok"`` or ``"diverged at t = ..."``)."""
    status, message = status_from_text(ds.attrs.get("status"), ds.attrs.get("message"))
    return {"status": status, "message": message}
