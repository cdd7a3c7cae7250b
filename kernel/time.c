/*
 * The clock: Xen's system time and the wall clock, read from shared_info.
 *
 * Xen keeps, for each vCPU, a vcpu_time_info record in shared_info:
 *
 *     tsc_timestamp   the TSC when Xen last wrote the record
 *     system_time     ns since Xen booted, at that TSC
 *     tsc_to_system_mul, tsc_shift   how to turn TSC ticks into ns
 *
 * so the time now is
 *
 *     system_time + scale_delta(rdtsc() - tsc_timestamp, mul, shift)
 *
 * scale_delta() shifts the delta (left if tsc_shift >= 0, else right),
 * then multiplies by mul, a 32.32 fixed-point fraction (mul / 2^32 ns per
 * shifted tick). The product of a 64-bit delta and a 32-bit mul is up to 96
 * bits wide, so it is done in two halves: with delta = hi * 2^32 + lo,
 *
 *     (delta * mul) >> 32  =  hi * mul  +  ((lo * mul) >> 32)
 *
 * exactly (hi * mul * 2^32 has nothing below bit 32 to lose), each product
 * fitting in 64 bits. No 128-bit type, no division.
 *
 * The version protocol. Xen rewrites the record every so often (each time
 * the vCPU is scheduled, and on its own calibration ticks). It increments
 * `version` before it starts (making it odd) and again when done (even). A
 * reader must therefore: read version, barrier, copy the fields, barrier,
 * read version again, and start over if the first read was odd (an update
 * was in progress) or the two differ (an update happened while we copied:
 * the copy may mix old and new fields, a "torn" read). Only a copy made
 * between two equal even reads is returned. The wall clock (wc_version,
 * wc_sec, wc_nsec, wc_sec_hi) follows the same protocol.
 *
 * Version reads go through shared_read_u32() (<arch/cpu.h>): one plain load
 * in the guest; in the host build, a point where Python playing Xen can
 * write the record, to show the retries.
 */
#include <arch/cpu.h>
#include <minios/bug.h>
#include <minios/events.h>
#include <minios/time.h>

#define SECS_PER_DAY 86400UL
/* 9999-12-31 23:59:59 UTC: dates stay four digits. */
#define DATE_MAX_SEC 253402300799ULL

/* Xen writes a vCPU's record while that vCPU is not running guest code, so
 * on one vCPU the reader retries rarely, and a few times at most. Past this
 * many, the record is broken (or Python's Xen never finishes). */
#define TIME_RETRIES_MAX 1000

struct time_stats time_stats;

uint64_t scale_delta(uint64_t delta, uint32_t mul, int shift)
{
    uint64_t lo, hi, ns = 0;

    /* Shifting a 64-bit value by 64 or more is undefined in C: say what
     * the arithmetic means, every bit shifted out. */
    if (shift >= 64 || shift <= -64)
        return 0;
    /* BEGIN SOLUTION */
    if (shift >= 0)
        delta <<= shift;
    else
        delta >>= -shift;
    lo = delta & 0xffffffffUL;
    hi = delta >> 32;
    ns = hi * mul + ((lo * mul) >> 32);
    /* END SOLUTION */
    return ns;
}

static void copy_time_fields(const volatile struct vcpu_time_info *src,
                             struct time_snapshot *snap)
{
    snap->tsc_timestamp = src->tsc_timestamp;
    snap->system_time = src->system_time;
    snap->tsc_to_system_mul = src->tsc_to_system_mul;
    snap->tsc_shift = src->tsc_shift;
    snap->tsc = rdtsc();
}

unsigned int read_time_info(const volatile struct vcpu_time_info *src,
                            struct time_snapshot *snap)
{
    unsigned int retries = 0;
    uint32_t version;

    BUG_ON(src == NULL || snap == NULL);
    for (;;) {
        /* BEGIN SOLUTION */
        version = shared_read_u32(&src->version);
        rmb();
        copy_time_fields(src, snap);
        rmb();
        if ((version & 1) == 0 && shared_read_u32(&src->version) == version)
            break;
        /* END SOLUTION */
        if (++retries > TIME_RETRIES_MAX)
            PANIC("read_time_info: version %u never settled", version);
    }
    snap->version = version;
    snap->retries = retries;
    time_stats.reads++;
    time_stats.retries += retries;
    return retries;
}

uint64_t snapshot_system_time(const struct time_snapshot *snap)
{
    uint64_t delta = 0;

    /* On one vCPU the TSC read after the record is never behind its stamp;
     * if it were, extrapolating backwards by 2^64 ticks would be absurd. */
    if (snap->tsc > snap->tsc_timestamp)
        delta = snap->tsc - snap->tsc_timestamp;
    return snap->system_time +
           scale_delta(delta, snap->tsc_to_system_mul, snap->tsc_shift);
}

/*
 * The clamp. Xen's records are meant to be continuous, but a record can
 * say an earlier time than the last one extrapolated (a TSC rate that was
 * a little fast, recalibrated downwards; a new record written after a
 * migration). A clock that goes back breaks every "later minus earlier"
 * in the kernel, so monotonic_clock() never returns less than it returned
 * before: the last value, stored with a compare-and-swap, since an event
 * handler may read the clock between our read and our store. A new
 * shared_info page (set_shared_info()) is a new clock and starts over.
 */
static uint64_t clock_last_ns;
static unsigned long clock_generation;
unsigned long monotonic_clamps;

static uint64_t not_before_last(uint64_t now)
{
    uint64_t last;

    if (clock_generation != shared_info_generation) {
        clock_generation = shared_info_generation;
        __atomic_store_n(&clock_last_ns, 0, __ATOMIC_RELAXED);
    }
    last = __atomic_load_n(&clock_last_ns, __ATOMIC_RELAXED);
    do {
        if (now < last) {
            monotonic_clamps++;
            return last;
        }
    } while (!__atomic_compare_exchange_n(&clock_last_ns, &last, now, false,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return now;
}

uint64_t monotonic_clock(void)
{
    struct time_snapshot snap;

    read_time_info(&vcpu0_info()->time, &snap);
    return not_before_last(snapshot_system_time(&snap));
}

unsigned int read_wallclock_base(const volatile shared_info_t *s,
                                 struct wallclock *base)
{
    unsigned int retries;
    uint32_t version = 0;

    BUG_ON(s == NULL || base == NULL);
    for (retries = 0;; retries++) {
        if (retries > TIME_RETRIES_MAX)
            PANIC("read_wallclock_base: version %u never settled", version);
        version = shared_read_u32(&s->wc_version);
        rmb();
        base->sec = ((uint64_t)s->wc_sec_hi << 32) | s->wc_sec;
        base->nsec = s->wc_nsec;
        rmb();
        if ((version & 1) == 0 && shared_read_u32(&s->wc_version) == version)
            break;
    }
    time_stats.wc_reads++;
    time_stats.wc_retries += retries;
    return retries;
}

void wallclock_add(const struct wallclock *base, uint64_t system_ns,
                   struct wallclock *out)
{
    /* base->nsec < 10^9, so the sum cannot wrap before 584 years of
     * system time. */
    uint64_t ns = base->nsec + system_ns;

    out->sec = base->sec + ns / NSEC_PER_SEC;
    out->nsec = (uint32_t)(ns % NSEC_PER_SEC);
}

void wallclock_now(struct wallclock *now)
{
    struct wallclock base;

    read_wallclock_base(HYPERVISOR_shared_info, &base);
    wallclock_add(&base, monotonic_clock(), now);
}

static bool is_leap(unsigned int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static unsigned int days_in_month(unsigned int year, unsigned int month)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
                                           31, 31, 30, 31, 30, 31};

    return days[month - 1] + (month == 2 && is_leap(year));
}

/* Whole years, then whole months: a loop of at most 8030 years, plain to
 * read. */
int date_from_unix(uint64_t sec, struct date *d)
{
    uint64_t days = sec / SECS_PER_DAY;
    unsigned int rest = (unsigned int)(sec % SECS_PER_DAY);

    if (sec > DATE_MAX_SEC)
        return -1;
    d->year = 1970;
    while (days >= 365U + is_leap(d->year))
        days -= 365U + is_leap(d->year++);
    d->month = 1;
    while (days >= days_in_month(d->year, d->month))
        days -= days_in_month(d->year, d->month++);
    d->day = (unsigned int)days + 1;
    d->hour = rest / 3600;
    d->min = rest / 60 % 60;
    d->sec = rest % 60;
    return 0;
}

uint64_t tsc_khz(uint32_t mul, int shift)
{
    /* One tick is mul / 2^32 ns after the shift: ticks per ms is
     * (10^6 << 32) / mul, undone by the shift. */
    uint64_t khz;

    BUG_ON(mul == 0 || shift >= 32 || shift <= -32);
    khz = (1000000ULL << 32) / mul;
    return shift >= 0 ? khz >> shift : khz << -shift;
}
