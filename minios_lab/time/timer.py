"""Running the kernel's timer (kernel/timer.c) on a Clock, with Python's Xen."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from minios_lab.errors import MiniosLabError
from minios_lab.time.report import TimeReport, parse_time_section

Latency = Callable[[int], int]  # wake number -> ns late after the deadline


@dataclass
class TimerRun:
    """What one run of the kernel's timer printed and did."""

    tick_us: int
    ticks: int
    report: TimeReport
    console: str
    calls: list[str]


def run_timer(clock: Any, tick_us: int, ticks: int,
              latency: Optional[Latency] = None) -> TimerRun:
    """timer_start, timer_wait (the idle loop), timer_stop, timer_report,
    with the Clock's TimerHypervisor as Xen."""
    hv, kernel = clock.hypervisor, clock.kernel
    clock._activate()
    kernel.init_events()
    hv.latency = latency or (lambda wake: 0)
    hv.console.clear()
    hv.calls.clear()
    rc = kernel.timer_start(tick_us * 1000, ticks)
    if rc != 0:
        raise MiniosLabError(f"timer_start failed: {rc}")
    kernel.timer_wait(clock.ffi.addressof(clock.lib, "timer_state"))
    kernel.timer_stop()
    kernel.timer_report(clock.ffi.addressof(clock.lib, "timer_state"))
    text = hv.console_text
    return TimerRun(tick_us, ticks, parse_time_section(text.splitlines()),
                    text, hv.call_names())
