"""Benchmark of the symmetric DMFT solver (issue 5 item 6) and of the ways past the explicit-Euler wall (item 2).

Table 1: N time steps, N in {500, 1500, 4000}: our solver (eigen-channels + packed BLAS, the arithmetic of the
paper's App. D) beside the plain NumPy transcription of App. D (full N x N arrays, the d/o form, vectorised over j per row:
``learndyn.dmft.reference.plain_symmetric``). The plain version is run at N <= --plain-max (default 500) and
extrapolated as N^3 above (marked "~"). Each solve runs in a fresh process; peak memory is the increase of
the peak RSS over the post-import baseline.

Table 2: a stiff lazy problem (m = 64): max |e_tr - reference| on [0, T] for explicit Euler, the implicit-local
scheme and Richardson extrapolation, with wall time, against a fine explicit reference (dt = 1/(80 lambda)).

    python benchmarks/dmft.py                 # full (N = 4000 takes minutes)
    python benchmarks/dmft.py --sizes 500 1500 --plain-max 500
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

from learndyn import dmft


def problem():
    # single index, mean-field init, the paper's Fig 4 activation; m = 64
    return dmft.Problem(m=64, n_over_d=0.3 * 64, tau=0.3, a0=1.0, h=[0, 0.9, 0, 1 / 6], target="activation")


def timed(fn):
    """Wall time of ``fn()`` (untraced: tracemalloc slows the per-step small allocations ~8x)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, None


_CHILD = """
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {bench!r})
import dmft as bench
from learndyn import dmft
from learndyn.dmft.reference import plain_symmetric
p = bench.problem()
N, dt, which = {N}, {dt}, {which!r}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if which == "ours":
    sol = dmft.solve(p, t_max=(N - 1) * dt, dt=dt, keep=False)
    e = sol.train_error
else:
    e = plain_symmetric(p, (N - 1) * dt, dt)["e_tr"]
el = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.save({out!r}, e)
print(json.dumps(dict(seconds=el, peak_gib=(peak - base) / 2**20)))
"""


def run_child(which, N, dt):
    """Run one solve in a fresh process: wall time and peak-RSS increase (ru_maxrss minus the post-import baseline)."""
    import json
    import subprocess
    import sys
    import tempfile

    out = tempfile.mktemp(suffix=".npy")
    code = _CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), N=N, dt=dt, which=which, out=out)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    info = json.loads(res.stdout.strip().splitlines()[-1])
    e = np.load(out)
    os.remove(out)
    return e, info["seconds"], info["peak_gib"]


def table_speed(sizes, plain_max, dt=0.05):
    p = problem()
    print("\nTable 1: SymmDMFT, m = 64, single index, MF init, dt = 0.05 (keep=False: no Sigma_C/C_A output arrays)")
    print(f"{'N':>6} {'ours [s]':>10} {'peak [GiB]':>11} {'plain [s]':>11} {'plain peak':>11} {'ratio':>7} {'max|de_tr|':>11}")
    plain_ref = None
    for N in sizes:
        e_ours, t_ours, mem_ours = run_child("ours", N, dt)
        if N <= plain_max:
            e_plain, t_plain, mem_plain = run_child("plain", N, dt)
            plain_ref = (N, t_plain)
            diff = f"{np.max(np.abs(e_plain - e_ours)):.1e}"
            tp, mp = f"{t_plain:.2f}", f"{mem_plain:.2f}"
        else:
            if plain_ref is None:  # the plain version at the largest size it is allowed to run, for the N^3 law
                n0 = max([n for n in sizes if n <= plain_max], default=min(plain_max, N))
                plain_ref = (n0, run_child("plain", n0, dt)[1])
            n0, t0 = plain_ref
            tp, mp, diff = f"~{t0 * (N / n0) ** 3:.0f}", f"~{64 * N * N / 2**30:.2f}", "-"
            t_plain = t0 * (N / n0) ** 3
        print(f"{N:>6} {t_ours:>10.2f} {mem_ours:>11.3f} {tp:>11} {mp:>11} {t_plain / t_ours:>7.1f} {diff:>11}", flush=True)


def table_schemes():
    p = dmft.Problem(m=64, n_over_d=0.5 * 64, tau=1.0, a0=8.0, h=[0, 0.3, 0.5], train_second_layer=False)
    lam = p.stiffness
    T = 16.0 / lam  # t = 1.55: the first regime (t ~ 1/lambda) and the start of the second
    (ref, t_ref, _) = timed(lambda: dmft.solve(p, t_max=T, dt=1 / (80 * lam)))
    print(f"\nTable 2: lazy pure noise, m = 64, gamma0 = 1, alpha = 0.5, h = 0.3z + z^2/2, lambda = {lam:.3g}, T = {T:.3g};"
          f" reference: explicit dt = 1/(80 lambda), {ref.t.size} steps, {t_ref:.1f} s")
    print(f"{'scheme':>12} {'dt*lambda':>10} {'steps':>6} {'time [s]':>9} {'max|e_tr - ref|':>16}")
    rows = [("euler", 0.25), ("euler", 0.5), ("euler", 1.0), ("implicit", 0.5), ("implicit", 1.0), ("implicit", 2.0),
            ("implicit", 4.0), ("richardson", 0.5), ("richardson", 1.0)]
    for scheme, x in rows:
        dt = x / lam
        stride = int(round(80 * x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            if scheme == "richardson":
                r = dmft.richardson(p, T, dt)
                e, n = r.train_error, r.t.size
            else:
                s = dmft.solve(p, t_max=T, dt=dt, scheme=scheme)
                e, n = s.train_error, s.t.size
            el = time.perf_counter() - t0
        err = np.max(np.abs(e - ref.train_error[::stride][: e.size]))
        print(f"{scheme:>12} {x:>10.2f} {n:>6} {el:>9.2f} {err:>16.2e}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1500, 4000])
    ap.add_argument("--plain-max", type=int, default=500)
    ap.add_argument("--skip-schemes", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} (shared with other jobs), numpy {np.__version__}")
    table_speed(args.sizes, args.plain_max)
    if not args.skip_schemes:
        table_schemes()


if __name__ == "__main__":
    main()
