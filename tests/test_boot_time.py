"""The time chapter on a real Xen in QEMU: the clock, the wall clock, ticks.

Each boot takes two to four seconds. Skipped when QEMU or the Xen
hypervisor cannot be found (see `minios-lab doctor`).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from conftest import edit
from minios_lab.guest.boot import BootResult, boot
from minios_lab.time import TimeReport, parse_time_section

# Deadlines are absolute (start + k * period) and late ones are caught up
# at once, so n intervals add up to n periods plus the last tick's
# lateness, however loaded the machine (under QEMU's software emulation a
# blocked guest is woken late, by tens of ms on a busy machine). Each
# interval is printed rounded to a microsecond: n us of slack in all.
# Ticks at the wrong rate (a ns/us mix-up, relative deadlines that drift,
# ticks skipped) break this by far more.


def _boot(image: Path, cmdline: str) -> tuple[BootResult, TimeReport]:
    result = boot(cmdline, build=False, timeout=90)
    assert result.outcome == "shutdown", result.report()
    return result, parse_time_section(result.section("time"))


def test_clock_without_ticks(shared_boot):
    result = shared_boot("ticks=0")
    assert result.outcome == "shutdown", result.report()
    report = parse_time_section(result.section("time"))
    assert result.chapters.get("time") == "PASS", result.report()
    assert report.skipped and report.intervals_us == []
    assert report.record["version"] % 2 == 0 and report.record["mul"] > 0
    # QEMU's emulated CPU: a TSC between 100 MHz and 10 GHz.
    assert 100_000 < report.tsc_khz < 10_000_000
    assert report.monotonic["reads"] == 10000
    # QEMU starts its clock chip at the host's time (UTC).
    now = dt.datetime.now(dt.timezone.utc)
    assert abs(report.wallclock - now) < dt.timedelta(minutes=10)
    assert report.passed, report.failures()


def test_ticks_arrive_at_the_requested_rate(image):
    result, report = _boot(image, "tick_us=1000 ticks=200")
    assert result.chapters.get("time") == "PASS", "\n".join(
        result.section("time"))
    assert (report.tick_us, report.ticks_requested) == (1000, 200)
    assert len(report.intervals_us) == 200
    beyond = sum(report.intervals_us) - 200 * 1000     # the last lateness
    assert report.late_us["min"] - 200 <= beyond <= report.late_us["max"] \
        + 200, (beyond, report.late_us)
    assert abs(report.interval_us["mean"] - (1000 + beyond / 200)) <= 1
    assert report.counters["backwards"] == 0
    # Xen never fires a one-shot timer before its deadline (within the
    # guest's 10 us allowance for the two clocks' rounding).
    assert report.late_us["min"] >= -10


def test_deadlines_counted_from_each_late_tick_fail_the_guests_check(
        kernel_copy: Path) -> None:
    """Relative deadlines (now + period) drift: every tick's lateness adds
    up, so n ticks take more than n periods plus any one tick's lateness,
    and the guest's own check says FAIL however loaded the machine."""
    edit(kernel_copy / "timer.c", "next = t->deadline + t->period_ns;",
         "next = now + t->period_ns;")
    result = boot("tick_us=1000 ticks=50", kernel_dir=kernel_copy, timeout=90)
    assert result.outcome == "shutdown", result.report()
    report = parse_time_section(result.section("time"))
    assert any("50 ticks took" in f for f in report.failures()), \
        "\n".join(result.section("time"))
