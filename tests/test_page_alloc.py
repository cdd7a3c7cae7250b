"""The page allocator (kernel/mm/page_alloc.c, page_check.c) in the host
build: layout, splits and merges, misuse, corruption, a stateful model
test, scale, the self-test, the benchmark helper and the plots."""
from __future__ import annotations

import functools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (RuleBasedStateMachine, initialize,  # noqa
                                 invariant, precondition, rule)

from minios_lab import mm  # noqa: E402

from minios_lab.viz import mm as viz_mm
from helpers import named_cases, refused  # noqa: E402
from minios_lab.errors import KernelPanic  # noqa: E402
from minios_lab.mm import (PAGE_SIZE, PageAllocator, PageState,  # noqa: E402
                           bench_alloc_free, page_workload, step_through)

MAX_ORDER = 20


def chunk_orders(pa: PageAllocator) -> dict[int, list[int]]:
    return {k: sorted(v) for k, v in pa.free_chunks().items() if v}


# --- layout ------------------------------------------------------------------


def test_init_frees_the_largest_aligned_chunks():
    pa = PageAllocator(64, reserved=3)
    stats = pa.stats()
    assert stats.meta_pages == 1          # header + 61-bit bitmap: one page
    # pfn 3 holds the allocator; 4..63 free as 4 + 8 + 16 + 32 aligned pages
    assert chunk_orders(pa) == {2: [4], 3: [8], 4: [16], 5: [32]}
    assert pa.free_pages_count == 60
    pa.check()


@pytest.mark.parametrize("nr_pages, reserved", [(2, 0), (17, 0), (100, 7),
                                                (1000, 1), (4096, 0)])
def test_every_page_after_the_bitmap_is_free_and_aligned(nr_pages, reserved):
    pa = PageAllocator(nr_pages, reserved)
    snap = pa.snapshot()
    first = reserved + snap.meta_pages
    assert (snap.state[:reserved] == PageState.RESERVED).all()
    assert (snap.state[reserved:first] == PageState.META).all()
    assert (snap.state[first:] == PageState.FREE).all()
    for order, pfns in snap.free_chunks.items():
        assert all(pfn % (1 << order) == 0 for pfn in pfns)
    pa.check()


def test_pool_is_aligned_in_host_memory_so_pfn_alignment_is_real():
    pa = PageAllocator(1 << 12)
    assert pa.memory.base % ((1 << 12) * PAGE_SIZE) == 0


def test_physical_memory_alignment_without_a_free_slot():
    size = 16 * PAGE_SIZE
    address = mm._map_aligned_anywhere(size)
    try:
        assert address % mm._SLOT_SIZE == 0
    finally:
        mm._LIBC.munmap(address, size)
    with pytest.raises(ValueError, match="nr_pages must be 1"):
        mm.PhysicalMemory(0)


def test_two_pools_do_not_share_state():
    a, b = PageAllocator(32), PageAllocator(64)
    pfn = a.alloc(3)
    assert b.free_pages_count == 63 and a.free_pages_count == 31 - 8
    b.alloc(0)
    a.free(pfn, 3)
    a.check(), b.check()
    assert a.free_pages_count == 31 and b.free_pages_count == 62


# --- splitting and merging ---------------------------------------------------


def test_alloc_splits_down_and_free_merges_back_up():
    pa = PageAllocator(64)
    top = pa.leave_one_chunk()          # only [32, 64) is free, order 5
    assert chunk_orders(pa) == {5: [32]}
    before = pa.stats()
    pfn = pa.alloc(0)
    after = pa.stats()
    assert pfn == 32 and after.splits - before.splits == top
    # the upper halves went back one order down each: 33, 34, 36, 40, 48
    assert chunk_orders(pa) == {0: [33], 1: [34], 2: [36], 3: [40], 4: [48]}
    pa.free(pfn, 0)
    assert pa.stats().merges - after.merges == top
    assert chunk_orders(pa) == {5: [32]}
    pa.check()


def test_alloc_returns_none_when_nothing_fits():
    pa = PageAllocator(16)
    assert pa.alloc(4) is None            # 15 free pages: no order-4 chunk
    pfns = [pa.alloc(0) for _ in range(15)]
    assert None not in pfns and pa.alloc(0) is None
    assert pa.stats().failed == 2
    for pfn in pfns:
        pa.free(pfn, 0)
    assert chunk_orders(pa) == {0: [1], 1: [2], 2: [4], 3: [8]}
    pa.check()


def test_step_through_records_a_snapshot_per_operation():
    pa = PageAllocator(32)
    steps = step_through(pa, [("alloc", "A", 0), ("alloc", "B", 2),
                              ("free", "A"), ("free", "B")])
    assert [s.label for s in steps] == [
        "start", "A = alloc_pages(0) -> pfn 1", "B = alloc_pages(2) -> pfn 4",
        "free_pages(A, 0)", "free_pages(B, 2)"]
    assert [s.snapshot.free_pages for s in steps] == [31, 30, 26, 27, 31]


# --- misuse: the kernel catches it, the pool stays intact ---------------------

MISUSE = [
    ("double free", lambda pa, p: (pa.free(p, 1), pa.free(p, 1)),
     r"free_pages: 0x[0-9a-f]+ \(order 1\): page 0x[0-9a-f]+ is already "
     r"free: double free"),
    ("not aligned to its order", lambda pa, p: pa.free(p + 1, 1),
     r"free_pages: 0x[0-9a-f]+ is not aligned to its order 1"),
    ("not page aligned",
     lambda pa, p: pa.free_address(pa.address(p) + 100, 0),
     "free_pages: 0x[0-9a-f]+ is not page aligned"),
    ("order too big for free", lambda pa, p: pa.free(p, MAX_ORDER + 1),
     r"free_pages: order 21 out of range 0\.\.20"),
    ("negative order", lambda pa, p: pa.alloc(-1),
     r"alloc_pages: order -1 out of range 0\.\.20"),
    ("order too big for alloc", lambda pa, p: pa.alloc(99),
     "alloc_pages: order 99 out of range"),
    ("beyond the pool", lambda pa, p: pa.free(100, 0),
     "free_pages: 0x[0-9a-f]+ \\(order 0\\) is outside the managed range"),
    ("reserved page", lambda pa, p: pa.free(1, 0),
     "is outside the managed range"),
    ("chunk running past the end", lambda pa, p: pa.free(64, 6),
     "outside the managed range"),
    ("the allocator's own page", lambda pa, p: pa.free(2, 0),
     "free_pages: 0x[0-9a-f]+ is the allocator's own memory"),
]


def _pool_with_a_chunk():
    """A pool of 100 pages with one order-1 chunk in use: (pool, its pfn,
    a copy of the state)."""
    pa = PageAllocator(100, reserved=2)
    pfn = pa.alloc(1)
    return pa, pfn, pa.snapshot().state.copy()


@named_cases(MISUSE)
def test_misuse_panics_before_changing_anything(name, misuse, message):
    pa, pfn, state = _pool_with_a_chunk()
    panic = refused(KernelPanic, message, misuse, pa, pfn)
    assert panic.file in ("kernel/mm/page_alloc.c",)
    pa.check()                               # the kernel refused in time
    if name != "double free":
        assert (pa.snapshot().state == state).all()
    assert pa.alloc(0) is not None           # and it still works


# --- mm_check() finds corruption ------------------------------------------------


def test_mm_check_finds_a_write_into_freed_memory():
    pa = PageAllocator(64)
    pfn = pa.alloc(2)
    pa.free(pfn, 2)                  # a free chunk again, header in page pfn
    pa.page(pfn)[16:24] = b"use-aft!"        # a stale pointer writes there
    with pytest.raises(KernelPanic, match="holds no valid chunk header"):
        pa.check()


def test_mm_check_finds_a_wrong_order_in_a_chunk_header():
    pa = PageAllocator(64)
    head = pa.free_chunks()[4][0]
    pa.page(head)[24] = 3                     # order field: 4 -> 3
    with pytest.raises(KernelPanic, match="mm_check"):
        pa.check()


def test_mm_check_finds_a_broken_list_link():
    pa = PageAllocator(64)
    head = pa.free_chunks()[3][0]
    pa.page(head)[0:8] = (pa.address(5)).to_bytes(8, "little")
    with pytest.raises(KernelPanic, match="mm_check"):
        pa.check()


# --- a stateful test against a model ---------------------------------------------


class PageAllocatorMachine(RuleBasedStateMachine):
    """Random allocs and frees; a set of pages per allocation is the model."""

    @initialize(nr_pages=st.sampled_from([16, 33, 64, 100, 256]),
                reserved=st.integers(0, 5))
    def start(self, nr_pages, reserved):
        self.pa = PageAllocator(nr_pages, reserved)
        self.initial = self.pa.stats()
        self.first = reserved + self.initial.meta_pages
        self.free = set(range(self.first, nr_pages))
        self.live: dict[int, int] = {}

    def fits(self, order: int) -> bool:
        """Is some aligned run of 2^order pages all free in the model?"""
        size = 1 << order
        start = -(-self.first // size) * size
        return any(set(range(p, p + size)) <= self.free
                   for p in range(start, self.pa.nr_pages - size + 1, size))

    @rule(order=st.integers(0, 5))
    def alloc(self, order):
        pfn = self.pa.alloc(order)
        if pfn is None:
            assert not self.fits(order)
            return
        pages = set(range(pfn, pfn + (1 << order)))
        assert pfn % (1 << order) == 0 and pages <= self.free
        self.free -= pages
        self.live[pfn] = order

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def free_one(self, data):
        pfn = data.draw(st.sampled_from(sorted(self.live)))
        order = self.live.pop(pfn)
        self.pa.free(pfn, order)
        self.free |= set(range(pfn, pfn + (1 << order)))

    @invariant()
    def kernel_agrees_with_model(self):
        self.pa.check()
        snap = self.pa.snapshot()
        free = set(np.flatnonzero(snap.state == PageState.FREE).tolist())
        assert free == self.free
        assert self.pa.free_pages_count == len(self.free)

    def teardown(self):
        for pfn, order in list(self.live.items()):
            self.pa.free(pfn, order)
        self.pa.check()
        end = self.pa.stats()
        assert (end.free_pages, end.chunks) == (self.initial.free_pages,
                                                self.initial.chunks)


TestPageAllocatorMachine = PageAllocatorMachine.TestCase
TestPageAllocatorMachine.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])


# --- scale, self-test, benchmark, workload ----------------------------------------


def test_manages_2_to_the_20_pages():
    pa = PageAllocator(1 << 20)
    stats = pa.stats()
    assert stats.meta_pages == 33             # 128 KiB of bitmap + header
    assert pa.free_pages_count == (1 << 20) - 33
    pfns = {order: pa.alloc(order) for order in (0, 5, 12, 19)}
    assert all(pfn % (1 << order) == 0 for order, pfn in pfns.items())
    pa.check()
    for order, pfn in pfns.items():
        pa.free(pfn, order)
    pa.check()
    assert pa.stats().chunks == stats.chunks


@pytest.mark.parametrize("nr_pages, reserved", [(64, 0), (300, 5),
                                                (16384, 0)])
def test_selftest_passes_and_leaves_the_pool_as_it_was(nr_pages, reserved):
    pa = PageAllocator(nr_pages, reserved)
    before = pa.stats()
    rc, text = pa.selftest()
    assert rc == 0, text
    assert text.splitlines()[-1] == "mm: selftest PASS"
    assert pa.stats().chunks == before.chunks
    pa.check()


def test_summary_names_free_pages_and_chunks():
    text = PageAllocator(64, reserved=3).summary()
    assert text == ("mm: 61 pages managed, 60 free (240 KiB), chunks per "
                    "order: 2:1 3:1 4:1 5:1\n")


def test_bench_splits_log2_of_the_pool_per_pair():
    points = bench_alloc_free([1 << 10, 1 << 14], iterations=200, repeats=1)
    assert [p.top_order for p in points] == [9, 13]
    assert [p.splits_per_pair for p in points] == [9.0, 13.0]
    assert all(p.ns_per_pair > 0 for p in points)


def test_workload_is_deterministic_for_a_seed():
    runs = [page_workload(PageAllocator(128), 150, seed=7) for _ in range(2)]
    assert runs[0] == runs[1]
    assert all(p.in_use + p.free == 127 for p in runs[0])


# --- plots --------------------------------------------------------------------------


def test_plots_return_figures():
    pa = PageAllocator(64, reserved=3)
    pa.alloc(0), pa.alloc(2)
    snap = pa.snapshot()
    steps = step_through(PageAllocator(16), [("alloc", "A", 1),
                                             ("free", "A")])
    figures = [viz_mm.memory_map(snap), viz_mm.free_list_lengths(snap),
               viz_mm.buddy_tree(snap), viz_mm.step_through(steps),
               viz_mm.fragmentation(page_workload(PageAllocator(64), 30, 1)),
               viz_mm.bench_curve(bench_alloc_free([1024], iterations=10,
                                                   repeats=1)),
               viz_mm.memory_map(PageAllocator(1 << 16).snapshot())]
    for fig in figures:
        assert isinstance(fig, matplotlib.figure.Figure)
        plt.close(fig)


def test_buddy_tree_draws_leaves_and_split_nodes():
    pa = PageAllocator(32)
    pa.alloc(0)
    snap = pa.snapshot()
    colour = viz_mm._node_colour
    assert colour(snap, 1, 0) == viz_mm.USED_COLOUR       # the allocation
    assert colour(snap, 0, 0) == viz_mm.META_COLOUR       # the bitmap page
    assert colour(snap, 0, 1) == viz_mm.SPLIT_COLOUR      # split in two
    assert colour(snap, 16, 4) == viz_mm.order_colour(4, 5)
    assert colour(snap, 16, 3) is None                    # inside that chunk
    with pytest.raises(ValueError):
        viz_mm.buddy_tree(PageAllocator(512).snapshot())


# --- misuse only Python can see: FreeError, before the kernel is called -------

FREE_ERRORS = [
    ("wrong order", lambda pa, p: pa.free(p, 0),
     r"alloc\(\) gave pfn \d+ with order 1; free it with order 1"),
    ("bigger order", lambda pa, p: pa.free(p, 2) if p % 4 == 0
     else pa.free(p, 0), r"with order 1"),
    ("never allocated", lambda pa, p: pa.free(40, 0),
     r"pfn 40 was never allocated"),
    ("page inside a chunk", lambda pa, p: pa.free(p + 1, 0),
     r"pfn \d+ is inside the order-1 chunk allocated at pfn \d+"),
]


@named_cases(FREE_ERRORS)
def test_free_error_says_which_and_changes_nothing(name, misuse, message):
    pa, pfn, state = _pool_with_a_chunk()
    error = refused(mm.FreeError, message, misuse, pa, pfn)
    assert "double free" not in str(error)
    assert isinstance(error, ValueError)
    assert (pa.snapshot().state == state).all()
    pa.check()
    pa.free(pfn, 1)                          # the right call still works
    pa.check()


def test_double_free_after_a_real_free_is_still_the_kernels():
    pa = PageAllocator(64)
    pfn = pa.alloc(0)
    pa.free(pfn, 0)
    with pytest.raises(KernelPanic, match="double free"):
        pa.free(pfn, 0)


def test_free_address_is_unchecked_and_reaches_the_kernel():
    pa = PageAllocator(32)
    pa.alloc(0)
    x, y = pa.alloc(0), pa.alloc(0)
    pa.free_address(pa.address(x), 1)    # wrong order: the kernel accepts
    with pytest.raises(KernelPanic, match="double free"):
        pa.free(y, 0)


@pytest.mark.parametrize("args, error", [
    ((64, -1), ValueError), ((64, 64), ValueError), ((64, 10 ** 30), ValueError),
    ((0,), ValueError), ((-5,), ValueError), ((1 << 40,), ValueError),
    ((64.0,), TypeError), (("64",), TypeError), ((64, 1.5), TypeError),
    ((None,), TypeError)])
def test_bad_pool_arguments_are_refused(args, error):
    with pytest.raises(error):
        PageAllocator(*args)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=-(1 << 70), max_value=1 << 70),
       st.integers(min_value=-(1 << 70), max_value=1 << 70))
def test_any_integer_to_alloc_and_free_is_an_error_never_a_crash(pfn, order):
    pa = _shared_pool()
    try:
        pa.free(pfn, order)
    except (ValueError, KernelPanic):
        pass
    else:
        raise AssertionError(f"free({pfn}, {order}) was accepted")
    try:
        got = pa.alloc(order)
    except (ValueError, KernelPanic):
        pass
    else:
        assert 0 <= order <= MAX_ORDER
        if got is not None:
            pa.free(got, order)
    pa.check()


@functools.lru_cache(maxsize=None)
def _shared_pool() -> PageAllocator:
    return PageAllocator(128, reserved=3)
