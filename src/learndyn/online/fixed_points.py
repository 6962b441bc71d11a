r"""Fixed points of the order-parameter ODEs and the paper's closed-form asymptotics.

:func:`fixed_point` solves ``dQ = dR = dv = 0`` (spec §2.2) by a Newton-type method (MINPACK via
:func:`scipy.optimize.root`, with the exact Jacobian from JAX autodiff) starting from a state -- usually
the end of a trajectory -- and classifies it by the eigenvalues of the Jacobian.

Closed forms (spec §4.1, §4.2, §6.1, §6.3):

* :func:`eg_erf_first_layer` -- sigmoidal students trained on the first layer only,
  ``eps_g* / sigma^2 = eta (L + M/sqrt3) / (2 pi) + eta^2 [L^2/2 + L M/sqrt3 + M(M-1)/6 + sqrt5 M/10] / pi^2
  + O(eta^3)`` (Goldt et al. 2019, Sec. 4; leading term: ``eta sigma^2 (L + M/sqrt3)/(2 pi)``);
* :func:`eg_linear_first_layer` -- linear students, first layer only: ``K eta sigma^2 / (2 (2 - K eta))``;
* :func:`plateau_erf` -- the Saad & Solla symmetric plateau for ``K = M`` at small ``eta``:
  ``Q = 1/(2K-1)``, ``R = 1/sqrt(K(2K-1))``, ``eps_g = (K/pi)[pi/6 - K arcsin(1/(2K))]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import xarray as xr

from ..results import Result, problem_attrs, rebuild_problem
from .ode import generalisation_error, rhs
from .problem import OrderParameters, Problem

__all__ = ["FixedPoint", "fixed_point", "eg_erf_first_layer", "eg_linear_first_layer", "plateau_erf"]


@dataclass(frozen=True, eq=False)
class FixedPoint(Result):
    """A fixed point of the ODEs: ``state``, its ``eg``, the Jacobian ``eigenvalues`` and ``stable``.

    ``stable`` is True when every eigenvalue has a negative real part (below ``-stability_tol``);
    ``marginal`` when the largest real part is within ``stability_tol`` of zero (a continuous family of
    fixed points, e.g. the symmetries of linear networks). ``converged`` tells whether the root finder
    reached ``residual <= tol``.
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

    def to_xarray(self) -> xr.Dataset:
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
                                residual=float(self.residual), message=self.message),
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
                   stable=bool(a["stable"]), marginal=bool(a["marginal"]), message=str(a.get("message", "")))


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


def fixed_point(problem: Problem, state: OrderParameters, *, tol: float = 1e-12, stability_tol: float = 1e-9,
                max_iter: int = 2000) -> FixedPoint:
    """Solve ``d/dalpha (Q, R, v) = 0`` from ``state``; classify stability by the Jacobian's eigenvalues.

    Variables are the upper triangle of ``Q``, ``R`` and (if trained) ``v``; ``T`` and ``v*`` stay fixed.
    """
    if not isinstance(state, OrderParameters):
        raise ValueError(f"state: expected OrderParameters, got {type(state).__name__}")
    state.check_problem(problem)
    pack, unpack = _packing(problem)
    T, vt, v_fixed = jnp.asarray(state.T), jnp.asarray(state.v_teacher), jnp.asarray(state.v)

    def F(x):
        Q, R, v = unpack(x, v_fixed)
        return pack(*rhs(problem, Q, R, v, T, vt))

    F_jit = jax.jit(F)
    J_jit = jax.jit(jax.jacfwd(F))
    x0 = np.asarray(pack(jnp.asarray(state.Q), jnp.asarray(state.R), jnp.asarray(state.v)))
    sol = scipy.optimize.root(lambda x: np.asarray(F_jit(x)), x0, jac=lambda x: np.asarray(J_jit(x)),
                              method="hybr", options={"xtol": 1e-14, "maxfev": max_iter})
    x = sol.x
    residual = float(np.max(np.abs(np.asarray(F_jit(x)))))
    if residual > tol:  # singular Jacobians (families of fixed points): fall back to Levenberg-Marquardt
        sol2 = scipy.optimize.root(lambda x: np.asarray(F_jit(x)), x, jac=lambda x: np.asarray(J_jit(x)),
                                   method="lm", options={"xtol": 1e-15, "ftol": 1e-15, "maxiter": max_iter})
        res2 = float(np.max(np.abs(np.asarray(F_jit(sol2.x)))))
        if res2 < residual:
            x, residual = sol2.x, res2
    eig = np.linalg.eigvals(np.asarray(J_jit(x)))
    max_re = float(np.max(eig.real))
    Q, R, v = (np.asarray(a) for a in unpack(jnp.asarray(x), v_fixed))
    try:
        fp_state = OrderParameters(Q=Q, R=R, T=state.T, v=v, v_teacher=state.v_teacher)
        eg = generalisation_error(problem, fp_state)
    except ValueError as exc:  # the root left the space of realisable overlaps
        raise RuntimeError(f"fixed_point: Newton iteration left the PSD cone ({exc}); start closer") from None
    converged = residual <= tol
    return FixedPoint(
        problem=problem, state=fp_state, eg=eg, eigenvalues=eig, residual=residual, converged=converged,
        stable=max_re < -stability_tol, marginal=abs(max_re) <= stability_tol,
        message=f"max Re(eigenvalue) = {max_re:.3g}; residual = {residual:.3g}",
    )


# ------------------------------------------------------------------------------------------
# closed forms
# ------------------------------------------------------------------------------------------
def _check_rates(lr: float, sigma: float) -> None:
    if not lr > 0:
        raise ValueError(f"lr: must be > 0, got {lr}")
    if not sigma >= 0:
        raise ValueError(f"sigma: must be >= 0, got {sigma}")


def eg_erf_first_layer(lr: float, sigma: float, M: int, L: int, order: int = 2) -> float:
    """Asymptotic ``eps_g*`` of an erf student with ``K = M + L`` units, first layer trained, ``v = v* = 1``,
    ``T = I`` (Goldt et al. 2019 Sec. 4; spec §4.1), to leading order in ``sigma^2`` and to ``order`` 1 or 2
    in ``eta``:  ``sigma^2 [eta (L + M/sqrt3)/(2 pi) + eta^2 (L^2/2 + L M/sqrt3 + M(M-1)/6 + sqrt5 M/10)/pi^2]``.
    """
    _check_rates(lr, sigma)
    if M < 1 or L < 0:
        raise ValueError(f"M, L: need M >= 1 and L >= 0, got M={M}, L={L}")
    if order not in (1, 2):
        raise ValueError(f"order: 1 or 2, got {order}")
    s3 = math.sqrt(3.0)
    first = lr * (L + M / s3) / (2.0 * math.pi)
    second = lr**2 * (L**2 / 2.0 + L * M / s3 + M * (M - 1) / 6.0 + math.sqrt(5.0) * M / 10.0) / math.pi**2
    return sigma**2 * (first + (second if order == 2 else 0.0))


def eg_linear_first_layer(lr: float, sigma: float, K: int) -> float:
    """Asymptotic ``eps_g* = K eta sigma^2 / (2 (2 - K eta))`` of a linear student, first layer only,
    ``v = v* = 1`` (spec §4.2; exact). Converges only for ``K eta < 2``."""
    _check_rates(lr, sigma)
    if K * lr >= 2:
        raise ValueError(f"lr: K*lr = {K * lr:g} >= 2, the linear network does not converge (need lr < 2/K)")
    return K * lr * sigma**2 / (2.0 * (2.0 - K * lr))


def plateau_erf(K: int) -> tuple[float, float, float]:
    """Saad-Solla symmetric plateau of an erf student with ``K = M``, ``v = v* = 1``, ``T = I``, ``eta -> 0``:
    returns ``(Q, R, eps_g)`` with ``Q_ik = 1/(2K-1)``, ``R_in = 1/sqrt(K(2K-1))`` and
    ``eps_g = (K/pi)[pi/6 - K arcsin(1/(2K))]`` (Saad & Solla 1995; spec §6.1)."""
    if K < 1:
        raise ValueError(f"K: must be >= 1, got {K}")
    return 1.0 / (2 * K - 1), 1.0 / math.sqrt(K * (2 * K - 1)), (K / math.pi) * (math.pi / 6 - K * math.asin(1 / (2 * K)))
