# %% [markdown]
# # 03 · The page allocator
#
# **What you will do.** Give the kernel's page allocator a pool of pages,
# allocate and free chunks of memory, watch chunks split in two and merge
# back, draw the whole pool, break the rules on purpose and see the kernel
# catch you, and measure how the cost grows with the size of memory.
#
# **What you will learn.** How a binary *buddy* allocator works; why its
# bookkeeping can live inside the free memory itself; what invariants keep
# it correct and how `mm_check()` proves them; why an allocation costs
# O(log pages).
#
# **What you need.** Chapter 01 (pages, pfns) and chapter 02 (how kernel C
# runs in this notebook, `KernelPanic`).
#
# ## Pages, chunks and buddies
#
# Everything the kernel will build (page tables, xmalloc's heap, its
# stacks) is made of 4 KiB pages, so the first allocator a kernel needs
# hands out pages. Ours, like Mini-OS's, hands out *chunks* of 2^order
# contiguous pages, each aligned to its own size: a chunk of order k starts
# at a page frame number (pfn) that is a multiple of 2^k.
#
# Two chunks of order k that together make an aligned chunk of order k+1 are
# *buddies*. The buddy of the chunk at `pfn` is at `pfn ^ 2**k`: flipping
# bit k moves to the other half of the parent. To allocate a page from a
# chunk of 8, the allocator cuts it into 4+4, one 4 into 2+2, one 2 into
# 1+1, and keeps the halves it did not need on its free lists. When a chunk
# is freed and its buddy is free too, the two merge back, again and again.
#
# Two structures record the state. A **bitmap** has one bit per page (1:
# allocated). **Free lists**, one per order, hold the free chunks; each free
# chunk *is* its list node, the header sits in its first bytes:

# %%
from minios_lab.notebook.source import show
show("include/minios/page_pool.h", "free_chunk")

# %% [markdown]
# The allocator's own state sits at the start of the memory it is given:
# list anchors, counters, then the bitmap. The comment above it lists the
# invariants that every function must keep:

# %%
show("include/minios/page_pool.h", "page_pool")

# %% [markdown]
# ## A pool of 64 pages
#
# In this notebook Python plays the machine: `PageAllocator(64, reserved=3)`
# maps 64 pages of host memory as the guest's "physical memory", keeps the
# first 3 for itself (think of them as the kernel image) and calls the
# kernel's `init_page_allocator(min, max)` on the other 61. pfns count from
# the first page.

# %%
from minios_lab.mm import PageAllocator
from minios_lab.viz import mm as viz_mm
pa = PageAllocator(64, reserved=3)
pa

# %% [markdown]
# 60 free, not 61: the header and the 61-bit bitmap took page 3. The
# remaining pages 4..63 were freed as the largest aligned chunks that fit,
# 4 + 8 + 16 + 32 pages:

# %%
snap = pa.snapshot()
{order: pfns for order, pfns in snap.free_chunks.items() if pfns}

# %%
fig = viz_mm.memory_map(snap, title="64 pages after init_page_allocator()")

# %% [markdown]
# ## Allocating splits
#
# `alloc_pages(order)` looks for the smallest non-empty list of order >=
# `order`, takes its first chunk and splits it down to size:

# %%
show("mm/page_alloc.c", "alloc_pages")

# %%
show("mm/page_alloc.c", "split_chunk")

# %% [markdown]
# Each halving puts the *upper* half back on the list one order below, so
# the pages handed out come from the low end of the chunk. Let us follow a
# few operations on a pool of 32 pages (page 0 holds the bitmap), one
# picture per step. `A = alloc_pages(0)` finds a single page at pfn 1; `B =
# alloc_pages(1)` takes the 2-page chunk at 2; `C = alloc_pages(0)` must
# split the 4-page chunk at 4 twice.

# %%
from minios_lab.mm import step_through
steps = step_through(PageAllocator(32), [
    ("alloc", "A", 0), ("alloc", "B", 1), ("alloc", "C", 0),
    ("free", "A"), ("free", "C"), ("free", "B")])
fig = viz_mm.step_through(steps)

# %% [markdown]
# ## Freeing merges
#
# `free_pages(pointer, order)` first makes sure it is given a real,
# allocated chunk (more on that below), marks its pages free, then merges:

# %%
show("mm/page_alloc.c", "free_pages")

# %%
show("mm/page_alloc.c", "merge_with_buddies")

# %% [markdown]
# How does it know the buddy is a *whole* free chunk of the same order? Its
# first page is free in the bitmap, so a free chunk starts there (a free
# chunk that started earlier would contain the pages being freed, which
# were allocated until now); the header in that page gives its order.
#
# In the step-through, freeing `C` (pfn 4) merged it with its buddy 5, then
# the pair 4..5 with 6..7: the 4-page chunk was whole again. Freeing `A`
# and `B` merged nothing: their buddies contain page 0, the allocator's
# own, which is never free. Each split was undone by a merge:

# %%
steps[-1].snapshot.stats

# %% [markdown]
# ## The buddy tree
#
# Splitting and merging walk a binary tree: the root is the whole pool,
# each chunk's two halves are its children. Leaves are free chunks
# (coloured by order) and allocations (red); white boxes are chunks split
# in two; grey, the reserved pages and the bitmap.

# %%
pa = PageAllocator(64, reserved=3)
taken = [pa.alloc(order) for order in (0, 2, 0, 3, 1)]
taken

# %%
fig = viz_mm.buddy_tree(pa.snapshot(), title="after alloc 0, 2, 0, 3, 1")

# %%
fig = viz_mm.free_list_lengths(pa.snapshot())

# %% [markdown]
# ## Proving the invariants: `mm_check()`
#
# Every rule written above `struct page_pool` is checked by `mm_check()`,
# from two sides: a walk over the bitmap in address order (every free page
# must begin a valid chunk, aligned, entirely free, listed, with no free
# buddy of its own order), and a walk along each free list (each node must
# be such a chunk, and the lists must not loop). Their counts must agree
# with each other and with the counters.

# %%
show("mm/page_check.c", "mm_check")

# %%
pa.check()
print("mm_check() passed;", pa.free_pages_count, "pages free")

# %% [markdown]
# ## Breaking the rules
#
# A kernel has no memory protection from itself, so `free_pages()` checks
# what it is given before it changes anything:

# %%
show("mm/page_alloc.c", "check_freeable")

# %% [markdown]
# Each mistake below panics; in the host build the panic is a Python
# `KernelPanic`, and `panic_message()` shows its text. (The addresses are
# where Python mapped this pool in the host's memory.)

# %%
from minios_lab.mm import panic_message
page = pa.alloc(0)
pa.free(page, 0)          # page is free now: freeing it again is a bug

# %%
mistakes = {
    "double free": lambda: pa.free(page, 0),
    "not aligned to its order": lambda: pa.free(taken[1] + 1, 1),
    "not page aligned": lambda: pa.free_address(pa.address(taken[0]) + 8),
    "order out of range": lambda: pa.alloc(21),
    "outside the pool": lambda: pa.free(70, 0),
    "the allocator's own page": lambda: pa.free(3, 0),
}
for name, mistake in mistakes.items():
    print(f"{name:25} -> {panic_message(mistake)}")

# %% [markdown]
# The kernel refused each call before touching its state, so the pool is
# still sound:

# %%
pa.check()
pa

# %% [markdown]
# Some mistakes cannot be refused on the spot. Writing into memory after
# freeing it (a *use after free*) goes unnoticed until something reads what
# was overwritten: here, the header of the free chunk. `mm_check()` finds
# it:

# %%
page = pa.alloc(2)
pa.free(page, 2)
pa.page(page)[16:24] = b"oops!..."   # a stale pointer writes 8 bytes
panic_message(pa.check)

# %% [markdown]
# ## A random workload
#
# Real workloads allocate and free in no particular order. Free memory then
# ends up in pieces: enough pages may be free while no large chunk is.
# `page_workload()` runs a seeded random mix of `alloc_pages()` (orders 0 to
# 3) and `free_pages()` and records, after each step, the pages in use, the
# pages free, and the largest free chunk.

# %%
from minios_lab.mm import page_workload
pa = PageAllocator(256)
points = page_workload(pa, steps=400, seed=1)
fig = viz_mm.fragmentation(points, "pages")

# %% [markdown]
# The lower panel measures fragmentation with one number, **1 − largest
# free chunk / free pages**. It is 0 when all free pages form one chunk,
# so that any request the free total allows can be met; it tends to 1 when
# the free pages are scattered in many small chunks, so that a large
# request fails although plenty is free. With 100 pages free and the
# largest free chunk 16 pages, it is 1 − 16/100 = 0.84: an order-5 request
# (32 pages) fails. It starts at 0.5 here, not 0: the allocator's own page
# at pfn 0 splits the pool, and the largest chunk is 128 of 255 free
# pages. The measure is one of several in use; it says nothing of *where*
# the pieces are, which the map below shows.

# %%
pa.check()
fig = viz_mm.memory_map(pa.snapshot(), title="after 400 random operations")

# %% [markdown]
# ## Scale and cost
#
# The bitmap grows with the memory, and lives in it: for 2^20 pages (4 GiB)
# it takes 128 KiB, 33 pages with the header. The host maps that much
# memory but only the pages the kernel writes are ever backed.

# %%
huge = PageAllocator(1 << 20)
huge.check()
huge.stats().meta_pages, huge.free_pages_count

# %% [markdown]
# What does an allocation cost? Its worst case is a pool whose only free
# chunk is its largest: every `alloc_pages(0)` splits it down to one page,
# every `free_pages()` merges it all the way back, log2(pages) - 1 times
# each. `bench_alloc_free()` builds such pools of 2^10 .. 2^20 pages and
# times the C loop `mm_bench_alloc_free()` (kernel/mm/selftest.c) from
# Python. On a log axis a straight line is cost proportional to log(pages).
# (Timings vary from machine to machine and run to run.)

# %% tags=["nbval-ignore-output"]
from minios_lab.mm import bench_alloc_free
fig = viz_mm.bench_curve(bench_alloc_free(iterations=20000, repeats=3))

# %% [markdown]
# ## The self-test the guest runs
#
# The booted guest cannot plot; it runs `mm_selftest()` on its real memory
# instead: phases of allocations in several orders, `mm_check()` after
# each, a drain until not one page is left, and at the end the pool must
# be back where it started, every buddy merged. Here it is on a host pool:

# %%
rc, text = PageAllocator(4096, reserved=16).selftest()
print(text)

# %% [markdown]
# ## Exercises
#
# 1. **Fragment on purpose.** With `PageAllocator(64)`, allocate and free so
#    that at least 16 pages are free but `alloc_pages(3)` (8 pages) fails.
#    Leave the allocator in `fragmented`.
# 2. **The wrong order.** The bitmap does not know with which order a chunk
#    was allocated. In a `PageAllocator(32)`, allocate two single pages `x`
#    and `y` that are buddies, free `x` as if it were a 2-page chunk (the
#    kernel accepts it: why?), then free `y`. Store the `KernelPanic` the
#    kernel raises in `caught`. (`pool.free()` refuses a wrong order in
#    Python, with a `FreeError`, before the kernel sees it; to hand the
#    kernel the wrong order, call `pool.free_address(pool.address(x), 1)`,
#    which checks nothing.)
# 3. **Find unmerged buddies.** Write `unmerged(snap)`, returning the list
#    of `(pfn, buddy, order)` for every free chunk whose buddy is also a
#    free chunk of the same order, from a snapshot's `free_chunks`. It must
#    find none in a real pool and one in a doctored snapshot.
# 4. **The C.** In your own copy (chapter 00, `minios-lab start`),
#    `split_chunk()` and `merge_with_buddies()` in `kernel/mm/page_alloc.c`
#    are stubs. Write them: their tasks are stated in *Check your kernel*
#    below. The last cell of this section runs the kernel's self-test and a
#    random workload with `mm_check()` on your kernel.
#
# <details><summary>Hint 1</summary>
#
# A free chunk of order 3 must be 8 pages *aligned to 8*. Allocate all 64 pages one by one, then free every other page.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Buddies of order 0 differ only in bit 0 of the pfn: `x ^ 1`. Freeing `x` as order 1 marks `y` free too, so the later free of `y` finds it free already.
# </details>
#
# <details><summary>Hint 3</summary>
#
# The buddy of a chunk at `pfn` of order `k` is at `pfn ^ (1 << k)`; look it up among the free chunks of the same order.
# </details>

# %%
### BEGIN SOLUTION
fragmented = PageAllocator(64)
singles = [fragmented.alloc(0) for _ in range(63)]
for pfn in singles[1::2]:
    fragmented.free(pfn, 0)
### END SOLUTION
assert fragmented.free_pages_count >= 16, \
    f"only {fragmented.free_pages_count} pages are free; free at least 16"
assert fragmented.alloc(3) is None, "an order-3 chunk (8 pages) could still be allocated"
fragmented.check()
print("check passed")

# %%
from minios_lab.errors import KernelPanic
### BEGIN SOLUTION
pool = PageAllocator(32)
pool.alloc(0)                        # pfn 1, the only single page
x, y = pool.alloc(0), pool.alloc(0)  # 2 and 3: the halves of chunk 2..3
pool.free_address(pool.address(x), 1)  # 2 is order-1 aligned; 2, 3 in use
try:
    pool.free_address(pool.address(y), 0)
except KernelPanic as error:
    caught = error
### END SOLUTION
assert isinstance(caught, KernelPanic), "store the KernelPanic in `caught`"
assert "double free" in caught.message, f"the kernel said {caught.message!r}"
print("check passed")

# %%
### BEGIN SOLUTION
def unmerged(snap):
    found = []
    for order, pfns in snap.free_chunks.items():
        chunks = set(pfns)
        for pfn in sorted(chunks):
            buddy = pfn ^ (1 << order)
            if buddy in chunks and pfn < buddy:
                found.append((pfn, buddy, order))
    return found
### END SOLUTION
from dataclasses import replace
real = PageAllocator(64).snapshot()
doctored = replace(real, free_chunks={**real.free_chunks, 0: [16, 17]})
assert unmerged(real) == [], f"a real pool has no unmerged buddies, found {unmerged(real)}"
assert unmerged(doctored) == [(16, 17, 0)], f"found {unmerged(doctored)}, want [(16, 17, 0)]"
print("check passed")

# %%
rc, text = PageAllocator(512, reserved=5).selftest()
assert rc == 0, f"the kernel's self-test failed:\n{text}"
pool = PageAllocator(128)
page_workload(pool, steps=200, seed=4)
pool.check()
print("check passed")

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/mm/page_alloc.c`, are `split_chunk`, `merge_with_buddies`:
# the code between `BEGIN` and `END` markers that your own copy (made by
# `minios-lab start`, see chapter 00) leaves for you to write. For each
# region, its task comes first: what to write, the difficulty, the points
# and what the grader checks. The cell after it runs that region's graded
# checks (the ones `make grade` runs) on your kernel, host build and real
# boot, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("split_chunk")

# %%
check_region("split_chunk")

# %%
show_task("merge_with_buddies")

# %%
check_region("merge_with_buddies")

# %% [markdown]
# ## Further reading
#
# * Donald Knuth, *The Art of Computer Programming*, vol. 1, section 2.5,
#   "Dynamic storage allocation": the buddy system and its analysis.
# * Paul R. Wilson et al., "Dynamic Storage Allocation: A Survey and
#   Critical Review" (1995): fragmentation, and why it is hard to predict.
# * Mel Gorman, *Understanding the Linux Virtual Memory Manager*, chapter 6,
#   "Physical Page Allocation": the same idea at Linux's scale.
# * Mini-OS, `mm.c` in the Xen tree: the allocator this chapter's is
#   shaped after.

# %% [markdown]
# ## What you learned
#
# * The page allocator keeps a bitmap (one bit per page: in use or free)
#   and free lists per order, of chunks of 2^order pages aligned to their
#   size.
# * Allocating splits a larger chunk into halves (buddies); freeing merges
#   a chunk with its buddy, `pfn ^ (1 << order)`, as long as the buddy is a
#   free chunk of the same order.
# * `mm_check()` proves the invariants (lists and bitmap agree, no two
#   free buddies left unmerged); a wrong free is caught as a panic.
# * Fragmentation: free pages scattered so that no large chunk is left.
#
# Chapter 04 builds on this: `xmalloc` takes whole pages from this
# allocator and carves them into small blocks.
#
# Next: [04 · xmalloc](04-xmalloc.ipynb).
