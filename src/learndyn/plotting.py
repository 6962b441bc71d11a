"""Figure style shared by all recipes: Agg backend, one look, atomic PNG writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

from .results import publish_file

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plt", "figure", "save_figure", "THEORY_STYLE", "SIM_STYLE"]

#: theory curves are lines, simulations are markers with error bars
THEORY_STYLE = dict(lw=1.8)
SIM_STYLE = dict(fmt="o", ms=3.5, capsize=2, elinewidth=1, alpha=0.85)

plt.rcParams.update({
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
})


def figure(nrows: int = 1, ncols: int = 1, width: float = 4.2, height: float = 3.2, **kwargs):
    """A figure with ``nrows x ncols`` panels of ``width x height`` inches each."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kwargs)
    return fig, axes


def save_figure(fig, path: str | os.PathLike, tight: bool = True, **savefig_kw) -> Path:
    """Save ``fig`` as PNG atomically and close it. ``tight``: ``fig.tight_layout()`` first (leave it off for
    figures made with ``layout="constrained"``); ``savefig_kw`` go to ``fig.savefig`` (e.g. ``bbox_inches``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".png")
    os.close(fd)
    try:
        if tight:
            fig.tight_layout()
        fig.savefig(tmp, **savefig_kw)
        publish_file(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
