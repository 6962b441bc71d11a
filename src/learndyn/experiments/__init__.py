"""Paper-figure recipes: one short declarative module per paper (parameters + runs + plot).

``goldt2019`` (teacher-student online SGD, Goldt et al. 2019), ``montanari2025`` (DMFT, Montanari & Urbani 2025),
``xiao2020`` (NTK depth theory, Xiao, Pennington & Schoenholz 2020). A figure is a declaration -- runs of frozen
Problems and a plot -- executed by the one shared :mod:`~learndyn.experiments.runner`, which stacks each run's
``to_xarray()`` along a named ``run`` dimension and writes the files atomically.

One naming scheme for every paper: figures numbered in the paper are ``fig<N>`` (``fig1``, ``fig2``, ...),
the others have a name (``threshold``, ``phase``, ``signal``, ...); ``claims`` is the claims table and
``all`` every figure. Each recipe writes ``<out>/<paper>_<figure>.png`` and ``<out>/<paper>_<figure>.nc``
(:func:`output_paths`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["canonical_figure", "resolve_figures", "output_paths", "progress_bar"]


def canonical_figure(name: str, figures: Iterable[str]) -> str:
    """The canonical name of figure ``name`` among ``figures``: ``"2"``, ``"Fig2"``, ``"fig. 2"`` and
    ``"fig2"`` all name ``fig2``; names are case-insensitive. Raises ``ValueError`` naming the allowed ones."""
    figures = list(figures)
    key = str(name).strip().lower().replace(" ", "").replace(".", "").replace("_", "")
    if key.isdigit():
        key = f"fig{int(key)}"
    elif key.startswith("fig") and key[3:].isdigit():
        key = f"fig{int(key[3:])}"
    for f in figures:
        if f.lower() == key:
            return f
    raise ValueError(f"figure: unknown {name!r}; allowed are {figures}, 'all' or 'claims'")


def resolve_figures(requested: Sequence[str], figures: Iterable[str], claims: bool = False) -> tuple[list[str], bool]:
    """Canonical figure names for ``--figure`` values (repeatable, or comma-separated): ``all`` expands to
    every figure, ``claims`` asks for the claims table. Returns ``(figures, claims)``; duplicates run once."""
    figures = list(figures)
    out: list[str] = []
    for item in requested:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name.lower() == "all":
                picked = figures
            elif name.lower() == "claims":
                claims, picked = True, []
            else:
                picked = [canonical_figure(name, figures)]
            out.extend(f for f in picked if f not in out)
    return out, claims


def output_paths(paper: str, figure: str, out_dir: str | Path) -> tuple[Path, Path]:
    """``(<out_dir>/<paper>_<figure>.png, <out_dir>/<paper>_<figure>.nc)``: the one output naming."""
    out_dir = Path(out_dir)
    return out_dir / f"{paper}_{figure}.png", out_dir / f"{paper}_{figure}.nc"


def progress_bar(total: int, desc: str, progress: bool, unit: str = "run"):
    """A tqdm bar over ``total`` units of work (on stderr), or a silent stand-in when ``progress`` is off."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False)
