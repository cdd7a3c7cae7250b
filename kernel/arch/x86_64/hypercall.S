/*
 * hypercall(nr, a1, a2, a3, a4, a5): the guest's one way into Xen.
 *
 * C calls this with the System V convention: nr in %edi, a1..a5 in %rsi,
 * %rdx, %rcx, %r8, %r9. Xen's 64-bit PV convention wants a1..a5 in %rdi,
 * %rsi, %rdx, %r10, %r8 and the call made into the hypercall page that Xen
 * filled at domain build: stub nr sits at hypercall_page + nr * 32. The
 * result comes back in %rax. Xen's ABI (<xen/arch-x86/xen-x86_64.h>) lets
 * a hypercall clobber its argument registers, and the syscall instruction
 * in the stub clobbers %rcx and %r11. Every one of these is caller-saved
 * in System V, and so is everything else touched here, so nothing needs
 * saving: our own caller expects them all to be lost.
 *
 * A number outside the page returns -ENOSYS (38) instead of jumping into
 * whatever follows it. Hypercall 23 (iret) returns -ENOSYS too: it must be
 * jumped to with an iret frame on the stack (entry.S does), never called;
 * called from here it would "return" to whatever the stack holds.
 */
#define HYPERCALL_STUB_SHIFT 5
#define HYPERCALL_MAX 128 /* 4096 / 32 stubs */
#define ENOSYS 38
#define HYPERCALL_IRET 23 /* __HYPERVISOR_iret in <xen/xen.h> */

    .text
    .globl hypercall
    .type hypercall, @function
hypercall:
    cmpl $HYPERCALL_MAX, %edi
    jae 1f
    cmpl $HYPERCALL_IRET, %edi
    je 1f
    movl %edi, %eax                 /* zero-extends nr into %rax */
    shlq $HYPERCALL_STUB_SHIFT, %rax
    leaq hypercall_page(%rip), %r11
    addq %r11, %rax
    movq %rsi, %rdi                 /* a1 */
    movq %rdx, %rsi                 /* a2 */
    movq %rcx, %rdx                 /* a3 */
    movq %r8, %r10                  /* a4 */
    movq %r9, %r8                   /* a5 */
    call *%rax
    ret
1:  movq $-ENOSYS, %rax
    ret
    .size hypercall, . - hypercall

    .section .note.GNU-stack, "", @progbits
