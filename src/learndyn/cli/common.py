"""What the commands share: the options and the driver of every ``learndyn reproduce <paper>`` command (one
grammar for all papers), and :func:`save_or_report`.

``--figure`` (repeatable or comma-separated; ``fig1``-style numbers, a figure's name, ``all``, ``claims``; the
bare numbers ``1``, ``2``, ... are accepted too), ``--claims``, ``--quick``, ``--out DIR``, ``--progress/
--no-progress`` (on by default). Outputs are ``DIR/<paper>_<figure>.{png,nc}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, List

import typer

__all__ = ["OptFigure", "OptClaims", "OptQuick", "OptProgress", "run_reproduce", "save_or_report", "fail"]

#: ``--figure/-f``: the figures to make (repeatable or comma-separated)
OptFigure = Annotated[List[str], typer.Option(
    "--figure", "-f", help="figure to make (repeatable or comma-separated): fig1, fig2, ... or a named figure; "
                           "'all' makes every figure, 'claims' = --claims")]
#: ``--claims``: print (and write) the paper's claims table
OptClaims = Annotated[bool, typer.Option("--claims", help="print the table of the paper's claims (and write "
                                                          "<paper>_claims.nc)")]
#: ``--quick``: CI-sized runs
OptQuick = Annotated[bool, typer.Option("--quick", help="CI-sized runs (small sizes, short times)")]
#: ``--progress/--no-progress``: progress bars on stderr (on by default)
OptProgress = Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars (on stderr)")]


def run_reproduce(paper: str, module, figure: List[str], claims: bool, quick: bool, out: Path, progress: bool,
                  describe: Callable[[str], str] | None = None, **overrides) -> None:
    """Resolve ``--figure`` names against ``module.FIGURES`` (a paper recipe of :mod:`learndyn.experiments`), run
    each figure with ``module.run_figure`` then (if asked) ``module.claims``; invalid input becomes a
    ``typer.BadParameter`` naming the option."""
    from ..experiments import resolve_figures

    try:
        names, claims = resolve_figures(figure, module.FIGURES, claims)
    except ValueError as exc:
        raise typer.BadParameter(f"--figure: {str(exc).removeprefix('figure: ')}") from None
    if not names and not claims:
        raise typer.BadParameter(f"give --figure F (one of {list(module.FIGURES)}, all or claims) and/or --claims")
    from ..results import check_output_folder

    try:
        check_output_folder(out, name="--out")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for name in names:
        typer.echo(f"{paper} {name}{' (quick)' if quick else ''}: {describe(name) if describe else ''}".rstrip(": "))
        try:
            written = module.run_figure(name, out_dir=out, quick=quick, log=typer.echo, progress=progress,
                                        **overrides)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"wrote {written[0]} and {written[1]}")
    if claims:
        typer.echo(f"{paper} claims{' (quick)' if quick else ''}:")
        module.claims(quick=quick, out_dir=out, log=typer.echo, progress=progress, **overrides)
        from ..experiments import output_paths

        typer.echo(f"wrote {output_paths(paper, 'claims', out)[1]}")


def save_or_report(result, path: Path):
    """``result.save(path)``; if that fails after the computation, say so (stderr) and return ``None``
    instead of losing the printed results to a traceback."""
    try:
        return result.save(path)
    except (OSError, ValueError) as exc:
        typer.echo(f"warning: could not write {path}: {exc}", err=True)
        return None


def fail(exc: Exception) -> None:
    """Print ``error: <exc>`` on stderr and exit with code 2 (how the sweep and plot commands refuse input)."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code=2)
