/* cffi declarations for the memory unit: the page allocator
 * (kernel/mm/page_alloc.c, page_check.c), xmalloc (kernel/mm/xmalloc.c,
 * xmalloc_check.c) and their self-tests (kernel/mm/selftest.c).
 * Constants are resolved from <minios/mm.h>. The pool and heap structures
 * are opaque here: Python only passes their addresses around. */

#define PAGE_SHIFT ...
#define MM_MAX_ORDER ...
#define MM_NR_ORDERS ...
#define XMALLOC_ALIGN ...

struct mm_stats {
    unsigned long first_pfn;
    unsigned long end_pfn;
    unsigned long meta_pages;
    unsigned long free_pages;
    unsigned long chunks[...];
    unsigned long allocs;
    unsigned long failed;
    unsigned long frees;
    unsigned long splits;
    unsigned long merges;
};

struct page_pool;

void init_page_allocator(unsigned long min, unsigned long max);
unsigned long alloc_pages(int order);
void free_pages(void *pointer, int order);
unsigned long alloc_page(void);
void free_page(void *pointer);
void mm_check(void);
void mm_get_stats(struct mm_stats *stats);
unsigned long mm_free_page_count(void);
bool mm_page_allocated(unsigned long address);
unsigned long mm_list_free_chunks(int order, unsigned long *out,
                                  unsigned long max);
unsigned long mm_copy_bitmap(uint64_t *out, unsigned long max_words);
void mm_print_summary(void);
struct page_pool *page_pool_current(void);
struct page_pool *page_pool_select(struct page_pool *pool);

int mm_selftest(void);
int xmalloc_selftest(void);
unsigned long mm_bench_alloc_free(int order, unsigned long iterations);

struct xmalloc_stats {
    unsigned long arenas;
    unsigned long used_blocks;
    unsigned long free_blocks;
    unsigned long used_bytes;
    unsigned long requested_bytes;
    unsigned long free_bytes;
    unsigned long largest_free;
    unsigned long big_allocations;
    unsigned long big_pages;
};

enum xblock_kind { XBLOCK_FREE, XBLOCK_USED, XBLOCK_BIG };

struct xblock_info {
    unsigned long page;
    unsigned long offset;
    unsigned long size;
    unsigned long payload;
    unsigned long requested;
    int kind;
};

struct xheap;

void *xmalloc(size_t size);
void *xmalloc_align(size_t size, size_t align);
void xfree(void *pointer);
void xmalloc_check(void);
void xmalloc_get_stats(struct xmalloc_stats *stats);
unsigned long xmalloc_walk(struct xblock_info *out, unsigned long max);
void xmalloc_init_heap(struct xheap *heap);
struct xheap *xmalloc_select_heap(struct xheap *heap);
unsigned long xmalloc_heap_size(void);
