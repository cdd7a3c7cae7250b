"""Read the time chapter's console lines back into data.

The guest (kernel/time_demo.c, kernel/timer.c) and the host build print the
same lines; :func:`parse_time_section` turns them into a
:class:`TimeReport`, e.g. ``parse_time_section(boot_result.section("time"))``.
The formats, one per line:

    time: record version 2 tsc_timestamp 123 system_time 456 mul 0xaaaa shift -1
    time: tsc_khz 3000000
    time: monotonic 10000 reads in 1234567 ns, retries 0
    time: wall clock 2025-06-01 12:00:00.123456789 UTC
    time: timer tick_us 1000 ticks 200: ...
    timer: tick 1000 at system time 3.123456789 s
    time: intervals_us 0: 1001 999 1000 ...     (first index, then values)
    time: interval_us min 950.125 mean 1000.004 max 1100.500 period 1000 ticks 200
    time: late_us min 3.000 mean 40.500 max 500.000 missed 0 extra 0 backwards 0
    time: PASS what was checked       (or FAIL)
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

_RECORD = re.compile(r"^time: record version (\d+) tsc_timestamp (\d+) "
                     r"system_time (\d+) mul (0x[0-9a-f]+|0) shift (-?\d+)$")
_KHZ = re.compile(r"^time: tsc_khz (\d+)$")
_MONOTONIC = re.compile(r"^time: monotonic (\d+) reads in (\d+) ns, "
                        r"retries (\d+)$")
_WALLCLOCK = re.compile(r"^time: wall clock (\d{4})-(\d\d)-(\d\d) "
                        r"(\d\d):(\d\d):(\d\d)\.(\d{9}) UTC$")
_TIMER = re.compile(r"^time: timer tick_us (\d+) ticks (\d+):")
_TICK = re.compile(r"^timer: tick (\d+) at system time (\d+)\.(\d{9}) s$")
_INTERVALS = re.compile(r"^time: intervals_us (\d+):((?: \d+)+)$")
_STATS = re.compile(r"^time: (interval_us|late_us) min (-?[\d.]+) "
                    r"mean (-?[\d.]+) max (-?[\d.]+) (.*)$")
_CHECK = re.compile(r"^time: (PASS|FAIL) (.*)$")
_SKIPPED = "time: ticks=0: timer skipped"


class TimeReportError(ValueError):
    """The lines do not form a whole report (e.g. interval lines lost)."""


@dataclass
class TimeReport:
    """Everything the time chapter printed, as numbers."""

    record: dict[str, int] = field(default_factory=dict)
    tsc_khz: Optional[int] = None
    monotonic: dict[str, int] = field(default_factory=dict)
    wallclock: Optional[dt.datetime] = None
    tick_us: Optional[int] = None
    ticks_requested: Optional[int] = None
    skipped: bool = False
    tick_reports: list[tuple[int, int]] = field(default_factory=list)
    intervals_us: list[int] = field(default_factory=list)
    interval_us: dict[str, float] = field(default_factory=dict)
    late_us: dict[str, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    checks: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check printed PASS (and there was at least one)."""
        return bool(self.checks) and all(ok for ok, _ in self.checks)

    def failures(self) -> list[str]:
        return [text for ok, text in self.checks if not ok]


def _stats(line: re.Match, report: TimeReport) -> None:
    values = {"min": float(line.group(2)), "mean": float(line.group(3)),
              "max": float(line.group(4))}
    words = line.group(5).split()
    extra = {k: int(v) for k, v in zip(words[::2], words[1::2])}
    if line.group(1) == "interval_us":
        report.interval_us = {**values, **extra}
    else:
        report.late_us = values
        report.counters = extra


def _intervals(line: re.Match, report: TimeReport) -> None:
    first = int(line.group(1))
    if first != len(report.intervals_us):
        raise TimeReportError(f"interval line starting at {first} follows "
                              f"{len(report.intervals_us)} values: lines "
                              "lost or out of order")
    report.intervals_us += [int(v) for v in line.group(2).split()]


def _simple(text: str, report: TimeReport) -> bool:
    """The one-match lines; False if text is none of them."""
    if m := _RECORD.match(text):
        keys = ("version", "tsc_timestamp", "system_time", "mul", "shift")
        report.record = {k: int(v, 0) for k, v in zip(keys, m.groups())}
    elif m := _KHZ.match(text):
        report.tsc_khz = int(m.group(1))
    elif m := _MONOTONIC.match(text):
        report.monotonic = dict(zip(("reads", "ns", "retries"),
                                    map(int, m.groups())))
    elif m := _WALLCLOCK.match(text):
        y, mo, d, h, mi, s, ns = map(int, m.groups())
        report.wallclock = dt.datetime(y, mo, d, h, mi, s, ns // 1000,
                                       tzinfo=dt.timezone.utc)
    elif m := _TIMER.match(text):
        report.tick_us, report.ticks_requested = map(int, m.groups())
    elif m := _TICK.match(text):
        report.tick_reports.append(
            (int(m.group(1)), int(m.group(2)) * 10**9 + int(m.group(3))))
    elif m := _CHECK.match(text):
        report.checks.append((m.group(1) == "PASS", m.group(2)))
    elif text == _SKIPPED:
        report.skipped = True
    else:
        return False
    return True


def parse_time_section(lines: Iterable[str]) -> TimeReport:
    """Parse the time chapter's lines (other lines are ignored)."""
    report = TimeReport()
    for raw in lines:
        text = raw.strip()
        if _simple(text, report):
            continue
        if m := _INTERVALS.match(text):
            _intervals(m, report)
        elif m := _STATS.match(text):
            _stats(m, report)
    return report
