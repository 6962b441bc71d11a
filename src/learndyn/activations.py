"""Activation functions shared by every theory in learndyn.

An :class:`Activation` is a base function ``f`` together with an explicit **input scale** ``s``:
``g(x) = f(s * x)``. The scale keeps the two conventions of the literature explicit:

* teacher-student online learning (Saad & Solla 1995; Goldt et al. 2019) uses the sigmoidal
  ``g(x) = erf(x / sqrt(2))``, i.e. ``erf`` with ``scale = 1/sqrt(2)``
  (see :mod:`learndyn.online.conventions`);
* neural-tangents and Xiao et al. 2020 use ``erf(x)``, i.e. ``scale = 1``
  (see :mod:`learndyn.kernels`).

Closed-form Gaussian integrals (:mod:`learndyn.gaussian`) exist for ``erf``, ``relu``, ``linear`` and
``abrelu`` (``a*x`` for ``x<0``, ``b*x`` for ``x>0``; leaky ReLU is ``abrelu(a=slope, b=1)``).
Every other activation -- ``tanh``, ``sigmoid`` or a user-supplied JAX-traceable callable -- is
integrated by Gauss-Hermite quadrature.

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

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

__all__ = ["Activation", "get", "erf", "relu", "linear", "abrelu", "leaky_relu", "tanh", "sigmoid", "custom",
           "NAMES", "allowed", "qualified_name"]

CLOSED_FORM = ("erf", "relu", "linear", "abrelu")


def _abrelu_fn(a: float, b: float) -> Callable:
    return lambda x: jnp.where(x > 0, b * x, a * x)


_BASE: dict[str, Callable] = {
    "erf": jsp.erf,
    "relu": lambda x: jnp.maximum(x, 0.0),
    "linear": lambda x: x,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}

#: every name :func:`get` accepts (``abrelu`` needs its slopes: ``"abrelu(a, b)"``)
NAMES = ("erf", "relu", "linear", "abrelu", "leaky_relu", "tanh", "sigmoid")


def allowed() -> str:
    """The one description of accepted activations used by every error message."""
    return ("allowed are 'erf', 'relu', 'linear', 'tanh', 'sigmoid', 'leaky_relu' (slope 0.01) or "
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


@dataclass(frozen=True, eq=False)
class Activation:
    """``g(x) = f(scale * x)`` with a named base function ``f``.

    Parameters
    ----------
    name:
        ``"erf"``, ``"relu"``, ``"linear"``, ``"abrelu"``, ``"tanh"``, ``"sigmoid"`` or ``"custom"``.
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
        if not isinstance(self.name, str) or (self.name not in _BASE and self.name not in ("abrelu", "custom")):
            raise ValueError(f"activation: unknown name {self.name!r}; {allowed()}")
        if self.name == "custom" and not callable(self.fn):
            raise ValueError("activation: name='custom' needs a callable fn (a JAX-traceable function)")
        if self.name != "custom" and self.fn is not None:
            raise ValueError(f"activation: fn is only used with name='custom', got name={self.name!r}")
        for attr in ("scale", "a", "b"):
            try:
                value = float(getattr(self, attr))
            except (TypeError, ValueError):
                raise ValueError(f"activation: {attr} must be a real number, got {getattr(self, attr)!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"activation: {attr} must be finite, got {value}")
            object.__setattr__(self, attr, value)
        if not self.scale > 0.0:
            raise ValueError(f"activation: scale must be > 0, got {self.scale}")

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
        work) and raises a one-line ``ValueError`` naming the activation when the callable is not
        JAX-traceable (e.g. it calls NumPy on its input), or when it does not return floats of its
        input's shape (a string, integers, a reduced or reshaped array). Named activations pass at
        once. Returns ``self``.
        """
        if self.name != "custom" or getattr(self, "_checked", False):
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
                raise ValueError(
                    f"{what}: must be JAX-traceable -- write it with jax.numpy (jnp.tanh, not np.tanh); "
                    f"{part}it converted a traced array to NumPy"
                ) from None
            except jax.errors.ConcretizationTypeError:
                raise ValueError(
                    f"{what}: must be JAX-traceable -- use jnp.where instead of Python if/float() on the input"
                ) from None
            except Exception as exc:  # noqa: BLE001  (any failure of the user's callable)
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ValueError(
                    f"{what}: must be a JAX-traceable elementwise function returning floats; {part}calling it on "
                    f"a float64 array failed with {type(exc).__name__}: {msg}"
                ) from None
            shape, dtype = out.shape, out.dtype
            if returned or shape != x.shape or not jnp.issubdtype(dtype, jnp.floating):
                got = f"a {returned[0]}" if returned else f"shape {shape} dtype {dtype}"
                raise ValueError(
                    f"{what}: must map a float64 array elementwise to floats of the same shape "
                    f"(input shape {x.shape}); {part}it returned {got}"
                )
        object.__setattr__(self, "_checked", True)
        return self

    # -- evaluation -------------------------------------------------------------------------
    @property
    def base(self) -> Callable:
        """The unscaled base function f."""
        if self.name == "custom":
            return self.fn  # type: ignore[return-value]
        if self.name == "abrelu":
            return _abrelu_fn(self.a, self.b)
        return _BASE[self.name]

    def __call__(self, x):
        return self.base(self.scale * x)

    def grad(self, x):
        """g'(x), elementwise (autodiff of the base function, exact closed forms where known)."""
        s = self.scale
        if self.name == "erf":
            return s * 2.0 / jnp.sqrt(jnp.pi) * jnp.exp(-((s * x) ** 2))
        if self.name == "relu":
            x = jnp.asarray(x)
            return s * (x > 0).astype(jnp.result_type(x, float))
        if self.name == "abrelu":
            return s * jnp.where(x > 0, self.b, self.a)
        if self.name == "linear":
            return s * jnp.ones_like(x)
        f = self.base
        return s * jnp.vectorize(jax.grad(f))(s * jnp.asarray(x, dtype=float))

    @property
    def has_closed_form(self) -> bool:
        return self.name in CLOSED_FORM

    def __str__(self) -> str:
        if self.label:
            return self.label
        if self.name == "abrelu":
            return f"abrelu(a={self.a}, b={self.b})" + ("" if self.scale == 1 else f"(scale {self.scale:g})")
        return self.name if self.scale == 1 else f"{self.name}({self.scale:.6g}*x)"


def erf(scale: float = 1.0) -> Activation:
    """``erf(scale * x)``."""
    return Activation("erf", scale=scale)


def relu(scale: float = 1.0) -> Activation:
    return Activation("relu", scale=scale)


def linear(scale: float = 1.0) -> Activation:
    return Activation("linear", scale=scale)


def abrelu(a: float, b: float, scale: float = 1.0) -> Activation:
    """``a*x`` for ``x < 0`` and ``b*x`` for ``x > 0``."""
    return Activation("abrelu", scale=scale, a=float(a), b=float(b))


def leaky_relu(slope: float = 0.01, scale: float = 1.0) -> Activation:
    return abrelu(slope, 1.0, scale)


def tanh(scale: float = 1.0) -> Activation:
    return Activation("tanh", scale=scale)


def sigmoid(scale: float = 1.0) -> Activation:
    return Activation("sigmoid", scale=scale)


def custom(fn: Callable, scale: float = 1.0, label: str | None = None) -> Activation:
    """Any JAX-traceable scalar function; its Gaussian integrals are computed by quadrature.

    The callable is part of the activation's identity (see the module docstring); ``label``
    (default ``fn.__name__``) is only its display name.
    """
    if not callable(fn):
        raise ValueError(f"activation: expected a callable, got {type(fn).__name__}")
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
    ``"abrelu(a=-0.3, b=1.2)"``, the form ``str`` prints). A name gets the input ``scale`` given here;
    theory modules pass their convention's scale (e.g. ``1/sqrt(2)`` for ``erf`` in
    :mod:`learndyn.online.conventions`). Every rejection is a one-line ``ValueError`` starting with
    ``activation:`` and listing the allowed names.
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
            raise ValueError("activation: 'abrelu' needs its slopes: write 'abrelu(a, b)' (e.g. 'abrelu(-0.5, 1)') "
                             "or use learndyn.activations.abrelu(a, b)")
        if key in _BASE:
            return Activation(key, scale=scale)
        parsed = _parametrised(key, scale)
        if parsed is not None:
            return parsed
        raise ValueError(f"activation: unknown name {spec!r}; {allowed()}")
    if callable(spec):
        return custom(spec, scale=scale)
    raise ValueError(f"activation: expected a name, an Activation or a callable, got {type(spec).__name__}; "
                     f"{allowed()}")
