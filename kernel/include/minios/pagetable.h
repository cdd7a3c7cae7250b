/*
 * Page tables of a PV guest on x86_64: extended from Xen's, checked by Xen.
 *
 * A virtual address below 2^47 is split into four 9-bit indexes and a
 * 12-bit offset:
 *
 *   47      39 38      30 29      21 20      12 11         0
 *   | L4 index | L3 index | L2 index | L1 index |   offset   |
 *
 * Each index picks one of the 512 8-byte entries of a table; an entry
 * holds a machine frame number (bits 51..12) and flags. The L1 entry names
 * the frame of the page itself. See kernel/mm/pagetable.c for how the
 * kernel extends the tables Xen built, and why every write goes through
 * Xen.
 */
#ifndef MINIOS_PAGETABLE_H
#define MINIOS_PAGETABLE_H

#include <minios/xen.h>

typedef uint64_t pgentry_t;

#define PT_LEVELS 4
#define PT_INDEX_BITS 9
#define PT_ENTRIES (1U << PT_INDEX_BITS)
/* Entries sent to Xen per HYPERVISOR_mmu_update call, at most. */
#define PT_BATCH 32
/* The kernel maps only the lower half of the address space. */
#define PT_VA_LIMIT (1UL << 47)
#define PT_NO_FRAME (~0UL)
#define PT_MAGIC 0x7365626174656770UL /* "pgetabes" */
/* Never mapped in the guest: far above the 1:1 map of the largest memory
 * the kit boots (4 GiB) and below the 512 GiB slot the pagetables chapter
 * borrows. The traps chapter reads it on purpose; crash=1 writes it. */
#define PT_UNMAPPED_VA 0xdead00000UL

/* Entry flags (the x86 architecture's; Xen's public headers have none). */
#define _PAGE_PRESENT 0x001UL
#define _PAGE_RW 0x002UL
#define _PAGE_USER 0x004UL
#define _PAGE_PWT 0x008UL
#define _PAGE_PCD 0x010UL
#define _PAGE_ACCESSED 0x020UL
#define _PAGE_DIRTY 0x040UL
#define _PAGE_PSE 0x080UL /* in an L1 entry: PAT */
#define _PAGE_GLOBAL 0x100UL
#define _PAGE_NX (1UL << 63)
#define PTE_ADDR_MASK 0x000ffffffffff000UL

/* How the kernel maps its memory, and how a table is linked to its parent.
 * (Xen adds _PAGE_USER itself: a 64-bit PV kernel runs in ring 3.) */
#define PT_DATA_FLAGS (_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY)
#define PT_TABLE_FLAGS                                                        \
    (_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY)

/* Xen's rule for the initial mapping: up to a 4 MiB boundary, with at
 * least 512 KiB spare after its boot stack. */
#define BOOTSTRAP_ALIGN (4UL << 20)
#define BOOTSTRAP_PADDING (512UL << 10)

/* cffi: begin */

static inline unsigned int pt_index(unsigned long va, int level)
{
    return (va >> (PAGE_SHIFT + PT_INDEX_BITS * (level - 1))) &
           (PT_ENTRIES - 1);
}

static inline unsigned long pte_mfn(pgentry_t entry)
{
    return (entry & PTE_ADDR_MASK) >> PAGE_SHIFT;
}

/* What the kernel is told about its memory (start_info, Xen's m2p). */
struct pt_setup {
    unsigned long pt_base;      /* virtual address of Xen's L4 table */
    unsigned long nr_pt_frames; /* frames of Xen's tables, from pt_base */
    unsigned long nr_pages;     /* pseudo-physical pages: 0 .. nr_pages-1 */
    const unsigned long *p2m;   /* pfn -> mfn: start_info's mfn_list */
    const unsigned long *m2p;   /* mfn -> pfn: Xen's read-only m2p table */
    unsigned long m2p_entries;  /* entries m2p has */
    unsigned long mem_base;     /* where the kernel sees pfn 0: 0 in the
                                   guest, a host buffer in the host build */
};

/* Where Xen put things, derived from pt_base and nr_pt_frames. */
struct pt_bootstrap {
    unsigned long pt_first_pfn;   /* Xen's first page-table frame */
    unsigned long stack_pfn;      /* Xen's boot stack, after the tables */
    unsigned long first_free_pfn; /* first page nothing of Xen's uses */
    unsigned long mapped_end_pfn; /* Xen's initial mapping ends here */
};

/*
 * The state of one set of page tables. Invariants:
 * - every frame of [boot.first_free_pfn, next_free_pfn) was taken for a
 *   new table, and is mapped read-only at its own address; once
 *   alloc_page is set (pt_set_page_source()), tables come from it instead
 *   and next_free_pfn stays where it was;
 * - pending[] holds at most PT_BATCH L1 updates, for distinct entries,
 *   none of which the kernel reads before they are sent;
 * - new_tables[k] counts the tables of level k made here (k = 1..3).
 */
struct pagetables {
    unsigned long magic; /* PT_MAGIC once pt_init() ran */
    struct pt_setup setup;
    struct pt_bootstrap boot;
    unsigned long l4_mfn;
    unsigned long next_free_pfn;
    unsigned long (*alloc_page)(void); /* address of a free page, or 0 */
    unsigned long new_tables[PT_LEVELS];
    unsigned long xen_mapped;       /* pages pt_map_all() found mapped */
    unsigned long mmu_update_calls; /* HYPERVISOR_mmu_update calls */
    unsigned long entries_written;  /* entries Xen accepted through them */
    unsigned long va_update_calls;  /* HYPERVISOR_update_va_mapping calls */
    unsigned long tlb_flushes;
    unsigned long rejected; /* hypercalls Xen refused */
    long last_error;        /* Xen's answer to the last refused one */
    bool need_tlb_flush;    /* a present entry changed: flush when done */
    unsigned int nr_pending;
    mmu_update_t pending[PT_BATCH];
};

/* One level of a walk: which entry of which table, and what it holds. */
struct pt_step {
    int level;          /* 4 .. 1 */
    unsigned int index; /* 0 .. 511 */
    unsigned long table_mfn;
    pgentry_t entry;
};

struct pt_walk {
    unsigned long va;
    int depth;         /* steps read: 4 if the L1 entry was reached */
    bool present;      /* va maps a page */
    unsigned long mfn; /* that page's machine frame */
    unsigned long pfn; /* and its pfn, or PT_NO_FRAME if not ours */
    struct pt_step step[PT_LEVELS]; /* step[0] is the L4 */
};

/* Compute Xen's bootstrap layout from start_info's two numbers. */
void pt_bootstrap_layout(unsigned long pt_base, unsigned long nr_pt_frames,
                         struct pt_bootstrap *out);
/* Start using Xen's tables described by *setup (the current state). */
void pt_init(const struct pt_setup *setup);
/* From now on take pages for new tables from alloc_page() (the page
 * allocator's), not from after the bootstrap area. */
void pt_set_page_source(unsigned long (*alloc_page)(void));
/* Map `count` pages from pfn at va (page-aligned), flags PT_DATA_FLAGS or
 * others. 0, or Xen's negative error code if it refused an update. */
long pt_map(unsigned long va, unsigned long pfn, unsigned long count,
            unsigned long flags);
/* Map one machine frame (not necessarily ours: Xen decides) at va. */
long pt_map_mfn(unsigned long va, unsigned long mfn, unsigned long flags);
/* Unmap `count` pages at va: the number that were mapped, or an error. */
long pt_unmap(unsigned long va, unsigned long count);
/* Map every page 1:1 (virtual = pfn << PAGE_SHIFT), keeping Xen's own
 * mappings as they are and leaving unmapped a page of Xen's bootstrap area
 * that the kernel unmapped (page 0). The number of pages mapped
 * afterwards, or an error. */
long pt_map_all(void);
/* Follow va through the four levels into *walk. */
void pt_walk(unsigned long va, struct pt_walk *walk);
/* Pages of [va, va + count pages) that are mapped. */
unsigned long pt_count_mapped(unsigned long va, unsigned long count);
/* The pfn of machine frame mfn if it is one of ours, else PT_NO_FRAME. */
unsigned long pt_mfn_to_pfn(unsigned long mfn);
void pt_print_walk(const struct pt_walk *walk);
void pt_print_summary(void);

/* The state every call acts on; the host build keeps several. */
struct pagetables *pt_current(void);
struct pagetables *pt_select(struct pagetables *tables);
/* cffi: end */

#endif
