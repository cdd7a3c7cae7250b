"""The virtual exception table from Python: Python plays Xen and the stubs.

In the guest, an exception goes CPU -> Xen -> the stub in entry.S, which
turns Xen's bounce frame into a ``struct pt_regs`` and calls
``do_exception()`` in kernel/traps.c. In the host build nothing really
faults: :class:`Traps` does Xen's and the stub's part. It writes the
faulting address into a ``vcpu_info`` that Python owns (as Xen writes
``arch.cr2``), builds the ``pt_regs`` with the bits Xen would put there
(kernel-mode ``cs`` with the saved event mask in bits 32-39, RFLAGS.IF),
and calls the real C handler.

:meth:`Traps.raise_exception` returns a :class:`TrapOutcome`: what the
handler printed and where execution goes on. A fatal exception raises
:class:`~minios_lab.errors.KernelPanic`, as the guest would stop.
:meth:`Traps.trap_table` is the table the kernel registered with
``HYPERVISOR_set_trap_table``, recorded when Python served that call.
"""
from __future__ import annotations

import minios_lab

import errno
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minios_lab.errors import KernelPanic, checked_int
from minios_lab.xen.hypervisor import Hypervisor
from minios_lab.build.units import load

KERNEL_DIR = minios_lab.KERNEL_DIR

# Bits of trap_info.flags (<xen/arch-x86/xen.h>: TI_GET_DPL, TI_GET_IF).
TI_DPL_MASK = 0x3
TI_MASK_EVENTS = 0x4

# What a bounce frame holds when the guest kernel was interrupted.
DEFAULT_RSP = 0x17F98          # on the guest's boot stack
RFLAGS_RESERVED = 0x2          # bit 1 of RFLAGS always reads 1
GPR_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9",
             "r10", "r11", "r12", "r13", "r14", "r15")


@dataclass(frozen=True)
class TrapEntry:
    """One trap_info entry the kernel gave Xen."""

    vector: int
    mnemonic: str
    name: str
    dpl: int              # lowest ring allowed to raise it with "int $n"
    masks_events: bool    # Xen masks events on entry (interrupt gate)
    cs: int
    entry: str            # the stub in entry.S
    address: int = field(default=0, repr=False, compare=False)


@dataclass(frozen=True)
class Callback:
    """A callback registered with callback_op(CALLBACKOP_register)."""

    kind: str             # "event" or "failsafe"
    entry: str
    masks_events: bool
    address: int = field(default=0, repr=False, compare=False)


@dataclass
class TrapOutcome:
    """What one exception did: the handler's words and where it went on."""

    vector: int
    mnemonic: str
    name: str
    rip: int                     # where it hit
    error_code: int | None       # None: the vector has none
    cr2: int | None              # page faults only
    resumed_at: int              # rip after the handler returned
    fixed_up: bool               # went on at a fix-up landing
    console: str = field(repr=False)   # what the handler printed
    mask_in_handler: int         # evtchn_upcall_mask while it ran
    mask_after: int              # ... after the iret

    @property
    def resumed_in_place(self) -> bool:
        """Execution went on at the same rip (a trap such as int3)."""
        return not self.fixed_up and self.resumed_at == self.rip

    def __str__(self) -> str:
        how = (f"fixed up: {self.rip:#x} -> {self.resumed_at:#x}"
               if self.fixed_up else f"resumed at {self.resumed_at:#x}")
        return f"{self.mnemonic} {self.name}: {how}"


@dataclass
class TrapSnapshot:
    """Counters of the kernel's trap code, as plain data."""

    taken: dict[int, int]        # vector -> exceptions taken
    resumed: int
    fixed_up: int
    depth: int
    last: dict[str, int]


class TrapsHypervisor(Hypervisor):
    """Xen's part: the virtual IDT, the callbacks, and cr2 in vcpu_info."""

    def __init__(self) -> None:
        super().__init__()
        self.vcpu: Any = None                    # struct vcpu_info *
        self.raw_table: list[tuple[int, int, int, int]] = []
        self.raw_callbacks: list[tuple[int, int, int]] = []

    def do_set_trap_table(self, table: int, *_: int) -> int:
        self.raw_table = []
        for i in range(256):                 # Xen stops at address 0
            ti = self.guest_ptr(table + i * self.ffi.sizeof(
                "struct trap_info"), "struct trap_info")[0]
            if ti.address == 0:
                break
            self.raw_table.append((ti.vector, ti.flags, ti.cs, ti.address))
        self.note(f"virtual IDT: {len(self.raw_table)} vectors")
        return 0

    def do_callback_op(self, cmd: int, arg: int, *_: int) -> int:
        if cmd != self.lib.CALLBACKOP_register:
            return -errno.ENOSYS
        cb = self.guest_ptr(arg, "struct callback_register")
        self.raw_callbacks.append((cb.type, cb.flags, cb.address))
        self.note(f"callback type {cb.type} registered")
        return 0

    def write_cr2(self, address: int) -> None:
        """Xen sets arch.cr2 before it bounces a page fault to the guest."""
        self.vcpu.arch.cr2 = address

    def bounce(self, masks_events: bool, events_enabled: bool) -> None:
        """The event mask around a bounce: the interrupted code's state,
        then masked if the trap_info entry has the event-mask flag. (The
        old mask goes into the frame: see kernel_cs_rflags.)"""
        self.vcpu.evtchn_upcall_mask = 0 if events_enabled else 1
        if masks_events:
            self.vcpu.evtchn_upcall_mask = 1

    def iret(self, rflags: int) -> None:
        """The iret hypercall restores the mask from the saved RFLAGS.IF."""
        self.vcpu.evtchn_upcall_mask = 0 if rflags & self.lib.X86_RFLAGS_IF \
            else 1


# One vcpu_info per loaded extension, kept for the life of the process: the
# kernel's trap_vcpu points at it, and every Traps of that extension shares
# the kernel's globals anyway.
_VCPUS: dict[str, Any] = {}


def _vcpu_for(kernel: Any) -> Any:
    key = kernel.module.__name__
    if key not in _VCPUS:
        _VCPUS[key] = kernel.ffi.new("struct vcpu_info *")
    return _VCPUS[key]


class Traps:
    """kernel/traps.c, host-built, with Python as Xen and as entry.S.

    The kernel's state (counters, fix-up table) lives in C globals, one set
    per process, shared by every Traps.
    """

    def __init__(self, kernel_dir: Path | None = None) -> None:
        self.hypervisor = TrapsHypervisor()
        self.kernel = load("traps", kernel_dir=kernel_dir,
                           hypervisor=self.hypervisor)
        self.ffi = self.kernel.ffi
        self.hypervisor.vcpu = _vcpu_for(self.kernel)
        self.kernel.traps_init(self.hypervisor.vcpu)

    # -- what the kernel registered --------------------------------------------
    def _text(self, pointer: Any) -> str:
        return self.ffi.string(pointer).decode() if pointer else "?"

    def trap_table(self) -> list[TrapEntry]:
        """The trap_info entries of the kernel's set_trap_table call."""
        return [TrapEntry(vector, self._text(self.kernel.trap_mnemonic(vector)),
                          self._text(self.kernel.trap_name(vector)),
                          flags & TI_DPL_MASK, bool(flags & TI_MASK_EVENTS),
                          cs, self._text(self.kernel.trap_entry_name(address)),
                          address)
                for vector, flags, cs, address in self.hypervisor.raw_table]

    def callbacks(self) -> list[Callback]:
        """The callbacks the kernel registered, in order."""
        lib = self.kernel.lib
        kinds = {lib.CALLBACKTYPE_event: "event",
                 lib.CALLBACKTYPE_failsafe: "failsafe"}
        return [Callback(kinds.get(kind, f"type {kind}"),
                         self._text(self.kernel.trap_entry_name(address)),
                         bool(flags & lib.CALLBACKF_mask_events), address)
                for kind, flags, address in self.hypervisor.raw_callbacks]

    # -- the fix-up table ---------------------------------------------------------
    def add_fixup(self, fault: int, landing: int) -> None:
        """Register "an exception at `fault` goes on at `landing`"."""
        if self.kernel.trap_fixup_add(fault, landing) != 0:
            raise OverflowError(
                f"fix-up table full ({self.kernel.TRAP_FIXUP_MAX} entries)")

    def fixup_for(self, fault: int) -> int | None:
        landing = self.kernel.trap_fixup_find(fault)
        return landing or None

    def clear_fixups(self) -> None:
        self.kernel.trap_fixup_clear()

    # -- raising exceptions -----------------------------------------------------------
    def has_error_code(self, vector: int) -> bool:
        return bool(self.kernel.trap_has_error_code(vector))

    def make_regs(self, vector: int, rip: int, error_code: int | None = None,
                  events_enabled: bool = True, **registers: int) -> Any:
        """A struct pt_regs as entry.S leaves it for this exception."""
        regs = self.ffi.new("struct pt_regs *")
        checked_int(vector, "vector", 0, 255)
        if error_code is not None and not self.has_error_code(vector):
            raise ValueError(f"vector {vector} has no error code")
        _store(regs, "vector", vector)
        _store(regs, "rip", rip)
        _store(regs, "error_code", error_code or 0)  # the stub pushes 0
        regs.cs, regs.rflags = kernel_cs_rflags(self.kernel, events_enabled)
        regs.rsp, regs.ss = DEFAULT_RSP, self.kernel.FLAT_KERNEL_SS
        for name, value in registers.items():
            if name not in GPR_NAMES + ("rsp", "rflags"):
                raise ValueError(f"pt_regs has no register {name!r}")
            _store(regs, name, value)
        return regs

    def raise_exception(self, vector: int, rip: int,
                        error_code: int | None = None, cr2: int = 0,
                        events_enabled: bool = True,
                        **registers: int) -> TrapOutcome:
        """Deliver exception `vector` at `rip` as Xen and entry.S would.

        Raises KernelPanic if the handler stops the guest.
        """
        regs = self.make_regs(vector, rip, error_code, events_enabled,
                              **registers)
        if vector == self.kernel.TRAP_page_fault:
            self.hypervisor.write_cr2(cr2)
        self.hypervisor.bounce(self._masks_events(vector), events_enabled)
        start = len(self.hypervisor.console)
        try:
            self.kernel.do_exception(regs)
        except KernelPanic:
            self.kernel.lib.trap_stats.depth = 0   # that domain is gone
            raise
        self.hypervisor.iret(regs.rflags)
        return self._outcome(regs, rip, start)

    def _masks_events(self, vector: int) -> bool:
        return any(e.masks_events for e in self.trap_table()
                   if e.vector == vector)

    def _outcome(self, regs: Any, rip: int, start: int) -> TrapOutcome:
        vector = regs.vector
        last = self.kernel.lib.trap_stats.last
        is_pf = vector == self.kernel.TRAP_page_fault
        return TrapOutcome(
            vector, self._text(self.kernel.trap_mnemonic(vector)),
            self._text(self.kernel.trap_name(vector)), rip,
            regs.error_code if self.has_error_code(vector) else None,
            last.cr2 if is_pf else None, regs.rip, regs.rip != rip,
            "".join(self.hypervisor.console[start:]), last.upcall_mask,
            self.hypervisor.vcpu.evtchn_upcall_mask)

    def snapshot(self) -> TrapSnapshot:
        stats = self.kernel.lib.trap_stats
        taken = {v: stats.taken[v] for v in range(self.kernel.TRAP_NR_VECTORS)
                 if stats.taken[v]}
        last = {name: getattr(stats.last, name) for name in
                ("vector", "error_code", "rip", "cr2", "resume_at",
                 "upcall_mask", "saved_mask")}
        return TrapSnapshot(taken, stats.resumed, stats.fixed_up, stats.depth,
                            last)


def _store(regs: Any, name: str, value: Any) -> None:
    """regs.name = value, or ValueError/TypeError saying what is wrong."""
    try:
        setattr(regs, name, value)
    except OverflowError:
        raise ValueError(f"{name}={value} does not fit a 64-bit "
                         f"register") from None


def kernel_cs_rflags(kernel: Any, events_enabled: bool) -> tuple[int, int]:
    """cs and rflags of a bounce frame for a trap in kernel mode.

    Xen clears the selector's RPL (0: "you were in kernel mode"), puts the
    event mask it saved in bits 32-39 of the cs word, and sets RFLAGS.IF
    to the opposite of that mask.
    """
    saved_mask = 0 if events_enabled else 1
    cs = (kernel.FLAT_KERNEL_CS & ~3) | (saved_mask << 32)
    rflags = RFLAGS_RESERVED | (kernel.X86_RFLAGS_IF if events_enabled else 0)
    return cs, rflags


# --- frame layouts, for the pictures --------------------------------------------

@dataclass(frozen=True)
class Slot:
    """One 8-byte word of a stack frame."""

    name: str
    offset: int      # bytes above the stack pointer
    source: str      # "cpu", "errcode", "xen", "stub", "saved"


def pt_regs_layout(ffi: Any) -> list[Slot]:
    """struct pt_regs word by word, from the C compiler's own offsets."""
    struct = ffi.typeof("struct pt_regs")
    hardware = {"rip", "cs", "rflags", "rsp", "ss"}
    slots = []
    for name, fld in struct.fields:
        source = ("cpu" if name in hardware else
                  "errcode" if name == "error_code" else
                  "stub" if name == "vector" else "saved")
        slots.append(Slot(name, fld.offset, source))
    return sorted(slots, key=lambda s: s.offset)


def bounce_frame_layout(has_error_code: bool) -> list[Slot]:
    """Xen's frame at a handler's first instruction (rsp = offset 0).

    From create_bounce_frame in Xen's entry.S, as the public headers
    describe it: rcx and r11 on top, then the error code if any, then what
    the CPU itself would push.
    """
    names = ["rcx", "r11"] + (["error_code"] if has_error_code else [])
    names += ["rip", "cs", "rflags", "rsp", "ss"]
    source = {"rcx": "xen", "r11": "xen", "error_code": "errcode"}
    return [Slot(n, 8 * i, source.get(n, "cpu")) for i, n in enumerate(names)]


_SAVE_PUSH = re.compile(r"^\s*pushq %(\w+)", re.M)


def entry_save_order(path: Path = KERNEL_DIR / "arch/x86_64/entry.S") -> list[str]:
    """The registers SAVE_REGS in entry.S pushes, first push first."""
    text = path.read_text()
    body = text[text.index(".macro SAVE_REGS"):]
    body = body[:body.index(".endm")]
    return _SAVE_PUSH.findall(body)


# --- reading the guest's section -------------------------------------------------

DEMO_RE = re.compile(r"^traps: demo (\w+): (PASS|FAIL)$")


def demo_verdicts(lines: list[str]) -> dict[str, str]:
    """{demo name: PASS/FAIL} from the guest's traps section."""
    found = {}
    for line in lines:
        match = DEMO_RE.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def summary_lines(lines: list[str]) -> list[str]:
    """The chapter's own "traps: ..." lines, without the register dumps.

    Those lines hold no addresses, so they read the same in every build.
    """
    return [line for line in lines if line.startswith("traps: ")]
