/*
 * Exception and callback entry stubs: from Xen's bounce frame to C and back.
 *
 * When an exception hits the guest kernel, Xen writes a frame on the
 * kernel's current stack (first aligned down to 16 bytes) and jumps to the
 * address in our trap table. Higher addresses first (the stack grows
 * down); offsets from %rsp at entry, for a vector with an error code
 * (#TS #NP #SS #GP #PF #AC); without one, everything above r11 sits 8
 * bytes lower:
 *
 *     +56  ss
 *     +48  rsp         the interrupted stack pointer
 *     +40  rflags      IF = events were enabled (= !saved upcall mask)
 *     +32  cs          bits 0-15 selector (RPL 0: "was in kernel mode"),
 *                      bits 32-39 the event mask Xen saved
 *     +24  rip
 *     +16  error code
 *     +8   r11         Xen returns to the guest with sysret, which
 *     +0   rcx         clobbers these two: it saved them here
 *
 * A stub pops rcx and r11 back into their registers, pushes an error code
 * of 0 if the CPU did not, pushes the vector, and the common code pushes
 * the other registers: the stack then holds a struct pt_regs (see
 * <minios/traps.h>), whose address becomes the C handler's argument.
 *
 * The way back is the iret hypercall, jumped to (it never returns), with
 * the stack holding struct iret_context (<xen/arch-x86/xen-x86_64.h>)
 * minus its first three words, which the hypercall page's stub pushes
 * itself (rcx, r11, rax): flags, rip, cs, rflags, rsp, ss. Xen restores
 * them all, and sets evtchn_upcall_mask from the saved RFLAGS.IF in the
 * same step, so a handler entered with events masked re-enables them
 * atomically on return; anything that became pending meanwhile is
 * delivered at once. A plain iretq could not do that: a PV kernel may not
 * touch the real IF.
 *
 * The event callback (hypervisor_callback) has the same frame with no
 * error code, and calls do_hypervisor_callback(); the failsafe callback
 * has ds, es, fs, gs between r11 and rip, and only reports and stops.
 */
#define __ASSEMBLY__
#include <minios/xen_interface.h>
#include <minios/traps.h>
#include <xen/xen.h>

/* Save the interrupted registers under vector and error code: pt_regs. */
.macro SAVE_REGS
    pushq %rax
    pushq %rdi
    pushq %rsi
    pushq %rcx
    pushq %rdx
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
.endm

.macro RESTORE_REGS
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdx
    popq %rcx
    popq %rsi
    popq %rdi
    popq %rax
.endm

/*
 * Call a C function with the pt_regs as its argument. The C ABI wants a
 * 16-byte aligned stack at a call; %rbx (already saved, callee-saved in C)
 * remembers where the pt_regs is.
 */
.macro CALL_WITH_REGS function
    cld
    movq %rsp, %rdi
    movq %rsp, %rbx
    andq $-16, %rsp
    call \function
    movq %rbx, %rsp
.endm

/* A stub for a vector with no error code: push 0 in its place. */
.macro TRAP_ENTRY name, vector
    .globl \name
    .type \name, @function
\name:
    popq %rcx
    popq %r11
    pushq $0
    pushq $\vector
    jmp exception_common
    .size \name, . - \name
.endm

/* A stub for a vector whose error code Xen pushed already. */
.macro TRAP_ENTRY_ERRCODE name, vector
    .globl \name
    .type \name, @function
\name:
    popq %rcx
    popq %r11
    pushq $\vector
    jmp exception_common
    .size \name, . - \name
.endm

    .text

    TRAP_ENTRY divide_error, TRAP_divide_error
    TRAP_ENTRY debug, TRAP_debug
    TRAP_ENTRY int3, TRAP_int3
    TRAP_ENTRY overflow, TRAP_overflow
    TRAP_ENTRY bounds, TRAP_bounds
    TRAP_ENTRY invalid_op, TRAP_invalid_op
    TRAP_ENTRY device_not_available, TRAP_no_device
    TRAP_ENTRY coprocessor_segment_overrun, TRAP_copro_seg
    TRAP_ENTRY_ERRCODE invalid_TSS, TRAP_invalid_tss
    TRAP_ENTRY_ERRCODE segment_not_present, TRAP_no_segment
    TRAP_ENTRY_ERRCODE stack_segment, TRAP_stack_error
    TRAP_ENTRY_ERRCODE general_protection, TRAP_gp_fault
    TRAP_ENTRY_ERRCODE page_fault, TRAP_page_fault
    TRAP_ENTRY spurious_interrupt_bug, TRAP_spurious_int
    TRAP_ENTRY coprocessor_error, TRAP_copro_error
    TRAP_ENTRY_ERRCODE alignment_check, TRAP_alignment_check
    TRAP_ENTRY simd_coprocessor_error, TRAP_simd_error

    .type exception_common, @function
exception_common:
    SAVE_REGS
    CALL_WITH_REGS do_exception
    jmp iret_to_interrupted
    .size exception_common, . - exception_common

/*
 * Event channel upcall. Xen masked events before jumping here (saving the
 * old mask in cs bits 32-39 and RFLAGS.IF); the iret unmasks them.
 */
    .globl hypervisor_callback
    .type hypervisor_callback, @function
hypervisor_callback:
    popq %rcx
    popq %r11
    pushq $0
    pushq $TRAP_VECTOR_EVENT
    SAVE_REGS
    CALL_WITH_REGS do_hypervisor_callback
    jmp iret_to_interrupted
    .size hypervisor_callback, . - hypervisor_callback

/* Pop the pt_regs and return through Xen: see the comment at the top. */
    .type iret_to_interrupted, @function
iret_to_interrupted:
    RESTORE_REGS
    addq $16, %rsp                  /* vector and error code */
    pushq $0                        /* iret_context.flags: not a syscall */
    jmp hypercall_page + __HYPERVISOR_iret * 32
    .size iret_to_interrupted, . - iret_to_interrupted

/*
 * Xen could not return to the guest (e.g. a bad segment selector on the
 * way back). Its frame has ds, es, fs, gs where pt_regs has rip..rsp;
 * do_failsafe_callback() knows, reports and stops the guest.
 */
    .globl failsafe_callback
    .type failsafe_callback, @function
failsafe_callback:
    popq %rcx
    popq %r11
    pushq $0
    pushq $TRAP_VECTOR_FAILSAFE
    SAVE_REGS
    CALL_WITH_REGS do_failsafe_callback
1:  pause
    jmp 1b
    .size failsafe_callback, . - failsafe_callback

    .section .note.GNU-stack, "", @progbits
