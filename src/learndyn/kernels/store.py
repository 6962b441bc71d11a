r"""Out-of-core NNGP/NTK kernels: a kernel larger than memory computed block by block into a Zarr store,
resumable after a kill, optionally spread over Dask workers, and read back, multiplied and solved in
blocks (kernel regression beyond memory; Lee et al. 2019, eq. (16) at t = infinity).

    from learndyn import kernels
    p = kernels.Problem("fcn", depth=10, activation="relu", weight_var=2.0, bias_var=0.01)
    ks = kernels.kernel_store(p, x_train, path="k_train.zarr")            # resumes if interrupted
    kt = kernels.kernel_store(p, x_test, x_train, path="k_test.zarr")
    pred = ks.predict(kt, y_train, kind="ntk", reg=1e-6)                 # streamed CG, then K(X*, X) alpha
    K = ks.to_numpy("ntk")                                               # only if it fits in memory

Layout (Zarr format 2, one directory, readable with ``zarr`` / ``xarray``):

* ``nngp``, ``ntk`` (the kinds asked for): float64 **mantissas**, shape ``(n1, n2)``, one chunk per block of
  ``block_size`` x
  ``block_size`` inputs (uncompressed: kernel entries do not compress).  The physical kernel of block
  ``(I, J)`` is ``mantissa * 2**nngp_log2_scale[I, J]``: each block keeps the exact power-of-two scale of
  :class:`~learndyn.kernels.Kernel`, so a deep network whose kernel leaves the float64 range is stored
  exactly; reading physical values raises ``OverflowError`` instead of returning inf or 0.
* ``nngp_log2_scale``, ``ntk_log2_scale``: ``(n_block_rows, n_block_cols)``, one chunk per block.
* ``block_status``: ``(n_block_rows, n_block_cols)`` int8, one chunk per block: ``0`` pending, ``1`` done,
  ``2`` done with non-finite entries (the recursion produced NaN/inf; kept, and reported by
  :meth:`KernelStore.status`).
* For ``x2 = None`` (train-train) the kernel is symmetric: only blocks ``I <= J`` are computed and
  stored; every reader mirrors ``K[J, I] = K[I, J]^T``.
* Attributes: marker ``learndyn_store = "kernel"``, the network's description (and the
  :class:`~learndyn.kernels.Problem`, if one was given), shapes, block size, kinds, and SHA-256
  fingerprints of ``x1`` and ``x2`` (as float64).

Resume guarantees: only the client process writes the store (workers return blocks), under an
exclusive lock (``flock`` on the hidden sibling ``.<name>.lock``).  A block's data chunks are written
first, then its scales, then its status chunk; each chunk file is replaced atomically (Zarr writes a
temporary file and renames it).  So a kill at any moment loses no finished block (its status is on
disk) and never marks a half-written one done; a resumed run computes exactly the blocks whose status
is pending (a block that was being written is recomputed and overwrites the same chunks).  On opening,
each done block's chunk files are checked to exist; a missing one makes the block pending again (with
a warning).  A store is created in a temporary folder and renamed into place.  Resuming with other
inputs, another network or other kinds is refused with what differs; ``overwrite=True`` replaces a
store, and deletes only a folder that is a kernel store (never the working, home or root directory).

Dask (``n_workers > 1``, ``scheduler=`` or ``client=``; :mod:`learndyn.cluster`, shared with the sweeps):
the cluster is connected to before the store is created or replaced, so a scheduler that does not answer
leaves nothing behind; the blocks' inputs travel with their tasks and the results come back to this
process, which alone writes.  A script that starts a LocalCluster needs the usual
``if __name__ == "__main__":`` guard (the worker processes import the main module).

Disk: ``8 n1 n2`` bytes per kind (about half for ``x2 = None``); a computation whose remaining blocks
would not fit on the store's disk is refused before it starts.

Memory: computing holds one block per kind (plus :meth:`Network.kernel`'s working memory for it) in the
client, and one per worker with Dask (at most ``2 n_workers`` results in flight).  Each worker's share
is half the available memory divided by the workers: the working memory of a block's computation is
limited to half of it (``memory_limit``), and the default block size is the largest (<= 4096 rows)
whose outputs, held three times, fit the other half and whose honest estimate
(:meth:`Network.memory_estimate`) fits the share.  Reading, multiplying (:meth:`KernelStore.matmat`,
:meth:`KernelStore.operator`) and predicting stream one block at a time, keeping up to ``cache_bytes`` of
blocks in memory between passes (default: a quarter of the available memory), so a kernel that fits is
read from disk once per solve; :func:`conjugate_gradient` holds a few ``(n, k)`` arrays (and the
``(n, rank)`` sketch of the Nystrom preconditioner).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import xarray as xr
from scipy.sparse.linalg import LinearOperator

from ..cluster import one_line
from ..resources import StoreLock, available_memory, check_memory, format_bytes
from ..results import InvalidInputError, Result, Status, problem_attrs
from .blocking import KernelMemoryError

__all__ = ["kernel_store", "KernelStore", "KernelStoreStatus", "KernelOperator", "is_kernel_store",
           "conjugate_gradient", "CGSolution", "StorePrediction"]

_MARKER = "kernel"
_VERSION = 1
PENDING, DONE, NONFINITE_BLOCK = 0, 1, 2
_KINDS = ("nngp", "ntk")
#: largest default block (rows); blocks are square
_MAX_DEFAULT_BLOCK = 4096
#: from this size on, preconditioner="auto" is the Nystrom one (FCN NTK on Fashion-MNIST, reg 1e-4: at
#: n = 3000 Jacobi is faster (100 iterations, 2 s vs 34 and 4.6 s); at n = 20000 Nystrom of rank 500 takes 83
#: iterations and 40 s against Jacobi's 411 and 160 s)
_AUTO_NYSTROM = 8192


# ============================================================================================
# inputs, identity
# ============================================================================================
def _network_of(problem_or_network: Any):
    from .network import Network
    from .problem import Problem

    if isinstance(problem_or_network, Problem):
        return problem_or_network, problem_or_network.network()
    if isinstance(problem_or_network, Network):
        return None, problem_or_network
    raise InvalidInputError(f"problem_or_network: expected a kernels.Problem or kernels.Network, got "
                            f"{type(problem_or_network).__name__}")


def _kinds(get: Any) -> tuple[str, ...]:
    gets = (get,) if isinstance(get, str) else tuple(get)
    if not gets or any(g not in _KINDS for g in gets):
        raise InvalidInputError(f"get: must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
    # exactly the kinds asked for are stored ("ntk" alone halves the disk; its recursion computes the NNGP anyway)
    return tuple(k for k in _KINDS if k in gets)


def _fingerprint(x: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([list(x.shape), "float64"]).encode())
    step = max(1, (64 * 2**20) // max(1, x[0].nbytes)) if x.shape[0] else 1
    for i in range(0, x.shape[0], step):
        h.update(np.ascontiguousarray(x[i:i + step], dtype=np.float64).tobytes())
    return h.hexdigest()


def _has_readout(net, ndim: int) -> bool:
    # a Flatten/GlobalAvgPool readout (or an FCN): one float64 entry per pair of inputs
    return net._spatial_mode(ndim) == "none" or net._has(lambda lay: lay.has_readout())


def _scaled(m: np.ndarray, e: float, what: str) -> np.ndarray:
    """``m * 2**e`` (exact), or ``OverflowError`` when finite entries leave the float64 range."""
    e = int(e)
    if e == 0:
        return m
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(m, e)
    if e > 0 and np.any(np.isinf(out) & np.isfinite(m)):
        raise OverflowError(f"{what}: the kernel entries are of order 2^{e} and leave the float64 range; read "
                            "them relative to a scale (KernelStore.block(..., log2_scale=KernelStore.log2_scale(kind)))"
                            " or use KernelStore.operator(kind, scaled=True)")
    return out


# ============================================================================================
# status
# ============================================================================================
@dataclass(frozen=True)
class KernelStoreStatus:
    """Counts of a kernel store's blocks: ``total`` to compute (``I <= J`` only for a symmetric store),
    ``done`` (of which ``nonfinite`` hold NaN/inf entries) and ``pending``."""

    path: Path
    shape: tuple[int, int]
    block_size: int
    total: int
    done: int
    nonfinite: int
    pending: int

    @property
    def complete(self) -> bool:
        """True when every block is computed."""
        return self.pending == 0

    def summary(self) -> str:
        """One line for a person."""
        n1, n2 = self.shape
        return (f"{self.path}: {n1}x{n2} kernel in blocks of {self.block_size}: {self.done}/{self.total} blocks "
                f"done" + (f" ({self.nonfinite} with non-finite entries)" if self.nonfinite else "")
                + (" -- complete" if self.complete else f", {self.pending} pending"))


# ============================================================================================
# the store
# ============================================================================================
def is_kernel_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a kernel store this package wrote (a Zarr group with ``learndyn_store = "kernel"``)."""
    real = Path(path).resolve()
    try:
        attrs = json.loads((real / ".zattrs").read_text())
    except (OSError, ValueError):
        return False
    return (real / ".zgroup").is_file() and isinstance(attrs, dict) and attrs.get("learndyn_store") == _MARKER


def _check_deletable(path: Path) -> None:
    real = path.resolve()
    guarded = {"the working directory": Path.cwd().resolve(), "the home directory": Path.home().resolve(),
               "the root directory": Path(real.anchor)}
    for what, p in guarded.items():
        if real == p or p.is_relative_to(real):
            raise InvalidInputError(f"path: refusing to delete {path} for overwrite=True: it is {what}"
                                    f"{'' if real == p else ' or a parent of it'}; give the store a path of its own")
    if not is_kernel_store(real):
        raise InvalidInputError(f"path: refusing to delete {path} for overwrite=True: it is not a kernel store "
                                "written by learndyn; choose another path, or remove it yourself if you mean to")


class KernelStore:
    """An NNGP/NTK kernel in a Zarr store, computed block by block (:func:`kernel_store`; layout, resume
    guarantees and memory in the module docstring).  Open an existing one with :meth:`open` (read only;
    ``writable=True`` is for :func:`kernel_store`, which holds the store's lock)."""

    def __init__(self, path: str | os.PathLike, *, cache_bytes: float | None = None, writable: bool = False) -> None:
        import zarr

        self.path = Path(path)
        self.real = self.path.resolve()
        if not is_kernel_store(self.real):
            raise InvalidInputError(f"path: {self.path} is not a kernel store written by learndyn "
                                    "(kernels.kernel_store creates one)")
        try:
            self._group = zarr.open_group(str(self.real), mode="r+" if writable else "r", zarr_format=2)
        except Exception as exc:  # noqa: BLE001 - damaged metadata
            raise InvalidInputError(f"path: {self.path} cannot be opened ({one_line(exc)}); its metadata is "
                                    "damaged: move it away and compute the kernel again") from None
        a = dict(self._group.attrs)
        self.attrs = a
        self.shape: tuple[int, int] = (int(a["n1"]), int(a["n2"]))
        self.symmetric: bool = bool(a["symmetric"])
        self.block_size: int = int(a["block_size"])
        self.kinds: tuple[str, ...] = tuple(json.loads(a["kinds"]))
        self.nblocks = (math.ceil(self.shape[0] / self.block_size), math.ceil(self.shape[1] / self.block_size))
        self._cache: dict[tuple, np.ndarray] = {}
        self._cache_used = 0
        self.cache_bytes = 0.25 * available_memory() if cache_bytes is None else float(cache_bytes)
        self._status = np.asarray(self._group["block_status"][...], dtype=np.int8)
        self._scales = {k: np.asarray(self._group[f"{k}_log2_scale"][...], dtype=np.float64) for k in self.kinds}
        self._verify()

    @classmethod
    def open(cls, path: str | os.PathLike, *, cache_bytes: float | None = None) -> "KernelStore":
        """The kernel store at ``path`` (``InvalidInputError`` if it is not one)."""
        return cls(path, cache_bytes=cache_bytes)

    def __repr__(self) -> str:
        st = self.status()
        return (f"KernelStore({str(self.path)!r}, shape={self.shape}, kinds={self.kinds}, block_size="
                f"{self.block_size}, {st.done}/{st.total} blocks done)")

    # ---- bookkeeping --------------------------------------------------------------------
    def needed(self) -> Iterator[tuple[int, int]]:
        """Block indices ``(I, J)`` that are computed and stored (``I <= J`` for a symmetric store)."""
        for i in range(self.nblocks[0]):
            for j in range(i if self.symmetric else 0, self.nblocks[1]):
                yield i, j

    def _verify(self) -> None:
        """A done block whose chunk files are missing is pending again (warned)."""
        lost = []
        for i, j in zip(*np.nonzero(self._status)):
            if not all((self.real / k / f"{i}.{j}").is_file() for k in self.kinds):
                lost.append((int(i), int(j)))
                self._status[i, j] = PENDING
        if lost:
            warnings.warn(f"{self.path}: {len(lost)} block(s) marked done have missing data and will be computed "
                          f"again: {lost[:5]}{' ...' if len(lost) > 5 else ''}", RuntimeWarning, stacklevel=3)

    def pending(self) -> list[tuple[int, int]]:
        """Blocks still to compute."""
        return [(i, j) for i, j in self.needed() if self._status[i, j] == PENDING]

    def status(self) -> KernelStoreStatus:
        """How many blocks are done and pending (:class:`KernelStoreStatus`)."""
        need = list(self.needed())
        st = np.array([self._status[i, j] for i, j in need], dtype=np.int8)
        return KernelStoreStatus(self.path, self.shape, self.block_size, len(need), int(np.sum(st != PENDING)),
                                 int(np.sum(st == NONFINITE_BLOCK)), int(np.sum(st == PENDING)))

    @property
    def complete(self) -> bool:
        """True when every block is computed."""
        return self.status().complete

    @property
    def problem(self) -> Any:
        """The :class:`~learndyn.kernels.Problem` the kernel was computed for, or ``None`` (a Network)."""
        if self.attrs.get("problem_class") != "Problem":
            return None
        from ..results import rebuild_problem
        from .problem import Problem

        return rebuild_problem(xr.Dataset(attrs=dict(self.attrs)), Problem)

    @property
    def network(self):
        """The :class:`~learndyn.kernels.Network` the kernel was computed for (rebuilt from its description)."""
        from .network import network_from_description

        return network_from_description(json.loads(self.attrs.get("network") or self.attrs["problem"]))

    def _write_block(self, i: int, j: int, blocks: dict[str, tuple[np.ndarray, float]], finite: bool) -> None:
        """Data chunks, then scales, then the status chunk (see the module docstring)."""
        b = self.block_size
        r0, c0 = i * b, j * b
        ri, rj = min(b, self.shape[0] - r0), min(b, self.shape[1] - c0)
        for k in self.kinds:
            m = blocks[k][0][:ri, :rj]  # without the padding of a short last block
            self._group[k][r0:r0 + ri, c0:c0 + rj] = m
        for k in self.kinds:
            self._group[f"{k}_log2_scale"][i, j] = blocks[k][1]
            self._scales[k][i, j] = blocks[k][1]
        code = DONE if finite else NONFINITE_BLOCK
        self._mark_done(i, j, code)

    def _mark_done(self, i: int, j: int, code: int) -> None:
        self._group["block_status"][i, j] = code
        self._status[i, j] = code

    # ---- reading ------------------------------------------------------------------------
    def _check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise InvalidInputError(f"kind: this store holds {self.kinds}, not {kind!r}"
                                    + (" (computed with get='nngp')" if kind == "ntk" else ""))

    def _check_complete(self, what: str) -> None:
        st = self.status()
        if not st.complete:
            raise InvalidInputError(f"{what}: the store {self.path} is incomplete ({st.done}/{st.total} blocks); "
                                    "run kernels.kernel_store with the same arguments to finish it")

    def log2_scale(self, kind: str) -> float:
        """The largest block scale of ``kind``: the common power of two readers divide by (``scaled`` reads)."""
        self._check_kind(kind)
        done = self._status != PENDING
        return float(np.max(self._scales[kind][done])) if done.any() else 0.0

    def _block_units(self, kind: str, i: int, j: int, units: float, keep: bool = True) -> np.ndarray:
        """Stored block (I, J) (I <= J when symmetric) in units of ``2**units``, through the cache (kept there
        when ``keep`` and it fits: products make repeated passes, whole reads do not)."""
        key = (kind, i, j, units)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if self._status[i, j] == PENDING:
            raise InvalidInputError(f"block ({i}, {j}) of {self.path} is not computed yet; run kernels.kernel_store "
                                    "with the same arguments to finish the store")
        b = self.block_size
        m = np.asarray(self._group[kind][i * b:(i + 1) * b, j * b:(j + 1) * b], dtype=np.float64)
        out = _scaled(m, self._scales[kind][i, j] - units, kind)
        if keep and self._cache_used + out.nbytes <= self.cache_bytes:
            self._cache[key] = out
            self._cache_used += out.nbytes
        return out

    def clear_cache(self) -> None:
        """Forget the blocks kept in memory between passes."""
        self._cache.clear()
        self._cache_used = 0

    def _tile(self, kind: str, i: int, j: int, units: float) -> np.ndarray:
        """Block (I, J) of the full kernel (mirrored from (J, I) below the diagonal of a symmetric store)."""
        if self.symmetric and i > j:
            return self._block_units(kind, j, i, units, keep=False).T
        return self._block_units(kind, i, j, units, keep=False)

    def block(self, kind: str, rows: slice = slice(None), cols: slice = slice(None), *,
              log2_scale: float | None = None) -> np.ndarray:
        """``K[rows, cols]`` of ``kind`` (contiguous slices), physical, or divided by ``2**log2_scale`` when
        given (e.g. :meth:`log2_scale`: never overflows).  Reads only the blocks it touches."""
        self._check_kind(kind)
        r0, r1, rs = rows.indices(self.shape[0])
        c0, c1, cs = cols.indices(self.shape[1])
        if rs != 1 or cs != 1:
            raise InvalidInputError("rows, cols: only contiguous slices (step 1) are supported")
        units = 0.0 if log2_scale is None else float(log2_scale)
        b = self.block_size
        out = np.empty((max(r1 - r0, 0), max(c1 - c0, 0)))
        for i in range(r0 // b, math.ceil(r1 / b) if r1 > r0 else 0):
            for j in range(c0 // b, math.ceil(c1 / b) if c1 > c0 else 0):
                t = self._tile(kind, i, j, units)
                ra, rb = max(r0, i * b), min(r1, (i + 1) * b)
                ca, cb = max(c0, j * b), min(c1, (j + 1) * b)
                out[ra - r0:rb - r0, ca - c0:cb - c0] = t[ra - i * b:rb - i * b, ca - j * b:cb - j * b]
        return out

    def to_numpy(self, kind: str, *, log2_scale: float | None = None) -> np.ndarray:
        """The whole kernel ``kind`` in memory (physical, or divided by ``2**log2_scale``); refused with
        :class:`~learndyn.kernels.KernelMemoryError` when it would not fit."""
        self._check_kind(kind)
        self._check_complete("to_numpy")
        n1, n2 = self.shape
        try:
            check_memory(8.0 * n1 * n2, what=f"the {n1}x{n2} {kind} kernel of {self.path} in memory",
                         reduce="read it in parts (KernelStore.block) or solve with KernelStore.operator / predict, "
                                "which stream blocks")
        except MemoryError as exc:
            raise KernelMemoryError(str(exc)) from None
        return self.block(kind, log2_scale=log2_scale)

    def to_kernel(self):
        """The whole store as an in-memory :class:`~learndyn.kernels.Kernel` (mantissas at the common scale
        :meth:`log2_scale`); refused with :class:`~learndyn.kernels.KernelMemoryError` when it would not fit."""
        from .network import Kernel, _finite_status

        if "nngp" not in self.kinds:
            raise InvalidInputError("to_kernel: this store holds only the NTK (computed with get='ntk'); read it with "
                                    "to_numpy('ntk')")
        ek = self.log2_scale("nngp")
        nngp = self.to_numpy("nngp", log2_scale=ek)
        ntk, et = None, 0.0
        if "ntk" in self.kinds:
            et = self.log2_scale("ntk")
            ntk = self.to_numpy("ntk", log2_scale=et)
        status, message = _finite_status(int(np.count_nonzero(~np.isfinite(nngp))),
                                         0 if ntk is None else int(np.count_nonzero(~np.isfinite(ntk))))
        return Kernel(nngp, ntk, ek, et, False, self.network, status, message, problem=self.problem)

    def diagonal(self, kind: str) -> np.ndarray:
        """``K(x_i, x_i)`` of a symmetric store (physical values), reading the diagonal blocks only."""
        self._check_kind(kind)
        if not self.symmetric:
            raise InvalidInputError("diagonal: only a symmetric store (x2=None) has a diagonal")
        return np.concatenate([np.diagonal(self._block_units(kind, i, i, 0.0)) for i in range(self.nblocks[0])])

    def to_xarray(self) -> xr.Dataset:
        """The store as a lazy Dataset (dask arrays, nothing read yet): ``<kind>_mantissa`` over ``(x1, x2)``
        (mirrored for a symmetric store) and ``<kind>_log2_scale`` over ``(block_row, block_col)``: the
        physical entry ``(a, b)`` is ``mantissa[a, b] * 2**log2_scale[a // block_size, b // block_size]``."""
        import dask.array as da

        data = {}
        for k in self.kinds:
            arr = da.from_zarr(self._group[k])
            if self.symmetric:
                rows = [[arr.blocks[i, j] if i <= j else arr.blocks[j, i].T for j in range(self.nblocks[1])]
                        for i in range(self.nblocks[0])]
                arr = da.block(rows)
            data[f"{k}_mantissa"] = (("x1", "x2"), arr)
            data[f"{k}_log2_scale"] = (("block_row", "block_col"), self._mirrored(self._scales[k]))
        data["block_status"] = (("block_row", "block_col"), self._mirrored(self._status))
        attrs = {k: v for k, v in self.attrs.items() if isinstance(v, (str, int, float))}
        attrs["description"] = "physical kernel = mantissa * 2**log2_scale of its block (block_size rows and cols)"
        return xr.Dataset(data, attrs=attrs)

    def _mirrored(self, per_block: np.ndarray) -> np.ndarray:
        """A per-block array with the lower triangle of a symmetric store filled from the upper one."""
        out = per_block.copy()
        if self.symmetric:
            low = np.tril_indices(out.shape[0], -1)
            out[low] = out.T[low]
        return out

    # ---- products and solves ------------------------------------------------------------
    def matmat(self, kind: str, v: np.ndarray, *, log2_scale: float | None = None, cache: bool = True) -> np.ndarray:
        """``K @ v`` (``v``: ``(n2,)`` or ``(n2, k)``), streaming the stored blocks once (a symmetric block is
        used for both ``K[I, J]`` and ``K[J, I]``); physical, or divided by ``2**log2_scale`` when given.
        ``cache``: keep the blocks read in memory (up to ``cache_bytes``) for the next pass."""
        self._check_kind(kind)
        self._check_complete("matmat")
        v = np.asarray(v, dtype=np.float64)
        if v.ndim not in (1, 2) or v.shape[0] != self.shape[1]:
            raise InvalidInputError(f"v: expected ({self.shape[1]},) or ({self.shape[1]}, k), got {v.shape}")
        vec = v.ndim == 1
        V = v[:, None] if vec else v
        units = 0.0 if log2_scale is None else float(log2_scale)
        b = self.block_size
        out = np.zeros((self.shape[0], V.shape[1]))
        for i, j in self.needed():
            B = self._block_units(kind, i, j, units, keep=cache)
            out[i * b:i * b + B.shape[0]] += B @ V[j * b:j * b + B.shape[1]]
            if self.symmetric and i != j:
                out[j * b:j * b + B.shape[1]] += B.T @ V[i * b:i * b + B.shape[0]]
        return out[:, 0] if vec else out

    def operator(self, kind: str = "ntk", reg: float = 0.0, relative: bool = True, *,
                 scaled: bool = False) -> "KernelOperator":
        """``K + reg I`` as a ``scipy.sparse.linalg.LinearOperator`` whose products stream the store's blocks
        (:class:`KernelOperator`).  ``reg`` is multiplied by ``mean(diag K)`` when ``relative`` (the package's
        one convention, as :func:`~learndyn.kernels.mean_predictor`).  ``scaled=True``: the operator is
        ``(K + reg I) / 2**log2_scale(kind)`` (exact; for kernels beyond the float64 range)."""
        self._check_kind(kind)
        self._check_complete("operator")
        if not self.symmetric:
            raise InvalidInputError("operator: needs a symmetric train-train store (computed with x2=None)")
        if isinstance(reg, bool) or not (isinstance(reg, (int, float, np.floating)) and math.isfinite(reg)
                                          and reg >= 0):
            raise InvalidInputError(f"reg: must be a finite number >= 0, got {reg!r}")
        return KernelOperator(self, kind, float(reg), bool(relative), self.log2_scale(kind) if scaled else 0.0)

    def predict(self, test_train: "KernelStore | np.ndarray", y, *, kind: str = "ntk", reg: float = 0.0,
                relative: bool = True, tol: float = 1e-8, maxiter: int | None = None,
                preconditioner: Any = "auto", x0=None, rank: int | None = None) -> "StorePrediction":
        r"""Kernel regression at ``t = infinity`` beyond memory: ``f(X*) = K(X*, X) (K(X, X) + reg I)^{-1} Y``
        (Lee et al. 2019, eq. (16); the NNGP posterior mean with ``kind="nngp"``), the solve by
        :func:`conjugate_gradient` on :meth:`operator` (streamed; all columns of ``y`` together; options
        ``tol``, ``maxiter``, ``preconditioner`` -- default ``"auto"`` --, ``x0``, ``rank`` as there) and the
        product streamed from ``test_train`` (a store computed with ``x1 = X*``, ``x2 = X``, or an array).
        Works in units of this store's :meth:`log2_scale`, so kernels beyond the float64 range are fine.
        The :class:`StorePrediction` carries the CG status (``NOT_CONVERGED`` with the residual history if
        it stopped early, ``NOT_PSD`` if ``K + reg I`` is not positive definite)."""
        op = self.operator(kind, reg, relative, scaled=True)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim not in (1, 2) or y.shape[0] != self.shape[0]:
            raise InvalidInputError(f"y: expected ({self.shape[0]},) or ({self.shape[0]}, k), got {y.shape}")
        e = op.log2_scale
        if x0 is not None:
            x0 = np.ldexp(np.asarray(x0, dtype=np.float64), int(e))  # the solution in the operator's units
        sol = conjugate_gradient(op, y, tol=tol, maxiter=maxiter, preconditioner=preconditioner, x0=x0, rank=rank)
        alpha_units = sol.x  # = 2**e * alpha
        if isinstance(test_train, KernelStore):
            if test_train.shape[1] != self.shape[0]:
                raise InvalidInputError(f"test_train: has {test_train.shape[1]} columns, the train kernel "
                                        f"{self.shape[0]} rows; compute it with x2 = the training inputs")
            et = test_train.log2_scale(kind)
            mean = _scaled(test_train.matmat(kind, alpha_units, log2_scale=et, cache=False), et - e, "prediction")
        else:
            kt = np.asarray(test_train, dtype=np.float64)
            if kt.ndim != 2 or kt.shape[1] != self.shape[0]:
                raise InvalidInputError(f"test_train: expected (n_test, {self.shape[0]}), got {kt.shape}")
            mean = _scaled(kt @ alpha_units, -e, "prediction")
        alpha = _scaled(alpha_units, -e, "alpha")
        return StorePrediction(mean, alpha, sol, op.reg_abs_physical, kind, sol.status, sol.message)


# ============================================================================================
# the streamed operator
# ============================================================================================
class KernelOperator(LinearOperator):
    """``(K + reg_abs I) / 2**log2_scale`` of a symmetric :class:`KernelStore` as a SciPy
    ``LinearOperator``: ``matvec``/``matmat`` stream the stored blocks (upper triangle, each used twice),
    keeping what fits in the store's block cache.  ``diagonal()`` gives the Jacobi preconditioner's
    diagonal; ``reg_abs`` is in the operator's units, ``reg_abs_physical`` in the kernel's."""

    def __init__(self, store: KernelStore, kind: str, reg: float, relative: bool, log2_scale: float) -> None:
        n = store.shape[0]
        super().__init__(dtype=np.float64, shape=(n, n))
        self.store, self.kind, self.log2_scale = store, kind, float(log2_scale)
        self._diag = store.diagonal(kind) if log2_scale == 0 else np.concatenate(
            [np.diagonal(store._block_units(kind, i, i, log2_scale)) for i in range(store.nblocks[0])])
        mean_diag = float(np.mean(self._diag))
        self.reg_abs = reg * (mean_diag if relative else math.ldexp(1.0, -int(log2_scale)))
        with np.errstate(over="ignore"):  # inf when the kernel itself is beyond the float64 range
            self.reg_abs_physical = float(reg * (np.ldexp(mean_diag, int(log2_scale)) if relative else 1.0))

    def diagonal(self) -> np.ndarray:
        """The diagonal of the operator (``diag K + reg_abs``, in its units)."""
        return self._diag + self.reg_abs

    def _matmat(self, X):
        X = np.asarray(X, dtype=np.float64)
        out = self.store.matmat(self.kind, X, log2_scale=self.log2_scale)
        if self.reg_abs:
            out = out + self.reg_abs * X
        return out

    def _matvec(self, x):
        return self._matmat(np.asarray(x).reshape(-1, 1)).reshape(-1)

    def _adjoint(self):
        return self


# ============================================================================================
# conjugate gradients
# ============================================================================================
@dataclass(frozen=True)
class CGSolution(Result):
    """``x = A^{-1} y`` by (preconditioned) conjugate gradients (:func:`conjugate_gradient`).

    ``residuals``: ``(iterations + 1, k)`` relative residuals ``|y - A x| / |y|`` per column after each
    iteration (a converged column keeps its last value); ``true_residual``: ``|y - A x| / |y|`` per column
    recomputed from ``x`` at the end (the recursion's residual can drift below the true one on an
    ill-conditioned system).  ``status``: ``SUCCESS`` (every column below ``tol``, also recomputed),
    ``NOT_CONVERGED`` (``maxiter`` reached, or the recomputed residual above ``10 tol``; ``x`` is the last
    iterate), ``NOT_PSD`` (a direction
    with ``p^T A p <= 0`` or a non-positive diagonal: ``A`` is not positive definite; ``x`` is the last
    iterate before it) or ``NONFINITE`` (the operator returned NaN/inf)."""

    x: np.ndarray
    residuals: np.ndarray
    iterations: int
    tol: float
    status: Status = Status.SUCCESS
    message: str = ""
    true_residual: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def to_xarray(self) -> xr.Dataset:
        """``x`` over ``(row[, column])``, ``residuals`` over ``(iteration, column)``, ``true_residual`` over
        ``column``; status as attributes."""
        dims = ("row",) if self.x.ndim == 1 else ("row", "column")
        data = {"x": (dims, self.x), "residuals": (("iteration", "column"), self.residuals)}
        if self.true_residual is not None:
            data["true_residual"] = (("column",), np.atleast_1d(self.true_residual))
        return xr.Dataset(data, attrs=dict(iterations=int(self.iterations), tol=float(self.tol),
                                           status=str(self.status), message=self.message))

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "CGSolution":
        """The solution stored by :meth:`to_xarray`."""
        a = ds.attrs
        return cls(ds["x"].values, ds["residuals"].values, int(a["iterations"]), float(a["tol"]),
                   Status.of(a.get("status", "success")), str(a.get("message", "")),
                   ds["true_residual"].values if "true_residual" in ds else None)


def _as_operator(A):
    from scipy.sparse.linalg import LinearOperator, aslinearoperator

    if isinstance(A, LinearOperator):
        return A, (A.diagonal() if hasattr(A, "diagonal") else None)
    M = np.asarray(A, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise InvalidInputError(f"operator: expected a square matrix or a LinearOperator, got shape {M.shape}")
    return aslinearoperator(M), np.diag(M).copy()


def _nystrom(A, mu: float, rank: int, seed: int):
    """``M^{-1}`` of the randomized Nystrom preconditioner (Frangella, Tropp & Udell 2023, Alg. 2.1 and eq. (5.3))
    for ``A = K + mu I``: a rank-``rank`` sketch ``K Omega`` (one product with ``rank`` columns), then
    ``M^{-1} = (lambda_r + mu) U (Lambda + mu)^{-1} U^T + (I - U U^T)``.  ``None`` when the sketch shows
    that ``K`` is not positive semi-definite."""
    from scipy.linalg import cholesky, solve_triangular

    n = A.shape[0]
    omega, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, rank)))
    Ys = np.asarray(A.matmat(omega), dtype=np.float64) - mu * omega
    nu = np.finfo(np.float64).eps * max(np.linalg.norm(Ys), np.finfo(np.float64).tiny)
    Ys += nu * omega
    try:
        C = cholesky(omega.T @ Ys, lower=False)
    except np.linalg.LinAlgError:
        return None
    B = solve_triangular(C, Ys.T, trans="T", lower=False).T  # Y_nu C^{-1}
    U, sig, _ = np.linalg.svd(B, full_matrices=False)
    lam = np.maximum(sig ** 2 - nu, 0.0)
    if not np.all(np.isfinite(lam)) or lam[-1] + mu <= 0:
        return None
    scale = (lam[-1] + mu) / (lam + mu)

    def apply(R):
        UtR = U.T @ R
        return R + U @ ((scale - 1.0)[:, None] * UtR)

    return apply


def conjugate_gradient(operator: Any, y, *, tol: float = 1e-8, maxiter: int | None = None,
                       preconditioner: Any = "jacobi", x0=None, rank: int | None = None,
                       seed: int = 0) -> CGSolution:
    r"""Solve ``A x = y`` for a symmetric positive-definite ``A`` by preconditioned conjugate gradients
    (Hestenes & Stiefel 1952), all columns of ``y`` at once: each iteration makes one ``A @ P`` product
    with the columns not yet converged (one pass over a streamed kernel for all of them), float64.

    Parameters
    ----------
    operator:
        A square matrix or ``scipy.sparse.linalg.LinearOperator`` (e.g. :meth:`KernelStore.operator`).
    y:
        ``(n,)`` or ``(n, k)`` right-hand sides.
    tol:
        Stop a column when ``|y - A x| / |y| <= tol``.
    maxiter:
        Most iterations (default ``10 n``).
    preconditioner:
        ``"jacobi"`` (divide by the diagonal: needs a matrix or an operator with ``diagonal()``),
        ``"nystrom"`` (randomized Nystrom preconditioner of rank ``rank``, Frangella, Tropp & Udell 2023: one
        extra product with ``rank`` columns; for a kernel with a decaying spectrum it cuts the iterations
        several-fold), ``"auto"`` (``"nystrom"`` from ``n = 8192`` on, where the sketch pays for itself,
        else ``"jacobi"``), ``None``, or ``M^{-1}`` as a matrix, ``LinearOperator`` or callable.
    x0:
        Starting guess (default zeros).
    rank, seed:
        Rank (default ``min(n, 500)``) and random seed of the ``"nystrom"`` sketch.  With an operator that
        has ``reg_abs`` (:meth:`KernelStore.operator`) the kernel ``A - reg_abs I`` is sketched.

    Returns a :class:`CGSolution`: never NaN without saying so -- ``NOT_PSD`` when ``A`` is not positive
    definite, ``NOT_CONVERGED`` (with the residual history) when ``maxiter`` runs out, ``NONFINITE`` when
    the operator returns NaN/inf.
    """
    A, diag = _as_operator(operator)
    n = A.shape[0]
    Y = np.asarray(y, dtype=np.float64)
    if Y.ndim not in (1, 2) or Y.shape[0] != n:
        raise InvalidInputError(f"y: expected ({n},) or ({n}, k), got {Y.shape}")
    if not np.all(np.isfinite(Y)):
        raise InvalidInputError("y: has NaN or inf entries")
    if isinstance(tol, bool) or not (isinstance(tol, (int, float, np.floating)) and 0 < tol < 1):
        raise InvalidInputError(f"tol: must be a number in (0, 1), got {tol!r}")
    if maxiter is None:
        maxiter = 10 * n
    if isinstance(maxiter, bool) or int(maxiter) != maxiter or maxiter < 0:
        raise InvalidInputError(f"maxiter: must be a non-negative integer, got {maxiter!r}")
    vec = Y.ndim == 1
    Y = Y[:, None] if vec else Y
    k = Y.shape[1]

    def done(x, res, it, status=Status.SUCCESS, message="", true=None):
        return CGSolution(x[:, 0] if vec else x, np.asarray(res), it, float(tol), status, message, true)

    # the preconditioner M^{-1}
    if isinstance(preconditioner, str) and preconditioner == "auto":
        preconditioner = "nystrom" if n >= _AUTO_NYSTROM else "jacobi" if diag is not None else None
    if isinstance(preconditioner, str) and preconditioner == "nystrom":
        r = min(n, 500) if rank is None else rank
        if isinstance(r, bool) or int(r) != r or not 1 <= r <= n:
            raise InvalidInputError(f"rank: must be an integer in 1..{n}, got {rank!r}")
        mu = float(getattr(A, "reg_abs", 0.0))
        apply_m = _nystrom(A, mu, int(r), int(seed))
        if apply_m is None:
            return done(np.zeros_like(Y) if x0 is None else np.asarray(x0, float).reshape(n, k), np.ones((1, k)), 0,
                        Status.NOT_PSD, "operator: its Nystrom sketch is not positive definite, so the matrix is not; "
                        "conjugate gradients need a positive-definite kernel (check the kernel, or add reg > 0)")
    elif isinstance(preconditioner, str):
        if preconditioner != "jacobi":
            raise InvalidInputError(f"preconditioner: 'jacobi', 'nystrom', 'auto', None, a matrix, LinearOperator or "
                                    f"callable, got {preconditioner!r}")
        if diag is None:
            raise InvalidInputError("preconditioner: 'jacobi' needs the operator's diagonal (a matrix, or an operator "
                                    "with diagonal(), such as KernelStore.operator); pass preconditioner=None")
        diag = np.asarray(diag, dtype=np.float64)
        if not np.all(diag > 0):
            bad = int(np.flatnonzero(~(diag > 0))[0])
            return done(np.zeros_like(Y) if x0 is None else np.asarray(x0, float).reshape(n, k),
                        np.ones((1, k)), 0, Status.NOT_PSD,
                        f"operator: diagonal entry {bad} is {diag[bad]:.3g} <= 0, so the matrix is not positive "
                        "definite; conjugate gradients need a positive-definite kernel (check the kernel, or add "
                        "reg > 0)")
        inv = 1.0 / diag
        apply_m = lambda R: inv[:, None] * R  # noqa: E731
    elif preconditioner is None:
        apply_m = lambda R: R  # noqa: E731
    elif callable(preconditioner) and not hasattr(preconditioner, "matmat"):
        apply_m = lambda R: np.column_stack([np.asarray(preconditioner(c), float) for c in R.T])  # noqa: E731
    else:
        Mop, _ = _as_operator(preconditioner)
        apply_m = lambda R: np.asarray(Mop.matmat(R), float)  # noqa: E731

    ynorm = np.linalg.norm(Y, axis=0)
    safe = np.where(ynorm > 0, ynorm, 1.0)
    if x0 is None:
        X = np.zeros((n, k))
        R = Y.copy()
    else:
        X = np.array(np.asarray(x0, dtype=np.float64).reshape(n, k))
        R = Y - np.asarray(A.matmat(X), dtype=np.float64)
    rel = np.linalg.norm(R, axis=0) / safe
    rel[ynorm == 0] = 0.0
    if ynorm.min() == 0:
        X[:, ynorm == 0] = 0.0
    history = [rel.copy()]
    active = rel > tol
    Z = apply_m(R)
    P = Z.copy()
    rz = np.sum(R * Z, axis=0)
    it = 0
    while active.any() and it < maxiter:
        a = np.flatnonzero(active)
        AP = np.asarray(A.matmat(P[:, a]), dtype=np.float64)
        pap = np.sum(P[:, a] * AP, axis=0)
        if not np.all(np.isfinite(AP)) or not np.all(np.isfinite(pap)):
            return done(X, history, it, Status.NONFINITE,
                        f"operator: returned NaN/inf at iteration {it + 1}; check the kernel for non-finite entries")
        if np.any(pap <= 0):
            col = int(a[np.flatnonzero(pap <= 0)[0]])
            return done(X, history, it, Status.NOT_PSD,
                        f"operator: p^T A p <= 0 at iteration {it + 1} (column {col}): the matrix is not positive "
                        "definite to working precision; increase reg (relative to the mean diagonal, e.g. "
                        "reg=1e-8) or check the kernel")
        alpha = rz[a] / pap
        X[:, a] += alpha * P[:, a]
        R[:, a] -= alpha * AP
        it += 1
        rel_a = np.linalg.norm(R[:, a], axis=0) / safe[a]
        rel[a] = rel_a
        history.append(rel.copy())
        still = rel_a > tol
        active[a[~still]] = False
        a2 = a[still]
        if a2.size:
            Z2 = apply_m(R[:, a2])
            rz2 = np.sum(R[:, a2] * Z2, axis=0)
            beta = rz2 / rz[a2]
            P[:, a2] = Z2 + beta * P[:, a2]
            rz[a2] = rz2
    if active.any():
        worst = float(np.max(rel))
        return done(X, history, it, Status.NOT_CONVERGED,
                    f"conjugate gradients: {int(active.sum())} of {k} column(s) not converged after {it} iterations "
                    f"(largest relative residual {worst:.3g} > tol={tol:g}); the kernel is ill-conditioned: increase "
                    "reg, maxiter or use a better preconditioner")
    true = np.linalg.norm(Y - np.asarray(A.matmat(X), dtype=np.float64), axis=0) / safe
    true[ynorm == 0] = 0.0
    if not np.all(true <= 10 * tol):
        return done(X, history, it, Status.NOT_CONVERGED,
                    f"conjugate gradients: the recursion reached tol={tol:g} after {it} iterations, but the residual "
                    f"recomputed from x is {float(np.max(true)):.3g}: the system is too ill-conditioned for this "
                    "tolerance (or the operator's products are less accurate than it); increase reg or tol", true)
    return done(X, history, it, true=true)


@dataclass(frozen=True)
class StorePrediction(Result):
    r"""Kernel-regression predictions from a stored kernel (:meth:`KernelStore.predict`):
    ``mean = K(X*, X) alpha`` with ``alpha = (K(X, X) + reg I)^{-1} Y`` (Lee et al. 2019, eq. (16) at
    ``t = infinity``).  ``reg``: the absolute regularisation added (``inf`` for a kernel beyond the float64
    range, whose solve runs in units of its scale); ``solution``: the CG run (in units of
    the train kernel's scale); ``status`` is the solve's."""

    mean: np.ndarray
    alpha: np.ndarray
    solution: CGSolution
    reg: float
    kind: str
    status: Status = Status.SUCCESS
    message: str = ""

    def __post_init__(self):
        object.__setattr__(self, "status", Status.of(self.status))

    def to_xarray(self) -> xr.Dataset:
        """``mean`` over ``(test[, output])``, ``alpha`` over ``(train[, output])``, the CG residual history."""
        tail = () if self.mean.ndim == 1 else ("output",)
        return xr.Dataset({"mean": (("test",) + tail, self.mean), "alpha": (("train",) + tail, self.alpha),
                           "residuals": (("iteration", "column"), self.solution.residuals)},
                          attrs=dict(reg=float(self.reg), kind=self.kind, iterations=int(self.solution.iterations),
                                     tol=float(self.solution.tol), status=str(self.status), message=self.message))

    @classmethod
    def from_xarray(cls, ds: xr.Dataset) -> "StorePrediction":
        """The prediction stored by :meth:`to_xarray` (``solution.x`` is ``alpha`` at the physical scale)."""
        a = ds.attrs
        status = Status.of(a.get("status", "success"))
        sol = CGSolution(ds["alpha"].values, ds["residuals"].values, int(a["iterations"]), float(a["tol"]), status,
                         str(a.get("message", "")))
        return cls(ds["mean"].values, ds["alpha"].values, sol, float(a["reg"]), str(a["kind"]), status,
                   str(a.get("message", "")))


# ============================================================================================
# computing a store
# ============================================================================================
def _block_task(network, xa: np.ndarray, xb: np.ndarray | None, kinds: tuple[str, ...],
                memory_limit: float | None = None) -> dict:
    """One block (run in the client or on a Dask worker): mantissas and scales per kind, finiteness,
    seconds.  ``xb=None``: ``xa`` with itself (a diagonal block of a symmetric store)."""
    t0 = time.perf_counter()
    k = network.kernel(xa, xb, get=kinds, verbose=False, memory_limit=memory_limit)
    out = {}
    if "nngp" in kinds:
        out["nngp"] = (np.asarray(k.nngp_mantissa), float(k.nngp_log2_scale))
    if "ntk" in kinds:
        out["ntk"] = (np.asarray(k.ntk_mantissa), float(k.ntk_log2_scale))
    finite = all(np.all(np.isfinite(m)) for m, _ in out.values())
    return {"blocks": out, "finite": finite, "seconds": time.perf_counter() - t0}


def _memory_plan(net, shape1: tuple, n2: int, kinds: tuple[str, ...], workers: int,
                 block_size: int | None, memory_limit: float | None) -> tuple[int, float]:
    """``(block size, memory limit of Network.kernel's working memory per block)``.

    Each worker (or this process) gets ``share = available / (2 workers)``.  Unless given, the working
    memory of one block's computation is limited to half of it, and the block size is the largest (<= 4096
    rows, or the whole kernel) whose outputs, held three times (the result, its copy to the store, one in
    flight), fit the other half and whose honest estimate (:meth:`Network.memory_estimate` with that limit)
    plus those copies fits the share."""
    n1 = shape1[0]
    sp, ch = tuple(shape1[1:-1]), int(shape1[-1])
    share = 0.5 * available_memory() / max(workers, 1)
    limit = float(memory_limit) if memory_limit is not None else 0.5 * share
    if block_size is not None:
        return int(block_size), limit
    per_row2 = 3 * 8.0 * len(kinds)
    b = max(16, min(max(n1, n2), _MAX_DEFAULT_BLOCK, math.isqrt(int(max(share - limit, 0) / per_row2))))
    while b > 16:
        try:
            est = net.memory_estimate(b, b, sp, channels=ch, get=kinds, memory_limit=limit)
        except Exception:  # noqa: BLE001 - an estimate never stops a run by failing itself
            break
        if est + per_row2 * b * b <= share:
            break
        b //= 2
    return int(min(b, max(n1, n2))), limit


def _create(real: Path, attrs: dict, n1: int, n2: int, b: int, kinds: tuple[str, ...]) -> None:
    """Build the empty store in a temporary sibling folder and rename it into place."""
    import zarr

    for stale in real.parent.glob(f".{real.name}.creating-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = real.parent / f".{real.name}.creating-{os.getpid()}"
    nb = (math.ceil(n1 / b), math.ceil(n2 / b))
    cfg = {"write_empty_chunks": True}
    try:
        g = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        for k in kinds:
            g.create_array(k, shape=(n1, n2), chunks=(min(b, n1), min(b, n2)), dtype="f8", fill_value=np.nan,
                           compressors=None, config=cfg)
            g.create_array(f"{k}_log2_scale", shape=nb, chunks=(1, 1), dtype="f8", fill_value=0.0,
                           compressors=None, config=cfg)
        g.create_array("block_status", shape=nb, chunks=(1, 1), dtype="i1", fill_value=0, compressors=None,
                       config=cfg)
        g.attrs.update(attrs)
        if real.exists():
            real.rmdir()  # an empty directory (checked by the caller)
        os.rename(tmp, real)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _identity_mismatch(old: dict, new: dict) -> list[str]:
    names = {"network": "the network", "kinds": "the kinds (get)", "n1": "the number of x1 rows",
             "n2": "the number of x2 rows", "symmetric": "x2=None vs an x2", "x1_sha256": "the inputs x1",
             "x2_sha256": "the inputs x2", "input_shape": "the input shape"}
    return [what for key, what in names.items() if str(old.get(key)) != str(new.get(key))]


def kernel_store(problem_or_network: Any, x1, x2=None, *, path: str | os.PathLike, block_size: int | None = None,
                 get: str | Sequence[str] = ("nngp", "ntk"), scheduler: str | None = None, client: Any = None,
                 n_workers: int | None = None, overwrite: bool = False, progress: bool = True,
                 max_blocks: int | None = None, callback: Callable[[int, int], Any] | None = None,
                 memory_limit: float | None = None, cache_bytes: float | None = None) -> KernelStore:
    r"""Compute (or resume) the NNGP/NTK between the rows of ``x1`` and ``x2`` (``x2=None``: ``x1`` with
    itself) block by block into the Zarr store at ``path``; the kernels are those of
    :meth:`Network.kernel <learndyn.kernels.Network.kernel>` (Jacot et al. 2018, Theorem 1; Lee et al. 2019;
    Novak et al. 2019 for CNN-GAP), computed on ``block_size`` x ``block_size`` blocks of inputs.

    Parameters
    ----------
    problem_or_network:
        A :class:`~learndyn.kernels.Problem` or :class:`~learndyn.kernels.Network` with a readout (an FCN,
        or a CNN with ``Flatten`` / ``GlobalAvgPool``): one float64 entry per pair of inputs.
    x1, x2:
        Inputs as for :meth:`Network.kernel`; fingerprinted (SHA-256) so a resume with other data is refused.
    path:
        The store (a directory).  An existing store of the same computation is resumed (its done blocks are
        kept); one of another computation is refused unless ``overwrite=True`` (which deletes only a kernel
        store).
    block_size:
        Rows (and columns) per block = per Zarr chunk.  Default: from the memory estimate (module docstring);
        on resume, the stored one.
    get:
        The kinds stored: ``("nngp", "ntk")`` (default), ``"nngp"`` or ``"ntk"`` (half the disk of both).
    scheduler, client, n_workers:
        Compute the blocks on Dask workers (the sweeps' machinery, :func:`learndyn.cluster.connect`): a
        scheduler address, a ``distributed.Client``, or ``n_workers > 1`` for a LocalCluster of that many
        processes.  Default: serially in this process.  Workers only compute; this process writes the store.
    max_blocks:
        Compute at most this many blocks in this call (the store stays resumable).
    callback:
        Called as ``callback(I, J)`` after block ``(I, J)`` is safely stored (e.g. progress reporting).
    memory_limit:
        Bytes for the working memory of one block's computation (``Network.kernel``'s ``memory_limit``);
        default: a quarter of the available memory per worker (module docstring).
    cache_bytes:
        Memory for blocks kept between passes when the returned store is read (default: a quarter of the
        available memory).

    Returns the :class:`KernelStore` (``.status()`` says whether it is complete).
    """
    problem, net = _network_of(problem_or_network)
    kinds = _kinds(get)
    x1 = net._check_input(x1, "x1")
    if x2 is not None:
        x2 = net._check_input(x2, "x2")
        if x2.shape[1:] != x1.shape[1:]:
            raise InvalidInputError(f"x2: shape {x2.shape} does not match x1 {x1.shape} beyond the batch axis")
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = None if x2 is None else np.asarray(x2, dtype=np.float64)
    if not _has_readout(net, x1.ndim):
        raise InvalidInputError("problem_or_network: a kernel store holds one entry per pair of inputs; use a network "
                                "with a readout (readout='flatten' or 'gap' for a CNN)")
    symmetric = x2 is None
    n1 = x1.shape[0]
    n2 = n1 if symmetric else x2.shape[0]
    if n_workers is not None and (isinstance(n_workers, bool) or int(n_workers) != n_workers or n_workers < 1):
        raise InvalidInputError(f"n_workers: must be a positive integer, got {n_workers!r}")
    if max_blocks is not None and (isinstance(max_blocks, bool) or int(max_blocks) != max_blocks or max_blocks < 0):
        raise InvalidInputError(f"max_blocks: must be a non-negative integer, got {max_blocks!r}")
    if block_size is not None and (isinstance(block_size, bool) or int(block_size) != block_size or block_size < 1):
        raise InvalidInputError(f"block_size: must be a positive integer, got {block_size!r}")
    if path is None:
        raise InvalidInputError("path: give the store's directory")
    shown = Path(path)
    real = shown.resolve()
    if real.exists() and not real.is_dir():
        raise InvalidInputError(f"path: {shown} is a file, not a kernel store directory; choose another path")
    if scheduler:
        from ..cluster import check_scheduler

        scheduler = check_scheduler(scheduler)
    identity = {"network": json.dumps(net.describe(), sort_keys=True), "kinds": json.dumps(list(kinds)),
                "n1": n1, "n2": n2, "symmetric": int(symmetric), "input_shape": json.dumps(list(x1.shape[1:])),
                "x1_sha256": _fingerprint(x1), "x2_sha256": "" if symmetric else _fingerprint(x2)}
    with contextlib.ExitStack() as stack:
        lock = StoreLock(real, f"path: {shown} is being written by another process")
        stack.callback(lock.release)  # released last, after the Dask client and cluster are closed
        fresh, replace, store = True, False, None
        if real.exists() and any(real.iterdir()):
            if overwrite:
                _check_deletable(shown)
                replace = True  # deleted once the cluster (if any) is connected
            elif is_kernel_store(real):
                old = json.loads((real / ".zattrs").read_text())
                differ = _identity_mismatch(old, identity)
                if differ:
                    raise InvalidInputError(
                        f"path: {shown} holds another kernel ({', '.join(differ)} differ); give another path, or "
                        "overwrite=True to replace it")
                if block_size is not None and int(block_size) != int(old["block_size"]):
                    raise InvalidInputError(f"block_size: the store {shown} was started with block_size="
                                            f"{old['block_size']}; resume with that (or None), or overwrite=True")
                fresh = False
            else:
                raise InvalidInputError(f"path: {shown} exists and is not a kernel store; choose another path")
        local = client is None and not scheduler
        workers = 1 if local and not n_workers else int(n_workers or 1)
        distributed = not local or workers > 1
        if fresh:
            b, _ = _memory_plan(net, x1.shape, n2, kinds, workers, block_size, memory_limit)
            b = min(b, max(n1, n2))
            nb1, nb2 = math.ceil(n1 / b), math.ceil(n2 / b)
            n_todo = nb1 * (nb1 + 1) // 2 if symmetric else nb1 * nb2
        else:
            store = KernelStore(shown, cache_bytes=cache_bytes, writable=True)
            n_todo = len(store.pending())
        if max_blocks is not None:
            n_todo = min(n_todo, int(max_blocks))
        bsz = b if fresh else store.block_size
        _check_disk(shown, real, n_todo * 8.0 * bsz * bsz * len(kinds), replace)
        dask_client = None
        if distributed and n_todo:
            # connected to before the store is created: a scheduler that does not answer leaves nothing behind
            from ..cluster import ClusterError, connect

            dask_client, _ = stack.enter_context(connect(scheduler, n_workers, 1, n_todo, client, error=ClusterError))
        if fresh:
            from .. import __version__

            if replace:
                _check_deletable(shown)
                shutil.rmtree(real)
            subject = problem if problem is not None else net.describe()
            extra = dict(identity, block_size=b, learndyn_store=_MARKER, learndyn_store_version=_VERSION,
                         title="learndyn kernel store",
                         description="physical kernel = mantissa * 2**<kind>_log2_scale of its block")
            attrs = problem_attrs(subject, **extra)
            attrs["learndyn_version"] = __version__
            _create(real, attrs, n1, n2, b, kinds)
            store = KernelStore(shown, cache_bytes=cache_bytes, writable=True)
        _, limit = _memory_plan(net, x1.shape, n2, kinds, workers, store.block_size, memory_limit)
        todo = store.pending()
        if max_blocks is not None:
            todo = todo[:int(max_blocks)]
        if todo:
            _run_blocks(store, net, x1, x2, todo, kinds, limit, dask_client, progress=progress, callback=callback)
    return store


def _check_disk(shown: Path, real: Path, need: float, replace: bool) -> None:
    """Refuse, before anything is computed, blocks that would not fit on the store's disk."""
    free = shutil.disk_usage(real if real.exists() else real.parent).free
    if replace:  # the old store's space comes back
        free += sum(f.stat().st_size for f in real.rglob("*") if f.is_file())
    if need > 0.98 * free:
        raise InvalidInputError(
            f"path: the kernel needs about {format_bytes(need)} on disk, but only {format_bytes(free)} is free where "
            f"{shown} lies; choose a path on a larger disk, store one kind (get='ntk' or 'nngp'), or compute it in "
            "parts (rows of x1)")


def _padded_rows(x: np.ndarray, start: int, b: int) -> np.ndarray:
    """Rows ``start .. start + b`` of ``x``; a short last block is padded with copies of row 0 (when ``x`` has
    more than one block), so every block has one shape and reuses one compilation (the padding is cut off
    before writing)."""
    rows = x[start:start + b]
    if rows.shape[0] < b and x.shape[0] > b:
        rows = np.concatenate([rows, np.repeat(x[:1], b - rows.shape[0], axis=0)])
    return rows


def _inputs(store: KernelStore, x1, x2, i: int, j: int):
    b = store.block_size
    xa = _padded_rows(x1, i * b, b)
    if store.symmetric and i == j:
        return xa, None
    return xa, _padded_rows(x1 if x2 is None else x2, j * b, b)


def _run_blocks(store: KernelStore, net, x1, x2, todo, kinds, limit, c, *, progress, callback) -> None:
    """Compute the blocks ``todo`` (in this process, or on the Dask client ``c``'s workers, at most two per
    worker in flight) and write each as it arrives."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"kernel {store.path.name}", unit="block", disable=not progress,
               file=sys.stderr)

    def finish(i, j, res):
        store._write_block(i, j, res["blocks"], res["finite"])
        bar.update(1)
        if callback is not None:
            callback(i, j)

    try:
        if c is None:
            for i, j in todo:
                xa, xb = _inputs(store, x1, x2, i, j)
                finish(i, j, _block_task(net, xa, xb, kinds, limit))
            return
        from distributed import as_completed

        window = 2 * max(1, len(c.scheduler_info().get("workers", {})))
        queue = list(todo)
        futures: dict[Any, tuple[int, int]] = {}

        def submit():
            while queue and len(futures) < window:
                i, j = queue.pop(0)
                xa, xb = _inputs(store, x1, x2, i, j)
                with warnings.catch_warnings():  # the block's inputs travel with its task (they survive
                    warnings.simplefilter("ignore")  # a worker's death, unlike scattered data)
                    futures[c.submit(_block_task, net, xa, xb, kinds, limit, pure=False)] = (i, j)

        submit()
        ac = as_completed(list(futures), loop=c.loop)
        try:
            for fut in ac:
                i, j = futures.pop(fut)
                res = fut.result()
                fut.release()
                finish(i, j, res)
                before = set(futures)
                submit()
                for f in futures:
                    if f not in before:
                        ac.add(f)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    finally:
        bar.close()

