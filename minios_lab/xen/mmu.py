"""Python as Xen's memory management for one PV domain (host build).

:class:`XenMMU` owns the "machine memory": one page-aligned host buffer
holding the domain's pages in pseudo-physical order, plus the owner of
every machine frame. The domain's frames are scattered among another
domain's (a seeded shuffle, :func:`shuffled_frames`), so ``mfn != pfn``.
It builds the page tables Xen's dom0 builder would (:func:`xen_bootstrap`
computes the layout) and serves ``mmu_update``, ``update_va_mapping`` and
``mmuext_op``, applying an update only if Xen 4.17 would, and answering
with Xen's error code otherwise; :attr:`XenMMU.rejections` keeps each
refusal with its reason.

What it checks, after xen/arch/x86/mm.c and pv/mm.c: the entry written
must be in a frame of the domain (else -EINVAL); a present entry may not
use the flags Xen reserves (-EINVAL; for a domain without I/O rights that
includes the cache bits of an L1 entry, and PSE/global above the L1); an L1
entry may only map a frame of the domain (-EBUSY for another domain's or
Xen's, -EPERM for one that is not RAM) and never a page-table frame
writable (-EBUSY); an upper entry may only point at a frame that is nothing
but a table of the level below (-EINVAL). A frame becomes a table only
while no entry maps it writable, after its own entries passed the same
checks, and stays one while entries reference it. Like Xen, it adds
_PAGE_USER to the entries of a 64-bit PV kernel (and bit 52,
_PAGE_GUEST_KERNEL, to its L1 entries). Not modelled: linear (recursive)
page tables, pinning, superpages, grant mappings, I/O memory.
"""
from __future__ import annotations

import errno
import mmap
import random
from collections import Counter
from dataclasses import dataclass

import numpy as np

from minios_lab.errors import checked_int
from minios_lab.xen.hypervisor import Hypervisor

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
ENTRIES = 512
LEVELS = 4
ADDR_MASK = 0x000FFFFFFFFFF000
INVALID = (1 << 64) - 1

P, RW, US, PWT, PCD, A, D, PSE, G = (1 << b for b in range(9))
GUEST_KERNEL = 1 << 52
NX = 1 << 63
DATA = P | RW | A | D            # PT_DATA_FLAGS of kernel/mm/pagetable.h
FLAG_NAMES = [(P, "P"), (RW, "RW"), (US, "US"), (PWT, "PWT"), (PCD, "PCD"),
              (A, "A"), (D, "D"), (PSE, "PSE"), (G, "G"),
              (GUEST_KERNEL, "GK"), (NX, "NX")]
L1_DISALLOW = PWT | PCD | PSE    # PSE is PAT in an L1 entry
UPPER_DISALLOW = PWT | PCD | PSE | G
XEN_L4_SLOTS = range(256, 272)
KERNEL_END = 0x40000             # about this kit's kernel image: 256 KiB


def flag_names(entry: int) -> list[str]:
    """The names of the flags set in a page-table entry."""
    return [name for bit, name in FLAG_NAMES if entry & bit]


def entry_mfn(entry: int) -> int:
    return (entry & ADDR_MASK) >> PAGE_SHIFT


def va_indexes(va: int) -> tuple[int, int, int, int, int]:
    """(L4, L3, L2, L1 index, offset) of a virtual address."""
    return (*((va >> (PAGE_SHIFT + 9 * (lvl - 1))) & 511
              for lvl in (4, 3, 2, 1)), va & (PAGE_SIZE - 1))


def errno_name(rc: int) -> str:
    return errno.errorcode.get(-rc, str(rc)) if rc < 0 else str(rc)


# --- Xen's domain builder ------------------------------------------------------

def _spans(start: int, end: int, shift: int) -> int:
    """How many aligned 2^shift regions [start, end) touches."""
    size = 1 << shift
    return ((end + size - 1) // size) - start // size


@dataclass(frozen=True)
class Bootstrap:
    """Where Xen's domain builder puts things, as start_info tells it."""

    nr_pages: int
    kernel_end: int
    mfn_list: int        # the p2m list
    start_info: int
    pt_base: int         # the L4, then the other tables
    nr_pt_frames: int
    stack: int           # one page of boot stack after the tables
    mapped_end: int      # Xen maps [0, mapped_end)

    @property
    def first_free_pfn(self) -> int:
        return (self.stack >> PAGE_SHIFT) + 1

    @property
    def mapped_pages(self) -> int:
        return self.mapped_end >> PAGE_SHIFT


def xen_bootstrap(nr_pages: int, kernel_end: int = KERNEL_END) -> Bootstrap:
    """The layout Xen 4.17's dom0 builder computes (pv/dom0_build.c).

    The tables must map themselves, so their number and the mapped size
    depend on each other; Xen tries 2, 3, ... frames until they suffice.
    """
    def up(x: int) -> int:
        return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)

    mfn_list = up(kernel_end)
    start_info = up(mfn_list + 8 * nr_pages)
    pt_base = start_info + PAGE_SIZE
    for frames in range(2, 1 << 20):
        stack = pt_base + frames * PAGE_SIZE
        end = -(-(stack + PAGE_SIZE) // (4 << 20)) * (4 << 20)
        if end - (stack + PAGE_SIZE) < (512 << 10):
            end += 4 << 20
        need = 1 + sum(_spans(0, end, s) for s in (39, 30, 21))
        if need <= frames:
            break
    if end > nr_pages * PAGE_SIZE:
        raise ValueError(f"{nr_pages} pages cannot hold Xen's initial "
                         f"mapping of {end >> 20} MiB")
    return Bootstrap(nr_pages, kernel_end, mfn_list, start_info, pt_base,
                     frames, stack, end)


# --- the machine -----------------------------------------------------------------

XEN, SELF, OTHER = 0, 1, 2       # owners of machine frames


@dataclass
class Rejection:
    """One update Xen refused: what was asked and why not."""

    call: str
    target: str
    value: int
    rc: int
    reason: str

    def __str__(self) -> str:
        return (f"{self.call}({self.target}, {self.value:#x}) = "
                f"-{errno_name(self.rc)}: {self.reason}")


class _Refused(Exception):
    def __init__(self, rc: int, reason: str):
        super().__init__(reason)
        self.rc, self.reason = rc, reason


def shuffled_frames(nr_pages: int, seed: int, run: int) -> np.ndarray:
    """The machine frames of a domain, in pfn order (its p2m).

    Machine frames 0 .. nr_pages-1 are Xen's; the next 2 * nr_pages are
    shared with another domain, handed out in runs of `run` frames taken
    in a seeded random order. So no pfn equals its mfn.
    """
    if run < 1 or nr_pages % run:
        raise ValueError(f"run {run} must divide nr_pages {nr_pages}")
    runs = list(range(2 * nr_pages // run))
    random.Random(seed).shuffle(runs)
    starts = nr_pages + np.array(runs[: nr_pages // run]) * run
    return (starts[:, None] + np.arange(run)[None, :]).reshape(-1)


MAX_PAGES = 1 << 20    # 4 GiB of guest memory, the most boot() accepts


class XenMMU(Hypervisor):
    """Python playing Xen's memory management for one PV domain."""

    def __init__(self, nr_pages: int, seed: int = 0, run: int = 16,
                 kernel_end: int = KERNEL_END):
        super().__init__()
        self.nr_pages = checked_int(nr_pages, "nr_pages", 1, MAX_PAGES,
                                    f" ({MAX_PAGES >> 8} MiB)")
        self.layout = xen_bootstrap(nr_pages, kernel_end)
        self.memory = mmap.mmap(-1, nr_pages * PAGE_SIZE)
        self.words = np.frombuffer(self.memory, dtype=np.uint64)
        self.owner = np.full(3 * nr_pages, OTHER, dtype=np.int8)
        self.owner[:nr_pages] = XEN
        self.m2p = np.full(3 * nr_pages, INVALID, dtype=np.uint64)
        self.p2m = self.words[self.layout.mfn_list // 8:][:nr_pages]
        self.p2m[:] = shuffled_frames(nr_pages, seed, run)
        self.owner[self.p2m] = SELF
        self.m2p[self.p2m] = np.arange(nr_pages, dtype=np.uint64)
        self.level: dict[int, int] = {}
        self.type_refs: Counter[int] = Counter()
        self.writable_refs: Counter[int] = Counter()
        self.rejections: list[Rejection] = []
        self.updates = 0
        self.tlb_flushes = 0
        self.root = self._build_bootstrap()

    # -- machine memory ---------------------------------------------------------
    def owns(self, mfn: int) -> bool:
        return 0 <= mfn < len(self.owner) and self.owner[mfn] == SELF

    def table(self, mfn: int) -> np.ndarray:
        """The 512 entries of frame mfn, a view into machine memory."""
        pfn = int(self.m2p[mfn])
        return self.words[pfn * ENTRIES:(pfn + 1) * ENTRIES]

    def read(self, mfn: int, index: int) -> int:
        return int(self.table(mfn)[index])

    def translate(self, va: int) -> tuple[int, int] | None:
        """(mfn, L1 entry) that va maps to, by Xen's own walk, or None."""
        mfn = self.root
        for level, index in zip((4, 3, 2, 1), va_indexes(va)):
            entry = self.read(mfn, index)
            if not entry & P:
                return None
            mfn = entry_mfn(entry)
        return mfn, entry

    # -- the tables Xen builds at start of day ---------------------------------
    def _build_bootstrap(self) -> int:
        """Map [0, mapped_end) as Xen's builder does; return the L4's mfn.

        Frames come from pt_base on: the L4, then for every 2 MiB an L1,
        preceded by a new L2 (each 1 GiB) and L3 (each 512 GiB) when needed,
        taken innermost first as Xen does. Page-table frames are mapped
        read-only.
        """
        lay = self.layout
        first = lay.pt_base >> PAGE_SHIFT
        frames = iter(range(first, first + lay.nr_pt_frames))
        root = int(self.p2m[next(frames)])
        current: dict[int, int] = {4: root}
        for pfn in range(lay.mapped_pages):
            for level in (1, 2, 3):
                if pfn % (1 << (9 * level)) == 0:
                    current[level] = int(self.p2m[next(frames)])
            if pfn % ENTRIES == 0:
                self._link_bootstrap(current, pfn << PAGE_SHIFT)
            flags = P | US | A | GUEST_KERNEL
            if not first <= pfn < first + lay.nr_pt_frames:
                flags |= RW | D
            self.table(current[1])[pfn % ENTRIES] = \
                int(self.p2m[pfn]) << PAGE_SHIFT | flags
        self._promote(root, 4)       # type and count, exactly as Xen would
        self.type_refs[root] += 1    # CR3 holds the root
        return root

    def _link_bootstrap(self, current: dict[int, int], va: int) -> None:
        indexes = va_indexes(va)
        for level in (3, 2, 1):
            self.table(current[level + 1])[indexes[3 - level]] = \
                current[level] << PAGE_SHIFT | P | RW | US | A | D

    # -- Xen's checks ----------------------------------------------------------
    def _check_flags(self, level: int, entry: int) -> None:
        bad = entry & (L1_DISALLOW if level == 1 else UPPER_DISALLOW)
        if bad:
            raise _Refused(-errno.EINVAL, f"bad L{level} flags "
                           f"{' '.join(flag_names(bad))}")

    def _get_leaf(self, entry: int) -> None:
        mfn = entry_mfn(entry)
        if mfn >= len(self.owner):
            raise _Refused(-errno.EPERM, f"mfn {mfn:#x} is not RAM "
                           "(I/O memory needs privileges)")
        if self.owner[mfn] != SELF:
            who = "Xen" if self.owner[mfn] == XEN else "another domain"
            raise _Refused(-errno.EBUSY, f"mfn {mfn:#x} belongs to {who}")
        if entry & RW and mfn in self.level:
            raise _Refused(-errno.EBUSY, f"writable mapping of mfn {mfn:#x}, "
                           f"an L{self.level[mfn]} page table")
        if entry & RW:
            self.writable_refs[mfn] += 1

    def _get_table(self, mfn: int, level: int) -> None:
        if not self.owns(mfn):
            raise _Refused(-errno.EINVAL, f"table mfn {mfn:#x} is not the "
                           "domain's")
        if self.writable_refs[mfn]:
            raise _Refused(-errno.EINVAL, f"mfn {mfn:#x} is mapped writable "
                           f"({self.writable_refs[mfn]}x): it cannot become "
                           f"an L{level} table")
        current = self.level.get(mfn)
        if current is not None and current != level:
            raise _Refused(-errno.EINVAL, f"mfn {mfn:#x} is an L{current} "
                           f"table, not an L{level}")
        if current is None:
            try:
                self._promote(mfn, level)
            except _Refused as inner:
                raise _Refused(-errno.EINVAL, f"new L{level} table mfn "
                               f"{mfn:#x}: {inner.reason}") from None
        self.type_refs[mfn] += 1

    def _get(self, level: int, entry: int) -> None:
        self._check_flags(level, entry)
        if level == 1:
            self._get_leaf(entry)
        else:
            self._get_table(entry_mfn(entry), level - 1)

    def _put(self, level: int, entry: int) -> None:
        mfn = entry_mfn(entry)
        if level == 1:
            if entry & RW and self.owns(mfn):
                self.writable_refs[mfn] -= 1
            return
        self.type_refs[mfn] -= 1
        if self.type_refs[mfn] == 0:       # no longer a table: untype it
            self._demote(mfn, level - 1)

    def _promote(self, mfn: int, level: int) -> None:
        """Validate every present entry of a frame becoming a table."""
        table, taken = self.table(mfn), []
        try:
            for index in np.flatnonzero(table & P):
                self._get(level, int(table[index]))
                taken.append(int(index))
        except _Refused as refused:
            for index in taken:
                self._put(level, int(table[index]))
            raise _Refused(refused.rc, f"entry {len(taken)}: "
                           f"{refused.reason}") from None
        for index in taken:
            table[index] = _adjust(level, int(table[index]))
        self.level[mfn] = level

    def _demote(self, mfn: int, level: int) -> None:
        del self.level[mfn]
        table = self.table(mfn)
        for index in np.flatnonzero(table & P):
            self._put(level, int(table[index]))

    def set_entry(self, mfn: int, index: int, value: int) -> None:
        """Write one entry as Xen's mod_lN_entry() would, or raise."""
        level = self.level.get(mfn)
        if level is None:            # not a table: an ordinary write
            self.table(mfn)[index] = value
            return
        if level == 4 and index in XEN_L4_SLOTS:
            raise _Refused(-errno.EINVAL, f"L4 slot {index} is Xen's")
        old = self.read(mfn, index)
        if value & P:
            self._get(level, value)
            value = _adjust(level, value)
        self.table(mfn)[index] = value
        if old & P:
            self._put(level, old)
        self.updates += 1

    # -- hypercalls --------------------------------------------------------------
    def _refuse(self, call: str, target: str, value: int,
                refused: _Refused) -> int:
        self.rejections.append(Rejection(call, target, value, refused.rc,
                                         refused.reason))
        self.note(f"refused: {refused.reason}")
        return refused.rc

    def _normal_update(self, ptr: int, value: int) -> None:
        cmd, mfn = ptr & 3, ptr >> PAGE_SHIFT
        if cmd != self.lib.MMU_NORMAL_PT_UPDATE:
            raise _Refused(-errno.ENOSYS, f"command {cmd} is not served here")
        if not self.owns(mfn):
            raise _Refused(-errno.EINVAL, f"frame {mfn:#x} of the entry is "
                           "not the domain's")
        self.set_entry(mfn, (ptr & (PAGE_SIZE - 1)) >> 3, value)

    def do_mmu_update(self, reqs: int, count: int, done: int, domid: int,
                      *_: int) -> int:
        req = self.guest_ptr(reqs, "mmu_update_t", count)
        rc, applied = 0, 0
        if domid != self.lib.DOMID_SELF:
            rc = self._refuse("mmu_update", "-", 0, _Refused(
                -errno.EPERM, f"domain {domid:#x}: only DOMID_SELF here"))
        for i in range(count if rc == 0 else 0):
            try:
                self._normal_update(req[i].ptr, req[i].val)
            except _Refused as refused:
                rc = self._refuse("mmu_update", f"ma {req[i].ptr:#x}",
                                  req[i].val, refused)
                break
            applied += 1
        if done:
            self.guest_ptr(done, "unsigned int", write=True)[0] = applied
        if rc == 0:
            self.note(f"{applied} entries written")
        return rc

    def do_update_va_mapping(self, va: int, value: int, flags: int,
                             *_: int) -> int:
        try:
            l1 = self._l1_of(va)
            self.set_entry(l1, va_indexes(va)[3], value)
        except _Refused as refused:
            return self._refuse("update_va_mapping", f"va {va:#x}", value,
                                refused)
        self.tlb_flushes += (flags & self.lib.UVMF_FLUSHTYPE_MASK) != 0
        self.note(f"va {va:#x} -> {' '.join(flag_names(value))}")
        return 0

    def _l1_of(self, va: int) -> int:
        mfn = self.root
        for index in va_indexes(va)[:3]:
            entry = self.read(mfn, index)
            if not entry & P:
                raise _Refused(-errno.EINVAL, f"no L1 table maps va {va:#x}")
            mfn = entry_mfn(entry)
        if self.level.get(mfn) != 1:
            raise _Refused(-errno.EINVAL, f"no L1 table maps va {va:#x}")
        return mfn

    def do_mmuext_op(self, ops: int, count: int, done: int, domid: int,
                     *_: int) -> int:
        op = self.guest_ptr(ops, "struct mmuext_op", count)
        flushes = (self.lib.MMUEXT_TLB_FLUSH_LOCAL,
                   self.lib.MMUEXT_INVLPG_LOCAL)
        for i in range(count):
            if op[i].cmd not in flushes:
                return -errno.ENOSYS
            self.tlb_flushes += 1
        if done:
            self.guest_ptr(done, "unsigned int", write=True)[0] = count
        return 0


def _adjust(level: int, entry: int) -> int:
    """What Xen writes for a 64-bit PV kernel's entry (adjust_guest_lNe)."""
    if level > 1:
        return entry | US
    if not entry & US:
        return entry | US | GUEST_KERNEL
    return entry if entry & GUEST_KERNEL else entry | G
