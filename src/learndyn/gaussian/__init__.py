r"""Gaussian expectations of activations, shared by all theories.

For zero-mean Gaussian fields with covariance ``C`` (of the integral's arguments, in argument order)
and an activation ``g`` (:class:`learndyn.activations.Activation`), this module computes

* ``I2(C) = E[g(z1) g(z2)]``                      (``C``: ``(..., 2, 2)``)
* ``J2(C) = E[g'(z1) g'(z2)]``                    (``(..., 2, 2)``)
* ``I3(C) = E[g'(z1) z2 g(z3)]``                  (``(..., 3, 3)``)
* ``I4(C) = E[g'(z1) g'(z2) g(z3) g(z4)]``        (``(..., 4, 4)``)

vectorised over any leading batch shape, as JAX functions (jit/vmap/grad-compatible), in float64.

These are the Gaussian averages of the teacher-student ODE (Goldt et al. 2019, eqs. (6)-(8); the
generalisation error, eq. (4), is built from ``I2``) and the kernel maps ``V = I2``, ``Vdot = J2`` of
the NNGP/NTK recursion (Xiao, Pennington & Schoenholz 2020). Each :class:`~learndyn.activations.Activation`
owns its integrals (:meth:`~learndyn.activations.Activation.i2` ...); the functions here resolve the
activation and ask it. The package holds what the activations call:

* :mod:`~learndyn.gaussian.closed_forms` -- ``erf`` (Saad & Solla 1995, all four, valid for singular
  ``C``), ``linear`` (``I2=C12, J2=1, I3=C23, I4=C34``), ``relu`` (``I2`` arc-cosine kernel of Cho &
  Saul 2009, ``J2``, ``I3`` by Stein's lemma), ``abrelu`` (``a x`` for ``x<0``, ``b x`` for ``x>0``:
  ``I2``, ``J2``), and the kernel maps of erf and abrelu in ``atan2`` form;
* :mod:`~learndyn.gaussian.relu` -- ReLU ``I4`` by an exact 1-D integral (:func:`relu_i4`), the 4-D
  orthant probability, Tallis' truncated moments;
* :mod:`~learndyn.gaussian.quadrature` -- Gauss-Hermite for everything else;
* :mod:`~learndyn.gaussian.linalg` -- the LDL^T factor that keeps exact degeneracy exact.

Every other activation is integrated by Gauss-Hermite quadrature (:func:`quadrature_i2` ...):
tensor rules on ``z = L xi`` (``L`` an LDL^T factor that keeps exactly duplicated fields exactly
degenerate), ``I3`` reduced to 2-D by ``E[z2 | z1, z3]``, and a *rank-adaptive* choice of rule
(exactly singular covariances from repeated indices, e.g. ``J2(i, i)`` or ``I4(i, i, c, d)``, are
integrated in their own dimension with more nodes; they are the hardest cases). ``order`` is the
accuracy knob; :func:`quadrature_error_estimate` compares two orders.

Measured quadrature error (the package's Gaussian benchmark): max |error| over all index tuples of one
K=4, M=2 teacher-student state with unit-scale weights (tanh/sigmoid: against order 200 (2-D, 3-D) or
32 (4-D); erf: against the closed forms)::

    order               8      16     24     32     40     60
    tanh     I2       4e-04  2e-05  1e-06  2e-07  2e-08  3e-10
    tanh     J2       1e-02  5e-04  4e-05  5e-06  7e-07  1e-08
    tanh     I3       4e-03  2e-04  2e-05  3e-06  4e-07  7e-09
    sigmoid  J2       6e-06  1e-08  7e-11  9e-13  2e-14  4e-17
    erf(x)   I2       2e-04  1e-06  8e-09  5e-11  3e-13  5e-16
    erf(x)   J2       6e-03  3e-05  2e-07  8e-10  5e-12  4e-16
    erf(x)   I3       2e-03  3e-05  2e-07  2e-09  1e-11  4e-16

    order (I4, cost ~2 order**4)   6      8      12     16     20
    tanh          I4             3e-03  1e-03  2e-04  4e-05  9e-06
    sigmoid       I4             1e-05  2e-06  5e-08  3e-09  2e-10
    erf(x/sqrt2)  I4             2e-04  2e-05  3e-07  5e-09  1e-10
    erf(x)        I4             4e-03  1e-03  1e-04  8e-06  6e-07

Gauss-Hermite converges only like ``exp(-c sqrt(order))`` for activations with poles near the real
axis (tanh: ``i pi/2``) and more slowly the larger the variances (the error grows with ``C_ii``);
kinks (ReLU-like callables) converge algebraically (~1e-2 at order 20 in 4-D).

An activation with input scale ``s`` (``g(x) = f(s x)``) is reduced to its base function by
``z -> s z``: ``I2_g(C) = I2_f(s^2 C)``, ``J2_g = s^2 J2_f(s^2 C)``, ``I3_g = I3_f(s^2 C)``,
``I4_g = s^2 I4_f(s^2 C)``.
"""

from __future__ import annotations

from . import closed_forms, linalg, quadrature, relu
from .linalg import psd_factor
from .quadrature import (I4_ORDER, _QUADRATURE, product_order, quadrature_error_estimate, quadrature_i2,  # noqa: F401
                         quadrature_i3, quadrature_i4, quadrature_integral, quadrature_j2, quadrature_product)
from .relu import RELU_I4_NODES, orthant4, relu_i4, relu_orthant_moment

__all__ = [
    "i2", "j2", "i3", "i4", "relu_i4", "relu_orthant_moment", "orthant4", "psd_factor",
    "quadrature_i2", "quadrature_j2", "quadrature_i3", "quadrature_i4", "quadrature_error_estimate",
    "quadrature_integral", "quadrature_product", "product_order", "I4_ORDER", "RELU_I4_NODES",
    "closed_forms", "relu", "quadrature", "linalg",
]


def _get(act):
    from ..activations import get

    return get(act)


def i2(act, C, order: int = 40):
    """``I2(C) = E[g(z1) g(z2)]``, ``C`` of shape ``(..., 2, 2)`` (Goldt et al. 2019, eq. (4) and the dv equation;
    the NNGP map ``V`` of Xiao et al. 2020): :meth:`learndyn.activations.Activation.i2`."""
    return _get(act).i2(C, order)


def j2(act, C, order: int = 40):
    """``J2(C) = E[g'(z1) g'(z2)]``, ``C`` of shape ``(..., 2, 2)`` (the noise term of the dQ equation, Goldt et al.
    2019; the NTK map ``Vdot`` of Xiao et al. 2020): :meth:`learndyn.activations.Activation.j2`."""
    return _get(act).j2(C, order)


def i3(act, C, order: int = 40):
    """``I3(C) = E[g'(z1) z2 g(z3)]``, ``C`` of shape ``(..., 3, 3)`` (the O(eta) terms of the ODE, Goldt et al.
    2019): :meth:`learndyn.activations.Activation.i3`."""
    return _get(act).i3(C, order)


def i4(act, C, order: int | None = None):
    """``I4(C) = E[g'(z1) g'(z2) g(z3) g(z4)]``, ``C`` of shape ``(..., 4, 4)`` (the O(eta^2) term of the dQ
    equation, Goldt et al. 2019): :meth:`learndyn.activations.Activation.i4`.

    ``order``: Gauss-Hermite nodes per dimension for activations without closed form (cost
    ``order**4`` per covariance; default :data:`I4_ORDER`). ReLU uses :func:`relu_i4` (exact 1-D
    integral, ``order`` is ignored).
    """
    return _get(act).i4(C, order)
