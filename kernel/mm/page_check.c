/*
 * Checking the page allocator, and looking at it.
 *
 * mm_check() proves the invariants written above struct page_pool
 * (<minios/page_pool.h>) from two independent directions:
 *
 * - the page walk goes through the bitmap in address order. Every free page
 *   it meets must begin a chunk with a valid header, aligned, in range, all
 *   of its pages free, linked into a list, and without a free buddy of its
 *   own order; the walk then jumps over the chunk. So the free pages are
 *   exactly the disjoint union of the chunks it finds.
 * - the list walk follows each free list from its sentinel, at most as many
 *   steps as chunks of that order could exist (a cycle cannot fool it), and
 *   checks that each node is a free page holding a chunk of that order
 *   before reading it.
 *
 * The counts of both walks must match each other and the counters, order
 * by order. A node reached by a list is a chunk the page walk accepted, its
 * links are consistent both ways, so no chunk is listed twice or on two
 * lists. The rest of the file copies the state out for reports and plots.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/mm.h>
#include <minios/page_pool.h>
#include <minios/string.h>

/* Whether a link read from a free chunk may be followed: a list sentinel,
 * or the start of a free page. */
static bool link_target_ok(const struct list_link *link)
{
    unsigned long address = (unsigned long)link;

    if (link >= mm_pool->free_lists &&
        link < mm_pool->free_lists + MM_NR_ORDERS)
        return true;
    return !(address & ~PAGE_MASK) &&
           pool_in_free_range(address >> PAGE_SHIFT, 1) &&
           !pool_page_allocated(address >> PAGE_SHIFT);
}

/* Check one free chunk: header, placement, bits, links, merged. */
static void check_chunk(unsigned long pfn, unsigned long order)
{
    struct free_chunk *chunk = chunk_at(pfn);
    unsigned long count = 1UL << order, buddy = pfn ^ count;

    if (chunk->magic != FREE_CHUNK_MAGIC || order > MM_MAX_ORDER)
        PANIC("mm_check: free page %#lx holds no valid chunk header",
              pfn << PAGE_SHIFT);
    if ((pfn & (count - 1)) || !pool_in_free_range(pfn, count))
        PANIC("mm_check: chunk %#lx (order %lu) misaligned or out of range",
              pfn << PAGE_SHIFT, order);
    if (pool_find_page(pfn, count, true) != NO_PAGE)
        PANIC("mm_check: free chunk %#lx (order %lu) has allocated pages",
              pfn << PAGE_SHIFT, order);
    if (!link_target_ok(chunk->link.next) ||
        !link_target_ok(chunk->link.prev) ||
        chunk->link.next->prev != &chunk->link ||
        chunk->link.prev->next != &chunk->link)
        PANIC("mm_check: chunk %#lx has broken list links", pfn << PAGE_SHIFT);
    if (order < MM_MAX_ORDER && pool_in_free_range(buddy, count) &&
        !pool_page_allocated(buddy) && chunk_at(buddy)->order == order)
        PANIC("mm_check: free buddies %#lx and %#lx (order %lu) not merged",
              pfn << PAGE_SHIFT, buddy << PAGE_SHIFT, order);
}

/* Walk the pages in address order; every free page must begin a chunk.
 * Counts the chunks of each order in found[]. */
static void walk_free_pages(unsigned long found[])
{
    unsigned long pfn = mm_pool->first_pfn + mm_pool->meta_pages;

    if (pool_find_page(mm_pool->first_pfn, mm_pool->meta_pages, false) !=
        NO_PAGE)
        PANIC("mm_check: the allocator's own pages are marked free");
    while (pfn < mm_pool->end_pfn) {
        pfn = pool_find_page(pfn, mm_pool->end_pfn - pfn, false);
        if (pfn == NO_PAGE)
            return;
        check_chunk(pfn, chunk_at(pfn)->order);
        found[chunk_at(pfn)->order]++;
        pfn += 1UL << chunk_at(pfn)->order;
    }
}

/* Walk free_lists[order]: each node must be a chunk of that order that the
 * page walk found. Returns the length of the list. */
static unsigned long walk_free_list(int order)
{
    struct list_link *head = &mm_pool->free_lists[order], *link;
    struct list_link *previous = head;
    unsigned long length = 0;
    unsigned long limit = (mm_pool->end_pfn - mm_pool->first_pfn) >> order;

    for (link = head->next; link != head; previous = link, link = link->next) {
        unsigned long pfn = (unsigned long)link >> PAGE_SHIFT;

        if (++length > limit || !link_target_ok(link) ||
            link->prev != previous)
            PANIC("mm_check: list %d leads to %p, not a free chunk", order,
                  (void *)link);
        if (chunk_at(pfn)->magic != FREE_CHUNK_MAGIC ||
            chunk_at(pfn)->order != (unsigned long)order)
            PANIC("mm_check: chunk %p of order %lu is on list %d",
                  (void *)link, chunk_at(pfn)->order, order);
    }
    return length;
}

/* Both walks, then their counts against each other and the counters. */
void mm_check(void)
{
    unsigned long found[MM_NR_ORDERS] = {0}, pages = 0;
    int k;

    pool_check_ready("mm_check", 0);
    if (mm_pool->magic != PAGE_POOL_MAGIC)
        PANIC("mm_check: the pool header is overwritten");
    walk_free_pages(found);
    for (k = 0; k <= MM_MAX_ORDER; k++) {
        unsigned long listed = walk_free_list(k);

        if (listed != found[k] || listed != mm_pool->nr_chunks[k])
            PANIC("mm_check: order %d: %lu chunks listed, %lu in the bitmap, "
                  "%lu counted",
                  k, listed, found[k], mm_pool->nr_chunks[k]);
        pages += listed << k;
    }
    if (pages != mm_pool->free_pages)
        PANIC("mm_check: %lu pages on the lists, %lu counted", pages,
              mm_pool->free_pages);
}

/* --- counters and views -------------------------------------------------- */

void mm_get_stats(struct mm_stats *stats)
{
    pool_check_ready("mm_get_stats", 0);
    stats->first_pfn = mm_pool->first_pfn;
    stats->end_pfn = mm_pool->end_pfn;
    stats->meta_pages = mm_pool->meta_pages;
    stats->free_pages = mm_pool->free_pages;
    memcpy(stats->chunks, mm_pool->nr_chunks, sizeof(stats->chunks));
    stats->allocs = mm_pool->allocs;
    stats->failed = mm_pool->failed;
    stats->frees = mm_pool->frees;
    stats->splits = mm_pool->splits;
    stats->merges = mm_pool->merges;
}

unsigned long mm_free_page_count(void)
{
    pool_check_ready("mm_free_page_count", 0);
    return mm_pool->free_pages;
}

bool mm_page_allocated(unsigned long address)
{
    unsigned long pfn = address >> PAGE_SHIFT;

    pool_check_ready("mm_page_allocated", 0);
    return pfn >= mm_pool->first_pfn + mm_pool->meta_pages &&
           pfn < mm_pool->end_pfn && pool_page_allocated(pfn);
}

unsigned long mm_list_free_chunks(int order, unsigned long *out,
                                  unsigned long max)
{
    struct list_link *head, *link;
    unsigned long n = 0;

    pool_check_ready("mm_list_free_chunks", order);
    head = &mm_pool->free_lists[order];
    for (link = head->next; link != head; link = link->next, n++)
        if (n < max)
            out[n] = (unsigned long)link;
    return n;
}

unsigned long mm_copy_bitmap(uint64_t *out, unsigned long max_words)
{
    unsigned long words, i;

    pool_check_ready("mm_copy_bitmap", 0);
    words = (mm_pool->end_pfn - mm_pool->first_pfn + BITS_PER_WORD - 1) /
            BITS_PER_WORD;
    for (i = 0; i < words && i < max_words; i++)
        out[i] = mm_pool->bitmap[i];
    return words;
}

void mm_print_summary(void)
{
    int k;

    pool_check_ready("mm_print_summary", 0);
    printk("mm: %lu pages managed, %lu free (%lu KiB), chunks per order:",
           mm_pool->end_pfn - mm_pool->first_pfn, mm_pool->free_pages,
           mm_pool->free_pages * (PAGE_SIZE / 1024));
    for (k = 0; k <= MM_MAX_ORDER; k++)
        if (mm_pool->nr_chunks[k])
            printk(" %d:%lu", k, mm_pool->nr_chunks[k]);
    printk("\n");
}
