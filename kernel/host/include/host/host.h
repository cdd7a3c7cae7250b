/*
 * The host build's side of the hypervisor boundary.
 *
 * host_hypercall() is not C: it is an `extern "Python"` function that the
 * cffi glue routes to the Python object playing Xen for the lesson at hand.
 * When that "Xen" decides the domain is gone (a SCHEDOP_shutdown, or an
 * error in the Python code) it returns HOST_UNWIND, and hypercall() leaves
 * the kernel through host_unwind(), a longjmp back to the Python call that
 * entered it. host_check_interrupt() leaves the same way if an interrupt
 * came while Python served the call. These two are defined by the guard
 * runtime (minios_lab/build/cdefs/guard.c).
 */
#ifndef HOST_HOST_H
#define HOST_HOST_H

#define HOST_UNWIND (-0x7ead0000L)

long host_hypercall(unsigned int nr, unsigned long a1, unsigned long a2,
                    unsigned long a3, unsigned long a4, unsigned long a5);
__attribute__((noreturn)) void host_unwind(void);
void host_check_interrupt(void);

#endif
