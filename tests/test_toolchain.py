"""Finding the tools: overrides, the cache, doctor(), the QEMU arguments."""
from __future__ import annotations

import errno
import struct
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given, settings, strategies as st

from helpers import refused
from minios_lab.build import toolchain

from minios_lab.build import toolcheck
from minios_lab.guest.boot import qemu_module_arg, xen_command_line
from minios_lab.errors import ToolchainError
from minios_lab.build.toolchain import Check

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


def _fake_xen(path: Path, magic: int = toolcheck.MULTIBOOT1,
              at: int = 0x88, checksum_ok: bool = True) -> Path:
    """An ELF32 file with a multiboot header where Xen has its own."""
    head = bytearray(b"\x7fELF\x01\x01\x01" + bytes(0x2000))
    flags = 0x00010003
    check = (-(magic + flags)) & 0xFFFFFFFF
    if not checksum_ok:
        check ^= 1
    struct.pack_into("<III", head, at, magic, flags, check)
    path.write_bytes(bytes(head))
    return path


def test_cache_dir_follows_env(empty_cache: Path) -> None:
    assert toolchain.cache_dir() == empty_cache
    assert empty_cache.is_dir()


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch,
                           tmp_path: Path) -> None:
    monkeypatch.delenv("MINIOS_LAB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert toolchain.cache_dir() == tmp_path / ".cache" / "minios-lab"


def _override_is_used_and_checked(monkeypatch: pytest.MonkeyPatch,
                                  variable: str, find: Callable[[], Path],
                                  given: Path,
                                  missing: Path) -> None:
    """`find()` returns what `variable` names, and names `variable` when
    it points nowhere."""
    monkeypatch.setenv(variable, str(given))
    assert find() == given
    monkeypatch.setenv(variable, str(missing))
    with pytest.raises(ToolchainError, match=variable):
        find()


def test_xen_include_override(empty_cache: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    _override_is_used_and_checked(
        monkeypatch, "MINIOS_XEN_INCLUDE", toolchain.xen_include_dir,
        _headers(tmp_path / "inc"), tmp_path / "nowhere")


def test_xen_binary_override(empty_cache: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    _override_is_used_and_checked(
        monkeypatch, "MINIOS_XEN", toolchain.xen_binary,
        _fake_xen(tmp_path / "xen"), tmp_path / "missing")


def test_qemu_override(empty_cache: Path, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    qemu = tmp_path / "my-qemu"
    qemu.write_text("#!/bin/sh\n")
    qemu.chmod(0o755)
    _override_is_used_and_checked(
        monkeypatch, "MINIOS_QEMU", toolchain.qemu_binary,
        qemu, tmp_path / "missing")


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

    monkeypatch.setattr(toolchain, "fetch_package", fake_fetch)
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
    toolchain.record_version("libxen-dev", "1")
    toolchain.record_version("xen-hypervisor-4.17-amd64", "2")
    toolchain.record_version("libxen-dev", "3")
    text = (empty_cache / "xen-4.17" / "VERSION").read_text()
    assert text == "libxen-dev 3\nxen-hypervisor-4.17-amd64 2\n"


def test_doctor_shape(empty_cache: Path) -> None:
    checks = toolchain.doctor()
    assert all(isinstance(c, Check) for c in checks)
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    for expected in ("C compiler", "QEMU", "Xen hypervisor", "Xen headers",
                     "clang-format", "cache dir writable",
                     "guest build dir writable", "Python headers", "gdb",
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


# --- every toolchain and cache fault is a ToolchainError with its fix --------

def test_missing_compiler_is_a_toolchain_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    err = str(refused(ToolchainError, "/nonexistent/cc",
                      toolchain.check_compiler))
    assert "apt-get install -y gcc" in err
    assert "set CC" in err


def test_a_program_that_is_no_compiler_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/bin/true")   # exits 0, writes nothing
    with pytest.raises(ToolchainError, match="not a working C compiler"):
        toolchain.check_compiler()
    check = {c.name: c for c in toolchain.doctor()}["C compiler"]
    assert not check.ok and "not a working C compiler" in check.detail
    assert "apt-get install" in check.fix


def test_a_compiler_that_fails_shows_its_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cc = tmp_path / "badcc"
    cc.write_text("#!/bin/sh\necho 'badcc: licence expired' >&2\nexit 1\n")
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    with pytest.raises(ToolchainError, match="licence expired"):
        toolchain.check_compiler()


def test_the_real_compiler_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    assert Path(toolchain.check_compiler()).is_file()


def test_missing_python_headers_name_python3_dev(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = str(tmp_path / "include")
    monkeypatch.setattr(toolcheck.sysconfig, "get_paths",
                        lambda: {"include": empty, "platinclude": empty})
    with pytest.raises(ToolchainError) as err:
        toolchain.python_include_dir()
    assert "pyconfig.h" in str(err.value)
    assert "apt-get install -y python3-dev" in str(err.value)
    check = {c.name: c for c in toolchain.doctor()}["Python headers"]
    assert not check.ok and check.fix == toolcheck.PYTHON_DEV_FIX


def test_python_headers_found_here() -> None:
    assert (toolchain.python_include_dir() / "Python.h").is_file()


def test_cache_under_a_file_is_a_toolchain_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("MINIOS_LAB_CACHE", str(blocker / "sub"))
    for call in (toolchain.cache_dir, toolchain.xen_include_dir,
                 toolchain.xen_binary):
        with pytest.raises(ToolchainError) as err:
            call()
        assert "MINIOS_LAB_CACHE" in str(err.value)
        assert str(blocker / "sub") in str(err.value)


def test_doctor_survives_an_unwritable_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MINIOS_LAB_CACHE", str(blocker / "sub"))
    by_name = {c.name: c for c in toolchain.doctor()}
    cache = by_name["cache dir writable"]
    assert not cache.ok and "MINIOS_LAB_CACHE" in cache.fix
    assert not by_name["Xen headers"].ok and by_name["Xen headers"].fix


def test_full_disk_says_so(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError) as err:
        with toolcheck.cache_faults(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert "full" in str(err.value) and "free some space" in str(err.value)


def test_full_disk_while_recording_version(
        empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Path, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    toolchain.cache_dir()
    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(ToolchainError, match="full"):
        toolchain.record_version("libxen-dev", "1")


def test_xen_override_that_is_not_xen(
        empty_cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIOS_XEN", "/etc/hostname")
    err = str(refused(ToolchainError, "not an ELF file",
                      toolchain.xen_binary))
    assert "MINIOS_XEN" in err
    check = {c.name: c for c in toolchain.doctor()}["Xen hypervisor"]
    assert not check.ok and "MINIOS_XEN" in check.fix


def test_an_elf_without_multiboot_is_not_xen(tmp_path: Path) -> None:
    elf = tmp_path / "minios.elf"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9000))
    assert "multiboot" in toolcheck.xen_image_problem(elf)
    bad_sum = _fake_xen(tmp_path / "bad", checksum_ok=False)
    assert "multiboot" in toolcheck.xen_image_problem(bad_sum)
    gz = tmp_path / "xen.gz"
    gz.write_bytes(b"\x1f\x8b\x08" + bytes(100))
    assert "gunzip" in toolcheck.xen_image_problem(gz)


@settings(max_examples=50, deadline=None)
@given(offset=st.integers(0, 8180).map(lambda n: n - n % 4),
       magic=st.sampled_from([toolcheck.MULTIBOOT1]))
def test_multiboot_header_found_anywhere_allowed(
        tmp_path_factory: pytest.TempPathFactory, offset: int,
        magic: int) -> None:
    path = tmp_path_factory.mktemp("xen") / "xen"
    _fake_xen(path, magic, at=max(offset, 8))
    assert toolcheck.xen_image_problem(path) is None


def test_a_broken_cached_xen_is_not_used(empty_cache: Path) -> None:
    broken = toolchain.xen_dir() / toolchain.HYPERVISOR_NAME
    broken.write_bytes(b"truncated")
    with pytest.raises(ToolchainError, match="cached Xen is broken"):
        toolchain.xen_binary(fetch=False)


def test_the_cached_xen_is_a_xen_image() -> None:
    """The hypervisor that set-up fetched passes the same test."""
    assert toolcheck.xen_image_problem(toolchain.xen_binary()) is None


def test_xen_versions_from_the_version_file(
        empty_cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert toolchain.xen_versions() == {}
    toolchain.record_version("xen-hypervisor-4.17-amd64", "4.17.5+72-1")
    toolchain.record_version("libxen-dev", "4.17.5+72-1")
    assert toolchain.xen_versions() == {
        "xen-hypervisor-4.17-amd64": "4.17.5+72-1",
        "libxen-dev": "4.17.5+72-1"}
    xen = _fake_xen(tmp_path / "xen")
    monkeypatch.setenv("MINIOS_XEN", str(xen))
    assert toolchain.xen_versions()["xen-hypervisor-4.17-amd64"] == \
        f"MINIOS_XEN={xen}"


def test_doctor_shows_the_xen_build(
        empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_xen(toolchain.xen_dir() / toolchain.HYPERVISOR_NAME)
    _headers(toolchain.xen_dir() / "root" / "usr" / "include")
    toolchain.record_version("xen-hypervisor-4.17-amd64", "4.17.9-1")
    toolchain.record_version("libxen-dev", "4.17.8-1")
    monkeypatch.setattr(toolchain, "candidate", lambda package: "")
    by_name = {c.name: c for c in toolchain.doctor(look_for_newer=True)}
    assert by_name["Xen hypervisor"].ok
    assert "Debian 4.17.9-1" in by_name["Xen hypervisor"].detail
    assert "Debian 4.17.8-1" in by_name["Xen headers"].detail
    monkeypatch.setattr(toolchain, "candidate", lambda package: "4.17.10-1")
    detail = {c.name: c for c in toolchain.doctor(look_for_newer=True)}[
        "Xen hypervisor"].detail
    assert "newer build 4.17.10-1 available" in detail


def test_a_newer_xen_build_is_noticed(
        empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toolchain.record_version("xen-hypervisor-4.17-amd64", "4.17.5+72-1")
    toolchain.record_version("libxen-dev", "4.17.5+72-1")
    offered = {"xen-hypervisor-4.17-amd64": "4.17.7-1",
               "libxen-dev": "4.17.3-1"}
    monkeypatch.setattr(toolchain, "candidate", offered.get)
    assert toolchain.newer_xen_build() == {
        "xen-hypervisor-4.17-amd64": "4.17.7-1"}


def _refresh_xen_to_4177(monkeypatch: pytest.MonkeyPatch, package: str,
                         fake_fetch: Callable[[str, Path], str]) -> None:
    """_refresh_xen() with apt offering 4.17.7-1 of `package`, fetched by
    `fake_fetch`, and apt's lists taken as fresh."""
    monkeypatch.setattr(toolchain, "fetch_package", fake_fetch)
    monkeypatch.setattr(toolchain, "candidate", {package: "4.17.7-1"}.get)
    monkeypatch.setattr(toolchain.sysdeps, "update_lists_if_stale",
                        lambda packages: None)
    toolchain._refresh_xen()


def test_setup_replaces_an_older_cached_xen(
        empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _fake_xen(toolchain.xen_dir() / toolchain.HYPERVISOR_NAME)
    toolchain.record_version("xen-hypervisor-4.17-amd64", "4.17.5-1")
    fetched: list[str] = []

    def fake_fetch(package: str, dest: Path) -> str:
        fetched.append(package)
        boot = dest / "boot"
        boot.mkdir(parents=True)
        import gzip
        with gzip.open(boot / "xen-4.17-amd64.gz", "wb") as f:
            f.write(_fake_xen(dest / "plain", at=0x100).read_bytes())
        toolchain.record_version(package, "4.17.7-1")
        return "4.17.7-1"

    _refresh_xen_to_4177(monkeypatch, "xen-hypervisor-4.17-amd64", fake_fetch)
    assert fetched == ["xen-hypervisor-4.17-amd64"]
    assert toolchain.xen_versions()["xen-hypervisor-4.17-amd64"] == \
        "4.17.7-1"
    assert toolcheck.xen_image_problem(old) is None   # replaced atomically


def test_doctor_never_crashes(empty_cache: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(toolchain, "qemu_binary", boom)
    monkeypatch.setattr(toolchain, "xen_binary", boom)
    by_name = {c.name: c for c in toolchain.doctor()}
    assert not by_name["QEMU"].ok and "unforeseen" in by_name["QEMU"].detail
    assert not by_name["Xen hypervisor"].ok


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


def test_setup_replaces_older_headers_and_leaves_no_scratch(
        empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    include = toolchain.xen_dir() / "root" / "usr" / "include"
    _headers(include)
    toolchain.record_version("libxen-dev", "4.17.5-1")

    def fake_fetch(package: str, dest: Path) -> str:
        (_headers(dest / "usr" / "include") / "xen" / "new.h").write_text("")
        toolchain.record_version(package, "4.17.7-1")
        return "4.17.7-1"

    _refresh_xen_to_4177(monkeypatch, "libxen-dev", fake_fetch)
    assert (include / "xen" / "new.h").is_file()
    assert toolchain.xen_versions()["libxen-dev"] == "4.17.7-1"
    leftovers = [p.name for p in toolchain.xen_dir().iterdir()
                 if p.name.startswith(".root-")]
    assert leftovers == []
