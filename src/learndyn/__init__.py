"""learndyn: exact theories of neural-network learning dynamics and the simulations that test them.

Three theories, each beside its simulation, over one Problem description:

* ``learndyn.online``  -- teacher-student online SGD (Goldt et al. 2019; Saad & Solla 1995)
* ``learndyn.dmft``    -- DMFT of large two-layer networks (Montanari & Urbani 2025)
* ``learndyn.kernels`` -- NNGP/NTK kernels, trainability vs generalization (Xiao et al. 2020)

Theory is computed in float64: importing learndyn switches JAX to 64-bit (``jax_enable_x64``).
Sub-packages are imported lazily, so ``import learndyn`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)


def _expose_cpu_cores() -> None:
    """One JAX CPU device per core (at most 8; ``LEARNDYN_CPU_DEVICES=n`` chooses, ``1`` turns it off).

    ``online.simulate`` splits batched seeds over these devices, each running its shard on its own core;
    everything else still runs on the default device.  Possible only before JAX's backend starts: if
    something already ran JAX code, or ``jax_num_cpu_devices`` / XLA's host device count is set, this is
    left alone.
    """
    import os

    setting = os.environ.get("LEARNDYN_CPU_DEVICES", "")
    try:
        count = int(setting) if setting else min(os.cpu_count() or 1, 8)
    except ValueError:
        return
    if count <= 1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        if getattr(jax.config, "jax_num_cpu_devices", -1) not in (-1, None):
            return
        jax.config.update("jax_num_cpu_devices", count)
    except (AttributeError, RuntimeError, ValueError):  # backend already initialised, or an older JAX
        return


_expose_cpu_cores()


def _enable_compilation_cache() -> None:
    """Persist compiled XLA programs across processes (opt out: ``LEARNDYN_JAX_CACHE=0``).

    The adaptive ODE solvers take seconds to compile; the cache makes that a once-per-machine cost.
    """
    import os

    setting = os.environ.get("LEARNDYN_JAX_CACHE", "")
    if setting == "0" or jax.config.jax_compilation_cache_dir:
        return
    base = setting or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "learndyn", "jax")
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", base)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


_enable_compilation_cache()

__version__ = "0.1.0"

_SUBMODULES = {
    "online",
    "dmft",
    "kernels",
    "activations",
    "gaussian",
    "datasets",
    "results",
    "plotting",
    "sweep",
    "resources",
}

_FROM_RESULTS = ("load", "Status", "InvalidInputError")

__all__ = sorted(_SUBMODULES) + ["__version__", *_FROM_RESULTS]


def __getattr__(name: str) -> Any:
    if name in _FROM_RESULTS:  # learndyn.load(path): the result object a file was saved from; the spine
        value = getattr(importlib.import_module(f"{__name__}.results"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'learndyn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
