"""The console ring from Python: the kernel writes, Python plays dom0 and Xen.

A domU prints through a page it shares with xenconsoled, the console daemon
in dom0: ``struct xencons_interface`` (Xen's ``<xen/io/console.h>``), and an
event channel. The kernel's ring code (kernel/console_ring.c) runs
unchanged here. Python plays the other parties, and says so:

* :class:`XenConsoled` is dom0's side. Like the toolstack that builds the
  domain, it makes the domU's memory (a few page-aligned host pages with
  shuffled machine frame numbers, a p2m and an m2p) and a ``start_info``
  naming the console page and port; like xenconsoled, it owns that page's
  reader end: when it has been kicked (a notification came), it takes every
  byte between ``out_cons`` and ``out_prod`` and moves ``out_cons``. It can
  be stalled (it misses a number of chances to run) and it can lose
  notifications, to show what the driver does then.
* :class:`RingXen` is Xen: ``EVTCHNOP_send`` on the console port kicks the
  daemon; ``SCHEDOP_yield`` gives the CPU away, so dom0 runs. On a real
  machine dom0 runs on its own vCPU whenever it likes; here it runs when
  the guest yields, when it is kicked and ``eager`` is set, or when Python
  says so (:meth:`ConsoleRing.run_consoled`).

:class:`ConsoleRing` is the face. The guest's console is set up by the
kernel's own start of day (``console_ring_setup()`` with the start_info,
m2p and p2m above), then ``write()`` (raw bytes) and ``print()`` (printk's
back-end: "\\n" becomes "\\r\\n") go through the C driver. ``snapshot()``
returns the ring and its history as plain data (:class:`RingSnapshot`) for
tests and plots (:mod:`minios_lab.viz.console_ring`).

The kernel's console is global (one per loaded unit), so one ConsoleRing
drives it at a time: each takes it over when used (it attaches its own ring
again, with its own statistics), so several can live in one notebook.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from minios_lab.build.kernellib import KernelLib
from minios_lab.build.units import load
from minios_lab.errors import MiniosLabError
from minios_lab.xen.hypervisor import Hypervisor

PAGE_SIZE = 4096
INDEX_MOD = 1 << 32           # XENCONS_RING_IDX is a uint32_t
NR_PAGES = 8                  # the toy domU's memory
CONSOLE_PFN = 5               # where the "domain builder" puts the ring
MFN_BASE = 0x2340             # machine frames are MFN_BASE + a shuffle
CONSOLE_PORT = 2              # the console's event channel
# Consecutive yields with no byte taken before Python says the guest would
# wait forever (a stalled daemon that never resumes).
MAX_IDLE_YIELDS = 1000
MAX_WRITE = 1 << 20           # larger writes are refused: a garbage length

# Which ConsoleRing the console of each loaded unit serves right now.
_OWNERS: dict[str, "ConsoleRing"] = {}


class ConsoleStalled(MiniosLabError):
    """The guest waits for space that xenconsoled will never free."""


class RingCorrupt(MiniosLabError):
    """The ring's indexes say more is waiting than the ring can hold."""


def machine_frame(pfn: int) -> int:
    """The toy domU's machine frame for `pfn`: shuffled, as on real Xen."""
    return MFN_BASE + (pfn * 3 + 1) % NR_PAGES


@dataclass(frozen=True)
class RingEvent:
    """One moment of the ring's history: what happened, the indexes after."""

    step: int
    op: str      # "write", "notify", "lost", "yield", "stalled", "consume"
    prod: int
    cons: int
    note: str = ""


@dataclass
class RingSnapshot:
    """The ring as plain data."""

    out: bytes                  # the whole out[] array
    prod: int                   # out_prod, 0 .. 2**32 - 1
    cons: int                   # out_cons
    consumed: bytes             # what xenconsoled has read, in order
    notifications: int          # kicks that reached xenconsoled
    dropped: int                # kicks that were lost
    stats: dict[str, int]       # the kernel's console_ring_stats
    history: list[RingEvent] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.out)

    @property
    def waiting(self) -> int:
        """Bytes written and not yet consumed: prod - cons, unsigned."""
        return (self.prod - self.cons) % INDEX_MOD

    @property
    def free(self) -> int:
        return self.size - self.waiting

    def slot(self, index: int) -> int:
        """MASK_XENCONS_IDX: where index `index` lives in out[]."""
        return index % self.size

    def pending(self) -> bytes:
        """The waiting bytes, oldest first, read across the wrap."""
        return bytes(self.out[self.slot(self.cons + i)]
                     for i in range(min(self.waiting, self.size)))


class XenConsoled:
    """dom0's side: the domU's memory and start_info, and the daemon."""

    def __init__(self, ffi: Any, *, port: int = CONSOLE_PORT,
                 start_index: int = 0, eager: bool = False,
                 record: Optional[Callable[[str, str], None]] = None) -> None:
        self.ffi, self.port, self.eager = ffi, port, eager
        self._record = record or (lambda op, note: None)
        self._memory = ffi.new("char[]", (NR_PAGES + 1) * PAGE_SIZE)
        base = int(ffi.cast("uintptr_t", self._memory))
        self.base = (base + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        self.ring = ffi.cast("struct xencons_interface *",
                             self.base + CONSOLE_PFN * PAGE_SIZE)
        self.size = len(self.ring.out)
        self.p2m = ffi.new("unsigned long[]",
                           [machine_frame(p) for p in range(NR_PAGES)])
        invalid = (1 << 64) - 1
        self.m2p = ffi.new("unsigned long[]", [invalid] * (MFN_BASE + NR_PAGES))
        for pfn in range(NR_PAGES):
            self.m2p[machine_frame(pfn)] = pfn
        start_index %= INDEX_MOD
        self.ring.out_prod = self.ring.out_cons = start_index
        self.kicked = False
        self.notifications = self.dropped = 0
        self.output = bytearray()
        self._faults = {"drop": 0, "stall": 0}   # still to inject
        self._idle_yields = 0

    def start_info(self, dom0: bool = False, mfn: Optional[int] = None) -> Any:
        """A start_info as the domain builder writes it: a domU's names the
        console page and port; dom0's sets SIF_INITDOMAIN (and its console
        fields mean something else)."""
        if mfn is not None and not 0 <= mfn < 1 << 64:
            raise ValueError(f"mfn {mfn} is not a 64-bit frame number")
        si = self.ffi.new("start_info_t *")
        si.magic = b"xen-3.0-x86_64"
        si.nr_pages = NR_PAGES
        si.mfn_list = int(self.ffi.cast("uintptr_t", self.p2m))
        if dom0:
            si.flags = 0x3   # SIF_PRIVILEGED | SIF_INITDOMAIN
        else:
            si.console.domU.mfn = machine_frame(CONSOLE_PFN) \
                if mfn is None else mfn
            si.console.domU.evtchn = self.port
        return si

    # -- what the guest's notifications and yields do ---------------------------
    def kick(self) -> bool:
        """A notification on the port; False if it was lost."""
        if self._injected("drop"):
            self.dropped += 1
            self._record("lost", "notification lost")
            return False
        self.notifications += 1
        self.kicked = True
        self._record("notify", "xenconsoled kicked")
        if self.eager:
            self.run()
        return True

    def on_yield(self) -> None:
        """The guest gave its CPU away: dom0 runs, unless stalled."""
        if self._injected("stall"):
            self._idle_yields += 1
            self._record("stalled", "xenconsoled busy: did not run")
        else:
            taken = self.run()
            self._idle_yields = 0 if taken else self._idle_yields + 1
            self._record("yield", f"xenconsoled ran, took {taken} bytes")
        if self._idle_yields >= MAX_IDLE_YIELDS:
            raise ConsoleStalled(
                f"the guest yielded {MAX_IDLE_YIELDS} times in a row waiting "
                f"for space and xenconsoled took nothing: on real Xen it "
                f"would wait forever")

    # -- the daemon ----------------------------------------------------------------
    def run(self) -> int:
        """xenconsoled's turn: if kicked, take all that waits."""
        if not self.kicked:
            return 0
        self.kicked = False
        return self.consume()

    def consume(self, limit: Optional[int] = None) -> int:
        """Take up to `limit` waiting bytes (all if None), oldest first, and
        move out_cons: one step of the reader, kicked or not."""
        prod, cons = int(self.ring.out_prod), int(self.ring.out_cons)
        waiting = (prod - cons) % INDEX_MOD
        if waiting > self.size:
            raise RingCorrupt(f"out_prod {prod:#x} - out_cons {cons:#x} = "
                              f"{waiting} > {self.size}: xenconsoled stops "
                              f"reading this ring")
        n = waiting if limit is None else max(0, min(limit, waiting))
        self.output += bytes(self.ring.out[(cons + i) % self.size][0]
                             for i in range(n))
        self.ring.out_cons = (cons + n) % INDEX_MOD
        if n:
            self._record("consume", f"took {n} bytes")
        return n

    def stall(self, rounds: int) -> None:
        """Miss the next `rounds` chances to run (yields); `rounds` at least
        MAX_IDLE_YIELDS means for ever (the guest is stopped then)."""
        if rounds < 0:
            raise ValueError(f"rounds must be >= 0, not {rounds}")
        self._faults["stall"] = rounds

    def drop_notifications(self, count: int = 1) -> None:
        """Lose the next `count` notifications (a kick that never came)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count}")
        self._faults["drop"] = count

    def _injected(self, fault: str) -> bool:
        """Use up one of the faults Python was asked to inject, if any."""
        if self._faults[fault] == 0:
            return False
        self._faults[fault] -= 1
        return True


@dataclass
class RingXen(Hypervisor):
    """Python as Xen for the console: send on the port, yield."""

    daemon: Optional[XenConsoled] = None

    def do_event_channel_op(self, cmd: int, arg: int, *_: int) -> int:
        if cmd != self.lib.EVTCHNOP_send or self.daemon is None:
            return -errno.ENOSYS
        port = self.guest_ptr(arg, "struct evtchn_send").port
        if port != self.daemon.port:
            self.note(f"port {port} is not the console's: -EINVAL")
            return -errno.EINVAL
        delivered = self.daemon.kick()
        self.note("xenconsoled kicked" if delivered else
                  "the notification was lost on the way")
        return 0

    def do_sched_op(self, cmd: int, arg: int, *rest: int) -> int:
        if cmd == self.lib.SCHEDOP_yield and self.daemon is not None:
            self.note("the guest yields: dom0 may run")
            self.daemon.on_yield()
            return 0
        return super().do_sched_op(cmd, arg, *rest)


STAT_NAMES = ("writes", "bytes", "notifies", "yields")


class ConsoleRing:
    """The kernel's console ring, Python as Xen and xenconsoled.

    ``dom0=True`` boots the console as dom0 does (console_io, no ring);
    ``start_index`` starts both indexes there (near 2**32 to see the wrap);
    ``eager`` makes xenconsoled read at once when kicked.
    """

    def __init__(self, kernel_dir: Optional[Path] = None, *,
                 dom0: bool = False, start_index: int = 0,
                 eager: bool = False, mfn: Optional[int] = None) -> None:
        self.xen = RingXen()
        self.kernel: KernelLib = load("console_ring", kernel_dir,
                                      hypervisor=self.xen)
        self.ffi, self.lib = self.kernel.ffi, self.kernel.lib
        self.history: list[RingEvent] = []
        self.daemon = XenConsoled(self.ffi, start_index=start_index,
                                  eager=eager, record=self._record)
        self.xen.daemon = self.daemon
        self.start_info = self.daemon.start_info(dom0=dom0, mfn=mfn)
        self._saved = dict.fromkeys(STAT_NAMES, 0)
        self.backend = "console_io"
        self._activate()                  # no ring yet: console_io, zeros
        self.backend = "ring" if self.kernel.console_ring_setup(
            self.start_info, self.daemon.m2p, len(self.daemon.m2p),
            self.ffi.cast("char *", self.daemon.base)) == \
            self.lib.CONSOLE_BACKEND_RING else "console_io"

    def _activate(self) -> None:
        """Take the kernel's console over from another ConsoleRing."""
        key = self.kernel.module.__name__
        owner = _OWNERS.get(key)
        if owner is self:
            return
        if owner is not None:
            owner._saved = owner._read_stats()
        if self.backend == "ring":
            self.kernel.console_ring_attach(self.daemon.ring, self.daemon.port)
        else:
            self.kernel.console_ring_detach()
        for name, value in self._saved.items():
            setattr(self.lib.console_ring_stats, name, value)
        _OWNERS[key] = self

    def _read_stats(self) -> dict[str, int]:
        s = self.lib.console_ring_stats
        return {name: int(getattr(s, name)) for name in STAT_NAMES}

    def _record(self, op: str, note: str = "") -> None:
        ring = self.daemon.ring
        self.history.append(RingEvent(len(self.history), op,
                                      int(ring.out_prod), int(ring.out_cons),
                                      note))

    # -- the guest's side ---------------------------------------------------------
    def _bytes(self, data: bytes | str) -> bytes:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if len(raw) > MAX_WRITE:
            raise ValueError(f"{len(raw)} bytes: at most {MAX_WRITE} per "
                             f"write")
        return raw

    def write(self, data: bytes | str) -> None:
        """console_ring_write(): the bytes as they are, through the ring."""
        raw = self._bytes(data)
        self._activate()
        if self.kernel.console_ring_interface() == self.ffi.NULL:
            raise RuntimeError("no console ring attached (dom0 uses "
                               "console_io)")
        self.kernel.console_ring_write(raw, len(raw))
        self._record("write", f"guest wrote {len(raw)} bytes")

    def print(self, text: str) -> None:
        """console_write(): printk's path; a ring ends lines with CR LF."""
        raw = self._bytes(text)
        self._activate()
        self.kernel.console_write(raw, len(raw))
        self._record("write", f"printk of {len(raw)} bytes")

    # -- dom0's side ---------------------------------------------------------------
    def run_consoled(self) -> int:
        """Let xenconsoled run once: it reads only if it was kicked."""
        return self.daemon.run()

    def consume(self, limit: Optional[int] = None) -> int:
        """One step of the reader, kicked or not: up to `limit` bytes."""
        return self.daemon.consume(limit)

    @property
    def output(self) -> bytes:
        """What xenconsoled has read so far."""
        return bytes(self.daemon.output)

    @property
    def uses_hypercall(self) -> bool:
        """True when printk goes to console_io (dom0, or after a panic)."""
        if _OWNERS.get(self.kernel.module.__name__) is not self:
            return self.backend == "console_io"
        return bool(self.kernel.console_uses_hypercall())

    def stats(self) -> dict[str, int]:
        """The kernel's console_ring_stats for this ring."""
        if _OWNERS.get(self.kernel.module.__name__) is not self:
            return dict(self._saved)
        return self._read_stats()

    def snapshot(self) -> RingSnapshot:
        ring = self.daemon.ring
        return RingSnapshot(
            out=bytes(self.ffi.buffer(ring.out, self.daemon.size)),
            prod=int(ring.out_prod), cons=int(ring.out_cons),
            consumed=self.output,
            notifications=self.daemon.notifications,
            dropped=self.daemon.dropped, stats=self.stats(),
            history=list(self.history))
