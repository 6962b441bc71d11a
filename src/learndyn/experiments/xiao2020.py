r"""Xiao, Pennington & Schoenholz (ICML 2020), "Disentangling trainability and generalization in deep
neural networks": figures and claims on offline data.

The paper's experiments use CIFAR-10, whose hyper-parameters the paper does not all state; every recipe here
runs on sklearn's bundled digits (or MNIST-5k / Fashion-MNIST when requested) and states its settings on the
figure. Each figure is a declaration (:data:`FIGURES`: how to compute its Dataset, how to plot it) whose files
the shared runner writes (:func:`learndyn.experiments.runner.write_figure`).  Figures:

* ``signal``   -- the erf/tanh critical line sigma_w^2(sigma_b^2) and the depth scales xi_1, xi_c, xi_*
  against sigma_w^2 (the signal-propagation quantities of the paper's background section).
* ``spectrum`` -- NTK/NNGP spectra against depth (lambda_max, lambda_bulk, kappa, |P(Theta)Y|) in the
  ordered, critical and chaotic phases, computed beside their large-depth asymptotes (Table 1 of the paper).
* ``phase``    -- trainability/generalisation phase diagrams over (sigma_w^2, depth) at sigma_b^2 = 0.18:
  (a) infinite-width NTK gradient-descent predictions after t steps with NNGP initialisation noise,
  (b) finite-width FCNs trained with SGD; train and test accuracy heat maps with depth = 8 xi_1 and
  depth = 8 xi_* (the paper's phase-diagram figures).
* ``cnn``      -- FCN vs CNN-Flatten vs CNN-GAP on 4x4-pooled digits: kappa (ordered) and |P(Theta)Y|
  (chaotic) against depth (the paper's CNN analysis: CNN-F = FCN, GAP shifts the depth scales by ~xi ln d),
  plus NTK-GD test accuracy.

:func:`claims` prints the claims of the paper's abstract as numbers, theory beside measurement.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from .. import datasets
from ..results import atomic_write_netcdf, problem_attrs
from . import canonical_figure, output_paths, progress_bar, runner

__all__ = ["FIGURES", "Figure", "run_figure", "claims", "ntk_phase_diagram", "sgd_phase_diagram", "PhaseConfig",
           "cnn_comparison", "cnn_sgd_comparison"]

PAPER = "Xiao, Pennington & Schoenholz, ICML 2020 (arXiv:1912.13053)"


def _log(log, msg):
    if log is not None:
        log(msg)


# ============================================================================================
# configuration
# ============================================================================================
@dataclass(frozen=True)
class PhaseConfig:
    """Settings of the phase-diagram recipe (full size; :meth:`quick` gives the CI size)."""

    dataset: str = "digits"
    n_train: int = 256
    n_test: int = 500
    bias_var: float = 0.18
    activation: str = "erf"
    weight_vars: tuple = tuple(np.round(np.linspace(0.5, 3.0, 21), 4))
    depths: tuple = (1, 2, 3, 5, 8, 12, 16, 24, 32, 48, 64, 96)
    times: tuple = (64.0, 4096.0, math.inf)
    n_draws: int = 2
    # finite width (b): a coarser grid
    sgd_weight_vars: tuple = (0.6, 1.0, 1.4, 1.75, 2.2, 3.0)
    sgd_depths: tuple = (1, 4, 12, 32)
    width: int = 64
    steps: int = 600
    batch_size: int = 64
    lr_factor: float = 0.5
    seeds: int = 1

    def quick(self) -> "PhaseConfig":
        """The CI-sized configuration (small data, coarse grids, short training)."""
        return replace(self, n_train=64, n_test=100, weight_vars=(0.6, 1.2, 1.75, 2.4, 3.0),
                       depths=(1, 4, 16, 40), times=(64.0, math.inf), n_draws=1,
                       sgd_weight_vars=(0.8, 1.75, 3.0), sgd_depths=(1, 20), width=32, steps=150,
                       batch_size=32)


# ============================================================================================
# phase diagrams
# ============================================================================================
def ntk_phase_diagram(ds: datasets.Dataset, weight_vars, depths, bias_var: float = 0.18, times=(4096.0,),
                      n_draws: int = 1, activation: str = "erf", architecture: str = "fcn", seed: int = 0,
                      log=None, progress: bool = False, **cnn_kw) -> xr.Dataset:
    r"""Train/test accuracy of infinite-width NTK gradient flow after each ``t`` in ``times`` with NNGP
    initial outputs (:func:`learndyn.kernels.spectrum.gd_predictions`), over (``weight_vars``, ``depths``).
    The readin layer uses the same variances as the hidden layers (the finite networks of (b) do too)."""
    from ..kernels.spectrum import depth_sweep, gd_predictions

    m = ds.n_train
    x = np.concatenate([ds.x_train, ds.x_test])
    W, D, Tn = len(weight_vars), len(depths), len(times)
    acc_tr = np.full((Tn, W, D), np.nan)
    acc_te = np.full((Tn, W, D), np.nan)
    kappa = np.full((W, D), np.nan)
    rng = np.random.default_rng(seed)
    bar = progress_bar(W * D, f"NTK phase diagram ({architecture})", progress, unit="point")
    for i, wv in enumerate(weight_vars):
        t0 = time.time()
        bar.set_postfix_str(f"sigma_w^2={wv:.3g}")
        for l, K, T in depth_sweep(x, depths, activation=activation, weight_var=wv, bias_var=bias_var,
                                   architecture=architecture, **cnn_kw):
            j = list(depths).index(l)
            bar.update(i * D + j - bar.n)  # the depths before l are done
            if not (np.all(np.isfinite(K)) and np.all(np.isfinite(T))):
                continue
            w = np.linalg.eigvalsh(T[:m, :m])
            kappa[i, j] = w[-1] / w[0] if w[0] > 0 else np.inf
            gd = gd_predictions(K, T, m, ds.y_train, times, n_draws=n_draws, rng=rng,
                                labels_train=ds.labels_train, labels_test=ds.labels_test)
            acc_tr[:, i, j] = gd.train_accuracy
            acc_te[:, i, j] = gd.test_accuracy
        bar.update((i + 1) * D - bar.n)
        _log(log, f"  NTK sigma_w^2={wv:.3g}: {time.time() - t0:.1f}s")
    bar.close()
    coords = {"time": np.asarray(times, float), "weight_var": np.asarray(weight_vars, float),
              "depth": np.asarray(depths, int)}
    return xr.Dataset({"train_accuracy": (("time", "weight_var", "depth"), acc_tr),
                       "test_accuracy": (("time", "weight_var", "depth"), acc_te),
                       "kappa": (("weight_var", "depth"), kappa)}, coords=coords,
                      attrs={"bias_var": bias_var, "activation": activation, "architecture": architecture,
                             "n_draws": n_draws, "dataset": ds.name, "n_train": m, "n_test": ds.n_test})


def sgd_phase_diagram(ds: datasets.Dataset, weight_vars, depths, bias_var: float = 0.18, activation: str = "erf",
                      width: int = 128, steps: int = 800, batch_size: int = 64, lr_factor: float = 0.5,
                      seeds: int = 1, architecture: str = "fcn", log=None, progress: bool = False,
                      **cnn_kw) -> xr.Dataset:
    """Train/test accuracy of finite-width networks trained with SGD (:func:`learndyn.kernels.train`)
    over (``weight_vars``, ``depths``); learning rates from the analytic NTK of one batch."""
    from .. import kernels
    from ..kernels.spectrum import depth_sweep
    from ..kernels import train

    W, D = len(weight_vars), len(depths)
    acc_tr = np.full((W, D), np.nan)
    acc_te = np.full((W, D), np.nan)
    lrs = np.full((W, D), np.nan)
    diverged = np.zeros((W, D), bool)
    B = min(batch_size, ds.n_train)
    k_out = ds.y_train.shape[1]
    bar = progress_bar(W * D, f"SGD phase diagram ({architecture})", progress, unit="net")
    for i, wv in enumerate(weight_vars):
        t0 = time.time()
        bar.set_postfix_str(f"sigma_w^2={wv:.3g}")
        ntks = {l: T for l, _, T in depth_sweep(ds.x_train[:B], depths, activation=activation, weight_var=wv,
                                                bias_var=bias_var, architecture=architecture, **cnn_kw)}
        for j, l in enumerate(depths):
            bar.update(i * D + j - bar.n)  # the depths before l are done
            if architecture == "fcn":
                net = kernels.fcn(l, activation, wv, bias_var, width=width, out_dim=k_out)
            else:
                net = kernels.cnn(l, activation, wv, bias_var, channels=width, out_dim=k_out, **cnn_kw)
            T = ntks[l]
            if not np.all(np.isfinite(T)):
                continue
            r = train(net, ds.x_train, ds.y_train, ds.labels_train, ds.x_test, ds.labels_test, steps=steps,
                      batch_size=B, lr_factor=lr_factor, seeds=seeds, ntk_batch=T)
            acc_tr[i, j] = r.train_accuracy.mean()
            acc_te[i, j] = r.test_accuracy.mean()
            lrs[i, j] = r.learning_rate
            diverged[i, j] = not r.success
        bar.update((i + 1) * D - bar.n)
        _log(log, f"  SGD sigma_w^2={wv:.3g}: {time.time() - t0:.1f}s")
    bar.close()
    coords = {"weight_var": np.asarray(weight_vars, float), "depth": np.asarray(depths, int)}
    return xr.Dataset({"train_accuracy": (("weight_var", "depth"), acc_tr),
                       "test_accuracy": (("weight_var", "depth"), acc_te),
                       "learning_rate": (("weight_var", "depth"), lrs),
                       "diverged": (("weight_var", "depth"), diverged.astype(np.int8))}, coords=coords,
                      attrs={"bias_var": bias_var, "activation": activation, "architecture": architecture,
                             "width": width, "steps": steps, "batch_size": B, "lr_factor": lr_factor,
                             "seeds": seeds, "dataset": ds.name})


def _depth_lines(activation, weight_vars, bias_var):
    from ..kernels.signal import signal_propagation

    wv = np.linspace(min(weight_vars), max(weight_vars), 200)
    sp = signal_propagation(activation, wv, bias_var)
    return wv, 8 * sp.xi_1, 8 * sp.xi_star


def _heat(ax, data, wvs, depths, title, lines, vmax=1.0, vmin=0.0, cmap="viridis"):
    Wg, Dg = np.asarray(wvs, float), np.asarray(depths, float)
    im = ax.pcolormesh(_edges(Wg), _edges(Dg, log=True), np.asarray(data).T, cmap=cmap, vmin=vmin,
                       vmax=vmax, shading="flat")
    wv, l1, ls = lines
    ax.plot(wv, np.where(np.isfinite(l1), l1, np.nan), "w--", lw=1.5, label=r"$8\xi_1$")
    ax.plot(wv, np.where(np.isfinite(ls), ls, np.nan), "w:", lw=1.8, label=r"$8\xi_*$")
    ax.set_yscale("log")
    ax.set_ylim(_edges(Dg, log=True)[0], _edges(Dg, log=True)[-1])
    ax.set_xlim(_edges(Wg)[0], _edges(Wg)[-1])
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("depth $l$")
    ax.set_title(title, fontsize=9)
    ax.grid(False)
    return im


def _edges(v, log=False):
    v = np.asarray(v, float)
    if v.size == 1:
        return np.array([v[0] * 0.8, v[0] * 1.25]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    if log:
        lv = np.log(v)
        mid = 0.5 * (lv[1:] + lv[:-1])
        return np.exp(np.concatenate([[lv[0] - (mid[0] - lv[0])], mid, [lv[-1] + (lv[-1] - mid[-1])]]))
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


# ============================================================================================
# figures
# ============================================================================================
def _signal_data(quick: bool, log=None, progress: bool = False) -> xr.Dataset:
    """The critical lines chi_1 = 1 of erf and tanh, and the erf depth scales xi_1, xi_c, xi_* against
    sigma_w^2 at sigma_b^2 = 0.05 and 0.18 (along ``curve_bias_var``)."""
    from ..kernels.signal import critical_line, signal_propagation

    bvs = np.linspace(0.0, 0.5, 6 if quick else 21)
    cl_erf = critical_line("erf", bvs)
    cl_tanh = critical_line("tanh", bvs[1:4] if quick else bvs[1:])
    wv = np.linspace(0.3, 3.0, 30 if quick else 120)
    sps = {bv: signal_propagation("erf", wv, bv) for bv in (0.05, 0.18)}
    return xr.Dataset({"critical_weight_var_erf": ("bias_var", cl_erf.weight_var),
                       "critical_q_star_erf": ("bias_var", cl_erf.q_star),
                       "critical_weight_var_tanh": ("bias_var_tanh", cl_tanh.weight_var),
                       **{n: (("curve_bias_var", "weight_var"), np.stack([np.asarray(getattr(sp, n), float)
                                                                           for sp in sps.values()]))
                          for n in ("q_star", "c_star", "chi_1", "chi_c", "xi_1", "xi_c", "xi_star", "p_star")}},
                      coords={"bias_var": cl_erf.bias_var, "bias_var_tanh": cl_tanh.bias_var, "weight_var": wv,
                              "curve_bias_var": list(sps)},
                      attrs=problem_attrs({"figure": "signal", "quick": quick}, paper=PAPER))


def _plot_signal(ds: xr.Dataset, path: Path) -> Path:
    from ..plotting import figure, save_figure

    fig, ax = figure(1, 2, width=4.4, height=3.4)
    ax[0].plot(ds.bias_var, ds.critical_weight_var_erf, "-", label="erf (bisection on $\\chi_1=1$)")
    qs = np.linspace(0, 2.6, 80)
    w_cf = np.pi / 4 * np.sqrt(1 + 4 * qs)
    b_cf = qs - w_cf * (2 / np.pi) * np.arcsin(2 * qs / (1 + 2 * qs))
    ax[0].plot(b_cf, w_cf, "k:", lw=1, label="erf closed form")
    ax[0].plot(ds.bias_var_tanh, ds.critical_weight_var_tanh, "s-", ms=3, label="tanh (quadrature)")
    ax[0].plot([0], [2.0], "r^", label="ReLU critical point (2, 0)")
    ax[0].set_xlabel(r"$\sigma_b^2$")
    ax[0].set_ylabel(r"critical $\sigma_w^2$")
    ax[0].set_xlim(0, 0.5)
    ax[0].text(0.05, 0.92, "chaotic", transform=ax[0].transAxes)
    ax[0].text(0.7, 0.1, "ordered", transform=ax[0].transAxes)
    ax[0].legend(fontsize=7, loc="center right")
    ax[0].set_title("critical line $\\chi_1 = 1$", fontsize=9)
    wv = ds.weight_var.values
    for bv, c in zip(ds.curve_bias_var.values, ("C0", "C1")):
        sp = ds.sel(curve_bias_var=bv)
        bv = float(bv)
        ax[1].semilogy(wv, sp.xi_1, "-", color=c, label=rf"$\xi_1$, $\sigma_b^2$={bv}")
        ax[1].semilogy(wv, sp.xi_star, "--", color=c, label=rf"$\xi_*$, $\sigma_b^2$={bv}")
        ax[1].semilogy(wv, sp.xi_c, ":", color=c, lw=1, label=rf"$\xi_c$, $\sigma_b^2$={bv}")
    ax[1].set_ylim(0.5, 1e3)
    ax[1].set_xlabel(r"$\sigma_w^2$")
    ax[1].set_ylabel("depth scale")
    ax[1].legend(fontsize=7, ncol=2)
    ax[1].set_title("erf depth scales (diverge on the critical line)", fontsize=9)
    return save_figure(fig, path)


def _fig_signal(quick: bool, log=None, progress: bool = False):
    ds = _signal_data(quick, log, progress)
    return ds, lambda path: _plot_signal(ds, path)


def _spectrum_runs(quick: bool):
    from ..kernels.signal import critical_line

    crit = float(critical_line("erf", [0.05]).weight_var[0])
    depths = (np.unique(np.geomspace(1, 100 if quick else 400, 10 if quick else 24).astype(int)))
    return [("ordered", 1.25), ("critical", crit), ("chaotic", 1.5)], depths


def _spectrum_data(quick: bool, log=None, progress: bool = False) -> tuple[list, xr.Dataset]:
    """NTK spectra against depth (:func:`learndyn.kernels.spectrum.spectrum_vs_depth`) in the ordered, critical
    and chaotic phases (sigma_b^2 = 0.05), one run per phase, stacked along ``phase``."""
    from ..kernels.spectrum import spectrum_vs_depth

    data = datasets.load("digits", n_train=32 if quick else 64, n_test=16 if quick else 32, seed=1)
    runs, depths = _spectrum_runs(quick)

    def one(run):
        phase, wv = run
        _log(log, f"  spectrum {phase} sigma_w^2={wv:.6g}")
        return spectrum_vs_depth(data.x_train, data.y_train, data.x_test, depths, weight_var=wv, bias_var=0.05)

    results = runner.execute_runs(runs, one, desc="xiao2020 spectrum", progress=progress, log=log)
    ds = xr.concat([r.to_xarray().expand_dims(phase=[p]) for (p, _), r in zip(runs, results)], dim="phase",
                   join="outer", combine_attrs="drop")
    ds.attrs.update(problem_attrs({"figure": "spectrum", "quick": quick, "data": "digits", "bias_var": 0.05,
                                   "runs": runs}, paper=PAPER))
    return list(zip(runs, results)), ds


def _plot_spectrum(runs: list, path: Path) -> Path:
    from ..plotting import THEORY_STYLE, figure, save_figure

    rows = [("theta_o", r"$\Theta_{o}$ (off-diag)"), ("lambda_max", r"$\lambda_{max}$"),
            ("lambda_bulk", r"$\lambda_{bulk}$"), ("kappa", r"$\kappa$"), ("py_rms", r"$|P(\Theta)Y|$ (rms)")]
    fig, axes = figure(len(rows), 3, width=3.3, height=2.2)
    for c, ((phase, wv), r) in enumerate(runs):
        for i, (key, lab) in enumerate(rows):
            ax = axes[i, c]
            ax.loglog(r.depth, np.abs(r.measured[key]), "o", ms=3, label="computed")
            th = np.where(r.theory[key] > 0, r.theory[key], np.nan)  # asymptotes are positive
            if np.any(np.isfinite(th)):
                ax.loglog(r.depth, th, "-", **THEORY_STYLE, label="large-depth asymptote")
            ax.set_ylabel(lab)
            if i == 0:
                sp = r.signal.scalar()
                ax.set_title(f"{phase}: $\\sigma_w^2$={wv:.4g}, $\\chi_1$={sp['chi_1']:.4f}", fontsize=9)
                ax.legend(fontsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel("depth $l$")
    return save_figure(fig, path)


def _fig_spectrum(quick: bool, log=None, progress: bool = False):
    runs, ds = _spectrum_data(quick, log, progress)
    return ds, lambda path: _plot_spectrum(runs, path)


def _phase_data(cfg: PhaseConfig, log, progress: bool = False):
    data = datasets.load(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=0)
    a = ntk_phase_diagram(data, cfg.weight_vars, cfg.depths, cfg.bias_var, cfg.times, cfg.n_draws,
                          cfg.activation, log=log, progress=progress)
    b = sgd_phase_diagram(data, cfg.sgd_weight_vars, cfg.sgd_depths, cfg.bias_var, cfg.activation, cfg.width,
                          cfg.steps, cfg.batch_size, cfg.lr_factor, cfg.seeds, log=log, progress=progress)
    return data, a, b


def _merge_ab(a: xr.Dataset, b: xr.Dataset) -> xr.Dataset:
    """(a) NTK and (b) SGD phase diagrams in one Dataset (prefixed variables, separate grids)."""
    ra = a.rename({k: f"ntk_{k}" for k in a.data_vars})
    names = {k: f"sgd_{k}" for k in b.data_vars}
    names.update({"weight_var": "sgd_weight_var", "depth": "sgd_depth"})
    rb = b.rename(names)
    ds = xr.merge([ra, rb], combine_attrs="drop")
    ds.attrs.update({f"ntk_{k}": v for k, v in a.attrs.items()})
    ds.attrs.update({f"sgd_{k}": v for k, v in b.attrs.items()})
    return ds


def _plot_phase(cfg: PhaseConfig, data, a: xr.Dataset, b: xr.Dataset, path: Path) -> Path:
    from ..plotting import figure, save_figure

    lines = _depth_lines(cfg.activation, cfg.weight_vars, cfg.bias_var)
    nt = len(cfg.times)
    fig, axes = figure(2, nt + 1, width=3.3, height=2.9, layout="constrained")
    im = None
    for k, t in enumerate(cfg.times):
        tl = "∞" if math.isinf(t) else f"{t:g}"
        im = _heat(axes[0, k], a.train_accuracy.isel(time=k), cfg.weight_vars, cfg.depths,
                   f"(a) NTK-GD train acc, t={tl}", lines)
        _heat(axes[1, k], a.test_accuracy.isel(time=k), cfg.weight_vars, cfg.depths,
              f"(a) NTK-GD test acc, t={tl}", lines)
    _heat(axes[0, nt], b.train_accuracy, cfg.sgd_weight_vars, cfg.sgd_depths,
          f"(b) SGD width {cfg.width}, {cfg.steps} steps: train", lines)
    _heat(axes[1, nt], b.test_accuracy, cfg.sgd_weight_vars, cfg.sgd_depths,
          f"(b) SGD width {cfg.width}, {cfg.steps} steps: test", lines)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.colorbar(im, ax=axes, shrink=0.6, label="accuracy")
    fig.suptitle(f"erf FCN, $\\sigma_b^2$={cfg.bias_var}, {data.name} ({cfg.n_train} train / {cfg.n_test} test); "
                 "NNGP initial outputs in (a)", fontsize=9)
    return save_figure(fig, path, tight=False, bbox_inches="tight")


def _fig_phase(quick: bool, log=None, progress: bool = False, cfg: PhaseConfig | None = None):
    cfg = cfg or (PhaseConfig().quick() if quick else PhaseConfig())
    data, a, b = _phase_data(cfg, log, progress)
    ds = _merge_ab(a, b)
    ds.attrs.update(problem_attrs(cfg, paper=PAPER, figure="phase", quick=int(quick)))
    return ds, lambda path: _plot_phase(cfg, data, a, b, path)


#: sizes of the CNN comparison (images of 4x4 pixels, d = 16)
CNN_FULL = dict(n_train=48, n_test=32, max_depth=300, n_depths=18,
                sgd=dict(n_train=256, n_test=300, weight_vars=(1.0, 1.4, 1.75, 2.2, 3.0), depths=(2, 6, 16),
                         channels=32, steps=600))
CNN_QUICK = dict(n_train=24, n_test=16, max_depth=60, n_depths=8,
                 sgd=dict(n_train=64, n_test=64, weight_vars=(1.0, 3.0), depths=(2, 8), channels=8, steps=100))


def _pooled_digits(n_train, n_test, seed=1):
    """Digits average-pooled 2x2 to 4x4x1 images (d = 16 pixels), normalised like the FCN data."""
    raw = datasets.digits(n_train=n_train, n_test=n_test, seed=seed)
    pool = lambda X: X.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    raw = replace(raw, x_train=pool(raw.x_train), x_test=pool(raw.x_test), image_shape=(4, 4, 1))
    return datasets.preprocess(raw)


def cnn_comparison(quick: bool, log=None, progress: bool = False) -> xr.Dataset:
    """kappa / |P(Theta)Y| / lambda_min against depth for FCN, CNN-F and CNN-P (circular 3x3, d = 16)."""
    from ..kernels.spectrum import depth_sweep, eig_stats, mean_predictor

    size = CNN_QUICK if quick else CNN_FULL
    data = _pooled_digits(size["n_train"], size["n_test"])
    img = data.images()
    depths = np.unique(np.geomspace(1, size["max_depth"], size["n_depths"]).astype(int))
    m = data.n_train
    archs = {"fcn": dict(architecture="fcn"),
             "cnn_flatten": dict(architecture="cnn", readout="flatten", filter_shape=(3, 3), padding="circular"),
             "cnn_gap": dict(architecture="cnn", readout="gap", filter_shape=(3, 3), padding="circular")}
    points = {"ordered": 1.25, "chaotic": 2.0}
    stats = {k: np.full((len(points), len(archs), len(depths)), np.nan) for k in ("kappa", "lambda_min", "py_rms")}
    bar = progress_bar(len(points) * len(archs), "xiao2020 kernels FCN/CNN", progress)
    for ip, (pname, wv) in enumerate(points.items()):
        for ia, (aname, kw) in enumerate(archs.items()):
            bar.set_postfix_str(f"{pname} {aname}")
            x = np.concatenate([data.x_train, data.x_test]) if aname == "fcn" else \
                np.concatenate([img.x_train, img.x_test])
            kap, py, lmin = [], [], []
            for l, K, T in depth_sweep(x, depths, activation="erf", weight_var=wv, bias_var=0.05, **kw):
                es = eig_stats(T[:m, :m])
                p, _ = mean_predictor(T[:m, :m], T[m:, :m], data.y_train)
                kap.append(es["kappa"])
                lmin.append(es["lambda_min"])
                py.append(float(np.sqrt(np.mean(p ** 2))))
            for key, vals in (("kappa", kap), ("lambda_min", lmin), ("py_rms", py)):
                stats[key][ip, ia, : len(vals)] = vals
            bar.update()
            _log(log, f"  cnn comparison {pname} {aname} done")
    bar.close()
    dims = ("phase", "architecture", "depth")
    return xr.Dataset({k: (dims, v) for k, v in stats.items()},
                      coords={"phase": list(points), "weight_var": ("phase", list(points.values())),
                              "architecture": list(archs), "depth": depths},
                      attrs={"bias_var": 0.05, "d": 16, "m": m, "data": "digits pooled to 4x4"})


def _sgd_by_architecture(runs: dict[str, xr.Dataset]) -> xr.Dataset:
    """Finite-width SGD phase diagrams of several architectures along ``sgd_architecture`` (variables
    ``sgd_<name>`` over ``sgd_architecture`` x ``sgd_weight_var`` x ``sgd_depth``)."""
    ds = xr.concat([r.drop_attrs() if hasattr(r, "drop_attrs") else r for r in runs.values()],
                   dim=xr.DataArray(list(runs), dims="sgd_architecture"), combine_attrs="drop")
    ds = ds.rename({k: f"sgd_{k}" for k in ds.data_vars} | {"weight_var": "sgd_weight_var", "depth": "sgd_depth"})
    first = next(iter(runs.values()))
    ds.attrs.update({f"sgd_{k}": v for k, v in first.attrs.items() if k not in ("architecture", "width")})
    return ds


def cnn_sgd_comparison(quick: bool, log=None, archs=("fcn", "flatten", "gap"),
                       progress: bool = False) -> dict[str, xr.Dataset]:
    """Finite-width SGD phase diagrams on the pooled 4x4 digits (same data, grid and budget) for the FCN
    (``"fcn"``, on the flattened images) and the circular 3x3 CNN with Flatten / GAP readout."""
    sz = (CNN_QUICK if quick else CNN_FULL)["sgd"]
    data = _pooled_digits(sz["n_train"], sz["n_test"], seed=2)
    out = {}
    for a in archs:
        _log(log, f"  SGD {'FCN' if a == 'fcn' else 'CNN-' + a}")
        kw = dict(architecture="fcn") if a == "fcn" else dict(
            architecture="cnn", readout=a, filter_shape=(3, 3), padding="circular")
        out[a] = sgd_phase_diagram(data if a == "fcn" else data.images(), sz["weight_vars"], sz["depths"],
                                   bias_var=0.05, width=sz["channels"] if a != "fcn" else 4 * sz["channels"],
                                   steps=sz["steps"], batch_size=32, log=log, progress=progress, **kw)
    return out


def _fig_cnn(quick: bool, log=None, progress: bool = False):
    ds = cnn_comparison(quick, log, progress)
    # finite-width CNN variant of the phase diagram (b): SGD on the pooled digits, Flatten vs GAP
    sz = (CNN_QUICK if quick else CNN_FULL)["sgd"]
    sgd = cnn_sgd_comparison(quick, log, archs=("flatten", "gap"), progress=progress)
    out = xr.merge([ds, _sgd_by_architecture(sgd)], combine_attrs="drop_conflicts")
    out.attrs.update(problem_attrs({"figure": "cnn", "quick": quick, "sgd": sz}, paper=PAPER))
    return out, lambda path: _plot_cnn(ds, sgd, sz, path)


def _plot_cnn(ds: xr.Dataset, sgd: dict, sz: dict, path: Path) -> Path:
    from ..kernels.signal import signal_propagation
    from ..plotting import figure, save_figure

    fig, axes = figure(2, 3, width=3.6, height=3.0, layout="constrained")
    ax = axes[0]
    lines = _depth_lines("erf", sz["weight_vars"], 0.05)
    for k, ro in enumerate(("flatten", "gap")):
        im = _heat(axes[1, k], sgd[ro].test_accuracy, sz["weight_vars"], sz["depths"],
                   f"SGD CNN-{'F' if ro == 'flatten' else 'GAP'} ({sz['channels']} ch, {sz['steps']} steps): test",
                   lines)
    imd = _heat(axes[1, 2], sgd["gap"].test_accuracy - sgd["flatten"].test_accuracy, sz["weight_vars"],
                sz["depths"], "test acc: GAP minus Flatten", lines, vmax=0.5, vmin=-0.5, cmap="RdBu")
    fig.colorbar(imd, ax=axes[1, 2], shrink=0.8)
    fig.colorbar(im, ax=axes[1, :2], shrink=0.8, label="accuracy")
    labels = {"fcn": "FCN", "cnn_flatten": "CNN-Flatten", "cnn_gap": "CNN-GAP"}
    styles = {"fcn": "o-", "cnn_flatten": "x--", "cnn_gap": "s-"}
    for a in labels:
        sel = ds.sel(architecture=a)
        ax[0].loglog(ds.depth, sel.kappa.sel(phase="ordered"), styles[a], ms=4, label=labels[a])
        ax[1].loglog(ds.depth, sel.py_rms.sel(phase="chaotic"), styles[a], ms=4, label=labels[a])
        ax[2].loglog(ds.depth, sel.lambda_min.sel(phase="chaotic"), styles[a], ms=4, label=labels[a])
    sp_o = signal_propagation("erf", 1.25, 0.05).scalar()
    sp_c = signal_propagation("erf", 2.0, 0.05).scalar()
    ax[0].set_title(f"ordered ($\\sigma_w^2$=1.25, $\\xi_1$={sp_o['xi_1']:.1f}): $\\kappa$", fontsize=9)
    ax[1].set_title(f"chaotic ($\\sigma_w^2$=2, $\\xi_*$={sp_c['xi_star']:.1f}): $|P(\\Theta)Y|$", fontsize=9)
    ax[2].set_title("chaotic: $\\lambda_{min}$ (GAP smaller by ~d=16)", fontsize=9)
    for a_ in ax:
        a_.set_xlabel("depth $l$")
        a_.legend(fontsize=7)
    return save_figure(fig, path, tight=False, bbox_inches="tight")


@dataclass(frozen=True)
class Figure(runner.Figure):
    """A figure of Xiao, Pennington & Schoenholz 2020 on offline data: ``make(quick, log=, progress=)`` computes
    its Dataset and returns it with the plot (a function of the PNG path)."""

    make: Callable = None


FIGURES: dict[str, Figure] = {
    "signal": Figure("signal", "critical line and depth scales (erf, tanh)", "signal", (), _fig_signal),
    "spectrum": Figure("spectrum", "NTK spectra vs depth beside the large-depth asymptotes (ordered / critical / "
                       "chaotic)", "spectrum", (), _fig_spectrum),
    "phase": Figure("phase", "phase diagrams over (sigma_w^2, depth): infinite-width NTK-GD (a) and finite-width "
                    "SGD (b)", "phase", (), _fig_phase),
    "cnn": Figure("cnn", "FCN vs CNN-Flatten vs CNN-GAP: kappa and the mean predictor against depth", "cnn", (),
                  _fig_cnn),
}


def run_figure(name: str, out_dir: str | Path = "results/xiao2020", quick: bool = False, log=None,
               progress: bool = False):
    """Compute and write figure ``name`` (``signal``, ``spectrum``, ``phase``, ``cnn``) as
    ``<out_dir>/xiao2020_<name>.png`` and ``.nc``; returns the two paths. ``progress``: tqdm bars."""
    name = canonical_figure(name, FIGURES)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds, plot = FIGURES[name].make(quick, log=log, progress=progress)
    return runner.write_figure("xiao2020", name, out, ds, plot)


# ============================================================================================
# claims
# ============================================================================================
def _first_depth(depths, mask):
    """Smallest depth where ``mask`` holds and keeps holding at every larger depth (nan if none)."""
    depths = np.asarray(depths)
    mask = np.asarray(mask, bool)
    for j in range(len(depths)):
        if np.all(mask[j:]):
            return float(depths[j])
    return float("nan")


def _crossing(depths, values, threshold, above: bool):
    """First depth at which ``values`` crosses ``threshold`` (log-interpolated; nan if never)."""
    d = np.asarray(depths, float)
    v = np.asarray(values, float)
    hit = v > threshold if above else v < threshold
    idx = np.argmax(hit)
    if not hit[idx]:
        return float("nan")
    if idx == 0:
        return float(d[0])
    lv0, lv1 = np.log(abs(v[idx - 1])), np.log(abs(v[idx]))
    f = (np.log(threshold) - lv0) / (lv1 - lv0) if lv1 != lv0 else 0.0
    return float(np.exp(np.log(d[idx - 1]) + f * (np.log(d[idx]) - np.log(d[idx - 1]))))


def claims(quick: bool = False, out_dir: str | Path = "results/xiao2020", log=print,
           progress: bool = False) -> list[dict]:
    r"""The claims of Xiao et al. 2020's abstract as numbers on our data, theory beside measurement.

    (a) chaotic phase: depth where networks still train to ~100% but test accuracy falls to chance,
        against 8 xi_*;  (b) ordered phase: depth where training fails within the step budget, against
        xi_1, and its growth with ln(budget);  (c) near the critical line: accuracy at the largest depth;
    (d) CNN-Flatten vs FCN (same boundaries) and CNN-GAP (boundaries move by ~xi ln d).

    One function per claim makes its rows (:func:`_claim_chaotic`, :func:`_claim_ordered`,
    :func:`_claim_critical`, :func:`_claim_cnn_kernel`, :func:`_claim_cnn_finite_width`) from the phase
    diagrams of :func:`_claims_config` and the CNN comparisons; :func:`_save_claims` writes them.
    """
    from ..kernels.signal import signal_propagation

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg, crit = _claims_config(quick)
    _log(log, f"claims: phase diagrams ({'quick' if quick else 'full'} size) ...")
    data, a, b = _phase_data(cfg, log, progress)
    chance = 1.0 / data.n_classes
    sp_a = signal_propagation(cfg.activation, np.asarray(cfg.weight_vars), cfg.bias_var)
    sp_b = signal_propagation(cfg.activation, np.asarray(cfg.sgd_weight_vars), cfg.bias_var)
    tinf = int(np.argmax(np.isinf(a.time.values))) if np.any(np.isinf(a.time.values)) else len(a.time) - 1
    rows = _claim_chaotic(cfg, crit, a.isel(time=tinf), b, sp_a, sp_b, chance)
    rows += _claim_ordered(cfg, crit, a, b, sp_a, sp_b)
    rows += _claim_critical(cfg, crit, a, b, tinf, chance)
    _log(log, "claims: CNN comparison ...")
    c = cnn_comparison(quick, log, progress)
    rows += _claim_cnn_kernel(c)
    _log(log, "claims: finite-width FCN / CNN-F / CNN-GAP ...")
    fw = cnn_sgd_comparison(quick, log, progress=progress)
    rows += _claim_cnn_finite_width(fw)
    _print_table(rows, log)
    _save_claims(rows, cfg, crit, quick, out, a, b, c, fw)
    return rows


def _claims_config(quick: bool) -> tuple[PhaseConfig, float]:
    """The phase-diagram grids of :func:`claims`, widened to bracket the critical point (ordered, critical,
    chaotic) and to hold the times 64 and 4096, with the critical weight variance."""
    from ..kernels.signal import critical_line

    cfg = PhaseConfig().quick() if quick else PhaseConfig()
    crit = float(critical_line(cfg.activation, [cfg.bias_var]).weight_var[0])
    cfg = replace(cfg, weight_vars=tuple(sorted(set(cfg.weight_vars) | {round(crit, 4)})),
                  sgd_weight_vars=tuple(sorted(set(cfg.sgd_weight_vars) | {round(crit, 4)})),
                  times=tuple(sorted(set(cfg.times) | {64.0, 4096.0})))
    return cfg, crit


def _claim_chaotic(cfg: PhaseConfig, crit: float, a_tinf: xr.Dataset, b: xr.Dataset, sp_a, sp_b,
                   chance: float) -> list[dict]:
    """Claim (a), chaotic phase: train accuracy ~1 while test accuracy falls to chance, from depth ~8 xi_*."""
    rows = []
    for src, acc, sp, wvs, depths in (
            ("NTK-GD (t=inf, NNGP init)", a_tinf, sp_a, cfg.weight_vars, cfg.depths),
            (f"SGD width {cfg.width}", b, sp_b, cfg.sgd_weight_vars, cfg.sgd_depths)):
        for i, wv in enumerate(wvs):
            if sp.phase[i] != "chaotic" or abs(wv - crit) < 1e-3:
                continue
            tr = acc.train_accuracy.values[i]
            te = acc.test_accuracy.values[i]
            d_chance = _first_depth(depths, te <= chance + 0.05)
            tr_there = float(tr[list(depths).index(d_chance)]) if np.isfinite(d_chance) else float("nan")
            rows.append(dict(claim="(a) chaotic: memorise, not generalise", source=src, weight_var=wv,
                             theory=f"8 xi_* = {8 * float(sp.xi_star[i]):.1f}",
                             measured=f"test at chance from depth {d_chance:g} (train acc there {tr_there:.2f})"))
    return rows


def _claim_ordered(cfg: PhaseConfig, crit: float, a: xr.Dataset, b: xr.Dataset, sp_a, sp_b) -> list[dict]:
    """Claim (b), ordered phase: training fails beyond a depth ~ xi_1 ln T (T the training time or steps)."""
    rows = []
    times = a.time.values
    for i, wv in enumerate(cfg.weight_vars):
        if sp_a.phase[i] != "ordered" or float(sp_a.xi_1[i]) > max(cfg.depths) / 2:
            continue
        fails = []
        for k, t in enumerate(times):
            if math.isinf(t):
                continue
            d_fail = _first_depth(cfg.depths, a.train_accuracy.values[k, i] < 0.5)
            fails.append((t, d_fail))
        xi1 = float(sp_a.xi_1[i])
        meas = "; ".join(f"t={t:g}: fails from depth {d:g} ({d / xi1:.1f} xi_1)" for t, d in fails)
        pred = "; ".join(f"xi_1 ln t = {xi1 * math.log(t):.1f}" for t, _ in fails)
        rows.append(dict(claim="(b) ordered: untrainable beyond ~xi_1 ln T", source="NTK-GD", weight_var=wv,
                         theory=f"xi_1 = {xi1:.2f}; {pred}", measured=meas))
    for i, wv in enumerate(cfg.sgd_weight_vars):
        if sp_b.phase[i] != "ordered" or abs(wv - crit) < 1e-3:
            continue
        xi1 = float(sp_b.xi_1[i])
        d_fail = _first_depth(cfg.sgd_depths, b.train_accuracy.values[i] < 0.5)
        rows.append(dict(claim="(b) ordered: untrainable beyond ~xi_1 ln T", source=f"SGD {cfg.steps} steps",
                         weight_var=wv, theory=f"xi_1 ln T = {xi1 * math.log(cfg.steps):.1f}",
                         measured=f"train acc < 0.5 from depth {d_fail:g}"))
    return rows


def _claim_critical(cfg: PhaseConfig, crit: float, a: xr.Dataset, b: xr.Dataset, tinf: int,
                    chance: float) -> list[dict]:
    """Claim (c), the critical line: trainable and generalising at the largest depth."""
    ic = int(np.argmin(np.abs(np.asarray(cfg.weight_vars) - crit)))
    jc = int(np.argmin(np.abs(np.asarray(cfg.sgd_weight_vars) - crit)))
    return [
        dict(claim="(c) critical: trains and generalises deep", source="NTK-GD (t=inf)",
             weight_var=cfg.weight_vars[ic], theory="no exponential depth scale (xi = inf)",
             measured=f"depth {cfg.depths[-1]}: train {float(a.train_accuracy.values[tinf, ic, -1]):.2f}, "
                      f"test {float(a.test_accuracy.values[tinf, ic, -1]):.2f} (chance {chance:.2f})"),
        dict(claim="(c) critical: trains and generalises deep", source=f"SGD width {cfg.width}",
             weight_var=cfg.sgd_weight_vars[jc], theory="no exponential depth scale",
             measured=f"depth {cfg.sgd_depths[-1]}: train {float(b.train_accuracy.values[jc, -1]):.2f}, "
                      f"test {float(b.test_accuracy.values[jc, -1]):.2f}"),
    ]


def _claim_cnn_kernel(c: xr.Dataset) -> list[dict]:
    """Claim (d) at the kernel level: CNN-Flatten's trainability and generalisation depths equal the FCN's;
    CNN-GAP's move by ~xi ln d (ordered: kappa > 1e4 earlier; chaotic: |P(Theta) Y| < 1e-3 later)."""
    from ..kernels.signal import signal_propagation

    sp_o = signal_propagation("erf", 1.25, 0.05).scalar()
    sp_c = signal_propagation("erf", 2.0, 0.05).scalar()
    kthr = 1e4
    pthr = 1e-3
    dk = {a_: _crossing(c.depth, c.kappa.sel(phase="ordered", architecture=a_), kthr, True)
          for a_ in ("fcn", "cnn_flatten", "cnn_gap")}
    dp = {a_: _crossing(c.depth, c.py_rms.sel(phase="chaotic", architecture=a_), pthr, False)
          for a_ in ("fcn", "cnn_flatten", "cnn_gap")}
    ln_d = math.log(16)
    return [
        dict(claim="(d) CNN-F = FCN; GAP trains worse (ordered)", source="NTK kappa > 1e4",
             weight_var=1.25,
             theory=f"F = FCN; GAP earlier by ~xi_1 ln d = {sp_o['xi_1'] * ln_d:.1f}",
             measured=f"FCN {dk['fcn']:.1f}, CNN-F {dk['cnn_flatten']:.1f}, CNN-GAP {dk['cnn_gap']:.1f} "
                      f"(shift {dk['fcn'] - dk['cnn_gap']:.1f})"),
        dict(claim="(d) CNN-F = FCN; GAP generalises longer (chaotic)", source="NTK |P(Theta)Y| < 1e-3",
             weight_var=2.0,
             theory=f"F = FCN; GAP later by xi_* ln(sqrt d .. d) = {sp_c['xi_star'] * ln_d / 2:.1f}..{sp_c['xi_star'] * ln_d:.1f}",
             measured=f"FCN {dp['fcn']:.1f}, CNN-F {dp['cnn_flatten']:.1f}, CNN-GAP {dp['cnn_gap']:.1f} "
                      f"(shift {dp['cnn_gap'] - dp['fcn']:.1f})"),
    ]


def _claim_cnn_finite_width(fw: dict[str, xr.Dataset]) -> list[dict]:
    """Claim (d) at finite width: SGD on the same pooled digits, same grid and step budget; CNN-F's test
    accuracy equals the FCN's (same kernel diagonal), CNN-GAP's differs."""
    from ..kernels.signal import signal_propagation

    rows = []
    for wv in fw["fcn"].weight_var.values:
        ph = signal_propagation("erf", float(wv), 0.05).scalar()["phase"]
        te = {a_: fw[a_].test_accuracy.sel(weight_var=wv).values for a_ in fw}
        tr = {a_: fw[a_].train_accuracy.sel(weight_var=wv).values for a_ in fw}
        dd = fw["fcn"].depth.values
        meas = "; ".join(f"depth {d}: test/train FCN {te['fcn'][j]:.2f}/{tr['fcn'][j]:.2f}, "
                         f"CNN-F {te['flatten'][j]:.2f}/{tr['flatten'][j]:.2f}, "
                         f"CNN-GAP {te['gap'][j]:.2f}/{tr['gap'][j]:.2f}" for j, d in enumerate(dd))
        gap_f = float(np.nanmax(np.abs(te["flatten"] - te["fcn"])))
        rows.append(dict(claim="(d) finite width: CNN-F = FCN, GAP differs", source=f"SGD ({ph})",
                         weight_var=float(wv), theory="CNN-F test acc = FCN's (same kernel diagonal)",
                         measured=f"max |CNN-F - FCN| test acc {gap_f:.2f}; {meas}"))
    return rows


def _save_claims(rows: list[dict], cfg: PhaseConfig, crit: float, quick: bool, out: Path, a: xr.Dataset,
                 b: xr.Dataset, c: xr.Dataset, fw: dict[str, xr.Dataset]) -> None:
    """Write the claims table, the phase diagrams and the CNN comparisons of :func:`claims` to ``out``."""
    ds = xr.Dataset({k: ("row", [r[k] for r in rows]) for k in ("claim", "source", "theory", "measured")} |
                    {"weight_var": ("row", np.asarray([r["weight_var"] for r in rows], float))},
                    attrs=problem_attrs(cfg, paper=PAPER, quick=int(quick), critical_weight_var=crit))
    atomic_write_netcdf(ds, output_paths("xiao2020", "claims", out)[1])
    atomic_write_netcdf(_merge_ab(a, b), output_paths("xiao2020", "claims_phase", out)[1])
    c = xr.merge([c, _sgd_by_architecture(fw)], combine_attrs="drop_conflicts")
    atomic_write_netcdf(c, output_paths("xiao2020", "claims_cnn", out)[1])


def _print_table(rows, log):
    if log is None:
        return
    cols = ("claim", "source", "weight_var", "theory", "measured")
    widths = {k: max(len(k), *(len(f"{r[k]:.4g}" if k == "weight_var" else str(r[k])) for r in rows)) for k in cols}
    fmt = lambda r: " | ".join((f"{r[k]:.4g}" if k == "weight_var" else str(r[k])).ljust(widths[k]) for k in cols)
    log(" | ".join(k.ljust(widths[k]) for k in cols))
    log("-+-".join("-" * widths[k] for k in cols))
    for r in rows:
        log(fmt(r))
