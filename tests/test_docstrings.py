"""Every public name says what it is, and nothing cites files that do not ship with the package.

Public names: each importable module of ``learndyn`` (private ``_modules`` excluded), its ``__all__`` (or,
without one, the functions and classes it defines), and the public methods and properties of those classes.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import learndyn

SRC = Path(learndyn.__file__).parent
DOCS = SRC.parents[1] / "docs"


def _public_modules() -> list[str]:
    names = ["learndyn"]
    for info in pkgutil.walk_packages(learndyn.__path__, "learndyn."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


def _public_objects(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and (inspect.isfunction(v) or inspect.isclass(v)) and getattr(v, "__module__", None) == module.__name__]
    for name in names:
        value = getattr(module, name, None)
        if inspect.isfunction(value) or inspect.isclass(value):
            yield f"{module.__name__}.{name}", value


def _undocumented() -> list[str]:
    missing = []
    for modname in _public_modules():
        module = importlib.import_module(modname)
        if not (module.__doc__ or "").strip():
            missing.append(modname)
        for qualname, obj in _public_objects(module):
            if not (obj.__doc__ or "").strip():
                missing.append(qualname)
            if inspect.isclass(obj) and obj.__module__.startswith("learndyn"):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if inspect.isfunction(fn) and not (fn.__doc__ or "").strip():
                        missing.append(f"{qualname}.{attr}")
    return sorted(set(missing))


def test_every_public_name_has_a_docstring():
    missing = _undocumented()
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)


# "spec §3.2", "spec ``ntk.md``", "shared/spec/...", "teacher_student.md §2" -- the specs are not shipped
_UNSHIPPED = re.compile(r"\bspec\s*(§|``|`|\w+\.md)|shared/spec|\b(ntk|dmft|teacher_student)\.md(``)?\s*§|(^|\s)\(spec\)",
                        re.IGNORECASE)


def _citations(root: Path, patterns: tuple[str, ...]) -> list[str]:
    found = []
    for pattern in patterns:
        for path in sorted(root.rglob(pattern)):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _UNSHIPPED.search(line):
                    found.append(f"{path}:{number}: {line.strip()}")
    return found


def test_nothing_in_the_package_cites_unshipped_files():
    found = _citations(SRC, ("*.py",))
    assert not found, "cite the paper or the docs instead:\n" + "\n".join(found)


def test_the_checker_finds_citations():
    for text in ("see spec §3.2", "(spec ``ntk.md`` §1.4)", "shared/spec/dmft.md", "teacher_student.md §2",
                 "F.23 (spec)"):
        assert _UNSHIPPED.search(text), text
    for text in ("PartitionSpec('seed')", "[DMFT](dmft.md)", "spec = FIGURES[name]",
                 "return Solution(x, spec.cond, reg, spec)", "the inspect module", "timespec='seconds'",
                 "activations.get(spec)"):
        assert not _UNSHIPPED.search(text), text


def test_the_docs_cite_no_unshipped_files():
    if not DOCS.is_dir():  # an installed wheel has no docs folder
        return
    found = _citations(DOCS, ("*.md", "*.py"))
    assert not found, "\n".join(found)
