"""gdb's machine interface (MI), driven through pygdbmi.

:class:`MiSession` runs ``gdb --interpreter=mi3`` on the guest's ELF and
speaks MI to it with pygdbmi's :class:`~pygdbmi.IoManager` (which parses
every record gdb writes). This module adds what a session needs on top:

* every command carries a token, and :meth:`MiSession.command` waits for
  the result record with that token, collecting the console output the
  command produced (for CLI commands run through ``-interpreter-exec``);
* ``*stopped`` records are queued as they come, and
  :meth:`MiSession.wait_stopped` waits for the next one with a deadline,
  calling a ``poll`` function between reads (which may raise: the guest
  crashed, QEMU exited);
* ``mi-async`` is on, so ``-exec-interrupt`` works while the guest runs;
* gdb runs in its own session, dies with the process that started it and
  is killed with its process group by :meth:`MiSession.close`.

No remote-protocol code here: gdb talks to QEMU's stub itself.
"""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from minios_lab.guest.live.qemu import (GdbError, GdbMissing, LiveError, die_with_parent,
                        kill_group)

COMMAND_TIMEOUT = 20.0      # a gdb command (not a run) answers within this
POLL_INTERVAL = 0.1         # how often a wait looks at the machine
GDB_INSTALL_HINT = ("install it with `apt-get install gdb` (Debian/Ubuntu), "
                    "or set MINIOS_GDB to a gdb that debugs x86_64")


def gdb_binary() -> Path:
    """The gdb to use: $MINIOS_GDB, else gdb on PATH; GdbMissing if none."""
    wanted = os.environ.get("MINIOS_GDB", "gdb")
    found = shutil.which(wanted)
    if found is None:
        raise GdbMissing(f"gdb not found ({wanted!r}): {GDB_INSTALL_HINT}")
    return Path(found)


def mi_quote(text: str) -> str:
    """A C string literal for an MI command argument."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


@dataclass(frozen=True)
class Stop:
    """Where the guest stopped, from gdb's ``*stopped`` record."""

    reason: str                 # "breakpoint-hit", "end-stepping-range", ...
    address: int
    function: Optional[str]
    file: Optional[str]         # as compiled, e.g. kernel/kernel.c
    line: Optional[int]
    breakpoint: Optional[int] = None
    fullname: Optional[str] = None   # the source file's path here

    @classmethod
    def from_record(cls, payload: dict[str, Any]) -> "Stop":
        frame = payload.get("frame") or {}
        line = frame.get("line")
        bkpt = payload.get("bkptno")
        return cls(payload.get("reason", "signal-received"),
                   int(frame.get("addr", "0"), 16), frame.get("func"),
                   frame.get("file"), int(line) if line else None,
                   int(bkpt) if bkpt else None, frame.get("fullname"))

    @property
    def source(self) -> str:
        """The text of the source line it stopped at ('' if unknown)."""
        if not (self.fullname and self.line):
            return ""
        try:
            lines = Path(self.fullname).read_text().splitlines()
        except OSError:
            return ""
        return lines[self.line - 1].strip() if self.line <= len(lines) else ""

    @property
    def where(self) -> str:
        """'function at file:line' (or the address)."""
        name = self.function or f"{self.address:#x}"
        if self.file and self.line:
            return f"{name} at {self.file}:{self.line}"
        return name

    def __str__(self) -> str:
        return f"stopped ({self.reason}) in {self.where}"


def _error_message(payload: Any, logs: list[str]) -> str:
    """gdb's ^error message; for a failed Python command, the Python
    exception's own words (gdb.error: No symbol "x" in current context)."""
    msg = (payload or {}).get("msg", "gdb error")
    for line in reversed(logs):
        if line.startswith("gdb.") and ": " in line:
            return line.split(": ", 1)[1].strip()
    return msg


class MiSession:
    """One gdb process on `elf`, speaking MI."""

    def __init__(self, elf: Path, source_dirs: list[Path]):
        command = [str(gdb_binary()), "--nx", "--quiet", "--interpreter=mi3",
                   str(elf)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent())
        from pygdbmi.IoManager import IoManager

        self.io = IoManager(self.proc.stdin, self.proc.stdout, None)
        self._token = 0
        self.stops: list[dict[str, Any]] = []
        self.log: list[str] = []          # gdb's own messages ("&" records)
        for setting in ("confirm off", "pagination off", "mi-async on",
                        "print pretty off", "width 0"):
            self.command(f"-gdb-set {setting}")
        dirs = " ".join(mi_quote(str(d)) for d in source_dirs)
        self.command(f"-environment-directory {dirs}")

    # -- reading ------------------------------------------------------------
    def _read(self, timeout: float) -> list[dict[str, Any]]:
        """Records available within `timeout` seconds (maybe none)."""
        fds = [self.proc.stdout.fileno()]
        ready, _, _ = select.select(fds, [], [], max(timeout, 0))
        if not ready:
            return []
        records = self.io.get_gdb_response(timeout_sec=0,
                                           raise_error_on_timeout=False)
        if not records and self.proc.poll() is not None:
            raise LiveError(f"gdb exited (status {self.proc.returncode})")
        for record in records:
            if record["type"] == "notify" and record["message"] == "stopped":
                self.stops.append(record["payload"] or {})
            elif record["type"] == "log":
                self.log.append(str(record["payload"]))
        return records

    def command(self, mi: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        """Run one MI command; return the payload of its ^done (or
        ^running, ^connected) record. GdbError if gdb says ^error."""
        return self.command_output(mi, timeout)[0]

    def command_output(self, mi: str, timeout: float = COMMAND_TIMEOUT
                       ) -> tuple[Any, str]:
        """Like command(), also returning the console text it printed."""
        if self.proc.poll() is not None:
            raise LiveError(f"gdb exited (status {self.proc.returncode})")
        self._token += 1
        token = self._token
        self.io.write(f"{token}{mi}", read_response=False)
        deadline = time.monotonic() + timeout
        text: list[str] = []
        logs: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LiveError(f"gdb did not answer {mi!r} within "
                                f"{timeout} s")
            for record in self._read(remaining):
                if record["type"] == "console":
                    text.append(str(record["payload"]))
                elif record["type"] == "log":
                    logs.append(str(record["payload"]))
                elif record["type"] == "result" and \
                        record.get("token") == token:
                    payload = record["payload"]
                    if record["message"] == "error":
                        raise GdbError(_error_message(payload, logs))
                    return payload, "".join(text)

    def wait_stopped(self, timeout: float,
                     poll: Callable[[], None] = lambda: None
                     ) -> Optional[dict[str, Any]]:
        """The next *stopped payload, or None after `timeout` seconds.
        `poll` runs between reads and may raise to end the wait."""
        deadline = time.monotonic() + timeout
        while not self.stops:
            poll()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._read(min(remaining, POLL_INTERVAL))
        return self.stops.pop(0)

    def drain_stops(self) -> None:
        """Forget stop records nobody waited for (e.g. the one at
        connection), after reading what gdb has already written."""
        self._read(0)
        self.stops.clear()

    # -- ending -------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Kill gdb (its process group) and reap it; idempotent."""
        kill_group(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
