"""kernel/mm/pagetable.c in the host build, against Python playing Xen.

Three layers are checked against each other: the kernel's own walk
(pt_walk), Xen's walk of machine memory (XenMMU.translate) and the p2m.
"""
from __future__ import annotations

import errno
from collections import Counter
import functools

import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,
                                 rule)

from minios_lab.errors import KernelPanic
from minios_lab.pagetable import (ADDR_MASK, DATA, GUEST_KERNEL, NX, PAGE_SIZE, PCD, PSE,
                                  PWT, RW, US, A, D, G, Mapping, P,
                                  PageTables, XenRefused, merge_runs,
                                  read_tree, va_indexes, xen_bootstrap)
from minios_lab.build.units import load
from minios_lab.xen.mmu import (OTHER, SELF, XEN, XenMMU, _Refused,
                                flag_names, shuffled_frames)

matplotlib.use("Agg")

NR_PAGES = 4096                      # 16 MiB
HIGH = 1 << 39                       # L4 slot 1: nothing there at start
LIMIT = 1 << 47
# Where the property tests map: four 16 MiB windows in different L4/L3
# slots, so tables of every level get made.
WINDOWS = [1 << 30, HIGH, (5 << 39) + (3 << 30), LIMIT - (16 << 20)]
WINDOW_PAGES = 4096
# Pfns the tests map: far above any frame taken for a table.
POOL = range(NR_PAGES // 2, NR_PAGES)


@pytest.fixture
def pt() -> PageTables:
    tables = PageTables(NR_PAGES, seed=1)
    tables.map_all()
    return tables


@functools.cache
def _kernel():
    return load("pagetable")


def fresh() -> PageTables:
    tables = PageTables(NR_PAGES, seed=3, run=1)
    tables.map_all()
    return tables


def assert_maps(pt: PageTables, va: int, pfn: int) -> None:
    """va walks to pfn's machine frame, by the kernel and by Xen."""
    walk = pt.walk(va)
    mfn = pt.pfn_to_mfn(pfn)
    assert walk.present and walk.mfn == mfn and walk.pfn == pfn, str(walk)
    assert walk.machine_address == mfn * PAGE_SIZE + va % PAGE_SIZE
    assert pt.xen.translate(va)[0] == mfn


# --- Xen's layout and the machine ------------------------------------------------

def test_bootstrap_matches_a_real_64_mib_boot() -> None:
    # Real boot, 64 MiB: 5 table frames, 4 MiB mapped (see test_boot_mm).
    lay = xen_bootstrap(16384, kernel_end=0x42000)
    assert lay.nr_pt_frames == 5
    assert lay.mapped_end == 4 << 20


@settings(deadline=None)
@given(nr_pages=st.integers(1024, 1 << 20), kernel_pages=st.integers(8, 512))
def test_kernel_and_python_agree_on_the_bootstrap_area(
        nr_pages: int, kernel_pages: int) -> None:
    try:
        lay = xen_bootstrap(nr_pages, kernel_pages * PAGE_SIZE)
    except ValueError:
        return                   # too little memory for Xen's mapping
    kernel = _kernel()
    out = kernel.ffi.new("struct pt_bootstrap *")
    kernel.pt_bootstrap_layout(lay.pt_base, lay.nr_pt_frames, out)
    assert out.first_free_pfn == lay.first_free_pfn
    assert out.mapped_end_pfn == lay.mapped_pages
    assert out.mapped_end_pfn * PAGE_SIZE - (out.stack_pfn + 1) * PAGE_SIZE \
        >= 512 << 10
    assert out.mapped_end_pfn % 1024 == 0


@given(seed=st.integers(0, 2**32), run=st.sampled_from([1, 2, 16, 64]))
def test_shuffled_frames_are_distinct_owned_and_never_the_pfn(
        seed: int, run: int) -> None:
    p2m = shuffled_frames(1024, seed, run)
    assert len(set(p2m.tolist())) == 1024
    assert (p2m >= 1024).all() and (p2m < 3 * 1024).all()
    assert (p2m != np.arange(1024)).all()
    assert (shuffled_frames(1024, seed, run) == p2m).all()


def test_frame_owners_and_m2p() -> None:
    xen = XenMMU(1024, seed=5)
    assert (xen.owner[xen.p2m] == SELF).all()
    assert (xen.m2p[xen.p2m] == np.arange(1024)).all()
    assert (xen.owner[:1024] == XEN).all()
    assert (xen.owner == OTHER).sum() == 1024


def test_xens_bootstrap_tables_are_typed_and_read_only() -> None:
    xen = XenMMU(2048)
    lay = xen.layout
    tables = [int(xen.p2m[p]) for p in range(lay.pt_base // PAGE_SIZE,
                                            lay.stack // PAGE_SIZE)]
    assert sorted(xen.level.values()) == [1, 1, 2, 3, 4]
    assert set(xen.level) == set(tables)
    for pfn in range(lay.mapped_pages):
        mfn, entry = xen.translate(pfn * PAGE_SIZE)
        assert mfn == xen.p2m[pfn]
        assert bool(entry & RW) == (mfn not in tables)
    assert xen.translate(lay.mapped_end) is None


def test_flag_names_and_indexes() -> None:
    assert flag_names(P | RW | NX | GUEST_KERNEL) == ["P", "RW", "GK", "NX"]
    assert va_indexes(0x8000403123) == (1, 0, 2, 3, 0x123)


@given(st.integers(0, LIMIT - 1))
def test_va_indexes_recompose_the_address(va: int) -> None:
    l4, l3, l2, l1, offset = va_indexes(va)
    assert ((l4 << 39) | (l3 << 30) | (l2 << 21) | (l1 << 12) | offset) == va
    assert all(0 <= i < 512 for i in (l4, l3, l2, l1))


def test_merge_runs_joins_only_consecutive_pages() -> None:
    leaves = [(0x1000, 0x5000 | DATA), (0x2000, 0x6000 | DATA),
              (0x3000, 0x8000 | DATA), (0x4000, 0x9000 | P)]
    assert merge_runs(leaves) == [Mapping(0x1000, 5, 2, DATA),
                                  Mapping(0x3000, 8, 1, DATA),
                                  Mapping(0x4000, 9, 1, P)]


# --- mapping everything -------------------------------------------------------------

def test_map_all_maps_every_page_to_its_p2m_frame(pt: PageTables) -> None:
    snap = pt.snapshot()
    assert snap.mapped_pages == NR_PAGES == pt.count_mapped(0, NR_PAGES)
    leaves = {}
    for m in snap.mappings:
        for i in range(m.pages):
            leaves[m.va // PAGE_SIZE + i] = (m.mfn + i, m.flags)
    assert sorted(leaves) == list(range(NR_PAGES))
    assert [leaves[p][0] for p in range(NR_PAGES)] == pt.xen.p2m.tolist()


def test_map_all_keeps_every_table_read_only(pt: PageTables) -> None:
    s = pt.stats()
    lay = pt.layout
    table_pfns = list(range(lay.pt_base // PAGE_SIZE, lay.stack // PAGE_SIZE))
    table_pfns += list(range(s["first_free_pfn"], s["next_free_pfn"]))
    for pfn in table_pfns:
        assert not pt.walk(pfn * PAGE_SIZE).writable
    assert set(pt.xen.level) == {pt.pfn_to_mfn(p) for p in table_pfns}
    # 16 MiB need 8 L1 tables; Xen made 2.
    assert (s["new_l1"], s["new_l2"], s["new_l3"]) == (6, 0, 0)
    assert s["xen_mapped"] == lay.mapped_pages


def test_updates_go_in_batches_of_at_most_32(pt: PageTables) -> None:
    counts = [c.args[1] for c in pt.xen.calls if c.name == "mmu_update"]
    assert max(counts) == 32
    written = NR_PAGES - pt.layout.mapped_pages + pt.stats()["new_l1"]
    assert sum(counts) == written == pt.stats()["entries_written"]


def test_a_new_table_is_made_read_only_before_it_is_linked() -> None:
    tables = PageTables(2048)
    tables.map(HIGH, 1500)
    names = [c.name for c in tables.xen.calls]
    # For each of L3, L2, L1: remap its frame read-only, then link it.
    assert names == ["update_va_mapping", "mmu_update"] * 3 + ["mmu_update"]
    assert tables.stats()["new_l3"] == tables.stats()["new_l2"] == 1


# --- every mapped address walks to the right frame -----------------------------------

ranges = st.tuples(st.sampled_from(WINDOWS), st.integers(0, WINDOW_PAGES - 1),
                   st.integers(1, 64), st.integers(POOL.start, POOL.stop - 64),
                   st.integers(0, PAGE_SIZE - 1))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ranges)
def test_every_mapped_address_walks_to_its_frame(pt: PageTables,
                                                 r: tuple) -> None:
    window, start, count, pfn, offset = r
    count = min(count, WINDOW_PAGES - start)
    va = window + start * PAGE_SIZE
    pt.map(va, pfn, count)
    for i in range(count):
        assert_maps(pt, va + i * PAGE_SIZE + offset, pfn + i)
    assert pt.walk(va + i * PAGE_SIZE).writable
    assert pt.unmap(va, count) == count


class MappingMachine(RuleBasedStateMachine):
    """Random maps and unmaps; the kernel, Xen and a dict always agree."""

    @initialize()
    def setup(self) -> None:
        self.pt = fresh()
        self.model: dict[int, int] = {}

    @rule(r=ranges)
    def map(self, r: tuple) -> None:
        window, start, count, pfn, _ = r
        count = min(count, WINDOW_PAGES - start)
        va = window + start * PAGE_SIZE
        self.pt.map(va, pfn, count)
        for i in range(count):
            self.model[va + i * PAGE_SIZE] = pfn + i

    @rule(r=ranges)
    def unmap(self, r: tuple) -> None:
        window, start, count, _, _ = r
        count = min(count, WINDOW_PAGES - start)
        va = window + start * PAGE_SIZE
        pages = [va + i * PAGE_SIZE for i in range(count)]
        expected = sum(p in self.model for p in pages)
        assert self.pt.unmap(va, count) == expected
        for p in pages:
            self.model.pop(p, None)
            assert not self.pt.walk(p).present
            assert self.pt.xen.translate(p) is None

    @invariant()
    def kernel_xen_and_model_agree(self) -> None:
        for va, pfn in list(self.model.items())[-100:]:
            assert_maps(self.pt, va, pfn)
        snap = self.pt.snapshot()
        assert snap.mapped_pages == NR_PAGES + len(self.model)
        # Xen counts one writable reference per writable leaf entry.
        expected: Counter[int] = Counter()
        for m in snap.mappings:
            if m.flags & RW:
                expected.update(range(m.mfn, m.mfn + m.pages))
        assert +self.pt.xen.writable_refs == expected


TestMappingMachine = MappingMachine.TestCase
TestMappingMachine.settings = settings(max_examples=20, stateful_step_count=12,
                                       deadline=None)


# --- Xen refuses what it must ---------------------------------------------------------

def test_a_page_table_frame_cannot_be_mapped_writable(pt: PageTables) -> None:
    for pfn in (pt.layout.pt_base // PAGE_SIZE,                 # Xen's L4
                pt.stats()["first_free_pfn"]):                   # a new L1
        with pytest.raises(XenRefused) as refused:
            pt.map(HIGH, pfn)
        assert refused.value.rc == -errno.EBUSY
        assert "page table" in refused.value.reason
        assert not pt.walk(HIGH).present
    pt.map(HIGH, pfn, flags=DATA & ~RW)          # read-only is fine
    assert_maps(pt, HIGH, pfn)
    assert [r.rc for r in pt.rejections] == [-errno.EBUSY] * 2
    assert pt.stats()["rejected"] == 2


def test_a_frame_mapped_writable_cannot_become_a_table(pt: PageTables) -> None:
    pt.map(1 << 30, 3000)                    # makes the tables at 1 GiB
    frame = pt.stats()["next_free_pfn"]      # the next frame for a table
    pt.map((1 << 30) + PAGE_SIZE, frame)     # a second, writable mapping
    with pytest.raises(XenRefused) as refused:
        pt.map(HIGH, 3000)                   # needs new tables
    assert refused.value.rc == -errno.EINVAL
    assert "mapped writable" in refused.value.reason


@pytest.mark.parametrize("owner, rc, words", [
    (OTHER, -errno.EBUSY, "another domain"),
    (XEN, -errno.EBUSY, "Xen"),
])
def test_foreign_frames_are_refused(pt: PageTables, owner: int, rc: int,
                                    words: str) -> None:
    mfn = int(np.flatnonzero(pt.xen.owner == owner)[7])
    with pytest.raises(XenRefused) as refused:
        pt.map_mfn(HIGH, mfn)
    assert refused.value.rc == rc and words in refused.value.reason
    assert not pt.walk(HIGH).present


def test_a_frame_that_is_not_ram_is_refused(pt: PageTables) -> None:
    with pytest.raises(XenRefused) as refused:
        pt.map_mfn(HIGH, 1 << 30)
    assert refused.value.rc == -errno.EPERM


@pytest.mark.parametrize("bad", [PWT, PCD, PSE])
def test_reserved_l1_flags_are_refused(pt: PageTables, bad: int) -> None:
    with pytest.raises(XenRefused) as refused:
        pt.map(HIGH, 3000, flags=DATA | bad)
    assert refused.value.rc == -errno.EINVAL
    assert "bad L1 flags" in refused.value.reason


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=st.sets(st.sampled_from([RW, US, PWT, PCD, A, D, PSE, G, NX])))
def test_l1_flags_accepted_exactly_when_xen_allows(pt: PageTables,
                                                   flags: set) -> None:
    value = P | sum(flags)
    try:
        pt.map(HIGH, 3000, flags=value)
    except XenRefused as refused:
        assert value & (PWT | PCD | PSE) and refused.rc == -errno.EINVAL
        return
    assert not value & (PWT | PCD | PSE)
    entry = pt.walk(HIGH).steps[-1].entry
    assert (entry ^ value) & ~ADDR_MASK & ~(US | G | GUEST_KERNEL) == 0
    assert entry & US                      # Xen: a PV kernel is in ring 3
    pt.unmap(HIGH)


def test_xen_checks_upper_levels_too() -> None:
    xen = XenMMU(1024)
    l4 = xen.root
    l3 = xen.read(l4, 0) >> 12 & 0xFFFFFFFFFF
    with pytest.raises(_Refused, match="bad L4 flags PSE"):
        xen.set_entry(l4, 1, l3 << 12 | P | PSE)
    with pytest.raises(_Refused, match="is an L3 table, not an L2"):
        xen.set_entry(l3, 1, l3 << 12 | P)         # L3 as its own L2
    with pytest.raises(_Refused, match="Xen's"):
        xen.set_entry(l4, 256, l3 << 12 | P)


def test_updates_to_frames_that_are_not_ours_are_refused() -> None:
    tables = PageTables(1024)
    foreign = int(np.flatnonzero(tables.xen.owner == OTHER)[0])
    req = tables.ffi.new("mmu_update_t *", {"ptr": foreign << 12, "val": 0})
    done = tables.ffi.new("unsigned int *")
    rc = tables.xen.do_mmu_update(int(tables.ffi.cast("uintptr_t", req)), 1,
                                  int(tables.ffi.cast("uintptr_t", done)),
                                  tables.kernel.DOMID_SELF)
    assert rc == -errno.EINVAL and done[0] == 0
    assert "not the domain's" in tables.rejections[-1].reason


def test_a_table_frees_its_type_when_unlinked() -> None:
    xen = XenMMU(2048)
    l2 = xen.read(xen.read(xen.root, 0) >> 12 & 0xFFFFFFFFFF, 0) >> 12 \
        & 0xFFFFFFFFFF
    second_l1 = xen.read(l2, 1) >> 12 & 0xFFFFFFFFFF
    xen.set_entry(l2, 1, 0)
    assert second_l1 not in xen.level
    assert xen.translate(0x200000) is None


# --- unmap really unmaps ---------------------------------------------------------------

def test_unmap_removes_the_mapping_and_flushes_the_tlb(pt: PageTables) -> None:
    pt.map(HIGH, 3000, 10)
    flushes = pt.stats()["tlb_flushes"]
    assert pt.unmap(HIGH + 2 * PAGE_SIZE, 5) == 5
    for i in range(10):
        walk = pt.walk(HIGH + i * PAGE_SIZE)
        assert walk.present == (i < 2 or i >= 7)
        assert (pt.xen.translate(HIGH + i * PAGE_SIZE) is None) == \
            (2 <= i < 7)
    assert pt.stats()["tlb_flushes"] == flushes + 1
    assert pt.xen.calls[-1].name == "mmuext_op"
    assert pt.unmap(HIGH + 2 * PAGE_SIZE, 5) == 0      # nothing left there


def test_unmapped_frame_can_become_a_table_again(pt: PageTables) -> None:
    pt.map(1 << 30, 3000)                    # makes the tables at 1 GiB
    frame = pt.stats()["next_free_pfn"]
    pt.map((1 << 30) + PAGE_SIZE, frame)
    pt.unmap((1 << 30) + PAGE_SIZE)
    pt.map(HIGH, 3000)                 # takes `frame` for a table: allowed
    assert not pt.walk(frame * PAGE_SIZE).writable


def test_remapping_a_page_replaces_it_and_flushes(pt: PageTables) -> None:
    pt.map(HIGH, 3000)
    pt.map(HIGH, 3001)
    assert_maps(pt, HIGH, 3001)
    assert pt.xen.writable_refs[pt.pfn_to_mfn(3000)] == 1     # 1:1 only


# --- the kernel panics on misuse ---------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda t: t.map(HIGH + 1, 3000), "not page-aligned"),
    (lambda t: t.map(HIGH, 3000, 0), "count is 0"),
    (lambda t: t.map(LIMIT - PAGE_SIZE, 3000, 2), "reach beyond"),
    (lambda t: t.map(0x5000, 3000), "kernel's own area"),
    (lambda t: t.map(HIGH, NR_PAGES - 1, 2), "beyond the domain's"),
    (lambda t: t.map(HIGH, 3000, 1, RW), "lack _PAGE_PRESENT"),
    (lambda t: t.map(HIGH, 3000, 1, P | 0x5000), "address bits"),
    (lambda t: t.map_mfn(HIGH + 8, 5, DATA), "not page-aligned"),
    (lambda t: t.unmap(0, 1), "kernel's own area"),
    (lambda t: t.walk(LIMIT), "lower half"),
])
def test_misuse_panics_with_a_clear_message(pt: PageTables, call,
                                            message: str) -> None:
    with pytest.raises(KernelPanic) as panic:
        call(pt)
    assert message in panic.value.message
    assert panic.value.file == "kernel/mm/pagetable.c"
    assert_maps(fresh(), 0, 0)           # the process goes on


def test_calls_before_pt_init_panic() -> None:
    kernel = PageTables(1024).kernel
    blank = kernel.ffi.new("struct pagetables *")
    previous = kernel.pt_select(blank)
    try:
        with pytest.raises(KernelPanic, match="not initialised"):
            kernel.pt_map(HIGH, 0, 1, DATA)
    finally:
        kernel.pt_select(previous)


@pytest.mark.parametrize("field, value, message", [
    ("pt_base", 0x45001, "not page-aligned"),
    ("nr_pt_frames", 0, "do not fit"),
    ("nr_pages", 10, "do not fit"),
    ("p2m", None, "no setup, p2m or m2p"),
])
def test_pt_init_refuses_a_bad_setup(field: str, value, message: str) -> None:
    tables = PageTables(1024)
    setup = tables.ffi.new("struct pt_setup *", tables.setup[0])
    setattr(setup, field, tables.ffi.NULL if value is None else value)
    with pytest.raises(KernelPanic, match=message):
        tables._call(tables.kernel.pt_init, setup)


def test_no_page_for_a_table_panics() -> None:
    tables = PageTables(1024)
    tables.map_all()
    empty = tables.ffi.callback("unsigned long(void)", lambda: 0)
    tables._call(tables.kernel.pt_set_page_source, empty)
    with pytest.raises(KernelPanic, match="no page left"):
        tables.map(HIGH, 800)


def test_tables_come_from_the_page_source_once_set() -> None:
    tables = PageTables(2048)
    tables.map_all()
    given_out = [1900, 1901, 1902]
    source = tables.ffi.callback(
        "unsigned long(void)",
        lambda: int(tables.setup.mem_base) + given_out.pop(0) * PAGE_SIZE)
    before = tables.stats()["next_free_pfn"]
    tables._call(tables.kernel.pt_set_page_source, source)
    tables.map(HIGH, 1000)
    assert given_out == [] and tables.stats()["next_free_pfn"] == before
    assert {tables.xen.level[tables.pfn_to_mfn(p)]
            for p in (1900, 1901, 1902)} == {1, 2, 3}


# --- views and plots ------------------------------------------------------------------------

def test_snapshot_reads_the_tree_from_machine_memory(pt: PageTables) -> None:
    pt.map(HIGH, 3000, 3)
    snap = read_tree(pt.xen)
    assert [len(snap.tables_at(level)) for level in (4, 3, 2, 1)] == \
        [1, 2, 2, 9]
    # pfns 3000-3002 lie in one run of 16 machine frames: one mapping.
    assert snap.mappings[-1] == Mapping(HIGH, pt.pfn_to_mfn(3000), 3,
                                        DATA | US | GUEST_KERNEL)
    assert all(t.pfn == pt.xen.m2p[t.mfn] for t in snap.tables)


def test_walk_text_and_summary(pt: PageTables) -> None:
    text = str(pt.walk(0x1234))
    assert "L4[  0]" in text and "machine address" in text
    assert "not present" in str(pt.walk(HIGH))
    assert "new tables L3 0 L2 0 L1 6" in pt.summary()


def test_plots_draw_what_they_are_given(pt: PageTables) -> None:
    from minios_lab.viz import pagetable as vp

    pt.map(HIGH, 3000, 3)
    snap = pt.snapshot()
    assert len(vp.va_split(HIGH).axes[0].patches) == 5
    assert len(vp.walk_figure(pt.walk(HIGH + 5)).axes[0].patches) == 5 + 4
    assert len(vp.walk_figure(pt.walk(2 * HIGH)).axes[0].patches) == 1
    assert len(vp.tree(snap, max_l1=2).axes[0].texts) == \
        1 + 2 + 2 + (2 + 1) + 1
    lines = vp.v2m(vp.in_range(snap.mappings, 0, HIGH)).axes[0].lines
    assert len(lines) == len(vp.in_range(snap.mappings, 0, HIGH))


def test_hypercall_log_names_calls_without_host_pointers() -> None:
    tables = PageTables(2048)
    tables.map(HIGH, 1500)
    with pytest.raises(XenRefused):
        tables.map(HIGH + PAGE_SIZE, tables.layout.pt_base // PAGE_SIZE)
    log = tables.hypercall_log()
    assert log[0].startswith("update_va_mapping = 0  # va 0x")
    assert log[1] == "mmu_update = 0  # 1 entries written"
    assert log[-1].startswith("mmu_update = -EBUSY  # refused: writable")
    assert tables.hypercall_log(len(log) - 1) == log[-1:]
    assert not any("0x7f" in line or "0x55" in line for line in log)
