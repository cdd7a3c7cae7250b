"""Build the guest image and boot it as dom0 of a real Xen, inside QEMU.

QEMU starts Xen's multiboot image with the guest ELF as the first module;
the words after the module's name become the guest's command line. Xen
builds a PV dom0 from the ELF and prints everything on its serial console,
which QEMU puts on its stdout (``-serial stdio``). A reader thread turns
that stream into lines; the main thread classifies them as they arrive:

* Xen's own lines begin with ``(XEN)``.
* What dom0 writes with ``HYPERVISOR_console_io`` is copied raw, with no
  prefix (a domU's would get ``(d1)``): every other line is the guest's. If
  the guest writes half a line and Xen then prints, the two share one line;
  it is split at ``(XEN)``.

The end of a boot is read from Xen's last words:

* ``Hardware Dom0 shutdown: rebooting machine``: the guest asked for a
  reboot; with ``-no-reboot`` QEMU exits by itself. Outcome "shutdown".
* ``Hardware Dom0 halted``: the guest asked for poweroff; Xen halts but
  QEMU would run on, so it is stopped. Outcome "shutdown".
* ``Hardware Dom0 crashed`` or ``Panic on CPU``: outcome "crash". Xen was
  started with ``noreboot`` and would wait forever, so QEMU is stopped once
  the report is complete. The faulting RIP from Xen's register dump is
  resolved against the symbols of the booted ELF.
* Nothing of the above before the deadline: outcome "timeout".
* QEMU could not start (or died before Xen said anything): "error".

QEMU runs in its own process group, which is always killed and reaped on the
way out, including when the caller is interrupted (a notebook's "interrupt
kernel" raises KeyboardInterrupt here): no QEMU outlives a boot.
"""
from __future__ import annotations

import argparse
import bisect
import fcntl
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import toolchain
from .errors import MiniosLabError

REPO_DIR = Path(__file__).resolve().parent.parent
KERNEL_DIR = REPO_DIR / "kernel"
XEN_MEMORY_MB = 192        # QEMU RAM on top of dom0's, for Xen itself
BUILD_TIMEOUT = 300.0      # seconds for `make -C kernel`
REBOOT_GRACE = 5.0         # QEMU exits this soon after a reboot request
CRASH_GRACE = 1.0          # Xen finishes its crash report within this
REAP_TIMEOUT = 5.0         # a SIGKILLed QEMU is gone within this
LAST_LINES = 10

XEN_PREFIX = "(XEN)"
RESULT_RE = re.compile(r"RESULT: (\w+)")
CHAPTER_RE = re.compile(r"^chapter (\w+): (PASS|FAIL)$")
RIP_RE = re.compile(r"RIP:\s+([0-9a-f]{4}):\[<([0-9a-f]+)>\]")
CR2_RE = re.compile(r"cr2: ([0-9a-f]+)")
HEX_WORDS_RE = re.compile(r"^\s*([0-9a-f]{16}\s*)+$")

Echo = Optional[Callable[[str], None]]


class BuildError(MiniosLabError):
    """``make -C kernel`` failed; the message is make's output."""


# --- building ----------------------------------------------------------------

def image_path(kernel_dir: Path = KERNEL_DIR) -> Path:
    return kernel_dir / "build" / "minios.elf"


def build_image(kernel_dir: Path = KERNEL_DIR) -> Path:
    """Run ``make -C kernel``; return the ELF. Raises BuildError."""
    if not (kernel_dir / "Makefile").is_file():
        raise BuildError(f"no Makefile in {kernel_dir}")
    include = toolchain.xen_include_dir()
    jobs = f"-j{min(os.cpu_count() or 1, 8)}"
    cmd = ["make", "-C", str(kernel_dir), jobs, f"XEN_INCLUDE={include}"]
    (kernel_dir / "build").mkdir(exist_ok=True)
    with open(kernel_dir / "build" / ".make.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one make per tree at a time
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  timeout=BUILD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as err:
            raise BuildError(f"make timed out after {BUILD_TIMEOUT} s") \
                from err
    if proc.returncode != 0:
        raise BuildError(proc.stdout)
    return image_path(kernel_dir)


# --- the QEMU command line ---------------------------------------------------

def qemu_module_arg(elf: Path, cmdline: str) -> str:
    """The -initrd value: "image args". QEMU splits modules at commas, so
    a literal comma is doubled."""
    module = f"{elf} {cmdline}".strip()
    return module.replace(",", ",,")


def xen_command_line(memory_mb: int, xen_args: str = "") -> str:
    words = ["console=com1", "noreboot", f"dom0_mem={memory_mb}M",
             "loglvl=all", "guest_loglvl=all", xen_args]
    return " ".join(w for w in words if w)


def qemu_command(elf: Path, cmdline: str, memory_mb: int,
                 xen_args: str = "") -> list[str]:
    return [
        str(toolchain.qemu_binary()),
        "-m", str(memory_mb + XEN_MEMORY_MB),
        "-display", "none", "-no-reboot", "-nic", "none",
        "-serial", "stdio", "-monitor", "none",
        "-kernel", str(toolchain.xen_binary()),
        "-initrd", qemu_module_arg(elf, cmdline),
        "-append", xen_command_line(memory_mb, xen_args),
    ]


# --- symbols -----------------------------------------------------------------

class Symbols:
    """Symbols of the guest ELF, to name addresses in its code."""

    KINDS = ("STT_FUNC", "STT_NOTYPE", "STT_OBJECT")

    def __init__(self, elf: Path):
        from elftools.elf.elffile import ELFFile

        entries: list[tuple[int, int, str]] = []
        self._objects: set[str] = set()   # data in .text: hypercall_page
        with open(elf, "rb") as f:
            elf_file = ELFFile(f)
            text = elf_file.get_section_by_name(".text")
            self._code = text.data() if text else b""
            self._code_start = text["sh_addr"] if text else 0
            symtab = elf_file.get_section_by_name(".symtab")
            for sym in symtab.iter_symbols() if symtab else []:
                if sym["st_info"]["type"] in self.KINDS and sym.name \
                        and sym["st_shndx"] != "SHN_UNDEF":
                    entries.append((sym["st_value"], sym["st_size"],
                                    sym.name))
                    if sym["st_info"]["type"] == "STT_OBJECT":
                        self._objects.add(sym.name)
        # At equal addresses the largest symbol (a sized function rather
        # than a label such as _text) sorts last and is the one chosen.
        entries.sort()
        self._elf = elf
        self._entries = entries
        self._starts = [e[0] for e in entries]
        self._etext = next((a for a, _, n in entries if n == "_etext"), None)

    def in_text(self, address: int) -> bool:
        return self._etext is not None and 0 <= address < self._etext

    def _containing(self, address: int) -> Optional[tuple[int, int, str]]:
        if not self.in_text(address):
            return None
        i = bisect.bisect_right(self._starts, address) - 1
        return self._entries[i] if i >= 0 else None

    def resolve(self, address: int) -> Optional[str]:
        """'function+0xoff' for an address in the kernel's code, or None."""
        entry = self._containing(address)
        if entry is None:
            return None
        start, _, name = entry
        return f"{name}+{address - start:#x}"

    def source_line(self, address: int) -> Optional[str]:
        """'kernel/kernel.c:37' for a code address, from the DWARF line
        table (for inlined code: the innermost function's line)."""
        entry = self._containing(address)
        if entry is None or entry[2] in self._objects:
            return None
        for rows, files in self._line_tables():
            for prev, row in zip(rows, rows[1:]):
                if prev.address <= address < row.address \
                        and not prev.end_sequence:
                    return f"{files(prev.file)}:{prev.line}"
        return None

    def _line_tables(self):
        with open(self._elf, "rb") as f:
            from elftools.elf.elffile import ELFFile

            elf = ELFFile(f)
            if not elf.has_dwarf_info():
                return
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                program = dwarf.line_program_for_CU(cu)
                if program is not None:
                    rows = [e.state for e in program.get_entries() if e.state]
                    yield rows, _file_namer(program.header)

    def _code_at(self, address: int, length: int) -> bytes:
        offset = address - self._code_start
        if offset < 0:
            return b""
        return self._code[offset:offset + length]

    def is_return_address(self, address: int) -> bool:
        """Does a call instruction end just before address? (A stack word
        that passes this test is probably a return address.)"""
        if not self.in_text(address):
            return False
        direct = self._code_at(address - 5, 1) == b"\xe8"  # call rel32
        indirect = self._code_at(address - 2, 2)           # call *%reg
        return direct or (len(indirect) == 2 and indirect[0] == 0xFF
                          and indirect[1] & 0xF8 == 0xD0)


def _file_namer(header) -> Callable[[int], str]:
    """file index -> 'dir/name' for one DWARF line program."""
    base = 0 if header.version >= 5 else 1   # DWARF 5 counts from 0
    dirs = [d.decode() for d in header.include_directory]

    def name(index: int) -> str:
        entry = header.file_entry[index - base]
        file = entry.name.decode()
        at = entry.dir_index - (0 if header.version >= 5 else 1)
        if file.startswith("/") or at <= 0 or at >= len(dirs):
            return file
        return f"{dirs[at]}/{file}"
    return name


def load_symbols(elf: Path) -> Optional[Symbols]:
    """Symbols of elf, or None if it is missing or not an ELF file."""
    from elftools.common.exceptions import ELFError

    try:
        return Symbols(elf)
    except (OSError, ELFError):
        return None


# --- crash reports -----------------------------------------------------------

@dataclass
class CrashReport:
    """What is known about a crash of the guest (or of Xen)."""

    kind: str                     # "dom0 crash", "xen panic", "reset"
    reason: str                   # Xen's (or the guest's) one-line cause
    last_lines: list[str]         # the guest's last console lines
    dump: list[str]               # Xen's lines after the guest's last one
    rip: Optional[int] = None     # faulting instruction, if Xen dumped it
    symbol: Optional[str] = None  # rip as function+0xoff
    source: Optional[str] = None  # rip as kernel/file.c:line
    cr2: Optional[int] = None     # faulting address of a page fault
    stack_symbols: list[str] = field(default_factory=list)  # callers?

    def __str__(self) -> str:
        where = ""
        if self.rip is not None:
            line = f", {self.source}" if self.source else ""
            where = f" at {self.symbol or '?'} (rip {self.rip:#x}{line})"
        return f"{self.kind}{where}: {self.reason}"

    def report(self) -> str:
        out = [str(self)]
        if self.cr2 is not None and "#PF" in self.reason:
            out.append(f"  page fault address (cr2): {self.cr2:#x}")
        if self.stack_symbols:
            out.append("  return addresses on the guest stack: "
                       + ", ".join(self.stack_symbols))
        out.append("  last guest lines:")
        out += [f"    {line}" for line in self.last_lines] or ["    (none)"]
        return "\n".join(out)


def _strip_xen(line: str) -> str:
    return line[len(XEN_PREFIX):].strip()


def _panic_message(dump: list[str]) -> Optional[str]:
    for i, line in enumerate(dump):
        if "Panic on CPU" in line:
            rest = [_strip_xen(x) for x in dump[i + 1:]]
            words = [x for x in rest if x and not x.startswith("****")]
            return words[0] if words else "Xen panic"
    return None


def _crash_reason(dump: list[str], guest: list[str]) -> str:
    panic = _panic_message(dump)
    if panic:
        return panic
    for line in dump:
        text = _strip_xen(line)
        if "Unhandled" in text or "fault" in text.lower():
            return text
    for line in reversed(guest):
        if "PANIC" in line:
            return line.strip()
    crashed = [_strip_xen(x) for x in dump if "crashed" in x]
    return crashed[-1] if crashed else "crashed"


def _stack_words(dump: list[str]) -> list[int]:
    words: list[int] = []
    inside = False
    for line in dump:
        text = _strip_xen(line)
        if text.startswith("Guest stack trace"):
            inside = True
        elif inside and HEX_WORDS_RE.match(text):
            words += [int(w, 16) for w in text.split()]
        elif inside:
            break
    return words


def _crash_dump(lines: list[str], guest_count: int) -> list[str]:
    """Xen's lines after the guest's last line (or Xen's last lines)."""
    last_guest = -1
    for i, line in enumerate(lines):
        if not line.startswith(XEN_PREFIX):
            last_guest = i
    if guest_count == 0:
        return lines[-15:]
    return lines[last_guest + 1:][-80:]


GUEST_PANIC_RE = re.compile(r"PANIC at (kernel/\S+:\d+): (.*)$")
GUEST_RIP_RE = re.compile(r"\brip (?:0x)?([0-9a-f]{1,16})\b")


def _from_guest_panic(report: CrashReport, guest: list[str]) -> None:
    """Fill where-from details from the guest's own PANIC line, if any: the
    kernel's file:line, and a rip the message names (a trap handler's)."""
    for line in reversed(guest):
        m = GUEST_PANIC_RE.search(line)
        if not m:
            continue
        report.source = report.source or m.group(1)
        rip = GUEST_RIP_RE.search(m.group(2))
        if rip and report.rip is None:
            report.rip = int(rip.group(1), 16)
        return


def make_crash_report(kind: str, lines: list[str], guest: list[str],
                      symbols: Optional[Symbols]) -> CrashReport:
    dump = _crash_dump(lines, len(guest))
    report = CrashReport(kind, _crash_reason(dump, guest),
                         guest[-LAST_LINES:], dump)
    for line in dump:
        rip, cr2 = RIP_RE.search(line), CR2_RE.search(line)
        if rip and report.rip is None:
            report.rip = int(rip.group(2), 16)
        if cr2 and report.cr2 is None:
            report.cr2 = int(cr2.group(1), 16)
    _from_guest_panic(report, guest)
    if symbols is not None:
        if report.rip is not None:
            report.symbol = symbols.resolve(report.rip)
            report.source = symbols.source_line(report.rip) or report.source
        report.stack_symbols = [symbols.resolve(w) or hex(w)
                                for w in _stack_words(dump)
                                if symbols.is_return_address(w)]
    return report


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
    command: list[str] = field(default_factory=list)
    qemu_stderr: str = ""
    qemu_pid: Optional[int] = None   # already reaped: for checking only

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
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"<BootResult {self}>"

    def report(self) -> str:
        out = [str(self), "guest console:"]
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

def split_console_line(line: str) -> list[tuple[str, str]]:
    """[(source, text)] for one console line; source is "xen" or "guest"."""
    at = line.find(XEN_PREFIX)
    if at < 0:
        return [("guest", line)]
    if at == 0:
        return [("xen", line)]
    return [("guest", line[:at]), ("xen", line[at:])]


def _reader(stream, lines: "queue.Queue[Optional[str]]") -> None:
    for raw in iter(stream.readline, b""):
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        lines.put(text.replace("\r", ""))
    lines.put(None)


def _drain(stream, sink: list[bytes]) -> None:
    sink.append(stream.read())


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL QEMU's process group and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=REAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=REAP_TIMEOUT)


class _Console:
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


def _pump(proc: subprocess.Popen, console: _Console, deadline: float) -> bool:
    """Feed console lines until QEMU's output ends (True) or it is time to
    stop it (False)."""
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines),
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
    return False


def _outcome(console: _Console, ended: bool, returncode: Optional[int]) -> str:
    if console.event == "crash":
        return "crash"
    if console.event in ("reboot", "poweroff"):
        return "shutdown"
    if not ended:
        return "timeout"
    if not console.xen and returncode != 0:
        return "error"
    return "crash"     # the machine reset with no request: a triple fault?


@dataclass
class _Run:
    console: _Console
    ended: bool                   # QEMU's output ended by itself
    returncode: Optional[int]
    stderr: str
    elapsed: float
    pid: int


def _run_qemu(cmd: list[str], timeout: float, echo: Echo) -> _Run:
    """Run QEMU until the boot is over; it is always dead on return."""
    console = _Console(echo)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    stderr: list[bytes] = []
    drain = threading.Thread(target=_drain, args=(proc.stderr, stderr),
                             daemon=True)
    drain.start()
    try:
        ended = _pump(proc, console, start + timeout)
        if ended:
            try:
                proc.wait(timeout=REAP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
    finally:
        _kill(proc)
    elapsed = time.monotonic() - start
    drain.join(timeout=REAP_TIMEOUT)
    err = b"".join(stderr).decode("utf-8", errors="replace")
    return _Run(console, ended, proc.returncode, err, elapsed, proc.pid)


def _result_line(guest: list[str]) -> Optional[str]:
    for line in reversed(guest):
        if RESULT_RE.search(line):
            return line
    return None


def _crash_kind(console: _Console) -> str:
    if any("Panic on CPU" in line for line in console.xen):
        return "xen panic"
    return "dom0 crash" if console.event == "crash" else "reset"


def _make_result(cmd: list[str], elf: Path, run: _Run) -> BootResult:
    console = run.console
    outcome = _outcome(console, run.ended, run.returncode)
    result = BootResult(outcome, console.lines, console.guest, console.xen,
                        run.elapsed, run.returncode,
                        _result_line(console.guest), command=cmd,
                        qemu_stderr=run.stderr, qemu_pid=run.pid)
    if outcome == "shutdown":
        result.shutdown_reason = console.event
    if outcome == "crash":
        result.crash = make_crash_report(_crash_kind(console), console.lines,
                                         console.guest, load_symbols(elf))
    return result


MEMORY_MB_RANGE = (16, 4096)
CMDLINE_MAX = 1023   # start_info.cmd_line holds 1024 bytes with the NUL


def _check_boot_arguments(cmdline: str, memory_mb: int,
                          timeout: float) -> None:
    """Refuse what Xen would silently change (or what makes no sense)."""
    low, high = MEMORY_MB_RANGE
    if not isinstance(memory_mb, int) or not low <= memory_mb <= high:
        raise ValueError(f"memory_mb must be a whole number of MiB from {low} "
                         f"to {high}, not {memory_mb!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, "
                         f"not {timeout!r}")
    if len(cmdline.encode()) > CMDLINE_MAX:
        raise ValueError(f"the guest command line is {len(cmdline.encode())} "
                         f"bytes; start_info holds {CMDLINE_MAX} at most "
                         f"(Xen would cut it)")


def boot(cmdline: str = "", memory_mb: int = 64, timeout: float = 30,
         xen_args: str = "", build: bool = True, echo: Echo = None,
         kernel_dir: Path = KERNEL_DIR) -> BootResult:
    """Build (if asked) and boot the guest; return what happened.

    cmdline is the guest's command line, memory_mb its memory (dom0_mem),
    timeout the limit in seconds for the whole boot; xen_args are added to
    Xen's command line; echo, if given, is called with each console line as
    it arrives.
    """
    _check_boot_arguments(cmdline, memory_mb, timeout)
    elf = build_image(kernel_dir) if build else image_path(kernel_dir)
    cmd = qemu_command(elf, cmdline, memory_mb, xen_args)
    try:
        run = _run_qemu(cmd, timeout, echo)
    except OSError as err:
        return BootResult("error", [], [], [], 0.0, None, command=cmd,
                          qemu_stderr=f"cannot start QEMU: {err}")
    return _make_result(cmd, elf, run)


# --- command line ------------------------------------------------------------

def _parse_boot_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="minios-lab boot",
        description="Build the guest and boot it on Xen in QEMU.")
    parser.add_argument("cmdline", nargs="*",
                        help="guest command line words, e.g. ticks=3000")
    parser.add_argument("--memory", type=int, default=64,
                        help="guest memory in MiB (default 64)")
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds before the boot is stopped (30)")
    parser.add_argument("--xen-args", default="",
                        help="extra words for Xen's command line")
    parser.add_argument("--no-build", action="store_true",
                        help="boot kernel/build/minios.elf as it is")
    parser.add_argument("--guest-only", action="store_true",
                        help="print only the guest's lines")
    return parser.parse_args(argv)


def main_boot(argv: Optional[list[str]] = None) -> int:
    """`minios-lab boot`: stream the console; 0 iff RESULT: SUCCESS."""
    args = _parse_boot_args(sys.argv[1:] if argv is None else argv)

    def echo(line: str) -> None:
        if not (args.guest_only and line.startswith(XEN_PREFIX)):
            print(line, flush=True)

    try:
        result = boot(" ".join(args.cmdline), args.memory, args.timeout,
                      args.xen_args, build=not args.no_build, echo=echo)
    except MiniosLabError as err:
        print(f"minios-lab boot: {err}", file=sys.stderr)
        return 1
    if result.crash:
        print(result.crash.report())
    if result.outcome == "error":
        print(result.qemu_stderr.rstrip(), file=sys.stderr)
    print(result)
    return 0 if result.succeeded else 1
