"""The kernel's page tables, driven from Python, with Python as a strict Xen.

kernel/mm/pagetable.c runs here on a pretend machine,
:class:`~minios_lab.xen.mmu.XenMMU` (a Hypervisor subclass, re-exported
here), which keeps the machine memory, builds Xen's bootstrap tables and
accepts or refuses every update as Xen 4.17 would.

:class:`PageTables` is the Python face: ``map``, ``map_mfn``, ``unmap``,
``map_all`` and ``walk`` call the kernel's C; a refused update raises
:class:`XenRefused`, kernel misuse :class:`~minios_lab.errors.KernelPanic`.
``snapshot()`` reads the whole tree straight out of machine memory, not
through the kernel, for plots (:mod:`minios_lab.viz.pagetable`) and tests.
"""
from __future__ import annotations

from pathlib import Path

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from minios_lab.errors import MiniosLabError, checked_int
from minios_lab.build.units import load
from minios_lab.xen.mmu import (ADDR_MASK, DATA, ENTRIES, GUEST_KERNEL, LEVELS, NX,
                      PAGE_SHIFT, PAGE_SIZE, PCD, PSE, PWT, RW, US, A,
                      Bootstrap, D, G, P, Rejection, XenMMU, entry_mfn,
                      errno_name, flag_names, va_indexes, xen_bootstrap)

__all__ = ["PageTables", "XenMMU", "XenRefused", "Walk", "Step", "Snapshot",
           "Table", "Mapping", "Bootstrap", "Rejection", "xen_bootstrap",
           "read_tree", "merge_runs", "parse_guest_report",
           "parse_guest_walk", "flag_names", "va_indexes", "entry_mfn",
           "P", "RW", "US", "PWT", "PCD", "A", "D", "PSE", "G", "NX",
           "GUEST_KERNEL", "DATA", "ADDR_MASK", "ENTRIES", "LEVELS",
           "PAGE_SHIFT", "PAGE_SIZE"]


class XenRefused(MiniosLabError):
    """Xen (here: Python) refused a page-table update the kernel sent."""

    def __init__(self, rc: int, reason: str):
        super().__init__(f"Xen refused the update: -{errno_name(rc)} "
                         f"({rc}): {reason}")
        self.rc = rc
        self.reason = reason


# --- the Python face ----------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One level of a walk: entry `index` of the table in `table_mfn`."""

    level: int
    index: int
    table_mfn: int
    entry: int

    @property
    def present(self) -> bool:
        return bool(self.entry & P)

    @property
    def mfn(self) -> int:
        return entry_mfn(self.entry)

    @property
    def flags(self) -> list[str]:
        return flag_names(self.entry)


@dataclass(frozen=True)
class Walk:
    """The kernel's pt_walk() of one virtual address."""

    va: int
    steps: tuple[Step, ...]
    present: bool
    mfn: int | None
    pfn: int | None

    @property
    def machine_address(self) -> int | None:
        if self.mfn is None:
            return None
        return self.mfn << PAGE_SHIFT | (self.va & (PAGE_SIZE - 1))

    @property
    def writable(self) -> bool:
        return self.present and bool(self.steps[-1].entry & RW)

    def __str__(self) -> str:
        lines = [f"walk of {self.va:#x}:"]
        for s in self.steps:
            what = (f"-> mfn {s.mfn:#x}  {' '.join(s.flags)}" if s.present
                    else "not present")
            lines.append(f"  L{s.level}[{s.index:3}] of table mfn "
                         f"{s.table_mfn:#x} = {s.entry:#018x}  {what}")
        if self.present:
            pfn = "not ours" if self.pfn is None else f"{self.pfn:#x}"
            lines.append(f"  machine address {self.machine_address:#x} "
                         f"(pfn {pfn})")
        return "\n".join(lines)


@dataclass(frozen=True)
class Table:
    """One page-table frame found in the tree."""

    mfn: int
    pfn: int
    level: int
    va: int               # first virtual address it covers
    entries: dict[int, int]


@dataclass(frozen=True)
class Mapping:
    """A run of pages mapped at consecutive va to consecutive mfns."""

    va: int
    mfn: int
    pages: int
    flags: int


@dataclass
class Snapshot:
    """The whole tree, read from machine memory (not through the kernel)."""

    root: int
    tables: list[Table]
    mappings: list[Mapping]

    @property
    def mapped_pages(self) -> int:
        return sum(m.pages for m in self.mappings)

    def tables_at(self, level: int) -> list[Table]:
        return [t for t in self.tables if t.level == level]


def _span(level: int) -> int:
    return 1 << (PAGE_SHIFT + 9 * level)


def read_tree(xen: XenMMU) -> Snapshot:
    """Every present table and leaf under Xen's root, in va order."""
    return tree_snapshot(xen.root, xen.table, lambda mfn: int(xen.m2p[mfn]))


def tree_snapshot(root: int, table_of: Callable[[int], np.ndarray],
                  owner_of: Callable[[int], int]) -> Snapshot:
    """Walk the tree under `root` (machine frame numbers): `table_of(mfn)`
    gives a table's 512 entries, `owner_of(mfn)` the pfn holding it. Only
    the guest's half of the top level is visited (the rest is Xen's)."""
    tables: list[Table] = []
    leaves: list[tuple[int, int]] = []

    def visit(mfn: int, level: int, va: int) -> None:
        table = table_of(mfn)
        present = [int(i) for i in np.flatnonzero(table & P)
                   if level < LEVELS or i < ENTRIES // 2]
        entries = {i: int(table[i]) for i in present}
        tables.append(Table(mfn, owner_of(mfn), level, va, entries))
        for i, entry in entries.items():
            child_va = va + i * _span(level - 1)
            if level == 1:
                leaves.append((child_va, entry))
            else:
                visit(entry_mfn(entry), level - 1, child_va)

    visit(root, LEVELS, 0)
    return Snapshot(root, tables, merge_runs(leaves))


def merge_runs(leaves: list[tuple[int, int]]) -> list[Mapping]:
    """Join (va, entry) leaves into runs of consecutive va and mfn."""
    runs: list[Mapping] = []
    for va, entry in leaves:
        mfn, flags = entry_mfn(entry), entry & ~ADDR_MASK
        last = runs[-1] if runs else None
        if (last and last.flags == flags
                and last.va + last.pages * PAGE_SIZE == va
                and last.mfn + last.pages == mfn):
            runs[-1] = Mapping(last.va, last.mfn, last.pages + 1, flags)
        else:
            runs.append(Mapping(va, mfn, 1, flags))
    return runs


# The most pages one map()/unmap()/count_mapped() may cover: 64 GiB.
MAX_COUNT = 1 << 24


class PageTables:
    """kernel/mm/pagetable.c on a machine of `nr_pages` pages.

    ``PageTables(2048)`` builds the machine and Xen's bootstrap tables and
    runs ``pt_init()``; nothing beyond Xen's initial mapping is mapped until
    ``map_all()`` or ``map()``. Refused updates raise :class:`XenRefused`;
    kernel misuse raises :class:`~minios_lab.errors.KernelPanic`.
    """

    def __init__(self, nr_pages: int = 2048, seed: int = 0, run: int = 16,
                 kernel_dir: Path | None = None):
        self.xen = XenMMU(nr_pages, seed, run)
        self.kernel = load("pagetable", kernel_dir=kernel_dir,
                           hypervisor=self.xen)
        self.ffi = self.kernel.ffi
        self.state = self.ffi.new("struct pagetables *")
        self._memory = self.ffi.from_buffer(self.xen.memory)
        self._m2p = self.ffi.from_buffer(self.xen.m2p)
        self.setup = self._make_setup()
        self._call(self.kernel.pt_init, self.setup)

    def _make_setup(self) -> Any:
        lay, s = self.xen.layout, self.ffi.new("struct pt_setup *")
        base = int(self.ffi.cast("uintptr_t", self._memory))
        s.pt_base, s.nr_pt_frames = lay.pt_base, lay.nr_pt_frames
        s.nr_pages = self.xen.nr_pages
        s.p2m = self.ffi.cast("unsigned long *", base + lay.mfn_list)
        s.m2p = self.ffi.cast("unsigned long *", self._m2p)
        s.m2p_entries = len(self.xen.m2p)
        s.mem_base = base
        return s

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        __tracebackhide__ = True  # IPython: show the cell, not this
        with self.kernel.lock:     # the kernel has one current set of tables
            self.kernel.pt_select(self.state)
            return function(*args)

    def _check(self, rc: int) -> int:
        if rc < 0:
            last = self.xen.rejections[-1] if self.xen.rejections else None
            raise XenRefused(rc, last.reason if last else "?")
        return rc

    # -- the kernel's API ----------------------------------------------------------
    def _count(self, count: int) -> int:
        """A page count the kernel can loop over in reasonable time."""
        return checked_int(count, "count", 0, MAX_COUNT, " pages")

    def map(self, va: int, pfn: int, count: int = 1, flags: int = DATA) -> None:
        __tracebackhide__ = True  # IPython: show the cell, not this
        count = self._count(count)
        self._check(self._call(self.kernel.pt_map, va, pfn, count, flags))

    def map_mfn(self, va: int, mfn: int, flags: int = DATA) -> None:
        self._check(self._call(self.kernel.pt_map_mfn, va, mfn, flags))

    def unmap(self, va: int, count: int = 1) -> int:
        """Unmap; returns how many of the pages were mapped."""
        return self._check(self._call(self.kernel.pt_unmap, va,
                                      self._count(count)))

    def map_all(self) -> int:
        """Map every page 1:1; returns the pages mapped afterwards."""
        return self._check(self._call(self.kernel.pt_map_all))

    def walk(self, va: int) -> Walk:
        w = self.ffi.new("struct pt_walk *")
        self._call(self.kernel.pt_walk, va, w)
        steps = tuple(Step(s.level, s.index, s.table_mfn, s.entry)
                      for s in w.step[0:w.depth])
        pfn = None if w.pfn == self.kernel.PT_NO_FRAME else w.pfn
        return Walk(va, steps, bool(w.present),
                    w.mfn if w.present else None, pfn if w.present else None)

    def count_mapped(self, va: int, count: int) -> int:
        return self._call(self.kernel.pt_count_mapped, va,
                          self._count(count))

    def summary(self) -> str:
        """The kernel's own report (pt_print_summary)."""
        start = len(self.xen.console)
        self._call(self.kernel.pt_print_summary)
        return "".join(self.xen.console[start:]).rstrip()

    # -- views ---------------------------------------------------------------------
    @property
    def layout(self) -> Bootstrap:
        return self.xen.layout

    @property
    def nr_pages(self) -> int:
        return self.xen.nr_pages

    def pfn_to_mfn(self, pfn: int) -> int:
        checked_int(pfn, "pfn", 0, self.xen.nr_pages - 1)
        return int(self.xen.p2m[pfn])

    def stats(self) -> dict[str, int]:
        s = self.state
        return dict(next_free_pfn=s.next_free_pfn,
                    first_free_pfn=s.boot.first_free_pfn,
                    new_l3=s.new_tables[3], new_l2=s.new_tables[2],
                    new_l1=s.new_tables[1], xen_mapped=s.xen_mapped,
                    mmu_update_calls=s.mmu_update_calls,
                    entries_written=s.entries_written,
                    va_update_calls=s.va_update_calls,
                    tlb_flushes=s.tlb_flushes, rejected=s.rejected)

    def snapshot(self) -> Snapshot:
        return read_tree(self.xen)

    def hypercall_log(self, start: int = 0) -> list[str]:
        """The hypercalls from number `start` on: name, answer, Xen's note
        (the raw arguments are host pointers, so they are left out)."""
        return [_log_line(c.name, c.result, c.note)
                for c in self.xen.calls[start:]]

    @property
    def rejections(self) -> list[Rejection]:
        return self.xen.rejections


def _log_line(name: str, result: int, note: str) -> str:
    answer = str(result) if result >= 0 else f"-{errno_name(result)}"
    return f"{name} = {answer}" + (f"  # {note}" if note else "")


# --- what the booted guest printed --------------------------------------------

_NUM = r"(0x[0-9a-f]+|\d+)"
_WALK_RE = re.compile(rf"walk {_NUM} from L4 mfn {_NUM}:(.*?)"
                      rf"(?: -> mfn {_NUM} pfn {_NUM} (rw|ro))?$")
_STEP_RE = re.compile(rf"L(\d)\[(\d+)\]={_NUM}")
_REPORT = {
    "bootstrap": rf"Xen's tables: pfn {_NUM}-{_NUM}, boot stack pfn {_NUM}, "
                 rf"mapping to pfn {_NUM}; first free pfn {_NUM}",
    "mapped": r"Xen had mapped (\d+) pages; pages mapped (-?\d+) of (\d+)",
    "checked": r"walked every page: (\d+) map a wrong frame, (\d+) table "
               r"frames are writable",
    "new_tables": rf"new tables L3 (\d+) L2 (\d+) L1 (\d+) in pfns "
                  rf"{_NUM}-{_NUM}",
    "refused": rf"map the L4 \(pfn {_NUM}\) writable: Xen says (-?\d+)",
    "pool": rf"mm: page allocator on pfns {_NUM}-{_NUM} \((\d+) pages",
    "summary": rf"mm: summary: pages mapped (\d+), pool pfns {_NUM}-{_NUM}, "
               r"allocator metadata (\d+) pages, free pages (\d+)",
}


def parse_guest_walk(line: str) -> Walk | None:
    """A Walk from a guest's "pagetables: walk ..." line, or None."""
    match = _WALK_RE.search(line.strip())
    if match is None:
        return None
    table, steps = int(match.group(2), 0), []
    for level, index, entry in _STEP_RE.findall(match.group(3)):
        steps.append(Step(int(level), int(index), table, int(entry, 0)))
        table = entry_mfn(int(entry, 0))
    present = match.group(4) is not None
    return Walk(int(match.group(1), 0), tuple(steps), present,
                int(match.group(4), 0) if present else None,
                int(match.group(5), 0) if present else None)


def parse_guest_report(lines: list[str]) -> dict[str, Any]:
    """The numbers of the guest's pagetables and mm sections.

    Keys are those of the report lines ("bootstrap", "mapped", "checked",
    "new_tables", "refused", "pool", "summary": tuples of ints), "walks"
    (Walk objects) and "chunks" ({order: free chunks}).
    """
    found: dict[str, Any] = {"walks": [], "chunks": {}}
    for line in lines:
        walk = parse_guest_walk(line)
        if walk is not None:
            found["walks"].append(walk)
        for key, pattern in _REPORT.items():
            match = re.search(pattern, line)
            if match:
                found[key] = tuple(int(g, 0) for g in match.groups())
        if "chunks per order:" in line:
            found["chunks"] = {int(k): int(n) for k, n in re.findall(
                r"(\d+):(\d+)", line.split("chunks per order:")[1])}
    return found
