"""The system step of set-up: which Debian packages, and what happens when
one is missing (root: apt-get; otherwise: one message with one command)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minios_lab.build import sysdeps
from minios_lab.build.sysdeps import Need

REPO = Path(__file__).resolve().parent.parent
ABSENT = Need("frobnicator", "a tool no machine has", lambda: False)
PRESENT = Need("coreutils", "always there", lambda: True)


@pytest.fixture
def apt_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record apt-get calls instead of running them."""
    calls: list[list[str]] = []

    def fake_apt(args: list[str], quiet: bool = False) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(sysdeps, "_apt", fake_apt)
    return calls


def test_this_machine_has_everything() -> None:
    assert sysdeps.missing() == []


def test_the_needs_cover_what_the_build_uses() -> None:
    packages = {n.package for n in sysdeps.NEEDS}
    assert {"python3-venv", "python3-dev", "gcc", "libc6-dev", "binutils",
            "qemu-system-x86", "gdb"} <= packages


def test_not_root_prints_one_command_and_installs_nothing(
        monkeypatch: pytest.MonkeyPatch, apt_calls: list[list[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sysdeps, "NEEDS", (PRESENT, ABSENT))
    monkeypatch.setattr(sysdeps, "is_root", lambda: False)
    monkeypatch.setattr(sysdeps, "lists_stale", lambda packages: False)
    assert sysdeps.ensure() == 1
    assert apt_calls == []
    err = capsys.readouterr().err
    commands = [ln.strip() for ln in err.splitlines()
                if ln.strip().startswith("sudo")]
    assert commands == [
        "sudo apt-get install -y --no-install-recommends frobnicator"]
    assert "frobnicator" in err and "a tool no machine has" in err
    assert "coreutils" not in err


def test_the_command_updates_stale_lists_first() -> None:
    command = sysdeps.install_command(["gcc", "gdb"], update=True)
    assert command == ("sudo apt-get update && sudo apt-get install -y "
                       "--no-install-recommends gcc gdb")


def test_root_updates_stale_lists_then_installs(
        monkeypatch: pytest.MonkeyPatch, apt_calls: list[list[str]]) -> None:
    installed: set[str] = set()
    need = Need("frobnicator", "test", lambda: "frobnicator" in installed)

    def fake_apt(args: list[str], quiet: bool = False) -> int:
        apt_calls.append(args)
        if args[0] == "install":
            installed.update(a for a in args[1:] if not a.startswith("-"))
        return 0

    monkeypatch.setattr(sysdeps, "_apt", fake_apt)
    monkeypatch.setattr(sysdeps, "NEEDS", (need,))
    monkeypatch.setattr(sysdeps, "is_root", lambda: True)
    monkeypatch.setattr(sysdeps, "lists_stale", lambda packages: True)
    assert sysdeps.ensure() == 0
    assert [call[0] for call in apt_calls] == ["update", "install"]
    assert "frobnicator" in apt_calls[1]


def test_root_with_fresh_lists_does_not_update(
        monkeypatch: pytest.MonkeyPatch, apt_calls: list[list[str]]) -> None:
    monkeypatch.setattr(sysdeps, "NEEDS", (ABSENT,))
    monkeypatch.setattr(sysdeps, "is_root", lambda: True)
    monkeypatch.setattr(sysdeps, "lists_stale", lambda packages: False)
    assert sysdeps.ensure() == 1          # still missing after install
    assert [call[0] for call in apt_calls] == ["install"]


def test_lists_missing_or_old_are_stale(tmp_path: Path) -> None:
    assert sysdeps.lists_stale([], tmp_path / "nowhere")
    assert sysdeps.lists_stale([], tmp_path)           # no Packages file
    index = tmp_path / "deb.debian.org_debian_dists_bookworm_main_Packages"
    index.write_text("")
    now = time.time()
    assert not sysdeps.lists_stale([], tmp_path, now=now)
    assert sysdeps.lists_stale([], tmp_path, now=now + 2 * 24 * 3600)


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="not Debian")
def test_lists_without_a_package_are_stale(tmp_path: Path) -> None:
    (tmp_path / "x_Packages").write_text("")
    assert sysdeps.lists_stale(["no-such-package-minios-lab"], tmp_path)


def test_python_headers_are_checked_where_sysconfig_says(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = {"include": str(tmp_path), "platinclude": str(tmp_path)}
    monkeypatch.setattr(sysdeps.sysconfig, "get_paths", lambda: paths)
    assert not sysdeps.python_headers_present()
    (tmp_path / "Python.h").write_text("")
    assert not sysdeps.python_headers_present()     # pyconfig.h missing
    (tmp_path / "pyconfig.h").write_text("")
    assert sysdeps.python_headers_present()


def test_runs_before_the_venv_with_the_standard_library_only() -> None:
    """make runs it with the system python3: nothing outside the stdlib."""
    code = ("import sys, minios_lab.build.sysdeps; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('cffi', 'numpy', 'matplotlib', 'elftools')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = subprocess.run([sys.executable, "-m", "minios_lab.build.sysdeps",
                            "--check"], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr
