/*
 * Instructions that trap on purpose, for the traps chapter.
 *
 * Each function is tiny and exports labels so that C can name its
 * instructions: *_fault is the instruction that raises the exception,
 * *_landing the code that the fix-up table sends execution to, and
 * trap_demo_int3_resume the instruction after the int3. C registers
 * "fault -> landing" in the fix-up table before calling; every landing
 * returns -1, every normal path something else, so the caller sees which
 * way the function left.
 */
.macro DEMO_FUNCTION name
    .globl \name
    .type \name, @function
\name:
.endm

.macro DEMO_LABEL name
    .globl \name
\name:
.endm

    .text

/* int trap_demo_int3(void): a breakpoint, then return 42. */
    DEMO_FUNCTION trap_demo_int3
    xorl %eax, %eax
    int3
    DEMO_LABEL trap_demo_int3_resume
    movl $42, %eax
    ret
    .size trap_demo_int3, . - trap_demo_int3

/* long trap_demo_ud2(void): an invalid opcode; 0 if it did not fault. */
    DEMO_FUNCTION trap_demo_ud2
    xorl %eax, %eax
    DEMO_LABEL trap_demo_ud2_fault
    ud2
    ret
    DEMO_LABEL trap_demo_ud2_landing
    movq $-1, %rax
    ret
    .size trap_demo_ud2, . - trap_demo_ud2

/* long trap_demo_divide(unsigned long dividend, unsigned long divisor) */
    DEMO_FUNCTION trap_demo_divide
    movq %rdi, %rax
    xorl %edx, %edx
    DEMO_LABEL trap_demo_divide_fault
    divq %rsi
    ret
    DEMO_LABEL trap_demo_divide_landing
    movq $-1, %rax
    ret
    .size trap_demo_divide, . - trap_demo_divide

/*
 * long trap_demo_read(const unsigned long *address, unsigned long *value):
 * *value = *address and 0, or -1 if the read faulted.
 */
    DEMO_FUNCTION trap_demo_read
    DEMO_LABEL trap_demo_read_fault
    movq (%rdi), %rax
    movq %rax, (%rsi)
    xorl %eax, %eax
    ret
    DEMO_LABEL trap_demo_read_landing
    movq $-1, %rax
    ret
    .size trap_demo_read, . - trap_demo_read

    .section .note.GNU-stack, "", @progbits
