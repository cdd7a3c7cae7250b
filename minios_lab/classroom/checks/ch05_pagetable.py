"""Graded checks of chapter 05: batched updates, new tables, the walk."""
from __future__ import annotations

from minios_lab.classroom.checking import (CheckFailed, Context, check,
                                           guest_check)

HIGH = 1 << 39   # L4 slot 1: empty at start, so every level needs a table


def _tables(ctx: Context):
    from minios_lab.pagetable import PageTables
    return PageTables(1024, seed=3, kernel_dir=ctx.kernel_dir)


def _expect_mapped(pt, va: int, pfn: int, count: int) -> None:
    for i in range(count):
        got = pt.xen.translate(va + i * 4096)
        want = pt.pfn_to_mfn(pfn + i)
        if got is None or got[0] != want:
            raise CheckFailed(f"Xen's walk of {va + i * 4096:#x} gives {got}, "
                              f"expected mfn {want:#x} (pfn {pfn + i:#x})")


@check("05", "queue_update", 5, "a range mapped through batched mmu_update")
def batched(ctx: Context) -> None:
    pt = _tables(ctx)
    pt.map(1 << 30, 600, 40)        # more than one batch of 32
    _expect_mapped(pt, 1 << 30, 600, 40)


@check("05", "new_table", 5, "new tables made read-only and linked")
def new_tables(ctx: Context) -> None:
    pt = _tables(ctx)
    pt.map(HIGH, 700, 3)
    _expect_mapped(pt, HIGH, 700, 3)
    if pt.rejections:
        raise CheckFailed(f"Xen refused: {pt.rejections[-1]}")


guest_check("05", "new_table", 5,
            "the guest maps all memory on real Xen", "pagetables",
            (r"pages mapped (\d+) of \1 ", "all pages mapped"),
            (r"alias of pfn \S+ at 0x8000000000: written, read back, "
             r"unmapped", "a mapping above 512 GiB"))


@check("05", "pt_walk", 5, "the walk finds each level's entry")
def walk(ctx: Context) -> None:
    from minios_lab.xen.mmu import va_indexes
    pt = _tables(ctx)
    va = HIGH + (5 << 30) + (7 << 21) + (9 << 12)
    pt.map(va, 800, 1)
    w = pt.walk(va)
    if not w.present or w.pfn != 800 or w.mfn != pt.pfn_to_mfn(800):
        raise CheckFailed(f"walk of {va:#x} gave {w}")
    indexes = [step.index for step in w.steps]
    if indexes != list(va_indexes(va)[:4]):
        raise CheckFailed(f"walk used indexes {indexes}, expected "
                          f"{list(va_indexes(va)[:4])}")
    if pt.walk(va + (1 << 21)).present:
        raise CheckFailed("a page never mapped walks as present")
