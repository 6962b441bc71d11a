"""Benchmark of the end-to-end kernel evaluation (``learndyn kernels evaluate``, issue 15 item 4): seconds and
peak memory of every stage of :func:`learndyn.kernels.evaluate` (Fashion-MNIST, FCN ReLU) at a few training-set
sizes, and the extrapolation of each stage to the issue's target (20000 training and 10000 test images): the
kernels as n_train * (n_train + 2 n_test) entries (symmetric train-train counted once), the Cholesky solves as
n_train^3, SGD and data loading as they are (their cost does not grow with n_train at fixed steps).

    python benchmarks/evaluate.py                        # n_train 4000, 8000 (test = n_train / 2), depth 5
    python benchmarks/evaluate.py --sizes 4000 --depth 10 --target 20000 10000
    python benchmarks/evaluate.py --sizes 20000 --test 10000   # the target itself (~5 min, ~7 GB)

Run it alone on the machine (timings are meaningless under contention).
"""

from __future__ import annotations

import argparse
import platform

from learndyn import kernels
from learndyn.resources import format_bytes


def _scale(name: str, n: int, n_test: int, target: tuple[int, int]) -> float:
    """How a stage's cost grows from (n, n_test) to the target sizes."""
    tn, tt = target
    if name.startswith("kernel train-train"):
        return (tn / n) ** 2
    if name.startswith("kernel test-train") or name == "predict":
        return (tn * tt) / (n * n_test)
    if name.startswith("solve"):
        return (tn / n) ** 3
    return 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 8000])
    ap.add_argument("--test", type=int, default=None, help="test images (default n_train / 2)")
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--target", type=int, nargs=2, default=[20000, 10000])
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, learndyn kernels.evaluate, FCN ReLU (2.0, 0.01) depth "
          f"{args.depth}, width 512, SGD {args.steps} steps")
    p = kernels.Problem("fcn", depth=args.depth, activation="relu", weight_var=2.0, bias_var=0.01, width=512)
    for n in args.sizes:
        nt = args.test or n // 2
        ev = kernels.evaluate(p, "fashion_mnist", n, nt, steps=args.steps)
        print(f"\n## n_train = {n}, n_test = {nt}: status {ev.status}")
        print(ev.table())
        print(f"\n| stage | seconds | peak | x to {args.target[0]}/{args.target[1]} | extrapolated s |")
        print("| --- | --- | --- | --- | --- |")
        total = 0.0
        for name, sec, _rss, peak in ev.stages:
            f = _scale(name, n, nt, tuple(args.target))
            total += sec * f
            print(f"| {name} | {sec:.1f} | {format_bytes(peak)} | {f:.3g} | {sec * f:.0f} |")
        print(f"| total | {sum(s[1] for s in ev.stages):.1f} | {format_bytes(max(s[3] for s in ev.stages))} | | "
              f"{total:.0f} |")


if __name__ == "__main__":
    main()
