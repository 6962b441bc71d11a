"""Kernels at dataset scale (issue 15): learndyn's NNGP + NTK beside neural-tangents 0.6.5, float64.

Cases (NNGP and NTK of x with itself, train-train, inputs x ~ N(0, 1)):

* FCN ReLU depth 10 (``kernels.fcn(10, "relu", 2.0, 0.0)``), n = 4000 inputs of dimension 784;
* the same with n = 20000 (skipped by ``--quick``);
* CNN ReLU depth 4, 3x3 filters, circular padding, global average pooling (``kernels.cnn(4, "relu", 2.0, 0.0,
  readout="gap")``), 16x16x1 images: the time per kernel entry (a 32-image kernel over its 32^2 entries) and
  the 256-image kernel in total (skipped by ``--quick``).

Every case runs in a fresh subprocess, so "first" is what a user waits for on the first call (tracing, XLA
compilation and the run; JAX's import and backend start are not counted) and the peak RSS is that case's alone
(``ru_maxrss`` of the child).  "steady" is the best of the following calls.  "est" is
``Network.memory_estimate`` (the figure printed before a large kernel) beside the measured peak RSS increase
of the call.

neural-tangents is archived and needs jax < 0.6, so it is never a dependency: its figures are the issue's
measurements on the 2-core project machine ("quoted"), or measured here when ``--nt-python`` names the Python of
a scratch environment holding it (recipe in ``tests/kernels/data/make_nt_reference.py``; the cases are run by
``benchmarks/nt_scale.py``: the first call for the FCN, the steady time per entry for the CNN; the larger cases
scaled by n^2).  JAX picks the device: the same script runs on a GPU and prints which one ran.

On a virtual machine, memory the process touches for the first time can be slow (host page faults): the
script measures that rate, since the n = 20000 outputs alone are 6.4 GB.

Run: ``python benchmarks/kernels_scale.py [--quick] [--nt-python /tmp/ntvenv/bin/python] [--repeats N]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

#: neural-tangents 0.6.5, float64, on the 2-core project machine, as the issue quotes them (seconds)
NT_QUOTED = {"fcn4000": 11.2, "fcn20000": 280.0, "cnn_entry": 16.4e-3, "cnn256": 16.4e-3 * 256**2}
NT_NOTE = {"fcn20000": "quoted, n^2 from 4000", "cnn256": "quoted, 256^2 x per entry"}

CASES = {
    # name: (label, kind, n, target seconds, what the target is, peak RSS target in GB)
    "fcn4000": ("FCN ReLU d=10, n=4000, 784-dim", "fcn", 4000, 2.24, "<= 0.2x NT (first call)", None),
    "fcn20000": ("FCN ReLU d=10, n=20000, 784-dim", "fcn", 20000, 60.0, "<= 60 s, peak <= 10 GB", 10.0),
    "cnn_entry": ("CNN ReLU d=4 GAP 16x16x1, per entry", "cnn", 32, 16.4e-4, "<= 0.1x NT (steady)", None),
    "cnn256": ("CNN ReLU d=4 GAP 16x16x1, 256 images", "cnn", 256, 60.0, "<= 60 s", None),
}


def _vm(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def child(case: str, repeats: int) -> dict:
    """One case in this (fresh) process: first call, best steady call, memory."""
    import resource

    import jax
    import numpy as np

    import learndyn  # noqa: F401  (float64)
    from learndyn import kernels

    jax.numpy.zeros(1).block_until_ready()  # the backend is up before the clock starts
    _, kind, n, *_ = CASES[case]
    rng = np.random.default_rng(0)
    if kind == "fcn":
        net, x = kernels.fcn(10, "relu", 2.0, 0.0), rng.standard_normal((n, 784))
        estimate = lambda: net.memory_estimate(n, channels=784)
    else:
        net = kernels.cnn(4, "relu", 2.0, 0.0, filter_shape=(3, 3), padding="circular", readout="gap")
        x = rng.standard_normal((n, 16, 16, 1))
        estimate = lambda: net.memory_estimate(n, spatial_shape=(16, 16), channels=1)
    rss0 = _vm("VmRSS")
    t = time.perf_counter()
    k = net.kernel(x, verbose=False)
    first = time.perf_counter() - t
    incr = _vm("VmHWM") - rss0
    status = str(k.status)
    del k
    est = estimate()  # after the first call: estimating compiles the block computation
    steady = None
    for _ in range(repeats):
        t = time.perf_counter()
        net.kernel(x, verbose=False)
        steady = min(steady or 1e300, time.perf_counter() - t)
    per = n * n if case == "cnn_entry" else 1
    return dict(first=first / per, steady=None if steady is None else steady / per, est=est, incr=incr,
                maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, status=status,
                devices=[str(d) for d in jax.devices()], jax=jax.__version__)


def first_touch() -> dict:
    """ms per MB to touch 512 MB of memory this process never had (page faults), and to rewrite it."""
    import numpy as np

    t = time.perf_counter()
    a = np.zeros(2**26)
    a[...] = 1.0
    fresh = time.perf_counter() - t
    t = time.perf_counter()
    a[...] = 2.0
    again = time.perf_counter() - t
    return dict(fresh=fresh / 512 * 1e3, again=again / 512 * 1e3)


def _run(args: list[str], python: str = sys.executable, timeout: float = 3600) -> dict:
    out = subprocess.run([python] + args, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt_t(t):
    if t is None:
        return "-"
    return f"{t * 1e3:.2f} ms" if t < 0.1 else f"{t:.2f} s"


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} CPUs, {mem:.0f} GiB, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the n=20000 FCN and the 256-image CNN")
    ap.add_argument("--nt-python", help="Python of a scratch environment with neural-tangents 0.6.5")
    ap.add_argument("--repeats", type=int, default=2, help="steady calls after the first (default 2)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--first-touch", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.repeats)))
        return
    if a.first_touch:
        print(json.dumps(first_touch()))
        return

    cases = [c for c in CASES if not (a.quick and c in ("fcn20000", "cnn256"))]
    print(f"machine: {_machine()}", flush=True)
    ft = _run([__file__, "--first-touch"])
    if "fresh" in ft:
        print(f"memory first touch: {ft['fresh']:.2f} ms/MB fresh, {ft['again']:.3f} ms/MB rewritten "
              f"(n=20000 outputs: 6.4 GB -> {ft['fresh'] * 6400 / 1e3:.0f} s of page faults)", flush=True)
    nt = {}  # case -> (seconds, where the figure comes from)
    if a.nt_python:
        for c, scale, big in (("fcn4000", 25, "fcn20000"), ("cnn_entry", 256**2, "cnn256")):
            r = _run([os.path.join(HERE, "nt_scale.py"), c], python=a.nt_python)
            if "first" in r:
                t = r["steady"] if c == "cnn_entry" else r["first"]
                nt[c] = (t, f"measured, jax {r['jax']}")
                nt[big] = (t * scale, "measured, x n^2" if c == "fcn4000" else "measured, x 256^2")
            else:
                print(f"neural-tangents {c}: {r.get('error')}")
    rows = []
    devices = jax_version = None
    for c in cases:
        label, kind, n, target, what, rss_target = CASES[c]
        steady_repeats = 0 if c in ("fcn20000", "cnn256") else a.repeats
        r = _run([__file__, "--child", c, "--repeats", str(steady_repeats)])
        if "error" in r:
            rows.append((label, "error: " + r["error"][:60], "", "", "", "", what, ""))
            continue
        devices, jax_version = r["devices"], r["jax"]
        nt_t, nt_src = nt.get(c, (NT_QUOTED[c], NT_NOTE.get(c, "quoted")))
        ours = r["steady"] if c == "cnn_entry" and r["steady"] else r["first"]  # per entry: the steady rate
        ratio = ours / nt_t
        ok = ours <= target and (rss_target is None or r["maxrss"] / 1e9 <= rss_target)
        rows.append((label, _fmt_t(r["first"]), _fmt_t(r["steady"]), f"{_fmt_t(nt_t)} ({nt_src})", f"{ratio:.2f}x",
                     f"{r['maxrss'] / 1e9:.2f} GB (+{r['incr'] / 1e9:.2f}, est {r['est'] / 1e9:.2f})",
                     f"{what}: {'met' if ok else 'MISSED'}", r["status"]))
        print("  done:", label, rows[-1][1], flush=True)
    print(f"devices: {devices} (jax {jax_version})")
    head = ("case", "ours first", "ours steady", "neural-tangents", "ours/NT", "peak RSS (+call, est)", "target",
            "status")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths)] + rows:
        print(" | ".join(str(v).ljust(w) for v, w in zip(r, widths)))


if __name__ == "__main__":
    main()
