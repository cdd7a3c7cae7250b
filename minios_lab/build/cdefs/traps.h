/* cffi declarations for the traps unit (kernel/traps.c, with the host's
 * stand-ins for the entry stubs, kernel/host/trap_entry.c).
 *
 * Python plays Xen and the assembly stubs: it owns a vcpu_info (where Xen
 * writes cr2), builds a struct pt_regs and calls do_exception(). The
 * trap table and the callbacks reach Python through the hypercalls
 * set_trap_table and callback_op. Struct layouts marked "..." and every
 * constant are checked against the real headers. */

#define __HYPERVISOR_callback_op ...
#define CALLBACKOP_register ...
#define CALLBACKTYPE_event ...
#define CALLBACKTYPE_failsafe ...
#define CALLBACKF_mask_events ...
#define FLAT_KERNEL_CS ...
#define FLAT_KERNEL_SS ...

#define TRAP_divide_error ...
#define TRAP_debug ...
#define TRAP_int3 ...
#define TRAP_invalid_op ...
#define TRAP_gp_fault ...
#define TRAP_page_fault ...
#define TRAP_NR_VECTORS ...
#define TRAP_VECTOR_EVENT ...
#define TRAP_VECTOR_FAILSAFE ...
#define TRAP_FIXUP_MAX ...
#define PF_PROT ...
#define PF_WRITE ...
#define PF_USER ...
#define PF_RSVD ...
#define PF_INSTR ...
#define X86_RFLAGS_IF ...

struct trap_info {
    uint8_t vector;
    uint8_t flags;
    uint16_t cs;
    unsigned long address;
};

struct callback_register {
    uint16_t type;
    uint16_t flags;
    unsigned long address;
};

struct arch_vcpu_info {
    unsigned long cr2;
    ...;
};

struct vcpu_info {
    uint8_t evtchn_upcall_pending;
    uint8_t evtchn_upcall_mask;
    unsigned long evtchn_pending_sel;
    struct arch_vcpu_info arch;
    ...;
};

struct pt_regs {
    unsigned long r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8;
    unsigned long rdx, rcx, rsi, rdi, rax;
    unsigned long vector;
    unsigned long error_code;
    unsigned long rip, cs, rflags, rsp, ss;
};

struct trap_record {
    unsigned long vector;
    unsigned long error_code;
    unsigned long rip;
    unsigned long cr2;
    unsigned long resume_at;
    unsigned long upcall_mask;
    unsigned long saved_mask;
};

struct trap_stats {
    unsigned long taken[...];
    unsigned long resumed;
    unsigned long fixed_up;
    unsigned long depth;
    struct trap_record last;
};

extern struct trap_stats trap_stats;

void traps_init(struct vcpu_info *vcpu);
void do_exception(struct pt_regs *regs);
void do_failsafe_callback(struct pt_regs *regs);

int trap_fixup_add(unsigned long fault, unsigned long landing);
unsigned long trap_fixup_find(unsigned long fault);
void trap_fixup_clear(void);

const char *trap_name(unsigned int vector);
const char *trap_mnemonic(unsigned int vector);
bool trap_has_error_code(unsigned int vector);
const char *trap_entry_name(unsigned long address);
