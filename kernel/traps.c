/*
 * The virtual exception table and the C side of every exception.
 *
 * traps_init() builds one trap_info entry per exception vector we handle
 * (vector, flags = DPL | event-mask bit, code selector, entry address) and
 * hands the table to Xen with HYPERVISOR_set_trap_table; Xen copies it
 * into its "virtual IDT" for this vCPU. It also registers the event
 * callback (where Xen delivers event-channel upcalls) and the failsafe
 * callback (where Xen goes when it cannot return to the guest) with
 * HYPERVISOR_callback_op.
 *
 * Choices made in the table:
 *  - int3 has DPL 3 so that user code could use it (a debugger's
 *    breakpoints); every other vector has DPL 0: an "int $n" aimed at it
 *    is a #GP instead.
 *  - the page fault masks events on entry. The faulting address lives in
 *    the vcpu_info (arch.cr2), not in a register; an event callback that
 *    ran before the handler read it, and faulted itself, would overwrite
 *    it. The iret at the end unmasks events again atomically (it restores
 *    the mask from the saved RFLAGS.IF).
 *
 * do_exception() is where entry.S (or, in the host build, Python) arrives
 * with a struct pt_regs. It counts the exception, calls the vector's
 * handler and records where execution goes on. Handlers print the
 * exception's name, error code and registers, then either
 *  - resume: int3 and debug are traps, rip already points after the
 *    instruction, so returning goes on with the next one;
 *  - recover through the fix-up table: code that may fault on purpose
 *    registered "fault address -> landing address"; the handler rewrites
 *    pt_regs.rip and returns, and the iret jumps to the landing;
 *  - or stop the guest with PANIC(), naming the handler, the exception and
 *    the rip.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/hypervisor.h>
#include <minios/string.h>
#include <minios/traps.h>

/* entry.S pushes the frame in this shape; it must not drift. */
_Static_assert(sizeof(struct pt_regs) == 22 * 8, "pt_regs size");
_Static_assert(offsetof(struct pt_regs, vector) == 15 * 8, "pt_regs.vector");
_Static_assert(offsetof(struct pt_regs, rip) == 17 * 8, "pt_regs.rip");

/* Nested handlers allowed: more means a handler itself keeps faulting. */
#define TRAP_MAX_DEPTH 2

typedef void (*trap_handler_t)(struct pt_regs *regs);

struct trap_desc {
    uint8_t vector;
    uint8_t dpl;      /* who may raise it with "int $vector" */
    bool mask_events; /* Xen masks events on entry, as an interrupt gate */
    bool error_code;  /* the CPU pushes an error code for it */
    const char *mnemonic;
    const char *name;
    void (*entry)(void); /* the stub in entry.S */
    const char *entry_name;
    trap_handler_t handler;
};

/* A stub and its name, for reports: STUB(int3) is int3, "int3". */
#define STUB(entry) entry, #entry

/* Vectors 2 (NMI, a callback of its own), 8 (double fault, Xen's) and 18
 * (machine check, Xen's) are not here; nor are 20 and up. Vectors 9
 * (coprocessor segment overrun, raised only by a 386 with an external FPU)
 * and 15 (reserved by Intel) have no standard mnemonic: "-". */
static const struct trap_desc trap_descs[] = {
    {0, 0, false, false, "#DE", "divide error", STUB(divide_error), do_trap},
    {1, 0, false, false, "#DB", "debug", STUB(debug), do_debug},
    {3, 3, false, false, "#BP", "breakpoint", STUB(int3), do_int3},
    {4, 0, false, false, "#OF", "overflow", STUB(overflow), do_trap},
    {5, 0, false, false, "#BR", "bound range", STUB(bounds), do_trap},
    {6, 0, false, false, "#UD", "invalid opcode", STUB(invalid_op), do_trap},
    {7, 0, false, false, "#NM", "device not available",
     STUB(device_not_available), do_trap},
    {9, 0, false, false, "-", "coproc seg overrun",
     STUB(coprocessor_segment_overrun), do_trap},
    {10, 0, false, true, "#TS", "invalid TSS", STUB(invalid_TSS), do_trap},
    {11, 0, false, true, "#NP", "segment not present",
     STUB(segment_not_present), do_trap},
    {12, 0, false, true, "#SS", "stack segment", STUB(stack_segment), do_trap},
    {13, 0, false, true, "#GP", "general protection", STUB(general_protection),
     do_trap},
    {14, 0, true, true, "#PF", "page fault", STUB(page_fault), do_page_fault},
    {15, 0, false, false, "-", "reserved", STUB(spurious_interrupt_bug),
     do_trap},
    {16, 0, false, false, "#MF", "x87 floating point", STUB(coprocessor_error),
     do_trap},
    {17, 0, false, true, "#AC", "alignment check", STUB(alignment_check),
     do_trap},
    {19, 0, false, false, "#XM", "SIMD floating point",
     STUB(simd_coprocessor_error), do_trap},
};

/* What Xen gets: one entry per descriptor, then a sentinel (address 0). */
static struct trap_info trap_table[ARRAY_SIZE(trap_descs) + 1];

/* Where Xen leaves cr2: set once, by traps_init. */
static const struct vcpu_info *trap_vcpu;

/* Entries [0, nr_trap_fixups) are in use; none has a 0 address. */
static struct {
    unsigned long fault;
    unsigned long landing;
} trap_fixups[TRAP_FIXUP_MAX];
static unsigned int nr_trap_fixups;

struct trap_stats trap_stats;

static const struct trap_desc *find_desc(unsigned long vector)
{
    unsigned int i;

    for (i = 0; i < ARRAY_SIZE(trap_descs); i++)
        if (trap_descs[i].vector == vector)
            return &trap_descs[i];
    return NULL;
}

const char *trap_name(unsigned int vector)
{
    const struct trap_desc *desc = find_desc(vector);

    return desc ? desc->name : NULL;
}

const char *trap_mnemonic(unsigned int vector)
{
    const struct trap_desc *desc = find_desc(vector);

    return desc ? desc->mnemonic : NULL;
}

bool trap_has_error_code(unsigned int vector)
{
    const struct trap_desc *desc = find_desc(vector);

    return desc && desc->error_code;
}

const char *trap_entry_name(unsigned long address)
{
    unsigned int i;

    for (i = 0; i < ARRAY_SIZE(trap_descs); i++)
        if ((unsigned long)trap_descs[i].entry == address)
            return trap_descs[i].entry_name;
    if (address == (unsigned long)hypervisor_callback)
        return "hypervisor_callback";
    if (address == (unsigned long)failsafe_callback)
        return "failsafe_callback";
    return NULL;
}

/* --- installing --- */

static void fill_trap_info(struct trap_info *ti, const struct trap_desc *desc)
{
    memset(ti, 0, sizeof(*ti));
    /* An entry left zero ends the table early (address 0 is the sentinel):
     * a hand-out's stub installs an empty table, and the guest still
     * boots, without its safety net, until this is written. */
    /* BEGIN SOLUTION stub: if (desc == &trap_descs[0]) printk("traps: fill_trap_info() is not written yet: the trap table is empty\n"); */
    ti->vector = desc->vector;
    TI_SET_DPL(ti, desc->dpl);
    TI_SET_IF(ti, desc->mask_events);
    ti->cs = FLAT_KERNEL_CS;
    ti->address = (unsigned long)desc->entry;
    /* END SOLUTION */
}

static void register_callback(uint16_t type, void (*entry)(void),
                              uint16_t flags)
{
    struct callback_register cb = {
        .type = type,
        .flags = flags,
        .address = (unsigned long)entry,
    };
    long rc = HYPERVISOR_callback_op(CALLBACKOP_register, &cb);

    if (rc != 0)
        PANIC("register_callback: type %u refused by Xen: %ld", type, rc);
}

void traps_init(struct vcpu_info *vcpu)
{
    unsigned int i;
    long rc;

    ASSERT(vcpu != NULL);
    trap_vcpu = vcpu;
    for (i = 0; i < ARRAY_SIZE(trap_descs); i++)
        fill_trap_info(&trap_table[i], &trap_descs[i]);
    memset(&trap_table[i], 0, sizeof(trap_table[i])); /* the sentinel */
    rc = HYPERVISOR_set_trap_table(trap_table);
    if (rc != 0)
        PANIC("traps_init: set_trap_table refused by Xen: %ld", rc);
    register_callback(CALLBACKTYPE_event, hypervisor_callback, 0);
    /* Events stay masked in the failsafe handler: it only reports. */
    register_callback(CALLBACKTYPE_failsafe, failsafe_callback,
                      CALLBACKF_mask_events);
}

/* --- the fix-up table --- */

int trap_fixup_add(unsigned long fault, unsigned long landing)
{
    unsigned int i;

    BUG_ON(fault == 0 || landing == 0);
    for (i = 0; i < nr_trap_fixups; i++) {
        if (trap_fixups[i].fault == fault) {
            trap_fixups[i].landing = landing;
            return 0;
        }
    }
    if (nr_trap_fixups == TRAP_FIXUP_MAX)
        return -1;
    trap_fixups[nr_trap_fixups].fault = fault;
    trap_fixups[nr_trap_fixups].landing = landing;
    nr_trap_fixups++;
    return 0;
}

unsigned long trap_fixup_find(unsigned long fault)
{
    unsigned int i;

    for (i = 0; i < nr_trap_fixups; i++)
        if (trap_fixups[i].fault == fault)
            return trap_fixups[i].landing;
    return 0;
}

void trap_fixup_clear(void)
{
    nr_trap_fixups = 0;
}

/* --- reporting --- */

static void print_regs(const struct pt_regs *regs)
{
    printk("  rip %016lx  cs %04lx  rflags %016lx  events %s\n", regs->rip,
           regs->cs & 0xffff, regs->rflags,
           (regs->rflags & X86_RFLAGS_IF) ? "were enabled" : "were masked");
    printk("  rsp %016lx  ss %04lx\n", regs->rsp, regs->ss & 0xffff);
    printk("  rax %016lx  rbx %016lx  rcx %016lx\n", regs->rax, regs->rbx,
           regs->rcx);
    printk("  rdx %016lx  rsi %016lx  rdi %016lx\n", regs->rdx, regs->rsi,
           regs->rdi);
    printk("  rbp %016lx  r8  %016lx  r9  %016lx\n", regs->rbp, regs->r8,
           regs->r9);
    printk("  r10 %016lx  r11 %016lx  r12 %016lx\n", regs->r10, regs->r11,
           regs->r12);
    printk("  r13 %016lx  r14 %016lx  r15 %016lx\n", regs->r13, regs->r14,
           regs->r15);
}

static void report(const struct pt_regs *regs, const struct trap_desc *desc)
{
    printk("trap: %s %s (vector %lu)", desc->mnemonic, desc->name,
           regs->vector);
    if (desc->error_code)
        printk(", error code %#lx", regs->error_code);
    printk("\n");
    print_regs(regs);
}

/* Go on at the registered landing for regs->rip, or stop the guest. */
static void recover_or_die(struct pt_regs *regs, const char *handler)
{
    const struct trap_desc *desc = find_desc(regs->vector);
    unsigned long landing;

    /* BEGIN SOLUTION */
    landing = trap_fixup_find(regs->rip);
    if (landing == 0) {
        printk("trap: no fix-up for rip %#lx: fatal\n", regs->rip);
        PANIC("%s: unhandled %s %s at rip %#lx", handler, desc->mnemonic,
              desc->name, regs->rip);
    }
    printk("trap: fix-up: rip %#lx -> landing %#lx\n", regs->rip, landing);
    regs->rip = landing;
    /* END SOLUTION */
    trap_stats.fixed_up++;
}

/* --- the handlers --- */

void do_int3(struct pt_regs *regs)
{
    report(regs, find_desc(TRAP_int3));
    printk("trap: breakpoint number %lu, resuming at %#lx\n",
           trap_stats.taken[TRAP_int3], regs->rip);
}

void do_debug(struct pt_regs *regs)
{
    report(regs, find_desc(TRAP_debug));
    printk("trap: debug trap, resuming at %#lx\n", regs->rip);
}

static const char *pf_access(unsigned long code)
{
    if (code & PF_INSTR)
        return "instruction fetch";
    return (code & PF_WRITE) ? "write" : "read";
}

/* The last words of a fatal page fault, in one line the boot harness
 * reads (minios_lab/guest/boot.py): "page fault: cr2 0x0 (read, not present,
 * kernel) at rip 0x3a5c". */
static void report_fatal_page_fault(unsigned long cr2, unsigned long code,
                                    unsigned long rip)
{
    printk("page fault: cr2 0x%lx (%s, %s, %s%s) at rip 0x%lx\n", cr2,
           pf_access(code), (code & PF_PROT) ? "present" : "not present",
           (code & PF_USER) ? "user" : "kernel",
           (code & PF_RSVD) ? ", reserved bit" : "", rip);
}

void do_page_fault(struct pt_regs *regs)
{
    unsigned long error_code = regs->error_code;
    unsigned long cr2;

    /* BEGIN SOLUTION */
    cr2 = trap_vcpu->arch.cr2;
    /* END SOLUTION */
    trap_stats.last.cr2 = cr2;
    report(regs, find_desc(TRAP_page_fault));
    printk("  cr2 %016lx: %s of a %s page%s\n", cr2, pf_access(error_code),
           (error_code & PF_PROT) ? "present" : "not-present",
           (error_code & PF_RSVD) ? ", reserved bit set" : "");
    if (trap_fixup_find(regs->rip) == 0) {
        report_fatal_page_fault(cr2, error_code, regs->rip);
        PANIC("do_page_fault: unhandled %s of %#lx at rip %#lx",
              pf_access(error_code), cr2, regs->rip);
    }
    recover_or_die(regs, "do_page_fault");
}

void do_trap(struct pt_regs *regs)
{
    report(regs, find_desc(regs->vector));
    recover_or_die(regs, "do_trap");
}

void do_exception(struct pt_regs *regs)
{
    const struct trap_desc *desc = find_desc(regs->vector);

    if (desc == NULL)
        PANIC("do_exception: no handler for vector %lu at rip %#lx",
              regs->vector, regs->rip);
    ASSERT(trap_vcpu != NULL); /* traps_init() came first */
    if (trap_stats.depth >= TRAP_MAX_DEPTH)
        PANIC("do_exception: %s at rip %#lx inside %lu nested handlers",
              desc->mnemonic, regs->rip, trap_stats.depth);
    trap_stats.depth++;
    trap_stats.taken[regs->vector]++;
    trap_stats.last = (struct trap_record){
        .vector = regs->vector,
        .error_code = regs->error_code,
        .rip = regs->rip,
        .upcall_mask = trap_vcpu->evtchn_upcall_mask,
        .saved_mask = pt_regs_saved_mask(regs),
    };
    desc->handler(regs);
    trap_stats.last.resume_at = regs->rip;
    trap_stats.resumed++;
    trap_stats.depth--;
}

/* Xen's frame here holds ds, es, fs, gs where pt_regs has rip..rsp. */
void do_failsafe_callback(struct pt_regs *regs)
{
    const unsigned long *frame = &regs->rip;

    printk("trap: failsafe callback: Xen could not return to rip %#lx\n",
           frame[4]);
    printk("  ds %04lx  es %04lx  fs %04lx  gs %04lx\n", frame[0], frame[1],
           frame[2], frame[3]);
    PANIC("do_failsafe_callback: cannot return to rip %#lx (cs %#lx)",
          frame[4], frame[5] & 0xffff);
}
