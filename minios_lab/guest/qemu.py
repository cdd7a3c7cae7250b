"""Start QEMU so that it never outlives the Python process that started it.

A boot runs QEMU as a child process. Three guards keep it from running on
after its Python process (a notebook's kernel, the grader, a test) is gone:

1. **It dies with its parent.** Between fork and exec, the child asks
   Linux for ``PR_SET_PDEATHSIG(SIGKILL)`` (``prctl`` through ctypes, in
   ``preexec_fn``): when the parent dies, for whatever reason (SIGKILL,
   SIGTERM's default action, a crash, Jupyter's "restart kernel"), the
   kernel kills QEMU. Caveat: Linux sends the signal when the *thread*
   that forked the child exits, not the process. :func:`spawn` must
   therefore be called from the thread that then waits for QEMU and stops
   it; ``boot()`` does so (it starts, watches and kills QEMU in the
   caller's own thread). Never spawn from a short-lived helper thread.
   If the parent died before the prctl took effect, the child exits at
   once.
2. **Every way out stops it.** :func:`stop` kills QEMU's process group
   and reaps it; ``boot()`` calls it in a ``finally`` (an interrupt, an
   exception).
3. **Leftovers are reaped.** Each running QEMU has a pid file in
   ``<cache>/qemu/`` (``toolchain.cache_dir()``), one line
   ``qemu_pid parent_pid qemu_start parent_start`` (start times in clock
   ticks since boot, from ``/proc/<pid>/stat``, which tell a process from
   a later one that reuses its pid). :func:`spawn` first calls
   :func:`reap_orphans`: a file whose parent is gone and whose QEMU still
   runs (same pid, same start time, "qemu" in its command line) has that
   QEMU SIGKILLed; a file whose parent still runs is another boot's and is
   left alone; the rest are stale and removed. Pid files are best effort:
   an unwritable cache costs guard 3 only.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from minios_lab.guest import qmp
from minios_lab.guest.clock_wait import ClockWait
from minios_lab.guest.console import drain_into, pump

PR_SET_PDEATHSIG = 1          # <linux/prctl.h>
PR_SET_THP_DISABLE = 41
REAP_TIMEOUT = 5.0            # a SIGKILLed QEMU is gone within this

_libc: Optional[ctypes.CDLL] = None


def _prctl() -> Optional[Callable[..., int]]:
    """libc's prctl, loaded in the parent (the child must not import)."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return None
    return getattr(_libc, "prctl", None)


def _child_setup(parent: int) -> Callable[[], None]:
    """The child's set-up: guard 1, and no transparent huge pages. QEMU's
    -mem-prealloc faults in all guest RAM at start, and with huge pages
    the kernel may first compact memory for each one: a 4096 MiB boot
    took 8-11 s of system time that way on a machine whose memory was
    fragmented, against 1.2 s every time with 4 KiB pages (the user time,
    about 3 s, is the same)."""
    prctl = _prctl()

    def setup() -> None:           # runs in the child, before exec
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)   # kept across exec
        if os.getppid() != parent:     # the parent died before the prctl
            os._exit(1)
    return setup


# --- /proc ---------------------------------------------------------------------

def start_time(pid: int) -> Optional[int]:
    """When pid started (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":               # a zombie has already ended
        return None
    return int(fields[19])             # field 22 of stat(5)


def is_qemu(pid: int) -> bool:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return b"qemu" in os.path.basename(argv0)


def _alive(pid: int, started: int) -> bool:
    return start_time(pid) == started


# --- pid files -------------------------------------------------------------------

def pid_dir() -> Optional[Path]:
    """<cache>/qemu, created if missing; None if that is not possible."""
    from minios_lab.build import toolchain
    from minios_lab.errors import MiniosLabError
    try:
        path = toolchain.cache_dir() / "qemu"
        path.mkdir(exist_ok=True)
    except (OSError, MiniosLabError):
        return None
    return path


def _write_pid_file(proc: subprocess.Popen) -> Optional[Path]:
    folder = pid_dir()
    me = os.getpid()
    started, mine = start_time(proc.pid), start_time(me)
    if folder is None or started is None or mine is None:
        return None
    path = folder / f"{proc.pid}.pid"
    tmp = folder / f".{proc.pid}.{me}.tmp"
    try:
        tmp.write_text(f"{proc.pid} {me} {started} {mine}\n")
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return None
    return path


def _read_pid_file(path: Path) -> Optional[tuple[int, int, int, int]]:
    try:
        words = [int(w) for w in path.read_text().split()]
    except (OSError, ValueError):
        return None
    return tuple(words) if len(words) == 4 else None   # type: ignore


def reap_orphans() -> list[int]:
    """SIGKILL every QEMU that an earlier, now dead process of the kit left
    running; remove stale pid files. Returns the pids killed."""
    folder = pid_dir()
    if folder is None:
        return []
    killed = []
    for path in folder.glob("*.pid"):
        entry = _read_pid_file(path)
        if entry is None:
            path.unlink(missing_ok=True)
            continue
        qemu, parent, qemu_start, parent_start = entry
        if _alive(parent, parent_start):
            continue                           # another live boot's QEMU
        if _alive(qemu, qemu_start) and is_qemu(qemu):
            try:
                os.kill(qemu, signal.SIGKILL)
                killed.append(qemu)
            except ProcessLookupError:
                pass
        path.unlink(missing_ok=True)
    return killed


# --- starting and stopping -----------------------------------------------------

class Qemu(subprocess.Popen):
    """A QEMU child with its pid file (``pid_file``, None if none)."""

    pid_file: Optional[Path] = None


def spawn(cmd: list[str], **popen_kwargs: Any) -> Qemu:
    """Start QEMU from the calling thread (see guard 1) in a session of its
    own, after reaping leftovers. Raises OSError if it cannot start."""
    reap_orphans()
    proc = Qemu(cmd, preexec_fn=_child_setup(os.getpid()),
                start_new_session=True, **popen_kwargs)
    proc.pid_file = _write_pid_file(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL QEMU's process group, reap it, remove its pid file."""
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
    pid_file = getattr(proc, "pid_file", None)
    if pid_file is not None:
        pid_file.unlink(missing_ok=True)


@dataclass
class QemuRun:
    """One QEMU run: what its console watch saw, and how it ended."""

    console: Any                  # the watch the serial lines went through
    ended: bool                   # QEMU's output ended by itself
    returncode: Optional[int]
    stderr: str
    elapsed: float
    pid: int


def run(cmd: list[str], timeout: float, console: Any) -> QemuRun:
    """Run QEMU until its serial output ends or `timeout` s pass, feeding
    each line to `console` (a guest.console watch); QEMU is always dead on
    return. Runs in the caller's thread, which must be the one that started
    QEMU (guard 1 above: QEMU dies when that thread ends). QEMU also gets a
    QMP socket, through which :class:`ClockWait` holds the machine while
    Xen waits for the CMOS clock."""
    start = time.monotonic()
    ours, theirs = socket.socketpair()
    try:
        proc = spawn(cmd + qmp.qemu_args(theirs.fileno()),
                     pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    stderr: list[bytes] = []
    drain = threading.Thread(target=drain_into, args=(proc.stderr, stderr),
                             daemon=True)
    drain.start()
    try:
        ended = pump(proc, console, start + timeout, ClockWait(ours).line)
        if ended:
            try:
                proc.wait(timeout=REAP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
    finally:
        stop(proc)
        ours.close()
    elapsed = time.monotonic() - start
    drain.join(timeout=REAP_TIMEOUT)
    err = b"".join(stderr).decode("utf-8", errors="replace")
    return QemuRun(console, ended, proc.returncode, err, elapsed, proc.pid)
