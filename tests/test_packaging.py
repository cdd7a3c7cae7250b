"""environment.yml (conda) and pyproject.toml (pip) list the same packages."""
from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def _pip_packages() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    # conda has no environment markers: compare the requirement before ";"
    return {_name(r): r.split(";")[0].replace(" ", "") for r in reqs}


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


def test_pyproject_license_is_an_spdx_string():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"


def test_every_data_file_is_declared_package_data():
    """Every folder under minios_lab/ is a package, all its files are data."""
    from setuptools import find_namespace_packages
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    tool = config["tool"]["setuptools"]
    found = set(find_namespace_packages(
        where=str(REPO), include=tool["packages"]["find"]["include"]))
    folders = {str(p.relative_to(REPO)).replace("/", ".")
               for p in (REPO / "minios_lab").rglob("*")
               if p.is_dir() and p.name != "__pycache__"} | {"minios_lab"}
    assert folders <= found
    assert tool["package-data"] == {"*": ["*"]}


def _make(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_make_alone_lists_the_targets_one_line_each():
    proc = _make()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    targets = [line.split()[1] for line in lines]
    for target in ("lab", "test", "boot", "debug", "notebooks", "format",
                   "format-check", "bench", "setup", "clean"):
        assert targets.count(target) == 1, proc.stdout
    assert all(line.startswith("  make ") and len(line.split()) > 2
               for line in lines)


def _fake_python(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def make_dir(tmp_path: Path) -> Path:
    """A folder with the Makefile and pyproject.toml, nothing else."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def test_a_failed_venv_leaves_no_half_made_venv(make_dir: Path):
    python = _fake_python(make_dir / "py", "mkdir -p .venv/bin .venv/lib\n"
                          "echo 'ensurepip is not available' >&2; exit 1\n")
    proc = _make(f"PYTHON={python}", ".venv/.installed", cwd=make_dir)
    assert proc.returncode != 0
    assert "ensurepip is not available" in proc.stderr
    assert "removed the half-made .venv" in proc.stderr
    assert not (make_dir / ".venv").exists()


def test_a_failed_pip_install_leaves_no_stamp_and_is_retried(make_dir: Path):
    venv_python = ("#!/bin/sh\ncase \"$*\" in *'-e .[test]'*) "
                   "echo 'no network' >&2; exit 1;; esac\nexit 0\n")
    body = ("mkdir -p .venv/bin\ncat > .venv/bin/python <<'EOF'\n"
            + venv_python + "EOF\nchmod +x .venv/bin/python\n")
    python = _fake_python(make_dir / "py", body)
    for _ in range(2):   # the second make tries again
        proc = _make(f"PYTHON={python}", ".venv/.installed", cwd=make_dir)
        assert proc.returncode != 0 and "no network" in proc.stderr
        assert "pip install failed" in proc.stderr
        assert not (make_dir / ".venv" / ".installed").exists()
