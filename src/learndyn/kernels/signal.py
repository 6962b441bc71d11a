r"""Mean-field signal propagation of deep networks: q*, c*, chi_1, chi_c*, depth scales, phases and the
critical line (Poole et al. 2016; Schoenholz et al. 2017; Xiao, Pennington & Schoenholz 2020, Sec. 2).

Conventions are neural-tangents': ``"erf"`` means ``erf(x)``, one hidden block maps the
pre-activation variance ``q`` and correlation ``c`` by

* q-map  ``Q(q) = sigma_w^2 V_phi([[q, q], [q, q]]) + sigma_b^2``;  ``q* = Q(q*)``  (Poole et al. 2016);
* c-map  ``C(c) = [sigma_w^2 V_phi(q* [[1, c], [c, 1]]) + sigma_b^2] / q*``;  ``c* = C(c*)``;
* slope  ``chi(c) = C'(c) = sigma_w^2 Vdot_phi(q* [[1, c], [c, 1]])`` (Price's theorem),
  ``chi_1 = chi(1)``, ``chi_c* = chi(c*)``;
* depth scales (Schoenholz et al. 2017): ``xi_1 = -1/ln chi_1`` (ordered), ``xi_c = -1/ln chi_c*``,
  ``xi_* = 1/ln(chi_1/chi_c*)`` (chaotic); a scale that does not apply in a phase is ``inf``;
* ``p*`` (the off-diagonal NTK limit at large depth, Xiao et al. 2020, Sec. 2): ``q*/(1-chi_1)`` ordered,
  ``q* c*/(1-chi_c*)`` chaotic.

Gaussian integrals come from :mod:`learndyn.gaussian` (closed forms for erf/ReLU/abrelu/linear,
Gauss-Hermite quadrature for any other activation).  Every solver is a vectorised bisection on a
bracket found on a grid, so a whole ``sigma_w^2`` grid is solved at once.

Phase labels: ``"ordered"`` (chi_1 < 1), ``"chaotic"`` (chi_1 > 1), ``"critical"`` (|chi_1 - 1| <=
``critical_tol``), ``"unbounded"`` (the q-map has no finite fixed point: q grows without bound, e.g.
ReLU with sigma_w^2 > 2, or sigma_w^2 = 2 with sigma_b^2 > 0: ReLU has no chaotic phase with
finite q*).  At a marginal point where every q is a fixed point (ReLU at (2, 0), linear at (1, 0)),
``q*`` is the input variance ``q0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import xarray as xr

from .. import activations as _act
from .. import gaussian as _gauss
from ..results import InvalidInputError, Result, Status, problem_attrs

__all__ = ["SignalPropagation", "CriticalLine", "signal_propagation", "critical_line", "q_map", "c_map",
           "chi", "correlation_trajectory", "PHASES"]

PHASES = ("ordered", "critical", "chaotic", "unbounded")
_BISECT_STEPS = 120
_Q_GRID = np.concatenate([[0.0], np.geomspace(1e-12, 1e12, 241)])
_C_GRID = np.concatenate([[-1.0], 1.0 - np.geomspace(2.0, 1e-13, 400)[1:], [1.0]])


def _activation(activation) -> _act.Activation:
    """Resolve (errors of :func:`learndyn.activations.get` already name ``activation``) and check that a
    custom callable is JAX-traceable before any bisection."""
    return _act.get(activation, scale=1.0).check_traceable()


def _check_var(name: str, value, allow_zero: bool) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: expected a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(v)) or np.any(v < 0) or (not allow_zero and np.any(v == 0)):
        raise InvalidInputError(f"{name}: must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return v


def _cov(a, b, c12):
    """Batched 2x2 covariance [[a, c12], [c12, b]]."""
    a, b, c12 = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float), np.asarray(c12, float))
    C = np.empty(a.shape + (2, 2))
    C[..., 0, 0], C[..., 1, 1], C[..., 0, 1], C[..., 1, 0] = a, b, c12, c12
    return C


_JIT: dict = {}
#: Gauss-Hermite nodes per dimension for activations without a closed form (tanh critical line to
#: ~1e-6 against 201-node quadrature values)
QUAD_ORDER = 160


def _jitted(kind: str, act: _act.Activation):
    """Compiled gaussian.i2 / j2 for ``act`` (eager JAX dispatch dominates the bisections otherwise)."""
    key = (kind, act)  # the activation's identity includes a custom callable
    hit = _JIT.get(key)
    if hit is None:
        f = _gauss.i2 if kind == "i2" else _gauss.j2
        hit = jax.jit(lambda C: f(act, C, order=QUAD_ORDER))
        _JIT[key] = hit
    return hit


def _homogeneous_gain(act: _act.Activation):
    """E[phi(sqrt(q) z)^2]/q and E[phi'(sqrt(q) z)^2] for positively homogeneous phi (None otherwise)."""
    return act.homogeneous_gain


def _is_one(c) -> bool:
    return np.isscalar(c) and float(c) == 1.0


def _V(act, q, c):
    """V_phi(q [[1, c], [c, 1]]) = E[phi(u) phi(v)], (u, v) ~ N(0, q [[1, c], [c, 1]]).

    At ``c = 1`` homogeneous activations use the exact ``gain * q``: the 2x2 closed forms contain
    ``sqrt(q^2 - c12^2)``, which turns a rounding error of 1e-17 into 1e-9."""
    q = np.asarray(q, float)
    gain = _homogeneous_gain(act)
    if gain is not None and _is_one(c):
        return gain * q
    return np.asarray(_jitted("i2", act)(_cov(q, q, q * c)))


def _Vdot(act, q, c):
    """Vdot_phi(q [[1, c], [c, 1]]) = E[phi'(u) phi'(v)] (exact at ``c = 1`` for homogeneous phi)."""
    q = np.asarray(q, float)
    gain = _homogeneous_gain(act)
    if gain is not None and _is_one(c):
        return np.where(q > 0, gain, 0.0) + 0.0 * q
    return np.asarray(_jitted("j2", act)(_cov(q, q, q * c)))


def q_map(activation, weight_var, bias_var, q):
    r"""The q-map ``Q(q) = sigma_w^2 V_phi([[q,q],[q,q]]) + sigma_b^2`` (Poole et al. 2016), broadcasting over
    all arguments."""
    act = _activation(activation)
    return np.asarray(weight_var) * _V(act, q, 1.0) + np.asarray(bias_var)


def c_map(activation, weight_var, bias_var, q, c):
    r"""The c-map ``C(c) = [sigma_w^2 V_phi(q [[1,c],[c,1]]) + sigma_b^2] / q`` (Poole et al. 2016) at
    variance ``q``."""
    act = _activation(activation)
    q = np.asarray(q, float)
    return (np.asarray(weight_var) * _V(act, q, c) + np.asarray(bias_var)) / q


def chi(activation, weight_var, q, c):
    r"""The slope of the c-map ``chi(c) = C'(c) = sigma_w^2 Vdot_phi(q [[1,c],[c,1]])`` (Schoenholz et al.
    2017; Price's theorem); ``chi(1) = chi_1``."""
    act = _activation(activation)
    return np.asarray(weight_var) * _Vdot(act, q, c)


def _bisect(f, lo, hi, steps=_BISECT_STEPS):
    """Vectorised bisection for f(lo) >= 0 > f(hi) (elementwise arrays)."""
    lo, hi = np.array(lo, float), np.array(hi, float)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        pos = f(mid) >= 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
        if np.all(hi - lo <= 4e-16 * np.maximum(np.abs(hi), 1e-300)):
            break
    return 0.5 * (lo + hi)


def _largest_root(F, grid, shape):
    """Largest crossing (+ to -) of F on ``grid`` (1-D), batched over ``shape``.

    Returns (lo, hi, found, all_nonneg, all_zero): the bracketing grid values of the largest index i
    with F(g_i) >= 0 > F(g_{i+1}); ``found`` is False where no such crossing exists.
    """
    g = grid.reshape((-1,) + (1,) * len(shape))
    vals = F(np.broadcast_to(g, grid.shape + shape))  # (G,) + shape
    nonneg = vals >= 0
    cross = nonneg[:-1] & ~nonneg[1:]
    G = grid.size
    idx_rev = np.argmax(cross[::-1], axis=0)
    found = np.any(cross, axis=0)
    i = (G - 2) - idx_rev
    lo = grid[i]
    hi = grid[np.minimum(i + 1, G - 1)]
    all_zero = np.all(np.abs(vals[1:]) <= 1e-12 * np.maximum(np.abs(g[1:]), 1.0), axis=0)
    return lo, hi, found, np.all(nonneg, axis=0), all_zero


def _solve_q(act, wv, bv, q0):
    """Largest stable fixed point of the q-map; inf if q grows without bound, q0 if marginal."""
    shape = wv.shape
    F = lambda q: wv * _V(act, q, 1.0) + bv - q
    lo, hi, found, all_nonneg, all_zero = _largest_root(F, _Q_GRID, shape)
    q = np.where(found, _bisect(F, np.where(found, lo, 0.0), np.where(found, hi, 1.0)), 0.0)
    q = np.where(all_nonneg & ~found, np.inf, q)
    q = np.where(all_zero, q0, q)
    return q


def _solve_c(act, wv, bv, q, chi1):
    """Stable fixed point of the c-map: 1 when chi_1 <= 1, else the largest root c* < 1."""
    shape = wv.shape
    chaotic = (chi1 > 1.0) & np.isfinite(q) & (q > 0)
    if not np.any(chaotic):
        return np.ones(shape)
    qs = np.where(chaotic, q, 1.0)
    # Just below c = 1, G(c) ~ -(chi_1 - 1)(1 - c) is buried in rounding noise (~1e-13, from the
    # arcsin near 1); spurious sign changes there would pass for the largest root.  Points closer to 1
    # than 1e-9/(chi_1 - 1) count as negative, which is their sign in exact arithmetic.
    gap = 1e-9 / np.maximum(np.where(chaotic, chi1 - 1.0, 1.0), 1e-300)
    G = lambda c: np.where(1.0 - c < gap, -1.0, (wv * _V(act, qs, c) + bv) / qs - c)
    grid = _C_GRID[:-1]  # c = 1 is always a root; look strictly below it
    lo, hi, found, _, _ = _largest_root(G, grid, shape)
    # G < 0 just below 1 when chi_1 > 1; if the grid misses it the crossing is within 1e-13 of 1
    hi = np.where(found, hi, 1.0)
    lo = np.where(found, lo, grid[-1])
    c = _bisect(G, lo, hi)
    return np.where(chaotic, c, 1.0)


@dataclass(frozen=True)
class SignalPropagation(Result):
    r"""Mean-field quantities at (``weight_var``, ``bias_var``) (Poole et al. 2016; Schoenholz et al. 2017; Xiao
    et al. 2020, Sec. 2).  Arrays broadcast over the inputs (0-d for scalars).

    ``status`` is :attr:`~learndyn.Status.NONFINITE` (values kept, ``message`` says where) if a fixed point or
    slope came out NaN, e.g. for a custom activation whose Gaussian integrals do not exist; an unbounded q-map
    (``q* = inf``, phase ``"unbounded"``) is an answer, not a failure.
    """

    activation: str
    weight_var: np.ndarray
    bias_var: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray
    chi_1: np.ndarray
    chi_c: np.ndarray
    xi_1: np.ndarray
    xi_c: np.ndarray
    xi_star: np.ndarray
    p_star: np.ndarray
    phase: np.ndarray  # strings from PHASES
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def __getitem__(self, key):  # convenience: sp["q_star"]
        """``sp["q_star"]`` is ``sp.q_star``."""
        return getattr(self, key)

    def scalar(self) -> dict[str, Any]:
        """Values as Python scalars (only for scalar inputs)."""
        out = {}
        for name in ("weight_var", "bias_var", "q_star", "c_star", "chi_1", "chi_c", "xi_1", "xi_c",
                     "xi_star", "p_star"):
            out[name] = float(np.asarray(getattr(self, name)).item())
        out["phase"] = str(np.asarray(self.phase).item())
        return out

    def to_xarray(self) -> xr.Dataset:
        """Every quantity over dims ``i0, i1, ...`` (the broadcast input shape); activation and status as attributes."""
        shape = np.shape(self.q_star)
        dims = tuple(f"i{k}" for k in range(len(shape)))
        data = {n: (dims, np.broadcast_to(np.asarray(getattr(self, n), float), shape))
                for n in ("weight_var", "bias_var", "q_star", "c_star", "chi_1", "chi_c", "xi_1", "xi_c",
                          "xi_star", "p_star")}
        data["phase"] = (dims, np.asarray(self.phase, dtype=str))
        attrs = problem_attrs({"activation": self.activation},
                              theory="signal propagation (Poole et al. 2016; Schoenholz et al. 2017)",
                              status=str(self.status), message=self.message)
        return xr.Dataset(data, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "SignalPropagation":
        """The result stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        from ..results import problem_json

        names = ("weight_var", "bias_var", "q_star", "c_star", "chi_1", "chi_c", "xi_1", "xi_c", "xi_star", "p_star")
        return cls(str(problem_json(ds)["activation"]), *(ds[n].values for n in names),
                   ds["phase"].values.astype(str), Status.of(ds.attrs.get("status", "success")),
                   str(ds.attrs.get("message", "")))


class _Default(float):
    """A default value that can be told apart from the same number passed explicitly."""


_WEIGHT_VAR, _BIAS_VAR = _Default(1.0), _Default(0.0)


def signal_propagation(activation: Any = "erf", weight_var=_WEIGHT_VAR, bias_var=_BIAS_VAR, *, q0: float = 1.0,
                       critical_tol: float = 1e-9) -> SignalPropagation:
    r"""q*, c*, chi_1, chi_c*, xi_1, xi_c, xi_*, p* and the phase: fixed points of the q- and c-maps
    (Poole et al. 2016), their slopes and depth scales (Schoenholz et al. 2017), ``p*`` (Xiao et al. 2020, Sec. 2).

    ``activation``: a :class:`~learndyn.kernels.Problem` (its activation, ``weight_var`` and ``bias_var``), or
    an activation -- a name (``"erf"`` = erf(x), ``"relu"``, ``"tanh"``, ...), an
    :class:`~learndyn.activations.Activation` or a callable (quadrature) -- with ``weight_var`` (default 1) and
    ``bias_var`` (default 0), which may then be arrays (broadcast together): the solve is vectorised over them.
    ``q0``: the input variance, used as q* where the q-map is marginal (every q a fixed point).
    """
    activation, weight_var, bias_var = _signal_arguments(activation, weight_var, bias_var)
    act = _activation(activation)
    wv = _check_var("weight_var", weight_var, False)
    bv = _check_var("bias_var", bias_var, True)
    if not (np.isfinite(q0) and q0 > 0):
        raise InvalidInputError(f"q0: must be > 0 and finite, got {q0!r}")
    if not (critical_tol >= 0):
        raise InvalidInputError(f"critical_tol: must be >= 0, got {critical_tol!r}")
    wv, bv = np.broadcast_arrays(wv, bv)
    wv, bv = np.array(wv, float), np.array(bv, float)
    q = _solve_q(act, wv, bv, float(q0))
    finite = np.isfinite(q)
    qe = np.where(finite & (q > 0), q, np.where(finite, 0.0, float(q0)))
    # chi_1 at q* (or, where q diverges, at the input scale: exact for homogeneous activations)
    chi1 = wv * _Vdot(act, qe, 1.0)
    c = _solve_c(act, wv, bv, q, chi1)
    chic = np.where(c < 1.0, wv * _Vdot(act, qe, c), chi1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi1 = np.where(chi1 < 1.0, -1.0 / np.log(chi1), np.inf)
        xic = np.where(chic < 1.0, -1.0 / np.log(chic), np.inf)
        xis = np.where((chi1 > 1.0) & (c < 1.0), 1.0 / np.log(chi1 / chic), np.inf)
        pstar = np.where(chi1 < 1.0, q / (1.0 - chi1),
                         np.where(c < 1.0, q * c / (1.0 - chic), np.inf))
    phase = np.where(np.abs(chi1 - 1.0) <= critical_tol, "critical",
                     np.where(chi1 < 1.0, "ordered", "chaotic")).astype(object)
    phase = np.where(~finite, "unbounded", phase).astype(str)
    status, message = _finite_status(q_star=q, c_star=c, chi_1=chi1, chi_c=chic)
    return SignalPropagation(str(act), wv, bv, q, c, chi1, chic, xi1, xic, xis, pstar, phase, status, message)


def _signal_arguments(problem, weight_var, bias_var):
    """(activation, weight_var, bias_var) from a kernels.Problem or from the loose arguments."""
    from .problem import Problem

    if isinstance(problem, Problem):
        for name, value, default in (("weight_var", weight_var, _WEIGHT_VAR), ("bias_var", bias_var, _BIAS_VAR)):
            if value is not default:
                raise InvalidInputError(f"{name}: given twice (the Problem holds it); pass problem.replace({name}=...)"
                                        ", or the activation with arrays of variances")
        return problem.activation, problem.weight_var, problem.bias_var
    return problem, float(weight_var) if weight_var is _WEIGHT_VAR else weight_var, \
        float(bias_var) if bias_var is _BIAS_VAR else bias_var


def _finite_status(**arrays) -> tuple[Status, str]:
    """:attr:`Status.NONFINITE` and a message naming the first quantity with NaN entries (inf is an answer)."""
    for name, arr in arrays.items():
        bad = np.isnan(np.asarray(arr, float))
        if np.any(bad):
            return Status.NONFINITE, (f"{name}: NaN at {int(np.sum(bad))} of {bad.size} points (the Gaussian "
                                      "integrals of the activation could not be evaluated there)")
    return Status.SUCCESS, ""


def correlation_trajectory(activation, weight_var=_WEIGHT_VAR, bias_var=_BIAS_VAR, c0: float | None = None,
                           depth: int | None = None, q0: float | None = None):
    r"""Iterate the (q, c) maps ``depth`` times from ``(q0, c0)`` (q0 defaults to q*): returns the arrays
    ``q^l`` and ``c^l`` for l = 0..depth (the q- and c-maps of Schoenholz et al. 2017, Sec. 2; used for the
    |c^l - c*| ~ chi_c*^l check). ``c0`` (required) is a correlation, so it must lie in [-1, 1]; ``depth`` is
    required.  ``activation`` may be a :class:`~learndyn.kernels.Problem`, then with ``c0=``, ``depth=``."""
    activation, weight_var, bias_var = _signal_arguments(activation, weight_var, bias_var)
    for name, value in (("c0", c0), ("depth", depth)):
        if value is None:
            raise InvalidInputError(f"{name}: required")
    act = _activation(activation)
    if int(depth) != depth or depth < 0:
        raise InvalidInputError(f"depth: must be a non-negative integer, got {depth!r}")
    try:
        c0 = float(c0)
    except (TypeError, ValueError):
        raise InvalidInputError(f"c0: the initial correlation must be a number in [-1, 1], got {c0!r}") from None
    if not -1.0 <= c0 <= 1.0:
        raise InvalidInputError(f"c0: a correlation lies in [-1, 1] (Cauchy-Schwarz), got {c0!r}")
    if q0 is None:
        q0 = float(signal_propagation(act, weight_var, bias_var).q_star)
    elif not (np.isfinite(float(q0)) and float(q0) > 0):
        raise InvalidInputError(f"q0: the initial variance must be finite and > 0, got {q0!r}")
    qs, cs = [float(q0)], [float(c0)]
    q, c = float(q0), float(c0)
    for _ in range(int(depth)):
        qn = float(weight_var * _V(act, q, 1.0) + bias_var)
        cn = float((weight_var * _V(act, q, c) + bias_var) / qn)
        q, c = qn, cn
        qs.append(q)
        cs.append(c)
    return np.asarray(qs), np.asarray(cs)


@dataclass(frozen=True)
class CriticalLine(Result):
    r"""The critical line ``chi_1(sigma_w^2, sigma_b^2) = 1`` (Schoenholz et al. 2017; Xiao et al. 2020, Sec. 2):
    ``weight_var`` against ``bias_var`` with q* along it (``inf`` where the q-map has no finite fixed point on
    the line, e.g. ReLU with ``sigma_b^2 > 0``).  ``status`` is :attr:`~learndyn.Status.NONFINITE` (with a
    ``message``) where the bisection gave NaN."""

    activation: str
    bias_var: np.ndarray
    weight_var: np.ndarray
    q_star: np.ndarray
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def to_xarray(self) -> xr.Dataset:
        """``weight_var`` and ``q_star`` over the ``bias_var`` coordinate; activation and status as attributes."""
        return xr.Dataset({"weight_var": ("bias_var", self.weight_var), "q_star": ("bias_var", self.q_star)},
                          coords={"bias_var": self.bias_var},
                          attrs=problem_attrs({"activation": self.activation}, theory="critical line chi_1 = 1",
                                              status=str(self.status), message=self.message))

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "CriticalLine":
        """The line stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        from ..results import problem_json

        return cls(str(problem_json(ds)["activation"]), ds["bias_var"].values, ds["weight_var"].values,
                   ds["q_star"].values, Status.of(ds.attrs.get("status", "success")), str(ds.attrs.get("message", "")))


def critical_line(activation: Any = "erf", bias_var=(0.0, 0.05, 0.1, 0.18, 0.25, 0.5), *,
                  weight_var_max: float = 20.0) -> CriticalLine:
    r"""``sigma_w^2(sigma_b^2)`` solving ``chi_1 = 1`` (Schoenholz et al. 2017), by vectorised bisection over
    ``bias_var``.

    For erf the result is the closed form ``sigma_w^2 = (pi/4) sqrt(1 + 4q*)``,
    ``sigma_b^2 = q* - sigma_w^2 (2/pi) arcsin(2q*/(1+2q*))``; a test checks it.
    Assumes chi_1 increases with sigma_w^2 (true for erf, tanh, ReLU).  ``activation``: as for
    :func:`signal_propagation`, or a :class:`~learndyn.kernels.Problem` (its activation).
    """
    from .problem import Problem

    act = _activation(activation.activation if isinstance(activation, Problem) else activation)
    bv = np.atleast_1d(_check_var("bias_var", bias_var, True)).astype(float)
    if not (weight_var_max > 0):
        raise InvalidInputError(f"weight_var_max: must be > 0, got {weight_var_max!r}")

    def chi1_minus_1(wv):
        q = _solve_q(act, wv, bv, 1.0)
        finite = np.isfinite(q)
        qe = np.where(finite & (q > 0), q, np.where(finite, 0.0, 1.0))
        return 1.0 - wv * _Vdot(act, qe, 1.0)  # >= 0 below the line

    # bracket: the first point of a coarse grid where chi_1 >= 1 (quadrature loses accuracy at very
    # large q*, so the search never goes past the first crossing)
    grid = np.geomspace(1e-3, float(weight_var_max), 48)
    vals = np.stack([chi1_minus_1(np.full(bv.shape, g)) for g in grid])  # (G, nb)
    above = vals < 0
    if not np.all(np.any(above, axis=0)):
        raise InvalidInputError(f"weight_var_max: chi_1 < 1 up to weight_var={weight_var_max}; raise it")
    first = np.argmax(above, axis=0)
    hi = grid[first]
    lo = np.where(first > 0, grid[np.maximum(first - 1, 0)], 1e-9)
    # 60 halvings of a bracket narrower than sigma_w^2: ~1e-16 relative
    wv = _bisect(chi1_minus_1, lo, hi, steps=60)
    q = signal_propagation(act, wv, bv, critical_tol=0.0).q_star
    status, message = _finite_status(weight_var=wv)
    return CriticalLine(str(act), bv, wv, np.asarray(q), status, message)
