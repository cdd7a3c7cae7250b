"""Xen's serial console as a boot sees it: whose line, and when it is over.

QEMU puts Xen's serial console on its stdout. A reader thread turns that
stream into lines; :class:`ConsoleWatch` sorts them into Xen's (they begin
with ``(XEN)``) and the guest's (everything else: what dom0 writes with
``HYPERVISOR_console_io`` is copied raw; a guest half-line followed by
Xen's output is split at ``(XEN)``), and reads the end of the boot from
Xen's last words (see :mod:`minios_lab.guest.boot`).
"""
from __future__ import annotations

import queue
import subprocess
import threading
import time
from typing import Callable, Optional

from minios_lab.guest.crash import XEN_PREFIX

REBOOT_GRACE = 5.0         # QEMU exits this soon after a reboot request
CRASH_GRACE = 1.0          # Xen finishes its crash report within this

Echo = Optional[Callable[[str], None]]


def split_console_line(line: str) -> list[tuple[str, str]]:
    """[(source, text)] for one console line; source is "xen" or "guest"."""
    at = line.find(XEN_PREFIX)
    if at < 0:
        return [("guest", line)]
    if at == 0:
        return [("xen", line)]
    return [("guest", line[:at]), ("xen", line[at:])]


def read_lines(stream, lines: "queue.Queue[Optional[str]]") -> None:
    for raw in iter(stream.readline, b""):
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        lines.put(text.replace("\r", ""))
    lines.put(None)


def drain_into(stream, sink: list[bytes]) -> None:
    sink.append(stream.read())


class ConsoleWatch:
    """Collects and classifies lines; decides when the boot is over."""

    SHUTDOWN = ("Hardware Dom0 shutdown", "reboot")
    HALTED = ("Hardware Dom0 halted", "poweroff")
    CRASH_MARKS = ("Hardware Dom0 crashed", "Panic on CPU")
    CRASH_DONE = ("Manual reset required", "not rebooting",
                  "Hardware Dom0 crashed")

    def __init__(self, echo: Echo):
        self.echo = echo
        self.lines: list[str] = []
        self.guest: list[str] = []
        self.xen: list[str] = []
        self.event: Optional[str] = None   # "reboot", "poweroff", "crash"
        self.event_time = 0.0
        self.done = False                   # nothing more worth waiting for

    def add(self, line: str) -> None:
        if self.echo:
            self.echo(line)
        for source, text in split_console_line(line):
            self.lines.append(text)
            (self.xen if source == "xen" else self.guest).append(text)
            if source == "xen":
                self._watch(text)

    def _watch(self, text: str) -> None:
        for mark, reason in (self.SHUTDOWN, self.HALTED):
            if mark in text and self.event is None:
                self._set_event(reason)
                self.done = reason == "poweroff"
        if any(mark in text for mark in self.CRASH_MARKS):
            if self.event != "crash":
                self._set_event("crash")
        if self.event == "crash" and any(m in text for m in self.CRASH_DONE):
            self.done = True

    def _set_event(self, event: str) -> None:
        self.event = event
        self.event_time = time.monotonic()

    def wait_until(self, deadline: float) -> float:
        """When to stop waiting for more lines."""
        if self.event in ("reboot", "poweroff"):
            return min(deadline, self.event_time + REBOOT_GRACE)
        if self.event == "crash":
            return min(deadline, self.event_time + CRASH_GRACE)
        return deadline


def pump(proc: subprocess.Popen, console: ConsoleWatch, deadline: float,
         tap: Optional[Callable[[str], None]] = None) -> bool:
    """Feed console lines until QEMU's output ends (True) or it is time to
    stop it (False); `tap`, if given, sees each line after the console."""
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, lines),
                     daemon=True).start()
    while not console.done:
        remaining = console.wait_until(deadline) - time.monotonic()
        if remaining <= 0:
            return False
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            return False
        if line is None:
            return True
        console.add(line)
        if tap is not None:
            tap(line)
    return False


def outcome_of(console: ConsoleWatch, ended: bool) -> str:
    """The boot's outcome from what the console said, and whether QEMU's
    output ended by itself (False: the harness stopped it)."""
    if console.event == "crash":
        return "crash"
    if console.event in ("reboot", "poweroff"):
        return "shutdown"
    if not ended:
        return "timeout"
    if not console.xen:
        return "error"   # QEMU ended before Xen said a word: not the guest
    return "crash"     # the machine reset with no request: a triple fault?
