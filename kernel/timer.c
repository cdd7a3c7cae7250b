/*
 * The timer: VIRQ_TIMER, a periodic tick, and an idle loop that blocks.
 *
 * A PV guest has no timer chip either. Xen offers each vCPU a virtual
 * interrupt, VIRQ_TIMER, that the guest binds to an event channel like any
 * other event (bind_virq), and two ways to make it fire:
 *
 * - VCPUOP_set_periodic_timer(period): Xen raises VIRQ_TIMER every period.
 *   A PV vCPU starts with one at 100 Hz. But Xen only runs it while the
 *   vCPU is running: it stops the periodic timer when it switches away from
 *   a vCPU (sched_context_switch() in Xen 4.17's common/sched/core.c) and
 *   restarts it when it switches back. A vCPU blocked in SCHEDOP_block is
 *   switched away, so a periodic timer never wakes it (a guest that tries
 *   never wakes up: scripts/periodic_timer_experiment.py).
 * - set_timer_op(deadline): a one-shot timer at an absolute system time, in
 *   ns (the time kernel/time.c computes). It fires whether or not the vCPU
 *   runs, and wakes a blocked one.
 *
 * An idle guest must block, so this file uses the one-shot: it stops the
 * default periodic timer (else its 100 Hz events would count as ticks), and
 * re-arms set_timer_op from the tick handler, each deadline being the last
 * one plus the period. Absolute deadlines do not drift: a tick delivered
 * late shortens the next interval instead of pushing every later tick, so
 * after n ticks n periods have passed, give or take one tick's lateness:
 * the tick count is a clock. A deadline already in the past when re-armed
 * (the guest was held up for more than a period) is armed all the same:
 * Xen fires at once, and the ticks catch up in a burst. Such deadlines are
 * counted in `missed`. (Skipping them instead, next = now + period, would
 * keep the intervals near the period but lose ticks, and the count would
 * fall behind the time.)
 *
 * The idle loop, timer_wait(): mask events, check whether there is still
 * work to wait for, SCHEDOP_block. Masking first closes the race where the
 * last tick arrives between the check and the block (nothing would ever
 * wake us). Xen's block re-enables event delivery and checks for pending
 * events atomically (<xen/sched.h>), so a tick already pending makes it
 * return at once, and the upcall runs as the hypercall returns.
 *
 * The tick handler prints the system time every TICKS_PER_REPORT ticks
 * (once a second at the default 1 ms period). It also records each
 * interval between ticks, and how late each tick came after its deadline,
 * for the chapter's report.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/events.h>
#include <minios/hypervisor.h>
#include <minios/printf.h>
#include <minios/string.h>
#include <minios/time.h>

/* Interval samples per report line: short enough for an 80-column log. */
#define SAMPLES_PER_LINE 12

struct timer_state timer_state;

void timer_reset(struct timer_state *t, uint64_t period_ns,
                 unsigned long target)
{
    BUG_ON(period_ns == 0);
    memset(t, 0, sizeof(*t));
    t->period_ns = period_ns;
    t->target = target;
    t->port = -1;
    t->iv_min_ns = UINT64_MAX;
    t->late_min_ns = INT64_MAX;
    t->late_max_ns = INT64_MIN;
}

static void record_tick(struct timer_state *t, uint64_t now)
{
    uint64_t interval = 0;
    int64_t late = (int64_t)(now - t->deadline);

    /* Counted, not fatal: the chapter reports it as a failed check. */
    if (now >= t->last_ns)
        interval = now - t->last_ns;
    else
        t->backwards++;

    if (t->nr_samples < TIMER_SAMPLES_MAX)
        t->interval_ns[t->nr_samples++] =
            interval > UINT32_MAX ? UINT32_MAX : (uint32_t)interval;
    t->iv_min_ns = interval < t->iv_min_ns ? interval : t->iv_min_ns;
    t->iv_max_ns = interval > t->iv_max_ns ? interval : t->iv_max_ns;
    t->late_min_ns = late < t->late_min_ns ? late : t->late_min_ns;
    t->late_max_ns = late > t->late_max_ns ? late : t->late_max_ns;
    t->late_sum_ns += late;
    t->last_ns = now > t->last_ns ? now : t->last_ns;
}

/* The next deadline: one period after the last, even if that has passed
 * already (then Xen fires at once and the tick count catches up). */
static uint64_t next_deadline(struct timer_state *t, uint64_t now)
{
    uint64_t next = 0;

    /* BEGIN SOLUTION */
    next = t->deadline + t->period_ns;
    if (next <= now)
        t->missed++;
    /* END SOLUTION */
    return next;
}

uint64_t timer_tick(struct timer_state *t, uint64_t now)
{
    BUG_ON(t->period_ns == 0);
    if (t->ticks >= t->target) {
        t->extra++;
        return 0;
    }
    record_tick(t, now);
    t->ticks++;
    if (t->ticks % TICKS_PER_REPORT == 0)
        printk("timer: tick %lu at system time %lu.%09lu s\n", t->ticks,
               (unsigned long)(now / NSEC_PER_SEC),
               (unsigned long)(now % NSEC_PER_SEC));
    if (t->ticks == t->target)
        return 0;
    t->deadline = next_deadline(t, now);
    return t->deadline;
}

static void timer_handler(evtchn_port_t port, struct pt_regs *regs, void *data)
{
    struct timer_state *t = data;
    uint64_t next;

    (void)port;
    (void)regs;
    next = timer_tick(t, monotonic_clock());
    if (next != 0 && HYPERVISOR_set_timer_op(next) != 0)
        PANIC("timer_handler: set_timer_op(%lu) refused", (unsigned long)next);
}

int timer_start(uint64_t period_ns, unsigned long target)
{
    struct timer_state *t = &timer_state;
    unsigned long flags;
    long rc;

    BUG_ON(target == 0);
    timer_reset(t, period_ns, target);
    rc = HYPERVISOR_vcpu_op(VCPUOP_stop_periodic_timer, 0, NULL);
    if (rc != 0)
        return (int)rc;
    /* Nothing is delivered until the first deadline is armed. */
    flags = local_irq_save();
    t->port = bind_virq(VIRQ_TIMER, timer_handler, t);
    if (t->port >= 0) {
        t->start_ns = t->last_ns = monotonic_clock();
        t->deadline = t->start_ns + period_ns;
        rc = HYPERVISOR_set_timer_op(t->deadline);
    }
    local_irq_restore(flags);
    return t->port < 0 ? t->port : (int)rc;
}

void timer_wait(struct timer_state *t)
{
    /* BEGIN SOLUTION */
    for (;;) {
        local_irq_disable();
        if (t->ticks >= t->target)
            break;
        /* Returns with events enabled; the tick's upcall runs now. */
        HYPERVISOR_sched_op(SCHEDOP_block, NULL);
    }
    local_irq_enable();
    /* END SOLUTION */
}

void timer_stop(void)
{
    struct timer_state *t = &timer_state;

    /* Deadline 0 cancels the one-shot timer. */
    HYPERVISOR_set_timer_op(0);
    if (t->port >= 0 && unbind_evtchn((evtchn_port_t)t->port) != 0)
        printk("timer: closing port %d failed\n", t->port);
    t->port = -1;
}

/* Append ns as " label 12.345" (microseconds, three decimals) to buf. */
static size_t put_us(char *buf, size_t at, size_t size, const char *label,
                     int64_t ns)
{
    uint64_t abs = ns < 0 ? (uint64_t)-ns : (uint64_t)ns;

    return at + (size_t)snprintf(buf + at, size - at, " %s %s%lu.%03lu", label,
                                 ns < 0 ? "-" : "",
                                 (unsigned long)(abs / NSEC_PER_USEC),
                                 (unsigned long)(abs % NSEC_PER_USEC));
}

/* "time: intervals_us FIRST: v v v ...", one console write per line. */
static void print_samples(const struct timer_state *t)
{
    char line[SAMPLES_PER_LINE * 12 + 40];
    unsigned long i;
    size_t at = 0;

    for (i = 0; i < t->nr_samples; i++) {
        if (i % SAMPLES_PER_LINE == 0)
            at = (size_t)snprintf(line, sizeof(line),
                                  "time: intervals_us %lu:", i);
        at += (size_t)snprintf(
            line + at, sizeof(line) - at, " %lu",
            (unsigned long)((t->interval_ns[i] + 500) / NSEC_PER_USEC));
        if (i % SAMPLES_PER_LINE == SAMPLES_PER_LINE - 1 ||
            i + 1 == t->nr_samples)
            printk("%s\n", line);
    }
}

void timer_report(const struct timer_state *t)
{
    uint64_t elapsed = t->last_ns - t->start_ns;
    char line[160];
    size_t at;

    print_samples(t);
    if (t->ticks == 0)
        return;
    at = (size_t)snprintf(line, sizeof(line), "time: interval_us");
    at = put_us(line, at, sizeof(line), "min", (int64_t)t->iv_min_ns);
    at = put_us(line, at, sizeof(line), "mean", (int64_t)(elapsed / t->ticks));
    at = put_us(line, at, sizeof(line), "max", (int64_t)t->iv_max_ns);
    printk("%s period %lu ticks %lu\n", line,
           (unsigned long)(t->period_ns / NSEC_PER_USEC), t->ticks);
    at = (size_t)snprintf(line, sizeof(line), "time: late_us");
    at = put_us(line, at, sizeof(line), "min", t->late_min_ns);
    at = put_us(line, at, sizeof(line), "mean",
                t->late_sum_ns / (int64_t)t->ticks);
    at = put_us(line, at, sizeof(line), "max", t->late_max_ns);
    printk("%s missed %lu extra %lu backwards %lu\n", line, t->missed,
           t->extra, t->backwards);
}
