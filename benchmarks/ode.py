"""Benchmark of the online-SGD ODE integrator (issue 2).

erf, M = 2, K = 4, both layers trained, eta = 0.5, alpha in [0, 1000], rtol = 1e-6. Prints our steady-state time,
our JIT time (cold: persistent compilation cache disabled; warm: cache filled), a fixed-step Euler integrator with
dt = 0.01 written plainly in NumPy (an independent transcription of Goldt et al. 2019, eqs. (6)-(8) -- its final eps_g is also compared with
ours), and the compiled C++ reference integrator of the paper (~2.7 s for this run on this machine, from the issue).

    python benchmarks/ode.py [--numpy-alpha 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

CPP_REFERENCE_S = 2.7
M, K, LR, ALPHA_MAX = 2, 4, 0.5, 1000.0


def initial_state(seed: int = 0):
    rng = np.random.default_rng(seed)
    N = 1000
    w, wt = rng.standard_normal((K, N)), rng.standard_normal((M, N))
    Q, R, T = w @ w.T / N, w @ wt.T / N, wt @ wt.T / N
    v = rng.standard_normal(K)
    return 0.5 * (Q + Q.T), R, T, v, np.ones(M)


# ----------------------------------------------------------------------------------------------
# plain NumPy Euler (erf closed forms of Saad & Solla 1995)
# ----------------------------------------------------------------------------------------------
def _i3(C):
    c11, c12, c13, c23, c33 = C[..., 0, 0], C[..., 0, 1], C[..., 0, 2], C[..., 1, 2], C[..., 2, 2]
    lam3 = (1 + c11) * (1 + c33) - c13**2
    return 2 / np.pi / np.sqrt(lam3) * (c23 * (1 + c11) - c12 * c13) / (1 + c11)


def _i4(C):
    c = lambda a, b: C[..., a, b]  # noqa: E731
    lam4 = (1 + c(0, 0)) * (1 + c(1, 1)) - c(0, 1) ** 2
    lam0 = (lam4 * c(2, 3) - c(1, 2) * c(1, 3) * (1 + c(0, 0)) - c(0, 2) * c(0, 3) * (1 + c(1, 1))
            + c(0, 1) * c(0, 2) * c(1, 3) + c(0, 1) * c(0, 3) * c(1, 2))
    lam1 = lam4 * (1 + c(2, 2)) - c(1, 2) ** 2 * (1 + c(0, 0)) - c(0, 2) ** 2 * (1 + c(1, 1)) + 2 * c(0, 1) * c(0, 2) * c(1, 2)
    lam2 = lam4 * (1 + c(3, 3)) - c(1, 3) ** 2 * (1 + c(0, 0)) - c(0, 3) ** 2 * (1 + c(1, 1)) + 2 * c(0, 1) * c(0, 3) * c(1, 3)
    return 4 / np.pi**2 / np.sqrt(lam4) * np.arcsin(np.clip(lam0 / np.sqrt(lam1 * lam2), -1, 1))


def _i2(C):
    return 2 / np.pi * np.arcsin(C[..., 0, 1] / np.sqrt((1 + C[..., 0, 0]) * (1 + C[..., 1, 1])))


def numpy_euler(alpha_max: float, dt: float = 0.01):
    Q, R, T, v, vt = initial_state()
    n = K + M
    i3 = np.stack(np.meshgrid(np.arange(K), np.arange(n), np.arange(n), indexing="ij"), -1)
    i4 = np.stack(np.meshgrid(np.arange(K), np.arange(K), np.arange(n), np.arange(n), indexing="ij"), -1)
    i2 = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1)
    sub = lambda C, idx: C[idx[..., :, None], idx[..., None, :]]  # noqa: E731
    t0 = time.perf_counter()
    for _ in range(int(round(alpha_max / dt))):
        C = np.block([[Q, R], [R.T, T]])
        u = np.concatenate([-v, vt])
        F = _i3(sub(C, i3)) @ u
        G = v[:, None] * F[:, :K]
        E = np.einsum("ikcd,c,d->ik", _i4(sub(C, i4)), u, u)
        dR = LR * v[:, None] * F[:, K:]
        dQ = LR * (G + G.T) + LR**2 * np.outer(v, v) * E
        dv = LR * (_i2(sub(C, i2[:K])) @ u)
        Q, R, v = Q + dt * dQ, R + dt * dR, v + dt * dv
    elapsed = time.perf_counter() - t0
    C = np.block([[Q, R], [R.T, T]])
    uu = np.concatenate([v, -vt])
    return elapsed, 0.5 * uu @ _i2(sub(C, i2)) @ uu


# ----------------------------------------------------------------------------------------------
def worker(cache: str) -> dict:
    """Runs in a fresh process: first call (trace + compile + run), then steady-state calls."""
    if cache == "cold":
        os.environ["LEARNDYN_JAX_CACHE"] = "0"
    t_import = time.perf_counter()
    import learndyn
    from learndyn import online

    t_import = time.perf_counter() - t_import
    Q, R, T, v, vt = initial_state()
    prob = online.Problem(M=M, K=K, activation="erf", lr=LR, train_second_layer=True)
    st = online.OrderParameters(Q=Q, R=R, T=T, v=v, v_teacher=vt)
    alphas = online.default_alphas(ALPHA_MAX)
    kw = dict(rtol=1e-6, atol=1e-9)
    t0 = time.perf_counter()
    traj = online.integrate(prob, st, alphas, **kw)
    first = time.perf_counter() - t0
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        traj = online.integrate(prob, st, alphas, **kw)
        runs.append(time.perf_counter() - t0)
    steady = float(np.median(runs))
    return dict(first=first, steady=steady, jit=first - steady, eg_final=float(traj.eg[-1]), steps=traj.n_steps,
                import_s=t_import, version=learndyn.__version__)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--numpy-alpha", type=float, default=ALPHA_MAX,
                    help="integrate the NumPy Euler reference to this alpha and scale its time to alpha=1000")
    ap.add_argument("--worker", choices=["cold", "warm"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return

    def run(kind):
        out = subprocess.run([sys.executable, __file__, "--worker", kind], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold = run("cold")
    run("warm")  # fills the persistent cache
    warm = run("warm")
    np_time, np_eg = numpy_euler(args.numpy_alpha)
    np_time_full = np_time * ALPHA_MAX / args.numpy_alpha
    machine = f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    print(f"online ODE benchmark: erf, M={M}, K={K}, both layers, eta={LR}, alpha in [0, {ALPHA_MAX:g}], rtol=1e-6")
    print(f"machine: {machine}; python {platform.python_version()}")
    print()
    print(f"{'integrator':44s} {'time [s]':>10s} {'C++ ref / ours':>15s} {'NumPy / ours':>13s}")
    rows = [
        ("learndyn (compiled Dopri8), steady state", cold["steady"]),
        ("learndyn first call, cold cache (JIT incl.)", cold["first"]),
        ("learndyn first call, warm cache", warm["first"]),
        ("C++ reference (paper code, Euler dt=0.01)", CPP_REFERENCE_S),
        (f"plain NumPy Euler dt=0.01{' (scaled)' if args.numpy_alpha != ALPHA_MAX else ''}", np_time_full),
    ]
    for name, t in rows:
        print(f"{name:44s} {t:10.3f} {CPP_REFERENCE_S / t:15.1f} {np_time_full / t:13.1f}")
    print()
    print(f"JIT time (cold) = {cold['jit']:.2f} s (target <= 3 s); with warm cache = {warm['jit']:.2f} s")
    print(f"steady-state speed-up over the C++ reference = {CPP_REFERENCE_S / cold['steady']:.1f}x (target >= 10x)")
    print(f"accepted solver steps: {cold['steps']}; eps_g(alpha=1000): ours {cold['eg_final']:.6e}", end="")
    if args.numpy_alpha == ALPHA_MAX:
        print(f", NumPy Euler {np_eg:.6e}")
    else:
        print()


if __name__ == "__main__":
    main()
