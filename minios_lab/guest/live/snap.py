"""Snapshots of the running guest, in the same types as the host build.

Everything here reads the guest's memory through a
:class:`~minios_lab.guest.live.LiveGuest` (gdb, QEMU's stub) and never calls
guest code. Layouts come from the image's debug information (gdb's
``sizeof`` and member addresses), not from constants copied here.

* :func:`pool_snapshot` reads ``struct page_pool`` (kernel/mm/page_alloc.c:
  the header, the bitmap after it, the free lists threaded through the free
  chunks) into :class:`LivePool`, which answers the same questions as the
  host's :class:`~minios_lab.mm.PageAllocator` (``stats()``, ``bitmap()``,
  ``free_chunks()``); :func:`snapshot_from_parts` turns the answers into a
  :class:`~minios_lab.mm.PoolSnapshot` the way ``PageAllocator.snapshot``
  does (a test holds the two to the same result). In the guest, virtual addresses are pseudo-physical ones (the
  kernel is linked at 0), so pfns count from 0 and the pages below the
  pool (the kernel, Xen's bootstrap area, the first tables) are its
  "reserved" pages. Which chunks are allocated, and in what orders, only
  the guest's callers know: ``allocations`` is empty.
* :class:`LiveTables` follows the page tables from the L4 Xen built at
  ``start_info.pt_base`` (the guest never switches tables), reading each
  table through its 1:1 mapping (pfn = m2p[mfn], from the p2m list Xen
  wrote at ``start_info.mfn_list``), into a
  :class:`~minios_lab.pagetable.Snapshot` as ``read_tree`` builds it for
  the host, and walks one address into a
  :class:`~minios_lab.pagetable.Walk` as the kernel's ``pt_walk()`` does.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minios_lab.guest.live.qemu import GdbError, LiveError
from minios_lab.mm import PageState, PoolSnapshot, PoolStats
from minios_lab.pagetable import (ENTRIES, LEVELS, P, PAGE_SHIFT, PAGE_SIZE,
                                  Snapshot, Step, Walk, entry_mfn,
                                  tree_snapshot)

# The guest these read from is a minios_lab.guest.live.LiveGuest; it is
# not imported here because LiveGuest itself uses this module.
LiveGuest = Any

BITS_PER_WORD = 64
POOL_FIELDS = ("magic", "first_pfn", "end_pfn", "meta_pages", "free_lists",
               "nr_chunks", "free_pages", "allocs", "failed", "frees",
               "splits", "merges", "bitmap")
CHUNK_FIELDS = ("link", "magic", "order")
GUEST_HALF = 1 << 47      # the guest's part of the address space
NOT_OURS = -1             # Table.pfn of a frame that is not the guest's


def _offsets(guest: LiveGuest, struct: str, fields: tuple[str, ...]
             ) -> dict[str, int]:
    return {f: guest.value(f"&((struct {struct} *)0)->{f}") for f in fields}


def _word(data: bytes, offset: int, index: int = 0) -> int:
    at = offset + 8 * index
    return int.from_bytes(data[at:at + 8], "little")


class LivePool:
    """The guest's page allocator (its current ``mm_pool``), read once."""

    def __init__(self, guest: LiveGuest):
        self.guest = guest
        base = guest.value("mm_pool")
        if base == 0:
            raise LiveError(
                "the guest's page allocator is not set up yet (mm_pool is "
                "NULL): stop after init_page_allocator(), e.g. "
                "run_to('mm_selftest')")
        self.base = base
        self.off = _offsets(guest, "page_pool", POOL_FIELDS)
        self.size = guest.value("sizeof(struct page_pool)")
        self.header = guest.read(base, self.size)
        self.nr_orders = (self.off["nr_chunks"] - self.off["free_lists"]) // 16
        self.first_pfn = self._field("first_pfn")
        self.nr_pages = self._field("end_pfn")     # pfns count from 0
        self.reserved = self.first_pfn
        self._chunk = _offsets(guest, "free_chunk", CHUNK_FIELDS)
        if not 0 < self.first_pfn < self.nr_pages:
            raise LiveError(f"mm_pool at {base:#x} does not hold a page pool "
                            f"(pfns {self.first_pfn:#x}-{self.nr_pages:#x})")

    def _field(self, name: str, index: int = 0) -> int:
        return _word(self.header, self.off[name], index)

    def stats(self) -> PoolStats:
        chunks = tuple(self._field("nr_chunks", k)
                       for k in range(self.nr_orders))
        return PoolStats(self._field("free_pages"), self._field("meta_pages"),
                         chunks, *(self._field(f) for f in
                                   ("allocs", "failed", "frees", "splits",
                                    "merges")))

    def bitmap(self) -> np.ndarray:
        """One bool per managed page (True: allocated), as the host's."""
        pages = self.nr_pages - self.first_pfn
        words = -(-pages // BITS_PER_WORD)
        raw = np.frombuffer(self.guest.read(self.base + self.off["bitmap"],
                                            words * 8), dtype=np.uint8)
        return np.unpackbits(raw, bitorder="little").astype(bool)[:pages]

    def free_chunks(self) -> dict[int, list[int]]:
        """order -> pfns of the chunks on its free list, in list order."""
        return {k: self._list(k) for k in range(self.nr_orders)}

    def _list(self, order: int) -> list[int]:
        head = self.base + self.off["free_lists"] + 16 * order
        expected = self._field("nr_chunks", order)
        pfns: list[int] = []
        node = self.guest.read_u64(head)[0]
        while node != head:
            pfn = node >> PAGE_SHIFT
            if len(pfns) > expected or not \
                    self.first_pfn <= pfn < self.nr_pages:
                raise LiveError(f"free list {order} is broken at {node:#x} "
                                f"(after {len(pfns)} of {expected} chunks)")
            chunk = self.guest.read(node, self._chunk["order"] + 8)
            if _word(chunk, self._chunk["order"]) != order:
                raise LiveError(f"the chunk at {node:#x} on free list "
                                f"{order} says order "
                                f"{_word(chunk, self._chunk['order'])}")
            pfns.append(pfn)
            node = _word(chunk, self._chunk["link"])
        return pfns


def snapshot_from_parts(nr_pages: int, reserved: int, stats: PoolStats,
                        bitmap: np.ndarray, chunks: dict[int, list[int]],
                        allocations: dict[int, int] | None = None
                        ) -> PoolSnapshot:
    """A PoolSnapshot from the allocator's counters, bitmap and free lists,
    exactly as PageAllocator.snapshot() makes one on the host (a test
    checks the two agree on host pools)."""
    state = np.full(nr_pages, PageState.USED, dtype=np.int8)
    state[:reserved] = PageState.RESERVED
    state[reserved:][~bitmap] = PageState.FREE
    state[reserved:reserved + stats.meta_pages] = PageState.META
    order = np.full(nr_pages, -1, dtype=np.int8)
    for k, pfns in chunks.items():
        for pfn in pfns:
            order[pfn:pfn + (1 << k)] = k
    return PoolSnapshot(nr_pages, reserved, stats.meta_pages, state, order,
                        chunks, dict(allocations or {}), stats)


def pool_snapshot(guest: LiveGuest) -> PoolSnapshot:
    """The guest's page allocator now, as a PoolSnapshot."""
    pool = LivePool(guest)
    return snapshot_from_parts(pool.nr_pages, pool.reserved, pool.stats(),
                               pool.bitmap(), pool.free_chunks())


# --- page tables -------------------------------------------------------------

def start_info_address(guest: LiveGuest) -> int:
    """Where the start_info page is: boot_info.si once the start of day
    has run, else start_kernel's argument si."""
    for expression in ("boot_info.si", "si"):
        try:
            address = guest.value(expression)
        except GdbError:
            continue
        if address:
            return address
    raise LiveError("start_info is not known yet: stop in start_kernel or "
                    "later (run_to('start_kernel'))")



class LiveTables:
    """The guest's page tables, read table by table through gdb."""

    def __init__(self, guest: LiveGuest):
        self.guest = guest
        si = f"((start_info_t *){start_info_address(guest):#x})"
        self.nr_pages = guest.value(f"{si}->nr_pages")
        p2m = guest.read(guest.value(f"{si}->mfn_list"), 8 * self.nr_pages)
        self.p2m = np.frombuffer(p2m, dtype="<u8")
        self.m2p = {int(mfn): pfn for pfn, mfn in enumerate(self.p2m)}
        self.root = int(self.p2m[guest.value(f"{si}->pt_base") >> PAGE_SHIFT])
        self._tables: dict[int, np.ndarray] = {}

    def table(self, mfn: int) -> np.ndarray:
        """The 512 entries of the table in machine frame mfn."""
        if mfn not in self._tables:
            pfn = self.m2p.get(mfn)
            if pfn is None:
                raise LiveError(f"machine frame {mfn:#x} holds a table but "
                                f"is not one of the guest's pages")
            raw = self.guest.read(pfn << PAGE_SHIFT, PAGE_SIZE)
            self._tables[mfn] = np.frombuffer(raw, dtype="<u8")
        return self._tables[mfn]

    def snapshot(self) -> Snapshot:
        """Every present table and mapping of the guest's half, va order."""
        return tree_snapshot(self.root, self.table,
                             lambda mfn: self.m2p.get(mfn, NOT_OURS))

    def walk(self, va: int) -> Walk:
        """The four-level walk of va, stopping at a non-present entry."""
        if not 0 <= va < GUEST_HALF:
            raise ValueError(f"{va:#x} is not in the guest's lower half")
        steps, mfn = [], self.root
        for level in range(LEVELS, 0, -1):
            index = (va >> (PAGE_SHIFT + 9 * (level - 1))) & (ENTRIES - 1)
            entry = int(self.table(mfn)[index])
            steps.append(Step(level, index, mfn, entry))
            if not entry & P:
                return Walk(va, tuple(steps), False, None, None)
            mfn = entry_mfn(entry)
        return Walk(va, tuple(steps), True, mfn, self.m2p.get(mfn))
