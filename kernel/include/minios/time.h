/*
 * Time for a PV guest: Xen's system time, the wall clock and the timer.
 *
 * Xen does not give a PV guest a clock chip. It keeps, per vCPU, a record
 * in shared_info (vcpu_info[n].time, struct vcpu_time_info) saying "at TSC
 * value tsc_timestamp, system time was system_time nanoseconds since Xen
 * booted; one TSC tick is worth tsc_to_system_mul / 2^32 ns after a shift
 * by tsc_shift". The guest reads the TSC itself and extrapolates
 * (kernel/time.c). The wall clock is a second record, shared_info's wc_*
 * fields: the date and time at which system time was 0.
 *
 * The timer is a virtual interrupt: VIRQ_TIMER, bound to an event channel
 * like any other event. kernel/timer.c arms it with set_timer_op and waits
 * for it with SCHEDOP_block.
 */
#ifndef MINIOS_TIME_H
#define MINIOS_TIME_H

#include <minios/xen.h>

#define NSEC_PER_USEC 1000UL
#define NSEC_PER_SEC 1000000000UL

/* cffi: begin */
/* A consistent copy of a vcpu_time_info, with the TSC read inside the same
 * window: everything needed to say what time it was at that TSC. */
struct time_snapshot {
    uint32_t version; /* even: no update was in progress */
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint64_t tsc;         /* rdtsc() taken between the two version reads */
    unsigned int retries; /* times the version check sent us round again */
};

/* Seconds and nanoseconds since 1970-01-01 00:00 UTC. */
struct wallclock {
    uint64_t sec;
    uint32_t nsec; /* < NSEC_PER_SEC */
};

/* A calendar date and time of day (UTC, proleptic Gregorian). */
struct date {
    unsigned int year, month, day; /* month 1..12, day 1..31 */
    unsigned int hour, min, sec;
};

/* Counters for the notebook: how often each version protocol retried. */
struct time_stats {
    unsigned long reads;
    unsigned long retries;
    unsigned long wc_reads;
    unsigned long wc_retries;
};

extern struct time_stats time_stats;

/* --- the clock (kernel/time.c) ------------------------------------------- */

/* TSC ticks to ns: ((delta << shift, or >> -shift) * mul) >> 32, exact for
 * every 64-bit delta (the product is 96 bits wide; no bits are lost). */
uint64_t scale_delta(uint64_t delta, uint32_t mul, int shift);
/* Copy *src following Xen's version protocol into *snap; returns the
 * number of retries. Panics if the version stays unreadable. */
unsigned int read_time_info(const volatile struct vcpu_time_info *src,
                            struct time_snapshot *snap);
/* System time (ns since Xen booted) at snap->tsc. */
uint64_t snapshot_system_time(const struct time_snapshot *snap);
/* Now, in ns of Xen system time, from vCPU 0's record in shared_info.
 * Never less than the value it returned last (for the same shared_info):
 * if Xen's record goes back, the last value is returned again. */
uint64_t monotonic_clock(void);
/* Times monotonic_clock() returned its last value because Xen's record
 * said an earlier time. */
extern unsigned long monotonic_clamps;
/* The wall-clock base (the date at system time 0), version protocol on
 * wc_version; returns the number of retries. */
unsigned int read_wallclock_base(const volatile shared_info_t *s,
                                 struct wallclock *base);
/* base + system_ns, carried into seconds. */
void wallclock_add(const struct wallclock *base, uint64_t system_ns,
                   struct wallclock *out);
/* The wall clock now, from shared_info. */
void wallclock_now(struct wallclock *now);
/* Seconds since the epoch to a calendar date; -1 after year 9999. */
int date_from_unix(uint64_t sec, struct date *d);
/* TSC frequency in kHz that mul and shift stand for. */
uint64_t tsc_khz(uint32_t mul, int shift);

/* --- the timer (kernel/timer.c) ------------------------------------------ */

/* Interval samples kept for the report (later ticks are counted only). */
#define TIMER_SAMPLES_MAX 4096
/* Accepted tick periods: Xen takes anything, QEMU cannot keep up below. */
#define TICK_US_MIN 100UL
#define TICK_US_MAX 1000000UL
/* The timer prints the system time every this many ticks (once a second at
 * the default 1 ms). Early Mini-OS (Xen 2 and 3) printed the time every
 * 1000 ticks from its timer handler; later ones print it once a second
 * from a thread. */
#define TICKS_PER_REPORT 1000

struct timer_state {
    uint64_t period_ns;
    /* Ticks to count before stopping; ticks counted so far; VIRQ_TIMER
     * events after the last tick; deadlines already past when re-armed;
     * ticks whose system time was before the previous tick's. */
    unsigned long target, ticks, extra, missed, backwards;
    /* System times (ns): when the timer was armed, the armed deadline, the
     * last tick. */
    uint64_t start_ns, deadline, last_ns;
    /* Shortest and longest interval between ticks. */
    uint64_t iv_min_ns, iv_max_ns;
    /* Lateness of a tick, its time minus its deadline: extremes and sum. */
    int64_t late_min_ns, late_max_ns, late_sum_ns;
    /* The event channel carrying VIRQ_TIMER, or -1. */
    int port;
    /* The first TIMER_SAMPLES_MAX intervals between ticks. */
    unsigned long nr_samples;
    uint32_t interval_ns[TIMER_SAMPLES_MAX];
};

extern struct timer_state timer_state;

/* Reset t for period_ns and target ticks (no hypercall). */
void timer_reset(struct timer_state *t, uint64_t period_ns,
                 unsigned long target);
/* Count one VIRQ_TIMER at system time now: record the interval, report
 * every TICKS_PER_REPORT ticks, and return the next deadline to arm (0 when
 * the target is reached). */
uint64_t timer_tick(struct timer_state *t, uint64_t now);
/* Start ticking: stop Xen's default periodic timer, bind VIRQ_TIMER to
 * the tick handler, arm the first deadline. Returns 0 or Xen's error. */
int timer_start(uint64_t period_ns, unsigned long target);
/* Block until t->target ticks have been counted (the idle loop). */
void timer_wait(struct timer_state *t);
/* Cancel the deadline and close the VIRQ_TIMER port. */
void timer_stop(void);
/* Print the interval samples and the summary lines of the chapter. */
void timer_report(const struct timer_state *t);

/* The guest's chapter "time": clock, wall clock, then tick_us/ticks
 * from the command line. Prints its section; returns 0 if all passed. */
int chapter_time(void);
/* forever=1 on the command line: after the chapters, start the timer again
 * and let it run, printing the system time every TICKS_PER_REPORT ticks,
 * until QEMU is stopped, or for ticks=N ticks if N > 0 is given. Returns
 * at once without forever=1; else 0, or Xen's error if the timer would not
 * start. */
int time_run_on(void);
/* cffi: end */

#endif
