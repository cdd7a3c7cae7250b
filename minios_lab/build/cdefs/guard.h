/*
 * The host build's guard: how a call into kernel code comes back to Python.
 *
 * Every exported kernel function is called from the cffi glue through a
 * wrapper (minios_lab/build/cglue.py) that puts a struct host_guard on its own
 * stack, records a sigsetjmp() point, then pushes the guard (so a signal
 * never finds a guard whose jump point is not set yet) and calls the
 * kernel. Three
 * things can bring the call back early, each a siglongjmp() to the innermost
 * guard of the calling thread:
 *
 *   HOST_UNWOUND      the kernel panicked or shut down (host_unwind());
 *   HOST_FAULTED      SIGSEGV, SIGBUS, SIGFPE or SIGILL in kernel code;
 *   HOST_INTERRUPTED  SIGINT (Jupyter's Interrupt) while kernel code ran.
 *
 * The guard records what happened in its struct host_fault; Python reads it
 * with host_take_outcome() right after the call (minios_lab/build/kernellib.py).
 *
 * This runtime is one shared library per process (guard.c), linked by every
 * unit: one signal handler, one thread-local guard chain, whatever the
 * number of units loaded.
 */
#ifndef MINIOS_LAB_GUARD_H
#define MINIOS_LAB_GUARD_H

#include <setjmp.h>

enum host_outcome {
    HOST_RETURNED = 0,
    HOST_UNWOUND = 1,
    HOST_FAULTED = 2,
    HOST_INTERRUPTED = 3,
};

struct host_fault {
    int outcome;           /* enum host_outcome */
    int signo;             /* the signal, for FAULTED and INTERRUPTED */
    int code;              /* siginfo si_code: SEGV_MAPERR, BUS_ADRERR... */
    unsigned long address; /* si_addr: the address that was touched */
    unsigned long pc;      /* the instruction that faulted */
    unsigned long sp;      /* the stack pointer at that moment */
    unsigned long error;   /* x86 page-fault error code (bit 1: write) */
};

struct host_guard {
    sigjmp_buf env;
    struct host_guard *outer; /* the guard of the enclosing call, or NULL */
    int quiet;                /* SIGINT goes to Python, not to this guard */
    struct host_fault fault;
};

void host_guard_push(struct host_guard *guard);
void host_guard_pop(struct host_guard *guard);
int host_take_outcome(struct host_fault *out);
long host_copy(void *dst, const void *src, unsigned long size);
int host_register_code(unsigned long start, unsigned long end);
void host_check_interrupt(void);

#endif
