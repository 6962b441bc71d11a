"""The documentation site: its pages, gallery, generated CLI reference and CI build stay complete.

These checks need no documentation tools; ``mkdocs build --strict`` itself (run by ``.ci/run``) checks
links, the API reference and the executed tutorials.
"""

import importlib
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Issue 14: every figure of the three papers, as `learndyn reproduce` names them.
PAPER_FIGURES = {
    "goldt2019": ["fig1", "fig2", "fig3", "fig4"],
    "montanari2025": ["fig2", "fig3", "fig4", "fig6", "fig7", "threshold"],
    "xiao2020": ["signal", "spectrum", "phase", "cnn"],
}


def _nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:"):]
    nav = nav[: re.search(r"\n\S", nav[1:]).start() + 1]
    return re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.M)


def _markdown_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    nav = _nav_pages()
    generated = {"reference/cli.md"}  # written at build time by docs/gen_cli.py
    for page in nav:
        assert page in generated or (DOCS / page).is_file(), f"mkdocs.yml nav names a missing page {page}"
    on_disk = {p.relative_to(DOCS).as_posix() for p in _markdown_pages()}
    assert on_disk - set(nav) == set(), f"pages not in the nav: {sorted(on_disk - set(nav))}"
    for page in ("index.md", "concepts.md", "online.md", "dmft.md", "kernels.md", "gallery.md"):
        assert page in nav


def test_docs_cite_papers_not_unshipped_spec_files():
    bad = re.compile(r"shared/spec|spec\s*§|\bspec\s+`+\w+\.md|\bspec\.md\b", re.I)
    for page in _markdown_pages():
        for n, line in enumerate(page.read_text().splitlines(), 1):
            assert not bad.search(line), f"{page.relative_to(ROOT)}:{n} cites a spec file: {line.strip()}"


def test_local_images_and_links_exist():
    for page in _markdown_pages():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            if target.endswith("reference/cli.md"):  # generated at build time
                continue
            assert (page.parent / target).resolve().exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_gallery_has_every_paper_figure_with_command_wall_time_and_image():
    gallery = (DOCS / "gallery.md").read_text()
    for paper, figures in PAPER_FIGURES.items():
        recipe = importlib.import_module(f"learndyn.experiments.{paper}")
        for figure in figures:
            assert figure in recipe.FIGURES, f"{paper} has no figure {figure!r} any more"
            png = DOCS / "gallery" / f"{paper}_{figure}.png"
            assert png.is_file() and png.stat().st_size > 10_000, f"missing gallery image {png.name}"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            section = gallery.split(f"### {paper} {figure}\n", 1)
            assert len(section) == 2, f"gallery.md has no section for {paper} {figure}"
            body = section[1].split("\n### ", 1)[0]
            assert f"(gallery/{paper}_{figure}.png)" in body
            assert f"`learndyn reproduce {paper} --figure {figure}" in body
            assert "wall time (2 cores):" in body
    total = sum(p.stat().st_size for p in (DOCS / "gallery").glob("*.png"))
    assert total < 4_000_000, f"gallery images take {total / 1e6:.1f} MB; downscale them"


def test_gallery_script_lists_the_same_figures():
    spec = importlib.util.spec_from_file_location("make_gallery", DOCS / "gallery" / "make_gallery.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    listed = {(paper, figure) for paper, figure, _ in mod.FIGURES}
    assert listed == {(p, f) for p, figs in PAPER_FIGURES.items() for f in figs}


def test_cli_reference_is_generated_from_every_command():
    import typer.main

    from learndyn.cli import app

    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # a plain import writes nothing
    page = mod.render()

    def walk(cmd, path):
        ctx = cmd.context_class(cmd, info_name=path[-1])
        yield " ".join(path)
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), [*path, name])

    names = list(walk(typer.main.get_command(app), ["learndyn"]))
    assert {"learndyn ode", "learndyn simulate", "learndyn compare", "learndyn reproduce goldt2019"} <= set(names)
    for name in names:
        assert f"`{name}`" in page, f"the CLI reference misses {name}"
    # options with their types and help come from the commands (click spells the type <float> from 8.2, FLOAT before)
    assert "`--alpha-max <float>`" in page or "`--alpha-max FLOAT`" in page


@pytest.mark.parametrize("page", ["online_activation", "dmft_width", "kernels_sweep"])
def test_tutorials_are_executed_by_the_build(page):
    text = (DOCS / "tutorials" / f"{page}.md").read_text()
    blocks = re.findall(r"```python ([^\n]*)\n", text)
    assert blocks and all('exec="on"' in b for b in blocks), "every tutorial code block runs in the build"


def test_docs_extra_and_strict_build_in_ci():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    docs = " ".join(project["optional-dependencies"]["docs"])
    for tool in ("mkdocs", "mkdocs-material", "mkdocstrings", "mkdocs-gen-files", "markdown-exec"):
        assert tool in docs
    ci = (ROOT / ".ci" / "run").read_text()
    assert '-e ".[docs]"' in ci and "mkdocs build --strict" in ci
    assert re.search(r"^strict:\s*true", (ROOT / "mkdocs.yml").read_text(), re.M)


def test_api_reference_docstrings_become_markdown():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_rest", DOCS / "griffe_rest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = "See :class:`~learndyn.online.Problem`.\n\nParameters\n----------\nx:\n    a number\n\n.. math::\n\n    a = b\n\nend"
    out = mod.to_markdown(text)
    assert "See `learndyn.online.Problem`." in out
    assert "**Parameters**" in out and "-----" not in out
    assert "$$\na = b\n$$" in out and ".. math" not in out and out.endswith("end")
