"""Benchmark of the out-of-core kernels (learndyn.kernels.kernel_store) and the streamed CG prediction.

On real images (Fashion-MNIST from Debian's dataset-fashion-mnist; MNIST-5k when absent), FCN NNGP/NTK:
the train-train store (upper blocks only) and the test-train store, the streamed conjugate-gradient
prediction at t = infinity (Lee et al. 2019, eq. (16)), test accuracy, and -- up to --dense-max training
points -- the same kernel and prediction in memory (Network.kernel + mean_predictor) beside it, with the
largest relative difference.  Peak memory is the process's peak RSS.

    python benchmarks/kernel_store.py --n 4000 --n-test 1000 --depth 10
    python benchmarks/kernel_store.py --n 20000 --n-test 10000 --dense-max 0 --store /big/disk
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from learndyn import datasets, kernels


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--weight-var", type=float, default=2.0)
    ap.add_argument("--bias-var", type=float, default=0.01)
    ap.add_argument("--kind", default="ntk", choices=("ntk", "nngp"))
    ap.add_argument("--reg", type=float, default=1e-4, help="relative to the mean diagonal")
    ap.add_argument("--block", type=int, default=None, help="block size (default: from the memory estimate)")
    ap.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: serial)")
    ap.add_argument("--dense-max", type=int, default=8000, help="largest n also run in memory")
    ap.add_argument("--store", default=None, help="folder for the stores (default: a temporary one)")
    ap.add_argument("--preconditioner", default="auto", choices=("auto", "jacobi", "nystrom"))
    ap.add_argument("--rank", type=int, default=None, help="rank of the Nystrom preconditioner (default 500)")
    a = ap.parse_args()

    try:
        ds = datasets.load("fashion_mnist", n_train=a.n, n_test=a.n_test)
    except FileNotFoundError:
        ds = datasets.load("mnist5k", n_train=min(a.n, 5000), n_test=a.n_test)
    x, xt, y = ds.x_train, ds.x_test, ds.y_train
    p = kernels.Problem("fcn", depth=a.depth, activation=a.activation, weight_var=a.weight_var, bias_var=a.bias_var)
    root = Path(a.store) if a.store else Path(tempfile.mkdtemp(prefix="learndyn-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        t0 = time.perf_counter()
        ks = kernels.kernel_store(p, x, path=root / "train.zarr", block_size=a.block, n_workers=a.workers,
                                  overwrite=True, progress=False)
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        kt = kernels.kernel_store(p, xt, x, path=root / "test.zarr", block_size=ks.block_size, n_workers=a.workers,
                                  overwrite=True, progress=False)
        t_test = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = ks.predict(kt, y, kind=a.kind, reg=a.reg, preconditioner=a.preconditioner, rank=a.rank)
        t_cg = time.perf_counter() - t0
        acc = float(np.mean(np.argmax(pred.mean, 1) == ds.labels_test))
        disk = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**30
        rows.append(("store + CG", t_train, t_test, t_cg, pred.solution.iterations, acc, peak_rss_gib()))
        dense_diff = None
        if a.n <= a.dense_max:
            t0 = time.perf_counter()
            k = p.kernel(x)
            t_dtrain = time.perf_counter() - t0
            t0 = time.perf_counter()
            ktt = p.kernel(xt, x)
            t_dtest = time.perf_counter() - t0
            t0 = time.perf_counter()
            ref = kernels.mean_predictor(getattr(k, a.kind), getattr(ktt, a.kind), y, reg=a.reg)
            t_solve = time.perf_counter() - t0
            dacc = float(np.mean(np.argmax(ref.mean, 1) == ds.labels_test))
            rows.append(("in memory + eigh", t_dtrain, t_dtest, t_solve, 0, dacc, peak_rss_gib()))
            kd = getattr(k, a.kind)
            dense_diff = (float(np.max(np.abs(ks.to_numpy(a.kind) - kd)) / np.max(np.abs(kd))),
                          float(np.max(np.abs(pred.mean - ref.mean)) / np.max(np.abs(ref.mean))))
    finally:
        if not a.store:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{ds.name}: n={a.n} train, {a.n_test} test, d={x.shape[1]}; FCN {a.activation} depth {a.depth}; "
          f"{a.kind}, reg={a.reg:g} (relative); block {ks.block_size}; workers {a.workers or 'serial'}; "
          f"{os.cpu_count()} cores; stores {disk:.2f} GiB on disk; preconditioner {a.preconditioner}; CG status "
          f"{pred.status}")
    print(f"| path | train kernel s | test kernel s | solve+predict s | CG iterations | test accuracy | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|")
    for name, a1, a2, a3, it, acc_, rss in rows:
        print(f"| {name} | {a1:.1f} | {a2:.1f} | {a3:.1f} | {it} | {acc_:.4f} | {rss:.2f} |")
    if dense_diff is not None:
        print(f"store vs in-memory kernel: max rel diff {dense_diff[0]:.2e}; predictions {dense_diff[1]:.2e}")


if __name__ == "__main__":
    main()
