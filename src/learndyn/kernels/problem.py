r"""The kernels theory's Problem: one frozen, validated description of a deep network's architecture and
initialisation, from which the finite network, its NNGP / NTK kernels, its signal propagation, its spectra
against depth and its finite-width training are all computed (Xiao, Pennington & Schoenholz 2020).

    from learndyn import kernels
    p = kernels.Problem("fcn", depth=10, activation="erf", weight_var=1.5, bias_var=0.05)
    k = p.kernel(x_train)               # = kernels.kernel(p, x_train): NNGP and NTK
    sp = kernels.signal_propagation(p)   # q*, chi_1, depth scales, phase at (weight_var, bias_var)
    net = p.network()                    # the finite network (init / apply) and its kernel
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

from .. import activations as _act
from ..results import InvalidInputError
from .layers import PADDINGS, READOUTS
from .state import _check_var

__all__ = ["Problem", "ARCHITECTURES", "READINS", "kernel"]

ARCHITECTURES = ("fcn", "cnn")
#: how the first (read-in) layer's variances are chosen; see :class:`Problem`
READINS = ("same", "qstar", "colab")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
        raise InvalidInputError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Problem:
    r"""A deep network at initialisation, in neural-tangents' NTK parameterisation (Jacot et al. 2018;
    Xiao, Pennington & Schoenholz 2020, Sec. 2-3): frozen, hashable and validated when built.

    Parameters
    ----------
    architecture:
        ``"fcn"``: ``Dense, [phi, Dense] x depth``; ``"cnn"``: ``Conv, [phi, Conv] x (depth-1), phi,
        Flatten|GlobalAvgPool, Dense`` (:func:`~learndyn.kernels.fcn`, :func:`~learndyn.kernels.cnn`).
    depth:
        Number of nonlinearities (``>= 0`` for an FCN, ``>= 1`` for a CNN).  Functions that sweep depth
        (:func:`~learndyn.kernels.depth_sweep`, :func:`~learndyn.kernels.spectrum_vs_depth`) take their
        depths separately and ignore it.
    activation:
        A name (``"erf"`` = erf(x), ``"relu"``, ``"leaky_relu"``, ``"tanh"``, ...), an
        :class:`~learndyn.activations.Activation` or a JAX-traceable callable; kept as given.
    weight_var, bias_var:
        ``sigma_w^2 > 0`` and ``sigma_b^2 >= 0`` of every layer after the read-in.
    readin:
        The read-in layer's variances: ``"same"`` -- ``(readin_weight_var, readin_bias_var)`` when given,
        else ``(weight_var, bias_var)``; ``"qstar"`` -- ``(q* - bias_var, bias_var)``, so inputs with
        ``|x|^2 / n_0 = 1`` start at the fixed point ``K^0(x, x) = q*`` (Xiao et al. 2020, Sec. 2.1; needs a
        finite ``q* > bias_var``); ``"colab"`` -- ``(1, 0)`` (the paper's colab).
    width, channels:
        Hidden units of an FCN / channels of a CNN (finite network only; the kernels do not depend on them).
    out_dim:
        Number of outputs of the finite network (the target width for :func:`~learndyn.kernels.train`).
    filter_shape, padding, readout:
        CNN options: the convolution window, ``"circular"`` or ``"same"`` padding, and the ``"flatten"``
        (CNN-F) or ``"gap"`` (global average pooling, CNN-P; Novak et al. 2019) readout.
    """

    architecture: str = "fcn"
    depth: int = 1
    activation: Any = "erf"
    weight_var: float = 1.0
    bias_var: float = 0.0
    readin: str = "same"
    readin_weight_var: float | None = None
    readin_bias_var: float | None = None
    width: int = 512
    channels: int = 64
    out_dim: int = 1
    filter_shape: tuple = (3, 3)
    padding: str = "circular"
    readout: str = "flatten"

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InvalidInputError(f"architecture: must be one of {ARCHITECTURES}, got {self.architecture!r}")
        low = 1 if self.architecture == "cnn" else 0
        d = self.depth
        if isinstance(d, bool) or not isinstance(d, (int, float)) or int(d) != d or d < low:
            raise InvalidInputError(f"depth: must be an integer >= {low}, got {d!r}")
        object.__setattr__(self, "depth", int(d))
        try:  # errors of learndyn.activations already start with "activation:"
            self.act.check_traceable()
        except InvalidInputError:
            raise
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        object.__setattr__(self, "weight_var", _check_var("weight_var", self.weight_var, False))
        object.__setattr__(self, "bias_var", _check_var("bias_var", self.bias_var, True))
        if self.readin not in READINS:
            raise InvalidInputError(f"readin: must be one of {READINS}, got {self.readin!r}")
        for name, zero in (("readin_weight_var", False), ("readin_bias_var", True)):
            value = getattr(self, name)
            if value is not None:
                if self.readin != "same":
                    raise InvalidInputError(f"{name}: only used with readin='same' (readin={self.readin!r} "
                                            "sets the read-in variances itself); drop it or use readin='same'")
                object.__setattr__(self, name, _check_var(name, value, zero))
        for name in ("width", "channels", "out_dim"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        fs = self.filter_shape
        if not isinstance(fs, (tuple, list)) or not fs or any(
                isinstance(f, bool) or not isinstance(f, (int, float)) or int(f) != f or f < 1 for f in fs):
            raise InvalidInputError(f"filter_shape: expected a tuple of positive integers, got {fs!r}")
        object.__setattr__(self, "filter_shape", tuple(int(f) for f in fs))
        if self.padding not in PADDINGS:
            raise InvalidInputError(f"padding: must be one of {PADDINGS}, got {self.padding!r}")
        if self.readout not in READOUTS:
            raise InvalidInputError(f"readout: must be one of {READOUTS}, got {self.readout!r}")

    # ---- derived ------------------------------------------------------------------------------
    @property
    def act(self) -> _act.Activation:
        """The activation as an :class:`~learndyn.activations.Activation` (input scale 1)."""
        return _act.get(self.activation, scale=1.0)

    def replace(self, **changes: Any) -> "Problem":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def readin_variances(self) -> tuple[float, float]:
        """``(weight_var, bias_var)`` of the read-in layer (see ``readin``)."""
        if self.readin == "colab":
            return 1.0, 0.0
        if self.readin == "qstar":
            q = _q_star(self.act, self.weight_var, self.bias_var)
            if not (math.isfinite(q) and q > self.bias_var):
                raise InvalidInputError(f"readin: 'qstar' needs a finite q* > bias_var (q* = {q}); use 'same' or "
                                        "'colab'")
            return q - self.bias_var, self.bias_var
        return (self.weight_var if self.readin_weight_var is None else self.readin_weight_var,
                self.bias_var if self.readin_bias_var is None else self.readin_bias_var)

    def network(self):
        """The :class:`~learndyn.kernels.Network` this problem describes (finite network and kernels)."""
        from .network import cnn, fcn

        rwv, rbv = self.readin_variances()
        if self.architecture == "fcn":
            return fcn(self.depth, self.activation, self.weight_var, self.bias_var, width=self.width,
                       out_dim=self.out_dim, readin_weight_var=rwv, readin_bias_var=rbv)
        return cnn(self.depth, self.activation, self.weight_var, self.bias_var, filter_shape=self.filter_shape,
                   padding=self.padding, readout=self.readout, channels=self.channels, out_dim=self.out_dim,
                   readin_weight_var=rwv, readin_bias_var=rbv)

    def kernel(self, x1, x2=None, **options: Any):
        """The infinite-width NNGP and NTK of :meth:`network` (:meth:`Network.kernel`; same options), as a
        :class:`~learndyn.kernels.Kernel` that records this problem (``Kernel.problem``)."""
        return dataclasses.replace(self.network().kernel(x1, x2, **options), problem=self)


def kernel(problem: Problem, x1, x2=None, **options: Any):
    r"""NNGP ``K`` and NTK ``Theta`` of ``problem``'s network between the rows of ``x1`` and ``x2`` (``x2=None``:
    ``x1`` with itself): the layer recursion of Jacot et al. 2018 (Theorem 1) / Lee et al. 2019, with the
    convolutional window averages and readouts of Xiao et al. 2020 (Sec. 3).  Options as
    :meth:`~learndyn.kernels.Network.kernel` (``diagonal``, ``get``, ``batch_size``, ``memory_limit``)."""
    if not isinstance(problem, Problem):
        raise InvalidInputError(f"problem: expected a kernels.Problem, got {type(problem).__name__}")
    return problem.kernel(x1, x2, **options)


@functools.lru_cache(maxsize=256)
def _q_star(act: _act.Activation, weight_var: float, bias_var: float) -> float:
    from .signal import signal_propagation

    return float(signal_propagation(act, weight_var, bias_var).q_star)
