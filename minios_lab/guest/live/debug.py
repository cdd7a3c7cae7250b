"""`minios-lab debug`: gdb on the guest running on Xen in QEMU.

What xv6's ``make qemu-gdb`` gives, in one command: the guest is built,
Xen starts in QEMU paused at its first instruction with QEMU's gdb stub on
a free local port (:class:`~minios_lab.guest.live.qemu.PausedMachine`), and gdb
starts on ``kernel/build/minios.elf`` with the kernel's sources, already
connected. ``break`` (and ``b``, ``tbreak``) set hardware-assisted
breakpoints, so ``break start_kernel`` works before Xen has loaded the
guest. The guest's console lines are printed as they come (Xen's too with
``--xen-console``); if the guest crashes, Xen's report is printed, resolved
to a kernel function.

``--batch`` runs the ``-ex`` commands and exits (gdb's ``-batch``), with a
time limit: past it, or after a crash, QEMU is stopped, which ends gdb's
wait. Interactively, Ctrl-C goes to gdb (which stops the guest), not to
this process. Either way QEMU is stopped when gdb exits, and dies with
this process if it is killed.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from minios_lab.guest import boot
from minios_lab.errors import MiniosLabError
from minios_lab.guest.live.gdb import gdb_binary
from minios_lab.guest.live.qemu import PausedMachine, die_with_parent

CRASH_GRACE = 1.0

# Sourced by gdb (-x): `break` and friends become hardware breakpoints,
# the sources are found, and `quit` ends QEMU rather than letting the guest
# run on after gdb detaches.
GDB_SCRIPT = '''\
import gdb

class HardwareBreak(gdb.Command):
    """Set a hardware-assisted breakpoint (gdb's hbreak); minios-lab debug
    makes every breakpoint one, so that it works before Xen loads the
    guest and is never overwritten by the loader."""

    def __init__(self, name, target):
        super().__init__(name, gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_LOCATION)
        self.target = target

    def invoke(self, argument, from_tty):
        gdb.execute(self.target + " " + argument, from_tty)


class StopGuest(gdb.Command):
    """Kill QEMU (if it still runs) so that the guest stops with gdb."""

    def __init__(self):
        super().__init__("minios-lab-stop-guest", gdb.COMMAND_RUNNING)

    def invoke(self, argument, from_tty):
        try:
            if gdb.selected_inferior().pid:
                gdb.execute("kill", to_string=True)
        except gdb.error:
            pass


for name in ("break", "b", "br", "bre", "brea"):
    HardwareBreak(name, "hbreak")
HardwareBreak("tbreak", "thbreak")
StopGuest()
gdb.execute("define hook-quit\\nminios-lab-stop-guest\\nend")
for folder in %(directories)r:
    gdb.execute("directory " + folder, to_string=True)
'''

BANNER = ("minios-lab debug: Xen in QEMU is paused before its first "
          "instruction.\\nTry: break start_kernel, continue, print *si, "
          "next, bt. Breakpoints are hardware-assisted.\\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="minios-lab debug",
        description="Build the guest, start it on Xen in QEMU paused, and "
                    "debug it with gdb.")
    parser.add_argument("guest_args", nargs="*", metavar="GUEST_ARG",
                        help="guest command line words (after --)")
    parser.add_argument("--memory", type=int, default=64, metavar="MB",
                        help="guest memory in MiB (default 64)")
    parser.add_argument("-ex", action="append", default=[], metavar="CMD",
                        dest="commands", help="a gdb command (repeatable)")
    parser.add_argument("--batch", action="store_true",
                        help="run the -ex commands, then exit")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="--batch: stop QEMU after this many seconds")
    parser.add_argument("--no-build", action="store_true",
                        help="use kernel/build/minios.elf as it is")
    parser.add_argument("--xen-console", action="store_true",
                        help="print Xen's console lines too")
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error(f"--timeout must be a positive number of seconds, not "
                     f"{args.timeout}")
    return args


def gdb_command(gdb: Path, elf: Path, port: int, script: Path,
                args: argparse.Namespace) -> list[str]:
    """gdb, connected, with sources, hardware breakpoints, the user's -ex."""
    cmd = [str(gdb), "-q", "-nx"]
    setup = ["set confirm off", f"target remote 127.0.0.1:{port}"]
    if args.batch:
        cmd.append("-batch")
        setup.insert(0, "set pagination off")
    for line in setup:
        cmd += ["-ex", line]
    cmd += ["-x", str(script)]
    if not args.batch:
        cmd += ["-ex", f"echo {BANNER}"]
    for line in args.commands:
        cmd += ["-ex", line]
    if args.batch:       # end QEMU before gdb detaches and lets it run on
        cmd += ["-ex", "minios-lab-stop-guest"]
    return cmd + [str(elf)]


class _Watch(threading.Thread):
    """Reports a crash or shutdown of the guest; in batch mode, stops QEMU
    after a crash or at the deadline so that gdb's wait ends."""

    def __init__(self, machine: PausedMachine, batch: bool, timeout: float):
        super().__init__(daemon=True)
        self.machine, self.batch = machine, batch
        self.deadline = time.monotonic() + timeout
        self.done = threading.Event()
        self.verdict: Optional[str] = None   # why QEMU was stopped

    def run(self) -> None:
        console = self.machine.console
        while not self.done.wait(0.1):
            if console.crashed.is_set():
                console.crash_complete.wait(CRASH_GRACE)
                crash = self.machine.crash_report()
                say(f"the guest crashed:\n{crash.report() if crash else ''}")
                if self.batch:
                    self._halt("the guest crashed")
                return
            if self.batch and time.monotonic() > self.deadline:
                self._halt("time limit reached")
                return

    def _halt(self, verdict: str) -> None:
        self.verdict = verdict
        say(f"{verdict}: stopping QEMU")
        self.machine.stop()


def say(text: str) -> None:
    print(f"minios-lab debug: {text}", file=sys.stderr, flush=True)


def _echo(show_xen: bool, quiet: threading.Event):
    def echo(line: str) -> None:
        if quiet.is_set():
            return
        if show_xen or not line.startswith(boot.XEN_PREFIX):
            print(line, flush=True)
    return echo


def _run_gdb(cmd: list[str]) -> int:
    """Run gdb in the foreground; Ctrl-C is gdb's while it runs."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(cmd, preexec_fn=die_with_parent())
        try:
            return proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def debug(args: argparse.Namespace) -> int:
    gdb = gdb_binary()                      # before anything is started
    elf = boot.image_path() if args.no_build else boot.build_image()
    cmdline = " ".join(args.guest_args)
    gdb_ended = threading.Event()
    machine = PausedMachine(elf, cmdline, args.memory,
                            echo=_echo(args.xen_console, gdb_ended))
    watch = _Watch(machine, args.batch, args.timeout)
    try:
        with tempfile.TemporaryDirectory(prefix="minios-debug-") as tmp:
            script = Path(tmp) / "minios_lab_gdb.py"
            script.write_text(GDB_SCRIPT % {"directories": [
                str(boot.REPO_DIR), str(boot.KERNEL_DIR)]})
            watch.start()
            status = _run_gdb(gdb_command(gdb, elf, machine.port, script,
                                          args))
    finally:
        gdb_ended.set()
        watch.done.set()
        machine.stop()
    return 1 if watch.verdict else status


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return debug(args)
    except (MiniosLabError, ValueError) as err:
        say(str(err))
        return 1
