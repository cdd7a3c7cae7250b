/*
 * CPU hooks for the host build, with the same names as the guest's
 * kernel/arch/x86_64/include/arch/cpu.h.
 *
 * Barriers and xchg use the compiler's atomic builtins. There is no real
 * TSC to read: rdtsc() returns host_tsc, a counter that Python moves when a
 * lesson wants time to pass.
 */
#ifndef ARCH_CPU_H
#define ARCH_CPU_H

#include <minios/types.h>

extern uint64_t host_tsc;

static inline uint64_t rdtsc(void)
{
    return __atomic_load_n(&host_tsc, __ATOMIC_SEQ_CST);
}

static inline void barrier(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void mb(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static inline void rmb(void)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
}

static inline void wmb(void)
{
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline unsigned long xchg(unsigned long *ptr, unsigned long value)
{
    return __atomic_exchange_n(ptr, value, __ATOMIC_SEQ_CST);
}

static inline void cpu_relax(void)
{
    barrier();
}

#endif
