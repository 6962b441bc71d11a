"""neural-tangents 0.6.5's side of ``benchmarks/kernels_scale.py``: run by the Python of a scratch environment
holding it (recipe in ``tests/kernels/data/make_nt_reference.py``), never imported by learndyn.

``python nt_scale.py fcn4000|cnn_entry`` prints one JSON line: ``first`` (seconds of the first call, jit
compilation included) and ``steady`` (best of two more), per kernel entry for ``cnn_entry`` (16 images: NT holds
every layer's n^2 d^2 covariance at once).  The architectures are learndyn's ``fcn(10, "relu", 2.0, 0.0)`` and
``cnn(4, "relu", 2.0, 0.0, readout="gap")`` in NT's layers (W_std = sqrt(weight_var)), float64, NNGP and NTK of
x with itself.
"""

import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402


def main():
    case = sys.argv[1]
    rng = np.random.default_rng(0)
    w = 2.0**0.5
    if case == "fcn4000":
        layers = [stax.Dense(512, w, 0.0)]
        for _ in range(10):
            layers += [stax.Relu(), stax.Dense(512, w, 0.0)]
        x, per = rng.standard_normal((4000, 784)), 1
    elif case == "cnn_entry":
        conv = lambda: stax.Conv(64, (3, 3), padding="CIRCULAR", W_std=w, b_std=0.0)  # noqa: E731
        layers = [conv()]
        for _ in range(3):
            layers += [stax.Relu(), conv()]
        layers += [stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, w, 0.0)]
        x = rng.standard_normal((16, 16, 16, 1))
        per = 16 * 16
    else:
        raise SystemExit(f"unknown case {case!r} (fcn4000, cnn_entry)")
    kernel_fn = jax.jit(stax.serial(*layers)[2], static_argnames="get")
    t = time.perf_counter()
    jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))
    first = time.perf_counter() - t
    steady = 1e300
    for _ in range(2):
        t = time.perf_counter()
        jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))
        steady = min(steady, time.perf_counter() - t)
    print(json.dumps({"first": first / per, "steady": steady / per, "jax": jax.__version__}))


if __name__ == "__main__":
    main()
