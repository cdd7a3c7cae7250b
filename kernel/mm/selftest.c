/*
 * Self-tests of the page allocator and of xmalloc, run by the booted guest
 * on its real memory, and the benchmark loop the host build times.
 *
 * mm_selftest() works on the current pool, whatever it holds, and must
 * leave it as it found it. Each phase allocates a list of orders, writes
 * the address of each chunk into every one of its pages (a later overlap
 * would overwrite some), runs mm_check(), checks the stamps, frees the
 * chunks in a scrambled order and runs mm_check() again. The last phase
 * drains the pool with the largest chunks that still fit until even one
 * page does not, so alloc_pages() must say 0 and the pool is empty. After
 * all phases the free pages and the free chunks of every order must be
 * exactly those of the start: the buddies all merged back.
 *
 * xmalloc_selftest() does the same for the heap: small blocks of many sizes
 * filled with a pattern, aligned blocks, big blocks, xmalloc_check() after
 * each phase, and at the end no arena left and every page given back.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/mm.h>
#include <minios/string.h>

#define SELFTEST_SLOTS 64

struct chunk_record {
    unsigned long address;
    int order;
};

static void stamp(const struct chunk_record *chunk)
{
    unsigned long page, pages = 1UL << chunk->order;

    for (page = 0; page < pages; page++)
        *(unsigned long *)(chunk->address + page * PAGE_SIZE) = chunk->address;
}

static bool stamp_intact(const struct chunk_record *chunk)
{
    unsigned long page, pages = 1UL << chunk->order;

    for (page = 0; page < pages; page++)
        if (*(unsigned long *)(chunk->address + page * PAGE_SIZE) !=
            chunk->address)
            return false;
    return true;
}

/* Free got[0..n-1]: odd slots first, then even ones, to mix the merges. */
static void free_scrambled(const struct chunk_record *got, int n)
{
    int i;

    for (i = 1; i < n; i += 2)
        free_pages((void *)got[i].address, got[i].order);
    for (i = 0; i < n; i += 2)
        free_pages((void *)got[i].address, got[i].order);
}

/* Allocate each order, skipping those that do not fit; stamp each chunk.
 * Returns how many were allocated into got[]. */
static int allocate(const int *orders, int count, struct chunk_record *got)
{
    int i, n = 0;

    for (i = 0; i < count && n < SELFTEST_SLOTS; i++) {
        got[n].order = orders[i];
        got[n].address = alloc_pages(orders[i]);
        if (got[n].address)
            stamp(&got[n++]);
    }
    return n;
}

/* Check the pool and the stamps, free got[0..n-1], check again. */
static int check_and_free(const char *name, struct chunk_record *got, int n)
{
    int i;

    mm_check();
    for (i = 0; i < n; i++)
        if (!stamp_intact(&got[i])) {
            printk("mm: selftest: %s: chunk %d was overwritten\n", name, i);
            return -1;
        }
    free_scrambled(got, n);
    mm_check();
    printk("mm: selftest: %-12s %2d chunks allocated, checked, freed\n", name,
           n);
    return n;
}

/* Take the largest chunks that fit until not even one page is left. */
static int run_drain(void)
{
    struct chunk_record got[SELFTEST_SLOTS];
    int orders[SELFTEST_SLOTS], n = 0, order = MM_MAX_ORDER;
    struct mm_stats stats;

    mm_get_stats(&stats);
    while (order >= 0 && n < SELFTEST_SLOTS) {
        if (stats.chunks[order] == 0)
            order--;
        else if (stats.chunks[order]--)
            orders[n++] = order;
    }
    if (order >= 0)
        return 0; /* too many chunks to record: skip this phase */
    n = allocate(orders, n, got);
    if (alloc_pages(0) != 0) {
        printk("mm: selftest: drained pool still gave a page\n");
        return -1;
    }
    return check_and_free("drain", got, n);
}

static bool same_free_state(const struct mm_stats *a, const struct mm_stats *b)
{
    int k;

    for (k = 0; k <= MM_MAX_ORDER; k++)
        if (a->chunks[k] != b->chunks[k])
            return false;
    return a->free_pages == b->free_pages;
}

struct phase {
    const char *name;
    int orders[12];
    int count;
};

static const struct phase phases[] = {
    {"single pages", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 12},
    {"mixed orders", {0, 3, 1, 5, 2, 0, 4, 1, 6, 0, 2, 3}, 12},
    {"large chunks", {8, 9, 7, 10, 8}, 5},
};

/* Run every phase; the number of chunks allocated, or -1. */
static int run_phases(void)
{
    struct chunk_record got[SELFTEST_SLOTS];
    unsigned int i;
    int n, total = 0;

    for (i = 0; i < ARRAY_SIZE(phases); i++) {
        n = allocate(phases[i].orders, phases[i].count, got);
        if (check_and_free(phases[i].name, got, n) < 0)
            return -1;
        total += n;
    }
    n = run_drain();
    return n < 0 ? -1 : total + n;
}

int mm_selftest(void)
{
    struct mm_stats before, after;
    int total;

    mm_check();
    mm_get_stats(&before);
    total = run_phases();
    mm_get_stats(&after);
    if (total < 0) {
        printk("mm: selftest FAIL\n");
        return -1;
    }
    printk("mm: selftest: %d chunks, %lu splits, %lu merges; %lu pages free "
           "as before\n",
           total, after.splits - before.splits, after.merges - before.merges,
           after.free_pages);
    if (!same_free_state(&before, &after)) {
        printk("mm: selftest FAIL: the pool did not merge back\n");
        return -1;
    }
    printk("mm: selftest PASS\n");
    return 0;
}

/* --- xmalloc ------------------------------------------------------------- */

struct block_record {
    unsigned char *pointer;
    size_t size;
};

/* A fixed pseudo-random sequence, so every run tests the same sizes. */
static unsigned long next_random(unsigned long *state)
{
    *state = *state * 6364136223846793005UL + 1442695040888963407UL;
    return *state >> 33;
}

/* Allocate and fill one block; false if it came back misaligned. A NULL
 * (memory exhausted) is allowed: the record stays empty. */
static bool fill_and_keep(struct block_record *block, size_t size,
                          size_t align)
{
    block->pointer = xmalloc_align(size, align);
    block->size = block->pointer ? size : 0;
    if ((unsigned long)block->pointer % align)
        return false;
    memset(block->pointer, (int)(size & 0xff), block->size);
    return true;
}

static bool pattern_intact(const struct block_record *block)
{
    size_t i;

    for (i = 0; i < block->size; i++)
        if (block->pointer[i] != (unsigned char)(block->size & 0xff))
            return false;
    return true;
}

/* Allocate `count` blocks, check, free odd then even ones, check. */
static int run_heap_phase(const char *name, size_t min, size_t spread,
                          size_t align, int count)
{
    struct block_record blocks[SELFTEST_SLOTS];
    unsigned long state = (unsigned long)count;
    int i, got = 0;

    for (i = 0; i < count; i++) {
        if (!fill_and_keep(&blocks[i], min + next_random(&state) % spread,
                           align))
            return -1;
        got += blocks[i].pointer != NULL;
    }
    xmalloc_check();
    for (i = 0; i < count; i++)
        if (!pattern_intact(&blocks[i]))
            return -1;
    for (i = 1; i < count; i += 2)
        xfree(blocks[i].pointer);
    xmalloc_check();
    for (i = 0; i < count; i += 2)
        xfree(blocks[i].pointer);
    xmalloc_check();
    printk("xmalloc: selftest: %-8s %2d blocks allocated, checked, freed\n",
           name, got);
    return 0;
}

int xmalloc_selftest(void)
{
    struct xmalloc_stats before, after;
    unsigned long free_before = mm_free_page_count();

    xmalloc_check();
    xmalloc_get_stats(&before);
    if (run_heap_phase("small", 1, 300, XMALLOC_ALIGN, 64) < 0 ||
        run_heap_phase("aligned", 8, 200, 256, 24) < 0 ||
        run_heap_phase("big", PAGE_SIZE, 3 * PAGE_SIZE, 64, 8) < 0) {
        printk("xmalloc: selftest FAIL\n");
        return -1;
    }
    xmalloc_get_stats(&after);
    if (after.arenas != before.arenas ||
        after.used_blocks != before.used_blocks ||
        mm_free_page_count() != free_before) {
        printk("xmalloc: selftest FAIL: pages were not given back\n");
        return -1;
    }
    printk("xmalloc: selftest PASS\n");
    return 0;
}

/* --- benchmark ----------------------------------------------------------- */

unsigned long mm_bench_alloc_free(int order, unsigned long iterations)
{
    unsigned long checksum = 0, address;

    while (iterations--) {
        address = alloc_pages(order);
        if (address == 0)
            PANIC("mm_bench_alloc_free: no free chunk of order %d", order);
        checksum += address;
        free_pages((void *)address, order);
    }
    return checksum;
}
