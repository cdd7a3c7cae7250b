# %% [markdown]
# # 05 · Page tables
#
# **What you will do.** Split virtual addresses into their table indexes,
# look at the page tables Xen built for the guest, run the kernel's real
# C to extend them until all memory is mapped, walk addresses level by
# level, and try the updates Xen must refuse. Then boot the guest and see
# the same code do it on real Xen.
#
# **What you will learn.** How x86_64 translates an address through four
# tables; why a PV guest's entries hold *machine* frames; why it may read
# its page tables but never write them; how it makes a new table
# (read-only first, then linked in); what Xen checks on every update.
#
# **What you need.** Chapters 01 (start of day: `start_info`, pfn and mfn)
# and 03 (the page allocator).
#
# ## An address in four pieces
#
# On x86_64 a virtual address below 2^47 is cut into four 9-bit indexes
# and a 12-bit offset. The L4 index picks one of the 512 entries of the
# root table (its machine address is in CR3); that entry names an L3
# table, whose entry names an L2, then an L1, whose entry names the page.

# %%
from minios_lab.notebook.source import file_comment, show
from minios_lab.viz import pagetable as vp
fig = vp.va_split(0x8000403123)

# %% [markdown]
# The kernel computes an index with one shift and one mask:

# %%
show("include/minios/pagetable.h", "pt_index")

# %% [markdown]
# An entry is 8 bytes: the frame number in bits 51..12, flags around it.
# The flags that matter here: P (present), RW (writable), US (user), A and
# D (accessed, dirty), and NX (no execute, bit 63).
#
# ## The tables Xen built
#
# A PV guest has no firmware. Xen's domain builder loads the kernel, then
# lays out, page after page: the p2m list (`mfn_list`), `start_info`, the
# page tables (`pt_base`, `nr_pt_frames`) and one page of stack. It maps
# all of that, rounded up to a 4 MiB boundary with at least 512 KiB to
# spare, and nothing else. From `pt_base` and `nr_pt_frames` alone the
# kernel knows where the free pages begin and how far Xen's mapping goes:

# %%
show("mm/pagetable_boot.c", "pt_bootstrap_layout")

# %% [markdown]
# In this notebook Python plays Xen on a pretend machine of 16 MiB
# (4096 pages). `PageTables` builds the machine memory, hands the domain
# machine frames scattered among another domain's, builds the bootstrap
# tables exactly as Xen's builder does, and starts the kernel's
# `pt_init()` on them.

# %%
from minios_lab.pagetable import PageTables
pt = PageTables(4096, seed=1)
pt.layout

# %%
fig = vp.tree(pt.snapshot(), title="Xen's bootstrap tables: 4 MiB mapped")

# %% [markdown]
# One table of each level, and two L1 tables: each L1 maps 2 MiB. The
# pseudo-physical pages (pfns) are the domain's own numbering; each is
# backed by a machine frame (mfn) somewhere else. The kernel's own walk of
# address 0:

# %%
print(pt.walk(0))

# %% [markdown]
# Two surprises, both Xen's doing. The entries have US set although the
# kernel did not ask for it: a 64-bit PV kernel runs in ring 3, so Xen
# makes its mappings user-accessible (and marks the L1 entries with bit
# 52, "GK", to tell them apart from real user mappings). And the page that
# holds a page table is mapped **read-only**:

# %%
print(pt.walk(pt.layout.pt_base))

# %% [markdown]
# ## Never write a page table
#
# The guest runs on the real MMU, so its tables hold real machine frames.
# If it could write them, it could map any frame of the machine. So Xen
# keeps every page-table frame read-only for the guest and takes updates
# as requests: `HYPERVISOR_mmu_update` gets a list of (machine address of
# the entry, new value) pairs and checks each before writing it. The
# kernel queues its requests and sends them 32 at a time:

# %%
show("mm/pagetable.c", "queue_update")

# %% [markdown]
# How the kernel reads its tables without knowing them by pfn: an entry
# names an mfn, Xen's read-only m2p table turns it back into a pfn, and the
# kernel sees page pfn at `mem_base + (pfn << 12)`: `mem_base` is 0 in the
# guest (it is linked at 0) and a host buffer here. That is the only
# difference between the two builds.

# %%
show("mm/pagetable.c", "table_at")

# %% [markdown]
# ## Mapping all memory
#
# `pt_map_all()` maps every page at virtual = pfn << 12, keeping Xen's own
# mappings. Beyond the first 4 MiB it needs new L1 tables. A new table is
# a free page that must first be zeroed (it is still writable), then
# **remapped read-only**, and only then linked into its parent: Xen will
# not let a frame become a table while anything maps it writable.

# %%
show("mm/pagetable.c", "new_table")

# %%
pt.map_all()

# %%
print(pt.summary())
print(*pt.hypercall_log()[:5], sep="\n")

# %% [markdown]
# Six new L1 tables (16 MiB need eight, Xen made two), each one an
# `update_va_mapping` and a one-entry `mmu_update`; then 3072 leaf entries
# in batches of 32. Xen never needs a "pin" here: a frame is typed as an
# L1 table when the L2 entry that names it is written, and stays one while
# that entry exists.

# %%
fig = vp.tree(pt.snapshot())

# %% [markdown]
# The virtual-to-machine map: virtual pages in order, machine frames all
# over the place, in runs (Xen hands out memory in chunks; here runs of 16
# frames). On the left, all 4096 pages: at that scale a run of 16 is a
# dot. On the right, the first 128 virtual pages: each run is a segment
# 16 pages long, at the height of its machine frames, and the red
# segments are the page-table frames, mapped read-only.

# %%
snap = pt.snapshot()
fig = vp.v2m(vp.in_range(snap.mappings, 0, 4096 << 12), zoom_pages=128)

# %% [markdown]
# ## A walk, level by level
#
# Map four pages a second time, at 512 GiB: L4 slot 1 is empty, so the
# kernel makes one new table of each level. Then follow one address down:

# %%
pt.map(1 << 39, 3000, 4)
walk = pt.walk((1 << 39) + 0x2345)
print(walk)

# %%
fig = vp.walk_figure(walk)

# %% [markdown]
# The kernel's walk, the C that printed it:

# %%
show("mm/pagetable.c", "pt_walk")

# %% [markdown]
# ## What Xen refuses
#
# Python checks each update the way Xen 4.17 does (`xen/arch/x86/mm.c`)
# and answers with Xen's error codes. A writable mapping of a page-table
# frame would let the guest write its tables behind Xen's back:

# %%
from minios_lab.pagetable import XenRefused, DATA, RW, PWT
l4_pfn = pt.layout.pt_base >> 12
try:
    pt.map(1 << 39, l4_pfn)
except XenRefused as refused:
    print(refused)

# %% [markdown]
# Read-only, the same frame may be mapped anywhere:

# %%
pt.map(1 << 39, l4_pfn, flags=DATA & ~RW)
print(pt.walk(1 << 39).steps[-1].flags)

# %% [markdown]
# A frame of another domain, a frame that is not RAM, and a caching flag
# that only domains with I/O rights may set:

# %%
import numpy as np
from minios_lab.xen.mmu import OTHER
foreign = int(np.flatnonzero(pt.xen.owner == OTHER)[0])
for attempt in (lambda: pt.map_mfn(1 << 39, foreign),
                lambda: pt.map_mfn(1 << 39, 1 << 30),
                lambda: pt.map(1 << 39, 3000, flags=DATA | PWT)):
    try:
        attempt()
    except XenRefused as refused:
        print(refused)

# %% [markdown]
# And why `new_table()` remaps a frame read-only before linking it: give
# the next free frame a second, writable mapping, then ask for a mapping
# that needs a new table.

# %%
frame = pt.stats()["next_free_pfn"]
pt.map((1 << 39) + 0x10000, frame)
try:
    pt.map(1 << 40, 3100)
except XenRefused as refused:
    print(refused)

# %% [markdown]
# Every refusal is on record, as Xen would log it:

# %%
for rejection in pt.rejections:
    print(rejection)

# %% [markdown]
# ## Unmapping
#
# Unmapping writes a zero entry, and since the entry was present the TLB
# may still hold it: the kernel flushes it afterwards with
# `HYPERVISOR_mmuext_op(MMUEXT_TLB_FLUSH_LOCAL)`.

# %%
start = len(pt.xen.calls)
print(pt.unmap(1 << 39, 32), "pages were mapped")
print(*pt.hypercall_log(start), sep="\n")
print(pt.walk((1 << 39) + 0x2345).present)

# %% [markdown]
# Misuse of the API is a kernel bug, not a request to Xen: the kernel
# panics, and in the host build the panic arrives as `KernelPanic`.

# %% tags=["raises-exception"]
pt.map(0x5000, 3000)

# %% [markdown]
# ## The real thing
#
# The booted guest does all this on real Xen 4.17, as its `pagetables`
# chapter, then hands the free pages to the page allocator in its `mm`
# chapter (self-tests of chapters 03 and 04 included).

# %%
from minios_lab.guest.boot import boot
from minios_lab.pagetable import parse_guest_report
result = boot("", memory_mb=64)
print({name: result.chapters[name] for name in ("pagetables", "mm")})

# %% tags=["nbval-ignore-output"]
print("\n".join(result.section("pagetables")))

# %% [markdown]
# (The frame numbers depend on the size of the kernel image and on Xen,
# so the lines above change from build to build; the facts below do not.)

# %%
import errno
real = parse_guest_report(result.section("pagetables") + result.section("mm"))
xen_mapped, mapped, total = real["mapped"]
l3, l2, l1, _, _ = real["new_tables"]
print(f"Xen had mapped {xen_mapped} pages; now {mapped} of {total}")
print(f"new tables: {l3} L3, {l2} L2, {l1} L1")
print("a writable L4 mapping:", errno.errorcode[-real["refused"][1]])
mapped_, start_, end_, meta, free = real["summary"]
print("page allocator: every page above the kernel's area is in the pool:",
      end_ == total)
print("free pages = pool pages - the allocator's own pages:",
      free == end_ - start_ - meta)

# %% [markdown]
# The alias walk the guest printed, drawn from its console line:

# %%
alias = next(w for w in real["walks"] if w.va == 1 << 39 and w.present)
fig = vp.walk_figure(alias)

# %% [markdown]
# ## Exercises
#
# 1. **Indexes by hand.** Write `split(va)` returning the tuple (L4, L3,
#    L2, L1 index, offset) with shifts and masks only.
# 2. **Tables for 256 MiB.** How many new L1 tables does the kernel make
#    to map a 256 MiB guest (65536 pages), if Xen's bootstrap area is
#    4 MiB? Store the number in `new_l1_256` and check it by running
#    `PageTables(65536).map_all()`.
# 3. **A machine address.** Map pfn 2500 read-only at virtual
#    `0x7f0000000000` in `pt`. Store in `ma` the machine address of byte
#    0x123 of that page, computed from `pt.pfn_to_mfn()`, and compare with
#    the kernel's walk.
# 4. *(C)* In `kernel/mm/pagetable.c`, `pt_unmap()` asks for a TLB flush
#    when it cleared an entry. What could go wrong without it? Why does
#    `pt_map()` of a page that was not mapped need none?
#
# <details><summary>Hint 1</summary>
#
# Each level takes 9 bits: the L1 index is `(va >> 12) & 511`, the L2 index `(va >> 21) & 511`, and so on; the offset is the low 12 bits.
# </details>
#
# <details><summary>Hint 2</summary>
#
# One L1 table maps 512 pages (2 MiB). Xen's own tables already cover the first 4 MiB.
# </details>
#
# <details><summary>Hint 3</summary>
#
# The machine address is `mfn << 12 | offset`, with `mfn = pt.pfn_to_mfn(pfn)`; `pt.walk(va).machine_address` is the kernel's answer.
# </details>

# %%
from minios_lab.pagetable import va_indexes
### BEGIN SOLUTION
def split(va):
    return ((va >> 39) & 511, (va >> 30) & 511, (va >> 21) & 511,
            (va >> 12) & 511, va & 0xFFF)
### END SOLUTION
for va in (0, 0x8000403123, 0x7FFFFFFFFFFF, 0x123456789ABC):
    assert split(va) == va_indexes(va), \
        f"split({va:#x}) = {split(va)}, the kernel says {va_indexes(va)}"
print("check passed")

# %%
### BEGIN SOLUTION
new_l1_256 = 65536 // 512 - (4 << 20) // (2 << 20)
### END SOLUTION
big = PageTables(65536)
big.map_all()
assert new_l1_256 == big.stats()["new_l1"], \
    f"{new_l1_256} is not what the kernel made: run big.stats() to see"
print("check passed")

# %%
### BEGIN SOLUTION
pt.map(0x7F0000000000, 2500, flags=DATA & ~RW)
ma = pt.pfn_to_mfn(2500) * 4096 + 0x123
### END SOLUTION
walked = pt.walk(0x7F0000000123).machine_address
assert ma == walked, f"ma = {ma:#x}, the kernel's walk gives {walked:#x}"
print("check passed")

# %% [markdown]
# <details><summary>Answer (4)</summary>
#
# The TLB caches translations. After `pt_unmap()` clears an entry, the CPU
# may still hold the old translation and go on reaching the old machine
# frame through the virtual address: a use after free, if that frame is
# given away or used as something else, and the guest would not even
# fault on its own bug. Flushing (here `MMUEXT_TLB_FLUSH_LOCAL`, once at
# the end of a batch) drops those stale entries. A page that was not
# mapped has no translation in the TLB (x86 does not cache "not present"
# entries), so the first access after `pt_map()` walks the new tables
# anyway: no flush is needed, which is why the kernel flushes only when a
# *present* entry changed.
# </details>

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/mm/pagetable.c`, are `queue_update`, `new_table`, `pt_walk`:
# the code between `BEGIN` and `END` markers that your own copy (made by
# `minios-lab start`, see chapter 00) leaves for you to write. For each
# region, its task comes first: what to write, the difficulty, the points
# and what the grader checks. The cell after it runs that region's graded
# checks (the ones `make grade` runs) on your kernel, host build and real
# boot, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("queue_update")

# %%
check_region("queue_update")

# %%
show_task("new_table")

# %%
check_region("new_table")

# %%
show_task("pt_walk")

# %%
check_region("pt_walk")

# %% [markdown]
# ## Further reading
#
# * `xen/xen.h`: the comment above `MMU_NORMAL_PT_UPDATE` (the rules for
#   building page tables) and `struct mmuext_op`.
# * The Xen Project wiki, "X86 Paravirtualised Memory Management": page
#   types, validation, the m2p and p2m tables.
# * Intel SDM volume 3, chapter 4 (paging): the entry format.

# %% [markdown]
# ## What you learned
#
# * x86_64 translates an address through four tables (L4, L3, L2, L1),
#   9 bits of index each, and a 12-bit offset.
# * In a PV guest the entries hold *machine* frames, translated from pfns
#   through the p2m list.
# * The guest may read its page tables but never write them: every update
#   is a `mmu_update` hypercall that Xen validates, and a new table is made
#   read-only before it is linked in.
# * Xen refuses a writable mapping of a page table, a frame the guest does
#   not own, and more; the guest sees an error code, not a crash.
# * Unmapping a present entry needs a TLB flush; mapping a new one does
#   not.
#
# Chapter 06 builds on this: a page fault is the exception a bad address
# raises, and the guest must handle it without an IDT of its own.
#
# Next: [06 · Exceptions](06-exceptions.ipynb).
