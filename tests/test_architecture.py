"""The floors of the package (issue 13, items 3 and 5), read from the source with ``ast``.

* Theory packages (``online``, ``dmft``, ``kernels``, ``activations``, ``gaussian``, ``results``, ``datasets``,
  ``resources``, ``plotting``) and the shared Dask machinery (``cluster``) import nothing from ``learndyn.cli``, ``learndyn.experiments``, ``learndyn.sweep``,
  nor ``typer`` -- not at the top of a module, not lazily inside a function, not through ``importlib``.
* Paper recipes (``experiments``) import no ``cli`` and no ``sweep``.
* No module reaches a private (``_name``) attribute of a module of ANOTHER package: ``from ..dmft.symmetric
  import _grid`` in ``kernels`` fails, as do ``from ..online import _ode`` and ``ode._static_key`` on a module
  imported from another package. Inside one package, private helpers are allowed.
* Every command lives in the ``learndyn.cli`` package: no other module imports ``typer``.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "learndyn"

THEORY = ("online", "dmft", "kernels", "activations", "gaussian", "results", "datasets", "resources", "plotting",
          "cluster")
#: floor -> the learndyn packages (and third-party top-level modules) it must not import
FORBIDDEN = {
    **{floor: ("learndyn.cli", "learndyn.experiments", "learndyn.sweep", "typer") for floor in THEORY},
    "experiments": ("learndyn.cli", "learndyn.sweep", "typer"),
    "sweep": ("learndyn.cli", "typer"),
}

#: Known cross-package private imports, as (importing module, the private name it reaches). Empty: every
#: package reaches the others through their public API. An entry that is no longer needed fails
#: ``test_allow_list_has_no_stale_entries``, so the list cannot hide a fixed violation.
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()


# ------------------------------------------------------------------------------------------
# the checker
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. learndyn.kernels.signal
    target: str  # the imported module or object, e.g. learndyn.dmft.symmetric._grid
    line: int
    how: str  # "import", "from", "attribute", "importlib"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(name: str) -> str:
    """The unit inside which private names may be shared: ``learndyn.<sub-package>`` for a module of a
    sub-package (``learndyn.sweep.runners.online`` -> ``learndyn.sweep``), the module itself for a top-level
    module (``learndyn.results``), ``learndyn`` for the root."""
    parts = name.split(".")
    if parts[0] != "learndyn":
        return parts[0]
    return ".".join(parts[:2])


def floor_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def imports_of(source: str, module: str, is_package: bool) -> list[Import]:
    """Every import of ``module`` (anywhere in the file, function bodies included), every attribute read on a
    name imported from a learndyn module, and every ``importlib.import_module("...")`` with a literal name."""
    tree = ast.parse(source)
    here = module.split(".") if is_package else module.split(".")[:-1]
    found: list[Import] = []
    bound: dict[str, str] = {}  # local name -> what it was imported as (learndyn names only)

    def absolute(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = here[: len(here) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, node.lineno, "import"))
                if alias.name.startswith("learndyn"):
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "learndyn"
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node)
            for alias in node.names:
                target = f"{base}.{alias.name}" if alias.name != "*" else base
                found.append(Import(module, target, node.lineno, "from"))
                if base.startswith("learndyn") and alias.name != "*":
                    bound[alias.asname or alias.name] = target
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                text = node.args[0].value
                if text.startswith("."):
                    level = len(text) - len(text.lstrip("."))
                    rest = text.lstrip(".")
                    text = ".".join(here[: len(here) - (level - 1)] + ([rest] if rest else []))
                found.append(Import(module, text, node.lineno, "importlib"))
    for node in ast.walk(tree):  # x.y._z on a name x imported from learndyn
        if isinstance(node, ast.Attribute):
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                found.append(Import(module, ".".join([bound[base.id], *reversed(chain)]), node.lineno, "attribute"))
    return found


def _starts(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def floor_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        for bad in FORBIDDEN.get(floor_of(imp.module), ()):
            if imp.how != "attribute" and _starts(imp.target, bad):
                out.append(f"{imp.module}:{imp.line} imports {imp.target} ({imp.how}): the "
                           f"{floor_of(imp.module)!r} floor must not import {bad}")
    return out


def private_violations(imports: list[Import]) -> list[tuple[str, str, str]]:
    """(importing module, private target, message) for every private name of another package reached."""
    out = []
    for imp in imports:
        parts = imp.target.split(".")
        if parts[0] != "learndyn":
            continue
        # the first private component, and the module it belongs to
        for i, part in enumerate(parts):
            if _is_private(part):
                owner = ".".join(parts[:i]) or "learndyn"
                if package_of(owner) != package_of(imp.module):
                    out.append((imp.module, imp.target,
                                f"{imp.module}:{imp.line} reaches the private {imp.target} ({imp.how}) of another "
                                f"package: make it public there, or keep it inside {package_of(owner)}"))
                break
    return out


def all_imports(root: Path = SRC) -> list[Import]:
    found = []
    for path in sorted(root.rglob("*.py")):
        found += imports_of(path.read_text(encoding="utf-8"), module_name(path, root), path.name == "__init__.py")
    return found


# ------------------------------------------------------------------------------------------
# the package
# ------------------------------------------------------------------------------------------
def test_theory_floors_import_no_cli_recipe_sweep_or_typer():
    assert SRC.is_dir()
    violations = floor_violations(all_imports())
    assert not violations, "\n".join(violations)


def test_only_the_cli_package_imports_typer():
    users = sorted({imp.module for imp in all_imports() if _starts(imp.target, "typer")})
    assert users and all(_starts(m, "learndyn.cli") for m in users), users


def test_commands_live_in_the_cli_package():
    """No theory, sweep or recipe module is a command module (the old ``<theory>/cli.py`` are gone)."""
    stray = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*cli*.py") if p.parent.name != "cli")
    assert not stray, stray
    assert (SRC / "cli" / "__init__.py").is_file()


def test_no_private_name_of_another_package_is_reached():
    violations = [msg for mod, target, msg in private_violations(all_imports())
                  if (mod, target) not in KNOWN_PRIVATE_IMPORTS]
    assert not violations, "\n".join(violations)


def test_the_cli_reaches_no_private_name_outside_itself():
    """The commands are built from the public API only (no allow-list here)."""
    violations = [msg for mod, target, msg in private_violations(all_imports()) if _starts(mod, "learndyn.cli")]
    assert not violations, "\n".join(violations)


def test_allow_list_has_no_stale_entries():
    measured = {(mod, target) for mod, target, _ in private_violations(all_imports())}
    stale = sorted(KNOWN_PRIVATE_IMPORTS - measured)
    assert not stale, f"fixed, remove from KNOWN_PRIVATE_IMPORTS in tests/test_architecture.py: {stale}"


# ------------------------------------------------------------------------------------------
# the checker itself, on small sources
# ------------------------------------------------------------------------------------------
def _check(source: str, module: str, is_package: bool = False):
    imps = imports_of(textwrap.dedent(source), module, is_package)
    return floor_violations(imps), [t for _, t, _ in private_violations(imps)]


@pytest.mark.parametrize("source", [
    "import typer",
    "from ..cli import app",
    "from .. import cli",
    "from learndyn.experiments import goldt2019",
    "def f():\n    from ..sweep import run\n",  # lazily, inside a function
    "import importlib\nimportlib.import_module('learndyn.cli.online')",
    "import learndyn.sweep.store",
])
def test_checker_finds_a_theory_module_importing_a_higher_floor(source):
    floors, _ = _check(source, "learndyn.online.ode")
    assert floors, source


def test_checker_allows_what_the_floors_allow():
    ok = """
    import numpy as np
    from .. import plotting
    from ..results import Result
    from .problem import _positive_int
    from . import _util
    def f():
        from ..activations import get
        return _util._x
    """
    assert _check(ok, "learndyn.online.ode") == ([], [])
    # the CLI and the recipes may import the theories; the recipes not the CLI
    assert _check("from ..online import integrate\nfrom ..sweep import run", "learndyn.cli.online") == ([], [])
    assert _check("from ..cli import app", "learndyn.experiments.goldt2019")[0]
    # sub-packages belong to their package: the sweep runners may use the sweep's private helpers
    assert _check("from ..registry import _helper", "learndyn.sweep.runners.online") == ([], [])


@pytest.mark.parametrize("source, target", [
    ("from ..dmft.symmetric import _grid", "learndyn.dmft.symmetric._grid"),
    ("from ..online import _ode", "learndyn.online._ode"),
    ("from ..online._ode import step", "learndyn.online._ode.step"),
    ("from ..online import ode\nx = ode._static_key", "learndyn.online.ode._static_key"),
    ("import learndyn.online.sgd as s\ns._record_steps(1)", "learndyn.online.sgd._record_steps"),
    ("import learndyn.online.sgd\nlearndyn.online.sgd._record_steps(1)", "learndyn.online.sgd._record_steps"),
    ("def f():\n    from ..results import _serialise\n", "learndyn.results._serialise"),
    ("from .. import dmft\np = dmft.Problem(m=2)\nx = p._initial_state", None),  # an instance: not followed
])
def test_checker_finds_private_names_of_another_package(source, target):
    assert _check(source, "learndyn.kernels.signal")[1] == ([target] if target else [])
    # the same names from inside their own package are allowed
    own = "learndyn." + target.split(".")[1] + ".x" if target else "learndyn.kernels.x"
    assert _check(source, own)[1] == []
