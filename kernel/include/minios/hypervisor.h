/*
 * The hypervisor boundary: the only way portable kernel code reaches Xen.
 *
 * Every hypercall goes through one primitive, hypercall(nr, a1..a5). In
 * the guest build it is a call into the hypercall page that Xen filled at
 * start of day (kernel/arch/x86_64/hypercall.S). In the host build it is a
 * call into Python, which plays Xen's part for one lesson
 * (kernel/host/hypercall.c). The typed wrappers below are the same in both.
 *
 * Both refuse __HYPERVISOR_iret with -ENOSYS (38): the iret hypercall is
 * jumped to with an iret frame on the stack (kernel/arch/x86_64/entry.S),
 * never called like the others.
 */
#ifndef MINIOS_HYPERVISOR_H
#define MINIOS_HYPERVISOR_H

#include <minios/xen.h>

long hypercall(unsigned int nr, unsigned long a1, unsigned long a2,
               unsigned long a3, unsigned long a4, unsigned long a5);

static inline long HYPERVISOR_console_io(int cmd, int count, const char *str)
{
    return hypercall(__HYPERVISOR_console_io, (unsigned long)cmd,
                     (unsigned long)count, (unsigned long)str, 0, 0);
}

static inline long HYPERVISOR_sched_op(int cmd, void *arg)
{
    return hypercall(__HYPERVISOR_sched_op, (unsigned long)cmd,
                     (unsigned long)arg, 0, 0, 0);
}

static inline long HYPERVISOR_xen_version(int cmd, void *arg)
{
    return hypercall(__HYPERVISOR_xen_version, (unsigned long)cmd,
                     (unsigned long)arg, 0, 0, 0);
}

static inline long HYPERVISOR_update_va_mapping(unsigned long va,
                                                uint64_t new_pte,
                                                unsigned long flags)
{
    return hypercall(__HYPERVISOR_update_va_mapping, va,
                     (unsigned long)new_pte, flags, 0, 0);
}

static inline long HYPERVISOR_mmu_update(mmu_update_t *req, unsigned int count,
                                         unsigned int *done, domid_t domid)
{
    return hypercall(__HYPERVISOR_mmu_update, (unsigned long)req, count,
                     (unsigned long)done, domid, 0);
}

static inline long HYPERVISOR_event_channel_op(int cmd, void *arg)
{
    return hypercall(__HYPERVISOR_event_channel_op, (unsigned long)cmd,
                     (unsigned long)arg, 0, 0, 0);
}

static inline long HYPERVISOR_vcpu_op(int cmd, unsigned int vcpu, void *arg)
{
    return hypercall(__HYPERVISOR_vcpu_op, (unsigned long)cmd, vcpu,
                     (unsigned long)arg, 0, 0);
}

static inline long HYPERVISOR_set_timer_op(uint64_t deadline_ns)
{
    return hypercall(__HYPERVISOR_set_timer_op, (unsigned long)deadline_ns, 0,
                     0, 0, 0);
}

/* Install the virtual IDT: entries up to one whose address is 0. */
static inline long HYPERVISOR_set_trap_table(const struct trap_info *table)
{
    return hypercall(__HYPERVISOR_set_trap_table, (unsigned long)table, 0, 0,
                     0, 0);
}

/* Register a callback (CALLBACKOP_register: event, failsafe, ...). */
static inline long HYPERVISOR_callback_op(int cmd, const void *arg)
{
    return hypercall(__HYPERVISOR_callback_op, (unsigned long)cmd,
                     (unsigned long)arg, 0, 0, 0);
}

/* Extended MMU operations: TLB flushes, pinning tables, new base tables. */
static inline long HYPERVISOR_mmuext_op(struct mmuext_op *ops,
                                        unsigned int count, unsigned int *done,
                                        domid_t domid)
{
    return hypercall(__HYPERVISOR_mmuext_op, (unsigned long)ops, count,
                     (unsigned long)done, domid, 0);
}

/* Ask Xen to end this domain; reason is SHUTDOWN_poweroff/reboot/crash. */
static inline long hypervisor_shutdown(unsigned int reason)
{
    struct sched_shutdown shutdown = {.reason = reason};

    return HYPERVISOR_sched_op(SCHEDOP_shutdown, &shutdown);
}

#endif
