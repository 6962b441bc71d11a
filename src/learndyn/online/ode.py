r"""Closed ODEs for the order parameters of online SGD (Goldt et al. 2019, eqs. (6)-(8); Saad & Solla 1995).

With fields ``z = (lambda_1..K, rho_1..M)`` of covariance ``C = [[Q, R], [R^T, T]]`` and the signed
second-layer vector ``u = (-v_1..-v_K, +v*_1..+v*_M)``:

.. math::

    F_{ib} &= \sum_c u_c I_3(i, b, c), \qquad G_{ik} = v_i F_{ik}, \qquad
    E_{ik} = \sum_{c,d} u_c u_d I_4(i, k, c, d) \\
    dR/d\alpha &= \eta\, v \odot F_{:, K:} - \kappa R \\
    dQ/d\alpha &= \eta (G + G^T) + \eta^2 (v v^T) \odot (E + \sigma^2 J_2) - 2\kappa Q \\
    dv/d\alpha &= \eta_2\, I_2[:K, :]\, u - \kappa v \quad\text{(second layer trained)}

and the generalisation error (Goldt et al. 2019, eq. (4)) is ``eps_g = u^T I_2 u / 2``.
The Gaussian averages ``I2, I3, I4, J2`` come from :mod:`learndyn.gaussian` (closed forms for erf,
ReLU, linear; Gauss-Hermite quadrature for any other activation).

Integration uses adaptive Runge-Kutta schemes compiled as one XLA loop (:mod:`learndyn.online.rk`:
Dormand-Prince 8(5,3) by default, SciPy's DOP853 tableau and step-size rule) with explicit
``rtol``/``atol``, landing exactly on the requested ``alpha``; ``method="euler"`` with ``dt``
reproduces the fixed-step Euler scheme of the paper's reference C++ code (Goldt et al. 2019).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .. import gaussian
from tqdm.auto import tqdm

from ..resources import check_memory
from ..results import InvalidInputError, Result, Status, problem_attrs, rebuild_problem
from . import rk
from ._util import check_problem, positive_int, positive_number, save_times
from .problem import OrderParameters, Problem

__all__ = ["integrate", "Trajectory", "generalisation_error", "generalisation_error_arrays", "rhs", "default_alphas",
           "default_method", "integrate_bytes", "static_key", "vector_field", "i4_tuples", "STATUS", "PSD_RTOL"]

#: what each :class:`learndyn.Status` of a :class:`Trajectory` means for the ODEs (keys: the status names)
STATUS = {
    "success": "integrated to the last requested alpha",
    "diverged": "order parameters exceeded the divergence threshold (learning rate above the stability limit?)",
    "nonfinite": "the integration produced NaN or inf",
    "max_steps": "the adaptive solver hit max_steps before the last requested alpha",
    "step_too_small": "the adaptive step size fell below 1e-14 alpha (singular or very stiff right-hand side)",
    "not_psd": "the overlap matrix [[Q, R], [R^T, T]] stopped being positive semi-definite (no weights have these "
               "overlaps: a fixed step dt too large?)",
    "interrupted": "interrupted by the user (KeyboardInterrupt)",
}

#: relative tolerance of the positive semi-definiteness check: a state is invalid once the smallest eigenvalue of
#: ``[[Q, R], [R^T, T]]`` is below ``-PSD_RTOL max_i C_ii``. An exactly singular C (copies of units, a student unit
#: equal to a teacher unit) is valid, and errors of the right-hand side push such a state slightly outside: for
#: tanh at student = teacher the Gauss-Hermite error of the RHS is 1e-4 (default order), 4e-5 (order 16), 4e-6
#: (order 24) (measured, K = M = 2), which crossed -1e-6 in the first step; 1e-3 leaves room for that while a
#: blown-up fixed step (eigenvalues of -1e6) is caught at once.
PSD_RTOL = 1e-3


# ------------------------------------------------------------------------------------------
# right-hand side
# ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _index_tables(K: int, M: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Field-index tuples of the sub-covariances needed by the ODE (static numpy arrays).

    ``I4(i, k, c, d)`` is symmetric under ``i <-> k`` and ``c <-> d``, so only the tuples with ``i <= k``
    and ``c <= d`` are evaluated (``idx4``, ordered student pair major; see :func:`_e_tables`).
    """
    n = K + M
    i, b, c = np.meshgrid(np.arange(K), np.arange(n), np.arange(n), indexing="ij")
    idx3 = np.stack([i, b, c], axis=-1)  # (K, n, n, 3): I3(i, b, c)
    pairs_s = [(i, k) for i in range(K) for k in range(i, K)]
    pairs_f = [(c, d) for c in range(n) for d in range(c, n)]
    idx4 = np.array([[i, k, c, d] for (i, k) in pairs_s for (c, d) in pairs_f])  # (P, 4)
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    idx2 = np.stack([a, b], axis=-1)  # (n, n, 2): I2(a, b)
    i, k = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
    idxj = np.stack([i, k], axis=-1)  # (K, K, 2): J2(i, k)
    return idx2, idx3, idx4, idxj


@functools.lru_cache(maxsize=None)
def _i4_groups(K: int, M: int) -> tuple[tuple[tuple[str, ...], np.ndarray, np.ndarray], ...]:
    """The evaluated ``I4`` tuples grouped by their pattern of repeated fields.

    In ``I4(i, k, c, d) = E[g'(z_i) g'(z_k) g(z_c) g(z_d)]`` an index that appears twice is the same
    field, so the expectation is really over the *distinct* fields, each carrying the product of its
    factors (``"d"`` for ``g'``, ``"g"`` for ``g``): e.g. ``I4(i, i, i, j) = E[(g'^2 g)(z_i) g(z_j)]`` is
    two-dimensional. Returns ``(codes, rows, fields)`` per pattern: ``codes`` one string per distinct
    field, ``rows`` the positions in ``idx4``, ``fields`` the field indices ``(len(rows), len(codes))``.
    """
    idx4 = _index_tables(K, M)[2]
    groups: dict[tuple[str, ...], tuple[list[int], list[list[int]]]] = {}
    for row, tup in enumerate(idx4):
        fields: list[int] = []
        codes: list[str] = []
        for pos, f in enumerate(tup):
            code = "d" if pos < 2 else "g"
            if f in fields:
                codes[fields.index(f)] += code
            else:
                fields.append(int(f))
                codes.append(code)
        key = tuple("".join(sorted(c)) for c in codes)
        rows, flds = groups.setdefault(key, ([], []))
        rows.append(row)
        flds.append(fields)
    return tuple((key, np.array(rows), np.array(flds)) for key, (rows, flds) in sorted(groups.items()))


@functools.lru_cache(maxsize=None)
def _e_tables(K: int, M: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contraction of the evaluated ``I4`` tuples into ``E_ik = sum_cd u_c u_d I4(i, k, c, d)``.

    The tuples of :func:`_index_tables` are ordered (student pair s = (i <= k)) x (field pair f = (c <= d)),
    so ``E[s] = sum_f w_f I4[s, f]`` with ``w_f = u_c u_d`` times 2 when ``c != d`` (both orders), then
    ``E_ik = E[s(min(i,k), max(i,k))]``. Returns ``(c, d, mult, sym)``: the field pairs, their
    multiplicities and the (K, K) map to ``s``.
    """
    n = K + M
    pairs_f = np.array([(c, d) for c in range(n) for d in range(c, n)])
    mult = np.where(pairs_f[:, 0] == pairs_f[:, 1], 1.0, 2.0)
    pos_s = {p: j for j, p in enumerate((i, k) for i in range(K) for k in range(i, K))}
    sym = np.array([[pos_s[(min(i, k), max(i, k))] for k in range(K)] for i in range(K)])
    return pairs_f[:, 0], pairs_f[:, 1], mult, sym


def _contract_e(I4: jax.Array, u: jax.Array, K: int, M: int) -> jax.Array:
    """``E_ik = sum_cd u_c u_d I4(i, k, c, d)`` from the evaluated tuples (see :func:`_e_tables`)."""
    c, d, mult, sym = _e_tables(K, M)
    w = u[c] * u[d] * mult
    return (I4.reshape(-1, c.size) @ w)[sym]


def _i4_by_distinct_fields(problem: Problem, C: jax.Array) -> jax.Array:
    """``I4`` on the evaluated tuples for activations without closed forms valid on every tuple.

    Each tuple is integrated over its distinct fields only (:func:`_i4_groups`), each carrying the product
    of its factors: :meth:`learndyn.activations.Activation.product_moment`. By quadrature with the same point
    budget per tuple, ``order**(4/m)`` nodes per dimension for ``m`` distinct fields (capped at 200),
    ``order = problem.quadrature_order`` or :data:`learndyn.gaussian.I4_ORDER`; collapsing repeated fields is
    exact and makes the many degenerate tuples of the ODE (same unit twice) far more accurate than a 4-D
    rule on a singular covariance. ReLU answers with Tallis' closed forms where fields repeat and the exact
    1-D integral :func:`learndyn.gaussian.relu_i4` on four distinct fields (36 of 210 tuples for K=4, M=2).
    Tuples over exact copies of a field (equal rows of ``C``) take the value of the tuple over the first
    copies (:func:`_same_field_rows`), so copies of units stay exact copies.
    """
    g = problem.g
    order = problem.quadrature_order or gaussian.I4_ORDER
    K, M = problem.K, problem.M
    out = jnp.zeros(len(_index_tables(K, M)[2]))
    for codes, rows, fields in _i4_groups(K, M):
        m = len(codes)
        vals = g.product_moment(codes, _sub(C, fields), order=gaussian.product_order(m, order))
        out = out.at[rows].set(vals)
    return out[_same_field_rows(C, K, M)]


def _same_field_rows(C: jax.Array, K: int, M: int) -> jax.Array:
    """For each evaluated ``I4`` tuple, the row of the tuple with every field replaced by its first exact copy.

    Fields ``a`` and ``b`` are the same random variable when rows ``a`` and ``b`` of ``C`` are equal
    (``Var(z_a - z_b) = C_aa - 2 C_ab + C_bb = 0``), e.g. two student units with equal weights. Reading
    ``I4(0, 1, c, d)`` from ``I4(0, 0, c, d)`` when unit 1 is a copy of unit 0 makes the right-hand side
    map a state with copies of units to one with copies (exactly, as SGD does), and every such tuple gets
    the value integrated over its distinct fields. Without it, for ReLU the 1-D integral of
    :func:`learndyn.gaussian.relu_i4` on four fields of which two are copies differs from the closed form
    of the three distinct fields by ~5e-14, which put copies 1 ulp apart, where ReLU's averages have
    square-root branch points; the adaptive step then collapsed (or not, depending on the rounding of
    the XLA version); quadrature activations integrated such tuples with a 4-D rule on a singular
    covariance. Exact copies only (equal rows); the evaluated tuples are ordered as in
    :func:`_index_tables` (``i <= k`` students, ``c <= d`` fields).
    """
    n = K + M
    same = jnp.all(C[:, None, :] == C[None, :, :], axis=-1)  # (n, n): identical fields
    first = jnp.argmax(same, axis=1)  # first copy of each field (itself if none before it)
    t = first[_index_tables(K, M)[2]]  # (P, 4) tuples over first copies
    i, k = jnp.minimum(t[:, 0], t[:, 1]), jnp.maximum(t[:, 0], t[:, 1])
    c, d = jnp.minimum(t[:, 2], t[:, 3]), jnp.maximum(t[:, 2], t[:, 3])
    pair_s = i * K - i * (i - 1) // 2 + (k - i)  # position of (i <= k) among the student pairs
    pair_f = c * n - c * (c - 1) // 2 + (d - c)  # position of (c <= d) among the field pairs
    return pair_s * (n * (n + 1) // 2) + pair_f


def _sub(C: jax.Array, idx: np.ndarray) -> jax.Array:
    """Sub-covariances ``C[idx, idx]`` for every index tuple of ``idx`` (shape (..., p) -> (..., p, p))."""
    return C[idx[..., :, None], idx[..., None, :]]


def _covariance(Q, R, T):
    return jnp.block([[Q, R], [R.T, T]])


def _order(problem: Problem) -> dict:
    """Gauss-Hermite order of the 2-D integrals (I2, J2, I3) for :mod:`learndyn.gaussian`.

    ``problem.quadrature_order`` is the per-dimension order of the 4-D rule; the 2-D integrals get the
    same point budget, ``product_order(2, order)`` nodes per dimension. Empty: the module defaults.
    """
    if problem.quadrature_order is None:
        return {}
    return {"order": gaussian.product_order(2, problem.quadrature_order)}


def _i4_evaluated(problem: Problem, C: jax.Array, idx4: np.ndarray) -> jax.Array:
    """``I4`` on the evaluated tuples ``idx4`` of :func:`_index_tables` (the ones :func:`rhs` uses)."""
    if problem.g.exact_integrals:  # closed forms valid on every tuple, singular ones included
        return gaussian.i4(problem.g, _sub(C, idx4))
    return _i4_by_distinct_fields(problem, C)  # over the distinct fields of each tuple (ReLU: closed forms / 1-D)


def i4_tuples(problem: Problem, Q, R, T) -> tuple[np.ndarray, np.ndarray]:
    """The four-field averages ``I4(i, k, c, d) = E[g'(z_i) g'(z_k) g(z_c) g(z_d)]`` of the ``dQ`` equation
    (Goldt et al. 2019, eqs. (6)-(8)) exactly as :func:`rhs` evaluates them at the overlaps ``Q``, ``R``, ``T``.

    Returns ``(tuples, values)``: ``tuples`` the field indices ``(P, 4)`` (students ``i <= k``, fields
    ``c <= d`` of ``z = (lambda_1..lambda_K, rho_1..rho_M)``; the others follow by symmetry), ``values`` the
    ``P`` averages. Activations with closed forms valid on every tuple use them
    (:func:`learndyn.gaussian.i4`); the others integrate each tuple over its distinct fields only (ReLU:
    Tallis' closed forms where fields repeat), and tuples over exact copies of a field take the value of the
    tuple over the first copies, so copies of units stay exact copies.
    """
    check_problem(problem)
    K, M = problem.K, problem.M
    idx4 = _index_tables(K, M)[2]
    Q, R, T = (jnp.asarray(a, dtype=jnp.float64) for a in (Q, R, T))
    if (Q.shape, R.shape, T.shape) != ((K, K), (K, M), (M, M)):
        raise InvalidInputError(f"i4_tuples: Q, R, T must have shapes ({K}, {K}), ({K}, {M}), ({M}, {M}) for the "
                                f"problem's K={K}, M={M}; got {Q.shape}, {R.shape}, {T.shape}")
    C = _covariance(Q, R, T)
    return idx4.copy(), np.asarray(_i4_evaluated(problem, C, idx4))


def generalisation_error_arrays(problem: Problem, Q, R, T, v, v_teacher):
    """``eps_g = (v, -v*)^T I2(C) (v, -v*) / 2`` (Goldt et al. 2019, eq. (4)) from arrays (JAX).

    A mean square, so clamped at 0: where the student reproduces the teacher exactly, ``C`` is singular and
    the arcsin of correlations at 1 leaves rounding of order 1e-11 of either sign.
    """
    K, M = problem.K, problem.M
    idx2 = _index_tables(K, M)[0]
    C = _covariance(Q, R, T)
    I2 = gaussian.i2(problem.g, _sub(C, idx2), **_order(problem))
    u = jnp.concatenate([v, -v_teacher])
    return jnp.maximum(0.5 * u @ I2 @ u, 0.0)


def rhs(problem: Problem, Q, R, v, T, v_teacher, lr=None, lr2=None, sigma=None, weight_decay=None):
    """Time derivatives ``(dQ, dR, dv)`` of the order-parameter ODEs (Goldt et al. 2019, eqs. (6)-(8)) at one
    state (JAX arrays, jit-compatible).

    The learning rates, noise and weight decay default to the problem's values and may be passed
    as (traced) arrays to reuse one compiled function across problems.
    """
    K, M = problem.K, problem.M
    g, order = problem.g, _order(problem)
    lr = problem.lr if lr is None else lr
    lr2 = problem.eta2 if lr2 is None else lr2
    sigma = problem.sigma if sigma is None else sigma
    kappa = problem.weight_decay if weight_decay is None else weight_decay
    idx2, idx3, idx4, idxj = _index_tables(K, M)

    C = _covariance(Q, R, T)
    u = jnp.concatenate([-v, v_teacher])
    I3 = gaussian.i3(g, _sub(C, idx3), **order)  # (K, n, n)
    F = jnp.einsum("ibc,c->ib", I3, u)
    G = v[:, None] * F[:, :K]
    I4 = _i4_evaluated(problem, C, idx4)  # evaluated tuples (i <= k, c <= d)
    E = _contract_e(I4, u, K, M)
    J2 = gaussian.j2(g, _sub(C, idxj), **order)  # (K, K)

    dR = lr * v[:, None] * F[:, K:] - kappa * R
    dQ = lr * (G + G.T) + lr**2 * jnp.outer(v, v) * (E + sigma**2 * J2) - 2.0 * kappa * Q
    if problem.train_second_layer:
        I2 = gaussian.i2(g, _sub(C, idx2[:K]), **order)  # (K, n)
        dv = lr2 * (I2 @ u) - kappa * v
    else:
        dv = jnp.zeros_like(v)
    return dQ, dR, dv


# ------------------------------------------------------------------------------------------
# result
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Trajectory(Result):
    """Solution of the order-parameter ODEs (Goldt et al. 2019, eqs. (6)-(8)) at the requested times.

    Attributes: ``alpha`` (n_t,), ``eg`` (n_t,), ``Q`` (n_t, K, K), ``R`` (n_t, K, M), ``v`` (n_t, K),
    ``T``, ``v_teacher``, ``status`` (a :class:`learndyn.Status`; :data:`STATUS` says what each means here),
    ``message``, ``alpha_reached``,
    ``n_steps`` (accepted solver steps). When ``status != "success"`` the arrays hold the part computed
    before the failure (up to ``alpha_reached``).
    """

    problem: Problem
    alpha: np.ndarray
    eg: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    T: np.ndarray
    v_teacher: np.ndarray
    status: Status = Status.SUCCESS
    message: str = ""
    alpha_reached: float = float("nan")
    n_steps: int = 0
    solver: str = ""
    rtol: float = float("nan")
    atol: float = float("nan")

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.of(self.status))

    @property
    def final_state(self) -> OrderParameters:
        """The last computed state as :class:`OrderParameters`."""
        return self.state(-1)

    def state(self, index: int) -> OrderParameters:
        """The state saved at position ``index`` of ``alpha`` as :class:`OrderParameters`."""
        Q = self.Q[index]
        return OrderParameters(Q=0.5 * (Q + Q.T), R=self.R[index], T=self.T, v=self.v[index],
                               v_teacher=self.v_teacher, psd_rtol=PSD_RTOL)

    def to_xarray(self) -> xr.Dataset:
        """The trajectory as a Dataset over ``alpha`` (and the unit indices ``k``, ``l``, ``n``, ``m``)."""
        K, M = self.problem.K, self.problem.M
        ds = xr.Dataset(
            {
                "eg": (("alpha",), self.eg, {"long_name": "generalisation error", "definition":
                                            "E[(phi - y_noiseless)^2]/2"}),
                "Q": (("alpha", "k", "l"), self.Q, {"long_name": "student-student overlap w_k.w_l/N"}),
                "R": (("alpha", "k", "n"), self.R, {"long_name": "student-teacher overlap w_k.w*_n/N"}),
                "v": (("alpha", "k"), self.v, {"long_name": "student second-layer weights"}),
                "T": (("n", "m"), self.T, {"long_name": "teacher-teacher overlap"}),
                "v_teacher": (("n",), self.v_teacher, {"long_name": "teacher second-layer weights"}),
            },
            coords={"alpha": self.alpha, "k": np.arange(K), "l": np.arange(K), "n": np.arange(M),
                    "m": np.arange(M)},
            attrs=problem_attrs(self.problem, kind="online.ode", status=self.status.value, message=self.message,
                                alpha_reached=float(self.alpha_reached), n_steps=int(self.n_steps),
                                solver=self.solver, rtol=float(self.rtol), atol=float(self.atol)),
        )
        ds["alpha"].attrs["long_name"] = "time alpha = steps / N"
        return ds

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Trajectory":
        """The trajectory stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        a = ds.attrs
        return cls(problem=rebuild_problem(ds, Problem), alpha=ds["alpha"].values, eg=ds["eg"].values,
                   Q=ds["Q"].values, R=ds["R"].values, v=ds["v"].values, T=ds["T"].values,
                   v_teacher=ds["v_teacher"].values, status=Status.of(str(a.get("status", "success"))),
                   message=str(a.get("message", "")), alpha_reached=float(a.get("alpha_reached", np.nan)),
                   n_steps=int(a.get("n_steps", 0)), solver=str(a.get("solver", "")),
                   rtol=float(a.get("rtol", np.nan)), atol=float(a.get("atol", np.nan)))


# ------------------------------------------------------------------------------------------
# integrate
# ------------------------------------------------------------------------------------------
def default_alphas(alpha_max: float = 1000.0, n: int = 200, alpha_min: float = 0.1) -> np.ndarray:
    """The default save grid: ``0`` followed by ``n`` log-spaced times ``alpha`` from ``alpha_min`` to ``alpha_max``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"n: the number of output times must be an integer >= 1, got {n!r}")
    if not (np.isfinite(alpha_min) and alpha_min > 0):
        raise InvalidInputError(f"alpha_min: must be a finite time > 0, got {alpha_min!r}")
    if not (np.isfinite(alpha_max) and alpha_max > alpha_min or (n == 1 and alpha_max == alpha_min)):
        raise InvalidInputError(f"alpha_max: must be a finite time > alpha_min = {alpha_min:g}, got {alpha_max!r}")
    return np.concatenate([[0.0], np.logspace(np.log10(alpha_min), np.log10(alpha_max), n)])


_SOLVERS = tuple(rk.TABLEAUX)


def default_method(problem: Problem) -> str:
    """``"dopri8"``, except ``"dopri5"`` for ReLU: ReLU's Gaussian averages have square-root branch points
    at collinear fields (a student unit equal to a teacher unit: the specialised fixed point), so the
    right-hand side is not smooth near convergence and the 8th-order scheme needs ~3x more steps than the
    5th-order one there (measured: K=4, M=2, alpha in [0, 1000], rtol 1e-8: 2985 vs 886 steps)."""
    return problem.g.ode_method


def _validate_alphas(alphas, name: str = "alphas") -> np.ndarray:
    try:
        alphas = np.asarray(alphas, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a 1-D array of times") from None
    if alphas.size == 0:
        raise InvalidInputError(f"{name}: must contain at least one time")
    if not np.all(np.isfinite(alphas)) or alphas[0] < 0:
        raise InvalidInputError(f"{name}: times must be finite and >= 0")
    if np.any(np.diff(alphas) <= 0):
        raise InvalidInputError(f"{name}: times must be strictly increasing")
    return alphas


#: measured peak memory per evaluated I4 tuple of the compiled right-hand side (erf, bytes), and the
#: fixed cost of compiling the solver; see :func:`integrate_bytes`
_BYTES_PER_I4_TUPLE = 480
_SOLVER_OVERHEAD = 48 * 2**20


def integrate_bytes(problem: Problem, n_times: int, method: str = "dopri8") -> int:
    """Estimated peak memory (bytes) of :func:`integrate`, from the sizes alone.

    The right-hand side evaluates ``I4`` on every tuple ``i <= k`` (students), ``c <= d`` (all ``n = K + M``
    fields): ``K(K+1)/2 * n(n+1)/2`` tuples, i.e. ``~K^2 n^2 / 4``, each with its 4x4 covariance and the
    closed form's temporaries, plus the tuple index table: measured 420-480 bytes per tuple (erf,
    K = 20-45, M = 2: peak resident memory +75, +165, +555 MB; estimates 76, 168, 611 MB) above a
    ~48 MiB compilation cost. Activations without closed forms integrate each
    tuple on a Gauss-Hermite grid of ``order**4`` points (``order = problem.quadrature_order`` or
    :data:`learndyn.gaussian.I4_ORDER`), about two arrays of it at once (measured: tanh, K=6, M=2: 230 MB,
    estimate 301 MB). The states (``K^2 + K M + K``) are
    kept at every output time and in every Runge-Kutta stage.
    """
    K, M = problem.K, problem.M
    n = K + M
    tuples = K * (K + 1) // 2 * (n * (n + 1) // 2)
    per_tuple = _BYTES_PER_I4_TUPLE
    if not problem.g.has_closed_form:
        order = problem.quadrature_order or gaussian.I4_ORDER
        per_tuple += 2 * 8 * order**4
    size = K * K + K * M + K
    stages = 16 if method == "dopri8" else 8
    return int(_SOLVER_OVERHEAD + tuples * per_tuple + 8 * size * (3 * n_times + stages))


def static_key(problem: Problem) -> Problem:
    """The part of a problem that shapes the compiled programs of the ODE (the rates, noise and weight decay
    are traced arguments): ``problem`` with ``lr = 1``, ``lr2 = None``, ``sigma = 0``, ``weight_decay = 0``.
    Problems with the same key share one compiled right-hand side."""
    return problem.replace(lr=1.0, lr2=None, sigma=0.0, weight_decay=0.0)


@functools.lru_cache(maxsize=64)
def _vector_field(key: Problem):
    """The flat right-hand side ``f(alpha, y, args)`` of one problem shape (cached: one compiled program)."""
    K, M = key.K, key.M

    def f(t, y, args):
        Q, R, v = _unflatten(y, K, M)
        T, vt, lr, lr2, sigma, kappa = args
        dQ, dR, dv = rhs(key, Q, R, v, T, vt, lr=lr, lr2=lr2, sigma=sigma, weight_decay=kappa)
        return jnp.concatenate([dQ.ravel(), dR.ravel(), dv])

    return f


def vector_field(problem: Problem, state: OrderParameters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dQ/dalpha, dR/dalpha, dv/dalpha)`` of the order-parameter ODEs (Goldt et al. 2019, eqs. (6)-(8)) at
    ``state``, evaluated by the compiled right-hand side that :func:`integrate` steps (one per
    :func:`static_key`, the rates, noise and weight decay of ``problem`` passed to it), as NumPy arrays.

    Equal to :func:`rhs` (the same equations, eager and jit-compatible) up to rounding; ``dv`` is zero when
    only the first layer is trained.
    """
    check_problem(problem)
    if not isinstance(state, OrderParameters):
        raise InvalidInputError(f"vector_field: state must be an online.OrderParameters, got {type(state).__name__}")
    K, M = problem.K, problem.M
    if state.K != K or state.M != M:
        raise InvalidInputError(f"vector_field: state has K={state.K}, M={state.M} but the problem has K={K}, "
                                f"M={M}; pass a state of the problem's sizes")
    y = np.concatenate([np.asarray(state.Q).ravel(), np.asarray(state.R).ravel(), np.asarray(state.v)])
    args = (jnp.asarray(state.T), jnp.asarray(state.v_teacher), jnp.float64(problem.lr), jnp.float64(problem.eta2),
            jnp.float64(problem.sigma), jnp.float64(problem.weight_decay))
    dy = np.asarray(_vector_field(static_key(problem))(0.0, jnp.asarray(y), args))
    return dy[: K * K].reshape(K, K), dy[K * K: K * K + K * M].reshape(K, M), dy[K * K + K * M:]


@functools.lru_cache(maxsize=64)
def _divergence_test(K: int, M: int):
    """The state check of the solver (:func:`learndyn.online.rk.solve` status codes) on the flat state:
    1 (``"diverged"``) once any ``|Q_kl|``, ``|R_kn|``, ``|v_k|`` exceeds the threshold, 5 (``"not_psd"``)
    once ``C = [[Q, R], [R^T, T]]`` has an eigenvalue below ``-PSD_RTOL max_i C_ii``, else 0.
    ``bounds = (threshold, T)``."""

    def check(y, bounds):
        threshold, T = bounds
        Q, R, _ = _unflatten(y, K, M)
        C = _covariance(0.5 * (Q + Q.T), R, T)
        scale = jnp.max(jnp.abs(jnp.diagonal(C)))
        not_psd = jnp.min(jnp.linalg.eigvalsh(C)) < -PSD_RTOL * scale
        return jnp.where(jnp.max(jnp.abs(y)) > threshold, 1, jnp.where(not_psd, 5, 0))

    return check


@functools.lru_cache(maxsize=64)
def _eg_along(key: Problem):
    """``eps_g`` of every saved state (one compiled vmap)."""
    K, M = key.K, key.M

    @jax.jit
    def eg(ys, T, vt):
        def one(y):
            Q, R, v = _unflatten(y, K, M)
            return generalisation_error_arrays(key, 0.5 * (Q + Q.T), R, T, v, vt)

        return jax.vmap(one)(ys)

    return eg


def _unflatten(y, K: int, M: int):
    """``(Q, R, v)`` from flat states ``y`` of shape ``(..., K*K + K*M + K)`` (one state or a time series)."""
    lead = y.shape[:-1]
    return (y[..., : K * K].reshape(lead + (K, K)), y[..., K * K: K * K + K * M].reshape(lead + (K, M)),
            y[..., K * K + K * M:])


#: the tqdm bar of the running integration (the compiled program calls :func:`_progress`)
_BAR: list = [None]


def _progress(alpha):
    bar = _BAR[0]
    if bar is not None:
        if bar.n == 0:  # first tick: the clock starts after compilation, or the ETA includes it
            bar.reset(total=bar.total)
        bar.set_description_str(f"ode alpha={float(alpha):.3g}/{bar.alpha_max:.3g}", refresh=False)
        bar.update(_log_fraction(float(alpha), bar.alpha_max) - bar.n)


def _log_fraction(alpha: float, alpha_max: float) -> float:
    """Progress in percent of ``log(1 + alpha)``: adaptive steps grow roughly like alpha as the dynamics
    relax, so the cost per unit log-time is about even and the bar's rate (and ETA) means something from
    the first tick (a linear-in-alpha bar showed ETAs of hours for a job of minutes)."""
    return 100.0 * min(1.0, np.log1p(max(alpha, 0.0)) / np.log1p(alpha_max)) if alpha_max > 0 else 100.0


def integrate(
    problem: Problem,
    init: OrderParameters,
    alphas: Sequence[float] | np.ndarray | None = None,
    *,
    times: Sequence[float] | np.ndarray | None = None,
    alpha_max: float | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    method: str | None = None,
    dt: float | None = None,
    max_steps: int = 1_000_000,
    divergence_threshold: float = 1e6,
    progress: bool = False,
) -> Trajectory:
    """Integrate the order-parameter ODEs (Goldt et al. 2019, eqs. (6)-(8)) from ``init``; return a :class:`Trajectory`.

    Parameters
    ----------
    problem, init:
        The :class:`Problem` and the initial :class:`OrderParameters` (``T`` and ``v_teacher`` are
        constants of motion; ``v`` stays fixed unless ``problem.train_second_layer``).
    times, alphas:
        Times ``alpha`` at which to save the state (dense output); ``alphas`` is the former name of ``times``
        (give one of them); default ``default_alphas(alpha_max or 1000)``. If the first time is > 0 the
        integration still starts at ``alpha = 0``.
    rtol, atol:
        Tolerances of the adaptive step-size controller.
    method:
        ``"dopri8"`` (Dormand-Prince 8(5,3) = SciPy's DOP853), ``"dopri5"`` (Dormand-Prince 5(4) =
        SciPy's RK45), or the fixed-step ``"euler"``/``"heun"`` (then ``dt`` is required;
        ``"euler"`` with ``dt=0.01`` is the reference code's scheme). See :mod:`learndyn.online.rk`.
        Default (``None``): :func:`default_method` — ``"dopri8"``, but ``"dopri5"`` for ReLU.
    max_steps:
        Stop with ``status="max_steps"`` after this many solver steps (accepted or rejected; >= 1).
    divergence_threshold:
        Stop with ``status="diverged"`` once any ``|Q_kl|``, ``|R_kn|`` or ``|v_k|`` exceeds it (> 0; ``inf``
        turns the test off). Every method also stops with ``status="not_psd"`` once ``[[Q, R], [R^T, T]]``
        is no longer positive semi-definite (relative tolerance :data:`PSD_RTOL`), and with
        ``"nonfinite"`` on NaN/inf; the states before the stop are kept. Ctrl-C stops the integration
        within about a second with ``status="interrupted"``, keeping the states computed so far.
    progress:
        Show a tqdm progress bar over ``alpha``.

    Accuracy: erf, ReLU and linear use closed forms (exact to rounding; the student = teacher state stays
    at ``eps_g = 0``). Other activations use Gauss-Hermite quadrature, whose error enters the right-hand
    side: for tanh at student = teacher (where the exact RHS is 0), max |RHS| = 1.1e-4 at the default
    ``quadrature_order`` (12), 3.8e-5 at 16, 3.6e-6 at 24 (measured, K = M = 2, lr 0.5), so ``eps_g``
    drifts to ~3e-5 by alpha = 1 and the state leaves the positive semi-definite cone (status
    ``"not_psd"``) within a few alpha; raise ``quadrature_order`` near such singular states.
    """
    check_problem(problem)
    if not isinstance(init, OrderParameters):
        raise InvalidInputError(f"init: expected learndyn.online.OrderParameters, got {type(init).__name__}")
    init.check_problem(problem)
    if method is None:
        method = default_method(problem)
    if method not in _SOLVERS:
        raise InvalidInputError(f"method: unknown {method!r}; allowed are {sorted(_SOLVERS)}")
    if not rk.is_adaptive(method) and dt is None:
        raise InvalidInputError(f"dt: the fixed-step method {method!r} needs dt > 0")
    dt = None if dt is None else positive_number("dt", dt)
    rtol, atol = positive_number("rtol", rtol), positive_number("atol", atol)
    max_steps = positive_int("max_steps", max_steps)
    # inf turns the test off; NaN (which would silently do so too) is refused
    divergence_threshold = positive_number("divergence_threshold", divergence_threshold, finite=False)
    name = "alphas" if times is None else "times"
    alphas = save_times(times, alphas)
    if alphas is None:
        alphas = default_alphas(1000.0 if alpha_max is None else positive_number("alpha_max", alpha_max))
    alphas = _validate_alphas(alphas, name)
    check_memory(integrate_bytes(problem, alphas.size + 1, method),
                 what=f"online.integrate(K={problem.K}, M={problem.M}, {problem.activation_name})",
                 reduce="reduce K (the right-hand side evaluates ~K^2 (K+M)^2 / 4 four-field Gaussian integrals)")
    prepended = alphas[0] > 0
    ts = np.concatenate([[0.0], alphas]) if prepended else alphas
    if ts.size == 1:  # only alpha = 0 requested: nothing to integrate
        ts = np.array([0.0, 1e-12])

    key = static_key(problem)
    K, M = problem.K, problem.M
    y0 = np.concatenate([np.asarray(init.Q).ravel(), np.asarray(init.R).ravel(), np.asarray(init.v)])
    args = (jnp.asarray(init.T), jnp.asarray(init.v_teacher), jnp.float64(problem.lr), jnp.float64(problem.eta2),
            jnp.float64(problem.sigma), jnp.float64(problem.weight_decay))
    dt0 = float(dt) if dt is not None else min(0.01, max(float(ts[-1]), 1e-6) / 10)
    bar = None
    if progress:
        bar = tqdm(total=100.0, desc="ode", bar_format="{desc}: {percentage:3.0f}% of log(1+alpha)|{bar}| "
                   "[{elapsed}<{remaining}]")
        bar.alpha_max = float(ts[-1])
    _BAR[0] = bar
    try:
        ys, n_steps, status = rk.solve(_vector_field(key), y0, ts, args, method=method, rtol=rtol, atol=atol,
                                       dt0=dt0, max_steps=max_steps, diverged=_divergence_test(K, M),
                                       threshold=(divergence_threshold, args[0]),
                                       progress=_progress if progress else None)
    finally:
        _BAR[0] = None
        if bar is not None:
            bar.close()
    n_ok = int(np.sum(np.all(np.isfinite(ys), axis=1)))
    eg = np.asarray(_eg_along(key)(jnp.asarray(ys[:n_ok]), args[0], args[1]))
    Q, R, v = _unflatten(ys[:n_ok], K, M)
    alpha_reached = float(ts[n_ok - 1]) if n_ok > 0 else 0.0
    message = STATUS["success"]
    if status is not Status.SUCCESS:
        message = (f"{status}: {STATUS[status]}; stopped after alpha = {alpha_reached:g} "
                   f"(last requested {ts[-1]:g}); the trajectory up to there is kept")
        warnings.warn(f"online.integrate: {message}", RuntimeWarning, stacklevel=2)
    Q = 0.5 * (Q + np.swapaxes(Q, -1, -2))
    times = ts[:n_ok]
    if prepended:
        times, Q, R, v, eg = times[1:], Q[1:], R[1:], v[1:], eg[1:]
    n_req = alphas.size
    times, Q, R, v, eg = times[:n_req], Q[:n_req], R[:n_req], v[:n_req], eg[:n_req]
    return Trajectory(
        problem=problem, alpha=np.asarray(alphas[: len(times)]), eg=eg, Q=Q, R=R, v=v, T=np.asarray(init.T),
        v_teacher=np.asarray(init.v_teacher), status=status, message=message,
        alpha_reached=alpha_reached, n_steps=int(n_steps),
        solver=method, rtol=float(rtol), atol=float(atol),
    )


def generalisation_error(problem: Problem, state: OrderParameters) -> float:
    """Generalisation error of one macroscopic state (Goldt et al. 2019, eq. (4)).

    ``eps_g = (1/2) E[(phi(x) - y_noiseless(x))^2] = (1/2) u^T I2(C) u`` with ``u = (v, -v*)``.
    """
    state.check_problem(problem)
    return float(generalisation_error_arrays(problem, jnp.asarray(state.Q), jnp.asarray(state.R),
                                             jnp.asarray(state.T), jnp.asarray(state.v),
                                             jnp.asarray(state.v_teacher)))
