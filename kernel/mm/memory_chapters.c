/*
 * The booted guest's memory chapters: page tables, then the allocators.
 *
 * pagetables_chapter() starts from what start_info says (pt_base,
 * nr_pt_frames, nr_pages, mfn_list) and Xen's read-only m2p table, maps
 * every page 1:1 and checks the result by walking: each page maps the
 * machine frame the p2m names, and every page-table frame is read-only.
 * Then it maps one page a second time far above the 1:1 area (at 512 GiB,
 * so that one new table of each level is needed), writes through one
 * mapping and reads through the other, unmaps it, and asks Xen for
 * something it must refuse: a writable mapping of the L4 table.
 *
 * mm_chapter() hands the pages after the bootstrap area and the new tables
 * to the page allocator (from then on new tables come from it too), runs
 * the page allocator's and xmalloc's self-tests, uses xmalloc a little,
 * walks the pages it was given and prints a summary.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/events.h>
#include <minios/memory_chapters.h>
#include <minios/mm.h>
#include <minios/pagetable.h>
#include <minios/start_of_day.h>
#include <minios/string.h>

#define ALIAS_VA (1UL << 39) /* L4 slot 1: needs a new L3, L2 and L1 */

/* The end of the kernel's read-only data (kernel/arch/x86_64/minios.lds). */
extern char _erodata[];
#define PATTERN 0x5a5a0123456789a5UL

static void setup_from_start_info(struct pt_setup *setup)
{
    memset(setup, 0, sizeof(*setup));
    setup->pt_base = boot_info.pt_base;
    setup->nr_pt_frames = boot_info.nr_pt_frames;
    setup->nr_pages = boot_info.nr_pages;
    setup->p2m = (const unsigned long *)boot_info.mfn_list;
    setup->m2p = machine_to_phys_mapping;
    setup->m2p_entries = MACH2PHYS_NR_ENTRIES;
    setup->mem_base = 0; /* the kernel is linked at 0: virtual = pfn << 12 */
}

static void print_bootstrap(const struct pagetables *tables)
{
    const struct pt_bootstrap *boot = &tables->boot;

    printk("pagetables: Xen's tables: pfn %#lx-%#lx, boot stack pfn %#lx, "
           "mapping to pfn %#lx; first free pfn %#lx\n",
           boot->pt_first_pfn, boot->stack_pfn - 1, boot->stack_pfn,
           boot->mapped_end_pfn, boot->first_free_pfn);
}

/* Is pfn a page-table frame (Xen's or one made here)? */
static bool is_table(const struct pagetables *tables, unsigned long pfn)
{
    const struct pt_bootstrap *boot = &tables->boot;

    return (pfn >= boot->pt_first_pfn && pfn < boot->stack_pfn) ||
           (pfn >= boot->first_free_pfn && pfn < tables->next_free_pfn);
}

/* The frame page pfn must map: its own, or Xen's shared_info page for the
 * page of .bss that shows it (kernel/hypervisor.c). */
static unsigned long expected_mfn(const struct pagetables *tables,
                                  unsigned long pfn)
{
    if (pfn == (unsigned long)HYPERVISOR_shared_info >> PAGE_SHIFT)
        return boot_info.shared_info_ma >> PAGE_SHIFT;
    return tables->setup.p2m[pfn];
}

/* Every page but page 0 maps its expected frame; page 0 is not mapped (the
 * NULL guard); table frames and the kernel's code are read-only. */
static bool check_mapping(const struct pagetables *tables)
{
    struct pt_walk walk;
    unsigned long pfn, wrong = 0, writable_tables = 0, writable_code = 0;
    unsigned long code_end =
        ALIGN_UP((unsigned long)_erodata, PAGE_SIZE) >> PAGE_SHIFT;

    for (pfn = 0; pfn < tables->setup.nr_pages; pfn++) {
        bool rw;

        pt_walk(pfn << PAGE_SHIFT, &walk);
        rw = walk.present && (walk.step[PT_LEVELS - 1].entry & _PAGE_RW);
        if (pfn == 0)
            wrong += walk.present;
        else
            wrong += !walk.present || walk.mfn != expected_mfn(tables, pfn);
        writable_tables += is_table(tables, pfn) && rw;
        writable_code += pfn < code_end && rw;
    }
    printk("pagetables: walked every page: %lu map a wrong frame, %lu "
           "table frames are writable\n",
           wrong, writable_tables);
    printk("pagetables: page 0 is %s; %lu pages of kernel code and "
           "read-only data are writable\n",
           pt_count_mapped(0, 1) ? "MAPPED" : "not mapped (the NULL guard)",
           writable_code);
    return wrong == 0 && writable_tables == 0 && writable_code == 0;
}

/* Write through the 1:1 mapping, read through an alias, and back. */
static bool alias_works(unsigned long pfn)
{
    volatile unsigned long *direct = (void *)(pfn << PAGE_SHIFT);
    volatile unsigned long *alias = (void *)ALIAS_VA;
    struct pt_walk walk;
    bool ok;

    *direct = PATTERN;
    if (pt_map(ALIAS_VA, pfn, 1, PT_DATA_FLAGS) != 0)
        return false;
    pt_walk(ALIAS_VA, &walk);
    pt_print_walk(&walk);
    ok = walk.present && walk.pfn == pfn && *alias == PATTERN;
    *alias = ~PATTERN;
    ok = ok && *direct == ~PATTERN;
    ok = ok && pt_unmap(ALIAS_VA, 1) == 1;
    pt_walk(ALIAS_VA, &walk);
    pt_print_walk(&walk);
    printk("pagetables: alias of pfn %#lx at %#lx: %s\n", pfn, ALIAS_VA,
           ok && !walk.present ? "written, read back, unmapped" : "FAILED");
    return ok && !walk.present;
}

/* Xen must refuse a writable mapping of a page-table frame. */
static bool xen_refuses_writable_table(const struct pagetables *tables)
{
    unsigned long l4_pfn = tables->boot.pt_first_pfn;
    long rc = pt_map(ALIAS_VA, l4_pfn, 1, PT_DATA_FLAGS);
    long ro = pt_map(ALIAS_VA, l4_pfn, 1, PT_DATA_FLAGS & ~_PAGE_RW);

    printk("pagetables: map the L4 (pfn %#lx) writable: Xen says %ld%s; "
           "read-only: %ld\n",
           l4_pfn, rc, rc == -XEN_EBUSY ? " (EBUSY: refused)" : "", ro);
    return rc < 0 && ro == 0 && pt_unmap(ALIAS_VA, 1) == 1;
}

static void walk_some(const struct pagetables *tables)
{
    unsigned long nr_pages = tables->setup.nr_pages;
    unsigned long va[] = {0,
                          (unsigned long)&boot_info,
                          tables->setup.pt_base,
                          tables->boot.first_free_pfn << PAGE_SHIFT,
                          (nr_pages - 1) << PAGE_SHIFT,
                          nr_pages << PAGE_SHIFT};
    struct pt_walk walk;
    unsigned int i;

    for (i = 0; i < ARRAY_SIZE(va); i++) {
        pt_walk(va[i], &walk);
        pt_print_walk(&walk);
    }
}

int pagetables_chapter(void)
{
    struct pt_setup setup;
    const struct pagetables *tables;
    long mapped;
    bool ok;

    setup_from_start_info(&setup);
    if (setup.nr_pages > (PT_UNMAPPED_VA >> PAGE_SHIFT))
        PANIC("pagetables_chapter: %lu pages would map %#lx, the address "
              "kept unmapped for the traps chapter",
              setup.nr_pages, PT_UNMAPPED_VA);
    pt_init(&setup);
    tables = pt_current();
    print_bootstrap(tables);
    mapped = pt_map_all();
    /* Every page is to be mapped but page 0 (the NULL guard). */
    printk("pagetables: Xen had mapped %lu pages; pages mapped %ld of %lu "
           "(%lu MiB, all but page 0)\n",
           tables->xen_mapped, mapped, setup.nr_pages - 1,
           setup.nr_pages >> (20 - PAGE_SHIFT));
    ok = mapped == (long)setup.nr_pages - 1 && check_mapping(tables);
    walk_some(tables);
    ok = ok && alias_works(setup.nr_pages - 1);
    ok = ok && xen_refuses_writable_table(tables);
    pt_print_summary();
    return ok ? 0 : -1;
}

/* --- mm ------------------------------------------------------------------ */

static bool use_xmalloc(void)
{
    unsigned long before = mm_free_page_count();
    char *small = xmalloc(24), *aligned = xmalloc_align(200, 64);
    char *big = xmalloc(3 * PAGE_SIZE);
    struct xmalloc_stats stats;
    bool ok = small && aligned && big && (unsigned long)aligned % 64 == 0;

    if (ok) {
        memset(small, 's', 24);
        memset(aligned, 'a', 200);
        memset(big, 'b', 3 * PAGE_SIZE);
        xmalloc_check();
        ok = small[23] == 's' && aligned[0] == 'a' &&
             big[3 * PAGE_SIZE - 1] == 'b';
    }
    xmalloc_get_stats(&stats);
    printk("xmalloc: 24 B, 200 B (64-aligned), 12 KiB: %lu arena, %lu used "
           "blocks, %lu big, %lu pages taken\n",
           stats.arenas, stats.used_blocks, stats.big_allocations,
           before - mm_free_page_count());
    xfree(aligned);
    xfree(big);
    xfree(small);
    xmalloc_check();
    ok = ok && mm_free_page_count() == before;
    printk("xmalloc: all freed, %lu pages free as before: %s\n", before,
           ok ? "yes" : "NO");
    return ok;
}

/* Pages the allocator hands out are mapped 1:1 and writable. */
static bool allocations_mapped(void)
{
    unsigned long address = alloc_pages(2), i;
    struct pt_walk walk;
    bool ok = address != 0;

    for (i = 0; ok && i < 4; i++) {
        pt_walk(address + i * PAGE_SIZE, &walk);
        ok = walk.present && walk.pfn == (address >> PAGE_SHIFT) + i &&
             (walk.step[PT_LEVELS - 1].entry & _PAGE_RW);
    }
    if (address) {
        pt_walk(address, &walk);
        pt_print_walk(&walk);
        free_pages((void *)address, 2);
    }
    return ok;
}

static void print_summary(const struct pagetables *tables)
{
    struct mm_stats stats;
    int k;

    mm_get_stats(&stats);
    printk("mm: summary: pages mapped %lu, pool pfns %#lx-%#lx, allocator "
           "metadata %lu pages, free pages %lu; chunks per order:",
           pt_count_mapped(0, tables->setup.nr_pages), stats.first_pfn,
           stats.end_pfn, stats.meta_pages, stats.free_pages);
    for (k = 0; k <= MM_MAX_ORDER; k++)
        if (stats.chunks[k])
            printk(" %d:%lu", k, stats.chunks[k]);
    printk("\n");
}

int mm_chapter(void)
{
    const struct pagetables *tables = pt_current();
    unsigned long first, end;
    bool ok;

    if (tables->magic != PT_MAGIC) {
        printk("mm: no page tables (chapter pagetables failed)\n");
        return -1;
    }
    first = tables->next_free_pfn;
    end = tables->setup.nr_pages;
    printk("mm: page allocator on pfns %#lx-%#lx (%lu pages; below: the "
           "kernel, Xen's bootstrap area, %lu new tables)\n",
           first, end, end - first, first - tables->boot.first_free_pfn);
    init_page_allocator(first << PAGE_SHIFT, end << PAGE_SHIFT);
    pt_set_page_source(alloc_page);
    ok = mm_selftest() == 0;
    ok = use_xmalloc() && ok;
    ok = xmalloc_selftest() == 0 && ok;
    ok = allocations_mapped() && ok;
    mm_check();
    print_summary(tables);
    return ok ? 0 : -1;
}
