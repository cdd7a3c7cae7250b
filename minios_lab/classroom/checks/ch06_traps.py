"""Graded checks of chapter 06: the trap table, fix-ups, page faults."""
from __future__ import annotations

from minios_lab.errors import KernelPanic
from minios_lab.classroom.checking import (CheckFailed, Context, check,
                                           guest_check)

VECTORS = {0, 1, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19}
FAULT, LANDING = 0x4321, 0x8765


def _traps(ctx: Context):
    from minios_lab.traps import Traps
    traps = Traps(kernel_dir=ctx.kernel_dir)
    traps.clear_fixups()
    return traps


@check("06", "fill_trap_info", 5, "the trap table Xen receives is right")
def table(ctx: Context) -> None:
    traps = _traps(ctx)
    entries = {e.vector: e for e in traps.trap_table()}
    if set(entries) != VECTORS:
        raise CheckFailed(f"vectors {sorted(entries)}, expected {sorted(VECTORS)}")
    for vector, e in entries.items():
        dpl = 3 if vector == 3 else 0
        if e.dpl != dpl or e.cs != 0xE033 or e.address == 0:
            raise CheckFailed(f"vector {vector}: dpl {e.dpl} cs {e.cs:#x} "
                              f"address {e.address:#x}; expected dpl {dpl}, "
                              f"cs 0xe033 and a handler")
    if not entries[14].masks_events:
        raise CheckFailed("the page fault must mask events (cr2 is per vcpu)")


guest_check("06", "fill_trap_info", 5,
            "int3 taken and resumed on real Xen", "traps",
            (r"^traps: demo int3: PASS$", "the int3 demo"))


@check("06", "recover_or_die", 5, "a fix-up resumes at its landing")
def fixup(ctx: Context) -> None:
    traps = _traps(ctx)
    traps.add_fixup(FAULT, LANDING)
    outcome = traps.raise_exception(6, FAULT)          # invalid opcode
    if not outcome.fixed_up or outcome.resumed_at != LANDING:
        raise CheckFailed(f"ud2 at {FAULT:#x} went on at "
                          f"{outcome.resumed_at:#x}, expected {LANDING:#x}")
    try:
        traps.raise_exception(0, FAULT + 8)            # no fix-up: fatal
    except KernelPanic:
        return
    raise CheckFailed("a divide error with no fix-up did not stop the kernel")


guest_check("06", "recover_or_die", 5,
            "ud2 and divide recovered on real Xen", "traps",
            (r"^traps: demo ud2: PASS$", "the ud2 demo"),
            (r"^traps: demo divide: PASS$", "the divide demo"))


@check("06", "do_page_fault", 5, "a page fault reports its address (cr2)")
def page_fault(ctx: Context) -> None:
    traps = _traps(ctx)
    traps.add_fixup(FAULT, LANDING)
    outcome = traps.raise_exception(14, FAULT, error_code=2, cr2=0xDEAD0000)
    if outcome.cr2 != 0xDEAD0000 or "dead0000" not in outcome.console:
        raise CheckFailed(f"page fault reported cr2 {outcome.cr2}; "
                          f"expected 0xdead0000", outcome.console.splitlines())


guest_check("06", "do_page_fault", 5,
            "page fault recovered on real Xen", "traps",
            (r"^traps: demo pagefault: PASS$", "the page fault demo"))
