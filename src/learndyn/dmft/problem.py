r"""Problem description of the DMFT of large two-layer networks (Montanari & Urbani 2025).

One frozen :class:`Problem` goes to every DMFT solver (:func:`learndyn.dmft.solve`, the reduced
systems of :mod:`learndyn.dmft.reduced`) and to the simulations (Gaussian-model GD, real networks),
so theory and simulation can never disagree on conventions.

Model (Montanari & Urbani 2025, Sec. 1-2): ``f(x) = (1/m) sum_i a_i sigma(<w_i, x>)`` with ``||w_i|| = 1``,
``n = abar d`` samples (``abar = n_over_d``), ``alpha = abar/m`` samples per parameter, targets
``y = phi(<u, x>) + eps`` with ``eps ~ N(0, tau^2)`` (pure noise: ``phi = 0``).
The activation enters only through ``h(q) = E[sigma(G1) sigma(Gq)] = sum_k s_k^2 q^k`` and the target
through ``hatphi(q) = E[phi(G1) sigma(Gq)] = sum_k s_k f_k q^k`` and ``||phi||^2 = sum_k f_k^2``
(their kernel functions), with ``s_k, f_k`` the normalised Hermite coefficients of ``sigma`` and ``phi``.

Centring (their App. A-B): the model assumes ``E sigma(G) = 0`` and ``E phi(G) = 0``; then ``h(0) =
s_0^2 = 0`` and ``hatphi(0) = s_0 f_0 = 0``. An activation given as a function is centred here
(its mean ``s_0`` is subtracted, i.e. its constant Hermite term is dropped); power-series
coefficients with a non-zero constant are refused, because ``h(0) = (E sigma(G))^2 > 0`` would
describe an uncentred network that the DMFT equations do not cover.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..results import InvalidInputError

__all__ = ["Problem", "PowerSeries", "hermite_coefficients"]


# --------------------------------------------------------------------------------------------
# power series with exact derivatives
# --------------------------------------------------------------------------------------------
class PowerSeries:
    """``p(q) = sum_k c_k q^k`` with exact first and second derivatives (Horner, vectorised)."""

    def __init__(self, coeffs: Sequence[float]):
        c = np.asarray(coeffs, dtype=np.float64).ravel()
        if c.size == 0:
            c = np.zeros(1)
        # trim trailing zeros (cheaper Horner), keep at least one coefficient
        nz = np.nonzero(c)[0]
        c = c[: (nz[-1] + 1 if nz.size else 1)]
        self.c = c
        k = np.arange(c.size, dtype=np.float64)
        self.c1 = (c * k)[1:] if c.size > 1 else np.zeros(1)
        self.c2 = (c * k * (k - 1))[2:] if c.size > 2 else np.zeros(1)

    @staticmethod
    def _horner(c: np.ndarray, x):
        x = np.asarray(x, dtype=np.float64)
        out = np.full(x.shape, c[-1])
        for ck in c[-2::-1]:
            out *= x
            out += ck
        return out

    def __call__(self, x):
        """``p(x)`` elementwise."""
        return self._horner(self.c, x)

    def at(self, x: float) -> tuple[float, float, float]:
        """``(p(x), p'(x), p''(x))`` at a Python scalar (Horner on floats: no array overhead)."""
        x = float(x)
        p = d1 = d2 = 0.0
        for ck in self.c[::-1].tolist():
            d2 = d2 * x + 2.0 * d1
            d1 = d1 * x + p
            p = p * x + ck
        return p, d1, d2

    def with_derivatives(self, x):
        """``(p(x), p'(x), p''(x))`` elementwise in one Horner pass (``x`` an array)."""
        x = np.asarray(x, dtype=np.float64)
        c = self.c
        p = np.full(x.shape, c[-1])
        d1 = np.zeros(x.shape)
        d2 = np.zeros(x.shape)
        for ck in c[-2::-1]:
            d2 *= x
            d2 += 2.0 * d1
            d1 *= x
            d1 += p
            p *= x
            p += ck
        return p, d1, d2

    def d1(self, x):
        """``p'(x)`` elementwise."""
        return self._horner(self.c1, x)

    def d2(self, x):
        """``p''(x)`` elementwise."""
        return self._horner(self.c2, x)

    @property
    def degree(self) -> int:
        """The degree (index of the last non-zero coefficient)."""
        return self.c.size - 1

    @property
    def is_zero(self) -> bool:
        """True for the zero series."""
        return not np.any(self.c)

    def __repr__(self) -> str:
        return "PowerSeries(" + ", ".join(f"{x:.6g}" for x in self.c) + ")"


# --------------------------------------------------------------------------------------------
# Hermite expansion of a function by Gauss-Hermite quadrature
# --------------------------------------------------------------------------------------------
def hermite_coefficients(fn, degree: int = 20, order: int = 16, panel: float = 0.05) -> tuple[np.ndarray, float]:
    r"""Normalised Hermite coefficients ``f_k = E[f(G) He_k(G)]/sqrt(k!)``, ``k = 0..degree``, and ``E f(G)^2``.

    Composite Gauss-Legendre quadrature of ``f(x) p_k(x) phi(x)`` on ``[-L, L]``, ``L = 10 + 2 sqrt(degree)``, with
    panels of width ``panel`` and ``order`` nodes each; ``x = 0`` is a panel boundary, so activations with a kink at
    0 (ReLU, leaky ReLU) are integrated to round-off (plain Gauss-Hermite converges only algebraically there).
    The normalised polynomials obey ``p_{k+1} = (x p_k - sqrt(k) p_{k-1})/sqrt(k+1)``.
    ``E f^2 - sum_k f_k^2`` is the truncation residual.
    """
    L = 10.0 + 2.0 * math.sqrt(degree)
    n_half = int(math.ceil(L / panel))
    edges = np.linspace(-n_half * panel, n_half * panel, 2 * n_half + 1)
    xg, wg = np.polynomial.legendre.leggauss(order)
    mid = 0.5 * (edges[1:] + edges[:-1])
    x = (mid[:, None] + 0.5 * panel * xg[None, :]).ravel()
    w = np.tile(0.5 * panel * wg, mid.size) * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    fx = np.asarray(fn(x), dtype=np.float64)
    if fx.shape != x.shape or not np.all(np.isfinite(fx)):
        raise InvalidInputError("activation: must map arrays elementwise to finite reals")
    coeffs = np.empty(degree + 1)
    p_prev = np.zeros_like(x)
    p = np.ones_like(x)
    for k in range(degree + 1):
        coeffs[k] = np.sum(w * fx * p)
        p_next = (x * p - math.sqrt(k) * p_prev) / math.sqrt(k + 1)
        p_prev, p = p, p_next
    ef2 = float(np.sum(w * fx * fx))
    coeffs[np.abs(coeffs) < 1e-14 * math.sqrt(max(ef2, 1e-300))] = 0.0  # round-off (e.g. odd f)
    return coeffs, ef2


def _as_function(spec: Any, param: str):
    """A NumPy-callable for a name, an :class:`~learndyn.activations.Activation` or a callable (NumPy or
    JAX). Errors start with ``param`` (``h`` or ``target``) and name the activation; a callable that does
    not return real numbers of its input's shape is refused when first evaluated."""
    from .. import activations

    try:
        act = activations.get(spec)
    except ValueError as exc:
        raise InvalidInputError(f"{param}: {str(exc).removeprefix('activation: ')}") from None
    what = f"{param}: activation {str(act)!r}" + ("" if act.fn is None else f" ({activations.qualified_name(act.fn)})")

    def f(x):
        x = np.asarray(x)
        out = act(x)
        try:
            arr = np.asarray(out)
        except Exception:  # noqa: BLE001  (e.g. a ragged list)
            arr = np.asarray(None)
        if arr.dtype.kind not in "biuf" or arr.shape != x.shape:
            got = f"shape {arr.shape} dtype {arr.dtype}" if arr.dtype.kind in "biufc" else f"a {type(out).__name__}"
            raise InvalidInputError(f"{what}: must map an array elementwise to real numbers of the same shape "
                             f"(input shape {x.shape}); it returned {got}")
        return arr.astype(np.float64)

    return f, str(act)


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def _float(name: str, value: Any, *, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool):
        raise InvalidInputError(f"{name}: must be a real number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a real number, got {value!r}") from None
    if not np.isfinite(x):
        raise InvalidInputError(f"{name}: must be finite, got {value!r}")
    if minimum is not None and (x < minimum or (strict and x == minimum)):
        raise InvalidInputError(f"{name}: must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return x


def _coeff_array(name: str, value: Any) -> np.ndarray:
    try:
        c = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: must be a sequence of power-series coefficients, got {value!r}") from None
    if c.ndim != 1 or c.size == 0:
        raise InvalidInputError(f"{name}: must be a non-empty 1-D sequence of coefficients, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise InvalidInputError(f"{name}: coefficients must be finite")
    return c


def _is_coefficients(value: Any) -> bool:
    if isinstance(value, (str, bytes)) or callable(value):
        return False
    return isinstance(value, (list, tuple, np.ndarray))


# --------------------------------------------------------------------------------------------
# Problem
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    r"""A two-layer-network learning problem in the DMFT scaling (Montanari & Urbani 2025, Sec. 2).

    Frozen and hashable: sequences are stored as tuples (``h``, ``target``, ``a0``, ``v0``, ``C0`` as nested
    tuples), so equal problems are equal cache keys; activations are compared by identity of their callable.

    Parameters
    ----------
    m:
        Width (number of hidden units), ``>= 1``.
    n_over_d:
        ``abar = n/d > 0``. The overparametrisation ratio is ``alpha = abar/m`` (:attr:`alpha`).
    tau:
        Label-noise standard deviation ``>= 0`` (Bayes error ``tau^2/2``).
    a0:
        Initial second-layer weight: one number (symmetric initialisation ``a_i(0) = a0``, the
        paper's setting) or ``m`` numbers (non-symmetric; solved by the general m x m DMFT).
        Lazy initialisation is ``a0 = gamma0 sqrt(m)``, mean-field ``a0 = O(1)``.
    h:
        The activation's kernel ``h(q) = sum_k c_k q^k``: either power-series coefficients
        ``[c_0, c_1, ...]`` (exact derivatives; ``c_0`` must be 0 and ``c_k >= 0``), or an activation
        (a name such as ``"tanh"``, a :class:`learndyn.activations.Activation`, or a NumPy/JAX
        callable), whose normalised Hermite coefficients ``s_k`` are computed by quadrature up to
        ``hermite_degree``; it is centred (``s_0`` dropped) and ``h(q) = sum_{k>=1} s_k^2 q^k``.
    target:
        ``None``: pure noise (``phi = 0``). ``"activation"``: ``phi = sigma``, so ``hatphi = h`` and
        ``||phi||^2 = h(1)``. A sequence: power-series coefficients of ``hatphi`` (``b_0 = 0``); then
        ``||phi||^2`` is ``target_norm2`` if given, else the smallest value compatible with ``hatphi``,
        ``sum_k b_k^2/c_k`` (``phi`` in the span of ``sigma``'s Hermite components).
        An activation (name/callable): ``phi`` itself, expanded in Hermite polynomials
        (``hatphi(q) = sum_k s_k f_k q^k``, ``||phi||^2 = Var phi(G)``).
    train_second_layer:
        ``False`` freezes ``a(t) = a0`` (the paper's fixed-complexity runs).
    target_norm2:
        ``||phi||^2`` for a target given by ``hatphi`` coefficients (see ``target``).
    C0, v0:
        Initial overlaps ``C_ij(0,0) = <w_i(0), w_j(0)>`` (m x m, unit diagonal, PSD) and
        ``v_i(0) = <u, w_i(0)>`` (m numbers or one number). Default: ``I`` and ``0`` (uniform
        initialisation in high dimension). ``C0 - v0 v0^T`` must be PSD.
    hermite_degree, quadrature_order:
        Truncation degree of the Hermite expansion, and Gauss-Legendre nodes per panel of the quadrature
        (:func:`hermite_coefficients`), for activations given as functions.
    """

    m: int
    n_over_d: float
    tau: float = 1.0
    a0: Any = 1.0
    h: Any = (0.0, 0.9, 0.0, 1.0 / 6.0)
    target: Any = None
    train_second_layer: bool = True
    target_norm2: float | None = None
    C0: Any = None
    v0: Any = None
    hermite_degree: int = 20
    quadrature_order: int = 16

    # ---------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("m", _positive_int("m", self.m))
        set_("n_over_d", _float("n_over_d", self.n_over_d, minimum=0.0, strict=True))
        set_("tau", _float("tau", self.tau, minimum=0.0))
        set_("hermite_degree", _positive_int("hermite_degree", self.hermite_degree))
        set_("quadrature_order", _positive_int("quadrature_order", self.quadrature_order))
        if not isinstance(self.train_second_layer, (bool, np.bool_)):
            raise InvalidInputError(f"train_second_layer: must be True or False, got {self.train_second_layer!r}")
        set_("train_second_layer", bool(self.train_second_layer))
        # a0: scalar or length-m
        if np.ndim(self.a0) == 0:
            set_("a0", _float("a0", self.a0))
        else:
            a = np.asarray(self.a0, dtype=np.float64)
            if a.shape != (self.m,) or not np.all(np.isfinite(a)):
                raise InvalidInputError(f"a0: must be one finite number or {self.m} finite numbers, got shape {a.shape}")
            set_("a0", tuple(float(x) for x in a))
        # sequences are stored as tuples (the problem is hashable: equal problems are one cache key)
        if _is_coefficients(self.h):
            set_("h", tuple(float(x) for x in _coeff_array("h", self.h)))
        if _is_coefficients(self.target):
            set_("target", tuple(float(x) for x in _coeff_array("target", self.target)))
        if self.target_norm2 is not None:
            set_("target_norm2", _float("target_norm2", self.target_norm2))
        # h and the target are resolved once here, so errors surface at construction
        self._kernels  # noqa: B018  (validates)
        _, C, v = self.initial_state
        if self.C0 is not None:
            set_("C0", tuple(tuple(float(x) for x in row) for row in C))
        if self.v0 is not None:
            set_("v0", float(self.v0) if np.ndim(self.v0) == 0 else tuple(float(x) for x in v))

    def replace(self, **changes: Any) -> "Problem":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------------------------------
    @property
    def alpha(self) -> float:
        """``alpha = n/(m d) = abar/m``, the prefactor of every DMFT memory kernel."""
        return self.n_over_d / self.m

    @property
    def pure_noise(self) -> bool:
        """True for the pure-noise problem, ``phi = 0`` (``hatphi = 0`` and ``||phi||^2 = 0``)."""
        return self.hatphi.is_zero and self.phi_norm2 == 0.0

    @functools.cached_property
    def _kernels(self) -> tuple[PowerSeries, PowerSeries, float, np.ndarray, str]:
        deg, order = self.hermite_degree, self.quadrature_order
        # ---- h ----
        if _is_coefficients(self.h):
            c = _coeff_array("h", self.h)
            if c[0] != 0.0:
                raise InvalidInputError(
                    f"h: h(0) = c_0 = {c[0]:g} must be 0. The model assumes a centred activation, "
                    "E sigma(G) = 0 (Montanari & Urbani 2025, App. A), and h(0) = (E sigma(G))^2. Subtract the mean of "
                    "sigma, i.e. drop the constant coefficient (or pass the activation itself: it is "
                    "centred automatically)."
                )
            if np.any(c < 0):
                raise InvalidInputError(
                    "h: coefficients must be >= 0 (h(q) = sum_k s_k^2 q^k is a covariance kernel), got "
                    f"{c.tolist()}"
                )
            if not np.any(c > 0):
                raise InvalidInputError("h: must not be identically zero")
            s = np.sqrt(c)
            label = "h=" + "+".join(f"{x:g}z^{k}" for k, x in enumerate(c) if x)
        else:
            fn, name = _as_function(self.h, "h")
            s, _ = hermite_coefficients(fn, deg, order)
            s = s.copy()
            s[0] = 0.0  # centring: sigma -> sigma - E sigma(G)
            c = s * s
            if not np.any(c > 0):
                raise InvalidInputError("h: the centred activation is identically zero")
            label = f"sigma={name}"
        # ---- target ----
        t = self.target
        if t is None:
            if self.target_norm2 not in (None, 0, 0.0):
                raise InvalidInputError("target_norm2: must be None (or 0) for pure noise (target=None)")
            b, norm2 = np.zeros(1), 0.0
        elif isinstance(t, str) and t == "activation":
            if self.target_norm2 is not None:
                raise InvalidInputError("target_norm2: must be None for target='activation' (||phi||^2 = h(1))")
            b, norm2 = c.copy(), float(np.sum(c))
        elif _is_coefficients(t):
            b = _coeff_array("target", t)
            if b[0] != 0.0:
                raise InvalidInputError(
                    f"target: hatphi(0) = {b[0]:g} must be 0 (centred target, E phi(G) = 0, Montanari & Urbani 2025, Sec. 2); "
                    "drop the constant coefficient"
                )
            cc = np.zeros(max(b.size, c.size))
            cc[: c.size] = c
            bb = np.zeros_like(cc)
            bb[: b.size] = b
            if np.any((bb != 0) & (cc == 0)):
                raise InvalidInputError(
                    "target: hatphi has a term q^k where h has none (s_k = 0 forces s_k f_k = 0)"
                )
            with np.errstate(divide="ignore", invalid="ignore"):
                minimal = float(np.sum(np.where(cc > 0, bb * bb / np.where(cc > 0, cc, 1.0), 0.0)))
            if self.target_norm2 is None:
                norm2 = minimal
            else:
                norm2 = _float("target_norm2", self.target_norm2, minimum=0.0)
                if norm2 < minimal * (1 - 1e-12):
                    raise InvalidInputError(
                        f"target_norm2: must be >= sum_k b_k^2/c_k = {minimal:.6g} (Cauchy-Schwarz), got {norm2:g}"
                    )
        else:
            fn, _ = _as_function(t, "target")
            f, ef2 = hermite_coefficients(fn, deg, order)
            norm2 = max(ef2 - f[0] ** 2, 0.0)  # centred phi
            if self.target_norm2 is not None:
                raise InvalidInputError("target_norm2: must be None when the target is a function")
            n = min(f.size, s.size)
            b = np.zeros(n)
            b[1:n] = s[1:n] * f[1:n]
        return PowerSeries(c), PowerSeries(b), float(norm2), s, label

    @property
    def h_series(self) -> PowerSeries:
        """``h`` as a :class:`PowerSeries` (``h``, ``h'``, ``h''`` exact)."""
        return self._kernels[0]

    @property
    def hatphi(self) -> PowerSeries:
        """``hatphi`` as a :class:`PowerSeries` (zero for pure noise)."""
        return self._kernels[1]

    @property
    def phi_norm2(self) -> float:
        """``||phi||^2 = E phi(G)^2``."""
        return self._kernels[2]

    @property
    def sigma_hermite(self) -> np.ndarray:
        """Normalised Hermite coefficients ``s_k`` of the (centred) activation (``sqrt(c_k)`` for series)."""
        return self._kernels[3]

    @property
    def h_coeffs(self) -> np.ndarray:
        """Power-series coefficients ``c_k`` of ``h(q) = sum_k c_k q^k`` (Montanari & Urbani 2025, Eq. (6))."""
        return self.h_series.c

    @property
    def hatphi_coeffs(self) -> np.ndarray:
        """Power-series coefficients of ``hatphi(q) = E[phi(G_1) sigma(G_q)]``."""
        return self.hatphi.c

    def h_tilde(self) -> PowerSeries:
        """``h_tilde(q) = h(q) - h'(0) q``: the non-linear part of the activation's kernel."""
        c = self.h_coeffs.copy()
        if c.size > 1:
            c[1] = 0.0
        return PowerSeries(c)

    # ---------------------------------------------------------------------------------------
    @functools.cached_property
    def _initial_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.m
        a = np.full(m, self.a0) if np.ndim(self.a0) == 0 else np.asarray(self.a0, dtype=np.float64)
        if self.C0 is None:
            C = np.eye(m)
        else:
            try:
                C = np.array(self.C0, dtype=np.float64)
            except (TypeError, ValueError):
                raise InvalidInputError(f"C0: must be a numeric {m}x{m} matrix") from None
            if C.shape != (m, m):
                raise InvalidInputError(f"C0: expected shape ({m}, {m}), got {C.shape}")
            if not np.all(np.isfinite(C)):
                raise InvalidInputError("C0: contains NaN or infinite entries")
            if not np.allclose(C, C.T, atol=1e-12):
                raise InvalidInputError("C0: must be symmetric (C_ij(0,0) = <w_i, w_j>)")
            if not np.allclose(np.diag(C), 1.0, atol=1e-12):
                raise InvalidInputError("C0: diagonal must be 1 (unit-norm first-layer rows)")
        if self.v0 is None:
            v = np.zeros(m)
        else:
            v = np.asarray(self.v0, dtype=np.float64)
            v = np.full(m, float(v)) if v.ndim == 0 else v
            if v.shape != (m,) or not np.all(np.isfinite(v)):
                raise InvalidInputError(f"v0: must be one number or {m} numbers")
            if np.any(np.abs(v) > 1):
                raise InvalidInputError("v0: overlaps with the unit target direction must lie in [-1, 1]")
            if self.target is None and np.any(v != 0):
                raise InvalidInputError("v0: must be 0 for pure noise (there is no target direction)")
        gram = C - np.outer(v, v)
        lam = np.linalg.eigvalsh(0.5 * (gram + gram.T))
        if lam.min() < -1e-10:
            what = "C0" if self.v0 is None else "C0 - v0 v0^T"
            raise InvalidInputError(
                f"{what}: must be positive semi-definite (a Gram matrix of unit vectors), smallest eigenvalue "
                f"{lam.min():.3g}"
            )
        for x in (a, C, v):
            x.flags.writeable = False
        return a, C, v

    @property
    def initial_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The initial condition ``(a_i(0), C_ij(0, 0), v_i(0))`` of the DMFT (Montanari & Urbani 2025, Sec. 2.2),
        as read-only arrays of shapes ``(m,)``, ``(m, m)``, ``(m,)`` (validated at construction)."""
        return self._initial_state

    @property
    def a0_vector(self) -> np.ndarray:
        """``a_i(0)``, a writable copy, shape ``(m,)``."""
        return self.initial_state[0].copy()

    @property
    def C0_matrix(self) -> np.ndarray:
        """``C_ij(0, 0) = <w_i(0), w_j(0)>``, a writable copy, shape ``(m, m)``."""
        return self.initial_state[1].copy()

    @property
    def v0_vector(self) -> np.ndarray:
        """``v_i(0) = <u, w_i(0)>``, a writable copy, shape ``(m,)``."""
        return self.initial_state[2].copy()

    @property
    def is_symmetric(self) -> bool:
        """Permutation-symmetric initial state (equal ``a_i``, equal ``v_i``, ``C0`` = (1-c) I + c 11^T):
        solvable by the symmetric DMFT (SymmDMFT, Montanari & Urbani 2025, App. C-D)."""
        a, C, v = self.initial_state
        if self.m == 1:
            return True
        off = C[~np.eye(self.m, dtype=bool)]
        return bool(np.all(a == a[0]) and np.all(v == v[0]) and np.all(off == off[0]))

    @property
    def stiffness(self) -> float:
        """Initial local relaxation rate ``lambda_fast = alpha a0^2 (h'(1)/m + (1 - 1/m) h'(C_o(0,0)))``
        (``≈ alpha a0^2 h'(0)`` for ``C_o = 0`` and large m), ``a0 = max |a_i(0)|``: the rate of the
        stiffest (mean-neuron) mode. Explicit Euler is accurate for ``dt * lambda_fast`` well below 1; its stability
        limit is lower than ``2/lambda_fast`` (the spread of the relaxation spectrum and the equal-time rule):
        see :func:`learndyn.dmft.step_limits`.
        """
        a, C, _ = self.initial_state
        amax = float(np.max(np.abs(a)))
        m = self.m
        co = float(np.max(np.abs(C[~np.eye(m, dtype=bool)]))) if m > 1 else 0.0
        hs = self.h_series
        rate = float(hs.d1(np.array(1.0))) / m + (1.0 - 1.0 / m) * float(hs.d1(np.array(co)))
        return float(self.alpha * amax * amax * rate)

    @property
    def label(self) -> str:
        """A short text naming the activation (``h=...`` or ``sigma=...``)."""
        return self._kernels[4]
