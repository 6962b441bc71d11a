"""Problem description and order parameters of teacher-student online learning.

One :class:`Problem` goes both to the ODE theory (:func:`learndyn.online.integrate`) and to the
finite-N simulation (:func:`learndyn.online.simulate`), so the two can never disagree on conventions
(:mod:`learndyn.online.conventions`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import activations
from . import conventions

__all__ = ["Problem", "OrderParameters", "PSD_RTOL"]

#: Negative eigenvalues of the joint overlap matrix down to ``-PSD_RTOL`` times its largest diagonal entry
#: are rounding, not a violation: a perfectly learned unit puts the matrix on the boundary of the cone,
#: and an ODE integrated at ``rtol = 1e-8`` leaves it off by ~1e-9 of the scale (either sign).
PSD_RTOL = 1e-6


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def _nonneg_float(name: str, value: Any, strict: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a real number, got {value!r}") from None
    if not np.isfinite(x) or x < 0 or (strict and x == 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name}: must be finite and {bound}, got {value!r}")
    return x


@dataclass(frozen=True)
class Problem:
    """A teacher-student online-learning problem (Goldt et al. 2019, Sec. 2).

    Parameters
    ----------
    M, K:
        Hidden units of the teacher and the student (``K = M + L``).
    activation:
        ``"erf"`` (meaning ``erf(x/sqrt 2)``), ``"relu"``, ``"linear"``, ``"tanh"``, ``"sigmoid"``,
        ``"leaky_relu"``, ``"abrelu(a, b)"``, an :class:`learndyn.activations.Activation`, or any
        JAX-traceable callable (:func:`learndyn.activations.get`). Teacher and student share it.
    lr:
        First-layer learning rate ``eta`` (> 0).
    lr2:
        Second-layer learning rate ``eta_2``; ``None`` means ``lr``. Used only when
        ``train_second_layer``.
    sigma:
        Standard deviation of the teacher's output noise (>= 0).
    train_second_layer:
        Train ``v`` as well (``False``: soft committee machine with fixed ``v``).
    weight_decay:
        ``kappa >= 0``: ``-(kappa/N) w`` and ``-(kappa/N) v`` per step, i.e. ``-kappa R``,
        ``-2 kappa Q``, ``-kappa v`` in the ODE.
    quadrature_order:
        Accuracy knob for activations without closed forms: Gauss-Hermite nodes per dimension of the
        4-D integrals (default ``gaussian.I4_ORDER``; cost ``~order**4`` per index tuple). Integrals over
        fewer distinct fields get the same point budget (:func:`learndyn.gaussian.product_order`), e.g.
        ``min(64, order**2)`` nodes per dimension for I2, J2, I3. Error estimates:
        :func:`learndyn.gaussian.quadrature_error_estimate`.
    """

    M: int
    K: int
    activation: Any = "erf"
    lr: float = 0.5
    lr2: float | None = None
    sigma: float = 0.0
    train_second_layer: bool = False
    weight_decay: float = 0.0
    quadrature_order: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "M", _positive_int("M", self.M))
        object.__setattr__(self, "K", _positive_int("K", self.K))
        object.__setattr__(self, "lr", _nonneg_float("lr", self.lr, strict=True))
        if self.lr2 is not None:
            object.__setattr__(self, "lr2", _nonneg_float("lr2", self.lr2))
        object.__setattr__(self, "sigma", _nonneg_float("sigma", self.sigma))
        object.__setattr__(self, "weight_decay", _nonneg_float("weight_decay", self.weight_decay))
        if self.quadrature_order is not None:
            object.__setattr__(self, "quadrature_order", _positive_int("quadrature_order", self.quadrature_order))
        if not isinstance(self.train_second_layer, (bool, np.bool_)):
            raise ValueError(f"train_second_layer: must be True or False, got {self.train_second_layer!r}")
        # errors of learndyn.activations already start with "activation:"; the ODE and the simulator
        # compile the activation, so a custom callable must be JAX-traceable (checked here, once)
        conventions.activation(self.activation).check_traceable()

    @property
    def g(self) -> activations.Activation:
        """The activation in this package's online convention (erf means erf(x/sqrt 2))."""
        return conventions.activation(self.activation)

    @property
    def eta2(self) -> float:
        """The effective second-layer learning rate (``lr2``, or ``lr`` when not given)."""
        return self.lr if self.lr2 is None else float(self.lr2)

    @property
    def activation_name(self) -> str:
        return str(self.g) if not isinstance(self.activation, str) else self.activation

    def replace(self, **changes: Any) -> "Problem":
        return dataclasses.replace(self, **changes)



def _positive_number(name: str, value: Any, *, finite: bool = True, unit: str = "") -> float:
    """``value`` as a float > 0 (and finite if ``finite``), else a one-line ``ValueError`` naming ``name``."""
    what = f"a {'finite ' if finite else ''}number{' of ' + unit if unit else ''} > 0"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be {what}, got {value!r}") from None
    if isinstance(value, bool) or not (x > 0) or np.isnan(x) or (finite and np.isinf(x)):
        raise ValueError(f"{name}: must be {what}, got {value!r}")
    return x


def _numeric(name: str, value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array, else a one-line ``ValueError`` naming ``name``."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name}: must be {what} of numbers, got the string {value!r}")
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be {what} of numbers, got {type(value).__name__} {value!r:.60}") from None


def _as_matrix(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name}: must be a numeric array of shape {shape}, got the string {value!r}")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a numeric array of shape {shape}, got {type(value).__name__}") from None
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite entries")
    return arr


@dataclass(frozen=True, eq=False)
class OrderParameters:
    """Macroscopic state: ``Q`` (K x K), ``R`` (K x M), ``T`` (M x M), ``v`` (K), ``v_teacher`` (M).

    The joint overlap matrix ``[[Q, R], [R^T, T]]`` is the covariance of the local fields
    ``(lambda, rho)`` and must be symmetric positive semi-definite, up to :data:`PSD_RTOL` times its
    largest variance (states on the boundary -- a unit that equals a teacher unit -- are valid and
    come out of an integration a rounding error on either side). ``psd_rtol`` overrides that tolerance:
    states read back from an integration use the integrator's own, looser test
    (:data:`learndyn.online.ode.PSD_RTOL`, set by the quadrature error of the Gaussian integrals), so a state
    the integrator accepted is never refused when it is read back.
    """

    Q: Any
    R: Any
    T: Any
    v: Any = None
    v_teacher: Any = None
    psd_rtol: float = field(default=PSD_RTOL, repr=False)

    def __post_init__(self) -> None:
        Q = _numeric("Q", self.Q, "a square K x K matrix") if self.Q is not None else None
        if Q is None or Q.ndim != 2 or Q.shape[0] != Q.shape[1]:
            raise ValueError(f"Q: must be a square K x K matrix, got shape {None if Q is None else Q.shape}")
        K = Q.shape[0]
        T = _numeric("T", self.T, "a square M x M matrix")
        if T.ndim != 2 or T.shape[0] != T.shape[1]:
            raise ValueError(f"T: must be a square M x M matrix, got shape {T.shape}")
        M = T.shape[0]
        Q = _as_matrix("Q", Q, (K, K))
        T = _as_matrix("T", T, (M, M))
        R = _as_matrix("R", self.R, (K, M))
        v = _as_matrix("v", np.ones(K) if self.v is None else self.v, (K,))
        vt = _as_matrix("v_teacher", np.ones(M) if self.v_teacher is None else self.v_teacher, (M,))
        for name, mat in (("Q", Q), ("T", T)):
            if not np.allclose(mat, mat.T, rtol=1e-10, atol=1e-12):
                raise ValueError(f"{name}: must be symmetric (max |{name} - {name}^T| = "
                                 f"{np.max(np.abs(mat - mat.T)):.3g})")
        C = np.block([[Q, R], [R.T, T]])
        C = 0.5 * (C + C.T)
        lam_min = float(np.linalg.eigvalsh(C)[0])
        scale = float(np.max(np.abs(np.diag(C))))
        rtol = float(self.psd_rtol)
        if not (0 <= rtol < 1):
            raise ValueError(f"psd_rtol: must be in [0, 1), got {self.psd_rtol!r}")
        if lam_min < -rtol * scale:
            raise ValueError(
                "Q, R, T: the joint overlap matrix [[Q, R], [R^T, T]] must be positive semi-definite "
                f"(smallest eigenvalue {lam_min:.3g}, below -{rtol:g} x its largest variance {scale:.3g}); "
                "overlaps of real weight vectors always are -- check |R_kn| <= sqrt(Q_kk T_nn)"
            )
        for name, arr in (("Q", Q), ("R", R), ("T", T), ("v", v), ("v_teacher", vt)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def K(self) -> int:
        return self.Q.shape[0]

    @property
    def M(self) -> int:
        return self.T.shape[0]

    @property
    def covariance(self) -> np.ndarray:
        """The (K+M) x (K+M) covariance of the local fields ``(lambda_1..K, rho_1..M)``."""
        return np.block([[self.Q, self.R], [self.R.T, self.T]])

    def check_problem(self, problem: Problem) -> None:
        if (self.K, self.M) != (problem.K, problem.M):
            raise ValueError(
                f"initial state: has K={self.K}, M={self.M} but the problem has K={problem.K}, M={problem.M}"
            )

    @classmethod
    def from_weights(cls, w, w_teacher, v=None, v_teacher=None) -> "OrderParameters":
        """Overlaps of weights ``w`` (K x N) and ``w_teacher`` (M x N): ``Q = w w^T / N`` etc."""
        w = np.asarray(w, dtype=np.float64)
        wt = np.asarray(w_teacher, dtype=np.float64)
        if w.ndim != 2 or wt.ndim != 2 or w.shape[1] != wt.shape[1]:
            raise ValueError(f"w, w_teacher: must be K x N and M x N, got {w.shape} and {wt.shape}")
        N = w.shape[1]
        Q = w @ w.T / N
        return cls(Q=0.5 * (Q + Q.T), R=w @ wt.T / N, T=wt @ wt.T / N, v=v, v_teacher=v_teacher)

    def __repr__(self) -> str:
        return f"OrderParameters(K={self.K}, M={self.M}, v={self.v}, v_teacher={self.v_teacher})"

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"Q": self.Q, "R": self.R, "T": self.T, "v": self.v, "v_teacher": self.v_teacher}


