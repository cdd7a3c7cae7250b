"""Event channels from Python: Python plays Xen's part, the kernel its own.

The kernel's event code (kernel/hypervisor.c, kernel/events.c) runs
unchanged. What Xen does is done here, by :class:`EventXen`:

* it owns the shared_info page (a page-aligned host page handed to the
  kernel's ``set_shared_info()``) and writes it as Xen's 2-level event code
  does: :meth:`EventXen.set_pending` sets the port's pending bit and, if the
  port is not masked, its selector bit and ``evtchn_upcall_pending``;
* it serves the ``EVTCHNOP_*`` hypercalls (alloc_unbound, bind_interdomain,
  bind_virq, send, close) with a small port table, and ``xen_version``;
* on every return to the guest, as real Xen does after each hypercall, it
  delivers the upcall while ``evtchn_upcall_pending`` is set and
  ``evtchn_upcall_mask`` clear: it sets the mask (Xen masks events on
  entry), calls the kernel's ``do_hypervisor_callback()``, and clears the
  mask again (the iret hypercall restores the saved one).

So ``local_irq_enable()``'s ``force_evtchn_callback()`` (a ``xen_version``
hypercall) delivers here exactly as on Xen: the same C, the same path.

:class:`EventChannels` is the Pythonic face. Its handlers are Python
functions (the kernel calls them through an ``extern "Python"``
trampoline), every delivery is logged as a :class:`Delivery` with the
upcall it came in and the operation that caused it, and ``snapshot()``
returns the bitmaps and the log as plain data for tests and plots
(:mod:`minios_lab.viz.events`).

The kernel's event state is global, so one EventChannels drives it at a
time: creating a new one takes the kernel over (fresh shared_info page,
``init_events()``).
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from minios_lab.errors import MiniosLabError
from minios_lab.xen.hypervisor import HOST_UNWIND, Hypervisor
from minios_lab.build.kernellib import KernelLib
from minios_lab.build.units import load

PAGE_SIZE = 4096
WORD_BITS = 64
NR_WORDS = 64
NR_PORTS = WORD_BITS * NR_WORDS
NR_VIRQS = 24
DOMID_SELF = 0x7FF0
XEN_VERSION = (4 << 16) | 17  # what xen_version(XENVER_version) says: 4.17
# More upcalls than this on one return to the guest is an event storm: a
# handler that raises its own port forever.
MAX_UPCALLS_PER_RETURN = 64

Handler = Callable[[int], None]


class EventError(MiniosLabError):
    """An event-channel operation failed; errno says why (Xen's code)."""

    def __init__(self, what: str, code: int):
        super().__init__(f"{what}: {errno.errorcode.get(code, code)}")
        self.errno = code


class EventStorm(MiniosLabError):
    """Xen had to deliver more than MAX_UPCALLS_PER_RETURN upcalls in a row."""


def port_bit(port: int) -> tuple[int, int]:
    """(word, bit mask) of `port` in a 2-level bitmap."""
    if not 0 <= port < NR_PORTS:
        raise ValueError(f"port {port} is not in 0..{NR_PORTS - 1}")
    word, bit = divmod(port, WORD_BITS)
    return word, 1 << bit


def bits_to_ports(words: list[int]) -> list[int]:
    """The ports whose bits are set in a 2-level bitmap, lowest first."""
    return [w * WORD_BITS + b for w, word in enumerate(words)
            for b in range(WORD_BITS) if word >> b & 1]


# --- Xen's side ----------------------------------------------------------------

@dataclass
class Port:
    """Xen's record of one of the domain's ports."""

    state: str                 # "unbound", "interdomain" or "virq"
    peer: Optional[int] = None  # the other end of an interdomain channel
    virq: Optional[int] = None


@dataclass
class EventXen(Hypervisor):
    """Python as Xen's event-channel code and its return-to-guest path."""

    ports: dict[int, Port] = field(default_factory=dict)
    virqs: dict[int, int] = field(default_factory=dict)
    upcalls: list[str] = field(default_factory=list)
    kernel: Optional[KernelLib] = None
    shared: Any = None
    _page: Any = None

    def connect(self, kernel: KernelLib) -> None:
        """Give the kernel a fresh shared_info page, as Xen builds it."""
        self.kernel = kernel
        self._page = self.ffi.new("char[]", 2 * PAGE_SIZE)
        address = int(self.ffi.cast("uintptr_t", self._page))
        aligned = (address + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        self.shared = self.ffi.cast("shared_info_t *", aligned)
        # Xen's dom0 builder starts every vCPU with events masked.
        for vcpu in self.shared.vcpu_info:
            vcpu.evtchn_upcall_mask = 1
        kernel.set_shared_info(self.shared)

    @property
    def vcpu(self) -> Any:
        return self.shared.vcpu_info[0]

    # -- the 2-level ABI, as Xen writes it ----------------------------------
    def set_pending(self, port: int) -> bool:
        """Raise `port`; False if it was already pending (events coalesce)."""
        word, bit = port_bit(port)
        s = self.shared
        if s.evtchn_pending[word] & bit:
            return False
        s.evtchn_pending[word] |= bit
        if s.evtchn_mask[word] & bit:
            return True
        if not self.vcpu.evtchn_pending_sel >> word & 1:
            self.vcpu.evtchn_pending_sel |= 1 << word
            self.vcpu.evtchn_upcall_pending = 1
        return True

    def return_to_guest(self, why: str) -> int:
        """Deliver upcalls while pending and not masked; how many ran."""
        count = 0
        while self.vcpu.evtchn_upcall_pending and \
                not self.vcpu.evtchn_upcall_mask:
            if count == MAX_UPCALLS_PER_RETURN:
                raise EventStorm(f"{count} upcalls in a row after {why}")
            self.vcpu.evtchn_upcall_mask = 1     # Xen masks on entry
            self.upcalls.append(why)
            self.kernel.call(self.lib.do_hypervisor_callback, self.ffi.NULL)
            self.vcpu.evtchn_upcall_mask = 0     # iret restores the saved 0
            count += 1
        return count

    def hypercall(self, nr: int, *args: int) -> int:
        result = super().hypercall(nr, *args)
        if result != HOST_UNWIND and self.shared is not None:
            self.return_to_guest(f"return from {self.calls[-1].name}")
        return result

    def raise_virq(self, virq: int) -> bool:
        """Fire a virtual IRQ, as Xen's timer or console code would."""
        if virq not in self.virqs:
            raise ValueError(f"VIRQ {virq} is not bound to a port")
        return self.set_pending(self.virqs[virq])

    # -- hypercalls ------------------------------------------------------------
    def do_xen_version(self, cmd: int, arg: int, *_: int) -> int:
        if cmd != self.lib.XENVER_version:
            return -errno.ENOSYS
        self.note("no effect; on return Xen delivers any pending upcall")
        return XEN_VERSION

    def do_event_channel_op(self, cmd: int, arg: int, *_: int) -> int:
        lib = self.lib
        ops = {lib.EVTCHNOP_alloc_unbound: self._alloc_unbound,
               lib.EVTCHNOP_bind_interdomain: self._bind_interdomain,
               lib.EVTCHNOP_bind_virq: self._bind_virq,
               lib.EVTCHNOP_send: self._send,
               lib.EVTCHNOP_close: self._close}
        op = ops.get(cmd)
        return op(arg) if op else -errno.ENOSYS

    def free_port(self) -> int:
        # Xen never hands out port 0: it is reserved.
        return next((p for p in range(1, NR_PORTS) if p not in self.ports),
                    -errno.ENOSPC)

    def _is_self(self, domid: int) -> bool:
        return domid in (DOMID_SELF, 0)

    def _alloc_unbound(self, arg: int) -> int:
        op = self.guest_ptr(arg, "struct evtchn_alloc_unbound", write=True)
        if not (self._is_self(op.dom) and self._is_self(op.remote_dom)):
            return -errno.ESRCH   # this Xen hosts only us
        port = self.free_port()
        if port < 0:
            return port
        self.ports[port] = Port("unbound")
        op.port = port
        self.note(f"port {port} waits for a binding from ourselves")
        return 0

    def _bind_interdomain(self, arg: int) -> int:
        op = self.guest_ptr(arg, "struct evtchn_bind_interdomain", write=True)
        remote = self.ports.get(op.remote_port)
        if not self._is_self(op.remote_dom):
            return -errno.ESRCH
        if remote is None or remote.state != "unbound":
            return -errno.EINVAL
        port = self.free_port()
        if port < 0:
            return port
        self.ports[port] = Port("interdomain", peer=op.remote_port)
        remote.state, remote.peer = "interdomain", port
        op.local_port = port
        self.set_pending(port)  # Xen always sets a new binding pending
        self.note(f"port {port} <-> port {op.remote_port}; {port} set pending")
        return 0

    def _bind_virq(self, arg: int) -> int:
        op = self.guest_ptr(arg, "struct evtchn_bind_virq", write=True)
        if op.virq >= NR_VIRQS:
            return -errno.EINVAL
        if op.vcpu != 0:
            return -errno.ENOENT
        if op.virq in self.virqs:
            return -errno.EEXIST
        port = self.free_port()
        if port < 0:
            return port
        self.ports[port] = Port("virq", virq=op.virq)
        self.virqs[op.virq] = port
        op.port = port
        self.note(f"VIRQ {op.virq} -> port {port}")
        return 0

    def _send(self, arg: int) -> int:
        port = self.guest_ptr(arg, "struct evtchn_send").port
        record = self.ports.get(port)
        if record is None or record.state == "virq":
            return -errno.EINVAL
        if record.state == "interdomain":
            self.set_pending(record.peer)
            self.note(f"raised port {record.peer}")
        return 0

    def _close(self, arg: int) -> int:
        port = self.guest_ptr(arg, "struct evtchn_close").port
        record = self.ports.pop(port, None)
        if record is None:
            return -errno.EINVAL
        if record.state == "interdomain" and record.peer in self.ports:
            self.ports[record.peer] = Port("unbound")
        if record.virq is not None:
            del self.virqs[record.virq]
        word, bit = port_bit(port)
        self.shared.evtchn_pending[word] &= ~bit
        return 0


# --- the kernel's side, Pythonic ------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    """One handler run: when, in which upcall, on which port, why."""

    seq: int       # 0, 1, 2, ... over the life of the EventChannels
    step: int      # the face operation it happened in (see trace)
    upcall: int    # the kernel's upcall count: deliveries with the same
                   # number came in one do_hypervisor_callback()
    port: int
    during: str    # that operation's name: "deliver", "enable", ...
    masked: bool   # evtchn_upcall_mask while the handler ran


@dataclass(frozen=True)
class TraceEntry:
    """One operation on the face and the state it left, for the timeline."""

    step: int
    op: str
    port: Optional[int]
    port_masked: bool       # the port's mask bit before the operation
    disabled: bool          # evtchn_upcall_mask before the operation
    disabled_after: bool
    mask_after: tuple[int, ...]  # evtchn_mask words after the operation

    def masked_after(self, port: int) -> bool:
        word, bit = port_bit(port)
        return bool(self.mask_after[word] & bit)


@dataclass
class EventSnapshot:
    """The event state as plain data."""

    pending: list[int]          # NR_WORDS words of evtchn_pending
    mask: list[int]             # NR_WORDS words of evtchn_mask
    selector: int               # evtchn_pending_sel of vCPU 0
    upcall_pending: int
    upcall_mask: int
    bound: list[int]
    counts: dict[int, int]      # handler runs per bound port
    stats: dict[str, int]       # the kernel's upcall_stats
    deliveries: list[Delivery] = field(default_factory=list)
    trace: list[TraceEntry] = field(default_factory=list)

    def pending_ports(self) -> list[int]:
        return bits_to_ports(self.pending)

    def masked_ports(self) -> list[int]:
        return bits_to_ports(self.mask)

    def deliverable_ports(self) -> list[int]:
        """Pending and not masked: what the next upcall would take."""
        return bits_to_ports([p & ~m for p, m in zip(self.pending,
                                                     self.mask)])

    def grid(self, which: str = "pending") -> np.ndarray:
        """A (word, bit) 0/1 array of one bitmap: "pending" or "mask"."""
        words = np.array(getattr(self, which), dtype=np.uint64)
        shifts = np.arange(WORD_BITS, dtype=np.uint64)
        return ((words[:, None] >> shifts[None, :]) & np.uint64(1)).astype(
            np.uint8)


class _Trampoline:
    """Routes the kernel's calls of host_evtchn_handler to the live face."""

    active: dict[str, "EventChannels"] = {}
    hooked: set[str] = set()

    @classmethod
    def install(cls, kernel: KernelLib, face: "EventChannels") -> None:
        key = kernel.module.__name__
        cls.active[key] = face
        if key in cls.hooked:
            return

        @kernel.ffi.def_extern(name="host_evtchn_handler")
        def host_evtchn_handler(port, regs, data):
            cls.active[key]._on_event(int(port))

        cls.hooked.add(key)


class EventChannels:
    """The kernel's event channels, with Python as Xen and as the handlers.

    Xen's actions: :meth:`raise_event`, :meth:`raise_virq` (bits only) and
    :meth:`deliver` (return to the guest: the upcall runs if pending and
    enabled). The kernel's: :meth:`bind`, :meth:`mask`, :meth:`unmask`,
    :meth:`disable`, :meth:`enable`, ... each one C call. A kernel call that
    makes a hypercall returns through Xen, so it may deliver too (enabling
    with an upcall pending does, on purpose). Events start disabled, as Xen
    starts a PV guest.
    """

    def __init__(self, kernel_dir: Optional[Path] = None) -> None:
        self.xen = EventXen()
        self.kernel = load("events", kernel_dir, hypervisor=self.xen)
        self.ffi, self.lib = self.kernel.ffi, self.kernel.lib
        _Trampoline.install(self.kernel, self)
        self.xen.connect(self.kernel)
        self.kernel.init_events()
        self.log: list[Delivery] = []
        self.trace: list[TraceEntry] = []
        self._handlers: dict[int, Optional[Handler]] = {}
        self._step = 0
        self._during = "idle"
        self._error: Optional[BaseException] = None

    # -- plumbing ---------------------------------------------------------------
    def _on_event(self, port: int) -> None:
        self.log.append(Delivery(len(self.log), self._step,
                                 int(self.lib.upcall_stats.upcalls), port,
                                 self._during,
                                 bool(self.xen.vcpu.evtchn_upcall_mask)))
        handler = self._handlers.get(port)
        if handler is not None and self._error is None:
            try:
                handler(port)
            except BaseException as exc:  # re-raised after the kernel call
                self._error = exc

    def _op(self, name: str, port: Optional[int], action: Callable[[], Any]
            ) -> Any:
        masked, disabled = False, self.disabled
        if port is not None:
            word, bit = port_bit(port)
            masked = bool(self.xen.shared.evtchn_mask[word] & bit)
        self._step += 1
        self._during = name
        try:
            result = action()
        finally:
            self._during = "idle"
            self.trace.append(TraceEntry(
                self._step, name, port, masked, disabled, self.disabled,
                tuple(int(w) for w in self.xen.shared.evtchn_mask)))
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return result

    def _check(self, what: str, rc: int) -> int:
        if rc < 0:
            raise EventError(what, -rc)
        return rc

    # -- Xen's side -------------------------------------------------------------
    def raise_event(self, port: int) -> bool:
        """Xen raises `port` (bits only); False if it was already pending."""
        return self._op("raise", port, lambda: self.xen.set_pending(port))

    def raise_virq(self, virq: int) -> bool:
        """Xen fires a virtual IRQ on the port bound to it."""
        port = self.xen.virqs.get(virq)
        return self._op("raise", port, lambda: self.xen.raise_virq(virq))

    def deliver(self) -> list[Delivery]:
        """Xen returns to the guest: the deliveries this caused."""
        start = len(self.log)
        self._op("deliver", None, lambda: self.xen.return_to_guest("deliver"))
        return self.log[start:]

    # -- the kernel's side ---------------------------------------------------------
    def bind(self, port: int, handler: Optional[Handler] = None) -> int:
        """bind_evtchn(): run `handler(port)` (if any) when port fires."""
        self._handlers[port] = handler
        rc = self._op("bind", port, lambda: self.kernel.bind_evtchn(
            port, self.lib.host_evtchn_handler, self.ffi.NULL))
        if rc < 0:
            self._handlers.pop(port, None)
        self._check(f"bind_evtchn({port})", rc)
        return port

    def bind_virq(self, virq: int, handler: Optional[Handler] = None) -> int:
        """bind_virq(): Xen picks the port; returns it."""
        # The port is Xen's choice, known only after the call; a delivery
        # can happen inside it (bind unmasks), so file the handler under
        # the port Xen will pick: the lowest free one.
        port = self.xen.free_port()
        self._handlers[port] = handler
        rc = self._op("bind", port, lambda: self.kernel.bind_virq(
            virq, self.lib.host_evtchn_handler, self.ffi.NULL))
        if rc != port:
            self._handlers.pop(port, None)
        self._check(f"bind_virq({virq})", rc)
        self._handlers[rc] = handler
        return rc

    def unbind(self, port: int) -> None:
        """unbind_evtchn(): mask, clear, forget the handler, close."""
        rc = self._op("unbind", port, lambda: self.kernel.unbind_evtchn(port))
        self._check(f"unbind_evtchn({port})", rc)
        self._handlers.pop(port, None)

    def open_loopback(self) -> tuple[int, int]:
        """Two connected ports of our own (alloc_unbound, bind_interdomain)."""
        a = self.ffi.new("evtchn_port_t *")
        b = self.ffi.new("evtchn_port_t *")
        self._check("alloc_unbound", self.kernel.evtchn_alloc_unbound(
            DOMID_SELF, a))
        self._check("bind_interdomain", self.kernel.evtchn_bind_interdomain(
            DOMID_SELF, a[0], b))
        return int(a[0]), int(b[0])

    def notify(self, port: int) -> None:
        """notify_remote_via_evtchn(): EVTCHNOP_send on our end `port`."""
        self._check(f"send({port})", self._op(
            "notify", port, lambda: self.kernel.notify_remote_via_evtchn(port)))

    def mask(self, port: int) -> None:
        port_bit(port)
        self._op("mask", port, lambda: self.kernel.mask_evtchn(port))

    def unmask(self, port: int) -> None:
        port_bit(port)
        self._op("unmask", port, lambda: self.kernel.unmask_evtchn(port))

    def clear(self, port: int) -> None:
        port_bit(port)
        self._op("clear", port, lambda: self.kernel.clear_evtchn(port))

    def disable(self) -> None:
        """local_irq_disable(): set evtchn_upcall_mask."""
        self._op("disable", None, self.kernel.local_irq_disable)

    def enable(self) -> None:
        """local_irq_enable(): clear it; deliver what waited."""
        self._op("enable", None, self.kernel.local_irq_enable)

    def save(self) -> int:
        """local_irq_save(): disable, return the previous flag."""
        return int(self._op("save", None, self.kernel.local_irq_save))

    def restore(self, flags: int) -> None:
        """local_irq_restore(flags)."""
        self._op("restore", None,
                 lambda: self.kernel.local_irq_restore(flags))

    @property
    def disabled(self) -> bool:
        return bool(self.xen.vcpu.evtchn_upcall_mask)

    def bound_ports(self) -> list[int]:
        """The ports with a handler in the kernel's table, lowest first."""
        out = self.ffi.new("evtchn_port_t[]", NR_PORTS)
        n = self.kernel.evtchn_list_bound(out, NR_PORTS)
        return [int(out[i]) for i in range(n)]

    def count(self, port: int) -> int:
        """How many times the kernel ran the handler of `port`."""
        return int(self.kernel.evtchn_count(port))

    def selftest(self) -> tuple[bool, str]:
        """The guest's chapter checks, run here: (passed, its console)."""
        start = len(self.xen.console_text)
        ok = self._op("selftest", None, self.kernel.events_selftest) == 0
        return ok, self.xen.console_text[start:]

    # -- state -----------------------------------------------------------------------
    def snapshot(self) -> EventSnapshot:
        s, v = self.xen.shared, self.xen.vcpu
        stats = self.lib.upcall_stats
        bound = self.bound_ports()
        return EventSnapshot(
            pending=[int(w) for w in s.evtchn_pending],
            mask=[int(w) for w in s.evtchn_mask],
            selector=int(v.evtchn_pending_sel),
            upcall_pending=int(v.evtchn_upcall_pending),
            upcall_mask=int(v.evtchn_upcall_mask),
            bound=bound,
            counts={p: self.count(p) for p in bound},
            stats={name: int(getattr(stats, name)) for name in
                   ("upcalls", "words", "events", "spurious", "unhandled")},
            deliveries=list(self.log), trace=list(self.trace))
