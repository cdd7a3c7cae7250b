"""QEMU's machine protocol (QMP), just enough to pause and resume a boot.

QMP is JSON, one object per line, over a socket. QEMU greets first; the
client answers with ``qmp_capabilities``; then each ``{"execute": ...}``
gets one ``{"return": ...}`` or ``{"error": ...}``, possibly after
asynchronous ``{"event": ...}`` lines, which this client skips.

A boot hands QEMU one end of a socket pair (``-chardev socket,fd=N``), so
there is no socket file to name, find or clean up. Every read has a time
limit: a QEMU that stops answering costs :data:`TIMEOUT` seconds a
command, never a stuck boot.
"""
from __future__ import annotations

import json
import socket
from typing import Any

TIMEOUT = 2.0          # seconds for one reply


class QmpError(Exception):
    """QEMU answered with an error, sent nonsense, or went away."""


def qemu_args(fd: int) -> list[str]:
    """QEMU's options for a QMP monitor on the connected socket `fd`."""
    return ["-chardev", f"socket,id=qmp,fd={fd}",
            "-mon", "chardev=qmp,mode=control"]


class Qmp:
    """A QMP session on a connected socket (QEMU's end is the other)."""

    def __init__(self, sock: socket.socket):
        sock.settimeout(TIMEOUT)
        self._file = sock.makefile("rwb", buffering=0)
        self._ready = False

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except OSError as err:                 # a timeout is an OSError
            raise QmpError(f"no answer from QEMU: {err}") from err
        if not line:
            raise QmpError("QEMU closed its QMP socket")
        try:
            return json.loads(line)
        except ValueError as err:
            raise QmpError(f"not QMP: {line[:80]!r}") from err

    def execute(self, name: str, **arguments: Any) -> Any:
        """Run one command; its "return" value, or QmpError."""
        if not self._ready:
            self._ready = True
            self._read()                       # the greeting
            self.execute("qmp_capabilities")
        request = {"execute": name}
        if arguments:
            request["arguments"] = arguments
        try:
            self._file.write(json.dumps(request).encode() + b"\n")
        except OSError as err:
            raise QmpError(f"cannot write to QEMU: {err}") from err
        while True:
            reply = self._read()
            if "error" in reply:
                raise QmpError(f"{name}: {reply['error'].get('desc', reply)}")
            if "return" in reply:
                return reply["return"]

    def hmp(self, command: str) -> str:
        """One human-monitor command (for what QMP itself lacks)."""
        return self.execute("human-monitor-command", **{"command-line": command})
