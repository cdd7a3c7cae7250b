"""Holding the machine while Xen waits for the CMOS clock (guest.clock_wait).

The first tests put a Python peer on the far end of the QMP socket, in
QEMU's place, and read what ClockWait asks of it. The last boots the real
Xen and reads Xen's own timestamps around the wait.
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Optional

import pytest

from minios_lab.guest import clock_wait, qmp
from minios_lab.guest.boot import boot
from minios_lab.guest.clock_wait import MARKER, ClockWait

XEN_MARKER = f"(XEN) [    0.350246] {MARKER}"


class FakeQemu:
    """The QEMU end of a QMP socket pair: greets, records each request
    with its time, answers "return" unless `fail` names the command (or
    the HMP command line) to refuse; `silent` answers nothing at all."""

    def __init__(self, fail: str = "", silent: bool = False):
        self.ours, theirs = socket.socketpair()
        self.requests: list[tuple[float, str]] = []
        self.fail, self.silent = fail, silent
        self.thread = threading.Thread(target=self._serve, args=(theirs,),
                                       daemon=True)
        self.thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._answer(sock)
        except OSError:          # the test closed its end: nothing to say
            pass

    def _answer(self, sock: socket.socket) -> None:
        with sock, sock.makefile("rwb", buffering=0) as f:
            f.write(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
            for raw in f:
                request = json.loads(raw)
                what = request["execute"]
                if what == "human-monitor-command":
                    what = request["arguments"]["command-line"]
                self.requests.append((time.monotonic(), what))
                if self.silent:
                    continue
                if what == "stop":
                    f.write(b'{"event": "STOP", "data": {}}\r\n')
                if what == self.fail:
                    f.write(b'{"error": {"class": "GenericError", '
                            b'"desc": "refused"}}\r\n')
                else:
                    ret = '""' if what.startswith("o ") else "{}"
                    f.write(f'{{"return": {ret}}}\r\n'.encode())

    def said(self) -> list[str]:
        return [what for _, what in self.requests]

    def time_of(self, what: str) -> float:
        return next(t for t, w in self.requests if w == what)


PORT_WRITES = ["o /b 0x70 0xa", "o /b 0x71 0x76", "o /b 0x71 0x26"]


def test_other_lines_ask_nothing() -> None:
    qemu = FakeQemu()
    wait = ClockWait(qemu.ours)
    for line in ("(XEN) Detected 2600.000 MHz processor.",
                 "(XEN) ..TIMER: vector=0xF0", "minios-lab: hello"):
        wait.line(line)
    assert qemu.said() == [] and wait.held is None


def test_marker_stops_restarts_the_clock_and_resumes_before_its_edge() -> None:
    qemu = FakeQemu()
    wait = ClockWait(qemu.ours)
    wait.line(XEN_MARKER)
    assert qemu.said() == ["qmp_capabilities", "stop", *PORT_WRITES, "cont"]
    held = qemu.time_of("cont") - qemu.time_of(PORT_WRITES[-1])
    edge = clock_wait.EDGE_DELAY
    # MARGIN before the edge (a loaded host may wake this thread late)
    assert edge - clock_wait.MARGIN - 0.02 <= held < edge + 0.2
    assert wait.held is not None and held <= wait.held < edge + 0.3


def test_only_the_first_marker_counts() -> None:
    qemu = FakeQemu()
    wait = ClockWait(qemu.ours)
    wait.line(XEN_MARKER)
    wait.line(XEN_MARKER)
    assert qemu.said().count("stop") == 1


def test_a_refused_stop_touches_no_port_and_resumes_anyway() -> None:
    # (a "stop" whose answer came too late may still have stopped it;
    # "cont" on a running machine does nothing)
    qemu = FakeQemu(fail="stop")
    wait = ClockWait(qemu.ours)
    wait.line(XEN_MARKER)
    assert qemu.said() == ["qmp_capabilities", "stop", "cont"]
    assert wait.held is None


def test_a_refused_port_write_still_resumes_at_once() -> None:
    qemu = FakeQemu(fail=PORT_WRITES[1])
    start = time.monotonic()
    ClockWait(qemu.ours).line(XEN_MARKER)
    assert qemu.said() == ["qmp_capabilities", "stop", *PORT_WRITES[:2],
                           "cont"]
    assert time.monotonic() - start < 0.3


def test_a_closed_socket_costs_nothing() -> None:
    qemu = FakeQemu()
    qemu.ours.shutdown(socket.SHUT_RDWR)
    start = time.monotonic()
    ClockWait(qemu.ours).line(XEN_MARKER)
    assert time.monotonic() - start < 0.3


def test_a_qemu_that_never_answers_costs_one_time_limit(monkeypatch) -> None:
    monkeypatch.setattr(qmp, "TIMEOUT", 0.2)
    qemu = FakeQemu(silent=True)
    start = time.monotonic()
    wait = ClockWait(qemu.ours)
    wait.line(XEN_MARKER)
    assert time.monotonic() - start < 1.0 and wait.held is None


def test_an_error_reply_is_a_qmp_error() -> None:
    qemu = FakeQemu(fail="query-status")
    with pytest.raises(qmp.QmpError, match="query-status: refused"):
        qmp.Qmp(qemu.ours).execute("query-status")


# --- the real Xen -------------------------------------------------------------

def _xen_time(lines: list[str], text: str) -> Optional[float]:
    for line in lines:
        match = re.match(r"\(XEN\) \[\s*(\d+\.\d+)\] (.*)", line)
        if match and text in match.group(2):
            return float(match.group(1))
    return None


def test_xen_no_longer_spins_for_the_clock() -> None:
    # Xen's time stops while the machine is held, so its own timestamps
    # show how long it spun: 0.35 to 0.55 s without the hold, about 0.08 s
    # with it. On a loaded host, the virtual CPU can miss the clock's
    # update flag (up for 244 us) with or without the hold; then Xen gives
    # up after its own limit, one second.
    result = boot(build=False, xen_args="console_timestamps=boot",
                  timeout=60)
    assert result.result == "SUCCESS", result.report()
    before = _xen_time(result.lines, MARKER)
    after = _xen_time(result.lines, "Allocated console ring")
    assert before is not None and after is not None, result.report()
    spun = after - before
    assert spun < 0.3 or spun >= 0.95, "\n".join(result.lines[:120])
