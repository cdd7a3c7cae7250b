"""The running guest on real Xen, seen through gdb, from Python.

:class:`LiveGuest` builds the guest, starts Xen in QEMU paused with its gdb
stub on a free local port (:mod:`minios_lab.guest.live.qemu`), and drives gdb's
machine interface through pygdbmi (:mod:`minios_lab.guest.live.gdb`)::

    with LiveGuest() as g:
        g.run_to("start_kernel")          # a Stop: function, file, line
        g.eval("si->nr_pages")            # '16384', as gdb prints it
        g.read("si", 32)                  # bytes of the start_info page
        g.registers()["rip"]
        g.page_allocator()                # a minios_lab.mm.PoolSnapshot

Breakpoints are hardware-assisted (``hbreak``): QEMU matches them against
the program counter, so they can be set before Xen has even loaded the
guest, and nothing is written into guest memory that Xen would overwrite.

A run (:meth:`run_to`, :meth:`cont`, :meth:`next`, ...) waits at most
`timeout` seconds. Whatever ends a session early ends it completely, QEMU
and gdb stopped, with an exception that says what happened:
:class:`BreakpointTimeout` (the guest never got there),
:class:`GuestCrashed` (Xen's crash report, resolved to a function),
:class:`GuestExited` (the guest shut down first), :class:`GuestInterrupted`
(the learner pressed stop; a KeyboardInterrupt). A bad expression is only
a :class:`GdbError`: the session goes on.

The snapshot methods read the guest's own data structures and return the
types of the host build, so the plots of chapters 03 and 05 draw them:
:meth:`page_allocator` (:mod:`minios_lab.guest.live.snap`), :meth:`page_tables`
and :meth:`walk`.
"""
from __future__ import annotations

import re
import weakref
from pathlib import Path
from typing import Any, Callable, Optional, Union

from minios_lab.guest import boot
from minios_lab.guest.live.gdb import MiSession, Stop, mi_quote
from minios_lab.guest.live.qemu import (BreakpointTimeout, GdbError, GdbMissing,
                        GuestCrashed, GuestExited, GuestInterrupted,
                        LiveError, PausedMachine, SessionClosed)

__all__ = ["LiveGuest", "Stop", "LiveError", "GdbMissing", "GdbError",
           "BreakpointTimeout", "GuestCrashed", "GuestExited",
           "GuestInterrupted", "SessionClosed"]

RUN_TIMEOUT = 30.0       # seconds a run may take unless told otherwise
CRASH_GRACE = 1.0        # Xen finishes its crash report within this
STEP_TIMEOUT = 10.0

Where = Union[int, str]


def _cleanup(machine: Optional[PausedMachine],
             gdb: Optional[MiSession]) -> None:
    if gdb is not None:
        gdb.close()
    if machine is not None:
        machine.stop()


class LiveGuest:
    """One boot of the guest under gdb. Start it with the constructor (it
    stops at the reset vector, before Xen runs); end it with close() or a
    ``with`` block. See the module's documentation."""

    def __init__(self, cmdline: str = "", memory_mb: int = 64, *,
                 build: bool = True, timeout: float = RUN_TIMEOUT,
                 kernel_dir: Path = boot.KERNEL_DIR,
                 echo: Optional[Callable[[str], None]] = None):
        self.timeout = timeout
        self.elf = (boot.build_image(kernel_dir) if build
                    else boot.image_path(kernel_dir))
        self.closed_because: Optional[str] = None
        self.machine: Optional[PausedMachine] = None
        self.gdb: Optional[MiSession] = None
        self._registers: Optional[list[str]] = None
        try:
            self.gdb = MiSession(self.elf, [kernel_dir.parent, kernel_dir])
            self.machine = PausedMachine(self.elf, cmdline, memory_mb, echo)
            self.gdb.command(
                f"-target-select remote 127.0.0.1:{self.machine.port}")
            self.gdb.drain_stops()
        except BaseException:
            _cleanup(self.machine, self.gdb)
            raise
        self._finalizer = weakref.finalize(self, _cleanup, self.machine,
                                           self.gdb)

    # -- life ---------------------------------------------------------------
    def __enter__(self) -> "LiveGuest":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self, reason: str = "closed") -> None:
        """Stop gdb and QEMU; idempotent."""
        if self.closed_because is None:
            self.closed_because = reason
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self.closed_because is not None

    def __repr__(self) -> str:
        state = (f"closed: {self.closed_because}" if self.closed
                 else f"gdb stub on port {self.port}")
        return f"<LiveGuest {state}>"

    @property
    def port(self) -> int:
        return self.machine.port if self.machine else 0

    @property
    def console(self) -> list[str]:
        """What the guest has printed so far."""
        return self.machine.console.snapshot()[1] if self.machine else []

    @property
    def console_lines(self) -> list[str]:
        """Everything on the serial console so far, Xen's lines too."""
        return self.machine.console.snapshot()[0] if self.machine else []

    def _session(self) -> MiSession:
        if self.closed or self.gdb is None:
            raise SessionClosed(f"this LiveGuest has ended "
                                f"({self.closed_because}); start a new one")
        return self.gdb

    def _command(self, mi: str) -> Any:
        return self._command_output(mi)[0]

    def _command_output(self, mi: str) -> tuple[Any, str]:
        """An MI command on a stopped guest. If QEMU has gone meanwhile
        (killed, or the machine died), the session ends here."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        gdb = self._session()
        try:
            return gdb.command_output(mi)
        except GdbError:
            if self.machine is not None and not self.machine.running:
                raise self._fail(GuestExited(
                    "QEMU is gone: the session has ended, gdb is stopped"),
                    "QEMU gone") from None
            raise
        except (LiveError, KeyboardInterrupt) as err:
            raise self._failure(err, f"answer {mi.split()[0]}") from None

    def _fail(self, error: BaseException, reason: str) -> BaseException:
        """End the session for `reason`; return `error` to raise."""
        self.close(reason)
        return error

    # -- breakpoints and runs -------------------------------------------------
    def break_at(self, location: str, temporary: bool = False) -> int:
        """A hardware breakpoint at a function, file:line or *address;
        returns its number."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        flags = "-h -t" if temporary else "-h"
        result = self._command(
            f"-break-insert {flags} {mi_quote(location)}")
        return int(result["bkpt"]["number"])

    def delete(self, number: int) -> None:
        self._command(f"-break-delete {number}")

    def run_to(self, location: str, timeout: Optional[float] = None) -> Stop:
        """Run until `location` (a temporary breakpoint) and return the
        stop. If another breakpoint comes first, that is the stop."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        number = self.break_at(location, temporary=True)
        stop = self._run("-exec-continue", f"reach {location}",
                         timeout or self.timeout)
        if stop.breakpoint != number:
            self._forget_breakpoint(number)
        return stop

    def _forget_breakpoint(self, number: int) -> None:
        try:
            self.delete(number)
        except GdbError:
            pass          # already gone

    def cont(self, timeout: Optional[float] = None) -> Stop:
        """Continue until a breakpoint."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        return self._run("-exec-continue", "stop at a breakpoint",
                         timeout or self.timeout)

    def next(self, count: int = 1) -> Stop:
        """gdb's ``next``: the next source line, stepping over calls."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        return self._run(f"-exec-next {count}", "finish a step",
                         STEP_TIMEOUT)

    def step(self, count: int = 1) -> Stop:
        """gdb's ``step``: the next source line, into calls."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        return self._run(f"-exec-step {count}", "finish a step", STEP_TIMEOUT)

    def finish(self, timeout: Optional[float] = None) -> Stop:
        """Run until the current function returns."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        return self._run("-exec-finish", "return from the function",
                         timeout or self.timeout)

    def _run(self, mi: str, goal: str, timeout: float) -> Stop:
        __tracebackhide__ = True  # IPython: show the cell, not this
        gdb = self._session()
        gdb.drain_stops()
        try:
            gdb.command(mi)
            payload = gdb.wait_stopped(timeout, self._check_machine)
        except GdbError:
            raise         # gdb refused the command: the session goes on
        except (LiveError, KeyboardInterrupt) as err:
            raise self._failure(err, goal) from None
        if payload is None:
            lines = "\n  ".join(self.console[-5:]) or "(nothing)"
            raise self._fail(BreakpointTimeout(
                f"the guest did not {goal} within {timeout:g} s; QEMU and "
                f"gdb are stopped. Its last lines:\n  {lines}"), "timeout")
        stop = Stop.from_record(payload)
        if self.machine is not None:      # what it printed before stopping
            self.machine.console.settle()
        if stop.reason in ("exited", "exited-normally", "exited-signalled"):
            raise self._fail(GuestExited(
                f"QEMU ended before the guest could {goal}"), "exited")
        return stop

    def _failure(self, err: BaseException, goal: str) -> BaseException:
        if isinstance(err, KeyboardInterrupt):
            return self._fail(GuestInterrupted(
                f"interrupted while waiting for the guest to {goal}: QEMU "
                f"and gdb are stopped"), "interrupted")
        if isinstance(err, (GuestCrashed, GuestExited)):
            return self._fail(err, type(err).__name__)
        if self.machine is not None and not self.machine.running:
            return self._fail(GuestExited(
                f"QEMU ended before the guest could {goal}"), "exited")
        return self._fail(err, f"gdb failed: {err}")

    def _check_machine(self) -> None:
        """Raise if the guest can no longer stop: it crashed or ended."""
        machine = self.machine
        if machine is None:
            return
        console = machine.console
        if console.crashed.is_set():
            console.crash_complete.wait(CRASH_GRACE)
            crash = machine.crash_report()
            raise GuestCrashed(
                f"the guest crashed: {crash}\n{crash.report() if crash else ''}"
                "\nQEMU and gdb are stopped.", crash)
        last = (self.console or ["(none)"])[-1]
        if console.shutdown.is_set():
            raise GuestExited(f"the guest shut down (its last line: "
                              f"{last!r}); QEMU and gdb are stopped")
        if console.closed.is_set() or not machine.running:
            raise GuestExited(f"QEMU exited without a shutdown request (a "
                              f"reset, e.g. a triple fault, or QEMU died; "
                              f"the guest's last line: {last!r}); gdb is "
                              f"stopped")

    # -- looking ------------------------------------------------------------
    def eval(self, expression: str) -> str:
        """gdb's value of a C expression, as gdb prints it."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        result = self._command(
            f"-data-evaluate-expression {mi_quote(expression)}")
        return result["value"]

    def value(self, expression: str) -> int:
        """An integer (or pointer) expression's value as an int."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        text = self.eval(f"(unsigned long)({expression})")
        return int(text.split()[0], 0)

    def address(self, where: Where) -> int:
        """The address `where` names: an int is one; a string is a C
        expression: a pointer or an integer is an address, an array or a
        function stands for its address (as in C), and a struct or union
        for its own address ("boot_info" is the same as "&boot_info")."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        if isinstance(where, int):
            return where
        # gdb's Python knows the type; the CLI would cast a struct to a
        # number without complaint.
        script = (f"v = gdb.parse_and_eval({where!r}); "
                  "t = v.type.strip_typedefs(); "
                  "print(int(v.address) if t.code in (gdb.TYPE_CODE_STRUCT, "
                  "gdb.TYPE_CODE_UNION) else "
                  "int(v.cast(gdb.lookup_type('unsigned long'))))")
        text = self.cli(f"python {script}").strip()
        if not re.fullmatch(r"\d+", text):
            raise GdbError(f"{where!r} is not an address: {text}")
        return int(text)

    def read(self, where: Where, size: int) -> bytes:
        """`size` bytes of guest memory at `where` (see address())."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        if size == 0:
            return b""
        start = self.address(where)
        result = self._command(
            f"-data-read-memory-bytes {start:#x} {size}")
        data = b"".join(bytes.fromhex(block["contents"])
                        for block in result["memory"])
        if len(data) != size:
            raise GdbError(f"could read only {len(data)} of {size} bytes at "
                           f"{start:#x}")
        return data

    def read_u64(self, where: Where, count: int = 1) -> list[int]:
        """`count` little-endian 64-bit words at `where`."""
        data = self.read(where, 8 * count)
        return [int.from_bytes(data[i:i + 8], "little")
                for i in range(0, len(data), 8)]

    def registers(self, names: Optional[list[str]] = None) -> dict[str, int]:
        """The CPU's registers as gdb sees them (rip, rsp, rflags as
        eflags, cs, cr2, cr3, ...): every integer register, or `names`."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        if self._registers is None:
            self._registers = self._command(
                "-data-list-register-names")["register-names"]
        values = self._command("-data-list-register-values x")
        found = {}
        for entry in values["register-values"]:
            name = self._registers[int(entry["number"])]
            if name and re.fullmatch(r"0x[0-9a-f]+", entry["value"]):
                found[name] = int(entry["value"], 16)
        if names is None:
            return found
        missing = [n for n in names if n not in found]
        if missing:
            raise GdbError(f"no register {', '.join(missing)} "
                           f"(there are: {', '.join(sorted(found))})")
        return {n: found[n] for n in names}

    def cli(self, command: str) -> str:
        """Any gdb command (bt, list, info frame, x/4i $pc): its output."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        _, text = self._command_output(
            f"-interpreter-exec console {mi_quote(command)}")
        return text

    def backtrace(self) -> list[str]:
        """Function names of the stack, innermost first."""
        frames = self._command("-stack-list-frames")["stack"]
        return [f.get("frame", f).get("func", "??") for f in frames]

    # -- snapshots ----------------------------------------------------------
    def page_allocator(self):
        """The guest's page allocator as a minios_lab.mm.PoolSnapshot."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        from minios_lab.guest.live.snap import pool_snapshot
        return pool_snapshot(self)

    def page_tables(self):
        """The guest's page tables as a minios_lab.pagetable.Snapshot."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        from minios_lab.guest.live.snap import LiveTables
        return LiveTables(self).snapshot()

    def walk(self, va: int):
        """The walk of `va` through the guest's page tables, as a
        minios_lab.pagetable.Walk (what the kernel's pt_walk() computes)."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        from minios_lab.guest.live.snap import LiveTables
        return LiveTables(self).walk(va)

    def start_info(self) -> bytes:
        """The bytes of the start_info page Xen wrote for the guest."""
        from minios_lab.guest.live.snap import start_info_address
        return self.read(start_info_address(self), 4096)

