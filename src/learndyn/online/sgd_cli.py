"""``learndyn simulate``, ``learndyn compare`` and ``learndyn reproduce goldt2019`` (issue 3)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..cli_common import OptClaims, OptFigure, OptProgress, OptQuick, run_reproduce
from .cli import (OptActivation, OptInit, OptInitScale, OptK, OptLr, OptLr2, OptM, OptN, OptSigma, OptTrain2,
                  OptWeightDecay, problem_from_options)

__all__ = ["register"]


def _alphas(alpha_max: float, n_alphas: int) -> np.ndarray:
    from .ode import default_alphas

    if not (alpha_max > 0):
        raise ValueError(f"alpha_max: must be > 0, got {alpha_max}")
    if n_alphas < 1:
        raise ValueError(f"n_alphas: must be >= 1, got {n_alphas}")
    return default_alphas(alpha_max, n=n_alphas, alpha_min=min(0.1, alpha_max / 10))


def _plot_eg(alpha, curves, path: Path, title: str) -> Path:
    """eps_g(alpha): SGD seed mean +- s.e. as markers, ODE as a line (curves: list of (label, mean, sem|None))."""
    from ..plotting import SIM_STYLE, THEORY_STYLE, figure, save_figure

    fig, ax = figure(1, 1, width=5.0, height=3.6)
    pos = alpha > 0
    for label, mean, sem in curves:
        if sem is None:
            ax.plot(alpha[pos], mean[pos], color="k", label=label, **THEORY_STYLE)
        else:
            ax.errorbar(alpha[pos], mean[pos], yerr=sem[pos], label=label, **SIM_STYLE)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\alpha$ = steps / N")
    ax.set_ylabel(r"$\epsilon_g$")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


def simulate_command(
    M: OptM = 2,
    K: OptK = 2,
    activation: OptActivation = "erf",
    lr: OptLr = 0.5,
    lr2: OptLr2 = None,
    sigma: OptSigma = 0.0,
    train_second_layer: OptTrain2 = False,
    weight_decay: OptWeightDecay = 0.0,
    N: OptN = 500,
    seeds: int = typer.Option(1, help="number of seeds (0 .. seeds-1), simulated together"),
    alpha_max: float = typer.Option(100.0, help="final time alpha = steps / N"),
    n_alphas: int = typer.Option(60, help="number of log-spaced recording times"),
    init: OptInit = "large",
    init_scale: OptInitScale = 1e-3,
    batch_size: int = typer.Option(1, help="mini-batch size (1 = the ODE's setting)"),
    test_set_size: Optional[int] = typer.Option(None, help="held-out inputs for eps_g (default: 0 for erf/relu/"
                                                           "linear, 10000 otherwise)"),
    out: Path = typer.Option(Path("results/simulate"), help="output prefix: writes OUT.nc and OUT.png"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Run finite-N online SGD (many seeds at once) and write Q, R, v, eps_g (netCDF) and eps_g(alpha) (PNG).

    Ctrl-C stops the run and leaves the partial result in OUT.nc.
    """
    from .sgd import simulate

    try:
        problem = problem_from_options(M, K, activation, lr, lr2, sigma, train_second_layer, weight_decay)
        sim = simulate(problem, N, seeds=seeds, alphas=_alphas(alpha_max, n_alphas), init=init,
                       init_scale=init_scale, batch_size=batch_size, test_set_size=test_set_size, progress=progress,
                       save_path=out.with_suffix(".nc"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    curves = [(f"SGD, N={N}, {seeds} seeds", sim.eg_mean, sim.eg_sem)]
    png = _plot_eg(sim.alpha, curves, out.with_suffix(".png"),
                   f"online SGD: {problem.activation_name}, M={M}, K={K}, eta={lr:g}, sigma={sigma:g}")
    typer.echo(f"status: {sim.status} ({sim.message}); {sim.wall_time:.1f}s")
    if len(sim.alpha):
        if seeds > 1:
            typer.echo(f"eps_g(alpha={sim.alpha[-1]:g}) = {sim.eg_mean[-1]:.6g} +- {sim.eg_sem[-1]:.2g} "
                       "(seed mean +- s.e.)")
        else:  # one seed has no standard error (it would print as nan)
            typer.echo(f"eps_g(alpha={sim.alpha[-1]:g}) = {sim.eg_mean[-1]:.6g} (one seed; --seeds S for a "
                       "seed mean +- s.e.)")
    if sim.save_error:
        typer.echo(f"warning: {sim.save_error}", err=True)
    typer.echo(f"wrote {png}" if sim.save_error else f"wrote {out.with_suffix('.nc')} and {png}")
    if sim.status == "interrupted":
        raise typer.Exit(code=130)
    if not sim.success:
        raise typer.Exit(code=2)
    if sim.save_error:
        raise typer.Exit(code=1)


def compare_command(
    M: OptM = 2,
    K: OptK = 2,
    activation: OptActivation = "erf",
    lr: OptLr = 0.5,
    lr2: OptLr2 = None,
    sigma: OptSigma = 0.0,
    train_second_layer: OptTrain2 = False,
    weight_decay: OptWeightDecay = 0.0,
    N: OptN = 500,
    seeds: int = typer.Option(8, help="number of seeds"),
    alpha_max: float = typer.Option(20.0, help="final time alpha"),
    n_alphas: int = typer.Option(20, help="number of log-spaced comparison times"),
    init: OptInit = "large",
    init_scale: OptInitScale = 1e-3,
    out: Path = typer.Option(Path("results/compare"), help="output prefix: writes OUT.nc and OUT.png"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar"),
) -> None:
    """Run SGD and the ODE from each seed's initial overlaps; print the max/mean relative deviation of eps_g."""
    from ..results import check_output_path
    from .cli import save_or_report
    from .compare import compare

    try:
        problem = problem_from_options(M, K, activation, lr, lr2, sigma, train_second_layer, weight_decay)
        check_output_path(out.with_suffix(".nc"), name="--out")
        c = compare(problem, N=N, seeds=seeds, alphas=_alphas(alpha_max, n_alphas), init=init,
                    init_scale=init_scale, progress=progress)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    nc = save_or_report(c, out.with_suffix(".nc"))
    png = _plot_eg(c.alpha, [(f"SGD, N={N}, {seeds} seeds", c.sgd_mean, c.sgd_sem), ("ODE", c.ode_mean, None)],
                   out.with_suffix(".png"), c.summary().splitlines()[0])
    typer.echo(c.summary())
    typer.echo(f"wrote {nc} and {png}" if nc else f"wrote {png}")
    if nc is None:
        raise typer.Exit(code=1)


def goldt2019_command(
    figure: OptFigure = [],
    claims: OptClaims = False,
    quick: OptQuick = False,
    out: Path = typer.Option(Path("results/goldt2019"), help="output directory"),
    progress: OptProgress = True,
    N: Optional[int] = typer.Option(None, "--N", help="override the recipes' input dimension"),
    seeds: Optional[int] = typer.Option(None, help="override the recipes' number of seeds"),
) -> None:
    """Goldt et al. (NeurIPS 2019): fig1 .. fig4 (ODE lines, SGD markers; PNG + netCDF) and the claims table."""
    from ..experiments import goldt2019

    run_reproduce("goldt2019", goldt2019, figure, claims, quick, out, progress,
                  describe=lambda name: goldt2019.FIGURES[name].title, N=N, seeds=seeds)
    sys.stdout.flush()


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
    app.command("compare")(compare_command)
    reproduce.command("goldt2019")(goldt2019_command)
