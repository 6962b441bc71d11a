"""``learndyn kernels`` (mean-field quantities) and ``learndyn reproduce xiao2020`` (issue 4)."""

from __future__ import annotations

from pathlib import Path

import typer


def signal_command(
    activation: str = typer.Option("erf", help="erf (= erf(x)), relu, tanh, leaky_relu, linear, sigmoid"),
    weight_var: float = typer.Option(1.5, help="sigma_w^2"),
    bias_var: float = typer.Option(0.05, help="sigma_b^2"),
) -> None:
    """Print q*, c*, chi_1, chi_c*, xi_1, xi_c, xi_*, p* and the phase (spec ntk.md §1.4-1.6)."""
    from .signal import signal_propagation

    try:
        sp = signal_propagation(activation, weight_var, bias_var).scalar()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for k, v in sp.items():
        typer.echo(f"{k:10s} {v:.10g}" if isinstance(v, float) else f"{k:10s} {v}")


def xiao2020_command(
    figure: str = typer.Option(None, help="figure name (signal, spectrum, phase, cnn) or 'all'"),
    claims: bool = typer.Option(False, "--claims", help="print the table of the paper's claims"),
    quick: bool = typer.Option(False, "--quick", help="CI-sized runs"),
    out: Path = typer.Option(Path("results/xiao2020"), help="output directory"),
) -> None:
    """Xiao, Pennington & Schoenholz (ICML 2020) on offline data: figures (PNG + netCDF) and claims."""
    from ..experiments import xiao2020
    from ..results import check_output_folder

    if figure is None and not claims:
        raise typer.BadParameter("give --figure NAME (or all) and/or --claims")
    try:
        check_output_folder(out, name="--out")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if figure is not None:
        names = sorted(xiao2020.FIGURES) if figure == "all" else [figure]
        for name in names:
            if name not in xiao2020.FIGURES:
                raise typer.BadParameter(f"--figure: unknown {name!r}; allowed are {sorted(xiao2020.FIGURES)} or all")
        for name in names:
            typer.echo(f"{name}: {xiao2020.FIGURES[name]}")
            png, nc = xiao2020.run_figure(name, out_dir=out, quick=quick, log=typer.echo)
            typer.echo(f"  wrote {png} and {nc}")
    if claims:
        xiao2020.claims(quick=quick, out_dir=out, log=typer.echo)


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("signal")(signal_command)
    reproduce.command("xiao2020")(xiao2020_command)
