"""gdb on the real guest: minios-lab debug, LiveGuest, live snapshots.

Every test boots Xen in QEMU. The read-only tests share one guest stopped
right after the mm chapter (its console already holds the chapter's
summary); each failure test gets a guest of its own and checks that QEMU
and gdb are gone afterwards.
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import after
from minios_lab.guest.live import qemu as live_qemu

from minios_lab.viz import mm as viz_mm

from minios_lab.viz import pagetable as viz_pagetable
from minios_lab.guest.live import (BreakpointTimeout, GdbError, GdbMissing,
                             GuestCrashed, GuestExited, GuestInterrupted,
                             LiveGuest, SessionClosed)
from minios_lab.guest.live.qemu import LiveError
from minios_lab.guest.live.snap import snapshot_from_parts
from minios_lab.guest.live.views import (fault_report, host_parse, location,
                                   pt_regs, start_info_report,
                                   summary_agreement)
from minios_lab.guest.live.views import trap_table as live_trap_table
from minios_lab.mm import PageAllocator, PageState
from minios_lab.pagetable import parse_guest_report, parse_guest_walk
from minios_lab.start_of_day import StartOfDay
from minios_lab.traps import Traps

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "minios_lab.cli"]


def marker() -> str:
    """A guest command-line word that names this test's QEMU in ps."""
    return f"testmark={uuid.uuid4().hex[:12]}"


def processes_with(text: str) -> list[int]:
    """pids whose command line contains text (QEMU carries its guest's
    command line in -initrd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


def assert_stopped(guest: LiveGuest) -> None:
    """QEMU and gdb of `guest` are dead and reaped, the session closed."""
    assert guest.closed
    assert guest.machine is not None and guest.gdb is not None
    for proc in (guest.machine.proc, guest.gdb.proc):
        assert proc.returncode is not None, f"pid {proc.pid} still runs"
        assert not Path(f"/proc/{proc.pid}").exists() or \
            "zombie" not in Path(f"/proc/{proc.pid}/status").read_text()
    with pytest.raises(SessionClosed):
        guest.eval("1")


# --- one guest, stopped after the mm chapter ----------------------------------

@pytest.fixture(scope="module")
def after_mm(guest_image):
    with LiveGuest(build=False) as guest:
        stop = guest.run_to("mm_chapter", timeout=120)
        assert stop.function == "mm_chapter"
        guest.finish(timeout=120)
        yield guest


@pytest.fixture(scope="module")
def printed(after_mm) -> dict:
    """What the guest printed about its page tables and allocator."""
    return parse_guest_report(after_mm.console)


def test_stopped_in_the_caller_after_the_mm_chapter(after_mm) -> None:
    assert after_mm.backtrace()[:2] == ["run_chapters", "start_kernel"]
    assert "chapter mm: PASS" not in after_mm.console   # printed after
    assert any(line.startswith("mm: summary:") for line in after_mm.console)


def test_eval_reads_guest_variables(after_mm) -> None:
    assert after_mm.eval("boot_info.nr_pages") == "16384"
    assert after_mm.eval("sizeof(struct pt_regs)") == str(22 * 8)
    assert after_mm.value("mm_pool->end_pfn") == 16384


def test_eval_of_a_bad_expression_keeps_the_session(after_mm) -> None:
    with pytest.raises(GdbError, match="no_such_symbol"):
        after_mm.eval("no_such_symbol + 1")
    assert after_mm.eval("2 + 3") == "5"


def test_read_by_address_and_by_symbol(after_mm) -> None:
    address = after_mm.value("&boot_info")
    by_symbol = after_mm.read("boot_info", 64)      # a struct: its address
    assert by_symbol == after_mm.read(address, 64)
    assert by_symbol == after_mm.read("&boot_info", 64)
    nr_pages = after_mm.value("&boot_info.nr_pages") - address
    assert int.from_bytes(by_symbol[nr_pages:nr_pages + 8], "little") == 16384
    code = after_mm.read("start_kernel", 16)        # a function: its code
    assert code == after_mm.read(after_mm.value("start_kernel"), 16)
    assert after_mm.read(address, 0) == b""


def test_read_refuses_what_cannot_be_read(after_mm) -> None:
    with pytest.raises(ValueError):
        after_mm.read(0x1000, -1)
    with pytest.raises(GdbError):
        after_mm.read(0, 8)          # page 0 is unmapped: the NULL guard
    assert after_mm.eval("1") == "1"


def test_start_info_bytes_parse_on_the_host_as_in_the_guest(after_mm) -> None:
    """Chapter 01's host-built parser on the page Xen wrote gives what the
    guest's own parse left in boot_info."""
    raw = after_mm.start_info()
    assert raw.startswith(b"xen-3.0-x86_64\0")
    sod = StartOfDay()
    si = sod.ffi.new("start_info_t *")
    size = sod.ffi.sizeof("start_info_t")
    sod.ffi.memmove(si, raw[:size], size)
    host = sod.parse(si)
    for field in ("nr_pages", "pt_base", "nr_pt_frames", "mfn_list",
                  "flags", "first_p2m_pfn"):
        assert getattr(host, field) == after_mm.value(f"boot_info.{field}")


def test_registers(after_mm) -> None:
    regs = after_mm.registers()
    assert {"rip", "rsp", "eflags", "cs", "cr2", "cr3"} <= set(regs)
    assert regs["rip"] == after_mm.value("$pc")
    assert regs["cs"] == 0xE033     # FLAT_KERNEL_CS64: a PV kernel, ring 3
    tables = after_mm.page_tables()
    assert regs["cr3"] >> 12 == tables.root     # Xen loaded the guest's L4
    assert after_mm.registers(["rip", "rsp"]) == {"rip": regs["rip"],
                                                  "rsp": regs["rsp"]}
    with pytest.raises(GdbError, match="no register nope"):
        after_mm.registers(["nope"])


def test_cli_runs_any_gdb_command(after_mm) -> None:
    text = after_mm.cli("info line mm_chapter")
    assert "memory_chapters.c" in text


def test_allocator_snapshot_equals_what_the_guest_printed(after_mm,
                                                          printed) -> None:
    snap = after_mm.page_allocator()
    mapped, first, end, meta, free = printed["summary"]
    assert (snap.reserved, snap.nr_pages, snap.meta_pages) == (first, end,
                                                               meta)
    assert snap.free_pages == free == snap.stats.free_pages
    lengths = {k: len(p) for k, p in snap.free_chunks.items() if p}
    assert lengths == printed["chunks"]
    assert {k: n for k, n in enumerate(snap.stats.chunks) if n} == lengths
    assert np.all(snap.state[:first] == PageState.RESERVED)
    assert np.all(snap.state[first:first + meta] == PageState.META)
    for order, pfns in snap.free_chunks.items():
        for pfn in pfns:
            assert pfn % (1 << order) == 0
            assert np.all(snap.order[pfn:pfn + (1 << order)] == order)


def test_the_pictures_show_the_printed_counts(after_mm, printed) -> None:
    snap = after_mm.page_allocator()
    fig = viz_mm.free_list_lengths(snap)
    heights = {int(round(bar.get_x() + bar.get_width() / 2)):
               int(bar.get_height()) for bar in fig.axes[0].patches}
    assert {k: n for k, n in heights.items() if n} == printed["chunks"]
    fig = viz_mm.memory_map(snap)
    image = fig.axes[0].images[0].get_array().reshape(-1, 3)[:snap.nr_pages]
    free_colours = {viz_mm.order_colour(k, snap.max_order)[:3]
                    for k in printed["chunks"]}
    free = sum(np.all(np.isclose(image, c), axis=1).sum()
               for c in free_colours)
    assert free == printed["summary"][4]


def test_page_tables_equal_the_guest_walks(after_mm, printed) -> None:
    tables = after_mm.page_tables()
    assert tables.mapped_pages == printed["summary"][0]
    walks = {w.va: w for w in printed["walks"]}   # the last walk of each va
    assert len(walks) >= 5
    for va, walk in walks.items():
        assert after_mm.walk(va) == walk, va
    fig = viz_pagetable.tree(tables)
    assert fig.axes[0].get_title().startswith(f"{len(tables.tables)} tables")
    with pytest.raises(ValueError):
        after_mm.walk(1 << 47)


def test_walk_parser_agrees_with_live_walk_format(after_mm) -> None:
    line = next(x for x in after_mm.console if "walk 0x" in x and "rw" in x)
    walk = parse_guest_walk(line)
    assert walk is not None and after_mm.walk(walk.va) == walk


def test_start_info_report_host_parse_equals_guest_parse(after_mm) -> None:
    report = start_info_report(after_mm).splitlines()
    rows = [line for line in report[2:]]
    assert len(rows) == 10 and all(line.endswith(" same") for line in rows)
    assert report[2].split()[:2] == ["nr_pages", "16384"]
    with pytest.raises(ValueError):
        host_parse(b"xen-3.0-x86_64")


def test_live_trap_table_is_the_host_builds(after_mm) -> None:
    table = live_trap_table(after_mm)
    assert table == Traps().trap_table()
    assert {e.vector for e in table} >= {0, 3, 6, 13, 14}
    page_fault = next(e for e in table if e.vector == 14)
    assert (page_fault.mnemonic, page_fault.entry, page_fault.masks_events) \
        == ("#PF", "page_fault", True)
    assert page_fault.address == after_mm.value("page_fault")


def test_summary_agreement(after_mm) -> None:
    snap = after_mm.page_allocator()
    text = summary_agreement(snap, after_mm.console)
    assert text.count("same") == 4 and "DIFFERENT" not in text
    doctored = dataclasses.replace(snap, meta_pages=snap.meta_pages + 1)
    assert "allocator's own pages   DIFFERENT" in \
        summary_agreement(doctored, after_mm.console)
    with pytest.raises(LiveError, match="summary"):
        summary_agreement(snap, [])


def test_location_finds_lines_in_a_function() -> None:
    where = location("traps.c", "traps_init", "if (rc != 0)")
    file, line = where.split(":")
    lines = (REPO / "kernel" / file).read_text().splitlines()
    assert "if (rc != 0)" in lines[int(line) - 1]
    assert "HYPERVISOR_set_trap_table" in "".join(lines[int(line) - 3:
                                                      int(line)])
    with pytest.raises(LookupError):
        location("traps.c", "traps_init", "no such text")
    with pytest.raises(LookupError):
        location("traps.c", "no_such_function", "rc")


@settings(max_examples=25, deadline=None)
@given(st.integers(64, 512), st.integers(0, 8),
       st.lists(st.integers(0, 4), max_size=30), st.randoms())
def test_snapshot_from_parts_is_the_host_snapshot(nr_pages, reserved,
                                                  orders, rnd) -> None:
    """The live snapshot's builder, fed the host allocator's counters,
    bitmap and lists, gives PageAllocator.snapshot()'s result."""
    pa = PageAllocator(nr_pages, reserved)
    got = [p for p in (pa.alloc(k) for k in orders) if p is not None]
    for pfn in rnd.sample(got, len(got) // 2):
        pa.free(pfn, pa.allocations[pfn])
    host = pa.snapshot()
    live = snapshot_from_parts(pa.nr_pages, pa.reserved, pa.stats(),
                               pa.bitmap(), pa.free_chunks(), pa.allocations)
    assert (live.nr_pages, live.reserved, live.meta_pages, live.stats) == \
        (host.nr_pages, host.reserved, host.meta_pages, host.stats)
    assert np.array_equal(live.state, host.state)
    assert np.array_equal(live.order, host.order)
    assert (live.free_chunks, live.allocations) == (host.free_chunks,
                                                    host.allocations)


# --- stepping, from the start ------------------------------------------------

def test_start_kernel_and_stepping(guest_image) -> None:
    with LiveGuest(build=False, memory_mb=32) as guest:
        stop = guest.run_to("start_kernel")
        assert (stop.function, stop.file) == ("start_kernel",
                                              "kernel/kernel.c")
        assert guest.eval("si->nr_pages") == str(32 * 256)
        assert guest.read("si", 15) == b"xen-3.0-x86_64\0"
        with pytest.raises(Exception, match="not set up yet"):
            guest.page_allocator()
        tables = guest.page_tables()       # Xen's bootstrap tables
        assert tables.mapped_pages == 1024  # up to a 4 MiB boundary
        l4 = guest.walk(guest.value("si->pt_base"))
        assert l4.present and not l4.writable and l4.mfn == tables.root
        number = guest.break_at("traps_init")
        stop = guest.cont()
        assert (stop.function, stop.breakpoint) == ("traps_init", number)
        line = stop.line
        stop = guest.next()
        assert stop.function == "traps_init" and stop.line != line
        stop = guest.finish()
        assert stop.reason == "function-finished"
        skipped = guest.break_at("mm_chapter")
        guest.delete(skipped)
        assert guest.run_to("pagetables_chapter").function == \
            "pagetables_chapter"
        stop = guest.step()          # into the first call of the function
        for _ in range(20):
            if stop.function != "pagetables_chapter":
                break
            stop = guest.step()
        assert stop.function in ("setup_from_start_info", "memset", "pt_init")
        assert guest.run_to("traps_chapter").function == "traps_chapter"
    assert_stopped(guest)


# --- failures: each ends with QEMU and gdb stopped ----------------------------

def test_breakpoint_never_reached(guest_image) -> None:
    mark = marker()
    guest = LiveGuest(f"hang=1 {mark}", build=False)
    with pytest.raises(BreakpointTimeout, match="did not reach mm_chapter "
                                                "within 5 s"):
        guest.run_to("mm_chapter", timeout=5)
    assert "hang=1: spinning forever" in str(guest.console)
    assert_stopped(guest)
    assert processes_with(mark) == []


def test_page_fault_handler_then_crash(guest_image) -> None:
    mark = marker()
    guest = LiveGuest(f"crash=1 {mark}", build=False)
    stop = guest.run_to("do_page_fault")
    assert stop.function == "do_page_fault"
    cr2 = guest.value("trap_vcpu->arch.cr2")
    assert cr2 == unmapped_address(guest)
    assert guest.registers(["cr2"])["cr2"] == cr2
    fault_rip = guest.value("regs->rip")
    assert guest.cli(f"info symbol {fault_rip:#x}").split()[0] in (
        "start_kernel", "crash_if_asked")
    report = fault_report(guest)
    assert f"cr2            {cr2:#x}" in report
    assert "error code     0x2: not-present page, write, kernel mode" \
        in report
    frame = pt_regs(guest, "regs")
    assert (frame["vector"], frame["rip"]) == (14, fault_rip)
    assert frame["error_code"] == guest.value("regs->error_code") == 2
    with pytest.raises(GuestCrashed, match="crashed") as caught:
        guest.cont()
    assert caught.value.crash is not None
    assert caught.value.crash.rip == fault_rip
    assert_stopped(guest)
    assert processes_with(mark) == []


def unmapped_address(guest: LiveGuest) -> int:
    """The address crash=1 says it writes to (Xen's serial line may lag
    behind the guest a little)."""
    pattern = re.compile(r"writing to unmapped address (0x[0-9a-f]+)")
    for _ in range(100):
        for line in guest.console:
            found = pattern.search(line)
            if found:
                return int(found.group(1), 16)
        time.sleep(0.05)
    raise AssertionError(f"no crash=1 line in {guest.console}")


def test_guest_that_shuts_down(guest_image) -> None:
    guest = LiveGuest("chapters=0", build=False)
    with pytest.raises(GuestExited, match="shut down|ended"):
        guest.cont(timeout=60)
    assert_stopped(guest)


def test_learner_interrupt(guest_image) -> None:
    mark = marker()
    guest = LiveGuest(f"hang=1 {mark}", build=False)
    # Ctrl-C's handler, even when pytest runs with SIGINT ignored (a
    # background job of a non-interactive shell).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with after(2.0, os.kill, os.getpid(), signal.SIGINT), \
                pytest.raises(GuestInterrupted, match="interrupted"):
            guest.run_to("mm_chapter", timeout=60)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert_stopped(guest)
    assert processes_with(mark) == []


def test_qemu_gone_while_stopped(guest_image) -> None:
    guest = LiveGuest(build=False)
    guest.run_to("start_kernel")
    guest.machine.stop()                  # QEMU dies under a stopped guest
    with pytest.raises(GuestExited, match="QEMU is gone"):
        guest.eval("si->nr_pages")
    assert_stopped(guest)


def test_qemu_dies_while_running(guest_image) -> None:
    guest = LiveGuest("hang=1", build=False)
    with after(2.0, guest.machine.stop), \
            pytest.raises(GuestExited, match="without a shutdown request"):
        guest.run_to("mm_chapter", timeout=60)
    assert_stopped(guest)


def test_gdb_missing_starts_nothing(guest_image, monkeypatch) -> None:
    mark = marker()
    monkeypatch.setenv("MINIOS_GDB", "/nonexistent/gdb")
    with pytest.raises(GdbMissing, match="apt-get install gdb"):
        LiveGuest(mark, build=False)
    assert processes_with(mark) == []


def test_close_is_idempotent_and_final(guest_image) -> None:
    guest = LiveGuest(build=False)
    guest.close()
    guest.close()
    assert_stopped(guest)
    assert "closed" in repr(guest)


# --- ports ---------------------------------------------------------------------

def test_a_taken_port_is_replaced(guest_image, monkeypatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        ports = iter([taken, live_qemu.free_port()])
        monkeypatch.setattr(live_qemu, "free_port", lambda: next(ports))
        machine = live_qemu.PausedMachine(guest_image)
        try:
            assert machine.port != taken
            assert live_qemu.listening_on(machine.pid, machine.port)
            time.sleep(0.5)      # the failed QEMU's console has ended by now
            assert not machine.console.closed.is_set()
        finally:
            machine.stop()
    assert machine.proc.returncode is not None


def test_two_guests_at_once_get_their_own_ports(guest_image) -> None:
    with LiveGuest(build=False) as one, LiveGuest(build=False) as two:
        assert one.port != two.port
        assert one.run_to("start_kernel").function == "start_kernel"
        assert two.eval("$pc") != one.eval("$pc")     # two still at reset


# --- the command line -----------------------------------------------------------

def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + ["debug", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_cli_batch_prints_nr_pages(guest_image) -> None:
    mark = marker()
    done = run_cli("--batch", "--no-build", "-ex", "break start_kernel",
                   "-ex", "continue", "-ex", "print si->nr_pages", "--",
                   mark)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "$1 = 16384" in done.stdout
    assert "Hardware assisted breakpoint 1" in done.stdout
    assert processes_with(mark) == []


def test_cli_batch_memory(guest_image) -> None:
    done = run_cli("--batch", "--memory", "128", "-ex", "b start_kernel",
                   "-ex", "c", "-ex", "print si->nr_pages")
    assert "$1 = 32768" in done.stdout, done.stdout + done.stderr


def test_cli_batch_crash_is_reported(guest_image) -> None:
    mark = marker()
    done = run_cli("--batch", "--no-build", "-ex", "continue", "--",
                   "crash=1", mark)
    assert done.returncode == 1
    assert "the guest crashed" in done.stderr
    assert "do_page_fault" in done.stderr or "start_kernel" in done.stderr
    assert processes_with(mark) == []


def test_cli_batch_time_limit(guest_image) -> None:
    mark = marker()
    done = run_cli("--batch", "--no-build", "--timeout", "2", "-ex",
                   "break mm_chapter", "-ex", "continue", "--", "hang=1",
                   mark)
    assert done.returncode == 1
    assert "time limit reached: stopping QEMU" in done.stderr
    assert processes_with(mark) == []


def test_cli_without_gdb(guest_image) -> None:
    mark = marker()
    env = dict(os.environ, MINIOS_GDB="/nonexistent/gdb")
    done = subprocess.run(CLI + ["debug", "--batch", "--no-build", "--",
                                 mark], capture_output=True, text=True,
                          env=env, timeout=60, cwd=REPO)
    assert done.returncode == 1
    assert "gdb not found" in done.stderr and "apt-get install gdb" in \
        done.stderr
    assert processes_with(mark) == []


def test_cli_refuses_bad_arguments_before_starting(guest_image) -> None:
    mark = marker()
    done = run_cli("--batch", "--no-build", "--memory", "5", "--", mark)
    assert done.returncode == 1
    assert "memory_mb must be a whole number of MiB from 16" in done.stderr
    done = run_cli("--batch", "--timeout", "0", "--", mark)
    assert done.returncode == 2
    assert "--timeout must be a positive number of seconds" in done.stderr
    assert processes_with(mark) == []


def test_cli_killed_takes_qemu_along(guest_image) -> None:
    mark = marker()
    proc = subprocess.Popen(CLI + ["debug", "--batch", "--no-build",
                                   "--timeout", "100", "-ex", "continue",
                                   "--", "hang=1", mark],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        deadline = 60
        while not processes_with(mark) and deadline > 0:
            threading.Event().wait(0.1)
            deadline -= 0.1
        assert processes_with(mark), "QEMU never started"
        threading.Event().wait(1.0)
    finally:
        proc.kill()
        proc.wait()
    for _ in range(50):               # PR_SET_PDEATHSIG: SIGKILL at once
        if not processes_with(mark):
            break
        threading.Event().wait(0.1)
    assert processes_with(mark) == []


def test_cli_interactive_quit_stops_qemu(guest_image) -> None:
    mark = marker()
    done = subprocess.run(
        CLI + ["debug", "--no-build", "--", mark], cwd=REPO, timeout=120,
        input="break start_kernel\ncontinue\nprint si->nr_pages\nquit\n",
        capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "$1 = 16384" in done.stdout
    assert "paused before its first instruction" in done.stdout
    assert "start_info: magic" not in done.stdout   # quit ended QEMU
    assert processes_with(mark) == []


class Terminal:
    """The debug command on a pseudo-terminal, as a learner runs it."""

    def __init__(self, argv: list[str]):
        import pty
        self.pid, self.fd = pty.fork()
        if self.pid == 0:     # the child: become the command
            os.chdir(REPO)
            os.execv(sys.executable, [sys.executable, *argv[1:]])
        self.seen = b""

    def expect(self, text: str, timeout: float = 60, since: int = 0) -> None:
        """Wait until `text` shows, after byte `since` of the output."""
        import select
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen[since:]:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in:\n{self.seen.decode()[-2000:]}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:
                    break
        assert text.encode() in self.seen[since:], self.seen.decode()[-2000:]

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self) -> int:
        for _ in range(600):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the debug command did not exit")


def test_cli_ctrl_c_stops_the_guest_not_the_command(guest_image) -> None:
    mark = marker()
    term = Terminal(CLI + ["debug", "--no-build", "--", "hang=1", mark])
    term.expect("(gdb)")
    term.send("continue\n")
    term.expect("hang=1: spinning forever")
    term.send("\x03")                       # what the terminal sends
    term.expect("SIGINT")
    term.send("print 6 * 7\n")
    term.expect("= 42")
    for _ in range(10):
        since = len(term.seen)
        term.send("bt\n")
        term.expect("#0", since=since)      # not the stop's own prompt
        frames = term.seen.index(b"#0", since)
        term.expect("(gdb)", since=frames)
        if b"hang_if_asked" in term.seen[frames:]:
            break
        # The stop came while Xen ran (a timer tick, more likely on a busy
        # machine): let the guest go on and stop it again.
        since = len(term.seen)
        term.send("continue\n")
        time.sleep(0.3)
        term.send("\x03")
        term.expect("SIGINT", since=since)
    else:
        raise AssertionError("10 stops, none in the guest's spin loop")
    term.send("quit\n")
    assert term.wait() == 0
    assert processes_with(mark) == []
