r"""NNGP/NTK kernels and the trainability-vs-generalization theory of Xiao, Pennington & Schoenholz
(ICML 2020).  Spec: ``shared/spec/ntk.md``.

Conventions are neural-tangents' NTK parameterisation (spec §1.1): input kernel ``x.x'/n0``,
``"erf"`` means ``erf(x)``, ``fcn(depth)`` is ``Dense, [phi, Dense] x depth``.  One architecture
description gives the finite network and its kernel::

    from learndyn import kernels
    net = kernels.fcn(depth=10, activation="erf", weight_var=1.5, bias_var=0.05)
    k = net.kernel(x1, x2)            # k.nngp, k.ntk ; x2=None: x1 with itself; diagonal=True
    params = net.init(key, x1.shape); out = net.apply(params, x1)
    cnn = kernels.cnn(depth=3, activation="relu", weight_var=2.0, bias_var=0.01,
                      filter_shape=(3, 3), padding="circular", readout="gap")
    r = kernels.train(kernels.fcn(2, "erf", 1.75, 0.18, out_dim=10), x_train, y_train, labels_train,
                      x_test, labels_test)   # finite-width SGD; out_dim = y_train.shape[1]
"""

from __future__ import annotations

from .layers import Conv, Dense, Elementwise, Flatten, GlobalAvgPool, Repeat  # noqa: F401
from .network import Kernel, KernelMemoryError, Network, clear_cache, cnn, fcn, serial  # noqa: F401
from .linalg import (  # noqa: F401
    IllConditionedKernelError,
    Solution,
    Spectrum,
    condition_number,
    eigh,
    solve,
)
from .signal import SignalPropagation, correlation_trajectory, critical_line, signal_propagation  # noqa: F401
from .spectrum import depth_sweep, gd_predictions, mean_predictor, spectrum_vs_depth  # noqa: F401
from .training import TrainResult, learning_rate, train  # noqa: F401
