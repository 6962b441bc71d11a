r"""A serial network: the finite network (``init``, ``apply``) and its infinite-width NNGP and NTK
(``kernel``) from one layer list (Xiao, Pennington & Schoenholz 2020; Jacot et al. 2018; Lee et al. 2019;
Novak et al. 2019 for CNNs with global average pooling), and the builders :func:`fcn`, :func:`cnn`,
:func:`serial`.

``fcn(depth, ...)`` is ``Dense, [phi, Dense] x depth``; ``cnn(depth, ...)`` is
``Conv, [phi, Conv] x (depth-1), phi, Flatten|GlobalAvgPool, Dense`` -- the same number of
nonlinearities and weight layers as ``fcn(depth)``, so CNN-Flatten and FCN share their spatial
diagonal recursion (Xiao et al. 2020, Sec. 3).

Compiled kernel computations are cached explicitly, keyed on the (frozen, hashable) network -- its layers,
variances and activation, a user callable included -- and the input layout (:func:`clear_cache`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..resources import format_bytes
from ..results import InvalidInputError, Result, Status, problem_attrs
from . import blocking as _blocking
from .blocking import KernelMemoryError
from .depth import sweep_depths
from .layers import (PADDINGS, READOUTS, Conv, Dense, Elementwise, Flatten, GlobalAvgPool, Repeat, _Layer,
                     _LayerStack, _serial_apply, _serial_init, run_layers)
from .state import _Ctx, _KState, _check_var, _rescale

__all__ = ["Network", "Kernel", "KernelMemoryError", "serial", "fcn", "cnn", "network_from_description",
           "clear_cache", "cache_info", "CacheInfo"]


# ============================================================================================
# the compile cache, keyed on the frozen network
# ============================================================================================
#: most compiled computations kept (least recently used first out)
CACHE_SIZE = 64
_COMPILED: "OrderedDict[tuple, Any]" = OrderedDict()


def _cached(net: "Network", key: tuple, build: Callable[[], Any]) -> Any:
    """The compiled computation ``key`` of ``net``, built on first use (``net`` is part of the key: equal
    networks share, a different activation callable never does)."""
    full = (net,) + key
    hit = _COMPILED.get(full)
    if hit is None:
        hit = _COMPILED[full] = build()
        while len(_COMPILED) > CACHE_SIZE:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(full)
    return hit


class CacheInfo(NamedTuple):
    """Size of the kernels' compile cache: ``currsize`` computations kept, at most ``maxsize`` (:data:`CACHE_SIZE`)."""

    currsize: int
    maxsize: int


def cache_info() -> CacheInfo:
    """How many compiled kernel computations are cached (per network and input layout; see :func:`clear_cache`)."""
    return CacheInfo(len(_COMPILED), CACHE_SIZE)


def clear_cache() -> None:
    """Forget every compiled kernel computation (they are cached per network and input layout)."""
    _COMPILED.clear()


# ============================================================================================
# result
# ============================================================================================
def _ldexp_checked(arr: np.ndarray, e: float, what: str) -> np.ndarray:
    e = int(e)
    if e == 0:
        return arr
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(arr, e)
    if not np.all(np.isfinite(out)) or np.any((out == 0) & (arr != 0)):
        raise OverflowError(
            f"{what}: the kernel entries are of order 2^{e} and leave the float64 range; use "
            f"Kernel.{what}_mantissa (entries / 2^{what}_log2_scale) and Kernel.{what}_log2_scale "
            "(scale-free quantities such as condition numbers and P(Theta)Y do not need the scale)"
        )
    return out


@dataclass(frozen=True)
class Kernel(Result):
    """NNGP ``K`` and NTK ``Theta`` of a network (Jacot et al. 2018, Theorem 1; Lee et al. 2019): ``nngp``/``ntk``
    are ``(n1, n2)`` (or ``(n,)`` in diagonal mode).  ``status`` is :attr:`Status.NONFINITE` (with the data
    kept and a ``message``) if the recursion produced NaN or inf entries.

    Entries are stored as ``mantissa * 2**log2_scale`` (exact powers of two); ``nngp``/``ntk``
    give the physical values and raise ``OverflowError`` (never return inf) if they do not fit
    in float64.

    ``problem``: the :class:`~learndyn.kernels.Problem` the kernel was computed for when it came through
    :func:`~learndyn.kernels.kernel` / :meth:`Problem.kernel <learndyn.kernels.Problem.kernel>` (``None`` for a
    network built layer by layer); it is written into the Dataset's ``problem`` attribute and comes back on
    loading.
    """

    nngp_mantissa: np.ndarray
    ntk_mantissa: np.ndarray | None
    nngp_log2_scale: float
    ntk_log2_scale: float
    diagonal: bool
    network: "Network"
    status: Status = Status.SUCCESS
    message: str = ""
    problem: Any = None

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    @property
    def nngp(self) -> np.ndarray:
        """The NNGP kernel at its physical scale."""
        return _ldexp_checked(self.nngp_mantissa, self.nngp_log2_scale, "nngp")

    @property
    def ntk(self) -> np.ndarray:
        """The NTK at its physical scale (``ValueError`` if only the NNGP was computed)."""
        if self.ntk_mantissa is None:
            raise InvalidInputError("ntk: this kernel was computed with get='nngp'")
        return _ldexp_checked(self.ntk_mantissa, self.ntk_log2_scale, "ntk")

    def to_xarray(self) -> xr.Dataset:
        """The mantissas with dims ``(x1, x2[, s...])`` (or ``(x,)``), scales, status and network as attributes."""
        dims = ("x",) if self.diagonal else ("x1", "x2")
        extra = tuple(f"s{i}" for i in range(self.nngp_mantissa.ndim - len(dims)))
        data = {"nngp_mantissa": (dims + extra, self.nngp_mantissa)}
        if self.ntk_mantissa is not None:
            data["ntk_mantissa"] = (dims + extra, self.ntk_mantissa)
        extra = dict(nngp_log2_scale=float(self.nngp_log2_scale), ntk_log2_scale=float(self.ntk_log2_scale),
                     diagonal=int(self.diagonal), status=str(self.status), message=self.message,
                     description="physical kernel = mantissa * 2**log2_scale")
        if self.problem is None:  # a network built layer by layer: its description is the problem
            attrs = problem_attrs(self.network.describe(), **extra)
        else:
            attrs = problem_attrs(self.problem, network=self.network.describe(), **extra)
        return xr.Dataset(data, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "Kernel":
        """The kernel stored by :meth:`to_xarray` (e.g. read back by :func:`learndyn.load`), with its
        network rebuilt from the stored description (:func:`network_from_description`) and its
        :class:`~learndyn.kernels.Problem`, if it had one, rebuilt and validated again."""
        from ..results import json_attr, problem_json, rebuild_problem

        a = ds.attrs
        if "network" in a:  # computed for a kernels.Problem
            from .problem import Problem

            problem, network = rebuild_problem(ds, Problem), network_from_description(json_attr(ds, "network"))
        else:
            problem, network = None, network_from_description(problem_json(ds))
        return cls(nngp_mantissa=ds["nngp_mantissa"].values,
                   ntk_mantissa=ds["ntk_mantissa"].values if "ntk_mantissa" in ds else None,
                   nngp_log2_scale=float(a["nngp_log2_scale"]), ntk_log2_scale=float(a["ntk_log2_scale"]),
                   diagonal=bool(a["diagonal"]), network=network,
                   status=Status.of(a.get("status", "success")), message=str(a.get("message", "")),
                   problem=problem)


def network_from_description(description: dict) -> "Network":
    """The :class:`Network` described by :meth:`Network.describe` (layer names from a fixed list).

    Activations are stored by name, so a network with a user-supplied activation function cannot be
    rebuilt (``ValueError``)."""
    from ..results import ResultFormatError

    classes = {"Dense": Dense, "Conv": Conv, "Elementwise": Elementwise, "Flatten": Flatten,
               "GlobalAvgPool": GlobalAvgPool}

    def one(entry):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ResultFormatError(f"not a layer description: {entry!r}")
        (name, fields), = entry.items()
        if name == "Repeat":
            return Repeat(tuple(one(x) for x in fields["layers"]), int(fields["n"]))
        if name not in classes:
            raise ResultFormatError(f"unknown layer {name!r}")
        return classes[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    try:
        return Network(tuple(one(x) for x in description["layers"]), name=str(description["name"]))
    except (KeyError, TypeError) as exc:
        raise ResultFormatError(f"not a network description ({exc!r})") from None



# ============================================================================================
# network
# ============================================================================================
@dataclass(frozen=True)
class Network(_LayerStack):
    """A serial architecture: ``init``/``apply`` build and run the finite network, ``kernel`` gives
    its infinite-width NNGP and NTK -- both from the same layer list.  Frozen and hashable."""

    layers: tuple
    name: str = "serial"

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        for lay in self.layers:
            if not isinstance(lay, _Layer):
                raise InvalidInputError(f"layers: expected kernels layers (Dense, Conv, ...), got {lay!r}")

    def describe(self) -> dict:
        """JSON-able description of the architecture (name and layers)."""
        def one(lay):
            if isinstance(lay, Repeat):
                return {"Repeat": {"n": lay.n, "layers": [one(x) for x in lay.layers]}}
            d = {f.name: getattr(lay, f.name) for f in dataclasses.fields(lay)}
            if "activation" in d:
                d["activation"] = str(d["activation"])
            return {type(lay).__name__: d}

        return {"name": self.name, "layers": [one(lay) for lay in self.layers]}

    # ---- finite network ---------------------------------------------------------------------
    def init(self, key, input_shape):
        """Random parameters (iid N(0,1) weights and biases) for inputs of ``input_shape``
        (the batch entry is ignored); returns the parameter pytree."""
        return _serial_init(self.layers, key, tuple(input_shape))[1]

    def output_shape(self, input_shape) -> tuple:
        """Shape of ``apply``'s output for inputs of ``input_shape`` (traced abstractly: nothing is allocated)."""
        spec = jax.ShapeDtypeStruct(tuple(int(s) for s in input_shape), jnp.float64)
        out = jax.eval_shape(lambda x: self.apply(self.init(jax.random.PRNGKey(0), x.shape), x), spec)
        return tuple(out.shape)

    def apply(self, params, x):
        """Outputs of the finite network with ``params`` on inputs ``x`` (float64)."""
        return _serial_apply(self.layers, params, jnp.asarray(x, dtype=jnp.float64))

    def empirical_ntk(self, params, x1, x2=None):
        """Finite-width NTK ``sum_p df(x1)/dp df(x2)/dp`` per output pair, shape (n1, n2, k, k)."""
        x1 = jnp.asarray(x1, dtype=jnp.float64)
        x2 = x1 if x2 is None else jnp.asarray(x2, dtype=jnp.float64)
        f = lambda p, x: self.apply(p, x)
        j1 = jax.jacrev(f)(params, x1)
        j2 = j1 if x2 is x1 else jax.jacrev(f)(params, x2)

        def contract(a, b):
            a = a.reshape(a.shape[:2] + (-1,))
            b = b.reshape(b.shape[:2] + (-1,))
            return jnp.einsum("iap,jbp->ijab", a, b)

        leaves = zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2))
        return sum(contract(a, b) for a, b in leaves)

    def _input_state(self, x1b, x2b, ctx: _Ctx, want_ntk: bool):
        """Input kernels ``x.x'/C`` (neural-tangents' ``_inputs_to_kernel``) in the block layout."""
        k = ctx.nsp
        C = x1b.shape[-1]
        lo = "hwdefg"[:k]
        up = "HWDEFG"[:k]

        def self_kernel(x):  # x: (m, b, *sp, C) -> (m, b, *sp[, *sp])
            if ctx.spatial == "full":
                return jnp.einsum(f"mn{lo}c,mn{up}c->mn{lo}{up}", x, x) / C
            return jnp.einsum(f"mn{lo}c,mn{lo}c->mn{lo}", x, x) / C

        if ctx.batch == "diag":
            nngp, s1, s2 = self_kernel(x1b), None, None
        else:
            xa, xb = x1b[ctx.I], x2b[ctx.J]
            if ctx.spatial == "full":
                nngp = jnp.einsum(f"ta{lo}c,tb{up}c->ta{lo}b{up}", xa, xb) / C
            else:
                nngp = jnp.einsum(f"ta{lo}c,tb{lo}c->tab{lo}", xa, xb) / C
            s1 = self_kernel(x1b)
            s2 = None if x2b is x1b else self_kernel(x2b)  # the same traced array: one self-kernel
        zeros = lambda a: None if (a is None or not want_ntk) else jnp.zeros_like(a)
        z = jnp.zeros((), jnp.float64)
        return _KState(nngp, zeros(nngp), s1, s2, zeros(s1), zeros(s2), z, z)

    def _compiled(self, spatial: str, nsp: int, batch: str, same: bool, want_ntk: bool):
        """The block computation for one input layout, jit-compiled (cached on the network)."""
        return _cached(self, ("jit", spatial, nsp, batch, same, want_ntk),
                       lambda: jax.jit(self._block_fn(spatial, nsp, batch, same, want_ntk)))

    def _block_fn(self, spatial: str, nsp: int, batch: str, same: bool, want_ntk: bool):
        """The kernel of one block of inputs: input kernel, then every layer's map (the recursion).

        ``run(x1b, x2b, offset)`` on blocks ``(1, b1, ...)`` and ``(1, b2, ...)``; for ``same`` (x2 is x1)
        ``offset`` (an int32 scalar, traced: one compilation serves every block) is the first row of ``x2b``
        minus the first row of ``x1b`` in x1, so that row ``r`` and column ``c`` are the same input when
        ``r == c + offset`` (their pair entries are then the self variances exactly)."""
        def run(x1b, x2b, offset):
            if batch == "cross":
                I = J = jnp.zeros((1,), dtype=jnp.int32)
            else:
                I = J = None
            ctx = _Ctx(spatial, nsp, batch, I, J, same, offset)
            st = self._input_state(x1b, x2b, ctx, want_ntk)
            st = _rescale(st, ctx)
            st, ctx = run_layers(self.layers, st, ctx,
                                 (x1b, x2b, lambda xa, xb, c: self._input_state(xa, xb, c, want_ntk)))

            def batch_first(a):  # (T, b1, *sp, b2, *sp) -> (T, b1, b2, *sp, *sp) when no readout
                if a is None or batch != "cross" or ctx.spatial != "full":
                    return a
                return jnp.moveaxis(a, 2 + ctx.nsp, 2)

            return batch_first(st.nngp), batch_first(st.ntk), st.ek, st.et

        return run

    def depth_sweep(self, x, repeats: Sequence[int], *, want_ntk: bool = True):
        """Kernels of the rows of ``x`` with themselves for the network whose :class:`Repeat` block runs
        ``r`` times, for each ``r`` in ``repeats`` (non-decreasing), in one compiled pass: the readin, then
        per entry the extra repeated blocks and a readout through the head layers.

        The network must be ``[readin, Repeat(...), *head]`` (what :func:`fcn` and :func:`cnn` build);
        the kernels are exactly those of the same network built with that depth.  Returns a list of
        ``(nngp, ntk)`` arrays (``ntk`` None unless ``want_ntk``); values beyond float64 range are ``inf``.
        """
        return sweep_depths(self, x, repeats, want_ntk=want_ntk, cache=_cached)

    def memory_estimate(self, n1: int, n2: int | None = None, spatial_shape: Sequence[int] = (), *,
                        diagonal: bool = False, readout_full: bool | None = None, channels: int = 1,
                        get: str | Sequence[str] = ("nngp", "ntk"), batch_size: int | None = None,
                        memory_limit: float | None = None) -> int:
        """Estimated peak bytes of ``kernel`` on ``n1`` (and ``n2``) inputs of ``spatial_shape + (channels,)``:
        the float64 outputs plus one block's working memory as XLA's buffer assignment reports it (see
        ``_block_bytes``; measured within 1.5x of the peak RSS increase, e.g. FCN erf n = 6000).  Uses the
        block size ``kernel`` would choose (or ``batch_size``); compiles the block computation, nothing else
        is allocated.  ``readout_full`` is ignored (kept for compatibility)."""
        gets = (get,) if isinstance(get, str) else tuple(get)
        shape = tuple(int(s) for s in spatial_shape) + (int(channels),)
        plan = _blocking.plan(self, (int(n1),) + shape, None if n2 is None else (int(n2),) + shape, bool(diagonal),
                          "ntk" in gets, batch_size, memory_limit, check=False)
        return int(plan["total"])

    def _executable(self, spatial, nsp, batch, same, want_ntk, shape1, shape2):
        """The block computation compiled for one input shape (cached), with XLA's memory analysis."""

        def build():
            fn = self._compiled(spatial, nsp, batch, same, want_ntk)
            spec1 = jax.ShapeDtypeStruct(shape1, jnp.float64)
            spec2 = jax.ShapeDtypeStruct(shape2, jnp.float64)
            exe = fn.lower(spec1, spec2, jax.ShapeDtypeStruct((), jnp.int32)).compile()
            ma = exe.memory_analysis()
            xla = None
            if ma is not None:
                xla = (int(ma.temp_size_in_bytes), int(ma.argument_size_in_bytes), int(ma.output_size_in_bytes))
            return exe, xla

        return _cached(self, ("exe", spatial, nsp, batch, same, want_ntk, shape1, shape2), build)

    def kernel(self, x1, x2=None, *, diagonal: bool = False, get: str | Sequence[str] = ("nngp", "ntk"),
               batch_size: int | None = None, memory_limit: float | None = None,
               verbose: bool | None = None) -> Kernel:
        r"""Infinite-width NNGP and NTK: the layer recursion of Jacot et al. 2018 (Theorem 1) and Lee et al. 2019
        for Dense layers, with the window averages and readouts of Xiao et al. 2020 (Sec. 3) / Novak et al. 2019
        for CNNs.  Returns a :class:`Kernel`; its ``status`` says whether every entry is finite.

        Parameters
        ----------
        x1, x2:
            Inputs ``(n, n0)`` for fully-connected nets, ``(n, *spatial, C)`` (channels last) for CNNs.
            ``x2=None`` means x1 with itself (train-train); the result is symmetric.
        diagonal:
            Only ``K(x, x)`` for each row of ``x1`` (shape ``(n1,)``); ``x2`` must be None.
        get:
            ``("nngp", "ntk")`` (default) or ``"nngp"`` (skips the NTK recursion).
        batch_size:
            Rows per block.  ``None`` chooses the largest block that fits ``memory_limit``.
        memory_limit:
            Bytes allowed for one block (default: what the outputs leave of the available memory,
            at most 8 GiB).  The estimate (:meth:`memory_estimate`: the outputs plus one block, the block as
            XLA's buffer assignment reports it) is checked against :func:`learndyn.resources.available_memory`
            before anything is allocated: a computation that cannot fit raises :class:`KernelMemoryError`
            saying what to reduce (``LEARNDYN_MEMORY_LIMIT`` overrides the available memory).
        verbose:
            Print the memory estimate (default: only when it exceeds 512 MiB).
        """
        want_ntk = _want_ntk(get)
        x1, x2 = self._check_inputs(x1, x2, diagonal)
        n1 = x1.shape[0]
        n2 = n1 if x2 is None else x2.shape[0]
        plan = _blocking.plan(self, x1.shape, None if x2 is None else x2.shape, bool(diagonal), want_ntk,
                              batch_size, memory_limit)
        b1, b2 = plan["b1"], plan["b2"]
        if verbose or (verbose is None and plan["total"] > _blocking._PRINT_BYTES):
            nblocks = (math.ceil(n1 / b1) if diagonal else
                       len(_blocking.block_list(n1, n2, b1, b2, x2 is None)))
            print(f"learndyn.kernels: {n1}x{'' if diagonal else n2} kernel in {nblocks} block(s) of {b1}x"
                  f"{'' if diagonal else b2}; estimated peak memory {format_bytes(plan['total'])} (outputs "
                  f"{format_bytes(plan['out'])}, one block {format_bytes(plan['block'])}; available "
                  f"{format_bytes(plan['avail'])})", file=sys.stderr, flush=True)
        if diagonal:
            nngp, ntk, ek, et, bad_k, bad_t = _blocking.run_diagonal(x1, b1, plan["exe"])
        else:
            nngp, ntk, ek, et, bad_k, bad_t = _blocking.run_blocks(
                x1, x2, b1, b2, self._spatial_mode(x1.ndim), x1.ndim - 2, want_ntk, plan["exe"])
        if not want_ntk:
            ntk = None
        status, message = _finite_status(bad_k, bad_t)
        return Kernel(nngp, ntk, ek, et, bool(diagonal), self, status, message)

    def _check_inputs(self, x1, x2, diagonal: bool):
        """``x1`` and ``x2`` (or None) validated against the network and each other."""
        x1 = self._check_input(x1, "x1")
        if x2 is not None:
            if diagonal:
                raise InvalidInputError("x2: must be None when diagonal=True")
            x2 = self._check_input(x2, "x2")
            if x2.shape[1:] != x1.shape[1:]:
                raise InvalidInputError(f"x2: shape {x2.shape} does not match x1 {x1.shape} beyond the batch axis")
        return x1, x2


def _want_ntk(get) -> bool:
    """Whether ``get`` (``"nngp"``, ``"ntk"`` or a tuple of them) asks for the NTK."""
    gets = (get,) if isinstance(get, str) else tuple(get)
    if not gets or any(g not in ("nngp", "ntk") for g in gets):
        raise InvalidInputError(f"get: must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
    return "ntk" in gets


def _finite_status(bad_nngp: int, bad_ntk: int) -> tuple[Status, str]:
    """:attr:`Status.NONFINITE` and a message naming the kernel if ``nngp`` or ``ntk`` has NaN/inf entries
    (``bad_*``: how many; counted block by block while the kernel is assembled, so no ``n1 x n2`` mask is
    allocated)."""
    for name, bad in (("nngp", bad_nngp), ("ntk", bad_ntk)):
        if bad:
            return Status.NONFINITE, (
                f"{name}: the kernel recursion produced non-finite values (NaN/inf) in "
                f"{int(bad)} entries; check the activation, the inputs and the variances")
    return Status.SUCCESS, ""


def serial(*layers, name: str = "serial") -> Network:
    """A :class:`Network` from layers (``Dense``, ``Conv``, ``Elementwise``, ``Flatten``,
    ``GlobalAvgPool``, ``Repeat``)."""
    flat = []
    for lay in layers:
        if isinstance(lay, Network):
            flat.extend(lay.layers)
        elif isinstance(lay, (list, tuple)):
            flat.extend(lay)
        else:
            flat.append(lay)
    return Network(tuple(flat), name=name)


def _check_depth(depth, minimum=0) -> int:
    """``depth`` as an int ``>= minimum`` (``InvalidInputError`` naming ``depth`` otherwise)."""
    if isinstance(depth, bool) or int(depth) != depth or depth < minimum:
        raise InvalidInputError(f"depth: must be an integer >= {minimum}, got {depth!r}")
    return int(depth)


def fcn(depth: int, activation: Any = "erf", weight_var: float = 1.0, bias_var: float = 0.0, *,
        width: int = 512, out_dim: int = 1, readin_weight_var: float | None = None,
        readin_bias_var: float | None = None) -> Network:
    r"""Fully-connected ``Dense, [phi, Dense] x depth`` in the NTK parameterisation (Jacot et al. 2018; Xiao et al.
    2020, Sec. 2): ``depth`` hidden layers of ``width`` units.

    ``activation``: a name (``"erf"`` = erf(x), ``"relu"``, ``"leaky_relu"``, ``"linear"``,
    ``"tanh"``, ...), an :class:`~learndyn.activations.Activation` or a callable.
    ``readin_*`` override the first layer's variances (the colab uses ``1, 0``).
    """
    depth = _check_depth(depth)
    wv = _check_var("weight_var", weight_var, False)
    bv = _check_var("bias_var", bias_var, True)
    rwv = wv if readin_weight_var is None else _check_var("readin_weight_var", readin_weight_var, False)
    rbv = bv if readin_bias_var is None else _check_var("readin_bias_var", readin_bias_var, True)
    phi = Elementwise(activation)
    if depth == 0:
        layers = [Dense(out_dim, rwv, rbv)]
    else:
        layers = [Dense(width, rwv, rbv), Repeat((phi, Dense(width, wv, bv)), depth - 1), phi,
                  Dense(out_dim, wv, bv)]
    return Network(tuple(layers), name=f"fcn(depth={depth}, {phi.activation}, {wv:g}, {bv:g})")


def cnn(depth: int, activation: Any = "relu", weight_var: float = 2.0, bias_var: float = 0.0, *,
        filter_shape: Sequence[int] = (3, 3), padding: str = "circular", readout: str = "flatten",
        channels: int = 64, out_dim: int = 1, readin_weight_var: float | None = None,
        readin_bias_var: float | None = None) -> Network:
    r"""Convolutional ``Conv, [phi, Conv] x (depth-1), phi, Flatten|GlobalAvgPool, Dense`` (Xiao et al. 2020,
    Sec. 3; Novak et al. 2019 for the global-average-pooling readout).

    ``padding``: ``"circular"`` (torus) or ``"same"`` (zeros); ``readout``: ``"flatten"`` (CNN-F) or
    ``"gap"`` (global average pooling, CNN-P).  ``depth >= 1``.
    """
    depth = _check_depth(depth, 1)
    wv = _check_var("weight_var", weight_var, False)
    bv = _check_var("bias_var", bias_var, True)
    rwv = wv if readin_weight_var is None else _check_var("readin_weight_var", readin_weight_var, False)
    rbv = bv if readin_bias_var is None else _check_var("readin_bias_var", readin_bias_var, True)
    if readout not in READOUTS:
        raise InvalidInputError(f"readout: must be one of {READOUTS}, got {readout!r}")
    if padding not in PADDINGS:
        raise InvalidInputError(f"padding: must be one of {PADDINGS}, got {padding!r}")
    fs = tuple(filter_shape)
    phi = Elementwise(activation)
    conv = lambda v, b: Conv(channels, v, b, fs, padding)
    layers = [conv(rwv, rbv), Repeat((phi, conv(wv, bv)), depth - 1), phi,
              Flatten() if readout == "flatten" else GlobalAvgPool(), Dense(out_dim, wv, bv)]
    return Network(tuple(layers), name=f"cnn(depth={depth}, {phi.activation}, {wv:g}, {bv:g}, {fs}, "
                                       f"{padding}, {readout})")
