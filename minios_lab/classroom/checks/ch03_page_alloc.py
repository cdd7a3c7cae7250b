"""Graded checks of chapter 03: splitting and merging buddies."""
from __future__ import annotations

from minios_lab.classroom.checking import (CheckFailed, Context, check,
                                           guest_check)


def _allocator(ctx: Context, nr_pages: int = 64):
    from minios_lab.mm import PageAllocator
    return PageAllocator(nr_pages, kernel=ctx.unit("mm"))


@check("03", "split_chunk", 5, "an order-0 allocation splits a big chunk")
def split(ctx: Context) -> None:
    pool = _allocator(ctx)
    biggest = pool.leave_one_chunk()   # only one free chunk, of this order
    before = pool.free_pages_count
    if pool.alloc(0) is None:
        raise CheckFailed(f"alloc(0) failed with an order-{biggest} chunk free")
    pool.check()
    if pool.free_pages_count != before - 1:
        raise CheckFailed(f"free pages went from {before} to "
                          f"{pool.free_pages_count}, expected {before - 1}")
    counts = {o: len(c) for o, c in pool.free_chunks().items() if c}
    expected = {o: 1 for o in range(biggest)}
    if counts != expected:
        raise CheckFailed(f"splitting an order-{biggest} chunk for one page "
                          f"left free chunks {counts} (order: count), "
                          f"expected {expected}")


@check("03", "merge_with_buddies", 5, "freeing everything merges back")
def merge(ctx: Context) -> None:
    pool = _allocator(ctx)
    initial = pool.free_chunks()
    taken = [(pool.alloc(order), order) for order in (0, 1, 0, 2, 0, 3)]
    for pfn, order in reversed(taken):
        pool.free(pfn, order)
        pool.check()
    if pool.free_chunks() != initial:
        raise CheckFailed(f"free lists {pool.free_chunks()} after freeing "
                          f"everything, expected {initial}")


@check("03", "merge_with_buddies", 5, "the kernel's own self-test passes")
def selftest(ctx: Context) -> None:
    pool = _allocator(ctx, 256)
    rc, text = pool.selftest()
    lines = text.splitlines()
    ctx.expect_line(lines, r"mm: selftest PASS", "mm_selftest()")
    if rc != 0:
        raise CheckFailed(f"mm_selftest() returned {rc}", lines[-6:])


guest_check("03", "split_chunk", 5,
            "the guest's allocator passes on real Xen", "mm",
            (r"^mm: selftest PASS$", "mm_selftest() in the guest"))
