/*
 * The virtual exception table: how a PV guest receives CPU exceptions.
 *
 * A PV kernel runs in ring 3 and may not load an IDT. It hands Xen a table
 * of trap_info entries instead (HYPERVISOR_set_trap_table): for each
 * vector, the handler's address, the lowest privilege allowed to raise it
 * with an "int" instruction (DPL) and whether Xen must mask events on
 * entry, as an interrupt gate would clear IF. When the CPU raises an
 * exception in the guest, Xen takes it first, then "bounces" it: it writes
 * an exception frame on the guest's stack and jumps to the handler.
 *
 * The frame Xen writes (kernel/arch/x86_64/entry.S turns it into a
 * struct pt_regs), from the top of the stack, stack growing down:
 *
 *     ss, rsp, rflags, cs, rip   what the CPU itself would push;
 *                                bits 32-39 of cs hold the saved event
 *                                mask, RFLAGS.IF says whether events were
 *                                enabled
 *     error code                 only for the vectors that have one
 *     r11, rcx                   Xen used them to return to the guest
 *                                (sysret), so it saved them here
 *
 * The C side (kernel/traps.c) is the same in both builds: do_exception()
 * takes a pt_regs and calls the handler of its vector. In the guest the
 * assembly stubs call it; in the host build Python builds the pt_regs and
 * calls it, playing Xen and the stubs.
 */
#ifndef MINIOS_TRAPS_H
#define MINIOS_TRAPS_H

/* entry.S includes this header for the numbers; the rest is C. */
/* Exception vectors, as the x86 architecture numbers them. */
#define TRAP_divide_error 0
#define TRAP_debug 1
#define TRAP_nmi 2
#define TRAP_int3 3
#define TRAP_overflow 4
#define TRAP_bounds 5
#define TRAP_invalid_op 6
#define TRAP_no_device 7
#define TRAP_double_fault 8
#define TRAP_copro_seg 9
#define TRAP_invalid_tss 10
#define TRAP_no_segment 11
#define TRAP_stack_error 12
#define TRAP_gp_fault 13
#define TRAP_page_fault 14
#define TRAP_spurious_int 15
#define TRAP_copro_error 16
#define TRAP_alignment_check 17
#define TRAP_machine_check 18
#define TRAP_simd_error 19
#define TRAP_NR_VECTORS 32
/* Not exceptions: the pt_regs.vector of Xen's two callbacks. */
#define TRAP_VECTOR_EVENT 256
#define TRAP_VECTOR_FAILSAFE 257

/* Page-fault error code bits (the CPU's, passed on by Xen). */
#define PF_PROT (1UL << 0)  /* protection violation (else: not present) */
#define PF_WRITE (1UL << 1) /* write access (else: read) */
#define PF_USER (1UL << 2)  /* user mode (Xen clears it for the kernel) */
#define PF_RSVD (1UL << 3)  /* reserved bit set in a page-table entry */
#define PF_INSTR (1UL << 4) /* instruction fetch */

/* RFLAGS.IF in a bounce frame: events were enabled when the trap hit. */
#define X86_RFLAGS_IF (1UL << 9)

#ifndef __ASSEMBLY__

#include <minios/xen.h>

/* cffi: begin */
/*
 * The saved registers of the interrupted code. Same layout in both builds
 * (both are x86_64); entry.S pushes it field by field, from ss down to r15,
 * and traps.c checks the offsets entry.S relies on.
 */
struct pt_regs {
    unsigned long r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8;
    unsigned long rdx, rcx, rsi, rdi, rax;
    unsigned long vector;     /* pushed by the stub: TRAP_* */
    unsigned long error_code; /* from Xen, or 0 pushed by the stub */
    /* The hardware-shaped part of Xen's frame. */
    unsigned long rip, cs, rflags, rsp, ss;
};

/* Bits 32-39 of the saved cs: Xen's copy of evtchn_upcall_mask on entry. */
static inline unsigned int pt_regs_saved_mask(const struct pt_regs *regs)
{
    return (unsigned int)((regs->cs >> 32) & 0xff);
}

/* What the last exception was and where it went; read by tests and demos. */
struct trap_record {
    unsigned long vector;
    unsigned long error_code;
    unsigned long rip;         /* where it hit */
    unsigned long cr2;         /* page faults only, else 0 */
    unsigned long resume_at;   /* where execution went on, or 0 if fatal */
    unsigned long upcall_mask; /* evtchn_upcall_mask in the handler */
    unsigned long saved_mask;  /* the mask Xen saved in cs: before */
};

struct trap_stats {
    unsigned long taken[TRAP_NR_VECTORS]; /* exceptions taken per vector */
    unsigned long resumed;                /* handlers that returned */
    unsigned long fixed_up;               /* sent to a fix-up landing */
    unsigned long depth; /* handlers running now (nested if > 1) */
    struct trap_record last;
};

extern struct trap_stats trap_stats;

/*
 * Register the trap table and the event and failsafe callbacks with Xen.
 * `vcpu` is this vCPU's vcpu_info in shared_info, where Xen leaves the
 * faulting address of a page fault (arch.cr2).
 */
void traps_init(struct vcpu_info *vcpu);

/* The C entry of every exception: called by entry.S (or Python). */
void do_exception(struct pt_regs *regs);
/* Xen's failsafe callback: it could not return to us. Reports, stops. */
__attribute__((noreturn)) void do_failsafe_callback(struct pt_regs *regs);

/* The per-vector handlers, called by do_exception(). */
void do_int3(struct pt_regs *regs);
void do_debug(struct pt_regs *regs);
void do_page_fault(struct pt_regs *regs);
void do_trap(struct pt_regs *regs);

/*
 * The fix-up table: "if an exception hits at `fault`, go on at `landing`".
 * Code that may fault on purpose registers its instruction here; a handler
 * that finds the rip in the table rewrites pt_regs.rip and returns.
 */
#define TRAP_FIXUP_MAX 16
int trap_fixup_add(unsigned long fault, unsigned long landing);
unsigned long trap_fixup_find(unsigned long fault); /* 0: none */
void trap_fixup_clear(void);

/* Names, for reports and for the Python side. NULL if unknown. */
const char *trap_name(unsigned int vector);     /* "page fault" */
const char *trap_mnemonic(unsigned int vector); /* "#PF" */
bool trap_has_error_code(unsigned int vector);
/* The entry stub's name for an address in the trap table ("page_fault"). */
const char *trap_entry_name(unsigned long address);
/* cffi: end */

/*
 * Entry points in kernel/arch/x86_64/entry.S (stand-ins in the host build,
 * kernel/host/trap_entry.c): the addresses that go into the trap table.
 */
void divide_error(void);
void debug(void);
void int3(void);
void overflow(void);
void bounds(void);
void invalid_op(void);
void device_not_available(void);
void coprocessor_segment_overrun(void);
void invalid_TSS(void);
void segment_not_present(void);
void stack_segment(void);
void general_protection(void);
void page_fault(void);
void spurious_interrupt_bug(void);
void coprocessor_error(void);
void alignment_check(void);
void simd_coprocessor_error(void);
void hypervisor_callback(void);
void failsafe_callback(void);

/*
 * Instructions that trap on purpose, for the guest's chapter
 * (kernel/arch/x86_64/trap_demo.S). Each *_fault label is the instruction
 * that faults, each *_landing label the fix-up code, which returns -1.
 */
int trap_demo_int3(void); /* int3, then returns 42 */
long trap_demo_ud2(void); /* ud2: 0 if it did not fault */
long trap_demo_divide(unsigned long dividend, unsigned long divisor);
long trap_demo_read(const unsigned long *address, unsigned long *value);
extern const char trap_demo_int3_resume[];
extern const char trap_demo_ud2_fault[], trap_demo_ud2_landing[];
extern const char trap_demo_divide_fault[], trap_demo_divide_landing[];
extern const char trap_demo_read_fault[], trap_demo_read_landing[];

/* The guest's chapter: install the table, take and survive exceptions. */
int traps_chapter(void);

#endif /* !__ASSEMBLY__ */
#endif
