"""The page allocator face (kernel/mm/page_alloc.c): pfns in, pfns out.

:class:`PageAllocator` runs ``init_page_allocator()`` on a PhysicalMemory
(minios_lab.xen.memory) and speaks in page frame numbers counted from its
first page. Misuse reaches the kernel, whose own checks panic
(:class:`~minios_lab.errors.KernelPanic`); only what the kernel cannot know
(the order a chunk was allocated with, whether alloc() ever handed a page
out) is checked here first, with :class:`FreeError`.
"""
from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from minios_lab.errors import KernelPanic
from minios_lab.build.kernellib import KernelLib
from minios_lab.build.units import load
from minios_lab.xen.memory import PhysicalMemory, _integer


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


