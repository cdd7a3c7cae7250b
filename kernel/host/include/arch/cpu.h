/*
 * CPU hooks for the host build, with the same names as the guest's
 * kernel/arch/x86_64/include/arch/cpu.h.
 *
 * Barriers and xchg use the compiler's atomic builtins. There is no real
 * TSC to read: rdtsc() returns host_tsc, a counter that Python moves when a
 * lesson wants time to pass.
 *
 * shared_read_u32() reads a word Xen may be writing. Nothing runs beside the
 * kernel here, so after the load it calls host_shared_read_hook, if set:
 * Python playing Xen can then write the shared page "at the same time" as
 * the kernel reads it (kernel/host/shared_read.c defines the hook).
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

/* Atomic bitmap operations, as the guest's lock bts/btr. */
static inline void sync_set_bit(unsigned long nr, volatile unsigned long *addr)
{
    __atomic_fetch_or(&addr[nr / 64], 1UL << (nr % 64), __ATOMIC_SEQ_CST);
}

static inline void sync_clear_bit(unsigned long nr,
                                  volatile unsigned long *addr)
{
    __atomic_fetch_and(&addr[nr / 64], ~(1UL << (nr % 64)), __ATOMIC_SEQ_CST);
}

static inline bool sync_test_and_set_bit(unsigned long nr,
                                         volatile unsigned long *addr)
{
    unsigned long bit = 1UL << (nr % 64);

    return (__atomic_fetch_or(&addr[nr / 64], bit, __ATOMIC_SEQ_CST) & bit) !=
           0;
}

static inline bool sync_test_and_clear_bit(unsigned long nr,
                                           volatile unsigned long *addr)
{
    unsigned long bit = 1UL << (nr % 64);

    return (__atomic_fetch_and(&addr[nr / 64], ~bit, __ATOMIC_SEQ_CST) &
            bit) != 0;
}

extern void (*host_shared_read_hook)(const volatile void *address);

static inline uint32_t shared_read_u32(const volatile uint32_t *p)
{
    uint32_t value = *p;

    if (host_shared_read_hook != NULL)
        host_shared_read_hook(p);
    return value;
}

#endif
