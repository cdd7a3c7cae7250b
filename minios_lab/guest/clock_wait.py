"""Hold the machine still while Xen waits for the CMOS clock's next second.

At start of day Xen 4.17 reads the wall-clock time from the CMOS real-time
clock. It reads just after the clock's once-a-second update, so it first
spins until the next second begins: up to one second of emulated CPU at
every boot, about 0.55 s on average here, since under QEMU the phase of
that second is set by when QEMU created the clock. A lab boots the guest
about 130 times in `make test`, so this spin alone was more than a minute
of the run's CPU time. (Xen 4.17 has no option to skip the read.)

A boot therefore gives QEMU a QMP socket (:mod:`minios_lab.guest.qmp`),
and the moment Xen prints the line it prints just before that read,
:data:`MARKER`, :class:`ClockWait`

1. stops the virtual CPU (QMP ``stop``; the guest's clocks, TSC, HPET and
   PIT, stop with it, so Xen sees no gap);
2. resets the clock's divider and starts it again (register A, through
   ports 0x70 and 0x71: 0x76, then the usual 0x26), which an MC146818
   answers by beginning its next second half a second later;
3. sleeps until just before that new edge; and
4. resumes the CPU (QMP ``cont``).

Xen then spins a few milliseconds instead of half a second. What Xen and
the guest compute does not change: the clock keeps its date and time and
only the phase of its second moves, which on real hardware is arbitrary
too. A boot takes as long as before; it just no longer burns a host core
while it waits.

Nothing here can stop a boot. If the marker never comes (a QEMU with
another CPU model prints another line) or QMP fails, the boot takes its
usual wait; once ``stop`` has been sent, ``cont`` always follows.
"""
from __future__ import annotations

import socket
import time
from typing import Optional

from minios_lab.guest.qmp import Qmp, QmpError

# Printed by Xen's init_xen_time (tsc_check_writability) under QEMU's
# default CPU, right before it reads the CMOS clock.
MARKER = "TSC only partially writable"
RTC_INDEX, RTC_DATA, RTC_REG_A = 0x70, 0x71, 0x0A
DIVIDER_RESET, DIVIDER_RUN = 0x76, 0x26  # 32.768 kHz base, 1024 Hz rate
EDGE_DELAY = 0.5     # after DIVIDER_RUN, the next second begins this late
MARGIN = 0.08        # resume this much before it (a late host thread)


class ClockWait:
    """Watches console lines; on :data:`MARKER`, holds the machine until
    just before the clock's next second (once per boot)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._done = False
        self.held: Optional[float] = None   # seconds the CPU was stopped

    def line(self, text: str) -> None:
        if self._done or MARKER not in text:
            return
        self._done = True
        qmp = Qmp(self._sock)
        try:
            qmp.execute("stop")
        except QmpError:    # refused, or no answer yet: it may still stop
            self._resume(qmp)
            return
        stopped = time.monotonic()
        try:
            edge = self._restart_clock(qmp)
            time.sleep(max(0.0, edge - MARGIN - time.monotonic()))
        except QmpError:
            pass
        finally:
            self._resume(qmp)
        self.held = time.monotonic() - stopped

    @staticmethod
    def _restart_clock(qmp: Qmp) -> float:
        """Divider reset, then run: when the clock's next second begins."""
        for port, value in ((RTC_INDEX, RTC_REG_A), (RTC_DATA, DIVIDER_RESET),
                            (RTC_DATA, DIVIDER_RUN)):
            said = qmp.hmp(f"o /b {port:#x} {value:#x}")
            if said.strip():
                raise QmpError(f"port write refused: {said.strip()}")
        return time.monotonic() + EDGE_DELAY

    @staticmethod
    def _resume(qmp: Qmp) -> None:
        """If even this fails, QEMU is gone or stuck: the boot's own end
        (its output closing, or its time limit) follows."""
        try:
            qmp.execute("cont")
        except QmpError:
            pass
