/*
 * CPU hooks for portable kernel code: the guest (x86_64) versions.
 *
 * Portable code never writes inline assembly; it uses these. The host build
 * provides the same names in kernel/host/include/arch/cpu.h, so the same
 * source compiles in both. The whole API:
 *
 *   uint64_t rdtsc(void)        time stamp counter (Xen's time info scales
 *                               it into nanoseconds)
 *   void barrier(void)          compiler barrier: the compiler moves no
 *                               memory access across it
 *   void mb(void), rmb(void), wmb(void)
 *                               full, read and write memory barriers (CPU
 *                               and compiler)
 *   unsigned long xchg(unsigned long *ptr, unsigned long value)
 *                               atomically store value in *ptr and return
 *                               the old value (a full barrier)
 *   void cpu_relax(void)        hint inside a spin-wait loop
 *
 * The fence instructions are usable in a PV guest even though the kernel is
 * built without SSE code generation.
 */
#ifndef ARCH_CPU_H
#define ARCH_CPU_H

#include <minios/types.h>

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void barrier(void)
{
    __asm__ __volatile__("" ::: "memory");
}

static inline void mb(void)
{
    __asm__ __volatile__("mfence" ::: "memory");
}

static inline void rmb(void)
{
    __asm__ __volatile__("lfence" ::: "memory");
}

static inline void wmb(void)
{
    __asm__ __volatile__("sfence" ::: "memory");
}

/* xchg with a memory operand is locked by the CPU: no lock prefix needed. */
static inline unsigned long xchg(unsigned long *ptr, unsigned long value)
{
    __asm__ __volatile__("xchgq %0, %1"
                         : "+r"(value), "+m"(*ptr)
                         :
                         : "memory");
    return value;
}

static inline void cpu_relax(void)
{
    __asm__ __volatile__("pause" ::: "memory");
}

#endif
