"""``learndyn kernels`` (mean-field quantities) and ``learndyn reproduce xiao2020`` (issue 4)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..cli_common import OptClaims, OptFigure, OptProgress, OptQuick, run_reproduce


def signal_command(
    activation: str = typer.Option("erf", help="erf (= erf(x)), relu, linear, tanh, sigmoid, leaky_relu, "
                                                     "leaky_relu(slope) or abrelu(a, b)"),
    weight_var: float = typer.Option(1.0, help="sigma_w^2"),
    bias_var: float = typer.Option(0.0, help="sigma_b^2"),
) -> None:
    """Print q*, c*, chi_1, chi_c*, xi_1, xi_c, xi_*, p* and the phase (Schoenholz et al. 2017; Xiao,
    Pennington & Schoenholz 2020, Sec. 2)."""
    from .signal import signal_propagation

    try:
        sp = signal_propagation(activation, weight_var, bias_var).scalar()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for k, v in sp.items():
        typer.echo(f"{k:10s} {v:.10g}" if isinstance(v, float) else f"{k:10s} {v}")


def xiao2020_command(
    figure: OptFigure = [],
    claims: OptClaims = False,
    quick: OptQuick = False,
    out: Path = typer.Option(Path("results/xiao2020"), help="output directory"),
    progress: OptProgress = True,
) -> None:
    """Xiao, Pennington & Schoenholz (ICML 2020) on offline data: signal, spectrum, phase, cnn (PNG + netCDF)
    and the claims table."""
    from ..experiments import xiao2020

    run_reproduce("xiao2020", xiao2020, figure, claims, quick, out, progress,
                  describe=lambda name: xiao2020.FIGURES[name])


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("signal")(signal_command)
    reproduce.command("xiao2020")(xiao2020_command)
