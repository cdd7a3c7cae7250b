/*
 * xmalloc: a small-object allocator on top of the page allocator.
 *
 * Small requests are carved out of *arenas*: single pages taken with
 * alloc_page(), each beginning with a struct xarena and then tiled, with no
 * gap, by blocks. Every block starts with a 16-byte struct xblock header
 * that records its size, the size of the block just below it (a boundary
 * tag) and the bytes asked for; the caller gets the bytes after the header.
 * A free block keeps its free-list link in those bytes, so free blocks cost
 * nothing extra.
 *
 * xmalloc_align(size, align) takes the first free block on the free list
 * where an aligned payload fits. If the aligned spot leaves a gap in front,
 * the gap stays behind as a free block; a tail big enough to be a block is
 * split off and freed too. When no block fits, a new arena joins the heap.
 *
 * xfree() marks the block free and merges it with the block above (found by
 * adding the size) and below (found by subtracting prev_size) when they are
 * free, so no two free blocks ever touch. An arena that becomes one free
 * block goes back to the page allocator.
 *
 * A request that does not fit in an empty arena - anything of a page or
 * more - goes straight to alloc_pages(): the chunk starts with a struct
 * xbig header, and the payload follows it at the requested alignment.
 *
 * xfree() trusts nothing it is given. The page of the header must be
 * allocated in the page allocator, begin with an arena or big header of
 * this heap, and the pointer must be exactly where a live block's payload
 * starts (for an arena, found by walking its blocks). Anything else panics.
 */
#include <minios/bug.h>
#include <minios/mm.h>
#include <minios/string.h>
#include <minios/xheap.h>

#define EMPTY_LIST(list)                                                      \
    {                                                                         \
        &(list), &(list)                                                      \
    }
static struct xheap builtin_heap = {
    .magic = XHEAP_MAGIC,
    .free = EMPTY_LIST(builtin_heap.free),
    .arenas = EMPTY_LIST(builtin_heap.arenas),
    .bigs = EMPTY_LIST(builtin_heap.bigs),
};
struct xheap *xmalloc_heap = &builtin_heap;

/* --- lists and blocks ---------------------------------------------------- */

static void list_init(struct xlink *head)
{
    head->next = head->prev = head;
}

static void list_push(struct xlink *head, struct xlink *link)
{
    link->next = head->next;
    link->prev = head;
    head->next->prev = link;
    head->next = link;
}

static void list_remove(struct xlink *link)
{
    link->prev->next = link->next;
    link->next->prev = link->prev;
}

static void make_free(struct xblock *block)
{
    block->magic = XFREE_MAGIC;
    block->requested = 0;
    list_push(&xmalloc_heap->free, &((struct xfree_block *)block)->link);
    xmalloc_heap->nr_free++;
    xmalloc_heap->free_bytes += block->size;
}

static void unlink_free(struct xblock *block)
{
    BUG_ON(block->magic != XFREE_MAGIC);
    list_remove(&((struct xfree_block *)block)->link);
    xmalloc_heap->nr_free--;
    xmalloc_heap->free_bytes -= block->size;
}

/* Write a block header at `at`, and tell the block above its size. */
static struct xblock *set_block(unsigned long at, unsigned long size,
                                unsigned long prev_size)
{
    struct xblock *block = (struct xblock *)at, *next;

    block->size = (uint32_t)size;
    block->prev_size = (uint32_t)prev_size;
    next = block_after(block);
    if (next)
        next->prev_size = (uint32_t)size;
    return block;
}

/* --- allocating ---------------------------------------------------------- */

static void heap_ready(const char *function)
{
    if (!xheap_valid(xmalloc_heap))
        PANIC("%s: no valid heap selected", function);
}

/* Where in free `block` a used block of `need` bytes with an aligned
 * payload fits (a gap left in front must be big enough to be a block), or 0
 * when it does not fit. */
static unsigned long place(struct xblock *block, unsigned long need,
                           unsigned long align)
{
    unsigned long start = (unsigned long)block;
    /* BEGIN SOLUTION */
    unsigned long at = ALIGN_UP(start + XHEADER, align) - XHEADER;

    if (at != start && at - start < XMIN_BLOCK)
        at += align;
    return at + need <= start + block->size ? at : 0;
    /* END SOLUTION */
}

/* Make a used block of `need` bytes at `at` inside free `block`. */
static void *carve(struct xblock *block, unsigned long at, unsigned long need,
                   size_t requested)
{
    unsigned long start = (unsigned long)block, end = start + block->size;
    struct xblock *used;

    unlink_free(block);
    if (at > start)
        make_free(set_block(start, at - start, block->prev_size));
    if (end - (at + need) < XMIN_BLOCK)
        need = end - at;
    used = set_block(at, need, at > start ? at - start : block->prev_size);
    if (at + need < end)
        make_free(set_block(at + need, end - (at + need), need));
    used->magic = XUSED_MAGIC;
    used->requested = (uint32_t)requested;
    arena_of(used)->nr_used++;
    xmalloc_heap->nr_used++;
    xmalloc_heap->used_bytes += used->size;
    xmalloc_heap->requested_bytes += requested;
    return (char *)used + XHEADER;
}

static struct xblock *new_arena(void)
{
    struct xarena *arena = (struct xarena *)alloc_page();
    struct xblock *block;

    if (arena == NULL)
        return NULL;
    arena->magic = XARENA_MAGIC;
    arena->nr_used = 0;
    list_push(&xmalloc_heap->arenas, &arena->link);
    xmalloc_heap->nr_arenas++;
    block = set_block((unsigned long)arena + ARENA_FIRST, ARENA_BYTES, 0);
    make_free(block);
    return block;
}

static void *alloc_small(size_t size, unsigned long align)
{
    unsigned long need = ALIGN_UP(size, XMALLOC_ALIGN) + XHEADER, at;
    struct xlink *link;
    struct xblock *block;

    if (need < XMIN_BLOCK)
        need = XMIN_BLOCK;
    for (link = xmalloc_heap->free.next; link != &xmalloc_heap->free;
         link = link->next) {
        block = &free_block_of(link)->header;
        at = place(block, need, align);
        if (at)
            return carve(block, at, need, size);
    }
    block = new_arena();
    if (block == NULL)
        return NULL;
    at = place(block, need, align);
    BUG_ON(at == 0);
    return carve(block, at, need, size);
}

static void *alloc_big(size_t size, unsigned long align)
{
    unsigned long offset = ALIGN_UP(sizeof(struct xbig), align), chunk;
    unsigned long pages = (offset + size + PAGE_SIZE - 1) >> PAGE_SHIFT;
    int order = 0;
    struct xbig *big;

    if (size > (PAGE_SIZE << MM_MAX_ORDER))
        return NULL;
    while ((1UL << order) < pages)
        order++;
    chunk = order <= MM_MAX_ORDER ? alloc_pages(order) : 0;
    if (chunk == 0)
        return NULL;
    big = (struct xbig *)chunk;
    big->magic = XBIG_MAGIC;
    big->order = (uint32_t)order;
    big->requested = size;
    big->offset = offset;
    list_push(&xmalloc_heap->bigs, &big->link);
    xmalloc_heap->nr_big++;
    xmalloc_heap->big_pages += 1UL << order;
    xmalloc_heap->requested_bytes += size;
    return (char *)chunk + offset;
}

/* Whether an empty arena surely has room: the gap that alignment may leave
 * in front of a block is at most align + XMALLOC_ALIGN. */
static bool fits_in_arena(size_t size, unsigned long align)
{
    unsigned long gap = align > XMALLOC_ALIGN ? align + XMALLOC_ALIGN : 0;

    return size <= ARENA_BYTES &&
           ALIGN_UP(size, XMALLOC_ALIGN) + XHEADER + gap <= ARENA_BYTES;
}

void *xmalloc_align(size_t size, size_t align)
{
    heap_ready("xmalloc_align");
    if (align == 0 || (align & (align - 1)) || align > PAGE_SIZE)
        PANIC("xmalloc_align: alignment %lu is not a power of two up to %lu",
              (unsigned long)align, PAGE_SIZE);
    if (size == 0)
        return NULL;
    if (align < XMALLOC_ALIGN)
        align = XMALLOC_ALIGN;
    if (fits_in_arena(size, align))
        return alloc_small(size, align);
    return alloc_big(size, align);
}

void *xmalloc(size_t size)
{
    return xmalloc_align(size, XMALLOC_ALIGN);
}

/* --- freeing ------------------------------------------------------------- */

/* Join free `block` with free neighbours; return the block that remains. */
static struct xblock *merge_neighbours(struct xblock *block)
{
    struct xblock *next = block_after(block), *prev;

    /* BEGIN SOLUTION */
    if (next && next->magic == XFREE_MAGIC) {
        unlink_free(next);
        next->magic = 0;
        set_block((unsigned long)block, block->size + next->size,
                  block->prev_size);
    }
    prev = block->prev_size
               ? (struct xblock *)((char *)block - block->prev_size)
               : NULL;
    if (prev && prev->magic == XFREE_MAGIC) {
        unlink_free(prev);
        block->magic = 0;
        block = set_block((unsigned long)prev, prev->size + block->size,
                          prev->prev_size);
    }
    return block;
    /* END SOLUTION */
}

static void free_small(struct xarena *arena, struct xblock *block)
{
    xmalloc_heap->nr_used--;
    xmalloc_heap->used_bytes -= block->size;
    xmalloc_heap->requested_bytes -= block->requested;
    arena->nr_used--;
    block->magic = 0;
    block = merge_neighbours(block);
    if (block->size == ARENA_BYTES) {
        list_remove(&arena->link);
        xmalloc_heap->nr_arenas--;
        arena->magic = 0;
        free_page(arena);
        return;
    }
    make_free(block);
}

/* The block of `arena` whose header is at `header`, or NULL if none is. */
static struct xblock *find_block(struct xarena *arena, unsigned long header)
{
    struct xblock *block = first_block(arena);

    for (; block; block = block_after(block)) {
        if (block->size < XMIN_BLOCK)
            PANIC("xfree: arena %p is corrupted", (void *)arena);
        if ((unsigned long)block == header)
            return block;
    }
    return NULL;
}

static void free_big(struct xbig *big, void *pointer)
{
    if ((char *)pointer != (char *)big + big->offset)
        PANIC("xfree: %p points inside a big allocation, not at its start",
              pointer);
    list_remove(&big->link);
    xmalloc_heap->nr_big--;
    xmalloc_heap->big_pages -= 1UL << big->order;
    xmalloc_heap->requested_bytes -= big->requested;
    big->magic = 0;
    free_pages(big, (int)big->order);
}

void xfree(void *pointer)
{
    unsigned long address = (unsigned long)pointer;
    unsigned long page = (address - 1) & PAGE_MASK;
    struct xblock *block;

    if (pointer == NULL)
        return;
    heap_ready("xfree");
    if (address % XMALLOC_ALIGN || !mm_page_allocated(page))
        PANIC("xfree: %p is not a pointer xmalloc returned (foreign, or "
              "freed already)",
              pointer);
    if (*(uint32_t *)page == XBIG_MAGIC) {
        free_big((struct xbig *)page, pointer);
        return;
    }
    block = NULL;
    if (*(uint32_t *)page == XARENA_MAGIC)
        block = find_block((struct xarena *)page, address - XHEADER);
    if (block == NULL)
        PANIC("xfree: %p is not a pointer xmalloc returned (foreign, or "
              "freed already)",
              pointer);
    if (block->magic == XFREE_MAGIC)
        PANIC("xfree: double free of %p", pointer);
    free_small((struct xarena *)page, block);
}

/* --- heaps --------------------------------------------------------------- */

void xmalloc_init_heap(struct xheap *new_heap)
{
    memset(new_heap, 0, sizeof(*new_heap));
    list_init(&new_heap->free);
    list_init(&new_heap->arenas);
    list_init(&new_heap->bigs);
    new_heap->magic = XHEAP_MAGIC;
}

struct xheap *xmalloc_select_heap(struct xheap *next)
{
    struct xheap *previous = xmalloc_heap;

    if (!xheap_valid(next))
        PANIC("xmalloc_select_heap: %p is not a heap", (void *)next);
    xmalloc_heap = next;
    return previous;
}

unsigned long xmalloc_heap_size(void)
{
    return sizeof(struct xheap);
}
