"""The kernel's page allocator and xmalloc, driven from Python.

Python plays the part of the machine: :class:`PhysicalMemory` reserves a
page-aligned stretch of host memory to serve as the guest's "physical
memory", and the kernel's own C (kernel/mm/) manages it.

* :class:`PageAllocator` runs ``init_page_allocator()`` on that memory and
  speaks in page frame numbers counted from its first page: ``alloc(order)``
  returns a pfn or ``None``, ``free(pfn, order)`` gives it back. Misuse
  reaches the kernel, whose own checks panic, and the panic arrives as
  :class:`~minios_lab.errors.KernelPanic`; only what the kernel cannot
  know (the order a chunk was allocated with, whether alloc() ever handed
  a page out) is checked here first, with :class:`FreeError`.
  ``free_address()`` checks nothing.
* :class:`Heap` runs xmalloc on top of a PageAllocator of its own.
* ``snapshot()`` of either returns plain data (numpy arrays, lists of
  dataclasses) for tests and for the plots of :mod:`minios_lab.viz.mm`.

The memory is mapped at a fixed, aligned host address when that address is
free (it nearly always is), so a notebook run twice prints the same
addresses and every pool is aligned to its own size: the buddy alignment of
the pfns seen here is the alignment of the real addresses.

The kernel keeps one current pool and one current heap; every method here
first makes its own object current, holding the kernel module's lock, so
several objects can live side by side, also in several threads. A
``kernel.f()`` call made by hand acts on whichever was used last.
"""
from __future__ import annotations

import ctypes
import enum
import functools
import errno
import random
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from minios_lab.errors import KernelPanic
from minios_lab.build.kernellib import KernelLib
from minios_lab.build.units import load

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

# --- physical memory ---------------------------------------------------------

_PROT_READ, _PROT_WRITE = 0x1, 0x2
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
_MAP_NORESERVE, _MAP_FIXED_NOREPLACE = 0x4000, 0x100000
_MAP_FAILED = ctypes.c_void_p(-1).value

# Pools live at 16 TiB + slot * 64 GiB: far from the host's own mappings,
# and aligned to any pool of up to 2^24 pages.
_SLOT_BASE = 1 << 44
_SLOT_SIZE = 1 << 36
_NR_SLOTS = 1024


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


_LIBC = _libc()
_slots_in_use: set[int] = set()


def _mmap(address: int, size: int, flags: int) -> int | None:
    flags |= _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE
    got = _LIBC.mmap(address, size, _PROT_READ | _PROT_WRITE, flags, -1, 0)
    if got not in (None, _MAP_FAILED):
        return got
    if ctypes.get_errno() == errno.EEXIST:
        return None
    raise MemoryError(f"cannot map {size} bytes of guest memory: "
                      f"{errno.errorcode.get(ctypes.get_errno(), '?')}")


def _map_at(address: int, size: int) -> bool:
    """Map `size` fresh zero bytes exactly at `address`, if it is free."""
    got = _mmap(address, size, _MAP_FIXED_NOREPLACE)
    if got is not None and got != address:  # an old kernel took it as a hint
        _LIBC.munmap(got, size)
        return False
    return got == address


def _map_aligned_anywhere(size: int) -> int:
    """Map `size` bytes wherever the host likes, aligned to _SLOT_SIZE."""
    got = _mmap(0, size + _SLOT_SIZE, 0)
    start = -(-got // _SLOT_SIZE) * _SLOT_SIZE
    if start > got:
        _LIBC.munmap(got, start - got)
    _LIBC.munmap(start + size, got + size + _SLOT_SIZE - (start + size))
    return start


def _release(slot: int, address: int, size: int) -> None:
    _LIBC.munmap(address, size)
    _slots_in_use.discard(slot)


class OutsideMemory(IndexError, ValueError):
    """A page number outside the guest's memory."""


class PhysicalMemory:
    """`nr_pages` zeroed pages of host memory, aligned to 64 GiB.

    Pages are only backed when first touched, so a 4 GiB pool costs the
    host just the pages the kernel writes.
    """

    def __init__(self, nr_pages: int):
        nr_pages = _integer(nr_pages, "nr_pages")
        if not 0 < nr_pages * PAGE_SIZE <= _SLOT_SIZE:
            limit = _SLOT_SIZE // PAGE_SIZE
            raise ValueError(f"nr_pages must be 1 .. {limit}")
        self.nr_pages = nr_pages
        self.size = nr_pages * PAGE_SIZE
        slot = next((n for n in range(_NR_SLOTS) if n not in _slots_in_use
                     and _map_at(_SLOT_BASE + n * _SLOT_SIZE, self.size)),
                    None)
        if slot is None:    # every slot taken: any aligned place will do
            slot, address = -1, _map_aligned_anywhere(self.size)
        else:
            address = _SLOT_BASE + slot * _SLOT_SIZE
        _slots_in_use.add(slot)
        self.base = address
        self._finalizer = weakref.finalize(self, _release, slot, address,
                                           self.size)

    def address(self, pfn: int) -> int:
        return self.base + pfn * PAGE_SIZE

    def pfn(self, address: int) -> int:
        return (address - self.base) >> PAGE_SHIFT

    def view(self, pfn: int, nbytes: int = PAGE_SIZE) -> memoryview:
        """The bytes at page `pfn`, readable and writable from Python."""
        pfn, nbytes = _integer(pfn, "pfn"), _integer(nbytes, "nbytes")
        if pfn < 0 or nbytes < 0 or pfn * PAGE_SIZE + nbytes > self.size:
            raise OutsideMemory(f"page {pfn} (+{nbytes} bytes) is outside "
                                f"the guest's {self.nr_pages} pages")
        return memoryview((ctypes.c_char * nbytes).from_address(
            self.address(pfn))).cast("B")


# --- the page allocator ------------------------------------------------------


def _exclusive(method: Callable[..., Any]) -> Callable[..., Any]:
    """Hold the kernel module's lock for the whole method: the kernel has
    one current pool and heap, so "select mine, then act" must not be
    interleaved with another thread's."""
    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # IPython: show the cell, not this
        with self.kernel.lock:
            return method(self, *args, **kwargs)
    return locked


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not "
                        f"{type(value).__name__}")
    return int(value)


class FreeError(ValueError):
    """PageAllocator.free() of something alloc() did not hand out so:
    a page never allocated, a wrong order, a page inside a chunk."""


class PageState(enum.IntEnum):
    """What a page is, in a snapshot."""

    RESERVED = 0  # below the range given to the allocator
    META = 1      # the allocator's own header and bitmap
    USED = 2      # allocated
    FREE = 3      # in a free chunk


@dataclass(frozen=True)
class PoolStats:
    """The kernel's counters (struct mm_stats)."""

    free_pages: int
    meta_pages: int
    chunks: tuple[int, ...]  # free chunks of each order
    allocs: int
    failed: int
    frees: int
    splits: int
    merges: int


@dataclass
class PoolSnapshot:
    """Every page's state, and the free lists, at one moment."""

    nr_pages: int
    reserved: int
    meta_pages: int
    state: np.ndarray  # PageState per page
    order: np.ndarray  # order of the free chunk holding the page, or -1
    free_chunks: dict[int, list[int]]  # order -> pfns, in list order
    allocations: dict[int, int]  # pfn -> order, as handed out by alloc()
    stats: PoolStats

    @property
    def free_pages(self) -> int:
        return int(np.count_nonzero(self.state == PageState.FREE))

    @property
    def max_order(self) -> int:
        """The largest order a chunk of this pool could have."""
        return min(len(self.stats.chunks) - 1, self.nr_pages.bit_length() - 1)

    def largest_free_order(self) -> int:
        """Order of the largest free chunk, or -1 when nothing is free."""
        orders = [k for k, pfns in self.free_chunks.items() if pfns]
        return max(orders, default=-1)


class PageAllocator:
    """kernel/mm/page_alloc.c managing `nr_pages` pages of its own.

    The first `reserved` pages are not given to the allocator (think of the
    kernel image); the allocator keeps its own header and bitmap in the
    next few. pfns count from the first page of the memory.
    """

    def __init__(self, nr_pages: int, reserved: int = 0,
                 kernel: KernelLib | None = None):
        nr_pages = _integer(nr_pages, "nr_pages")
        reserved = _integer(reserved, "reserved")
        if not 0 <= reserved < nr_pages:
            raise ValueError(f"reserved must be 0 .. nr_pages - 1 "
                             f"({nr_pages - 1}), not {reserved}")
        self.kernel = kernel or load("mm")
        self.ffi = self.kernel.ffi
        self.memory = PhysicalMemory(nr_pages)
        self.nr_pages, self.reserved = nr_pages, reserved
        self.allocations: dict[int, int] = {}
        self._freed: set[int] = set()
        with self.kernel.lock:
            self.kernel.init_page_allocator(self.memory.address(reserved),
                                            self.memory.address(nr_pages))
            self._pool = self.kernel.page_pool_current()

    def __repr__(self) -> str:
        return (f"PageAllocator({self.nr_pages} pages, {self.reserved} "
                f"reserved, {self.free_pages_count} free)")

    def _select(self) -> None:
        self.kernel.page_pool_select(self._pool)

    def address(self, pfn: int) -> int:
        return self.memory.address(pfn)

    def pfn(self, address: int) -> int:
        return self.memory.pfn(address)

    @_exclusive
    def alloc(self, order: int = 0) -> int | None:
        """alloc_pages(order): the pfn of the chunk, or None if none fits."""
        order = _integer(order, "order")
        self._select()
        address = self.kernel.alloc_pages(order)
        if address == 0:
            return None
        pfn = self.pfn(address)
        self.allocations[pfn] = order
        self._freed.discard(pfn)
        return pfn

    @_exclusive
    def free(self, pfn: int, order: int = 0) -> None:
        """free_pages(page pfn, order).

        What only Python can know is checked first, with a FreeError: a
        chunk freed with another order than alloc() gave it, a page inside
        an allocated chunk, a free page that alloc() never handed out. The
        rest (a double free, a page outside the pool or not aligned to its
        order) is the kernel's to refuse, with a KernelPanic.
        """
        pfn, order = _integer(pfn, "pfn"), _integer(order, "order")
        self._check_free(pfn, order)
        self.free_address(self.address(pfn), order)

    def _check_free(self, pfn: int, order: int) -> None:
        """Refuse what the kernel would take silently or misreport. An
        order out of range, a misaligned or out-of-pool chunk, a double
        free are left to the kernel, which panics with a clear message."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        if not 0 <= order <= self.kernel.MM_MAX_ORDER or pfn % (1 << order):
            return
        given = self.allocations.get(pfn)
        if given is not None and given != order:
            raise FreeError(f"free(pfn {pfn}, order {order}): alloc() gave "
                            f"pfn {pfn} with order {given}; free it with "
                            f"order {given}")
        for start, k in self.allocations.items():
            if start < pfn < start + (1 << k):
                raise FreeError(f"free(pfn {pfn}, order {order}): pfn {pfn} "
                                f"is inside the order-{k} chunk allocated at "
                                f"pfn {start}; free that: free({start}, {k})")
        first = self.reserved + self.stats().meta_pages
        if given is None and pfn not in self._freed and first <= pfn and \
                pfn + (1 << order) <= self.nr_pages and \
                not self.kernel.mm_page_allocated(self.address(pfn)):
            raise FreeError(f"free(pfn {pfn}, order {order}): pfn {pfn} was "
                            f"never allocated (it is free, and alloc() never "
                            f"returned it)")

    @_exclusive
    def free_address(self, address: int, order: int = 0) -> None:
        """free_pages() on any address at all, e.g. not page aligned, with
        no check in Python: the kernel decides if that is legal."""
        address, order = _integer(address, "address"), _integer(order, "order")
        self._select()
        self.kernel.free_pages(self.ffi.cast("void *", address), order)
        pfn = self.pfn(address)
        if self.allocations.pop(pfn, None) is not None:
            self._freed.add(pfn)

    @_exclusive
    def check(self) -> None:
        """mm_check(): raises KernelPanic naming the broken invariant."""
        self._select()
        self.kernel.mm_check()

    @property
    @_exclusive
    def free_pages_count(self) -> int:
        self._select()
        return self.kernel.mm_free_page_count()

    @_exclusive
    def stats(self) -> PoolStats:
        self._select()
        raw = self.ffi.new("struct mm_stats *")
        self.kernel.mm_get_stats(raw)
        return PoolStats(raw.free_pages, raw.meta_pages, tuple(raw.chunks),
                         raw.allocs, raw.failed, raw.frees, raw.splits,
                         raw.merges)

    @_exclusive
    def free_chunks(self) -> dict[int, list[int]]:
        """The free lists: order -> pfns of its chunks, in list order."""
        self._select()
        stats = self.stats()
        lists = {}
        for order, count in enumerate(stats.chunks):
            out = self.ffi.new("unsigned long[]", max(count, 1))
            self.kernel.mm_list_free_chunks(order, out, count)
            lists[order] = [self.pfn(a) for a in out[0:count]]
        return lists

    @_exclusive
    def bitmap(self) -> np.ndarray:
        """The kernel's bitmap as one bool per managed page (True: used)."""
        self._select()
        words = self.kernel.mm_copy_bitmap(self.ffi.NULL, 0)
        out = self.ffi.new("uint64_t[]", words)
        self.kernel.mm_copy_bitmap(out, words)
        raw = np.frombuffer(self.ffi.buffer(out), dtype=np.uint8)
        bits = np.unpackbits(raw, bitorder="little").astype(bool)
        return bits[: self.nr_pages - self.reserved]

    @_exclusive
    def snapshot(self) -> PoolSnapshot:
        stats = self.stats()
        state = np.full(self.nr_pages, PageState.USED, dtype=np.int8)
        state[: self.reserved] = PageState.RESERVED
        state[self.reserved:][~self.bitmap()] = PageState.FREE
        state[self.reserved: self.reserved + stats.meta_pages] = PageState.META
        order = np.full(self.nr_pages, -1, dtype=np.int8)
        chunks = self.free_chunks()
        for k, pfns in chunks.items():
            for pfn in pfns:
                order[pfn: pfn + (1 << k)] = k
        return PoolSnapshot(self.nr_pages, self.reserved, stats.meta_pages,
                            state, order, chunks, dict(self.allocations),
                            stats)

    @_exclusive
    def selftest(self) -> tuple[int, str]:
        """Run mm_selftest(): its return code and what it printed."""
        return _run_printing(self.kernel, self._select, "mm_selftest")

    @_exclusive
    def summary(self) -> str:
        """What mm_print_summary() prints."""
        return _run_printing(self.kernel, self._select, "mm_print_summary")[1]

    def page(self, pfn: int) -> memoryview:
        """The bytes of page `pfn`, to read or (mis)use as a learner will."""
        return self.memory.view(pfn)

    @_exclusive
    def leave_one_chunk(self) -> int:
        """Allocate every free chunk except one of the largest order, so that
        the next alloc_pages(0) must split all the way down. Returns that
        chunk's order."""
        chunks = self.stats().chunks
        top = max(k for k, n in enumerate(chunks) if n)
        for k, count in enumerate(chunks):
            for _ in range(count - (k == top)):
                self.alloc(k)
        return top


def _run_printing(kernel: KernelLib, select: Callable[[], None],
                  name: str) -> tuple[Any, str]:
    """Call kernel function `name` (after `select`); return its result and
    what it printed on the console."""
    console = kernel.hypervisor.console
    start = len(console)
    select()
    result = getattr(kernel, name)()
    text = "".join(console[start:])
    return result, text


def panic_message(action: Callable[[], Any]) -> str:
    """Run `action`; return the message of the KernelPanic it raises, or
    "no panic" if the kernel accepted it."""
    try:
        action()
    except KernelPanic as panic:
        return panic.message
    return "no panic"


# --- xmalloc -----------------------------------------------------------------


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


# --- workloads, step-throughs and the benchmark ------------------------------


@dataclass(frozen=True)
class FragmentationPoint:
    """After `step` operations: what is in use, free, and in one piece."""

    step: int
    in_use: int
    free: int
    largest_free: int

    @property
    def fragmentation(self) -> float:
        """1 - largest free piece / all free: 0 when free memory is one
        piece, near 1 when it is crumbs."""
        return 1.0 - self.largest_free / self.free if self.free else 0.0


def _page_point(step: int, pa: PageAllocator) -> FragmentationPoint:
    stats = pa.stats()
    largest = max((1 << k for k, n in enumerate(stats.chunks) if n), default=0)
    in_use = sum(1 << order for order in pa.allocations.values())
    return FragmentationPoint(step, in_use, stats.free_pages, largest)


def page_workload(pa: PageAllocator, steps: int, seed: int,
                  max_order: int = 3, p_alloc: float = 0.6
                  ) -> list[FragmentationPoint]:
    """Random alloc_pages()/free_pages(), seeded; a point after each step."""
    rng = random.Random(seed)
    points = [_page_point(0, pa)]
    for step in range(1, steps + 1):
        if pa.allocations and rng.random() > p_alloc:
            pfn = rng.choice(sorted(pa.allocations))
            pa.free(pfn, pa.allocations[pfn])
        else:
            pa.alloc(rng.randint(0, max_order))
        points.append(_page_point(step, pa))
    return points


def _heap_point(step: int, heap: Heap) -> FragmentationPoint:
    s = heap.stats()
    return FragmentationPoint(step, s.requested_bytes, s.free_bytes,
                              s.largest_free)


def heap_workload(heap: Heap, steps: int, seed: int, max_size: int = 400,
                  p_alloc: float = 0.6) -> list[FragmentationPoint]:
    """Random xmalloc()/xfree() of 1..max_size bytes, seeded."""
    rng = random.Random(seed)
    points = [_heap_point(0, heap)]
    for step in range(1, steps + 1):
        if heap.live and rng.random() > p_alloc:
            heap.free(rng.choice(sorted(heap.live)))
        else:
            heap.malloc(rng.randint(1, max_size))
        points.append(_heap_point(step, heap))
    return points


@dataclass
class Step:
    """One operation of a step-through, and the pool just after it."""

    label: str
    snapshot: PoolSnapshot


def step_through(pa: PageAllocator, script: Sequence[tuple]) -> list[Step]:
    """Run ("alloc", name, order) and ("free", name) operations in turn.

    Names stand for the chunks allocated; the first step is the start.
    """
    named: dict[str, tuple[int, int]] = {}
    steps = [Step("start", pa.snapshot())]
    for op in script:
        if op[0] == "alloc":
            _, name, order = op
            pfn = pa.alloc(order)
            if pfn is None:
                label = f"{name} = alloc_pages({order}) -> 0: nothing fits"
            else:
                named[name] = (pfn, order)
                label = f"{name} = alloc_pages({order}) -> pfn {pfn}"
        else:
            pfn, order = named.pop(op[1])
            pa.free(pfn, order)
            label = f"free_pages({op[1]}, {order})"
        steps.append(Step(label, pa.snapshot()))
    return steps


@dataclass(frozen=True)
class BenchPoint:
    """Cost of one alloc_pages()+free_pages() pair on a pool of nr_pages."""

    nr_pages: int
    order: int
    top_order: int            # the only free chunk's order: the splits needed
    ns_per_pair: float        # best of the repeats
    splits_per_pair: float


def _time_loop(pa: PageAllocator, order: int, iterations: int) -> float:
    pa._select()
    start = time.perf_counter_ns()
    pa.kernel.mm_bench_alloc_free(order, iterations)
    return (time.perf_counter_ns() - start) / iterations


def bench_alloc_free(page_counts: Sequence[int] = tuple(
        1 << k for k in range(10, 21)), order: int = 0,
        iterations: int = 20000, repeats: int = 5) -> list[BenchPoint]:
    """Time the C loop mm_bench_alloc_free() in its worst case.

    Each pool is first left with a single free chunk of its largest order,
    so every alloc_pages() splits it all the way down and every free_pages()
    merges it all the way up: the cost of a pair grows with log2(pages).
    """
    points = []
    for nr_pages in page_counts:
        pa = PageAllocator(nr_pages)
        top = pa.leave_one_chunk()
        before = pa.stats().splits
        best = min(_time_loop(pa, order, iterations) for _ in range(repeats))
        splits = (pa.stats().splits - before) / (iterations * repeats)
        points.append(BenchPoint(nr_pages, order, top, best, splits))
    return points
