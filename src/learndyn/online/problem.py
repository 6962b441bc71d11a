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
from ..results import InvalidInputError
from . import conventions
from ._util import as_matrix, nonneg_float, numeric, positive_int, positive_number

__all__ = ["Problem", "OrderParameters", "PSD_RTOL"]

#: Negative eigenvalues of the joint overlap matrix down to ``-PSD_RTOL`` times its largest diagonal entry
#: are rounding, not a violation: a perfectly learned unit puts the matrix on the boundary of the cone,
#: and an ODE integrated at ``rtol = 1e-8`` leaves it off by ~1e-9 of the scale (either sign).
PSD_RTOL = 1e-6


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
        object.__setattr__(self, "M", positive_int("M", self.M))
        object.__setattr__(self, "K", positive_int("K", self.K))
        object.__setattr__(self, "lr", nonneg_float("lr", self.lr, strict=True))
        if self.lr2 is not None:
            object.__setattr__(self, "lr2", nonneg_float("lr2", self.lr2))
        object.__setattr__(self, "sigma", nonneg_float("sigma", self.sigma))
        object.__setattr__(self, "weight_decay", nonneg_float("weight_decay", self.weight_decay))
        if self.quadrature_order is not None:
            object.__setattr__(self, "quadrature_order", positive_int("quadrature_order", self.quadrature_order))
        if not isinstance(self.train_second_layer, (bool, np.bool_)):
            raise InvalidInputError(f"train_second_layer: must be True or False, got {self.train_second_layer!r}")
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
        """The activation's name as given (a string), or the resolved activation's description."""
        return str(self.g) if not isinstance(self.activation, str) else self.activation

    def replace(self, **changes: Any) -> "Problem":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)



# the argument checks live in ._util; the old private names stay importable
_positive_int, _nonneg_float, _positive_number, _numeric, _as_matrix = (
    positive_int, nonneg_float, positive_number, numeric, as_matrix)


@dataclass(frozen=True, eq=False)
class OrderParameters:
    """Macroscopic state of online learning (Goldt et al. 2019, eq. (5)): ``Q`` (K x K), ``R`` (K x M),
    ``T`` (M x M), ``v`` (K), ``v_teacher`` (M), with ``Q_kl = w_k.w_l/N``, ``R_kn = w_k.w*_n/N``,
    ``T_nm = w*_n.w*_m/N``.

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
        Q = numeric("Q", self.Q, "a square K x K matrix") if self.Q is not None else None
        if Q is None or Q.ndim != 2 or Q.shape[0] != Q.shape[1]:
            raise InvalidInputError(f"Q: must be a square K x K matrix, got shape {None if Q is None else Q.shape}")
        K = Q.shape[0]
        T = numeric("T", self.T, "a square M x M matrix")
        if T.ndim != 2 or T.shape[0] != T.shape[1]:
            raise InvalidInputError(f"T: must be a square M x M matrix, got shape {T.shape}")
        M = T.shape[0]
        Q = as_matrix("Q", Q, (K, K))
        T = as_matrix("T", T, (M, M))
        R = as_matrix("R", self.R, (K, M))
        v = as_matrix("v", np.ones(K) if self.v is None else self.v, (K,))
        vt = as_matrix("v_teacher", np.ones(M) if self.v_teacher is None else self.v_teacher, (M,))
        for name, mat in (("Q", Q), ("T", T)):
            if not np.allclose(mat, mat.T, rtol=1e-10, atol=1e-12):
                raise InvalidInputError(f"{name}: must be symmetric (max |{name} - {name}^T| = "
                                        f"{np.max(np.abs(mat - mat.T)):.3g})")
        C = np.block([[Q, R], [R.T, T]])
        C = 0.5 * (C + C.T)
        lam_min = float(np.linalg.eigvalsh(C)[0])
        scale = float(np.max(np.abs(np.diag(C))))
        rtol = float(self.psd_rtol)
        if not (0 <= rtol < 1):
            raise InvalidInputError(f"psd_rtol: must be in [0, 1), got {self.psd_rtol!r}")
        if lam_min < -rtol * scale:
            raise InvalidInputError(
                "Q, R, T: the joint overlap matrix [[Q, R], [R^T, T]] must be positive semi-definite "
                f"(smallest eigenvalue {lam_min:.3g}, below -{rtol:g} x its largest variance {scale:.3g}); "
                "overlaps of real weight vectors always are -- check |R_kn| <= sqrt(Q_kk T_nn)"
            )
        for name, arr in (("Q", Q), ("R", R), ("T", T), ("v", v), ("v_teacher", vt)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def K(self) -> int:
        """Number of student hidden units."""
        return self.Q.shape[0]

    @property
    def M(self) -> int:
        """Number of teacher hidden units."""
        return self.T.shape[0]

    @property
    def covariance(self) -> np.ndarray:
        """The (K+M) x (K+M) covariance of the local fields ``(lambda_1..K, rho_1..M)``."""
        return np.block([[self.Q, self.R], [self.R.T, self.T]])

    def check_problem(self, problem: Problem) -> None:
        """Refuse (:class:`learndyn.InvalidInputError`) a state whose ``K``, ``M`` differ from the problem's."""
        if (self.K, self.M) != (problem.K, problem.M):
            raise InvalidInputError(
                f"initial state: has K={self.K}, M={self.M} but the problem has K={problem.K}, M={problem.M}"
            )

    @classmethod
    def from_weights(cls, w, w_teacher, v=None, v_teacher=None) -> "OrderParameters":
        """Overlaps of weights ``w`` (K x N) and ``w_teacher`` (M x N): ``Q = w w^T / N`` etc."""
        w = np.asarray(w, dtype=np.float64)
        wt = np.asarray(w_teacher, dtype=np.float64)
        if w.ndim != 2 or wt.ndim != 2 or w.shape[1] != wt.shape[1]:
            raise InvalidInputError(f"w, w_teacher: must be K x N and M x N, got {w.shape} and {wt.shape}")
        N = w.shape[1]
        Q = w @ w.T / N
        return cls(Q=0.5 * (Q + Q.T), R=w @ wt.T / N, T=wt @ wt.T / N, v=v, v_teacher=v_teacher)

    def __repr__(self) -> str:
        return f"OrderParameters(K={self.K}, M={self.M}, v={self.v}, v_teacher={self.v_teacher})"

    def as_dict(self) -> dict[str, np.ndarray]:
        """The arrays ``Q``, ``R``, ``T``, ``v``, ``v_teacher`` by name."""
        return {"Q": self.Q, "R": self.R, "T": self.T, "v": self.v, "v_teacher": self.v_teacher}


