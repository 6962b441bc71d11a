"""Write the command-line reference (``reference/cli.md``) from the typer app at build time.

Run by the ``gen-files`` plugin of ``mkdocs build``: every command, its help text, usage and options
are read from ``learndyn.cli:app`` through click (the command objects typer builds), so the page cannot drift from the commands.
``python docs/gen_cli.py`` prints the page instead; ``tests/test_docs.py`` imports ``render``.
"""

from __future__ import annotations

from typing import Any

import typer.main

# typer may carry its own copy of click (typer >= 0.20 vendors it), so commands and parameters are read
# by duck typing, never by isinstance checks against the click package.


def _app() -> Any:
    from learndyn.cli import app

    return typer.main.get_command(app)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _options_table(cmd: Any, ctx: Any) -> list[str]:
    rows = []
    for p in cmd.get_params(ctx):
        if getattr(p, "hidden", False):
            continue
        record = p.get_help_record(ctx)  # (the option's spelling with its metavar, help with the default)
        if record is None:  # a plain click argument has no help record
            record = (p.human_readable_name, "")
        names, help_text = record
        rows.append(f"| `{_cell(names)}` | {_cell(help_text)} |")
    if not rows:
        return []
    return ["| option | description |", "| --- | --- |", *rows, ""]


def _walk(cmd: Any, path: list[str], parent: Any, out: list[str]) -> None:
    ctx = cmd.context_class(cmd, info_name=path[-1], parent=parent)
    name = " ".join(path)
    level = min(len(path) + 1, 4)
    out.append(f"{'#' * level} `{name}`\n")
    text = (cmd.help or "").strip()
    if text:
        out.append(text.replace("\b\n", "") + "\n")
    pieces = " ".join(cmd.collect_usage_pieces(ctx))
    out.append(f"```text\n{name} {pieces}\n```\n")
    out.extend(_options_table(cmd, ctx))
    if hasattr(cmd, "list_commands"):
        for sub in cmd.list_commands(ctx):
            child = cmd.get_command(ctx, sub)
            if child is not None and not child.hidden:
                _walk(child, [*path, sub], ctx, out)


def render() -> str:
    out = [
        "# Command line\n",
        "Generated from the `learndyn` command itself when the site is built; every command also "
        "answers `--help`.\n",
    ]
    _walk(_app(), ["learndyn"], None, out)
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
elif __name__ == "<run_path>":  # run by mkdocs-gen-files (runpy.run_path); a plain import only defines render()
    import mkdocs_gen_files

    with mkdocs_gen_files.open("reference/cli.md", "w") as f:
        f.write(render())
