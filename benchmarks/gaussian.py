"""Benchmark and accuracy tables for learndyn.gaussian.

Run:  python benchmarks/gaussian.py [--batch 5000] [--quick]

Prints
1. time per batch of relu_i4 / orthant4 (JIT compile + steady state) beside scipy references
   (the integration-by-parts reduction of I4 with scipy's Genz P4, per tuple), and of quadrature_i4 (tanh) at several
   orders beside a plain vectorised NumPy tensor Gauss-Hermite;
2. accuracy of relu_i4 against the number of nodes (reference: 400 nodes, and elementary closed
   forms of degenerate index patterns);
3. accuracy of Gauss-Hermite quadrature against the order (tanh: against a high order; erf: against
   the closed forms) on ODE-like covariances (K=4 students, M=2 teachers, unit-scale weights).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import time

import jax
import numpy as np
from scipy.stats import multivariate_normal

import learndyn  # noqa: F401  (float64)
from learndyn import activations as A
from learndyn import gaussian as G


def ode_like_tuples(rng, n_tuples, K=4, M=2, dim=50):
    """All (i,k,c,d) sub-covariances of random K+M unit-scale weight vectors, with one exact copy
    and one near-copy of units (as in a specialised ODE state), repeated to n_tuples."""
    out = []
    while len(out) < n_tuples:
        W = rng.normal(size=(K + M, dim)) / math.sqrt(dim)
        W[1] = W[K]  # student 1 copies teacher 0
        W[2] = W[0] + 1e-4 * rng.normal(size=dim)  # near-collinear students
        J = W @ W.T
        for t in itertools.product(range(K), range(K), range(K + M), range(K + M)):
            out.append(J[np.ix_(t, t)])
    return np.stack(out[:n_tuples])


def timed(fn, *args, repeat=3):
    """(compile wall s, steady wall s, steady CPU s summed over threads): on a shared machine the
    CPU time is the more stable number."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    steady = float(np.median(times))
    return first - steady, steady, float(np.median(cpus))


def _cond(C, x, keep):
    return C[np.ix_(keep, keep)] - np.outer(C[keep, x], C[x, keep]) / C[x, x]


def relu_i4_scipy(C):
    """Spec §3.3 reduction with scipy's P4 (valid for PD C only)."""
    p4 = multivariate_normal(mean=np.zeros(4), cov=C, abseps=1e-7, releps=1e-7).cdf(np.zeros(4))
    out = C[2, 3] * p4
    for x in (0, 1, 2):
        rest = [y for y in (0, 1, 2) if y != x] + [3]
        S = _cond(C, x, rest)
        m = 0.0
        for j in range(3):
            k, l = [q for q in range(3) if q != j]
            Sc = _cond(S, j, [k, l])
            rho = Sc[0, 1] / math.sqrt(Sc[0, 0] * Sc[1, 1])
            m += S[2, j] / math.sqrt(2 * math.pi * S[j, j]) * (0.25 + math.asin(rho) / (2 * math.pi))
        out += C[2, x] / math.sqrt(2 * math.pi * C[x, x]) * m
    return out


def numpy_tensor_gh_i4(C, order):
    """Plain NumPy tensor Gauss-Hermite for tanh I4 (the reference for the speed ratio)."""
    x, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    grid = np.stack(np.meshgrid(x, x, x, x, indexing="ij"), -1).reshape(-1, 4)
    W = np.prod(np.stack(np.meshgrid(w, w, w, w, indexing="ij"), -1).reshape(-1, 4), axis=1)
    out = np.empty(len(C))
    for b, c in enumerate(C):
        lam, V = np.linalg.eigh(c)
        L = V * np.sqrt(np.clip(lam, 0, None))
        z = grid @ L.T
        d = 1 / np.cosh(z[:, :2]) ** 2
        out[b] = W @ (d[:, 0] * d[:, 1] * np.tanh(z[:, 2]) * np.tanh(z[:, 3]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="smaller accuracy tables")
    ap.add_argument("--timing-only", action="store_true", help="skip the accuracy tables")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    B = args.batch
    C = ode_like_tuples(rng, B)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"(shared with other jobs: timings are upper bounds); jax {jax.__version__}")
    print(f"\n1. time per batch of {B} ODE-like 4x4 covariances (seconds)")
    print(f"{'function':34s} {'compile':>9s} {'steady':>9s} {'cpu':>7s} {'us/tuple':>9s} {'reference':>11s} {'ratio':>8s}")

    # ReLU I4 and P4 vs scipy (PD tuples only for the reference; timed on 40, extrapolated)
    pd = np.stack([_c for _c in C if np.linalg.eigvalsh(_c)[0] > 1e-6][:40])
    t0 = time.perf_counter()
    for c in pd:
        relu_i4_scipy(c)
    ref_i4 = (time.perf_counter() - t0) / len(pd) * B
    t0 = time.perf_counter()
    for c in pd:
        multivariate_normal(mean=np.zeros(4), cov=c, abseps=1e-7, releps=1e-7).cdf(np.zeros(4))
    ref_p4 = (time.perf_counter() - t0) / len(pd) * B
    for name, fn, ref, rname in (
        ("relu_i4 (64 nodes)", G.relu_i4, ref_i4, "scipy §3.3"),
        ("relu_i4 (48 nodes)", lambda c: G.relu_i4(c, nodes=48), ref_i4, "scipy §3.3"),
        ("orthant4 (64 nodes)", G.orthant4, ref_p4, "scipy cdf"),
    ):
        comp, st, cpu = timed(fn, C)
        print(f"{name:34s} {comp:9.2f} {st:9.3f} {cpu:7.3f} {1e6 * st / B:9.1f} {ref:11.2f} {ref / st:8.1f}x")
    tanh = A.tanh()
    for order in (8, 12, 16):
        f = lambda c, o=order: G.quadrature_i4(tanh, c, o)  # noqa: E731
        comp, st, cpu = timed(f, C, repeat=2)
        nref = 20
        t0 = time.perf_counter()
        numpy_tensor_gh_i4(C[:nref], order)
        ref = (time.perf_counter() - t0) / nref * B
        print(f"{'quadrature_i4 tanh order ' + str(order):34s} {comp:9.2f} {st:9.3f} {cpu:7.3f} {1e6 * st / B:9.1f} "
              f"{ref:11.2f} {ref / st:8.1f}x   (ref: numpy tensor GH)")
    for kind, n in (("i2", 2), ("i3", 3)):
        sub = C[:, :n, :n]
        f = lambda c, k=kind: G.quadrature_integral(k, tanh, c, 40)  # noqa: E731
        comp, st, cpu = timed(f, sub)
        print(f"{'quadrature_' + kind + ' tanh order 40':34s} {comp:9.2f} {st:9.3f} {cpu:7.3f} {1e6 * st / B:9.1f}")

    if args.timing_only:
        return
    # 2. accuracy of relu_i4 against nodes
    print("\n2. relu_i4: max |error| over ODE-like tuples (exact copies, near-copies) and random PD C")
    n_acc = 600 if args.quick else 2000
    Cacc = np.concatenate([C[:n_acc], np.stack([(lambda X: X @ X.T / 6)(rng.normal(size=(4, 6))) for _ in range(200)])])
    ref = np.asarray(G.relu_i4(Cacc, nodes=400))
    print(f"{'nodes':>6s} {'max err vs 400 nodes':>22s} {'median':>10s}")
    for nodes in (24, 32, 40, 48, 64, 96):
        err = np.abs(np.asarray(G.relu_i4(Cacc, nodes=nodes)) - ref)
        print(f"{nodes:6d} {err.max():22.1e} {np.median(err):10.1e}")

    # 3. quadrature accuracy against order
    print("\n3. Gauss-Hermite quadrature: max |error| over all ODE-like tuples of one K=4, M=2 state")
    W = rng.normal(size=(6, 200)) / math.sqrt(200)
    J = W @ W.T
    ranges = {2: (range(6), range(6)), 3: (range(4), range(6), range(6)), 4: (range(4), range(4), range(6), range(6))}
    tup = {n: np.stack([J[np.ix_(t, t)] for t in itertools.product(*r)]) for n, r in ranges.items()}
    orders2 = (8, 16, 24, 32, 40, 60)
    orders4 = (6, 8, 12, 16, 20) if args.quick else (6, 8, 10, 12, 16, 20, 24)
    for act, label in ((tanh, "tanh"), (A.sigmoid(), "sigmoid")):
        for kind, n in (("i2", 2), ("j2", 2), ("i3", 3), ("i4", 4)):
            orders, refo = (orders4, 32) if kind == "i4" else (orders2, 200)
            refv = np.asarray(G.quadrature_integral(kind, act, tup[n], refo))
            errs = [np.abs(np.asarray(G.quadrature_integral(kind, act, tup[n], o)) - refv).max() for o in orders]
            print(f"  {label:8s} {kind} vs order {refo:3d}: " + " ".join(f"{o}:{e:.0e}" for o, e in zip(orders, errs)))
    for act, label in ((A.erf(1 / math.sqrt(2)), "erf(x/sqrt2)"), (A.erf(1.0), "erf(x)")):
        for kind, n in (("i2", 2), ("j2", 2), ("i3", 3), ("i4", 4)):
            orders = orders4 if kind == "i4" else orders2
            refv = np.asarray({"i2": G.i2, "j2": G.j2, "i3": G.i3, "i4": G.i4}[kind](act, tup[n]))
            errs = [np.abs(np.asarray(G.quadrature_integral(kind, act, tup[n], o)) - refv).max() for o in orders]
            print(f"  {label:12s} {kind} vs closed form: " + " ".join(f"{o}:{e:.0e}" for o, e in zip(orders, errs)))


if __name__ == "__main__":
    main()
