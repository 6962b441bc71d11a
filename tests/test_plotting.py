"""The shared figure writer: atomic PNG writes for every recipe, constrained-layout figures included."""

import warnings

from learndyn.plotting import figure, save_figure


def test_save_figure_writes_constrained_figures_atomically(tmp_path):
    fig, axes = figure(1, 2, layout="constrained")
    axes[0].plot([0, 1], [0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tight_layout on a constrained figure (a UserWarning)
        path = save_figure(fig, tmp_path / "sub" / "x.png", tight=False, bbox_inches="tight")
    assert path == tmp_path / "sub" / "x.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]  # no temporary file left behind
