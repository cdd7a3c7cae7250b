"""What a boot of the guest produced: the result, and the lines it is read from.

Both ways to boot (as dom0, guest/boot.py; as a domU beside a Linux dom0,
guest/domu.py) return a :class:`BootResult`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from minios_lab.errors import MiniosLabError
from minios_lab.guest.crash import LAST_LINES, CrashReport

RESULT_RE = re.compile(r"RESULT: (\w+)")
XEN_VERSION_RE = re.compile(r"^\(XEN\) Xen version (\d+\.\d+\.\S+)")
CHAPTER_RE = re.compile(r"^chapter (\w+): (PASS|FAIL)$")


class BuildError(MiniosLabError):
    """``make -C kernel`` failed; the message is make's output."""


# --- building ----------------------------------------------------------------

# --- the result --------------------------------------------------------------

@dataclass(repr=False)
class BootResult:
    """Everything a boot produced. ``str()`` is a one-line summary,
    ``report()`` a readable account."""

    outcome: str                  # "shutdown", "crash", "timeout", "error"
    lines: list[str]              # the whole console, in order
    guest_lines: list[str]        # what the guest printed
    xen_lines: list[str]          # what Xen printed
    elapsed: float                # seconds, QEMU start to QEMU exit
    returncode: Optional[int]     # QEMU's (negative: killed by a signal)
    result_line: Optional[str] = None   # the guest's "RESULT: ..." line
    crash: Optional[CrashReport] = None
    shutdown_reason: Optional[str] = None  # "reboot" or "poweroff"
    # QEMU's command line; the runner adds the QMP socket's two options
    # (guest.qmp.qemu_args), whose descriptor lives only for that run
    command: list[str] = field(default_factory=list)
    qemu_stderr: str = ""
    qemu_pid: Optional[int] = None   # already reaped: for checking only
    xen_version: Optional[str] = None   # "4.17.5", from Xen's banner line

    @property
    def result(self) -> Optional[str]:
        """SUCCESS, FAILURE, ... from the RESULT line, or None."""
        match = RESULT_RE.search(self.result_line or "")
        return match.group(1) if match else None

    @property
    def chapters(self) -> dict[str, str]:
        """{chapter name: "PASS" or "FAIL"} from the guest's chapter lines."""
        found = {}
        for line in self.guest_lines:
            match = CHAPTER_RE.match(line.strip())
            if match:
                found[match.group(1)] = match.group(2)
        return found

    @property
    def opening(self) -> list[str]:
        """The guest's lines before its first chapter: banner, start of day."""
        lines = []
        for line in self.guest_lines:
            if line.startswith("== chapter "):
                break
            lines.append(line)
        return lines

    def section(self, chapter: str) -> list[str]:
        """The guest lines of one chapter, between its header and verdict."""
        lines, inside = [], False
        for line in self.guest_lines:
            if line.strip() == f"== chapter {chapter} ==":
                inside = True
            elif inside and CHAPTER_RE.match(line.strip()):
                break
            elif inside:
                lines.append(line)
        return lines

    @property
    def succeeded(self) -> bool:
        return self.outcome == "shutdown" and self.result == "SUCCESS"

    def __str__(self) -> str:
        parts = [f"boot: {self.outcome}"]
        if self.shutdown_reason:
            parts[0] += f" ({self.shutdown_reason})"
        parts.append(f"{self.elapsed:.2f} s")
        parts.append(f"{len(self.guest_lines)} guest lines")
        if self.result_line:
            parts.append(self.result_line.strip())
        if self.crash:
            parts.append(str(self.crash))
        if self.outcome == "error":
            parts.append(self._qemu_said())
        return ", ".join(parts)

    def _qemu_said(self) -> str:
        said = " ".join(self.qemu_stderr.split()) or "nothing on stderr"
        if self.returncode is None:
            return f"QEMU did not start: {said}"
        return f"QEMU exited with status {self.returncode} and no output " \
               f"from Xen; it said: {said}"

    def __repr__(self) -> str:
        return f"<BootResult {self}>"

    def report(self) -> str:
        out = [str(self)]
        if self.xen_version:
            out.append(f"Xen version {self.xen_version}")
        out.append("guest console:")
        out += [f"  {line}" for line in self.guest_lines] or ["  (nothing)"]
        if self.crash:
            out += ["crash:", self.crash.report(), "Xen's report:"]
            out += [f"  {line}" for line in self.crash.dump]
        if self.outcome == "timeout":
            out += ["last console lines:"]
            out += [f"  {line}" for line in self.lines[-LAST_LINES:]]
        if self.outcome == "error":
            out += [f"QEMU exited with status {self.returncode}; it said:",
                    self.qemu_stderr.rstrip() or "  (nothing)"]
        return "\n".join(out)


# --- running QEMU ------------------------------------------------------------

def result_line(guest: list[str]) -> Optional[str]:
    for line in reversed(guest):
        if RESULT_RE.search(line):
            return line
    return None


def xen_version(xen_lines: list[str]) -> Optional[str]:
    """"4.17.5" from Xen's banner, "(XEN) Xen version 4.17.5 (Debian...".
    """
    for line in xen_lines[:40]:
        match = XEN_VERSION_RE.match(line)
        if match:
            return match.group(1)
    return None
