"""Graded checks of chapter 04: placing aligned blocks, merging free ones."""
from __future__ import annotations

from minios_lab.classroom.checking import (CheckFailed, Context, check,
                                           guest_check)


def _heap(ctx: Context):
    from minios_lab.mm import Heap, PageAllocator
    return Heap(pages=PageAllocator(64, kernel=ctx.unit("mm")))


@check("04", "place", 5, "small blocks placed aligned, without overlap")
def place(ctx: Context) -> None:
    heap = _heap(ctx)
    spans = []
    for size, align in ((24, None), (100, 64), (7, 16), (200, 256), (1, 8)):
        address = heap.malloc(size, align)
        if address is None:
            raise CheckFailed(f"xmalloc({size}, align {align}) failed")
        if align and address % align:
            raise CheckFailed(f"xmalloc_align({size}, {align}) gave "
                              f"{address:#x}, not aligned")
        spans.append((address, address + size))
        heap.check()
    spans.sort()
    for (a0, a1), (b0, _) in zip(spans, spans[1:]):
        if a1 > b0:
            raise CheckFailed("two live blocks overlap")


@check("04", "merge_neighbours", 5, "freed neighbours merge, pages return")
def merge(ctx: Context) -> None:
    heap = _heap(ctx)
    free_before = heap.pages.free_pages_count
    blocks = [heap.malloc(size) for size in (40, 80, 120, 40)]
    for address in (blocks[1], blocks[0], blocks[3], blocks[2]):
        heap.free(address)
        heap.check()
    if heap.pages.free_pages_count != free_before:
        raise CheckFailed(f"{free_before - heap.pages.free_pages_count} "
                          f"page(s) still held after freeing every block")


guest_check("04", "merge_neighbours", 5,
            "xmalloc's self-test passes on real Xen", "mm",
            (r"^xmalloc: selftest PASS$", "xmalloc in the guest"))
