/*
 * Checking xmalloc's heap, and looking at it.
 *
 * xmalloc_check() proves the invariants written next to the structures in
 * <minios/xheap.h>. It walks every arena on the heap's arena list and tiles
 * it block by block from its first block to the end of the page: each
 * header must be valid, its boundary tag must name the block below, two
 * free blocks must never touch, and the used blocks must match the arena's
 * count. It then follows the free list and the list of big allocations.
 * Every pointer read from a list is checked (page allocated in the page
 * allocator, right magic) before it is followed, and every walk is bounded
 * by a counter, so a corrupted heap panics with a message instead of
 * looping or faulting. Finally the totals found must equal the counters.
 *
 * xmalloc_get_stats() and xmalloc_walk() copy the state out for reports,
 * tests and plots.
 */
#include <minios/bug.h>
#include <minios/mm.h>
#include <minios/xheap.h>

#define CONTAINER(pointer, type, field)                                       \
    ((type *)((char *)(pointer)-offsetof(type, field)))

/* What the walks found, to compare with the heap's counters. */
struct xtotals {
    unsigned long arenas, used, free, big, big_pages;
    unsigned long used_bytes, free_bytes, requested;
};

/* The current heap; panic, naming `function`, if there is none. */
static struct xheap *current_heap(const char *function)
{
    if (!xheap_valid(xmalloc_heap))
        PANIC("%s: no valid heap selected", function);
    return xmalloc_heap;
}

/* Whether `address` is in a page that the page allocator handed out. */
static bool owned_page(const void *address)
{
    return mm_page_allocated((unsigned long)address & PAGE_MASK);
}

static void check_block(struct xblock *block, unsigned long offset,
                        struct xblock *below, struct xtotals *found)
{
    if (block->magic != XUSED_MAGIC && block->magic != XFREE_MAGIC)
        PANIC("xmalloc_check: no block header at %p", (void *)block);
    if (block->size % XMALLOC_ALIGN || block->size < XMIN_BLOCK ||
        offset + block->size > PAGE_SIZE)
        PANIC("xmalloc_check: block %p has a bad size %u", (void *)block,
              block->size);
    if (block->prev_size != (below ? below->size : 0))
        PANIC("xmalloc_check: block %p has a wrong boundary tag",
              (void *)block);
    if (block->magic == XUSED_MAGIC) {
        if (block->requested == 0 || block->requested > block->size - XHEADER)
            PANIC("xmalloc_check: used block %p records %u bytes asked",
                  (void *)block, block->requested);
        found->used++;
        found->used_bytes += block->size;
        found->requested += block->requested;
        return;
    }
    if (below && below->magic == XFREE_MAGIC)
        PANIC("xmalloc_check: free blocks %p and %p not merged", (void *)below,
              (void *)block);
    found->free++;
    found->free_bytes += block->size;
}

static void check_arena(struct xarena *arena, struct xtotals *found)
{
    struct xblock *block, *below = NULL;
    unsigned long offset = ARENA_FIRST, used_before = found->used;

    if (!owned_page(arena) || arena->magic != XARENA_MAGIC)
        PANIC("xmalloc_check: %p is not an arena page", (void *)arena);
    while (offset < PAGE_SIZE) {
        block = (struct xblock *)((char *)arena + offset);
        check_block(block, offset, below, found);
        offset += block->size;
        below = block;
    }
    if (found->used - used_before != arena->nr_used)
        PANIC("xmalloc_check: arena %p counts %u used blocks, holds %lu",
              (void *)arena, arena->nr_used, found->used - used_before);
    if (arena->nr_used == 0)
        PANIC("xmalloc_check: empty arena %p was not given back",
              (void *)arena);
}

static void walk_arenas(struct xtotals *found)
{
    struct xlink *head = &xmalloc_heap->arenas, *link, *previous = head;

    for (link = head->next; link != head; previous = link, link = link->next) {
        struct xarena *arena = CONTAINER(link, struct xarena, link);

        if (((unsigned long)arena & ~PAGE_MASK) || !owned_page(arena) ||
            link->prev != previous ||
            ++found->arenas > xmalloc_heap->nr_arenas)
            PANIC("xmalloc_check: the arena list is broken at %p",
                  (void *)link);
        check_arena(arena, found);
    }
}

static void walk_free_list(void)
{
    struct xlink *head = &xmalloc_heap->free, *link, *previous = head;
    unsigned long length = 0;

    for (link = head->next; link != head; previous = link, link = link->next) {
        struct xblock *block = &free_block_of(link)->header;

        if (++length > xmalloc_heap->nr_free || !owned_page(block) ||
            arena_of(block)->magic != XARENA_MAGIC ||
            block->magic != XFREE_MAGIC || link->prev != previous)
            PANIC("xmalloc_check: the free list is broken at %p",
                  (void *)block);
    }
    if (length != xmalloc_heap->nr_free)
        PANIC("xmalloc_check: %lu blocks on the free list, %lu counted",
              length, xmalloc_heap->nr_free);
}

static void walk_bigs(struct xtotals *found)
{
    struct xlink *head = &xmalloc_heap->bigs, *link, *previous = head;

    for (link = head->next; link != head; previous = link, link = link->next) {
        struct xbig *big = CONTAINER(link, struct xbig, link);

        if (((unsigned long)big & ~PAGE_MASK) || !owned_page(big) ||
            big->magic != XBIG_MAGIC || link->prev != previous ||
            ++found->big > xmalloc_heap->nr_big)
            PANIC("xmalloc_check: the big list is broken at %p", (void *)big);
        if (big->order > MM_MAX_ORDER || big->offset > PAGE_SIZE ||
            big->offset + big->requested > PAGE_SIZE << big->order)
            PANIC("xmalloc_check: big allocation %p has a bad header",
                  (void *)big);
        found->big_pages += 1UL << big->order;
        found->requested += big->requested;
    }
}

static void compare(const char *what, unsigned long found,
                    unsigned long counted)
{
    if (found != counted)
        PANIC("xmalloc_check: %lu %s found, %lu counted", found, what,
              counted);
}

void xmalloc_check(void)
{
    struct xtotals found = {0};
    struct xheap *h = current_heap("xmalloc_check");

    walk_arenas(&found);
    walk_free_list();
    walk_bigs(&found);
    compare("arenas", found.arenas, h->nr_arenas);
    compare("used blocks", found.used, h->nr_used);
    compare("free blocks", found.free, h->nr_free);
    compare("used bytes", found.used_bytes, h->used_bytes);
    compare("free bytes", found.free_bytes, h->free_bytes);
    compare("requested bytes", found.requested, h->requested_bytes);
    compare("big allocations", found.big, h->nr_big);
    compare("big pages", found.big_pages, h->big_pages);
}

/* --- views --------------------------------------------------------------- */

void xmalloc_get_stats(struct xmalloc_stats *stats)
{
    struct xheap *h = current_heap("xmalloc_get_stats");
    struct xlink *link;

    stats->arenas = h->nr_arenas;
    stats->used_blocks = h->nr_used;
    stats->free_blocks = h->nr_free;
    stats->used_bytes = h->used_bytes;
    stats->requested_bytes = h->requested_bytes;
    stats->free_bytes = h->free_bytes;
    stats->big_allocations = h->nr_big;
    stats->big_pages = h->big_pages;
    stats->largest_free = 0;
    for (link = h->free.next; link != &h->free; link = link->next)
        if (free_block_of(link)->header.size > stats->largest_free)
            stats->largest_free = free_block_of(link)->header.size;
}

static void describe_block(struct xblock_info *info, struct xblock *block)
{
    struct xarena *arena = arena_of(block);

    info->page = (unsigned long)arena;
    info->offset = (unsigned long)block - (unsigned long)arena;
    info->size = block->size;
    info->payload = info->offset + XHEADER;
    info->requested = block->requested;
    info->kind = block->magic == XUSED_MAGIC ? XBLOCK_USED : XBLOCK_FREE;
}

static void describe_big(struct xblock_info *info, struct xbig *big)
{
    info->page = (unsigned long)big;
    info->offset = 0;
    info->size = PAGE_SIZE << big->order;
    info->payload = big->offset;
    info->requested = big->requested;
    info->kind = XBLOCK_BIG;
}

unsigned long xmalloc_walk(struct xblock_info *out, unsigned long max)
{
    struct xlink *link;
    struct xblock *block;
    struct xheap *h = current_heap("xmalloc_walk");
    unsigned long n = 0;

    for (link = h->arenas.next; link != &h->arenas; link = link->next) {
        block = first_block(CONTAINER(link, struct xarena, link));
        for (; block; block = block_after(block), n++)
            if (n < max)
                describe_block(&out[n], block);
    }
    for (link = h->bigs.next; link != &h->bigs; link = link->next, n++)
        if (n < max)
            describe_big(&out[n], CONTAINER(link, struct xbig, link));
    return n;
}
