"""Xen's event-channel code, played by Python for the host build.

:class:`EventXen` owns the shared_info page and writes it as Xen's 2-level
event code does (pending bit, selector bit, ``evtchn_upcall_pending``),
serves the ``EVTCHNOP_*`` hypercalls with a small port table, and on every
return to the guest delivers the upcall while one is pending and
``evtchn_upcall_mask`` is clear, as real Xen does after each hypercall.
The kernel's side and the Pythonic face are in minios_lab.events.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from minios_lab.errors import MiniosLabError
from minios_lab.xen.hypervisor import HOST_UNWIND, Hypervisor

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
    ports = []
    for w, word in enumerate(words):
        word = int(word)
        while word:                     # only the set bits, lowest first
            low = word & -word
            ports.append(w * WORD_BITS + low.bit_length() - 1)
            word ^= low
    return ports


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
    kernel: Any = None   # the KernelLib it serves
    shared: Any = None
    _page: Any = None

    def connect(self, kernel: Any) -> None:
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
