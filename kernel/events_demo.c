/*
 * The events chapter: event channels demonstrated on a loopback channel.
 *
 * A domain can connect an event channel to itself: EVTCHNOP_alloc_unbound
 * with remote_dom = DOMID_SELF gives a port A that accepts a binding from
 * ourselves, and EVTCHNOP_bind_interdomain to (DOMID_SELF, A) gives its
 * other end B. EVTCHNOP_send on A then raises B, and on B raises A, through
 * the same Xen code path as a real device's notification.
 *
 * With handlers bound on both ends the chapter checks, on real Xen:
 * - events disabled: a send sets the bits but no handler runs; enabling
 *   runs it exactly once (two sends while disabled coalesce into one);
 * - a masked port stays pending; unmasking delivers it, once;
 * - both ends raised while disabled are delivered in one upcall, lowest
 *   port first (the documented scan order);
 * - nested local_irq_save()/restore() delivers only at the outermost
 *   restore.
 * Each check prints "events: PASS what" or "events: FAIL what". The same
 * code runs in the host build (events_selftest), with Python as Xen.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/events.h>
#include <minios/start_of_day.h>

#define ORDER_MAX 8

/* What the handlers saw: every run, in order. */
static struct {
    unsigned long runs;
    unsigned int n;
    evtchn_port_t order[ORDER_MAX];
    bool enabled_in_handler; /* a handler ran with events enabled */
} seen;

static evtchn_port_t port_a, port_b;

static void record(evtchn_port_t port, struct pt_regs *regs, void *data)
{
    (void)regs;
    (void)data;
    seen.runs++;
    if (seen.n < ORDER_MAX)
        seen.order[seen.n++] = port;
    if (!irqs_disabled())
        seen.enabled_in_handler = true;
}

static void forget(void)
{
    seen.runs = 0;
    seen.n = 0;
}

/* Print "events: PASS ..." or "events: FAIL ..."; return 1 if failed. */
__attribute__((format(printf, 2, 3))) static int check(bool ok,
                                                       const char *fmt, ...)
{
    va_list ap;

    printk("events: %s ", ok ? "PASS" : "FAIL");
    va_start(ap, fmt);
    vprintk(fmt, ap);
    va_end(ap);
    printk("\n");
    return ok ? 0 : 1;
}

static bool pending(evtchn_port_t port)
{
    return (HYPERVISOR_shared_info->evtchn_pending[port / EVTCHN_WORD_BITS] >>
            (port % EVTCHN_WORD_BITS)) &
           1;
}

/* A = alloc_unbound(DOMID_SELF), B = bind_interdomain(DOMID_SELF, A). */
static int open_loopback(void)
{
    int rc = evtchn_alloc_unbound(DOMID_SELF, &port_a);

    if (rc == 0)
        rc = evtchn_bind_interdomain(DOMID_SELF, port_a, &port_b);
    if (rc != 0) {
        printk("events: FAIL loopback channel: Xen said %d\n", rc);
        return 1;
    }
    printk("events: loopback ports A=%u B=%u; B pending after bind: %d\n",
           port_a, port_b, (int)pending(port_b));
    /* Xen sets a freshly bound interdomain port pending: start clean. */
    clear_evtchn(port_b);
    rc = bind_evtchn(port_a, record, NULL);
    if (rc == 0)
        rc = bind_evtchn(port_b, record, NULL);
    return check(rc == 0, "bind a handler on A and on B: rc %d", rc);
}

/* Disabled: the send is held; enabling delivers it once. */
static int disabled_then_enabled(void)
{
    unsigned long upcalls = upcall_stats.upcalls;
    int failed = 0;

    forget();
    local_irq_disable();
    notify_remote_via_evtchn(port_a);
    notify_remote_via_evtchn(port_a);
    failed += check(seen.runs == 0 && pending(port_b),
                    "2 sends A->B, events disabled: %lu runs, B pending %d",
                    seen.runs, (int)pending(port_b));
    failed += check(vcpu0_info()->evtchn_upcall_pending == 1,
                    "Xen holds the upcall: evtchn_upcall_pending %d",
                    (int)vcpu0_info()->evtchn_upcall_pending);
    local_irq_enable();
    failed +=
        check(seen.runs == 1 && seen.order[0] == port_b,
              "enable: B's handler ran %lu time(s), once expected", seen.runs);
    failed += check(upcall_stats.upcalls > upcalls,
                    "it came through the upcall: %lu upcall(s)",
                    upcall_stats.upcalls - upcalls);
    return failed;
}

/* Masked: pending but not delivered; unmask delivers once. */
static int masked_then_unmasked(void)
{
    int failed = 0;

    forget();
    mask_evtchn(port_a);
    notify_remote_via_evtchn(port_b);
    failed += check(seen.runs == 0 && pending(port_a),
                    "send B->A, A masked, events enabled: %lu runs, A "
                    "pending %d",
                    seen.runs, (int)pending(port_a));
    unmask_evtchn(port_a);
    failed +=
        check(seen.runs == 1 && seen.order[0] == port_a,
              "unmask: A's handler ran %lu time(s), once expected", seen.runs);
    return failed;
}

/* Both ends raised while disabled: one upcall, lowest port first. */
static int scan_order(void)
{
    evtchn_port_t low = port_a < port_b ? port_a : port_b;
    evtchn_port_t high = port_a < port_b ? port_b : port_a;
    unsigned long upcalls = upcall_stats.upcalls;
    int failed;

    forget();
    local_irq_disable();
    notify_remote_via_evtchn(high == port_a ? port_b : port_a);
    notify_remote_via_evtchn(low == port_a ? port_b : port_a);
    local_irq_enable();
    failed = check(
        seen.n == 2 && seen.order[0] == low && seen.order[1] == high,
        "raise %u then %u, disabled; enable delivers %u then %u", high, low,
        seen.n > 0 ? seen.order[0] : 0, seen.n > 1 ? seen.order[1] : 0);
    failed += check(upcall_stats.upcalls == upcalls + 1,
                    "both in one upcall: %lu upcall(s)",
                    upcall_stats.upcalls - upcalls);
    return failed;
}

/* Nested save/restore: only the outermost restore lets the event in. */
static int nested_save_restore(void)
{
    unsigned long outer, inner;
    int failed;

    forget();
    outer = local_irq_save();
    inner = local_irq_save();
    notify_remote_via_evtchn(port_a);
    local_irq_restore(inner);
    failed = check(seen.runs == 0 && outer == 0 && inner == 1,
                   "save, save, send, restore(inner %lu): %lu runs", inner,
                   seen.runs);
    local_irq_restore(outer);
    failed += check(seen.runs == 1 && !irqs_disabled(),
                    "restore(outer %lu): %lu run(s), events enabled %d", outer,
                    seen.runs, (int)!irqs_disabled());
    return failed;
}

static int close_loopback(void)
{
    int rc_a = unbind_evtchn(port_a);
    int rc_b = unbind_evtchn(port_b);

    return check(rc_a == 0 && rc_b == 0, "unbind and close A and B: rc %d, %d",
                 rc_a, rc_b);
}

int events_selftest(void)
{
    int failed;

    BUG_ON(HYPERVISOR_shared_info == NULL);
    if (open_loopback() != 0)
        return -1;
    failed = disabled_then_enabled();
    failed += masked_then_unmasked();
    failed += scan_order();
    failed += nested_save_restore();
    failed += check(!seen.enabled_in_handler,
                    "every handler ran with events masked");
    failed += close_loopback();
    printk("events: %lu upcalls, %lu events, %lu spurious, %lu unhandled\n",
           upcall_stats.upcalls, upcall_stats.events, upcall_stats.spurious,
           upcall_stats.unhandled);
    return failed == 0 ? 0 : -1;
}

int chapter_events(void)
{
    long rc = map_shared_info(boot_info.shared_info_ma);

    if (rc != 0) {
        printk("events: FAIL map shared_info: Xen said %ld\n", rc);
        return -1;
    }
    printk("events: shared_info machine %#lx mapped at %p\n",
           boot_info.shared_info_ma, (void *)HYPERVISOR_shared_info);
    init_events();
    return events_selftest();
}
