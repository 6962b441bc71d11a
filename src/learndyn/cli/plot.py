"""``learndyn plot``: one variable of a sweep store against one of its dimensions (:func:`learndyn.sweep.plot`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import fail

__all__ = ["register", "plot_command"]


def plot_command(
    store: Path = typer.Argument(..., help="results store of a sweep"),
    x: str = typer.Option(..., "--x", help="dimension on the horizontal axis (e.g. K, alpha)"),
    y: str = typer.Option(..., "--y", help="variable to plot (e.g. eg_final, eg)"),
    hue: Optional[str] = typer.Option(None, help="one line per value of this dimension"),
    col: Optional[str] = typer.Option(None, help="one panel per value of this dimension"),
    sel: List[str] = typer.Option([], help="fix a dimension: --sel lr=0.5 (repeatable)"),
    logx: Optional[bool] = typer.Option(None, "--logx/--linx", help="log x axis (default: for alpha)"),
    logy: Optional[bool] = typer.Option(None, "--logy/--liny", help="log y axis (default: eg over > 1.7 decades)"),
    out: Optional[Path] = typer.Option(None, help="PNG to write (default: STORE_Y_vs_X.png beside the store)"),
) -> None:
    """Plot one variable of a sweep store against one of its dimensions."""
    from ..sweep import plot

    selection = {}
    for item in sel:
        if "=" not in item:
            fail(ValueError(f"sel: expected DIM=VALUE, got {item!r}"))
        k, v = item.split("=", 1)
        selection[k.strip()] = v.strip()
    out = out or store.parent / f"{store.stem}_{y}_vs_{x}.png"
    try:
        plot(store, x=x, y=y, hue=hue, col=col, sel=selection, logx=logx, logy=logy, out=out)
    except ValueError as exc:
        fail(exc)
    typer.echo(f"wrote {out}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    """Add ``plot`` to ``app``."""
    app.command("plot")(plot_command)
