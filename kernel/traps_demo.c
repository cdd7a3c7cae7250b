/*
 * The traps chapter in the guest: install the virtual exception table, then
 * take real exceptions on Xen and survive them.
 *
 * Five demonstrations, each checking its own outcome and printing one line
 * "traps: demo NAME: PASS" (or FAIL), which the boot tests read:
 *
 *   int3     a breakpoint: the handler counts it and returns; execution
 *            goes on with the instruction after the int3.
 *   ud2      an invalid opcode, recovered through the fix-up table: the
 *            handler finds the faulting rip there and sends execution to
 *            the registered landing.
 *   divide   a division by zero, recovered the same way.
 *   pagefault
 *            a read of an unmapped address (0xdead00000): the handler
 *            reports the faulting address that Xen left in the vcpu_info
 *            (arch.cr2), and recovers through the fix-up table.
 *   eventmask
 *            with events enabled, an int3 and a page fault: Xen masks
 *            events for the page-fault handler only (the flag in its
 *            trap_info), and the iret hypercall unmasks them on return.
 *
 * The instructions that fault live in kernel/arch/x86_64/trap_demo.S.
 *
 * The page-fault handler reads cr2 from the vcpu_info in shared_info, a
 * page that Xen gives by machine address: the chapter has it mapped first
 * (map_shared_info() in kernel/hypervisor.c, which the events chapter
 * uses too).
 *
 * With trapfatal=1 on the command line, the chapter ends with a page fault
 * that has no fix-up: the handler must stop the guest with a PANIC.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/events.h>
#include <minios/pagetable.h>
#include <minios/start_of_day.h>
#include <minios/traps.h>

/* Far above any memory a course guest gets, and never mapped. */
#define DEMO_UNMAPPED PT_UNMAPPED_VA

static int verdict(const char *demo, bool ok)
{
    printk("traps: demo %s: %s\n", demo, ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}

static int demo_int3(void)
{
    unsigned long before = trap_stats.taken[TRAP_int3];
    int value = trap_demo_int3();
    bool ok =
        value == 42 && trap_stats.taken[TRAP_int3] == before + 1 &&
        trap_stats.last.vector == TRAP_int3 &&
        trap_stats.last.resume_at == (unsigned long)trap_demo_int3_resume;

    printk("traps: int3 taken %lu time(s); execution went on after it "
           "(returned %d)\n",
           trap_stats.taken[TRAP_int3] - before, value);
    return verdict("int3", ok);
}

/* Did the last exception hit `fault` as `vector` and land at `landing`? */
static bool recovered(long result, unsigned long vector, const char *fault,
                      const char *landing)
{
    printk("traps: %s at fault label, resumed at %s landing, returned %ld\n",
           trap_stats.last.rip == (unsigned long)fault ? "trapped" : "NOT",
           trap_stats.last.resume_at == (unsigned long)landing ? "the"
                                                               : "NOT the",
           result);
    return result == -1 && trap_stats.last.vector == vector &&
           trap_stats.last.rip == (unsigned long)fault &&
           trap_stats.last.resume_at == (unsigned long)landing;
}

static int demo_ud2(void)
{
    long result;

    trap_fixup_add((unsigned long)trap_demo_ud2_fault,
                   (unsigned long)trap_demo_ud2_landing);
    result = trap_demo_ud2();
    return verdict("ud2",
                   recovered(result, TRAP_invalid_op, trap_demo_ud2_fault,
                             trap_demo_ud2_landing));
}

static int demo_divide(void)
{
    long result;

    trap_fixup_add((unsigned long)trap_demo_divide_fault,
                   (unsigned long)trap_demo_divide_landing);
    result = trap_demo_divide(7, 0);
    return verdict("divide",
                   recovered(result, TRAP_divide_error, trap_demo_divide_fault,
                             trap_demo_divide_landing));
}

static int demo_page_fault(void)
{
    unsigned long value = 0;
    long result;
    bool ok;

    trap_fixup_add((unsigned long)trap_demo_read_fault,
                   (unsigned long)trap_demo_read_landing);
    result = trap_demo_read((const unsigned long *)DEMO_UNMAPPED, &value);
    ok = recovered(result, TRAP_page_fault, trap_demo_read_fault,
                   trap_demo_read_landing);
    printk("traps: cr2 %#lx (expected %#lx), error code %#lx\n",
           trap_stats.last.cr2, DEMO_UNMAPPED, trap_stats.last.error_code);
    ok = ok && trap_stats.last.cr2 == DEMO_UNMAPPED &&
         !(trap_stats.last.error_code & (PF_PROT | PF_WRITE | PF_INSTR));
    return verdict("pagefault", ok);
}

/*
 * With events enabled, an int3 (its trap_info entry leaves events alone)
 * runs its handler with events still enabled; a page fault (its entry has
 * the event-mask flag) runs with events masked by Xen, which saved the old
 * mask in cs. The iret hypercall puts the old mask back.
 */
static int demo_event_mask(void)
{
    bool was_disabled = irqs_disabled();
    unsigned long value, int3_mask, pf_mask, pf_saved, after;

    local_irq_enable();
    trap_demo_int3();
    int3_mask = trap_stats.last.upcall_mask;
    trap_demo_read((const unsigned long *)DEMO_UNMAPPED, &value);
    pf_mask = trap_stats.last.upcall_mask;
    pf_saved = trap_stats.last.saved_mask;
    after = vcpu0_info()->evtchn_upcall_mask;
    if (was_disabled)
        local_irq_disable();
    printk("traps: events on: int3 handler saw mask %lu, page-fault handler "
           "saw mask %lu (saved %lu), mask after return %lu\n",
           int3_mask, pf_mask, pf_saved, after);
    return verdict("eventmask", int3_mask == 0 && pf_mask == 1 &&
                                    pf_saved == 0 && after == 0);
}

static void fatal_if_asked(void)
{
    unsigned long value;

    if (!boot_arg_ulong(&boot_info, "trapfatal", 0))
        return;
    printk("traps: trapfatal=1: reading %#lx with no fix-up\n", DEMO_UNMAPPED);
    trap_fixup_clear();
    trap_demo_read((const unsigned long *)DEMO_UNMAPPED, &value);
    printk("traps: the fatal page fault came back: FAIL\n");
}

int traps_chapter(void)
{
    long rc = map_shared_info(boot_info.shared_info_ma);
    int failed = 0;

    if (rc != 0) {
        printk("traps: mapping shared_info failed: %ld\n", rc);
        return -1;
    }
    traps_init(vcpu0_info());
    printk("traps: trap table and event/failsafe callbacks registered\n");
    failed += demo_int3();
    failed += demo_ud2();
    failed += demo_divide();
    failed += demo_page_fault();
    failed += demo_event_mask();
    fatal_if_asked();
    return failed == 0 ? 0 : -1;
}
