/*
 * shared_info and the event upcall: the two-level scan.
 *
 * shared_info is a page Xen shares with the guest. start_info gives its
 * *machine* address; a PV guest cannot use machine addresses directly, so
 * map_shared_info() asks Xen to point the PTE of a page-aligned page of our
 * own .bss at that machine frame (update_va_mapping). From then on the
 * guest reads and writes Xen's page through HYPERVISOR_shared_info. The
 * host build has no Xen page to map: Python allocates a page and hands it
 * to set_shared_info(), so every other line of the event code is the same.
 *
 * When a port fires, Xen (for a 2-level guest) does, atomically per bit:
 *
 *   if test_and_set(pending[port]) was clear and mask[port] is clear:
 *       if test_and_set(pending_sel[port / 64]) was clear:
 *           evtchn_upcall_pending = 1; kick the vCPU
 *
 * and, on the way back to the guest, if evtchn_upcall_pending is set and
 * evtchn_upcall_mask is clear, it sets evtchn_upcall_mask and enters the
 * event callback (entry.S: hypervisor_callback, which saves a pt_regs and
 * calls do_hypervisor_callback()). Returning through the iret hypercall
 * restores evtchn_upcall_mask from the saved RFLAGS.IF, so events come back
 * on atomically with the return.
 *
 * do_hypervisor_callback() scans in a fixed, documented order:
 *
 *   1. evtchn_upcall_pending = 0, then sel = xchg(&pending_sel, 0). Clearing
 *      first means an event Xen raises after the xchg sets both again and
 *      is delivered by the next upcall, never lost.
 *   2. Selector words lowest first. For word w, candidates are
 *      pending[w] & ~mask[w], read once; ports lowest bit first.
 *   3. evtchn_deliver() re-checks each candidate (a handler may have masked
 *      or cleared a later one) and clears its pending bit before calling the
 *      handler, so a re-raise during the handler is a new event.
 *
 * Lowest-first is simple and predictable, but not fair: a port that fires
 * constantly in a low word delays every higher one (Linux rotates the start
 * point for that reason). A port raised during the scan, in a word already
 * passed or not, sets its selector bit and evtchn_upcall_pending again and
 * is taken by the next upcall, which Xen sends as soon as we return.
 */
#include <arch/cpu.h>
#include <minios/bug.h>
#include <minios/events.h>
#include <minios/hypervisor.h>
#include <minios/pagetable.h>

/* PTE bits for the shared_info mapping: a data page like any other
 * (<minios/pagetable.h>); Xen adds _PAGE_USER itself, as for every page of
 * a 64-bit PV kernel, which runs in ring 3. */
#define SHARED_INFO_PTE_FLAGS PT_DATA_FLAGS

shared_info_t *HYPERVISOR_shared_info;
unsigned long shared_info_generation;
struct upcall_stats upcall_stats;

/* The guest's window on Xen's page: its frame is replaced, never used. */
static char shared_info_page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

void set_shared_info(shared_info_t *s)
{
    if (s == NULL || ((unsigned long)s & ~PAGE_MASK) != 0)
        PANIC("set_shared_info: %p is not a page", (void *)s);
    HYPERVISOR_shared_info = s;
    shared_info_generation++;
}

long map_shared_info(unsigned long shared_info_ma)
{
    unsigned long va = (unsigned long)shared_info_page;
    long rc;

    if (HYPERVISOR_shared_info == (shared_info_t *)shared_info_page)
        return 0;
    BUG_ON(shared_info_ma & ~PAGE_MASK);
    rc = HYPERVISOR_update_va_mapping(
        va, shared_info_ma | SHARED_INFO_PTE_FLAGS, UVMF_INVLPG);
    if (rc == 0)
        set_shared_info((shared_info_t *)shared_info_page);
    return rc;
}

vcpu_info_t *vcpu0_info(void)
{
    BUG_ON(HYPERVISOR_shared_info == NULL);
    return &HYPERVISOR_shared_info->vcpu_info[0];
}

/* Step 2 for one selector word: deliver its candidates, lowest bit first. */
static unsigned long scan_word(unsigned int word, struct pt_regs *regs)
{
    shared_info_t *s = HYPERVISOR_shared_info;
    unsigned long delivered = 0;
    unsigned long bits;

    /* BEGIN SOLUTION */
    bits = s->evtchn_pending[word] & ~s->evtchn_mask[word];
    while (bits != 0) {
        unsigned int bit = (unsigned int)__builtin_ctzl(bits);

        bits &= bits - 1;
        delivered += evtchn_deliver(word * EVTCHN_WORD_BITS + bit, regs);
    }
    /* END SOLUTION */
    return delivered;
}

void do_hypervisor_callback(struct pt_regs *regs)
{
    vcpu_info_t *v = vcpu0_info();
    unsigned long sel, found = 0;

    /* Xen masks events before entering the callback: no nesting. */
    if (!v->evtchn_upcall_mask)
        PANIC("do_hypervisor_callback: entered with events enabled");
    upcall_stats.upcalls++;

    /* BEGIN SOLUTION */
    v->evtchn_upcall_pending = 0;
    sel = xchg((unsigned long *)&v->evtchn_pending_sel, 0);
    while (sel != 0) {
        unsigned int word = (unsigned int)__builtin_ctzl(sel);

        sel &= sel - 1;
        upcall_stats.words++;
        found += scan_word(word, regs);
    }
    /* END SOLUTION */
    if (found == 0)
        upcall_stats.spurious++;
}
