"""The guest on a real Xen in QEMU: build, boot, read the console, crash.

The boots take one to two seconds each. They are skipped when QEMU or the
Xen hypervisor cannot be found (see `minios-lab doctor`).
"""
from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from conftest import child_booting

from minios_lab.guest import boot as bootmod
from minios_lab.build import toolchain
from minios_lab.guest.boot import (BootResult, boot, build_image, make_crash_report,
                             split_console_line)

REPO = Path(__file__).resolve().parent.parent


def _tools_or_fail() -> None:
    """make test installs them: a missing tool fails, never skips."""
    toolchain.qemu_binary(install=False)
    toolchain.xen_binary()
    toolchain.xen_include_dir()


def _boot(cmdline: str = "", **kwargs) -> BootResult:
    kwargs.setdefault("timeout", 60)
    return boot(cmdline, build=False, **kwargs)


def _nr_pages(result: BootResult) -> int:
    for line in result.guest_lines:
        match = re.search(r"nr_pages\s+(\d+)", line)
        if match:
            return int(match.group(1))
    raise AssertionError("no nr_pages in:\n" + result.report())


def _qemu_gone(pid: int | None) -> bool:
    """No QEMU with this pid is alive (the pid may have been reused)."""
    assert pid is not None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return b"qemu" not in cmdline


# --- real boots --------------------------------------------------------------

@pytest.mark.parametrize("memory_mb", [32, 64])
def test_memory_becomes_nr_pages(shared_boot, memory_mb: int) -> None:
    # Xen's dom0_mem=<N>M gives dom0 exactly N MiB: nr_pages == N * 256.
    # (Xen's "Dom0 alloc." line says N*256 - 1024 "pages to be allocated":
    # the first 4 MiB, which hold the initial mapping, are allocated
    # separately as one chunk, but they count in nr_pages too.)
    result = shared_boot("", memory_mb)
    assert result.outcome == "shutdown", result.report()
    assert _nr_pages(result) == memory_mb * 256


def test_trivial_boot_succeeds(shared_boot) -> None:
    result = shared_boot("")
    assert result.outcome == "shutdown", result.report()
    assert result.shutdown_reason == "reboot"
    assert result.returncode == 0          # QEMU -no-reboot exits by itself
    assert result.result_line == "minios-lab: RESULT: SUCCESS"
    assert result.succeeded
    assert result.crash is None
    assert "minios-lab guest: Mini-OS course kernel" in result.guest_lines
    assert all(not line.startswith("(XEN)") for line in result.guest_lines)
    assert all(line.startswith("(XEN)") for line in result.xen_lines)
    assert len(result.lines) == len(result.guest_lines) + len(result.xen_lines)
    assert 0 < result.elapsed < 30
    assert _qemu_gone(result.qemu_pid)


def test_command_line_round_trips(shared_boot) -> None:
    result = shared_boot("ticks=3000 name=lab list=a,b")
    assert result.outcome == "shutdown", result.report()
    text = "\n".join(result.guest_lines)
    assert '"ticks=3000 name=lab list=a,b"' in text   # the comma survives
    assert re.search(r"arg ticks = 3000$", text, re.M)
    assert re.search(r"arg name = lab$", text, re.M)


def test_echo_streams_every_line(image: Path) -> None:
    seen: list[str] = []
    result = _boot(echo=seen.append)
    assert seen and seen == result.lines


def test_poweroff_is_a_shutdown(shared_boot) -> None:
    # Xen halts on a dom0 poweroff but QEMU would run on: the harness stops it.
    result = shared_boot("poweroff=1")
    assert result.outcome == "shutdown", result.report()
    assert result.shutdown_reason == "poweroff"
    assert result.elapsed < 20
    assert _qemu_gone(result.qemu_pid)


def test_crash_names_the_faulting_function(shared_boot) -> None:
    result = shared_boot("crash=1")
    assert result.outcome == "crash", result.report()
    crash = result.crash
    assert crash is not None and crash.kind == "dom0 crash"
    assert crash.symbol is not None
    assert crash.symbol.startswith("start_kernel+")
    assert crash.source is not None and crash.source.startswith(
        "kernel/kernel.c:")
    # The guest's own page-fault handler reported it (kernel/traps.c).
    assert crash.cr2 == 0xDEAD00000
    assert crash.fault == "write, not present, kernel"
    assert "do_page_fault: unhandled write of 0xdead00000" in crash.reason
    assert any("crash=1" in line for line in crash.last_lines)
    assert "start_kernel+" in result.report()
    assert result.result_line is None
    # noreboot makes Xen wait forever: the harness must not wait for that.
    assert result.elapsed < 20
    assert _qemu_gone(result.qemu_pid)


def test_hang_times_out_and_qemu_is_gone(shared_boot) -> None:
    result = shared_boot("hang=1", timeout=5)
    assert result.outcome == "timeout", result.report()
    assert 5 <= result.elapsed < 10
    assert result.returncode is not None and result.returncode < 0  # killed
    assert _qemu_gone(result.qemu_pid)
    assert any("hang=1" in line for line in result.guest_lines)


def test_bad_image_is_a_xen_panic(image: Path, tmp_path: Path) -> None:
    fake = tmp_path / "kernel"
    (fake / "build").mkdir(parents=True)
    (fake / "build" / "minios.elf").write_text("not an ELF file\n")
    result = boot("", build=False, kernel_dir=fake, timeout=30)
    assert result.outcome == "crash", result.report()
    assert result.crash is not None and result.crash.kind == "xen panic"
    assert "construct domain 0" in result.crash.reason
    assert _qemu_gone(result.qemu_pid)


def test_missing_image_is_an_error(image: Path, tmp_path: Path) -> None:
    result = boot("", build=False, kernel_dir=tmp_path, timeout=30)
    assert result.outcome == "error"
    assert "minios.elf" in result.qemu_stderr


INTERRUPT_SCRIPT = """
try:
    b.boot("hang=1", build=False, timeout=60)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_interrupt_leaves_no_qemu(image: Path) -> None:
    with child_booting(INTERRUPT_SCRIPT) as (proc, pid):
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert "interrupted" in out
    assert _qemu_gone(pid)


def test_build_error_shows_make_output(tmp_path: Path) -> None:
    _tools_or_fail()
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    (kernel / "Makefile").write_text(
        "all:\n\t@echo broken-on-purpose; false\n")
    with pytest.raises(bootmod.BuildError, match="broken-on-purpose"):
        build_image(kernel)


# --- console parsing, no QEMU needed -----------------------------------------

def test_split_console_line() -> None:
    assert split_console_line("(XEN) hello") == [("xen", "(XEN) hello")]
    assert split_console_line("  guest text") == [("guest", "  guest text")]
    assert split_console_line("half(XEN) xen") == [("guest", "half"),
                                                   ("xen", "(XEN) xen")]


PANIC_LINES = """\
(XEN) ELF: not an ELF binary
(XEN)
(XEN) ****************************************
(XEN) Panic on CPU 0:
(XEN) Could not construct domain 0
(XEN) ****************************************
(XEN)
(XEN) Manual reset required ('noreboot' specified)""".splitlines()


def test_crash_report_of_a_xen_panic() -> None:
    report = make_crash_report("xen panic", PANIC_LINES, [], None)
    assert report.reason == "Could not construct domain 0"
    assert report.rip is None and report.symbol is None


def test_crash_report_resolves_rip(image: Path) -> None:
    symbols = bootmod.load_symbols(image)
    assert symbols is not None
    start = int(next(line.split()[0] for line in
                     (image.parent / "minios.map").read_text().splitlines()
                     if line.endswith(" start_kernel")), 16)
    lines = ["oops", "(XEN) d0v0 Unhandled: vec 14, #PF[0002]",
             f"(XEN) RIP:    e033:[<{start + 3:016x}>]",
             "(XEN) cr3: 000000000f038000   cr2: 00000000dead0000"]
    report = make_crash_report("dom0 crash", lines, ["oops"], symbols)
    assert report.symbol == "start_kernel+0x3"
    assert report.cr2 == 0xDEAD0000
    assert report.last_lines == ["oops"]
    assert symbols.resolve(0x7FFF_0000_0000) is None   # not kernel code


@pytest.mark.parametrize("memory_mb", [16, 64, 128])   # 16: the least boot() takes
def test_every_chapter_passes_and_is_parsed(shared_boot, memory_mb):
    result = shared_boot("ticks=20", memory_mb)
    assert result.succeeded, result.report()
    assert result.chapters and set(result.chapters.values()) == {"PASS"}
    assert list(result.chapters) == ["libc", "pagetables", "mm", "traps",
                                     "events", "time"]
    assert any("snprintf gave" in line for line in result.section("libc"))


@pytest.mark.parametrize("kwargs, message", [
    (dict(memory_mb=0), "memory_mb must be"),
    (dict(memory_mb=-5), "memory_mb must be"),
    (dict(memory_mb=1.5), "memory_mb must be"),
    (dict(timeout=0), "timeout must be"),
    (dict(cmdline="a" * 1024), "start_info holds 1023"),
])
def test_bad_boot_arguments_are_refused_before_qemu_starts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        boot(**kwargs)
