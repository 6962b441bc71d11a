"""``learndyn signal`` and ``learndyn kernels evaluate``: the mean-field signal propagation of a deep network
(Schoenholz et al. 2017; Xiao, Pennington & Schoenholz 2020, Sec. 2), from
:func:`learndyn.kernels.signal_propagation`, and NNGP / NTK kernel regression on a real data set beside
finite-width SGD of the same network (Lee et al. 2019; Xiao et al. 2020, Sec. 5), from
:func:`learndyn.kernels.evaluate`."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from .common import save_or_report

__all__ = ["register", "signal_command", "evaluate_command", "plot_evaluation", "kernels_app", "Arch", "Data"]

#: The ``learndyn kernels`` group (``evaluate``).
kernels_app = typer.Typer(help="NNGP / NTK kernels on real data sets (Xiao, Pennington & Schoenholz 2020).",
                          no_args_is_help=True)


def signal_command(
    activation: str = typer.Option("erf", help="erf (= erf(x)), relu, linear, tanh, sigmoid, leaky_relu, "
                                                     "leaky_relu(slope) or abrelu(a, b)"),
    weight_var: float = typer.Option(1.0, help="sigma_w^2"),
    bias_var: float = typer.Option(0.0, help="sigma_b^2"),
) -> None:
    """Print q*, c*, chi_1, chi_c*, xi_1, xi_c, xi_*, p* and the phase (Schoenholz et al. 2017; Xiao,
    Pennington & Schoenholz 2020, Sec. 2)."""
    from ..kernels import signal_propagation

    try:
        sp = signal_propagation(activation, weight_var, bias_var).scalar()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for k, v in sp.items():
        typer.echo(f"{k:10s} {v:.10g}" if isinstance(v, float) else f"{k:10s} {v}")


class Arch(str, Enum):
    """The architectures of ``learndyn kernels evaluate --arch``."""

    fcn = "fcn"
    cnn_gap = "cnn-gap"
    cnn = "cnn"


class Data(str, Enum):
    """The data sets of ``learndyn kernels evaluate --data`` (:mod:`learndyn.datasets`)."""

    fashion_mnist = "fashion_mnist"
    mnist5k = "mnist5k"
    digits = "digits"


def plot_evaluation(ev, path: Path) -> Path:
    """Plot a :class:`learndyn.kernels.Evaluation` to ``path`` (PNG): test accuracy of NNGP / NTK regression
    (against training time when several were asked) beside finite-width SGD."""
    import numpy as np

    from ..plotting import THEORY_STYLE, figure, save_figure

    fig, ax = figure(1, 1, width=4.6)
    finite = np.isfinite(ev.t)
    names, values = [], []
    for kind in ev.kinds:
        acc = np.asarray(ev.test_accuracy[kind], float)
        if finite.sum() > 1:
            ax.semilogx(ev.t[finite], acc[finite], **THEORY_STYLE, marker="o", ms=3, label=f"{kind.upper()} flow")
        if np.any(~finite):
            names.append(f"{kind.upper()}\n" + r"$t=\infty$")
            values.append(float(acc[~finite][0]))
    if ev.sgd:
        names.append(f"SGD\n{ev.params.get('sgd_steps')} steps")
        values.append(float(np.mean(ev.sgd["test_accuracy"])))
    if finite.sum() > 1:
        for v, n in zip(values, names):
            ax.axhline(v, ls="--", lw=1.0, color="0.4")
            ax.annotate(n.replace("\n", " "), (ev.t[finite][0], v), fontsize=7, va="bottom")
        ax.set_xlabel("training time t (steps of eta)")
        ax.legend(fontsize=8)
    else:
        ax.bar(range(len(values)), values, color=["C0", "C1", "C2"][:len(values)])
        ax.set_xticks(range(len(values)), names, fontsize=8)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    prob = ev.params.get("problem", {})
    arch = prob.get("architecture", "") if isinstance(prob, dict) else getattr(prob, "architecture", "")
    depth = prob.get("depth", "") if isinstance(prob, dict) else getattr(prob, "depth", "")
    ax.set_title(f"{ev.params.get('data')}: {ev.params.get('n_train')} train, {ev.params.get('n_test')} test, "
                 f"{arch} depth {depth}", fontsize=9)
    return save_figure(fig, path)


def evaluate_command(
    data: Data = typer.Option(Data.fashion_mnist, help="data set (Fashion-MNIST: Debian's dataset-fashion-mnist; "
                                                       "when absent MNIST-5k, then digits, with a note)"),
    n_train: int = typer.Option(20000, help="training images"),
    n_test: int = typer.Option(10000, help="test images"),
    arch: Arch = typer.Option(Arch.fcn, help="fcn (flat inputs), cnn-gap (3x3 circular convolutions, global "
                                             "average pooling) or cnn (flatten readout)"),
    depth: int = typer.Option(5, help="number of nonlinearities"),
    activation: str = typer.Option("relu", help="erf (= erf(x)), relu, tanh, ... (learndyn.activations)"),
    weight_var: float = typer.Option(2.0, help="sigma_w^2"),
    bias_var: float = typer.Option(0.01, help="sigma_b^2"),
    width: Optional[int] = typer.Option(None, help="SGD network: hidden units (fcn, default 512) or channels "
                                                   "(cnn, default 64)"),
    image_size: Optional[int] = typer.Option(None, help="downsample images to SIZE x SIZE (default: 16 for the "
                                                        "CNNs, none for fcn)"),
    reg: float = typer.Option(0.0, help="diagonal regularisation, relative to the mean diagonal of the kernel"),
    t: List[float] = typer.Option([math.inf], "--t", help="gradient-flow time(s) in steps of eta (repeatable; inf: "
                                                         "converged)"),
    kinds: str = typer.Option("nngp,ntk", help="kernels to solve: nngp, ntk or nngp,ntk"),
    sgd: bool = typer.Option(True, "--sgd/--no-sgd", help="train the finite network with SGD too"),
    steps: int = typer.Option(2000, help="SGD steps"),
    batch_size: int = typer.Option(128, help="SGD mini-batch"),
    lr_factor: float = typer.Option(0.5, help="SGD learning rate as a fraction of 2B / lambda_max(NTK of a batch)"),
    seeds: int = typer.Option(1, help="independent SGD initialisations"),
    seed: int = typer.Option(0, help="seed of the data subsets and of SGD"),
    fallback: bool = typer.Option(True, "--fallback/--no-fallback", help="use MNIST-5k, then digits, when the "
                                                                         "data set is not installed"),
    kernel_batch_size: Optional[int] = typer.Option(None, help="rows per kernel block (default: the kernel's own "
                                                               "plan, cache-sized blocks)"),
    store: Optional[Path] = typer.Option(None, help="out of core: compute the kernels block by block into Zarr stores "
                                                    "in this folder (resumable: rerun the same command after a kill) "
                                                    "and solve by conjugate gradients streaming them (t = inf only)"),
    scheduler: Optional[str] = typer.Option(None, help="with --store: a Dask scheduler (tcp://HOST:8786) whose "
                                                       "workers compute the kernel blocks"),
    workers: Optional[int] = typer.Option(None, help="with --store: a local Dask cluster of this many worker "
                                                     "processes computes the kernel blocks"),
    out: Path = typer.Option(Path("results/kernels_evaluate"), help="output prefix: writes OUT.nc and OUT.png"),
) -> None:
    """NNGP and NTK kernel regression on a real data set beside finite-width SGD of the same network: prints the
    test accuracy / MSE table and the time and memory of every stage, writes OUT.nc and OUT.png (Lee et al. 2019;
    Xiao, Pennington & Schoenholz 2020, Sec. 2 and 5)."""
    from .. import kernels
    from ..results import check_output_path

    try:
        check_output_path(out.with_suffix(".nc"), name="--out")
        options = dict(depth=depth, activation=activation, weight_var=weight_var, bias_var=bias_var)
        if arch is Arch.fcn:
            problem = kernels.Problem("fcn", **options, **({} if width is None else dict(width=width)))
        else:
            problem = kernels.Problem("cnn", **({} if width is None else dict(channels=width)),
                                      filter_shape=(3, 3), padding="circular",
                                      readout="gap" if arch is Arch.cnn_gap else "flatten", **options)
            image_size = 16 if image_size is None else image_size
        kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
        ev = kernels.evaluate(problem, data.value, n_train, n_test, reg=reg, t=t, kinds=kind_list, sgd=sgd,
                              steps=steps, batch_size=batch_size, lr_factor=lr_factor, seeds=seeds, seed=seed,
                              image_size=image_size, fallback=fallback, kernel_batch_size=kernel_batch_size,
                              store=store, scheduler=scheduler, n_workers=workers,
                              log=lambda line: typer.echo(line, err=True))
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from None
    for note in ev.notes:
        typer.echo(f"note: {note}")
    typer.echo(ev.table())
    typer.echo("")
    typer.echo(ev.stage_table())
    nc = save_or_report(ev, out.with_suffix(".nc"))
    png = plot_evaluation(ev, out.with_suffix(".png"))
    typer.echo(f"wrote {nc} and {png}" if nc else f"wrote {png}")
    typer.echo(f"status: {ev.status}" + (f" ({ev.message})" if ev.message else ""))


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    """Add ``signal`` and the ``kernels`` group (``kernels evaluate``) to ``app``."""
    app.command("signal")(signal_command)
    kernels_app.command("evaluate")(evaluate_command)
    app.add_typer(kernels_app, name="kernels")
