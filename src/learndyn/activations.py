"""Activation functions shared by every theory in learndyn, each owning its Gaussian integrals.

An :class:`Activation` is a base function ``f`` together with an explicit **input scale** ``s``:
``g(x) = f(s * x)``. The scale keeps the two conventions of the literature explicit:

* teacher-student online learning (Saad & Solla 1995; Goldt et al. 2019) uses the sigmoidal
  ``g(x) = erf(x / sqrt(2))``, i.e. ``erf`` with ``scale = 1/sqrt(2)``
  (see :mod:`learndyn.online.conventions`);
* neural-tangents and Xiao et al. 2020 use ``erf(x)``, i.e. ``scale = 1``
  (see :mod:`learndyn.kernels`).

**An activation owns its mathematics.** Every theory asks the activation, never its name:

* the Gaussian integrals of the teacher-student ODE (Goldt et al. 2019, eqs. (6)-(8)):
  :meth:`Activation.i2` ``E[g g]``, :meth:`Activation.j2` ``E[g' g']``, :meth:`Activation.i3`
  ``E[g' z g]``, :meth:`Activation.i4` ``E[g' g' g g]`` and :meth:`Activation.product_moment` (the same
  averages over the distinct fields of a tuple with repeated indices);
* the kernel maps of the NNGP/NTK recursion (Xiao, Pennington & Schoenholz 2020):
  :meth:`Activation.kernel_map` ``(V, ntk * Vdot)`` and :meth:`Activation.kernel_diag`;
* properties: :attr:`~Activation.has_closed_form`, :attr:`~Activation.exact_integrals`,
  :attr:`~Activation.homogeneous_gain` / :attr:`~Activation.positively_homogeneous`,
  :attr:`~Activation.kinked`, :attr:`~Activation.ode_method`,
  :attr:`~Activation.kernel_precision_limited`.

The mathematics of each kind of activation lives in one :class:`Family`: closed forms where known
(``erf``, ``linear``, ``relu``, ``abrelu`` -- ``a*x`` for ``x<0``, ``b*x`` for ``x>0``; leaky ReLU is
``abrelu(a=slope, b=1)``; :mod:`learndyn.gaussian.closed_forms` and :mod:`learndyn.gaussian.relu`), and
Gauss-Hermite quadrature (:mod:`learndyn.gaussian.quadrature`) for everything else -- ``tanh``,
``sigmoid`` or a user-supplied JAX-traceable callable (:func:`custom`). **Adding an activation is one
place**: subclass :class:`Family` (a name, the base function, and any closed forms you know; the rest
falls back to quadrature) and :func:`register` it; :func:`get` then resolves its name everywhere.
The methods are plain Python dispatch, resolved while JAX traces, so they add no work to compiled code.

Identity: two activations are equal (and hash equal) only when their name, scale, slopes, label *and*
callable agree, so every cache of compiled programs keyed on an activation (or on a problem holding
one) tells two custom functions apart. Callables compare with their own ``==`` (functions: identity);
unhashable callables compare by identity. In result files a callable is stored by its qualified name
(:func:`qualified_name`); it cannot be read back from there.

Custom callables must be JAX-traceable (written with ``jax.numpy``) wherever a theory compiles them
(online ODE and SGD, kernels, Gauss-Hermite quadrature): :meth:`Activation.check_traceable` says so
in one line before any long work. The DMFT theory evaluates activations on NumPy arrays and also
accepts NumPy-only callables.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

from . import gaussian as _gauss
from .results import InvalidInputError

__all__ = ["Activation", "Family", "register", "unregister", "families", "get", "erf", "relu", "linear", "abrelu",
           "leaky_relu", "tanh", "sigmoid", "custom", "NAMES", "allowed", "qualified_name", "InvalidInputError"]

#: every name :func:`get` accepts among the built-in families (``abrelu`` needs its slopes: ``"abrelu(a, b)"``)
NAMES = ("erf", "relu", "linear", "abrelu", "leaky_relu", "tanh", "sigmoid")


def allowed() -> str:
    """The one description of accepted activations used by every error message."""
    extra = "".join(f"'{n}', " for n in _FAMILIES if n not in _BUILTIN)
    return (f"allowed are 'erf', 'relu', 'linear', 'tanh', 'sigmoid', {extra}'leaky_relu' (slope 0.01) or "
            "'leaky_relu(slope)', 'abrelu(a, b)', an Activation, or a JAX-traceable callable")


def qualified_name(fn: Any) -> str:
    """``module.qualname`` of a callable (what result files store for a custom activation)."""
    qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if qual is None:  # a callable instance
        qual = type(fn).__qualname__
        mod = type(fn).__module__
    else:
        mod = getattr(fn, "__module__", None)
    return f"{mod}.{qual}" if mod else str(qual)


class _ById:
    """Identity token for an unhashable callable (alive as long as the Activation holding it)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _ById) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _fn_token(fn: Any) -> Any:
    if fn is None:
        return None
    try:
        hash(fn)
    except TypeError:
        return _ById(fn)
    return fn


def _f64(C):
    return jnp.asarray(C, dtype=jnp.float64)


def _cov2(K, a, b):
    """Batched ``[[a, K], [K, b]]`` (broadcast)."""
    a, b, K = jnp.broadcast_arrays(a, b, K)
    return jnp.stack([jnp.stack([a, K], -1), jnp.stack([K, b], -1)], -2)


# ============================================================================================
# families: the mathematics of each kind of activation
# ============================================================================================
class Family:
    """The mathematics of one kind of activation: base function, derivative, Gaussian integrals and kernel maps.

    Every method takes the :class:`Activation` ``act`` (its ``scale``, slopes ``a``/``b`` or callable ``fn``)
    and is called by the corresponding :class:`Activation` method. This base class computes everything
    by Gauss-Hermite quadrature (:mod:`learndyn.gaussian.quadrature`) from :meth:`base` and autodiff;
    a subclass overrides what it knows in closed form. Adding an activation: subclass, set :attr:`name`,
    implement :meth:`base`, then :func:`register` an instance.
    """

    #: the name :func:`get` resolves and result files store
    name: str = ""
    #: takes the slopes ``a``, ``b`` of :class:`Activation` (``abrelu``)
    parametrised: bool = False
    #: the base function is known to be JAX-traceable (:meth:`Activation.check_traceable` skips the probe)
    known_traceable: bool = False
    #: closed forms of the 2-D integrals (``I2``, ``J2``) exist (simulations then need no test set)
    closed_form: bool = False
    #: every integral ``I2, J2, I3, I4`` in closed form, valid for singular covariances (repeated fields)
    exact_integrals: bool = False
    #: positively homogeneous with a kink at 0 (ReLU-like): at criticality correlations approach 1 like
    #: ``1/l^2``, which sets the critical-phase NTK asymptotes (Xiao et al. 2020)
    kinked: bool = False
    #: the closed-form kernel map loses float64 precision at large variances (relative error ~ 2^-52 var)
    kernel_precision_limited: bool = False
    #: the adaptive Runge-Kutta scheme that suits the ODE of this activation (:func:`learndyn.online.integrate`)
    ode_method: str = "dopri8"
    # -- evaluation ------------------------------------------------------------------------
    def base(self, act: "Activation") -> Callable:
        """The unscaled base function ``f`` (``g(x) = f(scale x)``)."""
        raise NotImplementedError(f"{type(self).__name__}.base")

    def grad(self, act: "Activation", x):
        """``g'(x) = s f'(s x)``, by autodiff of :meth:`base` unless overridden."""
        s = act.scale
        return s * jnp.vectorize(jax.grad(self.base(act)))(s * jnp.asarray(x, dtype=float))

    def homogeneous_gain(self, act: "Activation") -> float | None:
        """``E[g(sqrt(q) z)^2] / q = E[g'(sqrt(q) z)^2]`` for a positively homogeneous ``g`` (None otherwise)."""
        return None

    # -- Gaussian integrals (Goldt et al. 2019, eqs. (6)-(8)) ------------------------------
    def i2(self, act: "Activation", C, order: int):
        """``E[g(z1) g(z2)]``, ``C`` ``(..., 2, 2)``."""
        return _gauss.quadrature_i2(act, C, order)

    def j2(self, act: "Activation", C, order: int):
        """``E[g'(z1) g'(z2)]``, ``C`` ``(..., 2, 2)``."""
        return _gauss.quadrature_j2(act, C, order)

    def i3(self, act: "Activation", C, order: int):
        """``E[g'(z1) z2 g(z3)]``, ``C`` ``(..., 3, 3)``."""
        return _gauss.quadrature_i3(act, C, order)

    def i4(self, act: "Activation", C, order: int):
        """``E[g'(z1) g'(z2) g(z3) g(z4)]``, ``C`` ``(..., 4, 4)``."""
        return _gauss.quadrature_i4(act, C, order)

    def product_moment(self, act: "Activation", codes: tuple[str, ...], C, order: int):
        """``E[prod_j h_j(z_j)]`` over distinct fields, ``h_j`` the product of ``g`` (code ``"g"``) and ``g'``
        (``"d"``) factors of ``codes[j]``: tensor Gauss-Hermite, ``order`` nodes per dimension."""
        factor = {"d": act.grad, "g": act}
        fns = [functools.reduce(lambda f, h: (lambda z, f=f, h=h: f(z) * h(z)), [factor[c] for c in code])
               for code in codes]
        return _gauss.quadrature_product(fns, C, order=order)

    # -- kernel maps (Xiao, Pennington & Schoenholz 2020) ---------------------------------
    def kernel_map(self, act: "Activation", K, a, b, ntk, same):
        """``(V(Sigma), ntk * Vdot(Sigma))`` at ``Sigma = [[a, K], [K, b]]``: quadrature (``i2``, ``j2``)."""
        C = _cov2(K, a, b)
        V = _gauss.i2(act, C)
        if ntk is not None:
            ntk = ntk * _gauss.j2(act, C)
        return V, ntk

    def kernel_diag(self, act: "Activation", v):
        """``V([[v, v], [v, v]])``: quadrature."""
        C = jnp.stack([jnp.stack([v, v], -1), jnp.stack([v, v], -1)], -2)
        return _gauss.i2(act, C)

    def describe(self, act: "Activation") -> str:
        """Display name (``str(act)``)."""
        return self.name if act.scale == 1 else f"{self.name}({act.scale:.6g}*x)"

    def __repr__(self) -> str:
        return f"<activation family {self.name!r}>"


class _Erf(Family):
    """``erf``: Saad & Solla 1995 closed forms of ``I2, J2, I3, I4`` (stated for ``erf(x/sqrt 2)``: base scale
    ``r = sqrt(2) s``, ``I2_g(C) = I2(r^2 C)``, ``J2_g = r^2 J2(r^2 C)``, ``I3_g = I3(r^2 C)``,
    ``I4_g = r^2 I4(r^2 C)``), and Williams' (1997) kernel map."""

    name = "erf"
    known_traceable = closed_form = exact_integrals = kernel_precision_limited = True

    def base(self, act):
        return jsp.erf

    def grad(self, act, x):
        s = act.scale
        return s * 2.0 / jnp.sqrt(jnp.pi) * jnp.exp(-((s * x) ** 2))

    @staticmethod
    def _r2(act):
        return (math.sqrt(2.0) * act.scale) ** 2

    def i2(self, act, C, order):
        return _gauss.closed_forms.erf_i2(self._r2(act) * C)

    def j2(self, act, C, order):
        r2 = self._r2(act)
        return r2 * _gauss.closed_forms.erf_j2(r2 * C)

    def i3(self, act, C, order):
        return _gauss.closed_forms.erf_i3(self._r2(act) * C)

    def i4(self, act, C, order):
        r2 = self._r2(act)
        return r2 * _gauss.closed_forms.erf_i4(r2 * C)

    def kernel_map(self, act, K, a, b, ntk, same):
        return _gauss.closed_forms.erf_kernel_map(K, a, b, ntk, float(act.scale) ** 2)

    def kernel_diag(self, act, v):
        return _gauss.closed_forms.erf_kernel_diag(v, float(act.scale) ** 2)


class _Linear(Family):
    """``g(x) = s x``: ``I2 = s^2 C12``, ``J2 = s^2``, ``I3 = s^2 C23``, ``I4 = s^4 C34``; ``V = s^2 K``."""

    name = "linear"
    known_traceable = closed_form = exact_integrals = True

    def base(self, act):
        return lambda x: x

    def grad(self, act, x):
        return act.scale * jnp.ones_like(x)

    def homogeneous_gain(self, act):
        return float(act.scale) ** 2

    def i2(self, act, C, order):
        return act.scale ** 2 * C[..., 0, 1]

    def j2(self, act, C, order):
        return act.scale ** 2 * jnp.ones(C.shape[:-2])

    def i3(self, act, C, order):
        return act.scale ** 2 * C[..., 1, 2]

    def i4(self, act, C, order):
        r2 = act.scale ** 2
        return r2 * r2 * C[..., 2, 3]

    def kernel_map(self, act, K, a, b, ntk, same):
        s2 = float(act.scale) ** 2
        return s2 * K, (None if ntk is None else s2 * ntk)

    def kernel_diag(self, act, v):
        return float(act.scale) ** 2 * v


class _AbRelu(Family):
    """``abrelu``: ``a x`` for ``x < 0``, ``b x`` for ``x > 0`` (leaky ReLU: ``a = slope``, ``b = 1``): arc-cosine
    ``I2`` and ``J2`` (Cho & Saul 2009), quadrature for ``I3``, ``I4``; neural-tangents' ``ABRelu`` kernel map."""

    name = "abrelu"
    parametrised = True
    known_traceable = closed_form = kinked = True

    def slopes(self, act) -> tuple[float, float]:
        """The slopes ``(a, b)`` on the negative and positive half-lines."""
        return float(act.a), float(act.b)

    def base(self, act):
        a, b = act.a, act.b
        return lambda x: jnp.where(x > 0, b * x, a * x)

    def grad(self, act, x):
        return act.scale * jnp.where(x > 0, act.b, act.a)

    def homogeneous_gain(self, act):
        return 0.5 * float(act.scale) ** 2 * (act.a ** 2 + act.b ** 2)

    def i2(self, act, C, order):
        return _gauss.closed_forms.abrelu_i2(act.scale ** 2 * C, act.a, act.b)

    def j2(self, act, C, order):
        r2 = act.scale ** 2
        return r2 * _gauss.closed_forms.abrelu_j2(r2 * C, act.a, act.b)

    def kernel_map(self, act, K, a, b, ntk, same):
        sa, sb = self.slopes(act)
        return _gauss.closed_forms.abrelu_kernel_map(K, a, b, ntk, same, float(act.scale) ** 2, sa, sb)

    def kernel_diag(self, act, v):
        sa, sb = self.slopes(act)
        return _gauss.closed_forms.abrelu_kernel_diag(v, float(act.scale) ** 2, sa, sb)

    def describe(self, act):
        return f"abrelu(a={act.a}, b={act.b})" + ("" if act.scale == 1 else f"(scale {act.scale:g})")


class _Relu(_AbRelu):
    """``relu = abrelu(0, 1)``, plus ``I3`` by Stein's lemma, ``I4`` by the exact 1-D Price integral
    (:func:`learndyn.gaussian.relu_i4`) and Tallis' (1961) closed forms for tuples with repeated fields."""

    name = "relu"
    parametrised = False
    ode_method = "dopri5"

    def slopes(self, act):
        return 0.0, 1.0

    def base(self, act):
        return lambda x: jnp.maximum(x, 0.0)

    def grad(self, act, x):
        x = jnp.asarray(x)
        return act.scale * (x > 0).astype(jnp.result_type(x, float))

    def homogeneous_gain(self, act):
        return 0.5 * float(act.scale) ** 2

    def i2(self, act, C, order):
        return _gauss.closed_forms.abrelu_i2(act.scale ** 2 * C, 0.0, 1.0)

    def j2(self, act, C, order):
        r2 = act.scale ** 2
        return r2 * _gauss.closed_forms.abrelu_j2(r2 * C, 0.0, 1.0)

    def i3(self, act, C, order):
        return _gauss.closed_forms.relu_i3(act.scale ** 2 * C)

    def i4(self, act, C, order):
        r2 = act.scale ** 2
        return r2 * _gauss.relu_i4(r2 * C)

    def product_moment(self, act, codes, C, order):
        """Closed forms for products with two ``g`` factors: where fields repeat (``Theta^2 = Theta``,
        ``Theta relu = relu``) Tallis' truncated second moments (:func:`learndyn.gaussian.relu_orthant_moment`),
        for four distinct fields ``(Theta, Theta, relu, relu)`` the 1-D Price integral; any other pattern by
        quadrature."""
        g_count = [c.count("g") for c in codes]
        n_d = sum(c.count("d") for c in codes)
        exact4 = tuple(codes) == ("d", "d", "g", "g")
        if sum(g_count) != 2 or not (len(codes) < 4 or exact4):
            return super().product_moment(act, codes, C, order)
        r2 = act.scale ** 2
        Cs = r2 * C
        # g' = s Theta(s x) and g = s relu(x): s^(n_d) from the derivatives, s^2 from the two relu factors,
        # which the moment at s^2 C already carries
        scale = r2 if n_d == 2 else act.scale ** n_d
        if exact4:
            vals = _gauss.relu_i4(Cs)
        else:
            if 2 in g_count:
                i = j = g_count.index(2)
            else:
                i, j = [p for p, n in enumerate(g_count) if n == 1]
            vals = _gauss.relu_orthant_moment(Cs, i, j)
        return scale * vals

    def describe(self, act):
        return Family.describe(self, act)


class _Fixed(Family):
    """A named activation with a fixed JAX base function and no closed forms (quadrature)."""

    known_traceable = True

    def __init__(self, name: str, fn: Callable) -> None:
        self.name = name
        self._fn = fn

    def base(self, act):
        return self._fn


class _Custom(Family):
    """A user-supplied JAX-traceable callable (:func:`custom`): everything by quadrature and autodiff."""

    name = "custom"

    def base(self, act):
        return act.fn


_FAMILIES: dict[str, Family] = {}
_BUILTIN: tuple[str, ...] = ()


def register(family: Family, replace: bool = False) -> Family:
    """Make ``family`` (a :class:`Family` instance) known by its name to :func:`get` and :class:`Activation`.

    The one place to add an activation: every theory then asks it for its integrals and kernel maps.
    Registration is per process (re-register in worker processes that unpickle such activations).
    Raises :class:`InvalidInputError` when the name is malformed, belongs to a built-in activation, or is
    taken by another family (unless ``replace``).
    """
    if not isinstance(family, Family):
        raise InvalidInputError(f"family: expected a learndyn.activations.Family instance, got {type(family).__name__}")
    name = family.name
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise InvalidInputError(f"family.name: must be a lower-case identifier, got {name!r}")
    if name in _FAMILIES and _FAMILIES[name] is not family:
        if name in _BUILTIN:
            raise InvalidInputError(f"family: the name {name!r} is taken by a built-in activation; pick another name")
        if not replace:
            raise InvalidInputError(f"family: the name {name!r} is taken; pass replace=True to override it")
    _FAMILIES[name] = family
    return family


def unregister(name: str) -> None:
    """Forget the family registered as ``name`` (the inverse of :func:`register`; built-ins cannot be removed).

    Activations of that family made earlier keep working; :func:`get` no longer resolves the name.
    """
    key = str(name).lower()
    if key in _BUILTIN:
        raise InvalidInputError(f"name: {name!r} is a built-in activation and cannot be unregistered")
    if key not in _FAMILIES:
        raise InvalidInputError(f"name: no family is registered as {name!r}")
    del _FAMILIES[key]


def families() -> dict[str, Family]:
    """The registered families by name (a copy)."""
    return dict(_FAMILIES)


for _fam in (_Erf(), _Relu(), _Linear(), _AbRelu(), _Fixed("tanh", jnp.tanh), _Fixed("sigmoid", jax.nn.sigmoid),
             _Custom()):
    register(_fam)
_BUILTIN = tuple(_FAMILIES)
del _fam


@dataclass(frozen=True, eq=False)
class Activation:
    """``g(x) = f(scale * x)`` with a named base function ``f``, asked by every theory for its Gaussian integrals.

    Parameters
    ----------
    name:
        ``"erf"``, ``"relu"``, ``"linear"``, ``"abrelu"``, ``"tanh"``, ``"sigmoid"``, ``"custom"`` or the name
        of a :func:`register`-ed :class:`Family` (which owns the mathematics: :attr:`family`).
    scale:
        Input scale ``s > 0``; ``g(x) = f(s x)``.
    a, b:
        Slopes of ``abrelu`` on the negative and positive half-lines (ignored otherwise).
    fn:
        The base function for ``name="custom"`` (any JAX-traceable scalar function). Part of the
        activation's identity: two custom activations with different callables are never equal.
    label:
        Display name (``str``); for custom activations the callable's ``__name__`` by default.
    """

    name: str
    scale: float = 1.0
    a: float = 0.0
    b: float = 1.0
    fn: Callable | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in _FAMILIES:
            raise InvalidInputError(f"activation: unknown name {self.name!r}; {allowed()}")
        if self.name == "custom" and not callable(self.fn):
            raise InvalidInputError("activation: name='custom' needs a callable fn (a JAX-traceable function)")
        if self.name != "custom" and self.fn is not None:
            raise InvalidInputError(f"activation: fn is only used with name='custom', got name={self.name!r}")
        for attr in ("scale", "a", "b"):
            try:
                value = float(getattr(self, attr))
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"activation: {attr} must be a real number, got {getattr(self, attr)!r}") from None
            if not math.isfinite(value):
                raise InvalidInputError(f"activation: {attr} must be finite, got {value}")
            object.__setattr__(self, attr, value)
        if not self.scale > 0.0:
            raise InvalidInputError(f"activation: scale must be > 0, got {self.scale}")

    # -- identity ---------------------------------------------------------------------------
    def _identity(self) -> tuple:
        return (self.name, self.scale, self.a, self.b, _fn_token(self.fn), self.label)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Activation):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        fn = "" if self.fn is None else f", fn={qualified_name(self.fn)}"
        return (f"Activation(name={self.name!r}, scale={self.scale!r}, a={self.a!r}, b={self.b!r}{fn}, "
                f"label={self.label!r})")

    # -- validation of custom callables -----------------------------------------------------
    def check_traceable(self) -> "Activation":
        """Check once, before any long work, that a custom callable can be compiled by JAX.

        Traces ``g`` and ``g'`` on an abstract float64 vector (:func:`jax.eval_shape`, no numerical
        work) and raises a one-line :class:`InvalidInputError` naming the activation when the callable is not
        JAX-traceable (e.g. it calls NumPy on its input), or when it does not return floats of its
        input's shape (a string, integers, a reduced or reshaped array). Named activations pass at
        once. Returns ``self``.
        """
        if self.family.known_traceable or getattr(self, "_checked", False):
            return self
        x = jax.ShapeDtypeStruct((3,), jnp.float64)
        what = f"activation: {str(self)!r} ({qualified_name(self.fn)})"
        for part, f in (("", self.__call__), ("the derivative of ", self.grad)):
            returned: list = []

            def probe(z, f=f, returned=returned):
                out = f(z)
                if not hasattr(out, "dtype") or not hasattr(out, "shape"):  # str, list, None ...
                    returned.append(type(out).__name__)
                    return jnp.zeros(())
                return out

            try:
                out = jax.eval_shape(probe, x)
            except jax.errors.TracerArrayConversionError:
                raise InvalidInputError(
                    f"{what}: must be JAX-traceable -- write it with jax.numpy (jnp.tanh, not np.tanh); "
                    f"{part}it converted a traced array to NumPy"
                ) from None
            except jax.errors.ConcretizationTypeError:
                raise InvalidInputError(
                    f"{what}: must be JAX-traceable -- use jnp.where instead of Python if/float() on the input"
                ) from None
            except Exception as exc:  # noqa: BLE001  (any failure of the user's callable)
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise InvalidInputError(
                    f"{what}: must be a JAX-traceable elementwise function returning floats; {part}calling it on "
                    f"a float64 array failed with {type(exc).__name__}: {msg}"
                ) from None
            shape, dtype = out.shape, out.dtype
            if returned or shape != x.shape or not jnp.issubdtype(dtype, jnp.floating):
                got = f"a {returned[0]}" if returned else f"shape {shape} dtype {dtype}"
                raise InvalidInputError(
                    f"{what}: must map a float64 array elementwise to floats of the same shape "
                    f"(input shape {x.shape}); {part}it returned {got}"
                )
        object.__setattr__(self, "_checked", True)
        return self

    # -- evaluation -------------------------------------------------------------------------
    @property
    def family(self) -> Family:
        """The :class:`Family` that owns this activation's mathematics (looked up by name)."""
        return _FAMILIES[self.name]

    @property
    def base(self) -> Callable:
        """The unscaled base function f."""
        return self.family.base(self)

    def __call__(self, x):
        """``g(x) = f(scale x)``, elementwise."""
        return self.base(self.scale * x)

    def grad(self, x):
        """g'(x), elementwise (autodiff of the base function, exact closed forms where known)."""
        return self.family.grad(self, x)

    # -- properties the theories ask -------------------------------------------------------
    @property
    def has_closed_form(self) -> bool:
        """Closed forms of the 2-D Gaussian integrals ``I2``, ``J2`` exist (erf, relu, linear, abrelu)."""
        return self.family.closed_form

    @property
    def exact_integrals(self) -> bool:
        """Every integral ``I2, J2, I3, I4`` of the teacher-student ODE (Goldt et al. 2019, eqs. (6)-(8)) is in
        closed form and valid for singular covariances (erf, linear): the ODE evaluates ``I4`` on every tuple."""
        return self.family.exact_integrals

    @property
    def homogeneous_gain(self) -> float | None:
        """``E[g(sqrt(q) z)^2]/q = E[g'(sqrt(q) z)^2]`` for a positively homogeneous ``g`` (``g(c x) = c g(x)``,
        ``c > 0``: relu ``s^2/2``, abrelu ``s^2 (a^2 + b^2)/2``, linear ``s^2``), else None: the exact q-map
        slope of signal propagation (Poole et al. 2016; Xiao et al. 2020)."""
        return self.family.homogeneous_gain(self)

    @property
    def positively_homogeneous(self) -> bool:
        """``g(c x) = c g(x)`` for ``c > 0`` (relu, abrelu, linear): kernels scale exactly with the input variance."""
        return self.homogeneous_gain is not None

    @property
    def kinked(self) -> bool:
        """Positively homogeneous with a kink at 0 (relu, abrelu): the critical-phase NTK asymptotes of
        Xiao et al. 2020 differ from those of smooth activations."""
        return self.family.kinked

    @property
    def ode_method(self) -> str:
        """The Runge-Kutta scheme that suits this activation's ODE: ``"dopri5"`` for ReLU (its Gaussian averages
        have square-root branch points at collinear fields), ``"dopri8"`` otherwise."""
        return self.family.ode_method

    @property
    def kernel_precision_limited(self) -> bool:
        """The closed-form kernel map loses float64 precision at large variances (erf: relative error
        ~ 2^-52 x variance), so networks check their input scale."""
        return self.family.kernel_precision_limited

    # -- Gaussian integrals (Saad & Solla 1995; Goldt et al. 2019, eqs. (6)-(8)) ---------------
    def i2(self, C, order: int = 40):
        """``I2(C) = E[g(z1) g(z2)]`` for ``z ~ N(0, C)``, ``C`` ``(..., 2, 2)``: closed form where known,
        else ``order x order`` Gauss-Hermite."""
        return self.family.i2(self, _f64(C), order)

    def j2(self, C, order: int = 40):
        """``J2(C) = E[g'(z1) g'(z2)]``, ``C`` ``(..., 2, 2)``."""
        return self.family.j2(self, _f64(C), order)

    def i3(self, C, order: int = 40):
        """``I3(C) = E[g'(z1) z2 g(z3)]``, ``C`` ``(..., 3, 3)``."""
        return self.family.i3(self, _f64(C), order)

    def i4(self, C, order: int | None = None):
        """``I4(C) = E[g'(z1) g'(z2) g(z3) g(z4)]``, ``C`` ``(..., 4, 4)``; ``order``: Gauss-Hermite nodes per
        dimension without closed form (default :data:`learndyn.gaussian.I4_ORDER`; ReLU: exact 1-D integral)."""
        return self.family.i4(self, _f64(C), _gauss.I4_ORDER if order is None else order)

    def product_moment(self, codes, C, order: int):
        """``E[prod_j h_j(z_j)]`` for ``z ~ N(0, C)``, ``C`` ``(..., m, m)``, ``h_j`` the product of the factors
        ``codes[j]`` (``"g"``: ``g``, ``"d"``: ``g'``; e.g. ``("dg", "g")`` is ``E[g'(z1) g(z1) g(z2)]``).

        The integrals of the ODE with repeated fields (``I4(i, i, c, d)`` ...) collapsed onto the distinct
        fields; ``order``: nodes per dimension where quadrature is used (ReLU: closed forms)."""
        return self.family.product_moment(self, tuple(codes), _f64(C), order)

    # -- kernel maps (Xiao, Pennington & Schoenholz 2020) ------------------------------------
    def kernel_map(self, K, a, b, ntk=None, same=None):
        """``(V(Sigma), ntk * Vdot(Sigma))`` for ``Sigma = [[a, K], [K, b]]`` (broadcast): the NNGP map
        ``V = E[g(u) g(v)]`` and the NTK factor ``Vdot = E[g'(u) g'(v)]`` of one nonlinearity (Xiao et al. 2020;
        Cho & Saul 2009 for ReLU). ``ntk=None`` skips ``Vdot``. ``same`` (boolean mask): entries that pair an
        input with itself; there ``K`` is the self variance exactly (``(a + b)/2``), so rounding cannot grow
        with depth."""
        if same is not None:
            # an input position with itself: the pair entry is the self variance, exactly. In the chaotic
            # phase dV/dK = chi_1 > 1 at K = a = b, so rounding differences between the pair and self
            # recursions would otherwise grow like chi_1^depth (erf, depth ~200: NTK diagonal -> inf)
            K = jnp.where(same, 0.5 * (a + b), K)
        return self.family.kernel_map(self, K, a, b, ntk, same)

    def kernel_diag(self, v):
        """``V([[v, v], [v, v]]) = E[g(sqrt(v) z)^2]``: the NNGP map on the diagonal (the q-map without weights)."""
        return self.family.kernel_diag(self, v)

    def __str__(self) -> str:
        if self.label:
            return self.label
        return self.family.describe(self)


def erf(scale: float = 1.0) -> Activation:
    """``erf(scale * x)``: closed-form Gaussian integrals (Saad & Solla 1995; Williams 1997)."""
    return Activation("erf", scale=scale)


def relu(scale: float = 1.0) -> Activation:
    """``max(scale * x, 0)``: closed-form arc-cosine integrals (Cho & Saul 2009)."""
    return Activation("relu", scale=scale)


def linear(scale: float = 1.0) -> Activation:
    """``scale * x``."""
    return Activation("linear", scale=scale)


def abrelu(a: float, b: float, scale: float = 1.0) -> Activation:
    """``a*x`` for ``x < 0`` and ``b*x`` for ``x > 0``."""
    return Activation("abrelu", scale=scale, a=float(a), b=float(b))


def leaky_relu(slope: float = 0.01, scale: float = 1.0) -> Activation:
    """``abrelu(slope, 1)``: ``slope * x`` for ``x < 0``, ``x`` for ``x > 0``."""
    return abrelu(slope, 1.0, scale)


def tanh(scale: float = 1.0) -> Activation:
    """``tanh(scale * x)`` (Gaussian integrals by quadrature)."""
    return Activation("tanh", scale=scale)


def sigmoid(scale: float = 1.0) -> Activation:
    """``1 / (1 + exp(-scale * x))`` (Gaussian integrals by quadrature)."""
    return Activation("sigmoid", scale=scale)


def custom(fn: Callable, scale: float = 1.0, label: str | None = None) -> Activation:
    """Any JAX-traceable scalar function; its Gaussian integrals are computed by quadrature.

    The callable is part of the activation's identity (see the module docstring); ``label``
    (default ``fn.__name__``) is only its display name.
    """
    if not callable(fn):
        raise InvalidInputError(f"activation: expected a callable, got {type(fn).__name__}")
    return Activation("custom", scale=scale, fn=fn, label=label or getattr(fn, "__name__", None)
                      or type(fn).__name__)


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PARAM = re.compile(r"^(abrelu|leaky_relu)\((.*)\)$")


def _parametrised(key: str, scale: float) -> Activation | None:
    """``"abrelu(a, b)"`` / ``"abrelu(a=.., b=..)"`` (the form ``str`` prints) and ``"leaky_relu(slope)"``."""
    m = _PARAM.match(key.replace(" ", ""))
    if m is None:
        return None
    kind, body = m.groups()
    names = ("a", "b") if kind == "abrelu" else ("slope",)
    vals: dict[str, float] = {}
    parts = [p for p in body.split(",") if p] if body else []
    for i, part in enumerate(parts):
        name, _, num = part.rpartition("=")
        name = name or (names[i] if i < len(names) else "")
        if name not in names or name in vals or not re.fullmatch(_NUM, num):
            return None
        vals[name] = float(num)
    if len(vals) != len(names):
        return None
    if kind == "abrelu":
        return abrelu(vals["a"], vals["b"], scale=scale)
    return leaky_relu(vals["slope"], scale=scale)


def get(spec: "str | Activation | Callable", scale: float = 1.0) -> Activation:
    """Resolve a name, an :class:`Activation` or a callable into an :class:`Activation`.

    Names (case-insensitive): ``erf``, ``relu``, ``linear``, ``tanh``, ``sigmoid``, ``leaky_relu``
    (slope 0.01) and the parametrised ``"leaky_relu(slope)"`` and ``"abrelu(a, b)"`` (also
    ``"abrelu(a=-0.3, b=1.2)"``, the form ``str`` prints), and the name of any :func:`register`-ed
    :class:`Family`. A name gets the input ``scale`` given here;
    theory modules pass their convention's scale (e.g. ``1/sqrt(2)`` for ``erf`` in
    :mod:`learndyn.online.conventions`). Every rejection is a one-line :class:`InvalidInputError` (a
    ``ValueError``) starting with ``activation:`` and listing the allowed names.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key.startswith("leaky-relu"):
            key = "leaky_relu" + key[len("leaky-relu"):]
        if key == "leaky_relu":
            return leaky_relu(scale=scale)
        if key == "abrelu":
            raise InvalidInputError("activation: 'abrelu' needs its slopes: write 'abrelu(a, b)' "
                                    "(e.g. 'abrelu(-0.5, 1)') or use learndyn.activations.abrelu(a, b)")
        fam = _FAMILIES.get(key)
        if fam is not None and not fam.parametrised and key != "custom":
            return Activation(key, scale=scale)
        parsed = _parametrised(key, scale)
        if parsed is not None:
            return parsed
        raise InvalidInputError(f"activation: unknown name {spec!r}; {allowed()}")
    if callable(spec):
        return custom(spec, scale=scale)
    raise InvalidInputError(f"activation: expected a name, an Activation or a callable, got {type(spec).__name__}; "
                     f"{allowed()}")
