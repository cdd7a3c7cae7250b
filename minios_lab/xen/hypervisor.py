"""The host build's hypervisor: Python plays Xen for one lesson at a time.

A host-built kernel unit calls ``hypercall(nr, a1..a5)`` like the guest
does, but the call lands in :meth:`Hypervisor.hypercall`. The base class
serves the console and shutdown and records every call, so a notebook can
show "the kernel asked Xen to ...". Lessons subclass it to serve more (page
table updates, event channels, timers), always saying what real Xen does.

The built unit that calls it is loaded by minios_lab.build.kernellib.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable


# Host-side sentinel: keep in step with HOST_UNWIND in kernel/host/include/host/host.h.
HOST_UNWIND = -0x7EAD0000
# Larger console writes or guest reads are refused (-EFAULT), as a guard
# against a garbage length making Python allocate gigabytes.
MAX_GUEST_COPY = 1 << 24


class GuestFault(Exception):
    """A hypercall argument points where the guest has no memory."""


@dataclass
class HypercallRecord:
    """One hypercall the kernel made: its name, raw arguments and result."""

    name: str
    args: tuple[int, ...]
    result: int
    note: str = ""

    def __str__(self) -> str:
        args = ", ".join(hex(a) if a > 9 else str(a) for a in self.args)
        text = f"{self.name}({args}) = {self.result}"
        return f"{text}  # {self.note}" if self.note else text


@dataclass
class Hypervisor:
    """Python standing in for Xen: serves hypercalls, records them."""

    calls: list[HypercallRecord] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    shutdown_reason: str | None = None
    lib: Any = None
    ffi: Any = None

    def attach(self, module: ModuleType) -> None:
        self.lib, self.ffi = module.lib, module.ffi
        self._numbers = {getattr(module.lib, n): n[len("__HYPERVISOR_"):]
                         for n in dir(module.lib)
                         if n.startswith("__HYPERVISOR_")}

    # -- dispatch -------------------------------------------------------------
    def hypercall(self, nr: int, *args: int) -> int:
        name = self._numbers.get(nr, f"hypercall_{nr}")
        handler: Callable[..., int] | None = getattr(self, f"do_{name}", None)
        self._note = ""
        try:
            result = handler(*args) if handler else -errno.ENOSYS
        except GuestFault as fault:   # copy_from_guest() failed, as in Xen
            self.note(str(fault))
            result = -errno.EFAULT
        self.calls.append(HypercallRecord(name, args, result, self._note))
        return result

    def note(self, text: str) -> None:
        """Attach an explanation to the hypercall being served."""
        self._note = text

    # -- reading the guest's memory, as Xen does ------------------------------
    def copy_from_guest(self, address: int, size: int) -> bytes | None:
        """`size` bytes at the guest's `address`, or None where Xen's
        copy_from_guest() fails with -EFAULT (nothing mapped there)."""
        if not 0 <= size <= MAX_GUEST_COPY:
            return None
        out = self.ffi.new("char[]", max(size, 1))
        if self.lib.host_copy(out, self.ffi.cast("void *", address),
                              size) != 0:
            return None
        return bytes(self.ffi.buffer(out, size))

    def guest_ptr(self, address: int, ctype: str, count: int = 1,
                  write: bool = False) -> Any:
        """`address` as a `ctype *` into the guest's memory, after proving
        that `count` objects there can be read (and written, if `write`):
        otherwise GuestFault, which the hypercall returns as -EFAULT. A
        handler must use this, never a bare ffi.cast(), on a guest pointer:
        a bad one would fault in Python, where no guard can catch it."""
        size = self.ffi.sizeof(ctype) * max(count, 0)
        data = self.copy_from_guest(address, size)
        if data is None or (write and self.lib.host_copy(
                self.ffi.cast("void *", address), data, size) != 0):
            raise GuestFault(f"cannot {'write' if write else 'read'} "
                             f"{count} x {ctype} at {address:#x}: -EFAULT")
        return self.ffi.cast(ctype + " *", address)

    def read_guest(self, address: int, ctype: str) -> Any:
        """A copy of the guest's `ctype` object at `address` (a new cdata
        of that type), or None if it cannot be read."""
        raw = self.copy_from_guest(address, self.ffi.sizeof(ctype))
        if raw is None:
            return None
        value = self.ffi.new(ctype + " *")
        self.ffi.memmove(value, raw, len(raw))
        return value

    # -- hypercalls every lesson needs -----------------------------------------
    def do_console_io(self, cmd: int, count: int, ptr: int, *_: int) -> int:
        if cmd != self.lib.CONSOLEIO_write:
            return -errno.ENOSYS
        data = self.copy_from_guest(ptr, count & 0xFFFFFFFF)
        if data is None:
            self.note(f"cannot read {count} bytes at {ptr:#x}: -EFAULT")
            return -errno.EFAULT
        self.console.append(data.decode("latin-1"))
        return 0

    def do_sched_op(self, cmd: int, arg: int, *_: int) -> int:
        if cmd != self.lib.SCHEDOP_shutdown:
            return -errno.ENOSYS
        shutdown = self.read_guest(arg, "struct sched_shutdown")
        if shutdown is None:
            self.note(f"cannot read struct sched_shutdown at {arg:#x}")
            return -errno.EFAULT
        reason = shutdown.reason
        names = {self.lib.SHUTDOWN_poweroff: "poweroff",
                 self.lib.SHUTDOWN_reboot: "reboot",
                 self.lib.SHUTDOWN_crash: "crash",
                 self.lib.SHUTDOWN_suspend: "suspend",
                 self.lib.SHUTDOWN_watchdog: "watchdog"}
        self.shutdown_reason = names.get(reason, f"reason {reason}")
        self.note(f"domain shut down: {self.shutdown_reason}")
        return HOST_UNWIND

    # -- views ------------------------------------------------------------------
    @property
    def console_text(self) -> str:
        return "".join(self.console)

    def call_names(self) -> list[str]:
        return [c.name for c in self.calls]
