"""The traps chapter on a real Xen in QEMU: every demonstration, the
addresses the handlers report, and a fatal exception ending in a PANIC.

Two boots, one to two seconds each; skipped without QEMU or Xen.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from minios_lab.guest.boot import BootResult, boot
from minios_lab.start_of_day import symbol_address
from minios_lab.traps import demo_verdicts, summary_lines

DEMOS = {"int3", "ud2", "divide", "pagefault", "eventmask"}


@pytest.fixture(scope="module")
def normal(shared_boot) -> BootResult:
    return shared_boot("")


def _address(image: Path, name: str) -> int:
    return symbol_address(image, name)


def test_chapter_and_every_demo_pass(normal: BootResult):
    assert normal.succeeded, normal.report()
    assert normal.chapters["traps"] == "PASS"
    assert demo_verdicts(normal.section("traps")) == {d: "PASS"
                                                      for d in DEMOS}


def test_chapter_runs_after_memory_and_before_events(normal: BootResult):
    order = list(normal.chapters)
    assert order.index("traps") > order.index("libc")
    for before in ("pagetables", "mm"):
        if before in order:
            assert order.index(before) < order.index("traps")
    if "events" in order:
        assert order.index("traps") < order.index("events")


def test_handlers_report_the_real_addresses(normal: BootResult, image: Path):
    text = "\n".join(normal.section("traps"))
    resume = _address(image, "trap_demo_int3_resume")
    assert re.search(rf"breakpoint number 1, resuming at {resume:#x}$",
                     text, re.M)
    for demo in ("ud2", "divide", "read"):
        fault = _address(image, f"trap_demo_{demo}_fault")
        landing = _address(image, f"trap_demo_{demo}_landing")
        assert f"fix-up: rip {fault:#x} -> landing {landing:#x}" in text


def test_each_exception_is_named_with_its_error_code(normal: BootResult):
    text = "\n".join(normal.section("traps"))
    assert "trap: #BP breakpoint (vector 3)\n" in text
    assert "trap: #UD invalid opcode (vector 6)\n" in text
    assert "trap: #DE divide error (vector 0)\n" in text
    # A kernel read of a not-present page: error code 0 (Xen clears the
    # user bit for a PV kernel, which really runs in ring 3).
    assert "trap: #PF page fault (vector 14), error code 0\n" in text
    assert "cr2 0000000dead00000: read of a not-present page" in text
    assert "traps: cr2 0xdead00000 (expected 0xdead00000)" in text


def test_bounce_frame_fields_on_real_xen(normal: BootResult):
    dumps = [line for line in normal.section("traps")
             if line.strip().startswith("rip ")]
    assert len(dumps) == 6         # int3, ud2, divide, #PF, int3, #PF
    for line in dumps:
        assert " cs e030 " in line  # FLAT_KERNEL_CS with RPL 0: kernel mode
    rsps = [line for line in normal.section("traps")
            if line.strip().startswith("rsp ")]
    assert all(" ss e02b" in line for line in rsps)   # FLAT_KERNEL_SS


def test_event_mask_flag_on_real_xen(normal: BootResult):
    line = next(x for x in summary_lines(normal.section("traps"))
                if x.startswith("traps: events on:"))
    assert line == ("traps: events on: int3 handler saw mask 0, page-fault "
                    "handler saw mask 1 (saved 0), mask after return 0")


def test_fault_with_no_fixup_stops_the_guest(image: Path):
    result = boot("trapfatal=1", build=False, timeout=60)
    assert result.outcome == "crash", result.report()
    fault = _address(image, "trap_demo_read_fault")
    panic = next(x for x in result.guest_lines if x.startswith("PANIC at"))
    assert re.match(r"PANIC at kernel/traps\.c:\d+: do_page_fault: unhandled"
                    rf" read of 0xdead00000 at rip {fault:#x}$", panic)
    assert result.crash is not None and "do_page_fault" in result.crash.reason
    assert demo_verdicts(result.guest_lines) == {d: "PASS" for d in DEMOS}
    assert result.result_line is None
