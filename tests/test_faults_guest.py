"""Faults in the real guest on Xen in QEMU, and in the harness around it.

Each fault ends in its documented outcome: the guest's own page-fault
report (outcome "crash", with the function, kernel/file.c:line and cr2), a
timeout with the last lines, an "error" that quotes QEMU, and never a QEMU
left running, even when the Python process that started it is killed.

Boots whose output several tests read are shared (module-scoped fixtures).
The fault injected into kernel C lives in a copy of kernel/ (the
kernel_copy fixture), never in kernel/ itself.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, child_booting, edit
from minios_lab.guest import qemu as qemu_proc
from minios_lab.guest.boot import BootResult, boot, build_image
from minios_lab.start_of_day import symbol_address

KERNEL_C = REPO / "kernel" / "kernel.c"
UNMAPPED = 0xDEAD00000        # PT_UNMAPPED_VA in <minios/pagetable.h>
CHAPTERS = ["libc", "pagetables", "mm", "traps", "events", "time"]
GONE_WITHIN = 10.0            # seconds: liveness limit, not a measurement


def _boot(cmdline: str, **kwargs) -> BootResult:
    kwargs.setdefault("timeout", 60)
    return boot(cmdline, build=False, **kwargs)


def _line_of(path: Path, text: str) -> int:
    lines = path.read_text().splitlines()
    found = [i + 1 for i, line in enumerate(lines) if text in line]
    assert len(found) == 1, f"{text!r} must occur once in {path}"
    return found[0]


def _qemu_gone(pid: int, within: float = GONE_WITHIN) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if qemu_proc.start_time(pid) is None or not qemu_proc.is_qemu(pid):
            return True
        time.sleep(0.1)
    return False


def _assert_guest_page_fault(result: BootResult, cr2: int, fault: str,
                             source_text: str) -> None:
    """The guest reported it: its line, then a crash report naming the
    function, the source line and cr2."""
    assert result.outcome == "crash", result.report()
    line = next(x for x in result.guest_lines if x.startswith("page fault:"))
    assert line.startswith(f"page fault: cr2 {cr2:#x} ({fault}) at rip 0x")
    crash = result.crash
    assert crash is not None and crash.kind == "dom0 crash"
    assert crash.cr2 == cr2 and crash.fault == fault
    assert crash.rip == int(line.rsplit(" ", 1)[1], 16)
    assert crash.symbol is not None and crash.symbol.startswith(
        "start_kernel+")            # crash_if_asked() is inlined there
    assert crash.source == f"kernel/kernel.c:{_line_of(KERNEL_C, source_text)}"
    assert f"page fault address (cr2): {cr2:#x} ({fault})" in result.report()
    assert result.result_line is None
    assert _qemu_gone(result.qemu_pid)


@pytest.fixture(scope="module")
def null_read(shared_boot) -> BootResult:
    return shared_boot("crash=null")


@pytest.fixture(scope="module")
def text_write(shared_boot) -> BootResult:
    return shared_boot("crash=text")


@pytest.fixture(scope="module")
def plain(shared_boot) -> BootResult:
    return shared_boot("chapters=0 probe=iret crash=bogus")


# --- the guest's own page-fault reports ----------------------------------------

def test_null_read_is_the_guests_page_fault(null_read: BootResult):
    _assert_guest_page_fault(null_read, 0, "read, not present, kernel",
                             "crash_sink = *null_pointer;")
    assert not any("page 0 is mapped" in x for x in null_read.guest_lines)


def test_write_into_text_is_the_guests_page_fault(text_write: BootResult,
                                                  image: Path):
    start_kernel = symbol_address(image, "start_kernel")
    _assert_guest_page_fault(text_write, start_kernel,
                             "write, present, kernel",
                             "*text_pointer = 0xcc;")
    assert not any("is writable!" in x for x in text_write.guest_lines)


def test_write_to_unmapped_address_is_the_guests_page_fault(shared_boot):
    result = shared_boot("crash=1")
    _assert_guest_page_fault(result, UNMAPPED, "write, not present, kernel",
                             "*(volatile unsigned long *)PT_UNMAPPED_VA = 1;")
    assert any("crash=1" in line for line in result.crash.last_lines)


def test_crash_summary_shows_nothing_that_varies(null_read, text_write):
    from minios_lab.guest.final import crash_summary

    line = _line_of(KERNEL_C, "crash_sink = *null_pointer;")
    assert crash_summary(null_read).splitlines() == [
        "outcome   crash (dom0 crash)", "fault     read, not present, kernel",
        "address   0x0 (cr2)", "function  start_kernel",
        f"source    kernel/kernel.c:{line}"]
    text = crash_summary(text_write)
    assert "address   start_kernel+0x0 (in the kernel's code) (cr2)" in text
    assert "fault     write, present, kernel" in text


def test_fault_inside_a_chapter_is_reported_by_the_guest(image: Path):
    # The traps chapter's fatal read (no fix-up) is in assembly.
    result = _boot("ticks=0 trapfatal=1")
    assert result.outcome == "crash", result.report()
    crash = result.crash
    assert crash.cr2 == UNMAPPED and crash.fault == "read, not present, kernel"
    assert crash.rip == symbol_address(image, "trap_demo_read_fault")
    assert crash.symbol.startswith("trap_demo_read")
    assert crash.source.startswith("kernel/arch/x86_64/trap_demo.S:")


def test_safety_net_is_laid_before_the_first_chapter(plain: BootResult):
    assert plain.succeeded, plain.report()
    opening = plain.opening
    assert ("start of day: trap table and event/failsafe callbacks "
            "registered") in opening
    assert ("start of day: page 0 unmapped; kernel text and read-only data "
            "mapped read-only") in opening


def test_a_fault_before_the_safety_net_is_still_named(kernel_copy: Path):
    # Without the trap table Xen crashes the domain itself: its register
    # dump still gives the function and cr2.
    edit(kernel_copy / "kernel.c", "    setup_safety_net();\n", "")
    elf = build_image(kernel_copy)
    result = boot("crash=1", build=False, kernel_dir=kernel_copy, timeout=60)
    assert result.outcome == "crash", result.report()
    assert not any(x.startswith("page fault:") for x in result.guest_lines)
    crash = result.crash
    assert crash.cr2 == UNMAPPED and crash.fault is None
    assert crash.symbol.startswith("start_kernel+")
    assert crash.source.startswith("kernel/kernel.c:")
    assert elf.exists()


def test_a_page_fault_handler_that_faults_stops_nested(kernel_copy: Path):
    # A learner's handler that reads cr2 through NULL faults inside itself;
    # the nesting limit turns the loop into the guest's PANIC.
    edit(kernel_copy / "traps.c", "    cr2 = trap_vcpu->arch.cr2;\n",
         "    cr2 = *(volatile unsigned long *)trap_fixup_find(0);\n")
    build_image(kernel_copy)
    result = boot("crash=1", build=False, kernel_dir=kernel_copy, timeout=60)
    assert result.outcome == "crash", result.report()
    assert "inside 2 nested handlers" in result.crash.reason
    assert result.crash.symbol.startswith("do_page_fault+")
    assert result.crash.source.startswith("kernel/traps.c:")


def test_a_fault_in_an_event_handler_is_the_guests_report(kernel_copy):
    # The timer's event handler follows a NULL state pointer at its third
    # tick: the fault comes inside the event callback, on real Xen.
    edit(kernel_copy / "timer.c", "    (void)regs;\n    next = timer_tick",
         "    (void)regs;\n    if (t->ticks == 3)\n        t = NULL;\n"
         "    next = timer_tick")
    build_image(kernel_copy)
    result = boot("ticks=10", build=False, kernel_dir=kernel_copy, timeout=60)
    assert result.outcome == "crash", result.report()
    crash = result.crash
    assert crash.cr2 is not None and crash.cr2 < 4096     # NULL + a field
    assert crash.fault is not None and crash.fault.endswith(
        "not present, kernel")
    assert crash.source.startswith("kernel/timer.c:")
    assert result.chapters.get("events") == "PASS"
    assert "time" not in result.chapters


# --- hangs, errors, QEMU's life ---------------------------------------------------

def test_hang_is_a_timeout_with_the_last_lines(shared_boot):
    result = shared_boot("hang=1", timeout=5)
    assert result.outcome == "timeout"
    assert result.crash is None
    report = result.report()
    tail = report[report.index("last console lines:"):]
    assert "hang=1: spinning forever" in tail
    assert _qemu_gone(result.qemu_pid)


@pytest.mark.parametrize("status", [0, 1])
def test_qemu_with_no_output_is_an_error(image: Path, tmp_path: Path,
                                         monkeypatch, status: int):
    fake = tmp_path / "qemu-system-x86_64"
    fake.write_text("#!/bin/sh\necho 'qemu: cannot set up guest memory "
                    f"(on purpose)' >&2\nexit {status}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MINIOS_QEMU", str(fake))
    result = _boot("")
    assert result.outcome == "error"
    assert result.crash is None
    assert "cannot set up guest memory (on purpose)" in str(result)
    assert f"status {status}" in str(result)


def test_qemu_that_cannot_start_is_an_error(image: Path, tmp_path: Path,
                                            monkeypatch):
    fake = tmp_path / "qemu-system-x86_64"
    fake.write_text("#!/nonexistent/interpreter\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MINIOS_QEMU", str(fake))
    result = _boot("")
    assert result.outcome == "error" and result.returncode is None
    assert "QEMU did not start: cannot start QEMU:" in str(result)


def test_xen_version_comes_from_xens_banner(plain: BootResult):
    banner = next(x for x in plain.xen_lines if "Xen version" in x)
    assert plain.xen_version is not None
    assert plain.xen_version.startswith("4.17.")
    assert f"Xen version {plain.xen_version} " in banner
    assert f"Xen version {plain.xen_version}" in plain.report()


SPAWN_SCRIPT = """
b.boot("hang=1", build=False, timeout=120)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_qemu_dies_with_the_python_that_started_it(image: Path, sig):
    with child_booting(SPAWN_SCRIPT) as (proc, pid):
        assert qemu_proc.is_qemu(pid)
        proc.send_signal(sig)
        proc.wait(timeout=GONE_WITHIN)
    assert proc.returncode == -sig
    assert _qemu_gone(pid)
    # Its pid file stays behind (the parent had no chance to remove it);
    # the next boot's reaping removes it.
    qemu_proc.reap_orphans()
    folder = qemu_proc.pid_dir()
    assert folder is None or not (folder / f"{pid}.pid").exists()


def test_a_real_orphan_qemu_is_reaped_by_the_next_boot(image: Path):
    # Guard 1 switched off in the child: its QEMU outlives it, as it would
    # on a system without PR_SET_PDEATHSIG; the next boot's reaping ends it.
    no_guard = ("from minios_lab.guest import qemu as qemu_proc\n"
                "qemu_proc._prctl = lambda: None\n")
    with child_booting(SPAWN_SCRIPT, prelude=no_guard) as (proc, pid):
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=GONE_WITHIN)
    killed = qemu_proc.reap_orphans()   # (or a concurrent boot's did)
    assert _qemu_gone(pid)
    folder = qemu_proc.pid_dir()
    assert pid in killed or not (folder / f"{pid}.pid").exists()


def _dead_pid() -> tuple[int, int]:
    """A process that ran and ended: its pid and start time."""
    child = subprocess.Popen(["sleep", "0.2"])
    started = qemu_proc.start_time(child.pid)
    child.wait()
    assert started is not None
    return child.pid, started


def _fake_qemu() -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", "exec -a qemu-system-x86_64 "
                             "sleep 60"], start_new_session=True)


def test_a_qemu_left_by_a_dead_process_is_reaped(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIOS_LAB_CACHE", str(tmp_path))
    folder = qemu_proc.pid_dir()
    orphan, innocent = _fake_qemu(), subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.2)           # let bash exec into "qemu-system-x86_64"
        assert qemu_proc.is_qemu(orphan.pid)
        parent, parent_start = _dead_pid()
        for proc in (orphan, innocent):
            (folder / f"{proc.pid}.pid").write_text(
                f"{proc.pid} {parent} {qemu_proc.start_time(proc.pid)} "
                f"{parent_start}\n")
        (folder / "999999.pid").write_text("garbage\n")
        assert qemu_proc.reap_orphans() == [orphan.pid]
        assert orphan.wait(timeout=GONE_WITHIN) == -signal.SIGKILL
        assert innocent.poll() is None          # not a QEMU: left alone
        assert list(folder.glob("*.pid")) == []
    finally:
        for proc in (orphan, innocent):
            proc.kill()
            proc.wait()


def test_a_qemu_whose_parent_lives_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIOS_LAB_CACHE", str(tmp_path))
    folder = qemu_proc.pid_dir()
    running = _fake_qemu()
    try:
        time.sleep(0.2)
        me = os.getpid()
        (folder / f"{running.pid}.pid").write_text(
            f"{running.pid} {me} {qemu_proc.start_time(running.pid)} "
            f"{qemu_proc.start_time(me)}\n")
        assert qemu_proc.reap_orphans() == []
        assert running.poll() is None
        assert (folder / f"{running.pid}.pid").exists()
    finally:
        running.kill()
        running.wait()


def test_an_unwritable_cache_costs_only_the_pid_files(image, tmp_path,
                                                      monkeypatch):
    from minios_lab.build import toolchain

    xen, include = toolchain.xen_binary(), toolchain.xen_include_dir()
    blocked = tmp_path / "file-in-the-way"
    blocked.write_text("")
    monkeypatch.setenv("MINIOS_XEN", str(xen))
    monkeypatch.setenv("MINIOS_XEN_INCLUDE", str(include))
    monkeypatch.setenv("MINIOS_LAB_CACHE", str(blocked / "cache"))
    assert qemu_proc.pid_dir() is None and qemu_proc.reap_orphans() == []
    result = _boot("chapters=0")
    assert result.succeeded, result.report()
    assert _qemu_gone(result.qemu_pid)


def test_qemu_runs_without_transparent_huge_pages():
    # -mem-prealloc faults in all guest RAM at start; with huge pages the
    # kernel may compact memory for each one (seconds of system time).
    proc = qemu_proc.spawn(["sleep", "30"])
    try:
        for _ in range(100):            # until exec has replaced the child
            if "sleep" in Path(f"/proc/{proc.pid}/cmdline").read_text():
                break
            time.sleep(0.01)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert "THP_enabled:\t0" in status, status
    finally:
        qemu_proc.stop(proc)


def test_an_unknown_crash_word_is_ignored_and_said(plain: BootResult):
    assert plain.succeeded, plain.report()
    assert ("crash=bogus: unknown, ignored (crash=1, crash=null or "
            "crash=text)") in plain.guest_lines


def test_a_boot_leaves_no_pid_file(plain: BootResult):
    folder = qemu_proc.pid_dir()
    assert folder is not None
    assert not (folder / f"{plain.qemu_pid}.pid").exists()


# --- memory sizes ------------------------------------------------------------------

def test_every_chapter_passes_at_4096_mib(image: Path):
    result = _boot("ticks=0", memory_mb=4096, timeout=240)
    assert result.succeeded, result.report()
    assert list(result.chapters) == CHAPTERS
    assert set(result.chapters.values()) == {"PASS"}
    traps = "\n".join(result.section("traps"))
    assert f"traps: cr2 {UNMAPPED:#x} (expected {UNMAPPED:#x})" in traps
    pagetables = "\n".join(result.section("pagetables"))
    assert "pages mapped 1048575 of 1048575 (4096 MiB, all but page 0)" \
        in pagetables


# --- hypercall(__HYPERVISOR_iret) is refused ---------------------------------------

def test_guest_hypercall_refuses_iret(plain: BootResult):
    assert ("probe=iret: hypercall(__HYPERVISOR_iret) returned -38"
            in plain.guest_lines)


def _local_function(module_file: str, name: str, exported: str):
    """A static (objcopy-localized) function of a host-built module, found
    from its offset to an exported one."""
    from elftools.elf.elffile import ELFFile

    with open(module_file, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        value = {s.name: s["st_value"] for s in symtab.iter_symbols()
                 if s.name in (name, exported)}
    so = ctypes.CDLL(module_file)
    base = ctypes.cast(getattr(so, exported), ctypes.c_void_p).value
    address = base - value[exported] + value[name]
    prototype = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_uint,
                                 *[ctypes.c_ulong] * 5)
    return prototype(address)


def test_host_hypercall_refuses_iret_before_python_sees_it():
    from minios_lab.build.units import load

    kernel = load("libc")
    hypercall = _local_function(kernel.module.__file__, "hypercall",
                                "host_hypercall")
    assert kernel.call(hypercall, 17, 0, 0, 0, 0, 0) == -38   # xen_version
    assert kernel.hypervisor.call_names() == ["xen_version"]  # reached
    assert kernel.call(hypercall, 23, 0, 0, 0, 0, 0) == -38   # iret
    assert kernel.hypervisor.call_names() == ["xen_version"]  # not reached


# --- monotonic_clock() never goes back -------------------------------------------

def test_monotonic_clock_holds_when_xens_record_goes_back():
    from minios_lab.time import Clock

    clock = Clock(tsc_hz=2_000_000_000, system_time=10**9)
    clock.advance_ns(5_000_000)
    before = clock.monotonic_clock()          # sets this clock's page
    assert before >= 10**9 + 5_000_000
    r = clock.record
    # Xen writes a record that says an earlier time (1 ms back).
    clock.set_time_info(before - 10**6, clock.tsc, r.mul, r.shift)
    kernel = clock.kernel          # the same page: no set_shared_info()
    assert clock.record.at(clock.tsc) < before    # Xen's time went back
    assert kernel.monotonic_clock() == before     # held, not 1 ms back
    assert kernel.monotonic_clock() == before
    clock.advance_ns(3_000_000)                   # the record catches up
    later = kernel.monotonic_clock()
    assert later == clock.record.at(clock.tsc) > before
    # A new shared_info page is a new clock: no clamp carried over.
    fresh = Clock(tsc_hz=2_000_000_000, system_time=0)
    assert fresh.monotonic_clock() < before


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 10**9),
                                st.integers(-10**9, 10**9)),
                      min_size=1, max_size=12))
def test_monotonic_clock_is_the_running_maximum(steps):
    """Whatever Xen's records say (forward, back, by any amount), the clock
    returns the largest time it has seen so far."""
    from minios_lab.time import Clock

    clock = Clock(tsc_hz=2_000_000_000, system_time=10**10)
    highest = clock.monotonic_clock()            # this clock's page is set
    kernel = clock.kernel
    for advance, jump in steps:
        clock.advance_ns(advance)
        r = clock.record
        clock.set_time_info(clock.now() + jump, clock.tsc, r.mul, r.shift)
        highest = max(highest, clock.record.at(clock.tsc))
        assert kernel.monotonic_clock() == highest
