r"""Blocking of large kernels: choose a block size that fits memory, run the compiled block computation over
the blocks, and assemble the symmetric output with exact power-of-two scales.

The memory estimate is honest (issue 12): outputs (``n1 n2`` float64 entries per kernel, times ``d^2``
without a readout) plus one block, the block as XLA's buffer assignment reports it.  A computation that cannot
fit is refused (:class:`KernelMemoryError`) before anything is allocated.  For ``x2 = x1`` only the blocks
on and above the diagonal are computed, mirrored on the host; one compiled computation serves every block.
"""

from __future__ import annotations

import math
import mmap
import threading

import numpy as np

from ..resources import InsufficientMemoryError, available_memory, check_memory, format_bytes
from ..results import InvalidInputError

__all__ = ["KernelMemoryError"]


class KernelMemoryError(InsufficientMemoryError):
    """Raised *before* allocating when a kernel (its outputs plus one block) would not fit in memory."""


# first guess of the working memory per (pair x spatial entry), in float64 arrays, before XLA's own buffer
# assignment is read (Network._executable); quadrature activations need far more (tanh: ~650)
_LIVE_ARRAYS = 12
_PRINT_BYTES = 512 * 2**20
#: default cap on the memory of one block (the outputs come on top)
_MAX_BLOCK_BYTES = 8 * 2**30
#: default size of one cross block, in (pair x spatial entry)s: a few hundred rows for flat inputs keeps a
#: block's arrays in the caches; larger blocks only waste work on the diagonal blocks of x with itself
_TARGET_ENTRIES = 2**18


def block_bytes(net, spatial, nsp, diagonal, same, want_ntk, b1, b2, feat, per_pair):
    """The compiled block computation for ``b1 x b2`` inputs (``b1`` rows when ``diagonal``) and the memory
    one block takes while the kernel is assembled, in bytes: XLA's temporaries + arguments + outputs (its
    buffer assignment) of the block being computed, plus the outputs of the previous block, which the host
    writes into the kernel meanwhile (blocks are pipelined), plus the input rows gathered for both."""
    if diagonal:
        exe, xla = net._executable(spatial, nsp, "diag", False, want_ntk, (1, b1) + feat, (1, b1) + feat)
        pairs = b1
    else:
        exe, xla = net._executable(spatial, nsp, "cross", same, want_ntk, (1, b1) + feat, (1, b2) + feat)
        pairs = b1 * b2
    out = 8 * pairs * per_pair * (1 + bool(want_ntk))
    rows = 8 * (b1 + (0 if diagonal else b2)) * int(np.prod(feat))
    if xla is None:  # no analysis from this backend: the first guess
        return exe, _LIVE_ARRAYS * 8 * pairs * per_pair + out + 2 * rows
    temp, args, outs = xla
    return exe, temp + args + outs + out + 2 * rows


def _balanced(n: int, b: int) -> int:
    """Rows per block for ``n`` rows in blocks of at most ``b``: as many blocks as ``b`` needs, evenly filled
    (so the last block is not mostly padding)."""
    b = max(1, min(b, n))
    return -(-n // -(-n // b))


def plan(net, shape1, shape2, diagonal, want_ntk, batch_size, memory_limit, check=True) -> dict:
    """Block size and memory estimate for ``kernel`` (the estimate must be honest: it decides what runs).

    One compiled computation serves every block: a cross block of ``b1`` rows of x1 against ``b2`` rows of
    x2 (for ``x2 = x1`` only the blocks on and above the diagonal, mirrored on the host; the diagonal ones
    mark their pairs of an input with itself from the block offset).  Peak = outputs (``n1 n2`` float64
    entries per kernel, times ``d^2`` without a readout) + one block (:func:`block_bytes`).  Without
    ``batch_size`` blocks hold about :data:`_TARGET_ENTRIES` pair entries (cache-friendly), fewer when
    ``memory_limit`` (default: the memory left after the outputs, at most 8 GiB) asks for it; a computation
    that cannot fit is refused before anything is allocated.
    """
    nsp = len(shape1) - 2
    spatial = net._spatial_mode(len(shape1))
    n1 = shape1[0]
    same = shape2 is None
    n2 = n1 if same else shape2[0]
    feat = tuple(shape1[1:])
    sp_shape = shape1[1:-1]
    d = int(np.prod(sp_shape)) if nsp else 1
    per_pair = d * d if spatial == "full" else d
    readout = spatial == "none" or net._has(lambda lay: lay.has_readout())
    out_tail = 1 if readout else per_pair
    kernels_out = 1 + bool(want_ntk)
    out_bytes = 8 * kernels_out * out_tail * (n1 if diagonal else n1 * n2)
    if diagonal:
        out_bytes *= 2  # per-block pieces, then their concatenation
    avail = available_memory()
    usable = 0.9 * avail
    if memory_limit is not None and (not math.isfinite(memory_limit) or memory_limit <= 0):
        raise InvalidInputError(f"memory_limit: must be a positive number of bytes, got {memory_limit!r}")
    budget = memory_limit if memory_limit is not None else min(_MAX_BLOCK_BYTES, max(usable - out_bytes, 0.0) / 1.2)

    def sizes(b):
        if diagonal:
            return _balanced(n1, b), None
        if batch_size is not None:
            return min(b, n1), min(b, n2)
        return _balanced(n1, b), _balanced(n2, b)

    def rows_for(bytes_per_pair):
        if diagonal:
            return max(1, int(budget // bytes_per_pair))
        return max(1, math.isqrt(int(budget // bytes_per_pair)))

    if batch_size is not None:
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise InvalidInputError(f"batch_size: must be a positive integer, got {batch_size!r}")
        b1, b2 = sizes(int(batch_size))
        exe, block = block_bytes(net, spatial, nsp, diagonal, same, want_ntk, b1, b2, feat, per_pair)
    else:
        # the full spatial layout (GAP) runs its layer stack chunk by chunk (layers.run_layers), so its blocks can
        # be larger: 16 x 2^18 pair entries (8 x 8 images of 16 x 16) measured best (1.6 ms per unique pair of
        # images against 5 ms at 2 x 2, 2.4 ms at 32 x 32)
        full = spatial == "full" and not diagonal
        target = (_TARGET_ENTRIES * (64 if diagonal else 16 if full else 1)) // per_pair
        target = max(1, target if diagonal else math.isqrt(target))
        b = min(target, rows_for((_LIVE_ARRAYS + 2 * kernels_out) * 8 * per_pair))
        for _ in range(4):
            b1, b2 = sizes(b)
            exe, block = block_bytes(net, spatial, nsp, diagonal, same, want_ntk, b1, b2, feat, per_pair)
            if block <= budget or b == 1:
                break
            pairs = b1 if diagonal else b1 * b2
            b = max(1, min(b1 - 1, rows_for(1.05 * block / pairs)))
    total = out_bytes + block
    plan = dict(b1=b1, b2=b2 if b2 is not None else b1, exe=exe, block=block, out=out_bytes, total=total,
                avail=avail)
    if check:
        _refuse_if_too_big(plan, n1, n2, diagonal, want_ntk, out_tail, per_pair, batch_size, memory_limit, usable)
    return plan


def block_list(n1: int, n2: int, b1: int, b2: int, same: bool) -> list[tuple[int, int]]:
    """Starting rows ``(i, j)`` of the blocks of a kernel of ``n1 x n2`` inputs in blocks of ``b1 x b2``;
    for ``same`` (x2 = x1, ``b1 = b2``) only the blocks on and above the diagonal (``j >= i``)."""
    return [(i, j) for i in range(0, n1, b1) for j in range(0, n2, b2) if not (same and j < i)]


def _refuse_if_too_big(plan: dict, n1, n2, diagonal, want_ntk, out_tail, per_pair, batch_size, memory_limit,
                       usable) -> None:
    """:class:`KernelMemoryError` saying what to reduce when the planned block exceeds ``memory_limit`` or the
    planned peak exceeds the available memory."""
    b1, b2, block, out_bytes, total = plan["b1"], plan["b2"], plan["block"], plan["out"], plan["total"]
    what = (f"the {n1}x{'' if diagonal else n2} kernel ({'nngp and ntk' if want_ntk else 'nngp'}, "
            f"{out_tail} float64 entr{'y' if out_tail == 1 else 'ies'} per pair)")
    if memory_limit is not None and block > memory_limit:
        raise KernelMemoryError(
            f"kernel block of {b1}x{b2} inputs with {per_pair} spatial entries per pair needs about "
            f"{format_bytes(block)}, more than memory_limit={format_bytes(memory_limit)}. Pass a smaller "
            "batch_size or a larger memory_limit"
            + (" or use a Flatten readout / smaller images (GAP needs d^2 entries per pair)" if per_pair > 1 else ""))
    if out_bytes + (block if batch_size is not None else 0) > usable:
        options = ["reduce the number of inputs", "compute the kernel in parts (rows x1[i:j] against x2)"]
        if not diagonal:
            options.append("use diagonal=True for K(x, x) only")
        if want_ntk:
            options.append("get='nngp' to skip the NTK")
        reduce = ", ".join(options)
        if batch_size is not None and out_bytes <= usable:
            reduce = "pass a smaller batch_size"
    else:
        reduce = "pass a smaller batch_size" if batch_size is not None else "reduce the number of inputs"
    try:
        check_memory(total, what=f"{what}: outputs {format_bytes(out_bytes)} + a block of {b1}x{b2} inputs "
                                 f"{format_bytes(block)},", reduce=reduce)
    except InsufficientMemoryError as exc:
        raise KernelMemoryError(str(exc)) from None


def run_blocks(x1, x2, b1, b2, spatial, nsp, want_ntk, exe):
    """The kernel of ``x1`` with ``x2`` (``x2 = None``: with itself) block by block through the one compiled
    block computation ``exe(xa, xb, offset)``; returns ``(nngp, ntk, log2 scale of nngp, log2 scale of
    ntk, non-finite entries of nngp, of ntk)``.

    For ``x2 = None`` only the blocks on and above the diagonal are computed; each is written once and
    mirrored (its transpose) into the lower triangle.  ``offset`` (first column minus first row of the block)
    tells the computation which pairs are an input with itself.  Blocks are dispatched one ahead (JAX runs
    them asynchronously), so the host writes a block while the next is computed; the output pages are
    touched ahead of the writes by a background thread (:class:`_Prefault`)."""
    n1 = x1.shape[0]
    same = x2 is None
    n2 = n1 if same else x2.shape[0]
    tasks = block_list(n1, n2, b1, b2, same)
    tail = tuple(exe.out_info[0].shape[3:])
    perm = _transpose_perm(spatial, nsp, len(tail))
    # blocks are written straight into the outputs (no second copy of the kernel), each output with a
    # running power-of-two exponent: a block with a larger exponent first scales what is written down
    nngp = _zeros((n1, n2) + tail)  # zeros: pages are only touched when written
    ntk = _zeros((n1, n2) + tail) if want_ntk else None
    outs = [nngp] + ([ntk] if want_ntk else [])
    exps = [None, None]
    bad = [0, 0]
    deferred = []  # mirrors into row bands not yet touched by the prefault thread

    def launch(i, j):
        xa = _rows(x1, i, b1)
        xb = xa if same and i == j else _rows(x1 if same else x2, j, b2)
        return exe(xa[None], xb[None], np.int32(j - i if same else 0))

    prefault = _Prefault(outs, b1)
    try:
        pending = launch(*tasks[0])
        for k, (i, j) in enumerate(tasks):
            res = pending
            pending = launch(*tasks[k + 1]) if k + 1 < len(tasks) else None
            ri, rj = min(b1, n1 - i), min(b2, n2 - j)
            prefault.wait(i)
            for q, out in enumerate(outs):
                block = np.asarray(res[q])[0]
                exps[q] = _write_block(out, block, float(res[2 + q]), exps[q], i, j, ri, rj,
                                        perm if same and i == j else None)
                del block
                bad[q] += _nonfinite(out[i:i + ri, j:j + rj]) * (1 + (same and i != j))
            del res
            if same and i != j:
                deferred.append((i, j, ri, rj))
            deferred = [m for m in deferred if not _mirror_if(outs, m, perm, prefault)]
        prefault.join()
        for m in deferred:
            _mirror_if(outs, m, perm, None)
    finally:
        prefault.stop()
    return nngp, ntk, exps[0], (0.0 if exps[1] is None else exps[1]), bad[0], bad[1]


#: outputs from this size on get their own anonymous memory (:func:`_zeros`)
_MMAP_BYTES = 64 * 2**20


def _zeros(shape) -> np.ndarray:
    """A float64 array of zeros; from :data:`_MMAP_BYTES` on, in anonymous memory of its own (freed with the
    array) rather than through numpy, which asks the kernel for transparent huge pages for large arrays: on
    virtual machines a huge page's first touch costs far more (measured on the 2-core project VM: 4.6 ms per
    MB with the hint, 1.2 ms without; the n = 20000 kernel's outputs are 6.4 GB).  Where the system backs all
    memory with huge pages anyway, nothing changes."""
    nbytes = 8 * math.prod(shape)
    if nbytes < _MMAP_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.zeros(shape)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype=np.float64).reshape(shape)


def _mirror_if(outs, m, perm, prefault) -> bool:
    """The transpose of block ``m = (i, j, ri, rj)`` written into rows ``j`` (the lower triangle), if those rows
    are ready (touched by ``prefault``, or ``prefault`` None); whether it was written."""
    i, j, ri, rj = m
    if prefault is not None and not prefault.ready(j):
        return False
    for out in outs:
        out[j:j + rj, i:i + ri] = np.transpose(out[i:i + ri, j:j + rj], perm)
    return True


class _Prefault:
    """Touches the pages of the output arrays band by band (``rows`` rows at a time, from the top) in a
    background thread, so the page faults of a large kernel (seconds per GB on some virtual machines) overlap
    the block computations instead of stalling the writes.  The writer waits for a band to be :meth:`ready`
    before writing into it, and the thread never touches a band again once ready, so no write is lost.
    Outputs under 64 MiB are left to the writer."""

    _MIN_BYTES = 64 * 2**20

    def __init__(self, arrays, rows: int):
        self.arrays, self.rows = arrays, max(1, int(rows))
        self.n = arrays[0].shape[0]
        self.done = threading.Event()
        self.next = 0  # first row not yet touched
        self.cond = threading.Condition()
        self.halt = False
        self.thread = None
        if sum(a.nbytes for a in arrays) >= self._MIN_BYTES:
            self.thread = threading.Thread(target=self._run, name="learndyn-prefault", daemon=True)
            self.thread.start()
        else:
            self.next = self.n

    def _run(self):
        for i in range(0, self.n, self.rows):
            if self.halt:
                break
            for a in self.arrays:
                a[i:i + self.rows] = 0.0  # numpy releases the GIL while filling
            with self.cond:
                self.next = min(self.n, i + self.rows)
                self.cond.notify_all()
        with self.cond:
            self.next = self.n
            self.cond.notify_all()

    def ready(self, i: int) -> bool:
        """Whether the band holding row ``i`` has been touched."""
        return i < self.next

    def wait(self, i: int) -> None:
        """Until the band holding row ``i`` has been touched."""
        with self.cond:
            self.cond.wait_for(lambda: i < self.next)

    def join(self) -> None:
        """Until every band has been touched."""
        if self.thread is not None:
            self.thread.join()

    def stop(self) -> None:
        """Stop touching (on an error or an interrupt of the writer) and wait for the thread."""
        self.halt = True
        self.join()


def _nonfinite(a: np.ndarray) -> int:
    """Number of NaN/inf entries of ``a``."""
    return int(a.size - np.count_nonzero(np.isfinite(a)))


def run_diagonal(x1, b1, fn):
    """``K(x, x)`` for each row of ``x1``, in blocks of ``b1`` rows through the compiled ``fn``; returns
    ``(nngp, ntk, log2 scale of nngp, log2 scale of ntk, non-finite entries of nngp, of ntk)``."""
    n1 = x1.shape[0]
    outs = []
    for i in range(0, n1, b1):
        xa = _rows(x1, i, b1)[None]
        k_, t_, ek_, et_ = fn(xa, xa, np.int32(0))
        outs.append((np.asarray(k_)[0], None if t_ is None else np.asarray(t_)[0], float(ek_), float(et_)))
    nngp, ntk, ek, et = _merge_rows(outs, n1)
    return nngp, ntk, ek, et, _nonfinite(nngp), 0 if ntk is None else _nonfinite(ntk)


def _write_block(out, block, e_block, e_out, i, j, ri, rj, perm=None):
    """Write ``block * 2**e_block`` into ``out`` (held as ``out * 2**e_out``) at rows i, columns j (only its
    upper triangle, mirrored with the axis permutation ``perm``, when ``perm`` is given: a diagonal block of x
    with itself); returns the new exponent
    of ``out`` (the larger of the two).  Powers of two are exact, so this equals scaling every block by
    ``2**(e_block - max e)`` at the end."""
    if e_out is None:
        e_out = e_block
    with np.errstate(under="ignore"):
        if e_block > e_out:
            np.ldexp(out, int(e_out - e_block), out=out)
            e_out = e_block
        view = out[i:i + ri, j:j + rj]
        view[...] = block[:ri, :rj]
        if e_block < e_out:
            np.ldexp(view, int(e_block - e_out), out=view)
    if perm is not None:
        # a diagonal block of x with itself: its upper triangle mirrored, so the kernel is exactly symmetric
        # (the pair maps need not be symmetric in the two variances to the last bit; quadratures are not)
        lower = np.tril_indices(ri, -1)
        view[lower] = np.transpose(view, perm)[lower]
    return e_out


def _rows(x, start, size):
    """Rows start..start+size of x; rows past the end repeat row 0 (padding, discarded later)."""
    n = x.shape[0]
    idx = np.arange(start, start + size)
    idx[idx >= n] = 0
    return x[idx]


def _transpose_perm(spatial: str, nsp: int, tail_ndim: int):
    if spatial == "full" and tail_ndim == 2 * nsp and nsp > 0:
        return (1, 0) + tuple(range(2 + nsp, 2 + 2 * nsp)) + tuple(range(2, 2 + nsp))
    return (1, 0) + tuple(range(2, 2 + tail_ndim))


def _merge_rows(outs, n):
    ek = max(o[2] for o in outs)
    et = max(o[3] for o in outs)
    nngp = np.concatenate([np.ldexp(o[0], int(o[2] - ek)) for o in outs])[:n]
    ntk = None if outs[0][1] is None else np.concatenate([np.ldexp(o[1], int(o[3] - et)) for o in outs])[:n]
    return nngp, ntk, ek, et

