"""Benchmark: online SGD steps of the teacher-student simulator (issue 3, item 5).

Setting: erf activation, M=2, K=4, both layers trained, eta=0.5, sigma=0.1, N in {500, 5000}, with one seed
and with 16 seeds batched (``jax.vmap`` over seeds inside one compiled loop over blocks of steps, see
``learndyn.online.sgd_engine.compiled``). Reported: steady-state microseconds per SGD step per seed (after
compilation; the best of ``--repeats`` rounds over all rows, since the machine may be shared), beside a plain
NumPy loop (one seed, ``numpy`` normals, the same update rule) and the paper's compiled C++ code (nn2pp, about
50 us/step at N=500 on this machine, issue 3).

Targets: <= 5 us/step for one seed at N=500; with 16 seeds batched >= 20x the C++ throughput (<= 2.5 us per
step per seed).

Run:  python benchmarks/sgd.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import jax.numpy as jnp
import numpy as np

from learndyn import online
from learndyn.online import sgd_engine
from learndyn.online.streams import seed_offset

CPP_US_PER_STEP_N500 = 50.0  # reference C++ (nn2pp) at N=500, M=2, K=4, erf, both layers


def _problem():
    return online.Problem(M=2, K=4, activation="erf", lr=0.5, sigma=0.1, train_second_layer=True)


def jax_timer(N: int, n_seeds: int, steps: int):
    """Compile and warm up the simulator's loop; returns a function timing one call of ``steps`` steps
    (wall time per step per seed, us)."""
    prob = _problem()
    st, advance, _, place = sgd_engine.program(prob, N, n_seeds, 1)  # the program simulate() runs
    inits = [online.initial_weights(prob, N, "large", s) for s in range(n_seeds)]
    state = [place((
        jnp.asarray(np.stack([i.w for i in inits])), jnp.asarray(np.stack([i.v for i in inits])),
        jnp.asarray(np.stack([i.w_teacher for i in inits])), jnp.asarray(np.stack([i.v_teacher for i in inits])),
        jnp.asarray(np.array([seed_offset(s) for s in range(n_seeds)], dtype=np.uint64)),
        jnp.zeros(n_seeds, jnp.int64), jnp.full(n_seeds, -1, jnp.int64),
    ))]
    params = tuple(jnp.float64(p) for p in (prob.lr, prob.eta2, prob.sigma, 0.0))
    state[0] = advance(state[0], jnp.int64(2 * st.block + 3), params)  # compile + warm up
    state[0][0].block_until_ready()
    steps = max(steps - steps % st.block, st.block)

    def once() -> float:
        t0 = time.perf_counter()
        state[0] = advance(state[0], jnp.int64(steps), params)
        state[0][0].block_until_ready()
        return (time.perf_counter() - t0) / steps / n_seeds * 1e6

    return once


def time_numpy(N: int, steps: int, repeats: int = 3) -> float:
    """A plain NumPy loop, one step per Python iteration (us per step)."""
    from scipy.special import erf

    prob = _problem()
    iw = online.initial_weights(prob, N, "large", 0)
    w, v, wt, vt = iw.w.copy(), iw.v.copy(), iw.w_teacher, iw.v_teacher
    rng = np.random.default_rng(0)
    lr, lr2, sigma, sq = prob.lr, prob.eta2, prob.sigma, math.sqrt(N)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            x = rng.standard_normal(N)
            lam = w @ x / sq
            rho = wt @ x / sq
            gl = erf(lam / math.sqrt(2))
            delta = gl @ v - (erf(rho / math.sqrt(2)) @ vt + sigma * rng.standard_normal())
            w -= (lr / sq) * np.outer(v * math.sqrt(2 / math.pi) * np.exp(-lam * lam / 2) * delta, x)
            v -= (lr2 / N) * gl * delta
        best = min(best, time.perf_counter() - t0)
    return best / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (CI smoke run)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (the best per row is reported)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load:.2f} at start (a shared machine inflates timings: each row is the best of {args.repeats})")
    print("online SGD, erf, M=2, K=4, both layers; us per SGD step per seed (steady state)")
    header = f"{'N':>6} {'seeds':>5} {'learndyn':>10} {'numpy loop':>11} {'C++ ref':>8} {'vs numpy':>9} {'vs C++':>7}"
    print(header)
    print("-" * len(header))
    configs = [(N, n_seeds) for N in (500, 5000) for n_seeds in (1, 16)]
    # each timed call takes ~0.1 s; rounds go over all rows in turn, so that a burst of load from other
    # jobs does not fall on one row only; the best of the rounds is reported
    timers = {(N, S): jax_timer(N, S, int((20000 if N == 500 else 4000) * scale / (8 if S > 1 else 1)) or 64)
              for N, S in configs}
    best = {c: math.inf for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            best[c] = min(best[c], timers[c]())
    np_us = {N: time_numpy(N, int((4000 if N == 500 else 1000) * scale) or 50) for N in (500, 5000)}
    rows = []
    for N, n_seeds in configs:
        us = best[(N, n_seeds)]
        cpp = CPP_US_PER_STEP_N500 if N == 500 else float("nan")
        rows.append((N, n_seeds, us, np_us[N], cpp))
        cpp_s = f"{cpp:8.1f}" if np.isfinite(cpp) else f"{'n/a':>8}"
        ratio_cpp = f"{cpp / us:6.1f}x" if np.isfinite(cpp) else f"{'n/a':>7}"
        print(f"{N:>6} {n_seeds:>5} {us:10.2f} {np_us[N]:11.2f} {cpp_s} {np_us[N] / us:8.1f}x {ratio_cpp}")
    one = next(r for r in rows if r[0] == 500 and r[1] == 1)
    many = next(r for r in rows if r[0] == 500 and r[1] == 16)
    if hasattr(os, "getloadavg"):
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print()
    print(f"target 1: <= 5 us/step, 1 seed, N=500: {one[2]:.2f} us -> {'met' if one[2] <= 5 else 'NOT met'}")
    print(f"target 2: >= 20x C++ throughput with 16 seeds at N=500: {CPP_US_PER_STEP_N500 / many[2]:.1f}x -> "
          f"{'met' if CPP_US_PER_STEP_N500 / many[2] >= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
