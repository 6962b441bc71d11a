"""``learndyn reproduce <paper>``: the figures and claims of a paper, from its recipe in :mod:`learndyn.experiments`.

* ``goldt2019`` -- Goldt, Advani, Saxe, Krzakala & Zdeborova (NeurIPS 2019);
* ``montanari2025`` -- Montanari & Urbani (NeurIPS 2025, arXiv:2502.21269);
* ``xiao2020`` -- Xiao, Pennington & Schoenholz (ICML 2020).

All three share one grammar (:mod:`learndyn.cli.common`): ``--figure``, ``--claims``, ``--quick``, ``--out``,
``--progress/--no-progress``; outputs are ``OUT/<paper>_<figure>.{png,nc}``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .common import OptClaims, OptFigure, OptProgress, OptQuick, run_reproduce

__all__ = ["register", "goldt2019_command", "montanari2025_command", "xiao2020_command"]


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


def montanari2025_command(
    figure: OptFigure = [],
    claims: OptClaims = False,
    quick: OptQuick = False,
    out: Path = typer.Option(Path("results/montanari2025"), help="output directory"),
    progress: OptProgress = True,
) -> None:
    """Montanari & Urbani (2025): fig2, fig3, fig4, fig6, fig7, threshold (PNG + netCDF) and the abstract's
    claims, DMFT beside simulations."""
    from ..experiments import montanari2025 as mu

    run_reproduce("montanari2025", mu, figure, claims, quick, out, progress,
                  describe=lambda name: mu.FIGURES[name].title)


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
    """Add ``goldt2019``, ``montanari2025`` and ``xiao2020`` to the ``reproduce`` group."""
    reproduce.command("goldt2019")(goldt2019_command)
    reproduce.command("montanari2025")(montanari2025_command)
    reproduce.command("xiao2020")(xiao2020_command)
