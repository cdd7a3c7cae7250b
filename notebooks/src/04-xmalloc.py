# %% [markdown]
# # 04 · xmalloc
#
# **What you will do.** Run the kernel's small-object allocator on pages
# from chapter 03's page allocator, look inside its pages at headers, used
# and free blocks, watch free blocks merge, catch double frees and a buffer
# overflow, and watch a random workload fragment the heap.
#
# **What you will learn.** How a kernel `malloc` carves pages into blocks;
# what a block header and a boundary tag are for; how alignment is served;
# why large requests go straight to the page allocator; what internal and
# external fragmentation are.
#
# **What you need.** Chapter 03 (the page allocator, `mm_check()`,
# `panic_message()`).
#
# ## Why another allocator
#
# The page allocator's smallest unit is a page: 4096 bytes for an event
# channel's 24-byte record would waste 99% of it. `xmalloc(size)` hands out
# blocks of any size. It takes whole pages with `alloc_page()` (each such
# page is an *arena*), tiles them with blocks, and gives them back when
# they empty. Each block starts with a 16-byte header:

# %%
from minios_lab.notebook.source import show
show("include/minios/xheap.h", "xblock")

# %% [markdown]
# `size` lets xmalloc step from a block to the next one up; `prev_size`, a
# *boundary tag*, lets it step down. A free block keeps its free-list link
# in the bytes after its header, so free blocks cost no extra memory:

# %%
show("include/minios/xheap.h", "xfree_block")

# %% [markdown]
# ## First blocks
#
# `Heap(16)` builds a `PageAllocator` of 16 pages (chapter 03) and an empty
# heap on it. `malloc()` calls the kernel's `xmalloc()` and returns the
# address it got.

# %%
from minios_lab.mm import Heap, format_blocks
from minios_lab.viz import mm as viz_mm
heap = Heap(16)
a, b, c = heap.malloc(24), heap.malloc(100), heap.malloc(7)
print(format_blocks(heap.snapshot()))

# %% [markdown]
# The first `xmalloc()` took page 1 from the page allocator (page 0 holds
# its bitmap) and made it one free block of 4064 bytes after the 32-byte
# arena header. Then each request was cut from the front of that free
# block: 24 bytes rounded up to 32, plus the header, made a 48-byte block;
# 100 bytes a 128-byte block; 7 bytes the smallest block, 32 bytes (a
# header and room for a free-list link). In a picture: headers in black,
# the bytes asked for in red, the rounding in pink, free space in green.
# The blocks use only the start of the page, so the picture shows that
# start; the green free block goes on to the end of the page.

# %%
fig = viz_mm.heap_map(heap.snapshot(), title="three blocks")

# %% [markdown]
# ## Finding room
#
# `alloc_small()` walks the free list and takes the first block where the
# request fits; `place()` works out where, and `carve()` cuts the block:

# %%
show("mm/xmalloc.c", "alloc_small")

# %%
show("mm/xmalloc.c", "place")

# %% [markdown]
# With an alignment the payload may have to start further in. The gap left
# in front stays behind as a free block of its own (which is why it must be
# at least 32 bytes). Ask for 100 bytes aligned to 512:

# %%
d = heap.malloc(100, 512)
print("d % 512 =", d % 512)
print(format_blocks(heap.snapshot()))

# %% [markdown]
# ## Freeing merges
#
# `xfree()` marks the block free, then looks at its neighbours: the block
# above is at `block + size`, the block below at `block - prev_size`. Free
# neighbours are merged, so no two free blocks ever touch:

# %%
show("mm/xmalloc.c", "merge_neighbours")

# %%
heap.free(b)
heap.free(a)          # merges with b's block, just above it
heap.free(d)          # merges with the gap below and the free space above
print(format_blocks(heap.snapshot()))

# %% [markdown]
# An arena that becomes one free block goes back to the page allocator:

# %%
pages_before = heap.pages.free_pages_count
heap.free(c)
heap.pages.free_pages_count - pages_before, heap

# %% [markdown]
# ## A page or more
#
# A request that could not fit in an empty arena goes straight to
# `alloc_pages()`. The chunk starts with a `struct xbig` header recording
# its order, and the payload follows at the requested alignment:

# %%
show("include/minios/xheap.h", "xbig")

# %%
big = heap.malloc(10000)
page_aligned = heap.malloc(100, 4096)
print(format_blocks(heap.snapshot()))

# %% [markdown]
# 10000 bytes and the header need 3 pages, so an order-2 chunk of 4 pages.
# 100 bytes aligned to a page cost *two* pages: the payload must start on
# a page boundary and the header must come before it. A kernel that needs
# page-aligned pages should call `alloc_pages()` itself.

# %%
fig = viz_mm.heap_map(heap.snapshot(), title="big allocations")

# %%
heap.free(big)
heap.free(page_aligned)
heap.check()
heap

# %% [markdown]
# ## xfree() trusts nothing
#
# A pointer handed to `xfree()` may be anything. Before it reads a header,
# xfree makes sure the page is one the page allocator gave out, and that it
# starts with an arena or a big-allocation header; in an arena it walks the
# blocks to find one starting exactly there.

# %%
show("mm/xmalloc.c", "xfree")

# %%
from minios_lab.mm import panic_message
x, y = heap.malloc(40), heap.malloc(40)
heap.free(x)              # x is free now: freeing it again is a bug

# %%
mistakes = {
    "double free": lambda: heap.free(x),
    "pointer into a block": lambda: heap.free(y + 16),
    "unaligned pointer": lambda: heap.free(y + 1),
    "a page from alloc_pages": lambda: heap.free(
        heap.pages.address(heap.pages.alloc(0)) + 64),
    "alignment of 24": lambda: heap.malloc(10, 24),
}
for name, mistake in mistakes.items():
    print(f"{name:24} -> {panic_message(mistake)}")

# %% [markdown]
# A buffer overflow cannot be refused: C lets you write past the end of a
# block. It tramples the next block's header, and `xmalloc_check()` (which
# walks every arena, the free list and the big allocations, and compares
# what it finds with the counters) catches it:

# %%
z = heap.malloc(40)
heap.write(y, b"A" * 60)    # 40 bytes asked, 60 written
panic_message(heap.check)

# %% [markdown]
# ## Fragmentation
#
# Two kinds of waste. *Internal*: the rounding and the headers inside each
# block (pink and black in the pictures). *External*: free bytes scattered
# in pieces too small for the next request. `heap_workload()` runs a seeded
# random mix of `xmalloc()` (1 to 400 bytes) and `xfree()` and records the
# bytes asked for, the free bytes in arenas and the largest free block.
# The lower panel is chapter 03's measure of external fragmentation,
# 1 − largest free block / free bytes: 0 when the free bytes are one
# block, near 1 when they are crumbs.

# %%
from minios_lab.mm import heap_workload
heap = Heap(64)
points = heap_workload(heap, steps=600, seed=2, p_alloc=0.55)
fig = viz_mm.fragmentation(points, "bytes")

# %%
heap.check()
fig = viz_mm.heap_map(heap.snapshot(), title="after 600 random operations")

# %% [markdown]
# ## The self-test the guest runs
#
# As for the page allocator, the booted guest runs `xmalloc_selftest()`:
# small blocks of many sizes filled with a pattern, aligned blocks, big
# ones, `xmalloc_check()` after each phase, and at the end every page back
# in the page allocator.

# %%
rc, text = Heap(64).selftest()
print(text)

# %% [markdown]
# ## Exercises
#
# 1. **The cost of one byte.** How many bytes of an arena does `xmalloc(1)`
#    use? Work it out from the header and the rounding, store it in
#    `one_byte_cost`; the check asks the kernel.
# 2. **Blocks per arena.** How many `xmalloc(100)` fit in one arena before
#    a second page is needed? Store your prediction in `per_arena`.
# 3. **Swiss cheese.** Build a heap, `swiss`, whose arenas hold at least
#    2000 free bytes but where `xmalloc(1000)` still needs a new arena.
#
# <details><summary>Hint 1</summary>
#
# Every block starts with a header and sizes are rounded up to the heap's alignment; a block is never smaller than the minimum block. `show()` the constants in `kernel/include/minios/xheap.h`.
# </details>
#
# <details><summary>Hint 2</summary>
#
# An arena is one page minus the arena header; divide by the size of one block of 100 bytes with its header, rounded.
# </details>
#
# <details><summary>Hint 3</summary>
#
# Fill arenas with small blocks, then free every other one: lots of free bytes, no free run of 1000.
# </details>

# %%
### BEGIN SOLUTION
one_byte_cost = 16 + 16      # a header, and the 16 bytes a free block needs
### END SOLUTION
probe = Heap(8)
probe.malloc(1)
used = probe.snapshot().arenas()[1][0].size
assert one_byte_cost == used, \
    f"{one_byte_cost} is too {'high' if one_byte_cost > used else 'low'}"
print("check passed")

# %%
### BEGIN SOLUTION
per_arena = (4096 - 32) // (112 + 16)   # 100 rounds to 112, plus a header
### END SOLUTION
probe = Heap(8)
count = 0
while probe.stats().arenas < 2:
    probe.malloc(100)
    count += 1
assert per_arena == count - 1, \
    f"{per_arena} is too {'high' if per_arena > count - 1 else 'low'}"
print("check passed")

# %%
### BEGIN SOLUTION
swiss = Heap(8)
blocks = [swiss.malloc(100) for _ in range(31)]
for address in blocks[1::2]:
    swiss.free(address)
### END SOLUTION
stats = swiss.stats()
assert stats.free_bytes >= 2000, f"only {stats.free_bytes} bytes are free"
swiss.malloc(1000)
assert swiss.stats().arenas == stats.arenas + 1, \
    "xmalloc(1000) found room without a new arena"
swiss.check()
print("check passed")

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/mm/xmalloc.c`, are `place`, `merge_neighbours`:
# the code between `BEGIN` and `END` markers that your own copy (made by
# `minios-lab start`, see chapter 00) leaves for you to write. For each
# region, its task comes first: what to write, the difficulty, the points
# and what the grader checks. The cell after it runs that region's graded
# checks (the ones `make grade` runs) on your kernel, host build and real
# boot, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("place")

# %%
check_region("place")

# %%
show_task("merge_neighbours")

# %%
check_region("merge_neighbours")

# %% [markdown]
# ## Further reading
#
# * Brian Kernighan and Dennis Ritchie, *The C Programming Language*,
#   section 8.7, "A storage allocator": a free list with headers, in two
#   pages of C.
# * Donald Knuth, *The Art of Computer Programming*, vol. 1, section 2.5:
#   boundary tags, first fit and best fit.
# * Paul R. Wilson et al., "Dynamic Storage Allocation: A Survey and
#   Critical Review" (1995).
# * Mini-OS, `lib/xmalloc.c` in the Xen tree.

# %% [markdown]
# ## What you learned
#
# * `xmalloc` carves pages (arenas) into blocks, each with a header that
#   gives its size; sizes are rounded up to the heap's alignment.
# * Freeing merges a block with free neighbours on both sides, so free
#   space does not crumble into small pieces.
# * Large requests go straight to the page allocator.
# * `xfree()` checks what it is given: a double free or an overwritten
#   header is a panic, not silent corruption.
# * Internal fragmentation (rounding, headers) and external fragmentation
#   (free bytes in pieces too small) both waste memory.
#
# Chapter 05 builds on the page allocator too: each new page table is a
# page from it, which the kernel must hand to Xen before it may use it as
# a table.
#
# Next: [05 · Page tables](05-page-tables.ipynb).
