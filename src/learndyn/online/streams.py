r"""Random numbers of the online-SGD simulator: counter-based SplitMix64 streams turned into normals.

Every (seed, step) owns a disjoint block of counters of its seed's stream, so a step's inputs are a pure function
of the seed and the step index (no generator state to carry or split). The 64-bit words are the SplitMix64 finaliser
of ``seed offset + counter * GOLDEN`` (Steele, Lea & Flood 2014); Box-Muller turns each word into two normals in
float32 arithmetic (absolute error < 1e-6, ``|x| <= 6.66``; :func:`normals_from_words`). ``rng="threefry"`` of
:func:`learndyn.online.simulate` uses ``jax.random.normal`` (float64) instead (:func:`threefry_normals`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["GOLDEN", "TEST_SALT", "mix64", "seed_offset", "normals_from_words", "counter_normals", "threefry_normals"]

#: the golden-ratio increment of SplitMix64 (Steele, Lea & Flood 2014): the counter step of every stream
GOLDEN = 0x9E3779B97F4A7C15
#: salt of the held-out test set's stream (independent of every seed's training stream)
TEST_SALT = 0x7E57_5E7_0F_7E57


def mix64(z):
    """SplitMix64 output function (Steele, Lea & Flood 2014), on uint64 arrays."""
    z = (z ^ (z >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> 27)) * jnp.uint64(0x94D049BB133111EB)
    return z ^ (z >> 31)


def seed_offset(seed: int, salt: int = 0) -> np.uint64:
    """A pseudo-random 64-bit stream offset for a seed (host-side SplitMix64 of ``seed * GOLDEN + salt``)."""
    mask = (1 << 64) - 1
    z = (int(seed) * GOLDEN + salt + GOLDEN) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return np.uint64(z ^ (z >> 31))


_F32 = np.float32


def normals_from_words(z):
    r"""``2 n`` standard normals (float64) from ``n`` uint64 random words (last axis), by Box-Muller.

    The high 32 bits give ``q = (m + 1/2) 2^-31`` (``m``: their top 31 bits), uniform in (0, 1), and the
    radius ``r = sqrt(-2 ln q)``; ``-ln q`` is the series ``p + p^2/2 + ... + p^8/8`` in the exactly formed
    ``p = 1 - q`` where ``p < 1/16`` (so small radii keep their relative precision) and ``log`` otherwise.
    The low 32 bits give the angle ``theta = (k + 1/2 + phi) pi/2``: quadrant ``k`` from the top two bits,
    ``phi`` in (-1/2, 1/2) from the other 30; ``sin`` and ``cos`` of ``phi pi/2`` are Taylor polynomials
    (truncation error < 2e-9). Returns ``[r cos theta | r sin theta]`` along the last axis. Arithmetic is
    float32: absolute error < 1e-6 against float64 Box-Muller of the same bits; ``|x| <= 6.66`` (the normal's
    mass beyond is 2.7e-11).
    """
    hi = (z >> 32).astype(jnp.uint32)
    lo = z.astype(jnp.uint32)
    m = (hi >> 1).astype(jnp.int32)
    q = (m.astype(jnp.float32) + _F32(0.5)) * _F32(2.0**-31)
    p = ((jnp.int32(2**31 - 1) - m).astype(jnp.float32) + _F32(0.5)) * _F32(2.0**-31)  # 1 - q, exactly
    series = _F32(1 / 8)
    for k in (7, 6, 5, 4, 3, 2, 1):
        series = _F32(1 / k) + series * p
    r = jnp.sqrt(_F32(2.0) * jnp.where(p < _F32(1 / 16), p * series, -jnp.log(q)))
    quadrant = (lo >> 30).astype(jnp.int32)
    f = ((lo & jnp.uint32(0x3FFFFFFF)).astype(jnp.int32).astype(jnp.float32) + _F32(0.5)) * _F32(2.0**-30)
    phi = (f - _F32(0.5)) * _F32(math.pi / 2)  # |phi| < pi/4
    phi2 = phi * phi
    s = _F32(1 / 362880)
    for c in (-1 / 5040, 1 / 120, -1 / 6, 1.0):
        s = _F32(c) + s * phi2
    s = s * phi
    c_ = _F32(-1 / 3628800)
    for c in (1 / 40320, -1 / 720, 1 / 24, -1 / 2, 1.0):
        c_ = _F32(c) + c_ * phi2
    # angle pi/4 + phi, then rotate by the quadrant
    ca = (c_ - s) * _F32(1 / math.sqrt(2))
    sa = (c_ + s) * _F32(1 / math.sqrt(2))
    odd = (quadrant & 1) == 1
    neg = jnp.where((quadrant & 2) == 2, _F32(-1.0), _F32(1.0)) * r
    X = jnp.where(odd, -sa, ca) * neg
    Y = jnp.where(odd, ca, sa) * neg
    return jnp.concatenate([X, Y], axis=-1).astype(jnp.float64)


def counter_normals(offset, counter0, n_words: int):
    """``2 n_words`` normals from the stream at ``offset``, counters ``counter0 .. counter0 + n_words - 1``."""
    lane = jnp.arange(n_words, dtype=jnp.uint64)
    z = mix64(offset + (counter0 + lane) * jnp.uint64(GOLDEN))
    return normals_from_words(z)


def threefry_normals(offset, t, n: int):
    """``n`` float64 normals of step ``t`` of the ``jax.random`` (threefry) stream keyed by the 64-bit ``offset``."""
    key = jax.random.wrap_key_data(jnp.stack([offset >> 32, offset & jnp.uint64(0xFFFFFFFF)]).astype(jnp.uint32))
    return jax.random.normal(jax.random.fold_in(key, t), (n,), dtype=jnp.float64)
