/*
 * Inside the page allocator: the state that kernel/mm/page_alloc.c (alloc,
 * free, init) and kernel/mm/page_check.c (mm_check() and the views) share.
 * No other file includes this header; the rest of the kernel uses
 * <minios/mm.h>.
 *
 * Pages are named by their page frame number, pfn = address >> PAGE_SHIFT.
 * The kernel runs with virtual == pseudo-physical addresses, so a pfn turns
 * back into a pointer with a shift.
 */
#ifndef MINIOS_PAGE_POOL_H
#define MINIOS_PAGE_POOL_H

#include <minios/mm.h>

#define PAGE_POOL_MAGIC 0x6c6f6f705f6d6d31UL  /* "1mm_pool" */
#define FREE_CHUNK_MAGIC 0x6b6e686365657266UL /* "freechnk" */
#define BITS_PER_WORD 64UL
#define NO_PAGE (~0UL)

struct list_link {
    struct list_link *next;
    struct list_link *prev;
};

/*
 * Written in the first bytes of every free chunk, and only of free chunks.
 * `link` comes first, so a list_link pointer is also a free_chunk pointer.
 */
struct free_chunk {
    struct list_link link;
    unsigned long magic; /* FREE_CHUNK_MAGIC while on a free list */
    unsigned long order; /* the chunk spans 2^order pages */
};

/*
 * The allocator's state, at the start of the memory it manages.
 * Invariants, checked by mm_check():
 * - every chunk on free_lists[k] has order k, starts at a multiple of 2^k,
 *   lies inside [first_pfn + meta_pages, end_pfn) and has all its bits 0;
 * - every 0 bit belongs to exactly one listed chunk, so the chunks do not
 *   overlap and no chunk is on two lists;
 * - no free chunk of order k < MM_MAX_ORDER has a free buddy of order k
 *   (the two would have been merged);
 * - nr_chunks[k] is the length of free_lists[k], and free_pages is the sum
 *   of nr_chunks[k] << k, which is also the number of 0 bits;
 * - the bits of the meta_pages pages (this header and the bitmap) are 1.
 */
struct page_pool {
    unsigned long magic; /* PAGE_POOL_MAGIC */
    unsigned long first_pfn;
    unsigned long end_pfn;
    unsigned long meta_pages;
    struct list_link free_lists[MM_NR_ORDERS]; /* circular, sentinels */
    unsigned long nr_chunks[MM_NR_ORDERS];
    unsigned long free_pages;
    unsigned long allocs, failed, frees, splits, merges;
    unsigned long bitmap[]; /* bit i: page first_pfn + i is allocated */
};

/* The pool that every call acts on (see page_pool_select()). */
extern struct page_pool *mm_pool;

static inline void *page_address(unsigned long pfn)
{
    return (void *)(pfn << PAGE_SHIFT);
}

static inline struct free_chunk *chunk_at(unsigned long pfn)
{
    return page_address(pfn);
}

/* Panic, naming `function`, if there is no pool or order is out of range. */
void pool_check_ready(const char *function, int order);
bool pool_page_allocated(unsigned long pfn);
/* The first page of [pfn, pfn + count) whose bit is `allocated`, or
 * NO_PAGE. */
unsigned long pool_find_page(unsigned long pfn, unsigned long count,
                             bool allocated);
/* Whether [pfn, pfn + count) lies in the pages the pool may hand out. */
bool pool_in_free_range(unsigned long pfn, unsigned long count);

#endif
