"""xmalloc (kernel/mm/xmalloc.c, xmalloc_check.c) in the host build:
blocks, alignment, merging, big requests, misuse, corruption, a stateful
model test, the self-test and the plots."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (RuleBasedStateMachine, initialize,  # noqa
                                 invariant, precondition, rule)

from minios_lab.viz import mm as viz_mm  # noqa: E402
from helpers import named_cases, refused  # noqa: E402
from minios_lab.errors import KernelPanic  # noqa: E402
from minios_lab.mm import (PAGE_SIZE, BlockKind, Heap,  # noqa: E402
                           format_blocks, heap_workload, panic_message)

HEADER = 16
ARENA_HEADER = 32


def kinds(heap: Heap) -> list[tuple[int, int, str]]:
    """(offset, size, kind) of every arena block, arenas in pfn order."""
    return [(b.offset, b.size, b.kind.name)
            for blocks in heap.snapshot().arenas().values() for b in blocks]


# --- blocks ---------------------------------------------------------------------


def test_small_blocks_are_carved_from_one_arena_page():
    heap = Heap(16)
    a, b = heap.malloc(10), heap.malloc(100)
    assert a % 16 == 0 and b % 16 == 0
    assert b - a == 32        # 10 bytes round to 16, plus a 16-byte header
    assert kinds(heap) == [(32, 32, "USED"), (64, 128, "USED"),
                           (192, PAGE_SIZE - 192, "FREE")]
    assert heap.stats().arenas == 1 and heap.stats().requested_bytes == 110
    heap.check()


def test_zero_bytes_gives_none():
    assert Heap(8).malloc(0) is None


def test_free_merges_with_both_neighbours_and_returns_the_page():
    heap = Heap(16)
    pages = heap.pages.free_pages_count
    a, b, c = heap.malloc(40), heap.malloc(40), heap.malloc(40)
    heap.free(a)
    heap.free(c)             # merges with the free tail
    assert [k for _, _, k in kinds(heap)] == ["FREE", "USED", "FREE"]
    heap.check()
    heap.free(b)             # merges with both: the arena is empty, given back
    assert kinds(heap) == [] and heap.pages.free_pages_count == pages
    heap.check()


@pytest.mark.parametrize("align", [32, 64, 256, 1024, 2048])
def test_aligned_blocks_leave_their_gap_as_a_free_block(align):
    heap = Heap(16)
    heap.malloc(8)
    address = heap.malloc(24, align)
    assert address % align == 0
    heap.check()
    assert heap.snapshot().arenas()            # still from an arena
    heap.free(address)
    heap.check()


def test_a_page_or_more_goes_straight_to_alloc_pages():
    heap = Heap(32)
    free = heap.pages.free_pages_count
    for size, align, pages in [(PAGE_SIZE, None, 2), (3050, 1024, 1),
                               (3 * PAGE_SIZE, None, 4)]:
        address = heap.malloc(size, align)
        big = heap.snapshot().bigs()
        assert [b.size // PAGE_SIZE for b in big] == [pages]
        assert big[0].kind == BlockKind.BIG and address % 16 == 0
        heap.free(address)
    page_aligned = heap.malloc(100, PAGE_SIZE)
    assert page_aligned % PAGE_SIZE == 0 and heap.stats().big_pages == 2
    heap.free(page_aligned)
    assert heap.pages.free_pages_count == free
    heap.check()


def test_out_of_pages_gives_none():
    heap = Heap(8)                             # 7 pages after the bitmap
    assert heap.malloc(8 * PAGE_SIZE) is None
    assert heap.malloc(100 * 1 << 30) is None
    blocks = [heap.malloc(2000) for _ in range(14)]
    assert None not in blocks and heap.malloc(2000) is None
    heap.check()


# --- misuse ------------------------------------------------------------------------

NOT_OURS = r"xfree: 0x[0-9a-f]+ is not a pointer xmalloc returned"

MISUSE = [
    ("double free", lambda h, a: (h.free(a[1]), h.free(a[1])),
     r"xfree: double free of 0x[0-9a-f]+"),
    ("double free after a merge",
     lambda h, a: (h.free(a[0]), h.free(a[1]), h.free(a[1])), NOT_OURS),
    ("pointer into a block", lambda h, a: h.free(a[0] + 16), NOT_OURS),
    ("unaligned pointer", lambda h, a: h.free(a[0] + 3), NOT_OURS),
    ("page from alloc_pages",
     lambda h, a: h.free(h.pages.address(h.pages.alloc(0)) + 64), NOT_OURS),
    ("free page", lambda h, a: h.free(h.pages.address(30) + 64), NOT_OURS),
    ("outside the pool", lambda h, a: h.free(h.pages.address(500)),
     NOT_OURS),
    ("inside a big block", lambda h, a: h.free(a[2] + 16),
     "xfree: 0x[0-9a-f]+ points inside a big allocation"),
    ("double free of a big block", lambda h, a: (h.free(a[2]),
                                                 h.free(a[2])), NOT_OURS),
    ("alignment not a power of two", lambda h, a: h.malloc(10, 24),
     "xmalloc_align: alignment 24 is not a power of two up to 4096"),
    ("alignment above a page", lambda h, a: h.malloc(10, 8192),
     "xmalloc_align: alignment 8192"),
]


@named_cases(MISUSE)
def test_misuse_panics_and_the_heap_survives(name, misuse, message):
    heap = Heap(32)
    live = [heap.malloc(40), heap.malloc(40), heap.malloc(5000)]
    panic = refused(KernelPanic, message, misuse, heap, live)
    assert panic.file == "kernel/mm/xmalloc.c"
    heap.check()
    assert heap.malloc(10) is not None


def test_xmalloc_check_finds_a_buffer_overflow():
    heap = Heap(16)
    a = heap.malloc(20)
    heap.malloc(20)
    heap.write(a, b"x" * 40)          # 20 bytes too many: over the next header
    with pytest.raises(KernelPanic, match="xmalloc_check: no block header"):
        heap.check()


def test_xmalloc_check_finds_a_corrupted_free_list():
    heap = Heap(16)
    a = heap.malloc(20)
    heap.malloc(20)
    heap.free(a)
    heap.write(a, (12345 << 12).to_bytes(8, "little"))   # its list link
    with pytest.raises(KernelPanic, match="xmalloc_check: the free list"):
        heap.check()


# --- a stateful test against a model ------------------------------------------------


class HeapMachine(RuleBasedStateMachine):
    """Random mallocs and frees; live byte ranges, each with its own fill,
    are the model."""

    @initialize()
    def start(self):
        self.heap = Heap(48)
        self.free_pages = self.heap.pages.free_pages_count
        self.live: dict[int, tuple[int, bytes]] = {}
        self.counter = 0

    @rule(size=st.one_of(st.integers(1, 600), st.integers(1, 3 * PAGE_SIZE)),
          align=st.sampled_from([None, 16, 32, 64, 512, PAGE_SIZE]))
    def malloc(self, size, align):
        address = self.heap.malloc(size, align)
        if address is None:
            return
        assert address % (align or 16) == 0
        for other, (other_size, _) in self.live.items():
            assert address + size <= other or other + other_size <= address
        self.counter += 1
        fill = bytes([self.counter % 251 + 1]) * size
        self.heap.write(address, fill)
        self.live[address] = (size, fill)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def free(self, data):
        address = data.draw(st.sampled_from(sorted(self.live)))
        del self.live[address]
        self.heap.free(address)

    @invariant()
    def heap_is_consistent_and_contents_intact(self):
        self.heap.check()
        for address, (size, fill) in self.live.items():
            assert self.heap.read(address, size) == fill
        stats = self.heap.stats()
        assert stats.requested_bytes == sum(s for s, _ in self.live.values())

    def teardown(self):
        for address in list(self.live):
            self.heap.free(address)
        self.heap.check()
        stats = self.heap.stats()
        assert (stats.arenas, stats.big_allocations) == (0, 0)
        assert self.heap.pages.free_pages_count == self.free_pages


TestHeapMachine = HeapMachine.TestCase
TestHeapMachine.settings = settings(
    max_examples=50, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])


def test_format_blocks_lists_blocks_in_address_order():
    heap = Heap(16)
    heap.malloc(24), heap.malloc(5000)
    assert format_blocks(heap.snapshot()).splitlines() == [
        " pfn offset   size payload  asked  kind",
        "   1     32     48      48     24  used",
        "   1     80   4016      96      0  free",
        "   2      0   8192      48   5000  big"]


def test_panic_message_returns_the_kernel_words_or_no_panic():
    heap = Heap(8)
    assert panic_message(lambda: heap.malloc(1, 3)).startswith(
        "xmalloc_align: alignment 3")
    assert panic_message(heap.check) == "no panic"


# --- self-test, workload, plots ------------------------------------------------------


@pytest.mark.parametrize("nr_pages", [8, 64])
def test_selftest_passes(nr_pages):
    heap = Heap(nr_pages)               # 8 pages: some big blocks do not fit
    rc, text = heap.selftest()
    assert rc == 0, text
    assert text.splitlines()[-1] == "xmalloc: selftest PASS"
    assert heap.stats().arenas == 0


def test_heap_workload_is_deterministic_for_a_seed():
    runs = [heap_workload(Heap(64), 200, seed=3) for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0][-1].step == 200


def test_plots_return_figures():
    heap = Heap(32)
    addresses = [heap.malloc(n) for n in (10, 300, 50, 5000)]
    heap.free(addresses[1])
    figures = [viz_mm.heap_map(heap.snapshot()),
               viz_mm.heap_map(Heap(8).snapshot()),
               viz_mm.fragmentation(heap_workload(Heap(64), 50, 1), "bytes")]
    for fig in figures:
        assert isinstance(fig, matplotlib.figure.Figure)
        plt.close(fig)


def test_selecting_something_that_is_not_a_heap_panics_by_name():
    heap = Heap(16)
    with pytest.raises(KernelPanic,
                       match="xmalloc_select_heap: .* is not a heap"):
        heap.kernel.xmalloc_select_heap(heap.ffi.NULL)
