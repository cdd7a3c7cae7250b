"""The guest as a domU: `xl create -c kernel/domain_config` beside a Linux
dom0 built from Debian's packages, on Xen in QEMU (minios_lab.guest.domu,
minios_lab.guest.dom0).

Tests marked ``domu`` boot (about 12 s each on 2 cores, the first one also
fetches the dom0's packages once): ``pytest -m domu tests/test_domu.py``;
the others check the initramfs builder, its cache and the console sorting
without QEMU.
"""
from __future__ import annotations

import io
import lzma
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minios_lab.errors import ToolchainError
from minios_lab.guest import cpio, dom0, domu
from minios_lab.guest.boot import boot
from minios_lab.guest.qemu import start_time

from conftest import edit

REPO = Path(__file__).resolve().parent.parent
KERNEL = REPO / "kernel"
BOOT_TIMEOUT = 120.0


# --- the newc archive --------------------------------------------------------

def read_newc(data: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """Every (name, mode, data, rdev) of one or more concatenated newc
    archives, read as Linux's initramfs unpacker does."""
    entries, at = [], 0
    while at < len(data):
        if data[at:at + 4] == b"\0\0\0\0":
            at += 4                      # padding between archives
            continue
        assert data[at:at + 6] == b"070701", f"bad magic at {at}"
        fields = [int(data[at + 6 + 8 * i:at + 14 + 8 * i], 16)
                  for i in range(13)]
        namesize, filesize, mode = fields[11], fields[6], fields[1]
        name_at = at + 110
        name = data[name_at:name_at + namesize - 1].decode()
        assert data[name_at + namesize - 1] == 0
        body = name_at + namesize + (-(name_at + namesize) % 4)
        assert body % 4 == 0
        at = body + filesize + (-(body + filesize) % 4)
        if name != "TRAILER!!!":
            entries.append((name, mode, data[body:body + filesize],
                            (fields[9], fields[10])))
    return entries


names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                              blacklist_characters="/"),
                min_size=1, max_size=40)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(names, st.binary(max_size=600), max_size=8))
def test_cpio_round_trip(files: dict[str, bytes]) -> None:
    out = io.BytesIO()
    writer = cpio.CpioWriter(out)
    writer.directory("d")
    for name, data in files.items():
        writer.file(f"d/{name}", data, executable=len(data) % 2 == 1)
    writer.symlink("link", "d")
    writer.char_device("console", 5, 1)
    writer.close()
    raw = out.getvalue()
    assert len(raw) % 512 == 0
    entries = read_newc(raw)
    assert entries[0][0] == "d" and stat.S_ISDIR(entries[0][1])
    got = {n[2:]: (m, d) for n, m, d, _ in entries[1:-2]}
    assert {n: d for n, (m, d) in got.items()} == files
    for name, (mode, data) in got.items():
        assert stat.S_ISREG(mode)
        assert bool(mode & 0o111) == (len(data) % 2 == 1)
    assert entries[-2][:3] == ("link", stat.S_IFLNK | 0o777, b"d")
    assert stat.S_ISCHR(entries[-1][1]) and entries[-1][3] == (5, 1)


def test_guest_archive_follows_the_dom0_archive(tmp_path: Path) -> None:
    base = tmp_path / "base.cpio"
    with open(base, "wb") as out:
        writer = cpio.CpioWriter(out)
        writer.file("init", b"#!/bin/sh\n", executable=True)
        writer.close()
    image = tmp_path / "minios.elf"
    image.write_bytes(b"\x7fELF guest")
    made = dom0.Dom0(tmp_path / "vmlinux", base, {})
    path = dom0.boot_initramfs(made, image, 'name = "x"\n', "ticks=5 a=b",
                               48, tmp_path)
    entries = {n: d for n, _, d, _ in read_newc(path.read_bytes())}
    assert entries["init"] == b"#!/bin/sh\n"
    assert entries["kernel/build/minios.elf"] == b"\x7fELF guest"
    assert entries["kernel/domain_config"] == b'name = "x"\n'
    assert entries["kernel/extra"] == b"ticks=5 a=b"
    assert entries["kernel/memory"] == b"48"


# --- the kernel --------------------------------------------------------------

def test_vmlinux_is_the_xz_payload() -> None:
    elf = b"\x7fELF" + bytes(range(256)) * 40
    payload = lzma.compress(elf, format=lzma.FORMAT_XZ)
    fake = b"MZ setup code" + dom0.XZ_MAGIC + b"not xz" + payload + b"tail"
    assert dom0.extract_vmlinux(fake) == elf


def test_vmlinux_refuses_an_image_without_an_elf() -> None:
    payload = lzma.compress(b"not an ELF", format=lzma.FORMAT_XZ)
    with pytest.raises(ToolchainError, match="xz-compressed ELF"):
        dom0.extract_vmlinux(b"bz" + payload)


# --- the initramfs cache -----------------------------------------------------

@pytest.fixture
def fake_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINIOS_LAB_CACHE", str(tmp_path / "cache"))
    stage = tmp_path / "stage"
    (stage / "tree/usr/bin").mkdir(parents=True)
    (stage / "tree/usr/bin/busybox").write_bytes(b"busybox")
    (stage / "tree/bin").symlink_to("usr/bin")
    (stage / "VERSIONS").write_text("busybox-static 1:1.35.0-4\n")
    return stage


def test_initramfs_is_built_once_per_input(fake_stage: Path,
                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first = dom0.build_initramfs(fake_stage, out)
    made = first.stat().st_mtime_ns, first.stat().st_ino
    assert dom0.build_initramfs(fake_stage, out) == first
    assert (first.stat().st_mtime_ns, first.stat().st_ino) == made
    entries = {n: (m, d) for n, m, d, _ in read_newc(first.read_bytes())}
    assert entries["init"][1] == dom0.INIT_SCRIPT.encode()
    assert entries["usr/bin/busybox"][1] == b"busybox"
    assert stat.S_ISLNK(entries["bin"][0])
    assert stat.S_ISCHR(entries["dev/console"][0])
    assert list(out.glob("*.cpio")) == [first]


def test_initramfs_is_rebuilt_when_an_input_changes(
        fake_stage: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    seen = {dom0.build_initramfs(fake_stage, out)}
    changed_script = dom0.build_initramfs(fake_stage, out,
                                          dom0.INIT_SCRIPT + "# more\n")
    assert changed_script not in seen
    assert b"# more" in changed_script.read_bytes()
    seen.add(changed_script)
    (fake_stage / "VERSIONS").write_text("busybox-static 1:1.36.1-1\n")
    newer_package = dom0.build_initramfs(fake_stage, out)
    assert newer_package not in seen
    seen.add(newer_package)
    source = dom0.builder_source()
    monkeypatch.setattr(dom0, "builder_source", lambda: source + "#\n")
    new_builder = dom0.build_initramfs(fake_stage, out)
    assert new_builder not in seen
    assert len(list(out.glob("*.cpio"))) == 4


def test_a_missing_library_names_its_soname(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="libnothere.so.9"):
        dom0._find_library(tmp_path, "libnothere.so.9")


def test_symlinks_are_followed_inside_the_tree(tmp_path: Path) -> None:
    (tmp_path / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "lib/x86_64-linux-gnu/libc.so.6").write_bytes(b"libc")
    (tmp_path / "lib64").mkdir()
    (tmp_path / "lib64/ld.so").symlink_to("/lib/x86_64-linux-gnu/libc.so.6")
    from pathlib import PurePosixPath
    found = dom0._inside(tmp_path, PurePosixPath("lib64/ld.so"))
    assert found == tmp_path / "lib/x86_64-linux-gnu/libc.so.6"


# --- the console -------------------------------------------------------------

SERIAL = [
    "(XEN) Xen version 4.17.7 (Debian 4.17.7+13) (gcc) debug=n",
    "[    3.1] Run /init as init process",
    "dom0: toolstack ready",
    "Parsing config from domain_config",
    "domU| minios-lab guest: Mini-OS course kernel",
    "domU| half a line(XEN) d1v0 something",
    "dom0: xl create exited with status 0",
    "dom0: xl: Domain 1 has shut down, reason code 1 0x1",
    "dom0: powering off",
    "(XEN) Entering ACPI S5 state.",
]


def test_console_lines_are_sorted_by_source() -> None:
    echoed: list[str] = []
    watch = domu.DomuWatch(echoed.append)
    for line in SERIAL:
        watch.add(line)
    assert watch.guest == ["minios-lab guest: Mini-OS course kernel",
                           "half a line"]
    assert watch.xen == [SERIAL[0], "(XEN) d1v0 something",
                         "(XEN) Entering ACPI S5 state."]
    assert "Parsing config from domain_config" in watch.dom0
    assert not any("dom0" in line or "Parsing" in line
                   for line in watch.guest)
    assert "(dom0) dom0: toolstack ready" in watch.lines
    assert echoed == watch.lines
    assert watch.reason == 1 and watch.xl_status == 0
    assert watch.event == "poweroff"
    assert "(XEN) Entering ACPI S5 state." not in watch.domu


@pytest.mark.parametrize("bad", ['say "hi"', "a\\b", "two\nlines"])
def test_a_command_line_xl_cannot_hold_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="extra="):
        boot(bad, build=False, domu=True)


def test_a_missing_image_is_an_error_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "domain_config").write_text('kernel = "build/minios.elf"\n')
    result = boot("", build=False, domu=True, kernel_dir=tmp_path)
    assert result.outcome == "error"
    assert f"no guest image {tmp_path}/build/minios.elf" in str(result)


def test_domain_config_is_the_one_the_domu_boot_runs() -> None:
    text = (KERNEL / "domain_config").read_text()
    settings_ = dict(line.split(" = ", 1) for line in text.splitlines()
                     if " = " in line and not line.startswith("#"))
    assert settings_["on_crash"] == '"destroy"'
    assert settings_["kernel"] == '"build/minios.elf"'
    assert settings_["type"] == '"pv"'


# --- booting as a domU (slow) ------------------------------------------------

def _gone(result) -> bool:
    return result.qemu_pid is not None and start_time(result.qemu_pid) is None


@pytest.mark.domu
def test_poweroff_gives_reason_poweroff(guest_image: Path,
                                       shared_boot) -> None:
    result = boot("poweroff=1", build=False, domu=True,
                  timeout=BOOT_TIMEOUT)
    assert result.outcome == "shutdown", result.report()
    assert result.shutdown_reason == "poweroff"
    assert _gone(result)
    assert any("Waiting for domain minios-lab (domid 1)" in line
               for line in result.dom0_lines), "not kernel/domain_config?"
    assert not any(line.startswith(("dom0:", "Parsing config", "[ "))
                   for line in result.guest_lines)
    assert result.xen_version and result.xen_version.startswith("4.17.")
    assert result.succeeded, result.report()
    assert set(result.chapters.values()) == {"PASS"}, result.chapters
    as_dom0 = shared_boot("poweroff=1")       # the same guest as dom0
    assert as_dom0.chapters and set(result.chapters) == set(as_dom0.chapters)
    text = "\n".join(result.guest_lines)
    assert 'cmd_line       "poweroff=1"' in text
    assert "flags          0x0\n" in text        # no SIF_INITDOMAIN: a domU


@pytest.mark.domu
def test_a_crash_is_reported_with_the_function(guest_image: Path) -> None:
    result = boot("crash=1", build=False, domu=True, timeout=BOOT_TIMEOUT)
    assert result.outcome == "crash", result.report()
    assert result.crash is not None and result.crash.kind == "domU crash"
    assert _gone(result)
    assert result.crash.symbol and result.crash.symbol.startswith(
        "start_kernel+"), result.crash.report()
    assert result.crash.source and result.crash.source.startswith(
        "kernel/kernel.c:")
    assert result.crash.cr2 == 0xdead00000


@pytest.mark.domu
def test_xen_killing_the_domu_is_a_symbolized_crash(
        kernel_copy: Path) -> None:
    """A fault before the guest has a trap table: Xen kills the domain,
    with its "d1v0 Unhandled" register dump on the serial line."""
    edit(kernel_copy / "kernel.c", "    setup_safety_net();\n\n"
         "    crash_if_asked();\n", "    crash_if_asked();\n"
         "    setup_safety_net();\n\n")
    result = boot("crash=1", domu=True, timeout=BOOT_TIMEOUT,
                  kernel_dir=kernel_copy)
    assert result.outcome == "crash", result.report()
    assert _gone(result)
    crash = result.crash
    assert crash is not None and crash.kind == "domU crash"
    assert any("d1v0" in line for line in crash.dump), crash.dump
    assert crash.symbol and crash.symbol.startswith("start_kernel+"), \
        result.report()
    assert crash.source and crash.source.startswith("kernel/kernel.c:")
    assert crash.cr2 == 0xdead00000


@pytest.mark.domu
def test_a_hanging_guest_ends_in_timeout(guest_image: Path) -> None:
    # The guest's 8 s count from when the dom0 is ready (~7 s after QEMU
    # starts, ~15 s on a loaded machine); the guest says it spins ~2 s
    # later. Counted from QEMU's start, 8 s would not see the guest at all.
    result = boot("hang=1", build=False, domu=True, timeout=8)
    assert result.outcome == "timeout", result.report()
    assert any("Parsing config from domain_config" in line
               for line in result.dom0_lines), result.report()
    assert result.shutdown_reason is None
    assert _gone(result)
    assert "hang=1: spinning forever" in result.guest_lines


@pytest.mark.domu
def test_a_dom0_that_is_not_ready_in_time_is_a_timeout(
        guest_image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dom0's start has a limit of its own (DOM0_START_LIMIT, made
    short here): past it, the boot ends before the guest ever ran."""
    monkeypatch.setattr(domu, "DOM0_START_LIMIT", 1.0)
    result = boot("", build=False, domu=True, timeout=1)
    assert result.outcome == "timeout", result.report()
    assert result.guest_lines == [] and result.elapsed < 10
    assert _gone(result)


@pytest.mark.domu
def test_a_configuration_xl_refuses_is_an_error(kernel_copy: Path,
                                                guest_image: Path) -> None:
    (kernel_copy / "build").mkdir()
    (kernel_copy / "build/minios.elf").write_bytes(guest_image.read_bytes())
    config = kernel_copy / "domain_config"
    config.write_text(config.read_text().replace('type = "pv"',
                                                 'type = "nonsense"'))
    result = boot("", build=False, domu=True, timeout=BOOT_TIMEOUT,
                  kernel_dir=kernel_copy)
    assert result.outcome == "error", result.report()
    assert "xl create failed" in str(result)
    assert "Invalid domain type nonsense" in str(result)
    assert _gone(result)


def _symbol_address(elf: Path, name: str) -> int:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return next(s["st_value"] for s in symtab.iter_symbols()
                    if s.name == name)


def test_xens_register_dump_of_a_domu_is_symbolized(guest_image: Path) -> None:
    """A domU that Xen kills (a fault before its trap table, say) leaves
    only Xen's "d1v0 Unhandled" dump and xl's reason code 3."""
    rip = _symbol_address(guest_image, "start_kernel") + 0x10
    watch = domu.DomuWatch(None)
    for line in [*SERIAL[:4], "domU| minios-lab guest: Mini-OS course kernel",
                 "(XEN) d1v0 Unhandled: vec 14, #PF[0002]",
                 "(XEN) ----[ Xen-4.17.7  x86_64  debug=n ]----",
                 f"(XEN) RIP:    e033:[<{rip:016x}>]",
                 "(XEN) cr2: 0000000dead00000",
                 "dom0: xl create exited with status 0",
                 "dom0: xl: Domain 1 has shut down, reason code 3 0x3",
                 "dom0: powering off"]:
        watch.add(line)
    run = domu._Run(watch, True, 0, "", 9.0, 0)
    result = domu._make_result(["qemu"], guest_image, run)
    assert result.outcome == "crash"
    assert result.crash.kind == "domU crash"
    assert result.crash.symbol == "start_kernel+0x10"
    assert result.crash.cr2 == 0xdead00000
    assert "Unhandled: vec 14" in result.crash.reason
    assert "domU crash at start_kernel+0x10" in str(result)


@pytest.mark.parametrize("reason, outcome, said", [
    (0, "shutdown", "poweroff"), (1, "shutdown", "reboot"),
    (3, "crash", None)])
def test_xls_reason_code_is_the_outcome(reason: int, outcome: str,
                                        said, guest_image: Path) -> None:
    watch = domu.DomuWatch(None)
    for line in [*SERIAL[:4], "dom0: xl: Domain 1 has shut down, reason "
                 f"code {reason} {reason:#x}", "dom0: powering off"]:
        watch.add(line)
    result = domu._make_result([], guest_image, domu._Run(watch, True, 0, "",
                                                          1.0, 0))
    assert (result.outcome, result.shutdown_reason) == (outcome, said)


def test_a_dom0_that_never_reaches_xl_is_an_error(guest_image: Path) -> None:
    watch = domu.DomuWatch(None)
    for line in [*SERIAL[:2], "dom0: xenstored did not start",
                 "dom0: powering off"]:
        watch.add(line)
    result = domu._make_result([], guest_image, domu._Run(watch, True, 0, "",
                                                          1.0, 0))
    assert result.outcome == "error"
    assert "xenstored did not start" in str(result)
    unfinished = domu.DomuWatch(None)
    unfinished.add(SERIAL[2])
    assert domu._make_result([], guest_image, domu._Run(
        unfinished, False, -9, "", 1.0, 0)).outcome == "timeout"
