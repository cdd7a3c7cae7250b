/*
 * The safety net: what start of day lays down before the first chapter.
 *
 * Xen starts a PV kernel with no exception table at all: until the kernel
 * registers one, any fault (a NULL pointer, a wild write) makes Xen crash
 * the whole domain and print its own register dump. And Xen's initial
 * mapping is generous: it maps virtual page 0 (the kernel is linked at 0,
 * so that is the first page of its code) and maps everything writable,
 * the kernel's code included. Left so, a read through a NULL pointer
 * silently returns the first bytes of _start, and a wild write into the
 * code changes the code.
 *
 * So, in this order, once start_info is parsed:
 *
 *   1. map shared_info (its vcpu_info holds cr2 for the page-fault
 *      handler) and install the trap table and the event and failsafe
 *      callbacks (traps_init(), kernel/traps.c). From now on a fault is
 *      the guest's own report: its handler prints the faulting address,
 *      the decoded error code and rip, then panics.
 *   2. unmap page 0. Only _start lives there, and it has run; from now on
 *      a NULL pointer (or a small offset from one) faults.
 *   3. remap every page of the code and the read-only data (_text up to
 *      _erodata) without _PAGE_RW. A write there now faults too.
 *
 * Each page is changed with HYPERVISOR_update_va_mapping: Xen finds the
 * L1 entry of that virtual address itself and checks the new entry (the
 * frame must be ours). The entry keeps the page's frame, taken from the
 * p2m (start_info's mfn_list; the kernel is linked at 0, so the pfn of
 * virtual address va is va >> PAGE_SHIFT). The pagetables chapter keeps
 * both rules: pt_map_all() leaves alone a page of Xen's bootstrap area
 * that is not mapped (page 0), and keeps existing mappings as they are.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/events.h>
#include <minios/hypervisor.h>
#include <minios/pagetable.h>
#include <minios/setup.h>
#include <minios/start_of_day.h>
#include <minios/traps.h>

/* From the linker script (kernel/arch/x86_64/minios.lds). */
extern char _erodata[];

/* A kernel page that is read-only: present, accessed, no _PAGE_RW. */
#define READ_ONLY_FLAGS (_PAGE_PRESENT | _PAGE_ACCESSED)

static void install_traps(void)
{
    long rc = map_shared_info(boot_info.shared_info_ma);

    if (rc != 0)
        PANIC("setup_safety_net: mapping shared_info failed: %ld", rc);
    traps_init(vcpu0_info());
}

static void unmap_page_zero(void)
{
    long rc = HYPERVISOR_update_va_mapping(0, 0, UVMF_INVLPG);

    if (rc != 0)
        PANIC("setup_safety_net: Xen refused to unmap page 0: %ld", rc);
}

/* Remap [from, to) read-only, page by page; page 0 stays unmapped. */
static void map_read_only(unsigned long from, unsigned long to)
{
    const unsigned long *p2m = (const unsigned long *)boot_info.mfn_list;
    unsigned long va;

    BUG_ON(from == 0 || (from & ~PAGE_MASK) != 0);
    BUG_ON(to > boot_info.nr_pages << PAGE_SHIFT);
    for (va = from; va < to; va += PAGE_SIZE) {
        uint64_t pte =
            ((uint64_t)p2m[va >> PAGE_SHIFT] << PAGE_SHIFT) | READ_ONLY_FLAGS;
        long rc = HYPERVISOR_update_va_mapping(va, pte, UVMF_INVLPG);

        if (rc != 0)
            PANIC("setup_safety_net: Xen refused to make %#lx read-only: "
                  "%ld",
                  va, rc);
    }
}

void setup_safety_net(void)
{
    install_traps();
    printk("start of day: trap table and event/failsafe callbacks "
           "registered\n");
    unmap_page_zero();
    map_read_only(PAGE_SIZE, ALIGN_UP((unsigned long)_erodata, PAGE_SIZE));
    printk("start of day: page 0 unmapped; kernel text and read-only data "
           "mapped read-only\n");
}
