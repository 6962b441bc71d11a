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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

__all__ = ["Activation", "get", "erf", "relu", "linear", "abrelu", "leaky_relu", "tanh", "sigmoid", "custom"]

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


@dataclass(frozen=True)
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
        The base function for ``name="custom"`` (any JAX-traceable scalar function).
    """

    name: str
    scale: float = 1.0
    a: float = 0.0
    b: float = 1.0
    fn: Callable | None = field(default=None, compare=False, repr=False)
    label: str | None = None

    def __post_init__(self) -> None:
        if self.name not in _BASE and self.name not in ("abrelu", "custom"):
            raise ValueError(
                f"activation: unknown name {self.name!r}; allowed are {sorted(_BASE) + ['abrelu', 'custom']} "
                "or a callable"
            )
        if self.name == "custom" and not callable(self.fn):
            raise ValueError("activation: name='custom' needs a callable fn")
        if not (float(self.scale) > 0.0):
            raise ValueError(f"activation: scale must be > 0, got {self.scale}")

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
    """Any JAX-traceable scalar function; its Gaussian integrals are computed by quadrature."""
    return Activation("custom", scale=scale, fn=fn, label=label or getattr(fn, "__name__", "custom"))


def get(spec: "str | Activation | Callable", scale: float = 1.0) -> Activation:
    """Resolve a name, an :class:`Activation` or a callable into an :class:`Activation`.

    A name gets the input ``scale`` given here; theory modules pass their convention's scale
    (e.g. ``1/sqrt(2)`` for ``erf`` in :mod:`learndyn.online.conventions`).
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("leaky_relu", "leaky-relu"):
            return leaky_relu(scale=scale)
        if key == "abrelu":
            raise ValueError("activation: 'abrelu' needs slopes: use learndyn.activations.abrelu(a, b)")
        return Activation(key, scale=scale)
    if callable(spec):
        return custom(spec, scale=scale)
    raise ValueError(f"activation: expected a name, an Activation or a callable, got {type(spec).__name__}")
