/*
 * Entry point of the guest kernel, its Xen ELF notes and the hypercall page.
 *
 * How Xen finds and starts a PV kernel: the domain builder reads the ELF
 * notes named "Xen" (numbers from <xen/elfnote.h>) to learn where the
 * kernel wants to live (VIRT_BASE, PADDR_OFFSET: both 0 here, so virtual
 * address = link address), where to enter it (ENTRY) and which page to fill
 * with hypercall stubs (HYPERCALL_PAGE). It maps the loaded image, zeroes
 * .bss, builds start_info and jumps to ENTRY in 64-bit mode, ring 3, with
 * %rsi = virtual address of start_info.
 *
 * _start switches to a boot stack of our own in .bss (so its size is ours to
 * choose and it sits next to the kernel's data), passes start_info as the
 * first C argument and calls start_kernel(). start_kernel() ends the domain
 * with a hypercall and never returns; if it ever did, we spin.
 *
 * The notes go into section .note.Xen, which the linker script places in a
 * PT_NOTE segment. <xen/elfnote.h> contains only #defines and comments, so
 * the assembler can include it.
 */
#include <xen/elfnote.h>

#define BOOT_STACK_SIZE (64 * 1024)
#define HYPERCALL_PAGE_SIZE 4096

/*
 * One ELF note: namesz, descsz, type, name "Xen\0", then the descriptor,
 * each padded to 4 bytes. The descriptor is a NUL-terminated string
 * (xen_note_str) or a 64-bit number or address (xen_note_quad).
 */
.macro xen_note_begin type
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 2f - 1f
    .long 4f - 3f
    .long \type
1:  .asciz "Xen"
2:  .balign 4
3:
.endm

.macro xen_note_end
4:  .balign 4
    .popsection
.endm

.macro xen_note_str type, string
    xen_note_begin \type
    .asciz "\string"
    xen_note_end
.endm

.macro xen_note_quad type, value
    xen_note_begin \type
    .quad \value
    xen_note_end
.endm

    xen_note_str XEN_ELFNOTE_GUEST_OS, "minios-lab"
    xen_note_str XEN_ELFNOTE_GUEST_VERSION, "0.1"
    xen_note_str XEN_ELFNOTE_XEN_VERSION, "xen-3.0"
    xen_note_str XEN_ELFNOTE_LOADER, "generic"
    xen_note_quad XEN_ELFNOTE_VIRT_BASE, 0
    xen_note_quad XEN_ELFNOTE_PADDR_OFFSET, 0
    xen_note_quad XEN_ELFNOTE_ENTRY, _start
    xen_note_quad XEN_ELFNOTE_HYPERCALL_PAGE, hypercall_page
    /* Nothing is required of Xen; we declare that we can run as dom0. */
    xen_note_str XEN_ELFNOTE_FEATURES, "dom0"

/* .text.head is placed first by the linker script: _start is at _text. */
    .section .text.head, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    leaq boot_stack_top(%rip), %rsp
    movq %rsi, %rdi                 /* start_info_t *si */
    call start_kernel
1:  pause
    jmp 1b
    .size _start, . - _start

/*
 * Xen writes one 32-byte stub per hypercall here while building the domain;
 * hypercall N is "call hypercall_page + N * 32" (see hypercall.S). It lives
 * in .text because the stubs are executed. The int3 filler traps if an
 * unfilled slot is ever reached.
 */
    .balign HYPERCALL_PAGE_SIZE
    .globl hypercall_page
    .type hypercall_page, @object
hypercall_page:
    .fill HYPERCALL_PAGE_SIZE, 1, 0xcc
    .size hypercall_page, HYPERCALL_PAGE_SIZE

/* The boot stack; 16-byte aligned at the top, as the C ABI wants. */
    .section .bss.stack, "aw", @nobits
    .balign 16
    .type boot_stack, @object
boot_stack:
    .skip BOOT_STACK_SIZE
boot_stack_top:
    .size boot_stack, BOOT_STACK_SIZE

    .section .note.GNU-stack, "", @progbits
