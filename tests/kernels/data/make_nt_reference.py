"""Regenerate ``nt_reference.npz``: kernels computed by neural-tangents 0.6.5 (the reference library).

Not run by the test suite (neural-tangents needs jax < 0.6 and TensorFlow).  It was run in a scratch
virtual environment outside the repository::

    python3 -m venv /tmp/ntvenv
    /tmp/ntvenv/bin/pip install jax==0.5.3 jaxlib==0.5.3 frozendict numpy scipy
    /tmp/ntvenv/bin/pip install --no-deps neural-tangents==0.6.5
    # neural_tangents/__init__.py imports .experimental (TensorFlow); comment that line out
    /tmp/ntvenv/bin/python make_nt_reference.py nt_reference.npz

Architectures (NT layer names; W_std = sqrt(weight_var), b_std = sqrt(bias_var)):
  fcn:  serial(Dense, [phi, Dense] x depth)
  cnn:  serial(Conv, [phi, Conv] x (depth - 1), phi, Flatten | GlobalAvgPool, Dense)
Inputs are fixed Gaussian draws (seed 1234) stored in the file; 'tt' = x1 with itself (x2=None),
'xt' = kernel_fn(x2, x1).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

rng = np.random.RandomState(1234)
xf1 = rng.randn(6, 10)
xf2 = rng.randn(4, 10)
xi1 = rng.randn(4, 5, 4, 3)
xi2 = rng.randn(3, 5, 4, 3)


def act(name):
    return {"erf": stax.Erf(), "relu": stax.Relu(), "leaky": stax.LeakyRelu(0.2), "abs": stax.Abs()}[name]


def fcn(depth, a, wv, bv):
    layers = [stax.Dense(8, wv**0.5, bv**0.5)]
    for _ in range(depth):
        layers += [act(a), stax.Dense(8, wv**0.5, bv**0.5)]
    return stax.serial(*layers)[2]


def cnn(depth, a, wv, bv, fs, pad, ro):
    def conv():
        return stax.Conv(8, fs, padding=pad, W_std=wv**0.5, b_std=bv**0.5)

    layers = [conv()]
    for _ in range(depth - 1):
        layers += [act(a), conv()]
    layers += [act(a), stax.Flatten() if ro == "flatten" else stax.GlobalAvgPool(), stax.Dense(1, wv**0.5, bv**0.5)]
    return stax.serial(*layers)[2]


cases = {
    "fcn_erf_d3": (fcn(3, "erf", 1.5, 0.05), "f"),
    "fcn_erf_d20_chaotic": (fcn(20, "erf", 3.0, 0.18), "f"),
    "fcn_erf_d30_ordered": (fcn(30, "erf", 1.0, 0.05), "f"),
    "fcn_relu_d5": (fcn(5, "relu", 2.0, 0.1), "f"),
    "fcn_relu_d40": (fcn(40, "relu", 1.9, 0.0), "f"),
    "fcn_leaky_d4": (fcn(4, "leaky", 1.7, 0.2), "f"),
    "fcn_abs_d3": (fcn(3, "abs", 1.1, 0.3), "f"),
    "cnn_relu_circ_gap_d3": (cnn(3, "relu", 2.0, 0.01, (3, 3), "CIRCULAR", "gap"), "i"),
    "cnn_relu_same_gap_d3": (cnn(3, "relu", 2.0, 0.01, (3, 3), "SAME", "gap"), "i"),
    "cnn_erf_circ_flat_d3": (cnn(3, "erf", 1.5, 0.05, (3, 3), "CIRCULAR", "flatten"), "i"),
    "cnn_erf_same_flat_d3": (cnn(3, "erf", 1.5, 0.05, (3, 3), "SAME", "flatten"), "i"),
    "cnn_erf_same_gap_d2_f23": (cnn(2, "erf", 1.3, 0.1, (2, 3), "SAME", "gap"), "i"),
    "cnn_relu_circ_flat_d4_f23": (cnn(4, "relu", 2.0, 0.05, (2, 3), "CIRCULAR", "flatten"), "i"),
}
out = {"xf1": xf1, "xf2": xf2, "xi1": xi1, "xi2": xi2}
for name, (kf, kind) in cases.items():
    x1, x2 = (xf1, xf2) if kind == "f" else (xi1, xi2)
    for tag, args in (("tt", (x1, None)), ("xt", (x2, x1))):
        k = kf(*args, ("nngp", "ntk"))
        out[f"{name}_{tag}_nngp"] = np.asarray(k.nngp)
        out[f"{name}_{tag}_ntk"] = np.asarray(k.ntk)
np.savez(sys.argv[1], **out)
