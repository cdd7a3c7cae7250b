/*
 * The time chapter: the clock and the timer, checked on real Xen.
 *
 * 1. The time record: vCPU 0's vcpu_time_info as read with the version
 *    protocol, and the TSC frequency its mul and shift stand for.
 * 2. Monotonicity: MONOTONIC_READS back-to-back monotonic_clock() calls
 *    never go backwards.
 * 3. The wall clock: the date now, from shared_info's wc_* fields plus
 *    system time. QEMU's clock chip starts at the host's time, so the
 *    year must be a plausible one.
 * 4. The timer, from the command line: tick_us=N (period in microseconds,
 *    default DEFAULT_TICK_US) and ticks=N (how many, default
 *    DEFAULT_TICKS: a tenth of a second, so that a default boot stays
 *    fast; ticks=0 skips the timer). The guest blocks between ticks and
 *    prints the system time every TICKS_PER_REPORT ticks, then every
 *    interval between ticks and a summary (kernel/timer.c), for the
 *    harness to parse (minios_lab/time.py, parse_time_section).
 *
 * Each check prints "time: PASS what" or "time: FAIL what".
 *
 * After every chapter, forever=1 makes the guest run on as Mini-OS does:
 * time_run_on() starts the timer again (tick_us as above) and the guest
 * idles between ticks, printing "timer: tick N at system time S s" every
 * TICKS_PER_REPORT ticks, until QEMU is stopped (`minios-lab boot`, which
 * `make boot` runs, passes forever=1; Ctrl-C ends it). ticks=N > 0 bounds
 * this run too: N more ticks, then the guest shuts down as usual (the time
 * chapter has run its own N ticks before). ticks=0 skips the chapter's
 * timer and leaves the run-on unbounded.
 */
#include <minios/console.h>
#include <minios/events.h>
#include <minios/printf.h>
#include <minios/start_of_day.h>
#include <minios/time.h>

#define MONOTONIC_READS 10000UL
#define DEFAULT_TICK_US 1000UL
#define DEFAULT_TICKS 100UL
/* How long the ticks may take. Deadlines are absolute and late ones are
 * caught up, so n ticks take n periods plus the last tick's lateness,
 * however late a busy host woke the emulated CPU for it: between n periods
 * plus the least and plus the most lateness seen. A tick at a wrong rate
 * (ns taken for us, ticks skipped, deadlines counted from a late tick) is
 * far outside; EARLY_SLACK_NS either side allows for the clocks' rounding. */
/* Xen fires a one-shot timer when its own clock passes the deadline, and
 * the guest's clock is the same extrapolation of the same record: a tick
 * earlier than this means the two clocks disagree. */
#define EARLY_SLACK_NS 10000
/* QEMU starts its clock chip at the host's date: anything before this
 * year means the wall clock was not read. */
#define PLAUSIBLE_YEAR 2020

/* Print "time: PASS ..." or "time: FAIL ..." in one write; 1 if failed. */
__attribute__((format(printf, 2, 3))) static int check(bool ok,
                                                       const char *fmt, ...)
{
    char text[128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    printk("time: %s %s\n", ok ? "PASS" : "FAIL", text);
    return ok ? 0 : 1;
}

static int report_record(void)
{
    struct time_snapshot snap;

    read_time_info(&vcpu0_info()->time, &snap);
    printk("time: record version %u tsc_timestamp %lu system_time %lu "
           "mul %#x shift %d\n",
           snap.version, (unsigned long)snap.tsc_timestamp,
           (unsigned long)snap.system_time, snap.tsc_to_system_mul,
           snap.tsc_shift);
    if (snap.tsc_to_system_mul == 0)
        return check(false, "the time record is filled in (mul is 0)");
    printk("time: tsc_khz %lu\n",
           (unsigned long)tsc_khz(snap.tsc_to_system_mul, snap.tsc_shift));
    return check(true, "the time record is filled in");
}

static int check_monotonic(unsigned long reads)
{
    unsigned long i, back = 0, retries = time_stats.retries;
    uint64_t first = monotonic_clock(), prev = first, now = first;

    for (i = 0; i < reads; i++) {
        now = monotonic_clock();
        back += now < prev;
        prev = now;
    }
    printk("time: monotonic %lu reads in %lu ns, retries %lu\n", reads,
           (unsigned long)(now - first), time_stats.retries - retries);
    return check(back == 0, "monotonic_clock() never went back (%lu times)",
                 back);
}

static int report_wallclock(void)
{
    struct wallclock base, now;
    struct date d;

    read_wallclock_base(HYPERVISOR_shared_info, &base);
    wallclock_add(&base, monotonic_clock(), &now);
    printk("time: wall clock base %lu.%09u (wc_version %u)\n",
           (unsigned long)base.sec, base.nsec,
           HYPERVISOR_shared_info->wc_version);
    if (date_from_unix(now.sec, &d) != 0)
        return check(false, "wall clock %lu s is past year 9999",
                     (unsigned long)now.sec);
    printk("time: wall clock %04u-%02u-%02u %02u:%02u:%02u.%09u UTC\n", d.year,
           d.month, d.day, d.hour, d.min, d.sec, now.nsec);
    return check(d.year >= PLAUSIBLE_YEAR, "wall clock is set (year %u)",
                 d.year);
}

static int check_ticks(const struct timer_state *t)
{
    uint64_t elapsed = t->last_ns - t->start_ns;
    uint64_t ideal = t->period_ns * t->ticks;
    int64_t beyond = (int64_t)(elapsed - ideal); /* the last tick's lateness */
    int failed;

    failed = check(t->ticks == t->target, "%lu of %lu ticks counted", t->ticks,
                   t->target);
    failed += check(beyond >= t->late_min_ns - EARLY_SLACK_NS &&
                        beyond <= t->late_max_ns + EARLY_SLACK_NS,
                    "%lu ticks took %lu us: %lu us and a tick's lateness",
                    t->ticks, (unsigned long)(elapsed / NSEC_PER_USEC),
                    (unsigned long)(ideal / NSEC_PER_USEC));
    failed += check(t->late_min_ns >= -EARLY_SLACK_NS,
                    "no tick came before its deadline (earliest %ld ns)",
                    (long)t->late_min_ns);
    failed += check(t->backwards == 0, "tick times never went back (%lu)",
                    t->backwards);
    return failed;
}

static int run_timer(unsigned long tick_us, unsigned long ticks)
{
    struct timer_state *t = &timer_state;
    int rc;

    printk("time: timer tick_us %lu ticks %lu: one-shot set_timer_op, "
           "re-armed by the handler\n",
           tick_us, ticks);
    rc = timer_start(tick_us * NSEC_PER_USEC, ticks);
    if (rc != 0)
        return check(false, "start the timer: Xen said %d", rc);
    printk("time: VIRQ_TIMER on port %d\n", t->port);
    timer_wait(t);
    timer_stop();
    timer_report(t);
    return check_ticks(t);
}

static int timer_phase(void)
{
    unsigned long tick_us =
        boot_arg_ulong(&boot_info, "tick_us", DEFAULT_TICK_US);
    unsigned long ticks = boot_arg_ulong(&boot_info, "ticks", DEFAULT_TICKS);

    if (ticks == 0) {
        printk("time: ticks=0: timer skipped\n");
        return 0;
    }
    if (tick_us < TICK_US_MIN || tick_us > TICK_US_MAX)
        return check(false, "tick_us=%lu is within %lu..%lu", tick_us,
                     TICK_US_MIN, TICK_US_MAX);
    return run_timer(tick_us, ticks);
}

int time_run_on(void)
{
    unsigned long tick_us =
        boot_arg_ulong(&boot_info, "tick_us", DEFAULT_TICK_US);
    unsigned long bound = boot_arg_ulong(&boot_info, "ticks", 0);
    struct timer_state *t = &timer_state;
    long rc;

    if (!boot_arg_ulong(&boot_info, "forever", 0))
        return 0;
    if (tick_us < TICK_US_MIN || tick_us > TICK_US_MAX)
        tick_us = DEFAULT_TICK_US;
    rc = map_shared_info(boot_info.shared_info_ma);
    if (rc == 0)
        rc = timer_start(tick_us * NSEC_PER_USEC, bound ? bound : ~0UL);
    if (rc != 0) {
        timer_stop();
        printk("forever: the timer did not start: Xen said %ld\n", rc);
        return (int)rc;
    }
    if (bound)
        printk("forever=1: the timer runs on for ticks=%lu ticks of %lu us, "
               "the system time every %d ticks\n",
               bound, tick_us, TICKS_PER_REPORT);
    else
        printk("forever=1: the timer runs on, ticks of %lu us, the system "
               "time every %d ticks, until QEMU is stopped (Ctrl-C)\n",
               tick_us, TICKS_PER_REPORT);
    timer_wait(t);
    timer_stop();
    printk("forever: %lu ticks, %lu deadlines already past when armed\n",
           t->ticks, t->missed);
    return 0;
}

int chapter_time(void)
{
    long rc = map_shared_info(boot_info.shared_info_ma);
    int failed;

    if (rc != 0)
        return check(false, "map shared_info: Xen said %ld", rc) ? -1 : 0;
    failed = report_record();
    failed += check_monotonic(MONOTONIC_READS);
    failed += report_wallclock();
    failed += timer_phase();
    printk("time: %lu record reads, %lu retries; %lu wall clock reads, "
           "%lu retries\n",
           time_stats.reads, time_stats.retries, time_stats.wc_reads,
           time_stats.wc_retries);
    return failed == 0 ? 0 : -1;
}
