/*
 * The page allocator: a bitmap and binary buddy free lists.
 *
 * Memory is handed out in chunks of 2^order pages (order 0 .. MM_MAX_ORDER),
 * every chunk aligned to its own size: a chunk of order k starts at a page
 * frame number (pfn, address >> PAGE_SHIFT) that is a multiple of 2^k. Two
 * chunks of order k that together make an aligned chunk of order k + 1 are
 * *buddies*; the buddy of the chunk at pfn is at pfn ^ 2^k.
 *
 * Two structures record the state, and mm_check() proves they agree:
 *
 * - a bitmap with one bit per page: 1 allocated, 0 free;
 * - a free list per order. A free chunk is its own list node: its first
 *   bytes hold a struct free_chunk (links, magic, order), so the lists cost
 *   no memory beyond the free pages themselves.
 *
 * alloc_pages(k) takes a chunk from the first non-empty list of order >= k
 * and splits it: each halving puts the upper half on the list one order
 * below, until 2^k pages are left. free_pages(p, k) marks the pages free,
 * then merges: while the buddy is a whole free chunk of the same order (its
 * first page is free in the bitmap, and its header says that order), the
 * buddy leaves its list and the two become one chunk of the next order. So
 * both cost O(MM_MAX_ORDER) list operations, plus one bitmap bit per page.
 *
 * init_page_allocator(min, max) puts the allocator's own state at min: a
 * struct page_pool (list anchors, counters) followed by the bitmap. Those
 * pages stay allocated for ever; the rest are freed as the largest aligned
 * chunks that fit. The bitmap grows with the memory (128 KiB for 2^20
 * pages) and no static array limits it. Addresses are used as pointers
 * directly: the kernel runs with virtual == pseudo-physical addresses.
 */
#include <minios/bug.h>
#include <minios/mm.h>
#include <minios/page_pool.h>
#include <minios/string.h>

struct page_pool *mm_pool;

static unsigned long chunk_pfn(const struct free_chunk *chunk)
{
    return (unsigned long)chunk >> PAGE_SHIFT;
}

/* --- the bitmap ---------------------------------------------------------- */

bool pool_page_allocated(unsigned long pfn)
{
    unsigned long bit = pfn - mm_pool->first_pfn;

    return (mm_pool->bitmap[bit / BITS_PER_WORD] >> (bit % BITS_PER_WORD)) & 1;
}

/* The bits of *bit .. end that share one word, as a mask; advances *bit. */
static unsigned long next_word_mask(unsigned long *bit, unsigned long end)
{
    unsigned long shift = *bit % BITS_PER_WORD;
    unsigned long n = BITS_PER_WORD - shift;

    if (n > end - *bit)
        n = end - *bit;
    *bit += n;
    return (n == BITS_PER_WORD ? ~0UL : (1UL << n) - 1) << shift;
}

static void mark_pages(unsigned long pfn, unsigned long count, bool allocated)
{
    unsigned long bit = pfn - mm_pool->first_pfn, end = bit + count;

    while (bit < end) {
        unsigned long *word = &mm_pool->bitmap[bit / BITS_PER_WORD];
        unsigned long mask = next_word_mask(&bit, end);

        *word = allocated ? (*word | mask) : (*word & ~mask);
    }
}

unsigned long pool_find_page(unsigned long pfn, unsigned long count,
                             bool allocated)
{
    unsigned long bit = pfn - mm_pool->first_pfn, end = bit + count;

    while (bit < end) {
        unsigned long start = bit, word = mm_pool->bitmap[bit / BITS_PER_WORD];
        unsigned long hits =
            (allocated ? word : ~word) & next_word_mask(&bit, end);

        if (hits)
            return mm_pool->first_pfn + start - start % BITS_PER_WORD +
                   (unsigned long)__builtin_ctzl(hits);
    }
    return NO_PAGE;
}

/* --- the free lists ------------------------------------------------------ */

static void add_free_chunk(unsigned long pfn, int order)
{
    struct free_chunk *chunk = chunk_at(pfn);
    struct list_link *head = &mm_pool->free_lists[order];

    chunk->magic = FREE_CHUNK_MAGIC;
    chunk->order = (unsigned long)order;
    chunk->link.next = head->next;
    chunk->link.prev = head;
    head->next->prev = &chunk->link;
    head->next = &chunk->link;
    mm_pool->nr_chunks[order]++;
    mm_pool->free_pages += 1UL << order;
}

static void remove_free_chunk(struct free_chunk *chunk)
{
    int order = (int)chunk->order;

    BUG_ON(chunk->magic != FREE_CHUNK_MAGIC);
    chunk->link.prev->next = chunk->link.next;
    chunk->link.next->prev = chunk->link.prev;
    chunk->magic = 0;
    mm_pool->nr_chunks[order]--;
    mm_pool->free_pages -= 1UL << order;
}

/* --- checks done on every call ------------------------------------------- */

void pool_check_ready(const char *function, int order)
{
    if (mm_pool == NULL)
        PANIC("%s: the page allocator is not initialised", function);
    if (order < 0 || order > MM_MAX_ORDER)
        PANIC("%s: order %d out of range 0..%d", function, order,
              MM_MAX_ORDER);
}

bool pool_in_free_range(unsigned long pfn, unsigned long count)
{
    return pfn >= mm_pool->first_pfn + mm_pool->meta_pages &&
           pfn < mm_pool->end_pfn && count <= mm_pool->end_pfn - pfn;
}

/* Panic unless [address, +2^order pages) is an allocated, aligned chunk. */
static void check_freeable(unsigned long address, int order)
{
    unsigned long pfn = address >> PAGE_SHIFT, count = 1UL << order;
    unsigned long already_free;

    if (address & ~PAGE_MASK)
        PANIC("free_pages: %#lx is not page aligned", address);
    if (pfn & (count - 1))
        PANIC("free_pages: %#lx is not aligned to its order %d", address,
              order);
    if (pfn >= mm_pool->first_pfn &&
        pfn < mm_pool->first_pfn + mm_pool->meta_pages)
        PANIC("free_pages: %#lx is the allocator's own memory", address);
    if (!pool_in_free_range(pfn, count))
        PANIC("free_pages: %#lx (order %d) is outside the managed range "
              "%#lx-%#lx",
              address, order, mm_pool->first_pfn << PAGE_SHIFT,
              mm_pool->end_pfn << PAGE_SHIFT);
    already_free = pool_find_page(pfn, count, false);
    if (already_free != NO_PAGE)
        PANIC("free_pages: %#lx (order %d): page %#lx is already free: "
              "double free",
              address, order, already_free << PAGE_SHIFT);
}

/* --- alloc and free ------------------------------------------------------ */

/* Cut the free chunk at pfn, just taken off its list, from 2^from pages
 * down to 2^to: each halving gives its upper half back to the free list one
 * order below. */
static void split_chunk(unsigned long pfn, int from, int to)
{
    /* BEGIN SOLUTION */
    while (from > to) {
        from--;
        add_free_chunk(pfn + (1UL << from), from);
        mm_pool->splits++;
    }
    /* END SOLUTION */
}

/* Take the first chunk of the smallest non-empty list of order >= `order`,
 * split it down to 2^order pages and mark those allocated. */
unsigned long alloc_pages(int order)
{
    int k = order;
    struct free_chunk *chunk;
    unsigned long pfn;

    pool_check_ready("alloc_pages", order);
    while (k <= MM_MAX_ORDER &&
           mm_pool->free_lists[k].next == &mm_pool->free_lists[k])
        k++;
    if (k > MM_MAX_ORDER) {
        mm_pool->failed++;
        return 0;
    }
    chunk = (struct free_chunk *)mm_pool->free_lists[k].next;
    pfn = chunk_pfn(chunk);
    remove_free_chunk(chunk);
    split_chunk(pfn, k, order);
    mark_pages(pfn, 1UL << order, true);
    mm_pool->allocs++;
    return pfn << PAGE_SHIFT;
}

/* Whether the chunk of 2^order pages at pfn is free, whole, on a list. Its
 * first page being free is enough to know a chunk starts there: a free
 * chunk containing it would also contain the pages being freed. */
static bool is_free_chunk(unsigned long pfn, int order)
{
    struct free_chunk *chunk = chunk_at(pfn);

    if (!pool_in_free_range(pfn, 1UL << order) || pool_page_allocated(pfn))
        return false;
    if (chunk->magic != FREE_CHUNK_MAGIC)
        PANIC("free_pages: free page %#lx has no chunk header: memory "
              "written after it was freed?",
              pfn << PAGE_SHIFT);
    return chunk->order == (unsigned long)order;
}

/* Merge the chunk at *pfn with its buddy as long as the buddy is a free
 * chunk of the same order; return the order reached, *pfn its start. */
static int merge_with_buddies(unsigned long *pfn, int order)
{
    /* BEGIN SOLUTION */
    while (order < MM_MAX_ORDER) {
        unsigned long buddy = *pfn ^ (1UL << order);

        if (!is_free_chunk(buddy, order))
            break;
        remove_free_chunk(chunk_at(buddy));
        *pfn &= ~(1UL << order);
        order++;
        mm_pool->merges++;
    }
    /* END SOLUTION */
    return order;
}

/* Refuse anything but an allocated, aligned chunk; mark it free, merge it
 * with its buddies, and put the result on the list of its order. */
void free_pages(void *pointer, int order)
{
    unsigned long pfn = (unsigned long)pointer >> PAGE_SHIFT;

    pool_check_ready("free_pages", order);
    check_freeable((unsigned long)pointer, order);
    mark_pages(pfn, 1UL << order, false);
    order = merge_with_buddies(&pfn, order);
    add_free_chunk(pfn, order);
    mm_pool->frees++;
}

unsigned long alloc_page(void)
{
    return alloc_pages(0);
}

void free_page(void *pointer)
{
    free_pages(pointer, 0);
}

/* --- initialisation ------------------------------------------------------ */

/* Free [pfn, end) as the largest aligned chunks that fit. These are already
 * fully merged: a chunk's buddy is never a chunk of the same order. */
static void free_range(unsigned long pfn, unsigned long end)
{
    while (pfn < end) {
        int order = 0;

        while (order < MM_MAX_ORDER && !(pfn & ((2UL << order) - 1)) &&
               pfn + (2UL << order) <= end)
            order++;
        mark_pages(pfn, 1UL << order, false);
        add_free_chunk(pfn, order);
        pfn += 1UL << order;
    }
}

/* Pages needed for the pool header and a bitmap of `pages` bits. */
static unsigned long meta_pages_for(unsigned long pages)
{
    unsigned long words = (pages + BITS_PER_WORD - 1) / BITS_PER_WORD;
    unsigned long bytes = sizeof(struct page_pool) + words * sizeof(long);

    return (bytes + PAGE_SIZE - 1) >> PAGE_SHIFT;
}

void init_page_allocator(unsigned long min, unsigned long max)
{
    unsigned long first = (min + PAGE_SIZE - 1) >> PAGE_SHIFT;
    unsigned long end = max >> PAGE_SHIFT, meta;
    int k;

    if (max < min || end <= first)
        PANIC("init_page_allocator: no whole page in %#lx-%#lx", min, max);
    meta = meta_pages_for(end - first);
    if (meta >= end - first)
        PANIC("init_page_allocator: %lu pages are too few to hold the "
              "allocator's own %lu",
              end - first, meta);
    mm_pool = page_address(first);
    memset(mm_pool, 0, sizeof(*mm_pool));
    mm_pool->first_pfn = first;
    mm_pool->end_pfn = end;
    mm_pool->meta_pages = meta;
    for (k = 0; k <= MM_MAX_ORDER; k++)
        mm_pool->free_lists[k].next = mm_pool->free_lists[k].prev =
            &mm_pool->free_lists[k];
    memset(mm_pool->bitmap, 0xff, meta * PAGE_SIZE - sizeof(*mm_pool));
    mm_pool->magic = PAGE_POOL_MAGIC;
    free_range(first + meta, end);
}

struct page_pool *page_pool_current(void)
{
    return mm_pool;
}

struct page_pool *page_pool_select(struct page_pool *next)
{
    struct page_pool *previous = mm_pool;

    if (next == NULL || next->magic != PAGE_POOL_MAGIC)
        PANIC("page_pool_select: %p is not a page pool", (void *)next);
    mm_pool = next;
    return previous;
}
