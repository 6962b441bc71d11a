r"""NNGP/NTK kernels and the trainability-vs-generalization theory of Xiao, Pennington & Schoenholz
(ICML 2020), with the kernel recursions of Jacot et al. 2018 and Lee et al. 2019 (Novak et al. 2019 for CNNs
with global average pooling).

Conventions are neural-tangents' NTK parameterisation: input kernel ``x.x'/n0``, ``"erf"`` means
``erf(x)``, ``fcn(depth)`` is ``Dense, [phi, Dense] x depth``.  One frozen :class:`Problem` describes the
architecture; it gives the finite network and its kernels, and is what the theory functions take::

    from learndyn import kernels
    p = kernels.Problem("fcn", depth=10, activation="erf", weight_var=1.5, bias_var=0.05)
    k = kernels.kernel(p, x1, x2)       # k.nngp, k.ntk ; x2=None: x1 with itself; diagonal=True
    net = p.network(); params = net.init(key, x1.shape); out = net.apply(params, x1)
    sp = kernels.signal_propagation(p)  # q*, chi_1, depth scales, phase
    r = kernels.spectrum_vs_depth(p.replace(readin="qstar"), x_train, y_train, x_test, [10, 100])
    cnn = kernels.Problem("cnn", depth=3, activation="relu", weight_var=2.0, bias_var=0.01,
                          filter_shape=(3, 3), padding="circular", readout="gap")
    r = kernels.train(p.replace(depth=2, out_dim=10), x_train, y_train, labels_train, x_test, labels_test)

Modules: :mod:`.problem` (the Problem), :mod:`.layers` (layers and their kernel maps), :mod:`.state`
(the recursion state), :mod:`.conv` (window averages), :mod:`.network` (Network, Kernel, fcn/cnn/serial),
:mod:`.blocking` (memory plan and blocks), :mod:`.depth` (one-pass depth sweeps), :mod:`.signal`
(mean-field signal propagation), :mod:`.spectrum` (spectra against depth), :mod:`.linalg` (eigh-based
solves and the mean predictor), :mod:`.training` (finite-width SGD), :mod:`.store` (out-of-core kernels in a
Zarr store, resumable and spread over Dask workers; streamed conjugate-gradient solves and predictions).
"""

from __future__ import annotations

from .layers import Conv, Dense, Elementwise, Flatten, GlobalAvgPool, Repeat  # noqa: F401
from .linalg import (  # noqa: F401
    IllConditionedKernelError,
    Prediction,
    Solution,
    Spectrum,
    condition_number,
    eigh,
    mean_predictor,
    solve,
)
from .network import (CacheInfo, Kernel, KernelMemoryError, Network, cache_info, clear_cache, cnn, fcn,  # noqa: F401
                      serial)
from .problem import Problem, kernel  # noqa: F401
from .regression import Regression, regress  # noqa: F401
from .evaluation import Evaluation, evaluate  # noqa: F401
from .signal import (  # noqa: F401
    CriticalLine,
    SignalPropagation,
    correlation_trajectory,
    critical_line,
    signal_propagation,
)
from .store import (CGSolution, KernelOperator, KernelStore, KernelStoreStatus, StorePrediction,  # noqa: F401
                    conjugate_gradient, is_kernel_store, kernel_store)
from .spectrum import GDPredictions, SpectrumResult, depth_sweep, gd_predictions, spectrum_vs_depth  # noqa: F401
from .training import TrainResult, learning_rate, train  # noqa: F401
