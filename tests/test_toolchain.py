"""Finding the tools: overrides, the cache, doctor(), the QEMU arguments."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from minios_lab import toolchain
from minios_lab.boot import qemu_module_arg, xen_command_line
from minios_lab.errors import ToolchainError
from minios_lab.toolchain import Check

OVERRIDES = ("MINIOS_LAB_CACHE", "MINIOS_XEN", "MINIOS_XEN_INCLUDE",
             "MINIOS_QEMU", "CC")


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder and no overrides."""
    for name in OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MINIOS_LAB_CACHE", str(cache))
    return cache


def _headers(root: Path) -> Path:
    (root / "xen").mkdir(parents=True)
    (root / "xen" / "xen.h").write_text("/* fake */\n")
    return root


def test_cache_dir_follows_env(empty_cache: Path) -> None:
    assert toolchain.cache_dir() == empty_cache
    assert empty_cache.is_dir()


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch,
                           tmp_path: Path) -> None:
    monkeypatch.delenv("MINIOS_LAB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert toolchain.cache_dir() == tmp_path / ".cache" / "minios-lab"


def test_xen_include_override(empty_cache: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    include = _headers(tmp_path / "inc")
    monkeypatch.setenv("MINIOS_XEN_INCLUDE", str(include))
    assert toolchain.xen_include_dir() == include
    monkeypatch.setenv("MINIOS_XEN_INCLUDE", str(tmp_path / "nowhere"))
    with pytest.raises(ToolchainError, match="MINIOS_XEN_INCLUDE"):
        toolchain.xen_include_dir()


def test_xen_binary_override(empty_cache: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    xen = tmp_path / "xen"
    xen.write_bytes(b"\x7fELF")
    monkeypatch.setenv("MINIOS_XEN", str(xen))
    assert toolchain.xen_binary() == xen
    monkeypatch.setenv("MINIOS_XEN", str(tmp_path / "missing"))
    with pytest.raises(ToolchainError, match="MINIOS_XEN"):
        toolchain.xen_binary()


def test_qemu_override(empty_cache: Path, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    qemu = tmp_path / "my-qemu"
    qemu.write_text("#!/bin/sh\n")
    qemu.chmod(0o755)
    monkeypatch.setenv("MINIOS_QEMU", str(qemu))
    assert toolchain.qemu_binary() == qemu
    monkeypatch.setenv("MINIOS_QEMU", str(tmp_path / "missing"))
    with pytest.raises(ToolchainError, match="MINIOS_QEMU"):
        toolchain.qemu_binary()


def test_missing_qemu_names_the_command(empty_cache: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))   # nothing to find
    with pytest.raises(ToolchainError,
                       match="apt-get install .*qemu-system-x86"):
        toolchain.qemu_binary(install=False)


def test_no_fetch_means_error(empty_cache: Path) -> None:
    with pytest.raises(ToolchainError, match="minios-lab setup"):
        toolchain.xen_include_dir(fetch=False)
    with pytest.raises(ToolchainError, match="minios-lab setup"):
        toolchain.xen_binary(fetch=False)


def test_cached_tree_is_used(empty_cache: Path) -> None:
    include = empty_cache / "xen-4.17" / "root" / "usr" / "include"
    _headers(include)
    assert toolchain.xen_include_dir(fetch=False) == include


def test_concurrent_fetches_fetch_once(
        empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_fetch(package: str, dest: Path) -> str:
        calls.append(package)
        time.sleep(0.2)
        _headers(dest / "usr" / "include")
        return "1.0"

    monkeypatch.setattr(toolchain, "_fetch_package", fake_fetch)
    results: list[Path] = []
    threads = [threading.Thread(
        target=lambda: results.append(toolchain.xen_include_dir()))
        for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert calls == ["libxen-dev"]
    assert len(set(results)) == 1 and len(results) == 3
    leftovers = [p.name for p in (empty_cache / "xen-4.17").iterdir()
                 if p.name.startswith(".root-")]
    assert leftovers == []


def test_version_file_keeps_one_line_per_package(empty_cache: Path) -> None:
    toolchain._record_version("libxen-dev", "1")
    toolchain._record_version("xen-hypervisor-4.17-amd64", "2")
    toolchain._record_version("libxen-dev", "3")
    text = (empty_cache / "xen-4.17" / "VERSION").read_text()
    assert text == "libxen-dev 3\nxen-hypervisor-4.17-amd64 2\n"


def test_doctor_shape(empty_cache: Path) -> None:
    checks = toolchain.doctor()
    assert all(isinstance(c, Check) for c in checks)
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    for expected in ("C compiler", "QEMU", "Xen hypervisor", "Xen headers",
                     "clang-format", "cache dir writable",
                     "Python package cffi", "Python package matplotlib",
                     "Python package pyelftools",
                     "Python package jupyterlab"):
        assert expected in names
    for check in checks:
        assert isinstance(check.ok, bool) and isinstance(check.detail, str)
        assert check.ok or check.fix, check
    by_name = {c.name: c for c in checks}
    assert not by_name["Xen headers"].ok      # the cache is empty
    assert by_name["cache dir writable"].ok
    assert by_name["clang-format"].optional


def test_doctor_reports_missing_compiler(
        empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    check = {c.name: c for c in toolchain.doctor()}["C compiler"]
    assert not check.ok and "CC" in check.fix


def test_commas_are_doubled_for_qemu() -> None:
    elf = Path("/k/build/minios.elf")
    assert qemu_module_arg(elf, "") == "/k/build/minios.elf"
    assert qemu_module_arg(elf, "a=b") == "/k/build/minios.elf a=b"
    assert qemu_module_arg(elf, "list=a,b,,c") == \
        "/k/build/minios.elf list=a,,b,,,,c"


def test_xen_command_line() -> None:
    line = xen_command_line(32, "sched=credit")
    assert line.split() == ["console=com1", "noreboot", "dom0_mem=32M",
                            "loglvl=all", "guest_loglvl=all", "sched=credit"]
    assert xen_command_line(64).endswith("guest_loglvl=all")
