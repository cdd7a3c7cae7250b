/*
 * Memory management for the kernel: the page allocator and xmalloc.
 *
 * The page allocator (kernel/mm/page_alloc.c) hands out physically
 * contiguous chunks of 2^order pages, each aligned to its own size: a
 * bitmap with one bit per page says which pages are allocated, and binary
 * buddy free lists (one per order) hold the free chunks, their list links
 * written inside the free chunks themselves. Everything the allocator
 * knows, the list anchors and the bitmap included, lives in the first pages
 * of the memory it manages.
 *
 * xmalloc (kernel/mm/xmalloc.c) carves small objects out of single pages
 * taken from the page allocator; requests that do not fit in one page go
 * straight to alloc_pages().
 *
 * Misuse (a double free, an address not aligned to its order, an order out
 * of range, a pointer that did not come from the allocator) is a kernel bug:
 * it panics with a message naming the function.
 */
#ifndef MINIOS_MM_H
#define MINIOS_MM_H

#include <minios/types.h>

/* Orders 0 .. MM_MAX_ORDER: the largest chunk is 2^20 pages, 4 GiB. */
#define MM_MAX_ORDER 20
#define MM_NR_ORDERS (MM_MAX_ORDER + 1)

/* cffi: begin */
/* --- the page allocator (kernel/mm/page_alloc.c) --------------------------
 */

/* Hand the pages of [min, max) (addresses) to the allocator. */
void init_page_allocator(unsigned long min, unsigned long max);
/* Address of 2^order free pages aligned to their size, or 0 if none fit. */
unsigned long alloc_pages(int order);
void free_pages(void *pointer, int order);
unsigned long alloc_page(void);
void free_page(void *pointer);
/* Check every invariant of the allocator; panic at the first one broken. */
void mm_check(void);

/* Counters, for reports, tests and plots. */
struct mm_stats {
    unsigned long first_pfn;  /* first page of the managed range */
    unsigned long end_pfn;    /* one past its last page */
    unsigned long meta_pages; /* pages at first_pfn holding the allocator */
    unsigned long free_pages; /* pages on the free lists */
    unsigned long chunks[MM_NR_ORDERS]; /* free chunks of each order */
    unsigned long allocs;               /* successful alloc_pages() calls */
    unsigned long failed; /* alloc_pages() calls that returned 0 */
    unsigned long frees;  /* free_pages() calls */
    unsigned long splits; /* chunks cut in two by alloc_pages() */
    unsigned long merges; /* buddies joined by free_pages() */
};

void mm_get_stats(struct mm_stats *stats);
unsigned long mm_free_page_count(void);
/* Whether the page holding `address` is managed here and allocated. */
bool mm_page_allocated(unsigned long address);
/* Copy the addresses of the free chunks of `order`, in list order, into
 * out[0 .. max-1]; return how many chunks that list holds. */
unsigned long mm_list_free_chunks(int order, unsigned long *out,
                                  unsigned long max);
/* Copy the bitmap (bit i: page first_pfn + i allocated) into out[]; return
 * its length in words. */
unsigned long mm_copy_bitmap(uint64_t *out, unsigned long max_words);
/* printk() the free pages and the free chunks of each order. */
void mm_print_summary(void);

/*
 * The state of an allocator is the header at the start of its memory. The
 * guest has one; the host build runs several in one process and says which
 * one the calls above act on. Returns the previous one.
 */
struct page_pool;
struct page_pool *page_pool_current(void);
struct page_pool *page_pool_select(struct page_pool *pool);

/* --- self-test and benchmark (kernel/mm/selftest.c) -----------------------
 */

/* Allocate and free in several orders, mm_check() after each phase; 0 if
 * the pool ends as it started. Prints "mm: selftest PASS" (or FAIL). */
int mm_selftest(void);
/* Same for xmalloc: "xmalloc: selftest PASS". */
int xmalloc_selftest(void);
/* `iterations` times alloc_pages(order) then free_pages(); returns a
 * checksum of the addresses so that the loop cannot be optimised away. */
unsigned long mm_bench_alloc_free(int order, unsigned long iterations);

/* --- xmalloc (kernel/mm/xmalloc.c) ----------------------------------------
 */

/* Payloads are aligned to XMALLOC_ALIGN bytes unless more is asked. */
#define XMALLOC_ALIGN 16

/* size bytes, or NULL when size is 0 or memory is exhausted. */
void *xmalloc(size_t size);
/* align: a power of two, at most PAGE_SIZE. */
void *xmalloc_align(size_t size, size_t align);
void xfree(void *pointer);
void xmalloc_check(void);

struct xmalloc_stats {
    unsigned long arenas;          /* pages carved into small blocks */
    unsigned long used_blocks;     /* small blocks handed out */
    unsigned long free_blocks;     /* small blocks on the free list */
    unsigned long used_bytes;      /* bytes of used blocks, headers included */
    unsigned long requested_bytes; /* bytes asked for, small and big */
    unsigned long free_bytes;      /* bytes of free blocks, headers included */
    unsigned long largest_free;    /* the largest free block, in bytes */
    unsigned long big_allocations; /* requests served by alloc_pages() */
    unsigned long big_pages;       /* pages they hold */
};

void xmalloc_get_stats(struct xmalloc_stats *stats);

/* One block of the heap, as xmalloc_walk() reports it. */
enum xblock_kind { XBLOCK_FREE, XBLOCK_USED, XBLOCK_BIG };

struct xblock_info {
    unsigned long page;      /* address of the page (or chunk) holding it */
    unsigned long offset;    /* of its header from that page */
    unsigned long size;      /* bytes, header included (big: whole chunk) */
    unsigned long payload;   /* offset of what xmalloc() returned */
    unsigned long requested; /* bytes asked for (0 when free) */
    int kind;                /* enum xblock_kind */
};

/* Describe every arena block and big allocation into out[0 .. max-1],
 * arenas first, in address order within an arena; return how many exist. */
unsigned long xmalloc_walk(struct xblock_info *out, unsigned long max);

/*
 * A heap's state: its free list, its arenas and its big allocations. The
 * guest uses one built-in heap; the host build may keep several.
 */
struct xheap;
void xmalloc_init_heap(struct xheap *heap);
struct xheap *xmalloc_select_heap(struct xheap *heap);
unsigned long xmalloc_heap_size(void);
/* cffi: end */

#endif
