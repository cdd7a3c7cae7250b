/*
 * The host build's stand-ins for the exception entry stubs of entry.S.
 *
 * traps_init() puts the stubs' addresses in the trap table, so the host
 * build needs symbols with those names. Nothing ever jumps to them here:
 * in the host build no instruction really faults, and Python plays both
 * Xen and the stubs, building a struct pt_regs and calling do_exception()
 * itself (minios_lab/traps.py). A call to a stand-in is therefore a bug.
 */
#include <minios/bug.h>
#include <minios/traps.h>

#define STAND_IN(name)                                                        \
    void name(void)                                                           \
    {                                                                         \
        PANIC("%s: entry stubs are guest-only; Python calls do_exception()",  \
              #name);                                                         \
    }

STAND_IN(divide_error)
STAND_IN(debug)
STAND_IN(int3)
STAND_IN(overflow)
STAND_IN(bounds)
STAND_IN(invalid_op)
STAND_IN(device_not_available)
STAND_IN(coprocessor_segment_overrun)
STAND_IN(invalid_TSS)
STAND_IN(segment_not_present)
STAND_IN(stack_segment)
STAND_IN(general_protection)
STAND_IN(page_fault)
STAND_IN(spurious_interrupt_bug)
STAND_IN(coprocessor_error)
STAND_IN(alignment_check)
STAND_IN(simd_coprocessor_error)
STAND_IN(hypervisor_callback)
STAND_IN(failsafe_callback)
