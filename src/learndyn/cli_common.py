"""Options and the driver shared by every ``learndyn reproduce <paper>`` command (one grammar for all papers).

``--figure`` (repeatable or comma-separated; ``fig1``-style numbers, a figure's name, ``all``, ``claims``; the
bare numbers ``1``, ``2``, ... are accepted too), ``--claims``, ``--quick``, ``--out DIR``, ``--progress/
--no-progress`` (on by default). Outputs are ``DIR/<paper>_<figure>.{png,nc}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, List

import typer

__all__ = ["OptFigure", "OptClaims", "OptQuick", "OptProgress", "run_reproduce"]

OptFigure = Annotated[List[str], typer.Option(
    "--figure", "-f", help="figure to make (repeatable or comma-separated): fig1, fig2, ... or a named figure; "
                           "'all' makes every figure, 'claims' = --claims")]
OptClaims = Annotated[bool, typer.Option("--claims", help="print the table of the paper's claims (and write "
                                                          "<paper>_claims.nc)")]
OptQuick = Annotated[bool, typer.Option("--quick", help="CI-sized runs (small sizes, short times)")]
OptProgress = Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars (on stderr)")]


def run_reproduce(paper: str, module, figure: List[str], claims: bool, quick: bool, out: Path, progress: bool,
                  describe: Callable[[str], str] | None = None, **overrides) -> None:
    """Resolve ``--figure`` names against ``module.FIGURES``, run each figure then (if asked) the claims."""
    from .experiments import resolve_figures

    try:
        names, claims = resolve_figures(figure, module.FIGURES, claims)
    except ValueError as exc:
        raise typer.BadParameter(f"--figure: {str(exc).removeprefix('figure: ')}") from None
    if not names and not claims:
        raise typer.BadParameter(f"give --figure F (one of {list(module.FIGURES)}, all or claims) and/or --claims")
    from .results import check_output_folder

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
        from .experiments import output_paths

        typer.echo(f"wrote {output_paths(paper, 'claims', out)[1]}")
