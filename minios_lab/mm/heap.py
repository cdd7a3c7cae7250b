"""The xmalloc face (kernel/mm/xmalloc.c): a heap on a page allocator of its own.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from minios_lab.mm.pages import PageAllocator, _exclusive, _run_printing
from minios_lab.xen.memory import _integer


class BlockKind(enum.IntEnum):
    FREE = 0
    USED = 1
    BIG = 2


@dataclass(frozen=True)
class Block:
    """One block of the heap (struct xblock_info), at page `pfn`."""

    pfn: int        # the arena page, or the first page of a big chunk
    offset: int     # of the header within that page
    size: int       # bytes, header included (big: the whole chunk)
    payload: int    # offset of the pointer xmalloc returned
    requested: int  # bytes asked for; 0 when free
    kind: BlockKind


@dataclass(frozen=True)
class HeapStats:
    """xmalloc's counters (struct xmalloc_stats)."""

    arenas: int
    used_blocks: int
    free_blocks: int
    used_bytes: int
    requested_bytes: int
    free_bytes: int
    largest_free: int
    big_allocations: int
    big_pages: int


@dataclass
class HeapSnapshot:
    blocks: list[Block]
    stats: HeapStats
    live: dict[int, int] = field(default_factory=dict)  # address -> size

    def arenas(self) -> dict[int, list[Block]]:
        """pfn of each arena page -> its blocks, in address order."""
        pages: dict[int, list[Block]] = {}
        for block in self.blocks:
            if block.kind != BlockKind.BIG:
                pages.setdefault(block.pfn, []).append(block)
        return dict(sorted(pages.items()))

    def bigs(self) -> list[Block]:
        return sorted((b for b in self.blocks if b.kind == BlockKind.BIG),
                      key=lambda b: b.pfn)


def format_blocks(snap: HeapSnapshot) -> str:
    """The heap's blocks as a table, in address order (offsets in bytes
    from the start of the page; for big allocations, of the chunk)."""
    lines = [f"{'pfn':>4} {'offset':>6} {'size':>6} {'payload':>7} "
             f"{'asked':>6}  kind"]
    for b in sorted(snap.blocks, key=lambda b: (b.pfn, b.offset)):
        lines.append(f"{b.pfn:>4} {b.offset:>6} {b.size:>6} {b.payload:>7} "
                     f"{b.requested:>6}  {b.kind.name.lower()}")
    return "\n".join(lines)


class Heap:
    """kernel/mm/xmalloc.c, on a PageAllocator of `nr_pages` pages."""

    def __init__(self, nr_pages: int = 64,
                 pages: PageAllocator | None = None):
        self.pages = pages or PageAllocator(nr_pages)
        self.kernel = self.pages.kernel
        self.ffi = self.kernel.ffi
        size = self.kernel.xmalloc_heap_size()
        self._memory = self.ffi.new("char[]", size)
        self._heap = self.ffi.cast("struct xheap *", self._memory)
        self.kernel.xmalloc_init_heap(self._heap)
        self.live: dict[int, int] = {}

    def __repr__(self) -> str:
        s = self.stats()
        return (f"Heap({s.arenas} arenas, {s.used_blocks} small blocks, "
                f"{s.big_allocations} big allocations)")

    def _select(self) -> None:
        self.pages._select()
        self.kernel.xmalloc_select_heap(self._heap)

    @_exclusive
    def malloc(self, size: int, align: int | None = None) -> int | None:
        """xmalloc(size) or xmalloc_align(size, align): an address or None."""
        self._select()
        if align is None:
            pointer = self.kernel.xmalloc(size)
        else:
            pointer = self.kernel.xmalloc_align(size, align)
        if pointer == self.ffi.NULL:
            return None
        address = int(self.ffi.cast("unsigned long", pointer))
        self.live[address] = size
        return address

    @_exclusive
    def free(self, address: int) -> None:
        """xfree(address); the kernel decides if that is legal."""
        self._select()
        self.kernel.xfree(self.ffi.cast("void *", address))
        self.live.pop(address, None)

    @_exclusive
    def check(self) -> None:
        """xmalloc_check() and mm_check() of the pages underneath."""
        self._select()
        self.kernel.xmalloc_check()
        self.kernel.mm_check()

    @_exclusive
    def stats(self) -> HeapStats:
        self._select()
        raw = self.ffi.new("struct xmalloc_stats *")
        self.kernel.xmalloc_get_stats(raw)
        return HeapStats(*(getattr(raw, f)
                           for f in HeapStats.__dataclass_fields__))

    @_exclusive
    def blocks(self) -> list[Block]:
        self._select()
        count = self.kernel.xmalloc_walk(self.ffi.NULL, 0)
        out = self.ffi.new("struct xblock_info[]", max(count, 1))
        self.kernel.xmalloc_walk(out, count)
        return [Block(self.pages.pfn(b.page), b.offset, b.size, b.payload,
                      b.requested, BlockKind(b.kind)) for b in out[0:count]]

    @_exclusive
    def snapshot(self) -> HeapSnapshot:
        return HeapSnapshot(self.blocks(), self.stats(), dict(self.live))

    @_exclusive
    def selftest(self) -> tuple[int, str]:
        """Run xmalloc_selftest(): its return code and what it printed."""
        return _run_printing(self.kernel, self._select, "xmalloc_selftest")

    def write(self, address: int, data: bytes) -> None:
        """Write into the guest's memory at `address`, anywhere at all, as
        C would; only an unmapped address is refused (ValueError)."""
        self._copy(self.ffi.cast("void *", address),
                   self.ffi.from_buffer(bytes(data)), len(data), address)

    def read(self, address: int, nbytes: int) -> bytes:
        nbytes = _integer(nbytes, "nbytes")
        if not 0 <= nbytes <= self.pages.memory.size:
            raise ValueError(f"nbytes must be 0 .. {self.pages.memory.size} "
                             f"(the guest's memory), not {nbytes}")
        out = self.ffi.new("char[]", max(nbytes, 1))
        self._copy(out, self.ffi.cast("void *", address), nbytes, address)
        return bytes(self.ffi.buffer(out, nbytes))

    def _copy(self, dst: Any, src: Any, nbytes: int, address: int) -> None:
        if self.kernel.lib.host_copy(dst, src, nbytes) != 0:
            raise ValueError(f"{nbytes} bytes at {address:#x}: not mapped "
                             f"memory (the guest would fault here)")


