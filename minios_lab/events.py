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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from minios_lab.xen.events import (DOMID_SELF, NR_PORTS, NR_VIRQS, NR_WORDS,  # noqa: F401
                                   PAGE_SIZE, WORD_BITS, XEN_VERSION, EventError,
                                   EventStorm, EventXen, Handler, Port,
                                   bits_to_ports, port_bit)
from minios_lab.build.kernellib import KernelLib
from minios_lab.build.units import load

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
