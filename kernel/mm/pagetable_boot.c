/*
 * Where Xen left the page tables, and reports on them.
 *
 * Xen's domain builder lays the start of a PV guest's memory out in a
 * fixed order from virtual 0: the kernel image, the p2m list, start_info,
 * the page tables (start_info's pt_base, nr_pt_frames frames) and one page
 * of boot stack. It maps all that and more: up to the next 4 MiB boundary,
 * plus 4 MiB more if that left less than 512 KiB after the stack. So from
 * pt_base and nr_pt_frames alone the kernel knows the first page nothing
 * uses (after the stack) and how far Xen's mapping goes; the pages in
 * between are free, already mapped writable, and are where the first new
 * tables come from (kernel/mm/pagetable.c).
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/pagetable.h>
#include <minios/string.h>

void pt_bootstrap_layout(unsigned long pt_base, unsigned long nr_pt_frames,
                         struct pt_bootstrap *out)
{
    unsigned long stack_end, v_end;

    out->pt_first_pfn = pt_base >> PAGE_SHIFT;
    out->stack_pfn = out->pt_first_pfn + nr_pt_frames;
    out->first_free_pfn = out->stack_pfn + 1;
    stack_end = out->first_free_pfn << PAGE_SHIFT;
    v_end = ALIGN_UP(stack_end, BOOTSTRAP_ALIGN);
    if (v_end - stack_end < BOOTSTRAP_PADDING)
        v_end += BOOTSTRAP_ALIGN;
    out->mapped_end_pfn = v_end >> PAGE_SHIFT;
}

static void check_setup(const struct pt_setup *s)
{
    if (s == NULL || s->p2m == NULL || s->m2p == NULL)
        PANIC("pt_init: no setup, p2m or m2p table");
    if (s->pt_base & ~PAGE_MASK)
        PANIC("pt_init: pt_base %#lx is not page-aligned", s->pt_base);
    if (s->nr_pt_frames == 0 || s->nr_pages == 0 ||
        (s->pt_base >> PAGE_SHIFT) + s->nr_pt_frames >= s->nr_pages)
        PANIC("pt_init: %lu tables at %#lx do not fit in %lu pages",
              s->nr_pt_frames, s->pt_base, s->nr_pages);
}

void pt_init(const struct pt_setup *setup)
{
    struct pagetables *tables = pt_current();

    check_setup(setup);
    memset(tables, 0, sizeof(*tables));
    tables->setup = *setup;
    pt_bootstrap_layout(setup->pt_base, setup->nr_pt_frames, &tables->boot);
    if (tables->boot.mapped_end_pfn > setup->nr_pages)
        PANIC("pt_init: Xen's initial mapping (%lu pages) exceeds memory "
              "(%lu pages)",
              tables->boot.mapped_end_pfn, setup->nr_pages);
    tables->l4_mfn = setup->p2m[setup->pt_base >> PAGE_SHIFT];
    tables->next_free_pfn = tables->boot.first_free_pfn;
    tables->magic = PT_MAGIC;
}

/* --- reports ------------------------------------------------------------- */

void pt_print_walk(const struct pt_walk *walk)
{
    int i;

    printk("pagetables: walk %#lx from L4 mfn %#lx:", walk->va,
           walk->step[0].table_mfn);
    for (i = 0; i < walk->depth; i++)
        printk(" L%d[%u]=%#lx", walk->step[i].level, walk->step[i].index,
               (unsigned long)walk->step[i].entry);
    if (!walk->present)
        printk(" not present\n");
    else
        printk(" -> mfn %#lx pfn %#lx %s\n", walk->mfn, walk->pfn,
               (walk->step[PT_LEVELS - 1].entry & _PAGE_RW) ? "rw" : "ro");
}

void pt_print_summary(void)
{
    const struct pagetables *tables = pt_current();

    if (tables->magic != PT_MAGIC)
        PANIC("pt_print_summary: page tables not initialised");
    printk("pagetables: new tables L3 %lu L2 %lu L1 %lu in pfns %#lx-%#lx\n",
           tables->new_tables[3], tables->new_tables[2], tables->new_tables[1],
           tables->boot.first_free_pfn, tables->next_free_pfn);
    printk("pagetables: %lu mmu_update calls wrote %lu entries; %lu "
           "update_va_mapping, %lu TLB flushes, %lu refused\n",
           tables->mmu_update_calls, tables->entries_written,
           tables->va_update_calls, tables->tlb_flushes, tables->rejected);
}
