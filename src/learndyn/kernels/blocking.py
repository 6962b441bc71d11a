r"""Blocking of large kernels: choose a block size that fits memory, run the compiled block computation over
the blocks, and assemble the symmetric output with exact power-of-two scales.

The memory estimate is honest (issue 12): outputs (``n1 n2`` float64 entries per kernel, times ``d^2``
without a readout) plus one block, the block as XLA's buffer assignment reports it.  A computation that cannot
fit is refused (:class:`KernelMemoryError`) before anything is allocated.  For ``x2 = x1`` only the blocks
on and above the diagonal are computed; diagonal blocks use a triangle layout of sub-blocks.
"""

from __future__ import annotations

import math

import numpy as np

from ..resources import InsufficientMemoryError, available_memory, check_memory, format_bytes
from ..results import InvalidInputError

__all__ = ["KernelMemoryError"]


class KernelMemoryError(InsufficientMemoryError):
    """Raised *before* allocating when a kernel (its outputs plus one block) would not fit in memory."""


# first guess of the working memory per (pair x spatial entry), in float64 arrays, before XLA's own buffer
# assignment is read (Network._plan); quadrature activations need far more (tanh: ~650)
_LIVE_ARRAYS = 12
_PRINT_BYTES = 512 * 2**20
#: default cap on the memory of one block (the outputs come on top)
_MAX_BLOCK_BYTES = 8 * 2**30


def block_bytes(net, spatial, nsp, diagonal, same, want_ntk, b1, b2, n1, feat, out_tail, per_pair):
    """Executables and the two memory phases of one block, in bytes: ``xla`` = XLA's temporaries +
    arguments + outputs (its buffer assignment); ``host`` = its outputs + the block assembled on the host
    (triangle layout), after the temporaries are freed.  For x2 = x1 the diagonal blocks use the
    triangle layout and the others (present when ``n1 > b1``) a cross block; the larger counts."""
    kinds = []
    if diagonal:
        kinds.append(("diag", False, ((1, b1) + feat, (1, b1) + feat), 0))
    else:
        if same:
            m, b = _tri_layout(b1)
            kinds.append(("tri", True, ((m, b) + feat, (m, b) + feat), (m * b) ** 2))
        if not same or n1 > b1:
            kinds.append(("cross", False, ((1, b1) + feat, (1, b2) + feat), 0))
    exes, xla_max, host_max = {}, 0, 0
    for name, is_same, shapes, tri in kinds:
        exe, xla = net._executable(spatial, nsp, "diag" if diagonal else "cross", is_same, want_ntk, *shapes)
        exes[name] = exe
        if xla is None:  # no analysis from this backend: the first guess
            pairs = b1 if diagonal else b1 * b2
            xla_b, host_b = _LIVE_ARRAYS * 8 * pairs * per_pair, 0
        else:
            temp, args, out = xla
            xla_b, host_b = temp + args + out, out + tri * out_tail * 8 * (1 + want_ntk)
        xla_max, host_max = max(xla_max, xla_b), max(host_max, host_b)
    return exes, xla_max, host_max

def plan(net, shape1, shape2, diagonal, want_ntk, batch_size, memory_limit, check=True) -> dict:
    """Block size and memory estimate for ``kernel`` (issue 12: the estimate must be honest).

    Peak = outputs (``n1 n2`` float64 entries per kernel, times ``d^2`` without a readout) + one block
    (:func:`block_bytes`).  Without ``batch_size`` the largest block whose estimate fits
    ``memory_limit`` (default: the memory left after the outputs, at most 8 GiB) is chosen from a first
    guess corrected by XLA's report; a computation that cannot fit is refused before allocating.
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
    nmax = n1 if diagonal else max(n1, n2)

    def rows_for(bytes_per_pair):
        if diagonal:
            return max(1, min(n1, int(budget // bytes_per_pair)))
        return max(1, min(nmax, math.isqrt(int(budget // bytes_per_pair))))

    if batch_size is not None:
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise InvalidInputError(f"batch_size: must be a positive integer, got {batch_size!r}")
        b = int(batch_size)
        b1, b2 = min(b, n1), (min(b, n1) if diagonal else min(b, n2))
        exe, xla, host = block_bytes(net, spatial, nsp, diagonal, same, want_ntk, b1, b2, n1, feat,
                                     out_tail, per_pair)
        block = max(xla, host)
    else:
        b = rows_for(_LIVE_ARRAYS * 8 * per_pair)
        for _ in range(4):
            b1, b2 = min(b, n1), (min(b, n1) if diagonal else min(b, n2))
            exe, xla, host = block_bytes(net, spatial, nsp, diagonal, same, want_ntk, b1, b2, n1, feat,
                                         out_tail, per_pair)
            block = max(xla, host)
            if block <= budget or b == 1:
                break
            pairs = b1 if diagonal else b1 * b2
            b = max(1, min(b - 1, rows_for(1.05 * block / pairs)))
    if not diagonal and n1 <= b1 and n2 <= b2:
        # one block: the outputs are only touched after XLA's temporaries are freed, one kernel after the
        # other (the assembled triangle block of the first is released once it is written)
        total = max(xla, host + (out_bytes // kernels_out if same else out_bytes))
    else:  # earlier blocks already fill the outputs
        total = out_bytes + block
    plan = dict(b1=b1, b2=b2, exe=exe, block=block, out=out_bytes, total=total, avail=avail)
    if check:
        _refuse_if_too_big(plan, n1, n2, diagonal, want_ntk, out_tail, per_pair, batch_size, memory_limit, usable)
    return plan


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


def run_blocks(x1, x2, b1, b2, spatial, nsp, want_ntk, exes):
    """Outer loop over memory blocks; diagonal blocks of x1 with itself use the triangle layout."""
    n1 = x1.shape[0]
    same = x2 is None
    n2 = n1 if same else x2.shape[0]
    f_same, f_cross = exes.get("tri"), exes.get("cross")
    # blocks are written straight into the outputs (no second copy of the kernel), each output with a
    # running power-of-two exponent: a block with a larger exponent first scales what is written down
    nngp = ntk = perm = None
    ek = et = None
    for i in range(0, n1, b1):
        for j in range(0, n2, b2):
            if same and j < i:
                continue
            if same and i == j:
                rows = b1  # a short last block is padded, so every diagonal block reuses one compilation
                m, b = _tri_layout(rows)
                xa = _rows(x1, i, rows)
                xb = _rows(xa, 0, m * b).reshape((m, b) + x1.shape[1:])
                k_, t_, ek_, et_ = f_same(xb, xb)
                kb = _assemble_tri(np.asarray(k_), m, b, spatial, nsp)
                del k_
                tb = None if t_ is None else _assemble_tri(np.asarray(t_), m, b, spatial, nsp)
            else:
                xa = _rows(x1, i, b1)[None]
                xb = _rows(x1 if same else x2, j, b2)[None]
                k_, t_, ek_, et_ = f_cross(xa, xb)
                kb, tb = np.asarray(k_)[0], None if t_ is None else np.asarray(t_)[0]
            del t_
            if nngp is None:
                tail = kb.shape[2:]
                perm = _transpose_perm(spatial, nsp, len(tail))
                nngp = np.zeros((n1, n2) + tail)  # zeros: pages are only touched when written
                ntk = np.zeros((n1, n2) + tail) if want_ntk else None
            ri, rj = min(b1, n1 - i), min(b2, n2 - j)
            mirror = same and i != j
            ek = _write_block(nngp, kb, float(ek_), ek, i, j, ri, rj, mirror, perm)
            del kb
            if want_ntk:
                et = _write_block(ntk, tb, float(et_), et, i, j, ri, rj, mirror, perm)
            del tb
    return nngp, ntk, ek, (0.0 if et is None else et)


def run_diagonal(x1, b1, fn):
    """``K(x, x)`` for each row of ``x1``, in blocks of ``b1`` rows through the compiled ``fn``; returns
    ``(nngp, ntk, log2 scale of nngp, log2 scale of ntk)``."""
    n1 = x1.shape[0]
    outs = []
    for i in range(0, n1, b1):
        xa = _rows(x1, i, b1)[None]
        k_, t_, ek_, et_ = fn(xa, xa)
        outs.append((np.asarray(k_)[0], None if t_ is None else np.asarray(t_)[0], float(ek_), float(et_)))
    return _merge_rows(outs, n1)


def _write_block(out, block, e_block, e_out, i, j, ri, rj, mirror, perm):
    """Write ``block * 2**e_block`` into ``out`` (held as ``out * 2**e_out``) at rows i, columns j (and its
    transpose at j, i when ``mirror``); returns the new exponent of ``out`` (the larger of the two).
    Powers of two are exact, so this equals scaling every block by ``2**(e_block - max e)`` at the end."""
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
    if mirror:
        out[j:j + rj, i:i + ri] = np.transpose(view, perm)
    return e_out


def _rows(x, start, size):
    """Rows start..start+size of x; rows past the end repeat row 0 (padding, discarded later)."""
    n = x.shape[0]
    idx = np.arange(start, start + size)
    idx[idx >= n] = 0
    return x[idx]


def _tri_layout(n: int, max_blocks: int = 16) -> tuple[int, int]:
    """(m, b): n inputs in m blocks of b; only the m(m+1)/2 blocks I <= J are computed."""
    m = min(n, max_blocks)
    b = -(-n // m)
    return -(-n // b), b


def _transpose_perm(spatial: str, nsp: int, tail_ndim: int):
    if spatial == "full" and tail_ndim == 2 * nsp and nsp > 0:
        return (1, 0) + tuple(range(2 + nsp, 2 + 2 * nsp)) + tuple(range(2, 2 + nsp))
    return (1, 0) + tuple(range(2, 2 + tail_ndim))


def _assemble_tri(blocks: np.ndarray, m: int, b: int, spatial: str, nsp: int) -> np.ndarray:
    """Blocks (T, b, b, ...) of the upper triangle -> the symmetric (m b, m b, ...) array."""
    tail = blocks.shape[3:]
    out = np.empty((m * b, m * b) + tail)
    perm = _transpose_perm(spatial, nsp, len(tail))
    t = 0
    for i in range(m):
        for j in range(i, m):
            out[i * b:(i + 1) * b, j * b:(j + 1) * b] = blocks[t]
            if i != j:
                out[j * b:(j + 1) * b, i * b:(i + 1) * b] = np.transpose(blocks[t], perm)
            t += 1
    return out


def _merge_rows(outs, n):
    ek = max(o[2] for o in outs)
    et = max(o[3] for o in outs)
    nngp = np.concatenate([np.ldexp(o[0], int(o[2] - ek)) for o in outs])[:n]
    ntk = None if outs[0][1] is None else np.concatenate([np.ldexp(o[1], int(o[3] - et)) for o in outs])[:n]
    return nngp, ntk, ek, et

