r"""Fixed points of the order-parameter ODEs and the paper's closed-form asymptotics.

:func:`fixed_point` solves ``dQ = dR = dv = 0`` (Goldt et al. 2019, eqs. (6)-(8)) by a Newton-type method (MINPACK via
:func:`scipy.optimize.root`, with the exact Jacobian from JAX autodiff) starting from a state -- usually
the end of a trajectory -- and classifies it by the eigenvalues of the Jacobian.

Closed forms (Goldt et al. 2019, Sec. 4; Saad & Solla 1995):

* :func:`eg_erf_first_layer` -- sigmoidal students trained on the first layer only,
  ``eps_g* / sigma^2 = eta (L + M/sqrt3) / (2 pi) + eta^2 [L^2/2 + L M/sqrt3 + M(M-1)/6 + sqrt5 M/10] / pi^2
  + O(eta^3)`` (Goldt et al. 2019, Sec. 4; leading term: ``eta sigma^2 (L + M/sqrt3)/(2 pi)``);
* :func:`eg_linear_first_layer` -- linear students, first layer only: ``K eta sigma^2 / (2 (2 - K eta))``;
* :func:`plateau_erf` -- the Saad & Solla symmetric plateau for ``K = M`` at small ``eta``:
  ``Q = 1/(2K-1)``, ``R = 1/sqrt(K(2K-1))``, ``eps_g = (K/pi)[pi/6 - K arcsin(1/(2K))]``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.optimize
import xarray as xr

from ..results import InvalidInputError, Result, Status, problem_attrs, rebuild_problem
from .ode import generalisation_error, rhs
from ._util import check_problem
from .problem import OrderParameters, Problem

__all__ = ["FixedPoint", "fixed_point", "eg_erf_first_layer", "eg_linear_first_layer", "plateau_erf"]


@dataclass(frozen=True, eq=False)
class FixedPoint(Result):
    """A fixed point of the ODEs: ``state``, its ``eg``, the Jacobian ``eigenvalues`` and ``stable``.

    ``stable`` is True when every eigenvalue has a negative real part (below ``-stability_tol``);
    ``marginal`` when the largest real part is within ``stability_tol`` of zero (a continuous family of
    fixed points, e.g. the symmetries of linear networks). ``converged`` tells whether the root finder
    reached ``residual <= tol``. ``split_unstable`` is True when the fixed point has identical student units
    and every growing direction separates them: stable within the subspace where they stay identical, which
    the ODE leaves invariant (e.g. the denoiser start of Goldt et al. 2019 with copies of a teacher unit).
    ``message`` says how the point was found and why it is classified as it is; ``status`` is
    :attr:`learndyn.Status.SUCCESS` when converged, else :attr:`learndyn.Status.NOT_CONVERGED` (default: from
    ``converged``).
    """

    problem: Problem
    state: OrderParameters
    eg: float
    eigenvalues: np.ndarray
    residual: float
    converged: bool
    stable: bool
    marginal: bool
    message: str = ""
    split_unstable: bool = False
    status: Status | None = None

    def __post_init__(self) -> None:
        status = (Status.SUCCESS if self.converged else Status.NOT_CONVERGED) if self.status is None else self.status
        object.__setattr__(self, "status", Status.of(status))

    def to_xarray(self) -> xr.Dataset:
        """The fixed point as a Dataset: ``Q``, ``R``, ``v``, ``T``, ``v_teacher``, ``eg`` and the eigenvalues."""
        K, M = self.problem.K, self.problem.M
        return xr.Dataset(
            {
                "Q": (("k", "l"), self.state.Q), "R": (("k", "n"), self.state.R), "v": (("k",), self.state.v),
                "T": (("n", "m"), self.state.T), "v_teacher": (("n",), self.state.v_teacher),
                "eg": ((), self.eg),
                "eigenvalues_real": (("mode",), self.eigenvalues.real),
                "eigenvalues_imag": (("mode",), self.eigenvalues.imag),
            },
            coords={"k": np.arange(K), "l": np.arange(K), "n": np.arange(M), "m": np.arange(M)},
            attrs=problem_attrs(self.problem, kind="online.fixed_point", stable=int(self.stable),
                                marginal=int(self.marginal), converged=int(self.converged),
                                split_unstable=int(self.split_unstable),
                                residual=float(self.residual), message=self.message,
                                status=self.status.value),
        )

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "FixedPoint":
        """The fixed point stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`)."""
        a = ds.attrs
        state = OrderParameters(Q=ds["Q"].values, R=ds["R"].values, T=ds["T"].values, v=ds["v"].values,
                                v_teacher=ds["v_teacher"].values)
        re, im = ds["eigenvalues_real"].values, ds["eigenvalues_imag"].values
        eig = re + 1j * im if np.any(im) else re  # np.linalg.eigvals is real when every eigenvalue is
        return cls(problem=rebuild_problem(ds, Problem), state=state, eg=float(ds["eg"].values),
                   eigenvalues=eig, residual=float(a["residual"]), converged=bool(a["converged"]),
                   stable=bool(a["stable"]), marginal=bool(a["marginal"]), message=str(a.get("message", "")),
                   split_unstable=bool(a.get("split_unstable", False)),
                   status=Status.of(str(a["status"])) if "status" in a else None)


def _packing(problem: Problem):
    K, M = problem.K, problem.M
    iu = np.triu_indices(K)
    train_v = problem.train_second_layer

    def pack(Q, R, v):
        parts = [Q[iu], R.ravel()]
        if train_v:
            parts.append(v)
        return jnp.concatenate(parts)

    def unpack(x, v_fixed):
        n_q = len(iu[0])
        Qu = jnp.zeros((K, K)).at[iu].set(x[:n_q])
        Q = Qu + Qu.T - jnp.diag(jnp.diag(Qu))
        R = x[n_q:n_q + K * M].reshape(K, M)
        v = x[n_q + K * M:] if train_v else v_fixed
        return Q, R, v

    return pack, unpack


def _factor_packing(problem: Problem, T: np.ndarray):
    r"""Coordinates that cannot leave the PSD cone: the weights themselves, in a minimal basis.

    With ``T = L_T L_T^T`` the teacher units are the rows of ``L_T`` (coordinates in their own span),
    and student unit ``k`` is ``w_k = (a_k, b_k)``: ``a_k`` in the teacher span, ``b_k`` in a
    K-dimensional orthogonal complement. Then ``R = A L_T^T`` and ``Q = A A^T + B B^T``, so every
    ``(A, B)`` gives a realisable state and every realisable state has such a factor; ``B`` is taken
    lower-triangular (the Cholesky factor of the Schur complement ``Q - A A^T``), which removes the
    rotations of the complement and leaves as many unknowns as equations.
    """
    K, M = problem.K, problem.M
    lam, U = np.linalg.eigh(0.5 * (T + T.T))
    LT = U * np.sqrt(np.clip(lam, 0.0, None))
    LT_pinv_T = np.linalg.pinv(LT.T)
    LTj = jnp.asarray(LT)
    il = np.tril_indices(K)
    n_a, n_b = K * M, len(il[0])
    train_v = problem.train_second_layer

    def to_overlaps(y, v_fixed):
        A = y[:n_a].reshape(K, M)
        B = jnp.zeros((K, K)).at[il].set(y[n_a:n_a + n_b])
        Q = A @ A.T + B @ B.T
        return 0.5 * (Q + Q.T), A @ LTj.T, (y[n_a + n_b:] if train_v else v_fixed)

    def from_overlaps(Q, R, v, nudge: float) -> np.ndarray:
        A = np.asarray(R) @ LT_pinv_T
        S = np.asarray(Q) - A @ A.T
        mu, V = np.linalg.eigh(0.5 * (S + S.T))
        B = np.linalg.qr((V * np.sqrt(np.clip(mu, 0.0, None))).T, mode="r").T  # B B^T = S, lower-triangular
        # on a face of the cone (a unit exactly inside the span of the others) d(B B^T)/dB vanishes and a
        # Newton step could never move off it: start a hair inside
        d = np.arange(K)
        small = np.abs(B[d, d]) < nudge
        B[d[small], d[small]] = nudge
        parts = [A.ravel(), B[il]] + ([np.asarray(v)] if train_v else [])
        return np.concatenate(parts)

    return to_overlaps, from_overlaps


def _identical_units(state: OrderParameters, rtol: float = 1e-8) -> list[list[int]]:
    """Groups (of two or more) of student units that are the same vector with the same ``v_k``."""
    Q, R, v = np.asarray(state.Q), np.asarray(state.R), np.asarray(state.v)
    K = Q.shape[0]
    scale = max(float(np.max(np.abs(np.diag(Q)))), 1e-300)
    rows = np.concatenate([Q, R, v[:, None]], axis=1)
    groups: list[list[int]] = []
    seen: set[int] = set()
    for k in range(K):
        if k in seen:
            continue
        group = [k]
        for l in range(k + 1, K):  # |w_k - w_l|^2 = Q_kk + Q_ll - 2 Q_kl = 0 and equal overlaps with the rest
            same = (abs(Q[k, k] + Q[l, l] - 2 * Q[k, l]) <= rtol * scale
                    and np.allclose(rows[k], rows[l], rtol=0, atol=rtol * max(scale, float(np.max(np.abs(v))))))
            if l not in seen and same:
                group.append(l)
        if len(group) > 1:
            groups.append(group)
            seen.update(group)
    return groups


def _tied_subspace(problem: Problem, groups: list[list[int]]) -> np.ndarray:
    """Orthonormal basis (columns) of the packed perturbations that keep each group of units identical
    (``dQ_kj = dQ_lj`` for all ``j``, ``dR_k = dR_l``, ``dv_k = dv_l``). The ODE maps this subspace into
    itself: identical units (same weights, same ``v``) receive identical updates."""
    pack, unpack = _packing(problem)
    K, M = problem.K, problem.M
    n = np.asarray(pack(jnp.zeros((K, K)), jnp.zeros((K, M)), jnp.zeros(K))).size
    basis = np.eye(n)
    cons = []
    for e in basis:
        Q, R, v = (np.asarray(a) for a in unpack(jnp.asarray(e), jnp.zeros(K)))
        row = []
        for g in groups:
            for l in g[1:]:
                k = g[0]
                row += list(Q[k] - Q[l]) + list(R[k] - R[l])
                if problem.train_second_layer:
                    row.append(v[k] - v[l])
        cons.append(row)
    A = np.asarray(cons).T  # constraints x variables
    return scipy.linalg.null_space(A) if A.size else basis


def _residual(fun, x) -> float:
    r = np.asarray(fun(x))
    return float(np.max(np.abs(r))) if np.all(np.isfinite(r)) else float("inf")


def _root(fun, jac, x0, tol: float, max_iter: int) -> tuple[np.ndarray, float]:
    """MINPACK hybrid Powell, then Levenberg-Marquardt if that did not reach ``tol`` (singular Jacobians:
    families of fixed points, faces of the cone). Returns the best point found and its max-norm residual.
    ``jac=None`` (or a Jacobian with inf/NaN at ``x0``): finite differences."""
    best_x, best_r = np.asarray(x0, dtype=np.float64), _residual(fun, x0)
    if best_r <= tol:
        return best_x, best_r
    if jac is not None and not np.all(np.isfinite(np.asarray(jac(x0)))):
        jac = None
    j = (lambda x: np.asarray(jac(x))) if jac is not None else False
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for method, options in (("hybr", {"xtol": 1e-14, "maxfev": max_iter}),
                                ("lm", {"xtol": 1e-15, "ftol": 1e-15, "maxiter": max_iter})):
            try:
                sol = scipy.optimize.root(lambda x: np.asarray(fun(x)), best_x, jac=j, method=method,
                                          options=options)
            except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                continue
            r = _residual(fun, sol.x)
            if r < best_r:
                best_x, best_r = np.asarray(sol.x), r
            if best_r <= tol:
                break
    return best_x, best_r


def _realisable(Q, R, state: OrderParameters, v) -> OrderParameters | None:
    try:
        return OrderParameters(Q=Q, R=R, T=state.T, v=v, v_teacher=state.v_teacher)
    except ValueError:
        return None


def fixed_point(problem: Problem, state: OrderParameters, *, tol: float = 1e-12, stability_tol: float = 1e-9,
                max_iter: int = 2000, onward: tuple[float, ...] = (1e3, 1e4)) -> FixedPoint:
    r"""Solve ``d/dalpha (Q, R, v) = 0`` (Goldt et al. 2019, eqs. (6)-(8)) from ``state`` and classify it.

    Variables are the upper triangle of ``Q``, ``R`` and (if trained) ``v``; ``T`` and ``v*`` stay fixed.
    The search never leaves the set of realisable overlaps (``[[Q, R], [R^T, T]]`` positive
    semi-definite) and never raises on a valid state:

    1. Newton-type root finding (MINPACK ``hybr``, then ``lm``; exact Jacobian by JAX autodiff) in
       ``(Q, R, v)``; a root outside the PSD cone is rejected;
    2. otherwise the same in the weight factor ``Q = A A^T + B B^T``, ``R = A L_T^T``
       (:func:`_factor_packing`), which stays inside the cone by construction;
    3. otherwise the ODE is integrated onward from ``state`` to each ``alpha`` of ``onward`` in turn and
       1-2 are retried from there.

    The result's ``converged`` says whether ``max |d/dalpha| <= tol`` was reached (a ``RuntimeWarning``
    when not), ``message`` how and where. Stability comes from the eigenvalues of the Jacobian in
    ``(Q, R, v)``: ``stable`` when all real parts are below ``-thr``, ``marginal`` when the largest is
    within ``thr`` of zero (zero modes: continuous families of fixed points, e.g. moving ``v`` between
    identical student units or the symmetries of linear networks), unstable otherwise, with
    ``thr = max(stability_tol, 1e-7 max|eigenvalue|)`` (the accuracy of eigenvalues of a Jacobian
    evaluated at a root known to ``tol``). Where the Jacobian is not finite (ReLU's Gaussian averages are
    not differentiable where two fields are collinear, e.g. a perfectly learned unit) the eigenvalues are
    NaN, ``stable = marginal = False`` and the message says that stability was not classified.

    Stages: :func:`_solve_from` (the step: :func:`_newton_in_overlaps`, then :func:`_newton_in_factor`) from
    ``state``, :func:`_integrate_onward` (the driver of 3.), :func:`_classify` (stability) and
    :func:`_fixed_point_message`.
    """
    onward = _check_fixed_point_args(problem, state, tol, stability_tol, max_iter, onward)
    eqs = _Equations.build(problem, state)
    best, where, reached = _integrate_onward(eqs, state, onward, tol, max_iter)
    fp_state, residual, how = best
    converged = residual <= tol
    eg = generalisation_error(problem, fp_state)
    eig, stable, marginal, split_unstable, verdict = _classify(eqs, fp_state, stability_tol)
    message = _fixed_point_message(converged, residual, tol, how, where, reached, verdict)
    if not converged:
        warnings.warn(f"fixed_point: {message}; integrate further (e.g. online.integrate to a larger alpha) or "
                      f"start closer", RuntimeWarning, stacklevel=2)
    return FixedPoint(problem=problem, state=fp_state, eg=eg, eigenvalues=eig, residual=residual,
                      converged=converged, stable=bool(stable), marginal=bool(marginal), message=message,
                      split_unstable=split_unstable)


def _check_fixed_point_args(problem: Problem, state: OrderParameters, tol: float, stability_tol: float,
                            max_iter: int, onward) -> tuple[float, ...]:
    """Validate the arguments of :func:`fixed_point`; returns ``onward`` as a tuple of floats."""
    check_problem(problem)
    if not isinstance(state, OrderParameters):
        raise InvalidInputError(f"state: expected OrderParameters, got {type(state).__name__}")
    state.check_problem(problem)
    if not (tol > 0 and stability_tol >= 0):
        raise InvalidInputError(f"tol, stability_tol: need tol > 0 and stability_tol >= 0, got {tol}, {stability_tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InvalidInputError(f"max_iter: must be a positive integer, got {max_iter!r}")
    onward = tuple(float(a) for a in (onward or ()))
    if any(not (np.isfinite(a) and a > 0) for a in onward) or any(np.diff(onward) <= 0):
        raise InvalidInputError(f"onward: must be increasing positive times, got {onward}")
    return onward


@dataclass(frozen=True, eq=False)
class _Equations:
    """The fixed-point equations ``d/dalpha (Q, R, v) = 0`` (Goldt et al. 2019, eqs. (6)-(8)) in the two
    coordinate systems, compiled: ``F``/``J`` in the packed ``(Q, R, v)``, ``G``/``JG`` in the weight factor
    ``(A, B)`` (:func:`_factor_packing`); ``T``, ``v*`` and an untrained ``v`` are those of the start state."""

    problem: Problem
    pack: object
    unpack: object
    to_overlaps: object
    from_overlaps: object
    v_fixed: object
    F: object
    J: object
    G: object
    JG: object

    @classmethod
    def build(cls, problem: Problem, state: OrderParameters) -> "_Equations":
        """The compiled equations of ``problem`` with the fixed parts of ``state``."""
        pack, unpack = _packing(problem)
        to_overlaps, from_overlaps = _factor_packing(problem, np.asarray(state.T))
        T, vt, v_fixed = jnp.asarray(state.T), jnp.asarray(state.v_teacher), jnp.asarray(state.v)

        def F(x):
            Q, R, v = unpack(x, v_fixed)
            return pack(*rhs(problem, Q, R, v, T, vt))

        def G(y):
            return pack(*rhs(problem, *to_overlaps(y, v_fixed), T, vt))

        return cls(problem=problem, pack=pack, unpack=unpack, to_overlaps=to_overlaps, from_overlaps=from_overlaps,
                   v_fixed=v_fixed, F=jax.jit(F), J=jax.jit(jax.jacfwd(F)), G=jax.jit(G), JG=jax.jit(jax.jacfwd(G)))

    def packed(self, state: OrderParameters) -> np.ndarray:
        """``state``'s ``(Q, R, v)`` packed as the unknowns of ``F``."""
        return np.asarray(self.pack(jnp.asarray(state.Q), jnp.asarray(state.R), jnp.asarray(state.v)))


def _newton_in_overlaps(eqs: _Equations, start: OrderParameters, best: tuple, tol: float, max_iter: int
                        ) -> tuple[tuple, bool]:
    """Stage 1 of :func:`fixed_point`: root finding in ``(Q, R, v)``, a root outside the PSD cone rejected.
    Returns the better of ``best`` and that root as ``(state, residual, how)``, and whether the Jacobian is
    finite at the start."""
    x0 = eqs.packed(start)
    # a right-hand side that is not differentiable here (ReLU at collinear fields) will not be in the
    # factor coordinates either: finite differences there, and no compilation of their Jacobian
    smooth = bool(np.all(np.isfinite(np.asarray(eqs.J(x0)))))
    x, res = _root(eqs.F, eqs.J, x0, tol, max_iter)
    Q, R, v = (np.asarray(a) for a in eqs.unpack(jnp.asarray(x), eqs.v_fixed))
    cand = _realisable(Q, R, start, v)  # None: the root left the cone (rejected)
    if cand is not None and res < best[1]:
        best = (cand, res, "Newton in (Q, R, v)")
    return best, smooth


def _newton_in_factor(eqs: _Equations, start: OrderParameters, best: tuple, smooth: bool, tol: float,
                      max_iter: int) -> tuple:
    """Stage 2 of :func:`fixed_point`: root finding in the weight factor ``Q = A A^T + B B^T``,
    ``R = A L_T^T``, inside the cone by construction. Returns the better of ``best`` and that root."""
    problem = eqs.problem
    scale = max(float(np.max(np.diag(np.asarray(start.Q)))), float(np.max(np.diag(np.asarray(start.T)))), 1e-300)
    y0 = eqs.from_overlaps(start.Q, start.R, start.v, nudge=1e-4 * np.sqrt(scale))
    # the exact Jacobian in the factor is a second large program to compile; worth it for the closed
    # forms only (quadrature activations and ReLU: finite differences of the compiled G, n + 1 calls)
    exact = smooth and problem.g.exact_integrals
    y, res = _root(eqs.G, eqs.JG if exact else None, y0, tol, max_iter)
    Q, R, v = (np.asarray(a) for a in eqs.to_overlaps(jnp.asarray(y), eqs.v_fixed))
    cand = _realisable(Q, R, start, v)
    if cand is not None:  # recompute the residual at the rounded state that is returned
        res = _residual(eqs.F, eqs.packed(cand))
        if res < best[1]:
            best = (cand, res, "Newton in the weight factor (A, B)")
    return best


def _solve_from(eqs: _Equations, start: OrderParameters, tol: float, max_iter: int) -> tuple:
    """The step of :func:`fixed_point`: the best realisable root from ``start``, ``(state, residual, how)``,
    by stage 1 and, if that did not reach ``tol``, stage 2."""
    best = (start, _residual(eqs.F, eqs.packed(start)), "the start state")
    if best[1] <= tol:
        return best
    best, smooth = _newton_in_overlaps(eqs, start, best, tol, max_iter)
    if best[1] <= tol:
        return best
    return _newton_in_factor(eqs, start, best, smooth, tol, max_iter)


def _integrate_onward(eqs: _Equations, state: OrderParameters, onward: tuple[float, ...], tol: float,
                      max_iter: int) -> tuple[tuple, str, float]:
    """The driver of :func:`fixed_point`: :func:`_solve_from` the given state, then, while ``tol`` is not
    reached, from the ODE integrated onward to each ``alpha`` of ``onward`` (stage 3). Returns the best
    ``(state, residual, how)``, where it was found and the last ``alpha`` reached (0 for none)."""
    from .ode import integrate

    best = _solve_from(eqs, state, tol, max_iter)
    where = "from the given state"
    reached, start = 0.0, state
    for alpha in onward:
        if best[1] <= tol:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            traj = integrate(eqs.problem, start, alphas=[0.0, alpha - reached])
        if not traj.success:
            where += f"; integrating onward stopped ({traj.status}) before alpha = {alpha:g}"
            break
        try:
            start = traj.final_state
        except ValueError:
            break
        reached = alpha
        cand = _solve_from(eqs, start, tol, max_iter)
        if cand[1] < best[1]:
            best = cand
            where = f"after integrating the ODE onward to alpha = {alpha:g}"
    return best, where, reached


def _classify(eqs: _Equations, fp_state: OrderParameters, stability_tol: float
              ) -> tuple[np.ndarray, bool, bool, bool, str]:
    """Stage 4 of :func:`fixed_point`: the Jacobian's eigenvalues at ``fp_state`` and the verdict,
    ``(eigenvalues, stable, marginal, split_unstable, verdict)`` (see :class:`FixedPoint`)."""
    x = eqs.packed(fp_state)
    J = np.asarray(eqs.J(x))
    n = x.size
    split_unstable = False
    if not np.all(np.isfinite(J)):
        verdict = ("stability not classified: the Jacobian is not finite here (the Gaussian averages are not "
                   "differentiable where fields are collinear, e.g. a perfectly learned ReLU unit)")
        return np.full(n, np.nan + 0j), False, False, split_unstable, verdict
    eig = np.linalg.eigvals(J)
    max_re = float(np.max(eig.real))
    thr = max(stability_tol, 1e-7 * float(np.max(np.abs(eig))))
    stable, marginal = max_re < -thr, abs(max_re) <= thr
    n_zero = int(np.sum(np.abs(eig.real) <= thr))
    kind = "stable" if stable else (f"marginal ({n_zero} zero modes: a family of fixed points)" if marginal
                                    else "unstable")
    groups = _identical_units(fp_state) if not (stable or marginal) else []
    if groups:  # is the instability only a splitting of identical units?
        P = _tied_subspace(eqs.problem, groups)
        tied = np.linalg.eigvals(P.T @ J @ P)
        if float(np.max(tied.real)) <= thr:
            split_unstable = True
            names = ", ".join("{" + ", ".join(str(k + 1) for k in g) + "}" for g in groups)
            kind = (f"unstable only along directions that split the identical student units {names}: "
                    f"stable while they stay identical (max Re(eigenvalue) there "
                    f"{float(np.max(tied.real)):.3g}), which the ODE preserves exactly, so a start with "
                    f"identical units converges here")
    verdict = f"{kind}; max Re(eigenvalue) = {max_re:.3g}"
    return eig, stable, marginal, split_unstable, verdict


def _fixed_point_message(converged: bool, residual: float, tol: float, how: str, where: str, reached: float,
                         verdict: str) -> str:
    """The :attr:`FixedPoint.message`: how and where the point was found, and its classification."""
    if converged:
        return f"converged ({how}, {where}); {verdict}; residual = {residual:.3g}"
    tried = f"integrated onward to alpha = {reached:g}" if reached else "no onward integration"
    return (f"NOT converged: residual {residual:.3g} > tol {tol:.3g} (best: {how}, {where}; {tried}); "
            f"{verdict} at that point")


# ------------------------------------------------------------------------------------------
# closed forms
# ------------------------------------------------------------------------------------------
def _check_rates(lr: float, sigma: float) -> None:
    if not lr > 0:
        raise InvalidInputError(f"lr: must be > 0, got {lr}")
    if not sigma >= 0:
        raise InvalidInputError(f"sigma: must be >= 0, got {sigma}")


def eg_erf_first_layer(lr: float, sigma: float, M: int, L: int, order: int = 2) -> float:
    """Asymptotic ``eps_g*`` of an erf student with ``K = M + L`` units, first layer trained, ``v = v* = 1``,
    ``T = I`` (Goldt et al. 2019, Sec. 4), to leading order in ``sigma^2`` and to ``order`` 1 or 2
    in ``eta``:  ``sigma^2 [eta (L + M/sqrt3)/(2 pi) + eta^2 (L^2/2 + L M/sqrt3 + M(M-1)/6 + sqrt5 M/10)/pi^2]``.
    """
    _check_rates(lr, sigma)
    if M < 1 or L < 0:
        raise InvalidInputError(f"M, L: need M >= 1 and L >= 0, got M={M}, L={L}")
    if order not in (1, 2):
        raise InvalidInputError(f"order: 1 or 2, got {order}")
    s3 = math.sqrt(3.0)
    first = lr * (L + M / s3) / (2.0 * math.pi)
    second = lr**2 * (L**2 / 2.0 + L * M / s3 + M * (M - 1) / 6.0 + math.sqrt(5.0) * M / 10.0) / math.pi**2
    return sigma**2 * (first + (second if order == 2 else 0.0))


def eg_linear_first_layer(lr: float, sigma: float, K: int) -> float:
    """Asymptotic ``eps_g* = K eta sigma^2 / (2 (2 - K eta))`` of a linear student, first layer only,
    ``v = v* = 1`` (exact; the fixed point of Goldt et al. 2019, eqs. (6)-(8), for ``g(x) = x``; for ``K = 1`` the
    classic online Adaline result). Converges only for ``K eta < 2``."""
    _check_rates(lr, sigma)
    if K * lr >= 2:
        raise InvalidInputError(f"lr: K*lr = {K * lr:g} >= 2, the linear network does not converge (need lr < 2/K)")
    return K * lr * sigma**2 / (2.0 * (2.0 - K * lr))


def plateau_erf(K: int) -> tuple[float, float, float]:
    """Saad-Solla symmetric plateau of an erf student with ``K = M``, ``v = v* = 1``, ``T = I``, ``eta -> 0``:
    returns ``(Q, R, eps_g)`` with ``Q_ik = 1/(2K-1)``, ``R_in = 1/sqrt(K(2K-1))`` and
    ``eps_g = (K/pi)[pi/6 - K arcsin(1/(2K))]`` (Saad & Solla 1995)."""
    if K < 1:
        raise InvalidInputError(f"K: must be >= 1, got {K}")
    return 1.0 / (2 * K - 1), 1.0 / math.sqrt(K * (2 * K - 1)), (K / math.pi) * (math.pi / 6 - K * math.asin(1 / (2 * K)))
