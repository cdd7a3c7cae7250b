/*
 * Page tables, the PV way: extending the tables Xen built, through Xen.
 *
 * A PV guest runs on the real MMU, so its page-table entries hold *machine*
 * frame numbers (mfn), not the pseudo-physical ones (pfn) the guest counts
 * its memory in; start_info's mfn_list (the p2m) converts one way, Xen's
 * read-only m2p table the other. The guest may read its tables but never
 * write them: every table frame is mapped read-only, and each change is a
 * request to Xen, HYPERVISOR_mmu_update(machine address of the entry, new
 * value), which Xen checks first. Xen refuses (see xen/xen.h and the
 * notebook 05) an entry that maps a frame the domain does not own, that
 * maps a page-table frame writable, or that sets flags Xen reserves. It
 * gives every frame a type: a table of one level, or plain data; a frame
 * becomes a table only while nothing maps it writable, and is validated
 * when it is first linked in.
 *
 * At start of day Xen has mapped a "bootstrap area" from virtual 0: the
 * kernel, the p2m list, start_info, its page tables (pt_base, nr_pt_frames)
 * and a boot stack page just after them, rounded up to a 4 MiB boundary
 * with at least 512 KiB to spare (kernel/mm/pagetable_boot.c). pt_map_all()
 * extends the tables until every page is mapped at virtual = pfn <<
 * PAGE_SHIFT, the kernel being linked at 0; a page of the bootstrap area
 * that the kernel unmapped itself (page 0, kernel/setup.c) stays unmapped,
 * and pages already mapped keep their flags (the code stays read-only).
 * A missing table is made so:
 *
 *   1. take the next frame after the bootstrap area (Xen mapped it
 *      writable) and zero it through that mapping;
 *   2. remap it read-only with HYPERVISOR_update_va_mapping on its own
 *      virtual address, since a frame mapped writable cannot become a
 *      table;
 *   3. write the parent's entry with mmu_update: Xen validates the new
 *      table (all zero, nothing to check) and keeps it typed as L1/L2/L3
 *      while that entry references it. No pinning is needed: a pin only
 *      keeps a table's type while *no* entry references it.
 *
 * Leaf entries are queued and sent PT_BATCH at a time. When a present
 * entry changed (a remap or an unmap), the TLB is flushed at the end.
 *
 * To read a table the kernel needs its pseudo-physical address: it turns
 * the mfn of an entry into a pfn with the m2p, and sees page pfn at
 * setup.mem_base + (pfn << PAGE_SHIFT). In the guest mem_base is 0; in the
 * host build it is the buffer that stands for the guest's memory. That is
 * the only difference between the two builds.
 */
#include <minios/bug.h>
#include <minios/hypervisor.h>
#include <minios/pagetable.h>
#include <minios/string.h>

static struct pagetables boot_pagetables;
static struct pagetables *pt = &boot_pagetables;

struct pagetables *pt_current(void)
{
    return pt;
}

struct pagetables *pt_select(struct pagetables *tables)
{
    struct pagetables *previous = pt;

    if (tables == NULL)
        PANIC("pt_select: NULL page tables");
    pt = tables;
    return previous;
}

static void check_ready(const char *function)
{
    if (pt->magic != PT_MAGIC)
        PANIC("%s: page tables not initialised (pt_init() first)", function);
}

static pgentry_t make_pte(unsigned long mfn, unsigned long flags)
{
    return ((pgentry_t)mfn << PAGE_SHIFT) | flags;
}

/* --- frames -------------------------------------------------------------- */

unsigned long pt_mfn_to_pfn(unsigned long mfn)
{
    unsigned long pfn;

    if (mfn >= pt->setup.m2p_entries)
        return PT_NO_FRAME;
    pfn = pt->setup.m2p[mfn];
    if (pfn >= pt->setup.nr_pages || pt->setup.p2m[pfn] != mfn)
        return PT_NO_FRAME;
    return pfn;
}

/* Where the kernel reads the table held in machine frame mfn. */
static pgentry_t *table_at(unsigned long mfn)
{
    unsigned long pfn = pt_mfn_to_pfn(mfn);

    if (pfn == PT_NO_FRAME)
        PANIC("table_at: machine frame %#lx holds a page table but is not "
              "one of this domain's pages",
              mfn);
    return (pgentry_t *)(pt->setup.mem_base + (pfn << PAGE_SHIFT));
}

static long note_error(long rc)
{
    if (rc < 0) {
        pt->rejected++;
        pt->last_error = rc;
    }
    return rc;
}

/* --- batched updates ----------------------------------------------------- */

static long flush_updates(void)
{
    unsigned int done = 0, count = pt->nr_pending;
    long rc;

    if (count == 0)
        return 0;
    pt->nr_pending = 0;
    rc = HYPERVISOR_mmu_update(pt->pending, count, &done, DOMID_SELF);
    pt->mmu_update_calls++;
    pt->entries_written += done;
    return note_error(rc);
}

/* Queue "table_mfn[index] = value"; send the batch when it is full. */
static long queue_update(unsigned long table_mfn, unsigned int index,
                         pgentry_t value)
{
    mmu_update_t *req = &pt->pending[pt->nr_pending++];

    /* BEGIN SOLUTION */
    req->ptr = ((uint64_t)table_mfn << PAGE_SHIFT) +
               index * sizeof(pgentry_t) + MMU_NORMAL_PT_UPDATE;
    req->val = value;
    /* END SOLUTION */
    return pt->nr_pending == PT_BATCH ? flush_updates() : 0;
}

/* Send what is queued, then flush the TLB if a present entry changed. */
static long finish_updates(void)
{
    struct mmuext_op flush = {.cmd = MMUEXT_TLB_FLUSH_LOCAL};
    long rc = flush_updates();

    if (rc < 0 || !pt->need_tlb_flush)
        return rc;
    pt->need_tlb_flush = false;
    pt->tlb_flushes++;
    return note_error(HYPERVISOR_mmuext_op(&flush, 1, NULL, DOMID_SELF));
}

/* --- new tables ---------------------------------------------------------- */

static bool mapped_writable(unsigned long va, unsigned long mfn)
{
    struct pt_walk walk;

    pt_walk(va, &walk);
    return walk.present && walk.mfn == mfn &&
           (walk.step[PT_LEVELS - 1].entry & _PAGE_RW);
}

/* A page for a new table: the next one after the bootstrap area, or one
 * from the page allocator once it runs. It must be mapped writable. */
static unsigned long take_table_frame(void)
{
    unsigned long pfn = pt->next_free_pfn;

    if (pt->alloc_page != NULL) {
        unsigned long address = pt->alloc_page();

        if (address == 0)
            PANIC("take_table_frame: the page allocator has no page left");
        pfn = (address - pt->setup.mem_base) >> PAGE_SHIFT;
    } else if (pfn < pt->setup.nr_pages) {
        pt->next_free_pfn++;
    }
    if (pfn >= pt->setup.nr_pages)
        PANIC("take_table_frame: pfn %#lx is beyond the domain's %lu pages",
              pfn, pt->setup.nr_pages);
    if (!mapped_writable(pfn << PAGE_SHIFT, pt->setup.p2m[pfn]))
        PANIC("take_table_frame: pfn %#lx is not mapped writable at %#lx, "
              "so it cannot be cleared for a table",
              pfn, pfn << PAGE_SHIFT);
    return pfn;
}

void pt_set_page_source(unsigned long (*alloc_page)(void))
{
    check_ready("pt_set_page_source");
    pt->alloc_page = alloc_page;
}

/* Make an empty table of `level` and link it at parent_mfn[index]. */
static long new_table(unsigned long parent_mfn, unsigned int index, int level)
{
    unsigned long pfn, mfn, va;
    long rc = flush_updates();

    if (rc < 0)
        return rc;
    pfn = take_table_frame();
    mfn = pt->setup.p2m[pfn];
    va = pfn << PAGE_SHIFT;
    memset((void *)(pt->setup.mem_base + va), 0, PAGE_SIZE);
    /* BEGIN SOLUTION */
    rc = HYPERVISOR_update_va_mapping(
        va, make_pte(mfn, PT_DATA_FLAGS & ~_PAGE_RW), UVMF_INVLPG);
    pt->va_update_calls++;
    if (note_error(rc) < 0)
        return rc;
    queue_update(parent_mfn, index, make_pte(mfn, PT_TABLE_FLAGS));
    rc = flush_updates();
    /* END SOLUTION */
    if (rc == 0)
        pt->new_tables[level]++;
    return rc;
}

/*
 * The machine frame of the table at `level` that covers va, found from the
 * L4 down; with `create`, missing tables are made on the way. Returns 0
 * with *mfn set, 1 if a table is missing, or Xen's error.
 */
static long find_table(unsigned long va, int level, bool create,
                       unsigned long *mfn)
{
    int l;

    *mfn = pt->l4_mfn;
    for (l = PT_LEVELS; l > level; l--) {
        unsigned int index = pt_index(va, l);
        pgentry_t entry = table_at(*mfn)[index];

        if (!(entry & _PAGE_PRESENT)) {
            long rc = create ? new_table(*mfn, index, l - 1) : 1;

            if (rc != 0)
                return rc;
            entry = table_at(*mfn)[index];
            BUG_ON(!(entry & _PAGE_PRESENT));
        }
        *mfn = pte_mfn(entry);
    }
    return 0;
}

/* --- mapping ------------------------------------------------------------- */

/* Queue va -> mfn. With keep_present, an existing mapping stays as it is
 * and 1 is returned: it must be of mfn, or of a frame that is not one of
 * ours, which the kernel mapped there on purpose (shared_info). */
static long map_page(unsigned long va, unsigned long mfn, unsigned long flags,
                     bool keep_present)
{
    unsigned long l1;
    long rc = find_table(va, 1, true, &l1);
    pgentry_t old;

    if (rc < 0)
        return rc;
    old = table_at(l1)[pt_index(va, 1)];
    if ((old & _PAGE_PRESENT) && keep_present) {
        if (pte_mfn(old) != mfn && pt_mfn_to_pfn(pte_mfn(old)) != PT_NO_FRAME)
            PANIC("map_page: %#lx maps mfn %#lx, expected %#lx", va,
                  pte_mfn(old), mfn);
        return 1;
    }
    pt->need_tlb_flush |= (old & _PAGE_PRESENT) != 0;
    return queue_update(l1, pt_index(va, 1), make_pte(mfn, flags));
}

static void check_range(const char *function, unsigned long va,
                        unsigned long count)
{
    unsigned long own_end = pt->next_free_pfn << PAGE_SHIFT;

    check_ready(function);
    if (va & ~PAGE_MASK)
        PANIC("%s: va %#lx is not page-aligned", function, va);
    if (count == 0)
        PANIC("%s: count is 0 pages", function);
    if (count > PT_VA_LIMIT >> PAGE_SHIFT ||
        va > PT_VA_LIMIT - (count << PAGE_SHIFT))
        PANIC("%s: %lu pages at %#lx reach beyond %#lx", function, count, va,
              PT_VA_LIMIT);
    if (va < own_end)
        PANIC("%s: %#lx is in the kernel's own area (below %#lx: image, "
              "p2m, start_info, page tables)",
              function, va, own_end);
}

static void check_flags(const char *function, unsigned long flags)
{
    if (!(flags & _PAGE_PRESENT))
        PANIC("%s: flags %#lx lack _PAGE_PRESENT (use pt_unmap)", function,
              flags);
    if (flags & PTE_ADDR_MASK)
        PANIC("%s: flags %#lx have address bits set", function, flags);
}

long pt_map(unsigned long va, unsigned long pfn, unsigned long count,
            unsigned long flags)
{
    unsigned long i;
    long rc;

    check_range("pt_map", va, count);
    check_flags("pt_map", flags);
    if (pfn >= pt->setup.nr_pages || count > pt->setup.nr_pages - pfn)
        PANIC("pt_map: pfns %#lx + %lu pages go beyond the domain's %lu", pfn,
              count, pt->setup.nr_pages);
    for (i = 0; i < count; i++) {
        rc = map_page(va + (i << PAGE_SHIFT), pt->setup.p2m[pfn + i], flags,
                      false);
        if (rc < 0)
            return rc;
    }
    return finish_updates();
}

long pt_map_mfn(unsigned long va, unsigned long mfn, unsigned long flags)
{
    long rc;

    check_range("pt_map_mfn", va, 1);
    check_flags("pt_map_mfn", flags);
    rc = map_page(va, mfn, flags, false);
    return rc < 0 ? rc : finish_updates();
}

long pt_unmap(unsigned long va, unsigned long count)
{
    unsigned long i, l1, addr;
    long rc, cleared = 0;

    check_range("pt_unmap", va, count);
    for (i = 0; i < count; i++) {
        addr = va + (i << PAGE_SHIFT);
        if (find_table(addr, 1, false, &l1) != 0 ||
            !(table_at(l1)[pt_index(addr, 1)] & _PAGE_PRESENT))
            continue;
        rc = queue_update(l1, pt_index(addr, 1), 0);
        if (rc < 0)
            return rc;
        cleared++;
    }
    pt->need_tlb_flush |= cleared > 0;
    rc = finish_updates();
    return rc < 0 ? rc : cleared;
}

/* Xen mapped all of its bootstrap area: a page there that is not mapped
 * any more was unmapped on purpose (page 0, so that NULL faults). */
static bool unmapped_on_purpose(unsigned long pfn)
{
    struct pt_walk walk;

    if (pfn >= pt->boot.mapped_end_pfn)
        return false;
    pt_walk(pfn << PAGE_SHIFT, &walk);
    return !walk.present;
}

long pt_map_all(void)
{
    unsigned long pfn;
    long rc;

    check_ready("pt_map_all");
    pt->xen_mapped = 0;
    for (pfn = 0; pfn < pt->setup.nr_pages; pfn++) {
        if (unmapped_on_purpose(pfn))
            continue;
        rc = map_page(pfn << PAGE_SHIFT, pt->setup.p2m[pfn], PT_DATA_FLAGS,
                      true);
        if (rc < 0)
            return rc;
        pt->xen_mapped += rc;
    }
    rc = finish_updates();
    return rc < 0 ? rc : (long)pt_count_mapped(0, pt->setup.nr_pages);
}

/* --- reading ------------------------------------------------------------- */

void pt_walk(unsigned long va, struct pt_walk *walk)
{
    unsigned long mfn = pt->l4_mfn;
    int level;

    check_ready("pt_walk");
    if (va >= PT_VA_LIMIT)
        PANIC("pt_walk: %#lx is not in the guest's lower half", va);
    memset(walk, 0, sizeof(*walk));
    walk->va = va;
    walk->pfn = PT_NO_FRAME;
    for (level = PT_LEVELS; level >= 1; level--) {
        struct pt_step *step = &walk->step[walk->depth++];

        /* BEGIN SOLUTION */
        step->level = level;
        step->index = pt_index(va, level);
        step->table_mfn = mfn;
        step->entry = table_at(mfn)[step->index];
        if (!(step->entry & _PAGE_PRESENT))
            return;
        mfn = pte_mfn(step->entry);
        /* END SOLUTION */
    }
    walk->present = true;
    walk->mfn = mfn;
    walk->pfn = pt_mfn_to_pfn(mfn);
}

unsigned long pt_count_mapped(unsigned long va, unsigned long count)
{
    struct pt_walk walk;
    unsigned long i, mapped = 0;

    for (i = 0; i < count; i++) {
        pt_walk(va + (i << PAGE_SHIFT), &walk);
        mapped += walk.present;
    }
    return mapped;
}
