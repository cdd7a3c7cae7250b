/*
 * Inside xmalloc: the heap's layout, shared by kernel/mm/xmalloc.c (alloc
 * and free) and kernel/mm/xmalloc_check.c (xmalloc_check() and the views).
 * No other file includes this header; the rest of the kernel uses
 * <minios/mm.h>.
 *
 * An arena is one page: a struct xarena, then blocks. A big allocation is
 * a chunk of 2^order pages: a struct xbig, then the payload.
 */
#ifndef MINIOS_XHEAP_H
#define MINIOS_XHEAP_H

#include <minios/mm.h>

#define XHEAP_MAGIC 0x70616568U  /* "heap" */
#define XARENA_MAGIC 0x616e7261U /* "arna" */
#define XBIG_MAGIC 0x20676962U   /* "big " */
#define XUSED_MAGIC 0x64657375U  /* "used" */
#define XFREE_MAGIC 0x65657266U  /* "free" */

struct xlink {
    struct xlink *next;
    struct xlink *prev;
};

/* The start of every arena page. 32 bytes, so blocks stay 16-aligned. */
struct xarena {
    uint32_t magic;    /* XARENA_MAGIC */
    uint32_t nr_used;  /* used blocks in this arena */
    struct xlink link; /* in heap->arenas */
    unsigned long unused;
};

/*
 * The header of every block. Invariants (xmalloc_check()):
 * - the blocks of an arena tile it exactly, from after the xarena to the
 *   end of the page; each size is a multiple of XMALLOC_ALIGN, at least
 *   XMIN_BLOCK;
 * - prev_size is the size of the block just below, 0 for the first;
 * - a free block is on the heap's free list, a used one is not;
 * - no two free blocks are neighbours, and no arena is one free block.
 */
struct xblock {
    uint32_t magic;     /* XUSED_MAGIC or XFREE_MAGIC */
    uint32_t size;      /* bytes, this header included */
    uint32_t prev_size; /* bytes of the block below; 0 for the first */
    uint32_t requested; /* bytes asked for; 0 when free */
};

/* A free block: its header, then its free-list link. */
struct xfree_block {
    struct xblock header;
    struct xlink link;
};

/* The start of a chunk taken with alloc_pages() for a big request. */
struct xbig {
    uint32_t magic;          /* XBIG_MAGIC */
    uint32_t order;          /* the chunk spans 2^order pages */
    unsigned long requested; /* bytes asked for */
    unsigned long offset;    /* of the payload from the chunk: <= PAGE_SIZE */
    struct xlink link;       /* in heap->bigs */
};

/* The counters always equal what walking the lists and arenas finds. */
struct xheap {
    uint32_t magic;      /* XHEAP_MAGIC */
    struct xlink free;   /* free blocks, most recently freed first */
    struct xlink arenas; /* every arena page */
    struct xlink bigs;   /* every big allocation */
    unsigned long nr_arenas, nr_used, nr_free, nr_big, big_pages;
    unsigned long used_bytes, free_bytes, requested_bytes;
};

#define XHEADER sizeof(struct xblock)
#define XMIN_BLOCK sizeof(struct xfree_block)
#define ARENA_FIRST sizeof(struct xarena)
#define ARENA_BYTES (PAGE_SIZE - ARENA_FIRST)

/* Every block, and so every payload, starts XMALLOC_ALIGN-aligned. */
_Static_assert(XHEADER == XMALLOC_ALIGN, "a block header is 16 bytes");
_Static_assert(ARENA_FIRST % XMALLOC_ALIGN == 0, "arena header alignment");
_Static_assert(XMIN_BLOCK % XMALLOC_ALIGN == 0, "smallest block alignment");

/* The heap that xmalloc() and xfree() act on (see xmalloc_select_heap()). */
extern struct xheap *xmalloc_heap;

/* Whether `heap` is one xmalloc_init_heap() made (not NULL, not garbage). */
static inline bool xheap_valid(const struct xheap *heap)
{
    return heap != NULL && heap->magic == XHEAP_MAGIC;
}

static inline struct xfree_block *free_block_of(struct xlink *link)
{
    return (struct xfree_block *)((char *)link - XHEADER);
}

static inline struct xarena *arena_of(const void *block)
{
    return (struct xarena *)((unsigned long)block & PAGE_MASK);
}

static inline struct xblock *first_block(struct xarena *arena)
{
    return (struct xblock *)((char *)arena + ARENA_FIRST);
}

/* The block just above `block` in its arena, or NULL at the arena's end. */
static inline struct xblock *block_after(struct xblock *block)
{
    unsigned long next = (unsigned long)block + block->size;
    unsigned long end = (unsigned long)arena_of(block) + PAGE_SIZE;

    return next < end ? (struct xblock *)next : NULL;
}

#endif
