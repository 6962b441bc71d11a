"""Benchmark of the CNN-GAP kernel (issue 15): ReLU depth 4, 3x3 circular convolutions, global average
pooling, 16x16x1 images, NNGP + NTK, float64.

Rows: steady time per pair of images on cross blocks of 8x8, 16x16 and 32x32 images (``batch_size``), with
the layer stack run in cache-sized chunks (``learndyn.kernels.layers.run_layers``, the default) and on whole
blocks (the previous path, for comparison); the train-train kernel of 256 images, first call (tracing and
compilation included); agreement with an independent NumPy recursion.  neural-tangents 0.6.5 figures are
quoted from the issue (same machine, jit, float64), not re-measured here.

Run: ``python benchmarks/kernels_cnn.py [--repeats N] [--n-train 256]`` (hold the machine to yourself: the
timings are per-entry memory traffic and shared caches change them).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import learndyn  # noqa: F401  (float64)
from learndyn import kernels

# the independent NumPy recursion of benchmarks/kernels.py (this folder is on sys.path when a script here runs)
from kernels import numpy_cnn_relu_gap  # noqa: E402
from learndyn.kernels import layers, network

NT_PER_PAIR_MS = 16.4  # neural-tangents 0.6.5, per kernel entry, from the issue
TARGET_PER_PAIR_MS = 1.64
TARGET_256_S = 60.0


def make_net(eps: float = 0.0):
    # eps makes an otherwise equal network with its own compile-cache entry
    return kernels.cnn(4, "relu", 2.0 + eps, 0.0, filter_shape=(3, 3), padding="circular", readout="gap")


def per_pair(net, b, repeats, rng):
    x1, x2 = rng.randn(b, 16, 16, 1), rng.randn(b, 16, 16, 1)
    net.kernel(x1, x2, batch_size=b, verbose=False)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.kernel(x1, x2, batch_size=b, verbose=False)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / (b * b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--skip-whole", action="store_true", help="skip the whole-block comparison rows")
    args = ap.parse_args()
    rng = np.random.RandomState(0)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{'case':52s} {'ours':>9s} {'NT 0.6.5*':>9s} {'NT/ours':>8s} {'target':>8s}")
    for b in (8, 16, 32):
        ms = per_pair(make_net(), b, args.repeats, rng)
        print(f"{'per pair, cross block ' + f'{b}x{b}' + ' (chunked), ms':52s} {ms:9.2f} {NT_PER_PAIR_MS:9.1f} "
              f"{NT_PER_PAIR_MS / ms:8.1f} {TARGET_PER_PAIR_MS:8.2f}", flush=True)
    if not args.skip_whole:
        saved = layers._CHUNK_ENTRIES
        layers._CHUNK_ENTRIES = 2 ** 62  # whole blocks: the previous path
        network.clear_cache()
        for b in (8, 16):
            ms = per_pair(make_net(1e-12), b, args.repeats, rng)
            print(f"{'per pair, cross block ' + f'{b}x{b}' + ' (whole block), ms':52s} {ms:9.2f} "
                  f"{NT_PER_PAIR_MS:9.1f} {NT_PER_PAIR_MS / ms:8.1f} {'':>8s}", flush=True)
        layers._CHUNK_ENTRIES = saved
        network.clear_cache()

    n = args.n_train
    x = rng.randn(n, 16, 16, 1)
    net = make_net(2e-12)
    t0 = time.perf_counter()
    k = net.kernel(x, verbose=False)
    first = time.perf_counter() - t0
    nt = NT_PER_PAIR_MS * 1e-3 * n * (n + 1) / 2
    print(f"{f'{n} images train-train, first call, s':52s} {first:9.1f} {nt:9.1f} {nt / first:8.1f} "
          f"{TARGET_256_S:8.1f}   status {k.status}", flush=True)

    xs = rng.randn(6, 16, 16, 1)
    ours = make_net().kernel(xs)
    k_np, t_np = numpy_cnn_relu_gap(xs, 4, 2.0, 0.0)
    err = max(np.abs(ours.nngp - k_np).max() / np.abs(k_np).max(), np.abs(ours.ntk - t_np).max() / np.abs(t_np).max())
    print(f"max relative difference from the NumPy recursion (6 images): {err:.1e}")
    print("* neural-tangents: 16.4 ms per entry quoted from the issue (for n images train-train: n(n+1)/2 entries);"
          f" load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
