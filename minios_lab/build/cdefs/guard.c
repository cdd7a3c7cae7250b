/*
 * The host build's guard runtime: faults and interrupts in kernel code
 * become Python exceptions (see guard.h for the protocol).
 *
 * Which signals are ours. A signal is turned into a siglongjmp() only when
 * the thread that got it is inside a guard AND does not hold Python's GIL.
 * cffi releases the GIL around every call into C and takes it back in every
 * callback to Python (a hypercall, an event handler), so "GIL not held"
 * means "kernel code is running on this thread". A fault while Python code
 * runs, or outside any guard, goes to the handler that was there before us
 * (the default, pytest's or IPython's faulthandler): we never longjmp
 * across Python frames.
 *
 * Stack overflow. Endless recursion in kernel code faults on the stack's
 * guard page with no stack left to run a handler, so every thread that
 * enters a guard gets an alternate signal stack (sigaltstack), freed when
 * the thread exits.
 *
 * SIGINT. Python's own handler only sets a flag that C code never checks,
 * and Python (ipykernel, for every cell) re-installs it with sigaction() at
 * will. So the outermost guard of a call checks that our handler is in
 * place and, if not, installs it on top of the current one; outside kernel
 * code ours simply calls the one it replaced.
 *
 * State is thread-local (initial-exec TLS: no allocation in the handler),
 * and the handler only records registers and jumps: both are
 * async-signal-safe. The jump leaves the signal blocked (sigsetjmp is
 * called with savemask 0, to keep the common path free of system calls),
 * so host_guard_pop() unblocks it on the rare path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "guard.h"

int PyGILState_Check(void); /* from the Python interpreter */

#define TLS __thread __attribute__((tls_model("initial-exec")))
#define ALTSTACK_SIZE (64 * 1024)
#define MAX_CODE_RANGES 1024

static TLS struct host_guard *current; /* innermost guard of this thread */
static TLS struct host_fault outcome;  /* of the last guard that left early */
static TLS int thread_ready;           /* altstack set up for this thread */
static TLS int interrupt_pending;      /* SIGINT came while Python ran */

static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#define NR_FAULT_SIGNALS (sizeof(fault_signals) / sizeof(fault_signals[0]))

static struct sigaction previous_fault[NR_FAULT_SIGNALS];
static struct sigaction previous_int;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static pthread_key_t altstack_key;
static pthread_mutex_t int_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned long context_pc(const void *context)
{
#if defined(__x86_64__)
    return ((const ucontext_t *)context)->uc_mcontext.gregs[REG_RIP];
#else
    (void)context;
    return 0;
#endif
}

static void record(struct host_guard *guard, int outcome_kind, int signo,
                   const siginfo_t *info, const void *context)
{
    const ucontext_t *uc = context;

    guard->fault.outcome = outcome_kind;
    guard->fault.signo = signo;
    guard->fault.code = info->si_code;
    guard->fault.address = (unsigned long)info->si_addr;
#if defined(__x86_64__)
    guard->fault.pc = uc->uc_mcontext.gregs[REG_RIP];
    guard->fault.sp = uc->uc_mcontext.gregs[REG_RSP];
    guard->fault.error = uc->uc_mcontext.gregs[REG_ERR];
#else
    (void)uc;
#endif
}

/* Pass a signal that is not ours to whoever handled it before us. */
static void chain(const struct sigaction *prev, int signo, siginfo_t *info,
                  void *context)
{
    if (prev->sa_handler == SIG_IGN && signo == SIGINT)
        return;
    if (prev->sa_handler == SIG_DFL || prev->sa_handler == SIG_IGN) {
        /* Back to the default action: a fault re-executes and kills the
         * process as it would have without us; a sent signal is re-raised
         * and delivered when this handler returns. */
        signal(signo, SIG_DFL);
        if (info->si_code <= 0)
            raise(signo);
        return;
    }
    if (prev->sa_flags & SA_SIGINFO)
        prev->sa_sigaction(signo, info, context);
    else
        prev->sa_handler(signo);
}

static int kernel_running(void)
{
    return current != NULL && !PyGILState_Check();
}

/* The executable mappings of the units and of this runtime: code that
 * holds no lock of Python's or of the C library. SIGINT, which may come at
 * any instruction, is only turned into a jump from there: not from inside
 * Python taking or dropping the GIL around a callback. */
static struct {
    unsigned long start, end;
} code_ranges[MAX_CODE_RANGES];
static int nr_code_ranges;

static int in_unit_code(unsigned long pc)
{
    int i, n = __atomic_load_n(&nr_code_ranges, __ATOMIC_ACQUIRE);

    for (i = 0; i < n; i++)
        if (pc >= code_ranges[i].start && pc < code_ranges[i].end)
            return 1;
    return 0;
}

int host_register_code(unsigned long start, unsigned long end)
{
    int n;

    pthread_mutex_lock(&int_lock);
    n = nr_code_ranges;
    if (n < MAX_CODE_RANGES) {
        code_ranges[n].start = start;
        code_ranges[n].end = end;
        __atomic_store_n(&nr_code_ranges, n + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&int_lock);
    return n < MAX_CODE_RANGES ? 0 : -ENOSPC;
}

static void on_fault(int signo, siginfo_t *info, void *context)
{
    unsigned int i;

    if (info->si_code > 0 && kernel_running()) {
        record(current, HOST_FAULTED, signo, info, context);
        siglongjmp(current->env, 1);
    }
    for (i = 0; i < NR_FAULT_SIGNALS; i++)
        if (fault_signals[i] == signo)
            chain(&previous_fault[i], signo, info, context);
}

static void on_interrupt(int signo, siginfo_t *info, void *context)
{
    if (kernel_running() && !current->quiet &&
        in_unit_code(context_pc(context))) {
        record(current, HOST_INTERRUPTED, signo, info, context);
        siglongjmp(current->env, 1);
    }
    if (current != NULL)
        interrupt_pending = 1; /* in case Python loses it (a finalizer) */
    chain(&previous_int, signo, info, context);
}

static void free_altstack(void *memory)
{
    stack_t off = {.ss_flags = SS_DISABLE};

    sigaltstack(&off, NULL);
    munmap(memory, ALTSTACK_SIZE);
}

static void install_fault_handlers(void)
{
    struct sigaction sa;
    unsigned int i;

    pthread_key_create(&altstack_key, free_altstack);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < NR_FAULT_SIGNALS; i++)
        sigaction(fault_signals[i], &sa, &previous_fault[i]);
}

/* Give this thread a signal stack, unless it has one (faulthandler's). */
static void prepare_thread(void)
{
    stack_t old, ss;
    void *memory;

    thread_ready = 1;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
        return;
    memory = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
        return;
    ss.ss_sp = memory;
    ss.ss_size = ALTSTACK_SIZE;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) == 0)
        pthread_setspecific(altstack_key, memory);
    else
        munmap(memory, ALTSTACK_SIZE);
}

/* Put our SIGINT handler back on top if Python replaced it. */
static void claim_sigint(void)
{
    struct sigaction now, ours;

    if (sigaction(SIGINT, NULL, &now) != 0 ||
        ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_interrupt))
        return;
    if (now.sa_handler == SIG_DFL || now.sa_handler == SIG_IGN)
        return; /* nobody asked for SIGINT to be caught: leave it so */
    pthread_mutex_lock(&int_lock);
    memset(&ours, 0, sizeof(ours));
    ours.sa_sigaction = on_interrupt;
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&ours.sa_mask);
    previous_int = now;
    sigaction(SIGINT, &ours, NULL);
    pthread_mutex_unlock(&int_lock);
}

static void push(struct host_guard *guard, int quiet)
{
    if (current == NULL) {
        interrupt_pending = 0;
        pthread_once(&install_once, install_fault_handlers);
        if (!thread_ready)
            prepare_thread();
        claim_sigint();
    }
    guard->outer = current;
    guard->quiet = quiet;
    guard->fault.outcome = HOST_RETURNED;
    current = guard;
}

void host_guard_push(struct host_guard *guard)
{
    push(guard, 0);
}

void host_guard_pop(struct host_guard *guard)
{
    sigset_t caught;
    unsigned int i;

    current = guard->outer;
    if (current == NULL)
        interrupt_pending = 0;
    if (guard->fault.outcome == HOST_RETURNED)
        return;
    outcome = guard->fault;
    if (guard->fault.outcome == HOST_UNWOUND)
        return;
    sigemptyset(&caught);
    sigaddset(&caught, SIGINT);
    for (i = 0; i < NR_FAULT_SIGNALS; i++)
        sigaddset(&caught, fault_signals[i]);
    pthread_sigmask(SIG_UNBLOCK, &caught, NULL);
}

int host_take_outcome(struct host_fault *out)
{
    int kind = outcome.outcome;

    if (out != NULL)
        *out = outcome;
    memset(&outcome, 0, sizeof(outcome));
    return kind;
}

/* The kernel panicked or shut down: back to the innermost guard. */
__attribute__((noreturn)) void host_unwind(void)
{
    if (current == NULL) {
        fputs("minios-lab: kernel unwound outside any guard\n", stderr);
        abort();
    }
    interrupt_pending = 0; /* whatever Python raised says it */
    current->fault.outcome = HOST_UNWOUND;
    siglongjmp(current->env, 1);
}

/* Back in kernel code from Python (a hypercall): stop here if an interrupt
 * came meanwhile and Python did not raise it (it may be lost inside a
 * finalizer, or the kernel ignores what the hypercall returned). */
void host_check_interrupt(void)
{
    if (!interrupt_pending || current == NULL || current->quiet)
        return;
    interrupt_pending = 0;
    memset(&current->fault, 0, sizeof(current->fault));
    current->fault.outcome = HOST_INTERRUPTED;
    current->fault.signo = SIGINT;
    current->fault.pc = (unsigned long)__builtin_return_address(0);
    siglongjmp(current->env, 1);
}

/* Xen's copy_from_guest(): copy, or -EFAULT if either side is unmapped.
 * Quiet: an interrupt during the copy is Python's, so it is not lost. */
long host_copy(void *dst, const void *src, unsigned long size)
{
    struct host_guard guard;
    int kind;

    if (sigsetjmp(guard.env, 0) == 0) {
        push(&guard, 1);
        memcpy(dst, src, size);
    }
    host_guard_pop(&guard);
    kind = guard.fault.outcome;
    if (kind == HOST_RETURNED)
        return 0;
    memset(&outcome, 0, sizeof(outcome));
    return -EFAULT;
}
