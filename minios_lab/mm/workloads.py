"""Workloads, step-throughs and the benchmark of the allocators, as data.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Sequence

from minios_lab.mm.heap import Heap
from minios_lab.mm.pages import PageAllocator, PoolSnapshot


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
