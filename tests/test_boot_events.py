"""The events chapter on a real Xen in QEMU (kernel/events_demo.c).

One boot for the module; each test reads its lines from the chapter's
section. Skipped when QEMU or Xen cannot be found (see `minios-lab doctor`).
"""
from __future__ import annotations

import re

import pytest

from minios_lab.guest.boot import BootResult

CHECKS = [
    "bind a handler on A and on B: rc 0",
    "2 sends A->B, events disabled: 0 runs, B pending 1",
    "Xen holds the upcall: evtchn_upcall_pending 1",
    "enable: B's handler ran 1 time(s), once expected",
    "it came through the upcall: 1 upcall(s)",
    "send B->A, A masked, events enabled: 0 runs, A pending 1",
    "unmask: A's handler ran 1 time(s), once expected",
    "both in one upcall: 1 upcall(s)",
    "save, save, send, restore(inner 1): 0 runs",
    "restore(outer 0): 1 run(s), events enabled 1",
    "every handler ran with events masked",
    "unbind and close A and B: rc 0, 0",
]


@pytest.fixture(scope="module")
def result(shared_boot) -> BootResult:
    return shared_boot("ticks=0")


@pytest.fixture(scope="module")
def section(result: BootResult) -> list[str]:
    lines = [line.strip() for line in result.section("events")]
    assert lines, "no events section:\n" + result.report()
    return lines


def test_chapter_passes_and_follows_traps(result: BootResult):
    assert result.chapters.get("events") == "PASS", result.report()
    names = list(result.chapters)
    assert names.index("traps") < names.index("events"), names


def test_no_check_failed(section: list[str]):
    assert not [line for line in section if "FAIL" in line], section


@pytest.mark.parametrize("check", CHECKS)
def test_each_check_passed(section: list[str], check: str):
    assert f"events: PASS {check}" in section, section


def test_shared_info_mapped_on_a_page_of_ours(section: list[str]):
    match = re.match(r"events: shared_info machine (0x[0-9a-f]+) mapped at "
                     r"(0x[0-9a-f]+)$", section[0])
    assert match, section[0]
    machine, virtual = (int(g, 16) for g in match.groups())
    assert machine % 4096 == 0 and virtual % 4096 == 0


def test_loopback_ports_and_xens_pending_bit(section: list[str]):
    match = re.match(r"events: loopback ports A=(\d+) B=(\d+); B pending "
                     r"after bind: (\d)$", section[1])
    assert match, section[1]
    a, b, pending = map(int, match.groups())
    assert 0 < a < b, "Xen never hands out port 0"
    assert pending == 1, "Xen sets a freshly bound interdomain port pending"
    assert f"events: PASS raise {b} then {a}, disabled; enable delivers " \
           f"{a} then {b}" in section


def test_upcall_counts(section: list[str]):
    match = re.match(r"events: (\d+) upcalls, (\d+) events, (\d+) spurious, "
                     r"(\d+) unhandled$", section[-1])
    assert match, section[-1]
    upcalls, events, spurious, unhandled = map(int, match.groups())
    # enable, unmask, scan order (one for two ports), outer restore
    assert (upcalls, events, spurious, unhandled) == (4, 5, 0, 0)
