"""``learndyn signal``: the mean-field signal propagation of a deep network (Schoenholz et al. 2017; Xiao,
Pennington & Schoenholz 2020, Sec. 2), from :func:`learndyn.kernels.signal_propagation`."""

from __future__ import annotations

import typer

__all__ = ["register", "signal_command"]


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


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    """Add ``signal`` to ``app``."""
    app.command("signal")(signal_command)
