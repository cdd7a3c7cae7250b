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
 *   sync_set_bit(nr, addr), sync_clear_bit(nr, addr),
 *   bool sync_test_and_set_bit(nr, addr),
 *   bool sync_test_and_clear_bit(nr, addr)
 *                               atomic operations on bit nr of the bitmap
 *                               of unsigned longs at addr, safe against
 *                               Xen writing the same word at the same time
 *                               (the event channel bitmaps in shared_info)
 *   uint32_t shared_read_u32(const volatile uint32_t *p)
 *                               read, exactly once, a word that Xen may be
 *                               writing at the same time (the version
 *                               counters of the time records)
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

/* Atomic bitmap operations on the word holding bit nr, as memory shared
 * with Xen needs: GCC's __atomic builtins, which x86 carries out as one
 * locked instruction (lock bts/btr when the old bit is used, lock or/and
 * when not). The test_and_ forms return the bit's old value. */
static inline bool sync_test_and_set_bit(unsigned long nr,
                                         volatile unsigned long *addr)
{
    unsigned long bit = 1UL << (nr % 64);

    return __atomic_fetch_or(&addr[nr / 64], bit, __ATOMIC_SEQ_CST) & bit;
}

static inline bool sync_test_and_clear_bit(unsigned long nr,
                                           volatile unsigned long *addr)
{
    unsigned long bit = 1UL << (nr % 64);

    return __atomic_fetch_and(&addr[nr / 64], ~bit, __ATOMIC_SEQ_CST) & bit;
}

static inline void sync_set_bit(unsigned long nr, volatile unsigned long *addr)
{
    (void)sync_test_and_set_bit(nr, addr);
}

static inline void sync_clear_bit(unsigned long nr,
                                  volatile unsigned long *addr)
{
    (void)sync_test_and_clear_bit(nr, addr);
}

/* One plain load: volatile stops the compiler repeating or dropping it. */
static inline uint32_t shared_read_u32(const volatile uint32_t *p)
{
    return *p;
}

#endif
