"""The kernel's page allocator and xmalloc, driven from Python.

Python plays the part of the machine: :class:`PhysicalMemory`
(minios_lab.xen.memory) reserves a page-aligned stretch of host memory to
serve as the guest's "physical memory", and the kernel's own C (kernel/mm/)
manages it. The face is split: mm.pages, mm.heap, mm.workloads.

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
from minios_lab.xen.memory import (PAGE_SHIFT, PAGE_SIZE, OutsideMemory,
                                   PhysicalMemory)
from minios_lab.mm.pages import (FreeError, PageState, PoolStats,
                                 PoolSnapshot, PageAllocator, panic_message)
from minios_lab.mm.heap import (BlockKind, Block, HeapStats, HeapSnapshot,
                                format_blocks, Heap)
from minios_lab.mm.workloads import (FragmentationPoint, page_workload,
                                     heap_workload, Step, step_through,
                                     BenchPoint, bench_alloc_free)
# private helpers some tests reach for
from minios_lab.xen.memory import _LIBC, _SLOT_SIZE, _map_aligned_anywhere  # noqa: F401

__all__ = ["PAGE_SHIFT", "PAGE_SIZE", "OutsideMemory", "PhysicalMemory", "FreeError", "PageState", "PoolStats", "PoolSnapshot", "PageAllocator", "panic_message", "BlockKind", "Block", "HeapStats", "HeapSnapshot", "format_blocks", "Heap", "FragmentationPoint", "page_workload", "heap_workload", "Step", "step_through", "BenchPoint", "bench_alloc_free"]
