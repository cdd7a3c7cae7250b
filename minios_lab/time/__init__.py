"""The kernel's clock and timer, with Python playing Xen's time keeping.

:class:`Clock` owns a host page that stands for shared_info and fills it
as Xen does: vCPU 0's ``vcpu_time_info`` (system time at a TSC stamp, and
mul/shift to extrapolate) and the wall-clock fields, each update wrapped in
the version protocol. The TSC is the host build's ``host_tsc``, which only
moves when Python says so (:meth:`Clock.advance_tsc`,
:meth:`Clock.advance_ns`). The kernel's own C (kernel/time.c) reads it all.

Xen writes the records while the guest reads them. To show what that
means, Xen's update is a list of steps (version odd, each field, version
even) and Python runs some of them each time the kernel loads a version
counter (the host hook of ``shared_read_u32()``):
:meth:`Clock.hold_odd` keeps an update in progress for a few reads,
:meth:`Clock.tear_next_read` writes half a record while the kernel copies
it, :meth:`Clock.interleave` runs any schedule of steps. ``clock.log``
says what happened at each read.

:class:`~minios_lab.xen.timer.TimerHypervisor` (re-exported here) serves the
timer's hypercalls; :func:`run_timer` drives kernel/timer.c and parses its
report with :func:`parse_time_section`, the same parser that reads the
"time" chapter of a real boot. :func:`scale_steps` and :func:`trace_clock`
give the plots of :mod:`minios_lab.viz.time` their data.
"""
from minios_lab.time.clock import Clock, ClockTrace, trace_clock
from minios_lab.time.record import (DEFAULT_TSC_HZ, DEFAULT_WALLCLOCK, MASK64,
                                    NSEC_PER_SEC, ReadEvent, ScaleSteps,
                                    Snapshot, TimeRecord, WallClock,
                                    scale_delta_reference, scale_steps,
                                    time_scale)
from minios_lab.time.report import TimeReport, TimeReportError, parse_time_section
from minios_lab.time.timer import TimerRun, run_timer
from minios_lab.xen.timer import SleepsForever, TimerHypervisor

__all__ = ["Clock", "TimeRecord", "Snapshot", "WallClock", "ScaleSteps",
           "ClockTrace", "TimerHypervisor", "TimerRun", "run_timer",
           "scale_delta_reference", "scale_steps", "time_scale", "trace_clock",
           "TimeReport", "TimeReportError", "parse_time_section",
           "SleepsForever", "MASK64", "NSEC_PER_SEC", "DEFAULT_TSC_HZ",
           "DEFAULT_WALLCLOCK", "ReadEvent"]
