"""Xen in QEMU, paused at its first instruction, with a gdb stub to attach.

The first layer under :mod:`minios_lab.guest.live` and ``minios-lab debug``:
:class:`PausedMachine` starts the same QEMU command line as a boot
(:func:`minios_lab.guest.boot.qemu_command`) plus ``-S`` (do not run yet) and
``-gdb tcp:127.0.0.1:PORT`` (QEMU's gdb stub, on the local interface only).

* The port is never a fixed one: two learners (or two tests) on one machine
  each get their own. A free port is picked by binding port 0; between
  closing that socket and QEMU binding the port, another process may take
  it, so the machine waits until *its own* QEMU has a listening socket on
  the port (read from /proc) and starts again on a new port if QEMU died
  saying the address was in use.
* QEMU is started and stopped by :mod:`minios_lab.guest.qemu`, as for a
  boot: a session of its own (Ctrl-C in a terminal or Jupyter's interrupt
  does not reach it), death with the thread that started it
  (``PR_SET_PDEATHSIG``), a pid file that lets a later run reap it;
  :meth:`PausedMachine.stop` kills its process group and reaps it. It is
  idempotent and always called on the way out. gdb gets the same
  treatment here (:func:`die_with_parent`, :func:`kill_group`).
* A reader thread collects the serial console (Xen's lines and the
  guest's, split as :func:`minios_lab.guest.boot.split_console_line` does) and
  watches for the end of the guest: a crash report from Xen, or a
  shutdown request.

The exceptions of the live layers are defined here, at the bottom.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from minios_lab.guest import boot

from minios_lab.guest import qemu as qemu_proc
from minios_lab.errors import MiniosLabError

LISTEN_TIMEOUT = 10.0      # QEMU has its gdb socket listening within this
PORT_ATTEMPTS = 5          # new ports tried when one was taken meanwhile
REAP_TIMEOUT = 5.0
CRASH_MARKS = ("Hardware Dom0 crashed", "Panic on CPU")
CRASH_DONE = ("Manual reset required", "not rebooting")
SHUTDOWN_MARKS = ("Hardware Dom0 shutdown", "Hardware Dom0 halted")
_PR_SET_PDEATHSIG = 1


# --- errors ------------------------------------------------------------------

class LiveError(MiniosLabError):
    """Something stopped a live session; QEMU and gdb are already stopped
    unless the message says otherwise."""


class GdbMissing(LiveError):
    """gdb is not installed."""


class GdbError(LiveError):
    """gdb refused a command (a bad expression, an unknown symbol); the
    session goes on."""


class BreakpointTimeout(LiveError):
    """The guest did not stop where it was asked to in time."""


class GuestCrashed(LiveError):
    """The guest (or Xen) crashed while running; ``crash`` says where."""

    def __init__(self, message: str, crash: Optional[boot.CrashReport]):
        super().__init__(message)
        self.crash = crash


class GuestExited(LiveError):
    """The guest shut down (or QEMU died) before it stopped."""


class GuestInterrupted(KeyboardInterrupt):
    """The learner interrupted a wait (Ctrl-C, Jupyter's stop button)."""


class SessionClosed(LiveError):
    """A method was called on a session that has already ended."""


# --- processes ---------------------------------------------------------------

def die_with_parent() -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that started
    it ends (the process, from the main thread), and exits at once if that
    already happened. prctl is looked up here, in the parent."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return setup


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of proc (its own session) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    try:
        proc.wait(timeout=REAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=REAP_TIMEOUT)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def listening_on(pid: int, port: int) -> bool:
    """Whether process pid has a socket listening on 127.0.0.1:port."""
    inodes = _socket_inodes(pid)
    local = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[1] == local and fields[3] == "0A" \
                and fields[9] in inodes:
            return True
    return False


# --- the console -------------------------------------------------------------

SETTLE_TIMEOUT = 2.0       # settle() waits for the reader at most this


def _unread_bytes(fd: int) -> int:
    """Bytes waiting in the pipe `fd` (0 if that cannot be told)."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD,
                                              b"\0\0\0\0"))[0]
    except OSError:
        return 0


class Console:
    """The serial console of one QEMU, collected by a thread."""

    def __init__(self, echo: Optional[Callable[[str], None]] = None):
        self.echo = echo
        self.lines: list[str] = []
        self.guest: list[str] = []
        self.xen: list[str] = []
        self.crashed = threading.Event()      # Xen reported a crash
        self.crash_complete = threading.Event()  # ... and finished it
        self.shutdown = threading.Event()     # the guest asked to stop
        self.closed = threading.Event()       # QEMU's output ended
        self._lock = threading.Lock()
        self._fd: Optional[int] = None        # QEMU's stdout, once read
        self._busy = False                    # lines read, not yet added

    def add(self, line: str) -> None:
        with self._lock:
            for source, text in boot.split_console_line(line):
                self.lines.append(text)
                (self.xen if source == "xen" else self.guest).append(text)
                if source == "xen":
                    self._watch(text)
        if self.echo:
            self.echo(line)

    def _watch(self, text: str) -> None:
        if any(mark in text for mark in CRASH_MARKS):
            self.crashed.set()
        if self.crashed.is_set() and any(m in text for m in CRASH_DONE):
            self.crash_complete.set()
        if any(mark in text for mark in SHUTDOWN_MARKS):
            self.shutdown.set()

    def _add_raw(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        self.add(text.replace("\r", ""))

    def read_from(self, stream) -> None:
        """The reader thread: wait until QEMU's output is readable, then
        (busy) read what is there and add its whole lines. Whatever QEMU
        wrote is thus always either still in the pipe or being added
        while busy is set: what :meth:`settle` relies on."""
        self._fd = stream.fileno()
        readable = select.poll()
        readable.register(self._fd, select.POLLIN)
        pending = b""
        while True:
            readable.poll()
            self._busy = True
            chunk = os.read(self._fd, 65536)
            if not chunk:
                break
            *whole, pending = (pending + chunk).split(b"\n")
            for raw in whole:
                self._add_raw(raw)
            self._busy = False
        if pending:
            self._add_raw(pending)
        self._busy = False
        self.closed.set()

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every byte QEMU has written so far is in the lines
        (at most `timeout` s). A stopped guest writes nothing more, but the
        reader thread may not have run since its last lines (a loaded
        machine): without this, they would be missing from the console."""
        deadline = time.monotonic() + timeout
        while not self.closed.is_set() and time.monotonic() < deadline:
            if self._fd is None:
                break
            unread = _unread_bytes(self._fd)   # first; then the flag
            if unread == 0 and not self._busy:
                return
            time.sleep(0.002)

    def snapshot(self) -> tuple[list[str], list[str]]:
        """(every line, the guest's lines), copied."""
        with self._lock:
            return list(self.lines), list(self.guest)


# --- the machine -------------------------------------------------------------

class PausedMachine:
    """QEMU running Xen with the guest, stopped before its first
    instruction, its gdb stub listening on 127.0.0.1:``port``."""

    def __init__(self, elf: Path, cmdline: str = "", memory_mb: int = 64,
                 echo: Optional[Callable[[str], None]] = None,
                 xen_args: str = ""):
        boot._check_boot_arguments(cmdline, memory_mb, 1.0)
        self.elf = elf
        self.echo = echo
        self.console = Console(echo)
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.stderr = b""         # what QEMU said on stderr
        base = boot.qemu_command(elf, cmdline, memory_mb, xen_args)
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            self.command = base + ["-S", "-gdb", f"tcp:127.0.0.1:{self.port}"]
            if self._start():
                return
        raise LiveError(f"QEMU could not listen for gdb on a free port after "
                        f"{PORT_ATTEMPTS} tries: {self.stderr.decode()}")

    def _start(self) -> bool:
        """Start QEMU; True once it listens, False if the port was taken."""
        self.stderr = b""
        self.console = Console(self.echo)     # nothing of a failed try
        try:       # qemu_proc: own session, dies with us, pid file
            self.proc = qemu_proc.spawn(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
        except OSError as err:
            raise LiveError(f"cannot start QEMU: {err}") from err
        threading.Thread(target=self.console.read_from,
                         args=(self.proc.stdout,), daemon=True).start()
        drain = threading.Thread(target=self._drain_stderr, daemon=True)
        drain.start()
        deadline = time.monotonic() + LISTEN_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if listening_on(self.proc.pid, self.port):
                    return True
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise
        self.stop()
        drain.join(timeout=REAP_TIMEOUT)
        if b"in use" in self.stderr or b"bind" in self.stderr.lower():
            return False
        raise LiveError("QEMU did not start its gdb stub: "
                        + (self.stderr.decode(errors="replace").strip()
                           or f"no answer within {LISTEN_TIMEOUT} s"))

    def _drain_stderr(self) -> None:
        proc = self.proc
        if proc is not None and proc.stderr is not None:
            for chunk in iter(proc.stderr.readline, b""):
                self.stderr += chunk

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def crash_report(self) -> Optional[boot.CrashReport]:
        """What Xen said about a crash, resolved with the image's symbols."""
        if not self.console.crashed.is_set():
            return None
        lines, guest = self.console.snapshot()
        kind = ("xen panic" if any("Panic on CPU" in x for x in lines)
                else "dom0 crash")
        return boot.make_crash_report(kind, lines, guest,
                                      boot.load_symbols(self.elf))

    def stop(self) -> None:
        """Kill QEMU (its whole process group) and reap it; idempotent."""
        if self.proc is not None:
            qemu_proc.stop(self.proc)
