"""environment.yml (conda) and pyproject.toml (pip) list the same packages."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def _pip_packages() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _conda_packages() -> dict[str, str]:
    found = {}
    in_deps = False
    for line in (REPO / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
        elif in_deps and re.match(r"\s+- ", line):
            spec = line.split("- ", 1)[1].strip()
            found[_name(spec)] = spec.replace(" ", "")
    return found


def test_conda_and_pip_list_the_same_packages_and_bounds():
    conda = _conda_packages()
    for extra in ("python", "pip"):
        conda.pop(extra)
    assert conda == _pip_packages()
