"""The supported dependency ranges: pyproject's lower bounds are exactly what `.ci/run --lowest` installs."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lower_bounds() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for rs in project["optional-dependencies"].values() for r in rs]
    bounds = {}
    for req in reqs:
        m = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([0-9][^,;\s]*)", req)
        assert m, f"pyproject.toml: {req!r} states no lower bound"
        bounds[m.group(1).lower()] = m.group(3)
    return bounds


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "lowest-constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def test_every_dependency_has_a_pinned_lowest_version_equal_to_its_bound():
    bounds, pins = _lower_bounds(), _pins()
    for name, low in bounds.items():
        assert name in pins, f".ci/lowest-constraints.txt does not pin {name}"
        pin = _key(pins[name])
        assert pin[: len(_key(low))] == _key(low) or pin == _key(low) + (0,) * (len(pin) - len(_key(low))), (
            f"{name}: pyproject says >={low} but the lowest-version CI installs {pins[name]}")


def test_ci_runs_the_readme_test_command_in_a_fresh_environment():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci and "README.md" in ci
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"pip install -e \"\.\[test\]\" && python3 -m pytest", readme)
