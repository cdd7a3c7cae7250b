"""The virtual exception table in the host build: Python plays Xen and the
stubs, the C handlers of kernel/traps.c decide."""
from __future__ import annotations

import re

import matplotlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minios_lab.errors import KernelPanic
from minios_lab.traps import (GPR_NAMES, Traps, bounce_frame_layout,
                              demo_verdicts, entry_save_order,
                              kernel_cs_rflags, pt_regs_layout,
                              summary_lines)

matplotlib.use("Agg")

REGISTERED = [0, 1, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19]
WITH_ERROR_CODE = {10, 11, 12, 13, 14, 17}
RESUMED_IN_PLACE = {1, 3}          # traps: rip already after the instruction
FAULT_RIP, LANDING = 0x2000, 0x2040
STUBS = {0: "divide_error", 1: "debug", 3: "int3", 4: "overflow",
         5: "bounds", 6: "invalid_op", 7: "device_not_available",
         9: "coprocessor_segment_overrun", 10: "invalid_TSS",
         11: "segment_not_present", 12: "stack_segment",
         13: "general_protection", 14: "page_fault",
         15: "spurious_interrupt_bug", 16: "coprocessor_error",
         17: "alignment_check", 19: "simd_coprocessor_error"}


@pytest.fixture
def traps() -> Traps:
    t = Traps()
    t.clear_fixups()
    return t


# --- what the kernel registers ----------------------------------------------

def test_trap_table_vectors_dpl_and_event_mask(traps):
    table = traps.trap_table()
    assert [e.vector for e in table] == REGISTERED
    assert {e.vector: e.entry for e in table} == STUBS
    assert [e.vector for e in table if e.dpl == 3] == [3]   # user int3
    assert all(e.dpl == 0 for e in table if e.vector != 3)
    assert [e.vector for e in table if e.masks_events] == [14]
    assert {e.cs for e in table} == {traps.kernel.FLAT_KERNEL_CS}
    assert len({e.address for e in table}) == len(table)   # distinct stubs


def test_trap_info_flags_are_xens_encoding(traps):
    # <xen/arch-x86/xen.h>: bits 0-1 DPL, bit 2 "mask events" (TI_SET_IF).
    flags = {v: f for v, f, _, _ in traps.hypervisor.raw_table}
    assert flags[3] == 3 and flags[14] == 4
    assert all(flags[v] == 0 for v in REGISTERED if v not in (3, 14))


def test_callbacks_and_hypercall_order(traps):
    assert [c.kind for c in traps.callbacks()] == ["event", "failsafe"]
    assert [c.entry for c in traps.callbacks()] == ["hypervisor_callback",
                                                   "failsafe_callback"]
    assert [c.masks_events for c in traps.callbacks()] == [False, True]
    assert traps.hypervisor.call_names()[:3] == ["set_trap_table",
                                                 "callback_op", "callback_op"]
    assert "17 vectors" in traps.hypervisor.calls[0].note


def test_names_of_unregistered_vectors_are_unknown(traps):
    for vector in (2, 8, 18, 20, 31, 256):
        assert traps.kernel.trap_name(vector) == traps.ffi.NULL
        assert not traps.has_error_code(vector)
    assert traps.kernel.trap_entry_name(0) == traps.ffi.NULL


# --- decoding, per vector ------------------------------------------------------

@pytest.mark.parametrize("vector", REGISTERED)
def test_each_vector_is_named_and_recovered_by_fixup(traps, vector):
    traps.add_fixup(FAULT_RIP, LANDING)
    code = 0x18 if vector in WITH_ERROR_CODE else None
    out = traps.raise_exception(vector, FAULT_RIP, error_code=code)
    first = out.console.splitlines()[0]
    assert first.startswith(f"trap: {out.mnemonic} {out.name} "
                            f"(vector {vector})")
    assert ("error code 0x18" in first) == (vector in WITH_ERROR_CODE)
    assert out.error_code == code
    if vector in RESUMED_IN_PLACE:
        assert out.resumed_in_place and out.resumed_at == FAULT_RIP
    else:
        assert out.fixed_up and out.resumed_at == LANDING
        assert f"fix-up: rip {FAULT_RIP:#x} -> landing {LANDING:#x}" \
            in out.console


@pytest.mark.parametrize("vector", REGISTERED)
def test_each_fault_without_fixup_panics(traps, vector):
    if vector in RESUMED_IN_PLACE:
        assert traps.raise_exception(vector, 0x3000).resumed_in_place
        return
    handler = "do_page_fault" if vector == 14 else "do_trap"
    with pytest.raises(KernelPanic, match=rf"{handler}: unhandled .* at "
                       r"rip 0x3000") as err:
        traps.raise_exception(vector, 0x3000)
    assert err.value.file == "kernel/traps.c"
    assert "trap: " in err.value.console


@pytest.mark.parametrize("vector", [2, 8, 18, 20])
def test_vector_with_no_handler_panics(traps, vector):
    with pytest.raises(KernelPanic, match=f"no handler for vector {vector}"):
        traps.raise_exception(vector, 0x1000)


def test_error_code_only_where_the_cpu_pushes_one(traps):
    with pytest.raises(ValueError, match="no error code"):
        traps.raise_exception(3, 0x1000, error_code=1)
    assert all(traps.has_error_code(v) == (v in WITH_ERROR_CODE)
               for v in REGISTERED)


@pytest.mark.parametrize("code, words", [
    (0x0, "read of a not-present page"),
    (0x2, "write of a not-present page"),
    (0x3, "write of a present page"),
    (0x11, "instruction fetch of a present page"),
    (0x9, "read of a present page, reserved bit set"),
])
def test_page_fault_reports_cr2_and_decodes_error_code(traps, code, words):
    traps.add_fixup(FAULT_RIP, LANDING)
    out = traps.raise_exception(14, FAULT_RIP, error_code=code,
                                cr2=0xDEAD0000)
    assert out.cr2 == 0xDEAD0000
    assert f"cr2 00000000dead0000: {words}\n" in out.console
    assert traps.snapshot().last["cr2"] == 0xDEAD0000


def test_fatal_page_fault_names_address_and_rip(traps):
    with pytest.raises(KernelPanic, match=r"do_page_fault: unhandled write "
                       r"of 0xdead0000 at rip 0x4242"):
        traps.raise_exception(14, 0x4242, error_code=2, cr2=0xDEAD0000)


@settings(max_examples=50, deadline=None)
@given(rip=st.integers(1, 2**64 - 1),
       values=st.lists(st.integers(0, 2**64 - 1), min_size=15, max_size=15))
def test_register_dump_shows_every_register(rip, values):
    traps = _shared_traps()
    registers = dict(zip(GPR_NAMES, values))
    out = traps.raise_exception(3, rip, **registers)
    dump = dict(re.findall(r"\b(r\w+|r\d+)\s+([0-9a-f]{16})\b", out.console))
    assert int(dump["rip"], 16) == rip
    for name, value in registers.items():
        assert int(dump[name], 16) == value
    assert out.resumed_at == rip


_TRAPS: list[Traps] = []


def _shared_traps() -> Traps:
    if not _TRAPS:
        _TRAPS.append(Traps())
    return _TRAPS[0]


# --- events masked or not ----------------------------------------------------------

@pytest.mark.parametrize("enabled", [True, False])
def test_event_mask_around_a_trap(traps, enabled):
    traps.add_fixup(FAULT_RIP, LANDING)
    bp = traps.raise_exception(3, 0x1000, events_enabled=enabled)
    assert bp.mask_in_handler == (0 if enabled else 1)   # int3: untouched
    pf = traps.raise_exception(14, FAULT_RIP, events_enabled=enabled)
    assert pf.mask_in_handler == 1                       # #PF: masked
    assert traps.snapshot().last["saved_mask"] == (0 if enabled else 1)
    assert pf.mask_after == bp.mask_after == (0 if enabled else 1)
    assert ("events were enabled" in pf.console) == enabled


def test_bounce_frame_cs_and_rflags(traps):
    cs, rflags = kernel_cs_rflags(traps.kernel, events_enabled=False)
    assert cs & 0xFFFF == traps.kernel.FLAT_KERNEL_CS & ~3   # RPL 0
    assert (cs >> 32) & 0xFF == 1 and not rflags & (1 << 9)
    cs, rflags = kernel_cs_rflags(traps.kernel, events_enabled=True)
    assert cs >> 32 == 0 and rflags & (1 << 9)


# --- the fix-up table, counters, nesting, failsafe ------------------------------------

def test_fixup_table(traps):
    assert traps.fixup_for(0x10) is None
    traps.add_fixup(0x10, 0x20)
    traps.add_fixup(0x10, 0x30)                 # same fault: updated
    assert traps.fixup_for(0x10) == 0x30
    for i in range(1, traps.kernel.TRAP_FIXUP_MAX):
        traps.add_fixup(0x100 + i, 0x200 + i)
    with pytest.raises(OverflowError, match="full"):
        traps.add_fixup(0x999, 0x1)
    traps.clear_fixups()
    assert traps.fixup_for(0x10) is None
    with pytest.raises(KernelPanic, match="BUG_ON"):
        traps.add_fixup(0, 0x20)


def test_counters(traps):
    before = traps.snapshot()
    traps.add_fixup(FAULT_RIP, LANDING)
    traps.raise_exception(3, 0x1000)
    traps.raise_exception(6, FAULT_RIP)
    with pytest.raises(KernelPanic):
        traps.raise_exception(13, 0x5000, error_code=0)
    after = traps.snapshot()
    assert after.taken[3] == before.taken.get(3, 0) + 1
    assert after.taken[6] == before.taken.get(6, 0) + 1
    assert after.taken[13] == before.taken.get(13, 0) + 1
    assert after.resumed == before.resumed + 2
    assert after.fixed_up == before.fixed_up + 1
    assert after.depth == 0
    assert after.last["vector"] == 13 and after.last["resume_at"] == 0


def test_a_handler_that_keeps_faulting_panics(traps):
    traps.kernel.lib.trap_stats.depth = 2     # as if two handlers ran
    with pytest.raises(KernelPanic, match="inside 2 nested handlers"):
        traps.raise_exception(3, 0x1000)
    assert traps.snapshot().depth == 0


def test_failsafe_callback_reports_segments_and_stops(traps):
    regs = traps.ffi.new("struct pt_regs *")
    regs.vector = traps.kernel.TRAP_VECTOR_FAILSAFE
    words = [0x11, 0x22, 0x33, 0x44, 0x5678]   # ds es fs gs rip
    regs.rip, regs.cs, regs.rflags, regs.rsp, regs.ss = words
    with pytest.raises(KernelPanic, match="do_failsafe_callback: cannot "
                       "return to rip 0x5678") as err:
        traps.kernel.do_failsafe_callback(regs)
    assert "ds 0011  es 0022  fs 0033  gs 0044" in err.value.console


# --- layouts --------------------------------------------------------------------------

def test_pt_regs_matches_entry_s(traps):
    layout = pt_regs_layout(traps.ffi)
    names = [s.name for s in layout]
    # SAVE_REGS pushes from high to low addresses: reversed, they are the
    # first fields of pt_regs.
    assert names[:15] == list(reversed(entry_save_order()))
    assert names[15:] == ["vector", "error_code", "rip", "cs", "rflags",
                          "rsp", "ss"]
    assert [s.offset for s in layout] == [8 * i for i in range(22)]
    assert traps.ffi.sizeof("struct pt_regs") % 16 == 0   # keeps alignment


@pytest.mark.parametrize("errcode", [False, True])
def test_bounce_frame_is_the_top_of_pt_regs(traps, errcode):
    bounce = bounce_frame_layout(errcode)
    regs = {s.name: s.offset for s in pt_regs_layout(traps.ffi)}
    assert [s.name for s in bounce[:2]] == ["rcx", "r11"]
    assert len(bounce) == (8 if errcode else 7)
    shift = regs["ss"] - bounce[-1].offset
    for slot in bounce[2:]:                    # same memory, same words
        assert regs[slot.name] == slot.offset + shift


# --- reading the guest's section, plots ---------------------------------------------------

def test_demo_verdicts_and_summary():
    lines = ["traps: demo int3: PASS", "  rip 0000000000001234",
             "trap: #BP breakpoint (vector 3)", "traps: demo ud2: FAIL"]
    assert demo_verdicts(lines) == {"int3": "PASS", "ud2": "FAIL"}
    assert summary_lines(lines) == [lines[0], lines[3]]


def test_plots(traps):
    from minios_lab.viz.traps import plot_frames, plot_trap_table

    fig = plot_frames(bounce_frame_layout(True), pt_regs_layout(traps.ffi))
    assert len(fig.axes[0].patches) == 8 + 22
    fig = plot_trap_table(traps.trap_table())
    assert len(fig.axes[0].patches) == 32
