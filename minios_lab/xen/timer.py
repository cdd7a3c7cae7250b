"""Xen's timer, played by Python for the host build (kernel/timer.c's Xen).

:class:`TimerHypervisor` is chapter 07's :class:`~minios_lab.xen.events.EventXen`
(event channels, bind_virq, the upcall on every return to the guest) plus
the hypercalls the timer makes: VCPUOP_stop_periodic_timer, set_timer_op
and SCHEDOP_block. A block is where time passes: the TSC moves to the armed
deadline plus a chosen lateness, Xen re-stamps the time record as it does
when it schedules a vCPU, and raises VIRQ_TIMER; the upcall runs as the
hypercall returns, and the kernel's tick handler with it.

The face that drives the kernel's timer is minios_lab.time.run_timer.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any, Callable

from minios_lab.errors import MiniosLabError
from minios_lab.xen.events import EventXen


class SleepsForever(MiniosLabError):
    """The kernel blocked with nothing armed that could ever wake it."""


Latency = Callable[[int], int]  # wake number -> ns late after the deadline


@dataclass
class TimerHypervisor(EventXen):
    """Xen's timer hypercalls, on top of its event channels, for a Clock.

    A PV vCPU starts with a 100 Hz periodic timer; VCPUOP_stop_periodic_timer
    stops it. set_timer_op(deadline) arms the one-shot timer (a deadline
    already past fires at once). SCHEDOP_block re-enables events and, if
    none is pending, sleeps: the TSC moves to the deadline plus
    ``latency(wake)`` ns, the record is re-stamped and VIRQ_TIMER raised.
    A periodic timer does not wake a blocked vCPU (Xen stops it when the
    vCPU is descheduled), so a block with only that armed never returns:
    SleepsForever.
    """

    clock: Any = None
    deadline: int = 0
    periodic_ns: int = 10_000_000
    latency: Latency = field(default=lambda wake: 0)
    wakes: int = 0

    def _fire(self) -> None:
        """VIRQ_TIMER, if bound (Xen drops a VIRQ nobody bound)."""
        if self.lib.VIRQ_TIMER in self.virqs:
            self.raise_virq(self.lib.VIRQ_TIMER)

    def do_vcpu_op(self, cmd: int, vcpu: int, arg: int, *_: int) -> int:
        if vcpu != 0:
            return -errno.ENOENT
        if cmd == self.lib.VCPUOP_stop_periodic_timer:
            self.periodic_ns = 0
            self.note("the default 100 Hz periodic timer is off")
            return 0
        if cmd == self.lib.VCPUOP_set_periodic_timer:
            period = self.guest_ptr(arg, "struct vcpu_set_periodic_timer"
                                    ).period_ns
            self.periodic_ns = int(period)
            return 0
        return -errno.ENOSYS

    def do_set_timer_op(self, deadline: int, *_: int) -> int:
        self.deadline = deadline
        if deadline == 0:
            self.note("one-shot timer cancelled")
        elif deadline <= self.clock.now():
            self.deadline = 0
            self._fire()
            self.note("deadline already passed: VIRQ_TIMER now")
        else:
            self.note(f"fires in {deadline - self.clock.now()} ns")
        return 0

    def do_sched_op(self, cmd: int, arg: int, *rest: int) -> int:
        if cmd != self.lib.SCHEDOP_block:
            return super().do_sched_op(cmd, arg, *rest)
        self.vcpu.evtchn_upcall_mask = 0   # atomically with the check below
        if not self.vcpu.evtchn_upcall_pending:
            self._sleep_until_deadline()
        return 0   # the upcall runs on the way back (EventXen.hypercall)

    def _sleep_until_deadline(self) -> None:
        if self.deadline == 0:
            why = ("only a periodic timer, stopped while the vCPU is "
                   "blocked" if self.periodic_ns else "no timer armed")
            raise SleepsForever(f"SCHEDOP_block with {why}: nothing will "
                                "ever wake this vCPU")
        late = self.latency(self.wakes)
        self.wakes += 1
        clock = self.clock
        clock.tsc = max(clock.tsc, clock.record.tsc_for(self.deadline + late))
        clock.restamp()
        self.deadline = 0
        self._fire()
        self.note(f"slept until the deadline + {late} ns")
