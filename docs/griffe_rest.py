"""Griffe extension for the API reference: the package's reST-flavoured docstrings rendered as Markdown.

The docstrings use Sphinx roles (``:class:`Problem```), ``.. math::`` blocks and NumPy-style section
underlines. Before rendering, this turns roles into inline code, math blocks into ``$$ ... $$``
(MathJax, through ``pymdownx.arithmatex``) and underlined section titles into bold lines, so the pages
read cleanly without a docstring parser (a parser would turn every docstring irregularity into a build
warning, and the build is strict).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const|ref|term):`~?([^`]+)`")
_UNDERLINE = re.compile(r"^(?P<title>[^\n]+)\n(?P<rule>-{3,}|={3,})[ \t]*$", re.M)


def _math_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
        if not m:
            out.append(line)
            i += 1
            continue
        indent, body = m.group(1), [m.group(2)] if m.group(2).strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        content = [b for b in body if b]
        if content:
            out.extend([f"{indent}$$", *(f"{indent}{b}" for b in content), f"{indent}$$", ""])
    return "\n".join(out)


def to_markdown(text: str) -> str:
    """The Markdown rendering of one docstring."""
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    text = _UNDERLINE.sub(lambda m: f"**{m.group('title').strip()}**\n", text)
    return _math_blocks(text)


class RestToMarkdown(griffe.Extension):
    """Rewrite every docstring once, when griffe loads the object."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        doc = getattr(obj, "docstring", None)
        if doc is not None and doc.value:
            doc.value = to_markdown(doc.value)
