/*
 * Event channels: the handler table, port masking and the interrupt flag.
 *
 * A port is a number Xen gives us (EVTCHNOP_alloc_unbound, bind_virq,
 * bind_interdomain, ...). The guest keeps one handler per port in
 * evtchn_table[]; the upcall (kernel/hypervisor.c) calls evtchn_deliver()
 * for each port it finds pending and unmasked.
 *
 * Two levels of "don't interrupt me now":
 *
 * - Per port: evtchn_mask[] in shared_info. Xen still sets the pending bit
 *   of a masked port but not its selector bit nor upcall_pending, so
 *   nothing is delivered. unmask_evtchn() must therefore do Xen's part
 *   itself when the port is already pending: set the selector bit, set
 *   upcall_pending, and, if events are enabled, make Xen deliver now.
 * - Per vCPU: evtchn_upcall_mask in vcpu_info, the PV interrupt flag.
 *   local_irq_disable() sets it; Xen then leaves upcall_pending set and
 *   does not enter the callback. local_irq_enable() clears it and, if an
 *   upcall became pending meanwhile, makes a cheap hypercall
 *   (force_evtchn_callback): Xen delivers pending events on every return
 *   to the guest.
 *
 * Invariant (no lost event): a port that is pending and unmasked has its
 * selector bit set, or the upcall is scanning its word right now, and a set
 * selector bit means evtchn_upcall_pending is set or being handled. So each
 * raise is seen; it is seen once because evtchn_deliver() clears the
 * pending bit before the handler runs (a raise during the handler is a new
 * event, for the next upcall).
 */
#include <arch/cpu.h>
#include <minios/bug.h>
#include <minios/events.h>
#include <minios/hypervisor.h>
#include <minios/string.h>

struct evtchn_binding {
    evtchn_handler_t handler; /* NULL: port not bound */
    void *data;
    unsigned long count; /* times the handler ran */
};

/* Indexed by port. A port is bound iff its handler is not NULL; a port
 * that is not bound stays masked (init_events, unbind_evtchn). */
static struct evtchn_binding evtchn_table[NR_EVTCHN_PORTS];

static volatile unsigned long *pending_bits(void)
{
    BUG_ON(HYPERVISOR_shared_info == NULL);
    return HYPERVISOR_shared_info->evtchn_pending;
}

static volatile unsigned long *mask_bits(void)
{
    BUG_ON(HYPERVISOR_shared_info == NULL);
    return HYPERVISOR_shared_info->evtchn_mask;
}

static bool test_bit(unsigned long nr, volatile unsigned long *addr)
{
    return (addr[nr / EVTCHN_WORD_BITS] >> (nr % EVTCHN_WORD_BITS)) & 1;
}

static void check_port(evtchn_port_t port, const char *who)
{
    if (port >= NR_EVTCHN_PORTS)
        PANIC("%s: port %u out of range", who, port);
}

void init_events(void)
{
    unsigned int w;

    for (w = 0; w < NR_EVTCHN_WORDS; w++)
        mask_bits()[w] = ~0UL;
    memset(evtchn_table, 0, sizeof(evtchn_table));
    memset(&upcall_stats, 0, sizeof(upcall_stats));
}

void mask_evtchn(evtchn_port_t port)
{
    check_port(port, "mask_evtchn");
    sync_set_bit(port, mask_bits());
}

void clear_evtchn(evtchn_port_t port)
{
    check_port(port, "clear_evtchn");
    sync_clear_bit(port, pending_bits());
}

void unmask_evtchn(evtchn_port_t port)
{
    vcpu_info_t *v = vcpu0_info();

    check_port(port, "unmask_evtchn");
    sync_clear_bit(port, mask_bits());
    /* BEGIN SOLUTION */
    if (!test_bit(port, pending_bits()))
        return;
    /* Pending while masked: Xen set no selector bit. Do its part now. */
    if (!sync_test_and_set_bit(port / EVTCHN_WORD_BITS,
                               (unsigned long *)&v->evtchn_pending_sel)) {
        v->evtchn_upcall_pending = 1;
        if (!v->evtchn_upcall_mask)
            force_evtchn_callback();
    }
    /* END SOLUTION */
}

bool evtchn_is_bound(evtchn_port_t port)
{
    return port < NR_EVTCHN_PORTS && evtchn_table[port].handler != NULL;
}

unsigned int evtchn_list_bound(evtchn_port_t *out, unsigned int max)
{
    unsigned int port, n = 0;

    for (port = 0; port < NR_EVTCHN_PORTS && n < max; port++)
        if (evtchn_table[port].handler != NULL)
            out[n++] = port;
    return n;
}

unsigned long evtchn_count(evtchn_port_t port)
{
    check_port(port, "evtchn_count");
    return evtchn_table[port].count;
}

bool evtchn_deliver(evtchn_port_t port, struct pt_regs *regs)
{
    struct evtchn_binding *b;

    check_port(port, "evtchn_deliver");
    /* A handler earlier in this scan may have masked or cleared it. */
    if (test_bit(port, mask_bits()))
        return false;
    /* Clear first: a raise during the handler is a new event. */
    if (!sync_test_and_clear_bit(port, pending_bits()))
        return false;
    b = &evtchn_table[port];
    if (b->handler == NULL) {
        upcall_stats.unhandled++;
        return false;
    }
    b->count++;
    upcall_stats.events++;
    b->handler(port, regs, b->data);
    return true;
}

/* Upstream Mini-OS has a bind_evtchn() too, with another contract: it
 * returns the port (evtchn_port_t) and replaces a handler already there
 * with a warning. This one returns 0 or a negative error and refuses a
 * bound port (-XEN_EBUSY). */
int bind_evtchn(evtchn_port_t port, evtchn_handler_t handler, void *data)
{
    BUG_ON(handler == NULL);
    if (port >= NR_EVTCHN_PORTS)
        return -XEN_EINVAL;
    if (evtchn_table[port].handler != NULL)
        return -XEN_EBUSY;
    evtchn_table[port].data = data;
    evtchn_table[port].count = 0;
    /* The upcall must see the data before it can see the handler. */
    barrier();
    evtchn_table[port].handler = handler;
    barrier();
    unmask_evtchn(port);
    return 0;
}

int unbind_evtchn(evtchn_port_t port)
{
    if (!evtchn_is_bound(port))
        return -XEN_EINVAL;
    mask_evtchn(port);
    clear_evtchn(port);
    evtchn_table[port].handler = NULL;
    barrier();
    evtchn_table[port].data = NULL;
    return evtchn_close(port);
}

/* Named as upstream Mini-OS's bind_virq(), which returns an evtchn_port_t
 * (-1 on failure, Xen's error only printed); this one returns the port as
 * an int, or Xen's (or bind_evtchn()'s) negative error, and closes the
 * port again if binding the handler fails. */
int bind_virq(uint32_t virq, evtchn_handler_t handler, void *data)
{
    struct evtchn_bind_virq op = {.virq = virq, .vcpu = 0};
    int rc = (int)HYPERVISOR_event_channel_op(EVTCHNOP_bind_virq, &op);

    if (rc < 0)
        return rc;
    rc = bind_evtchn(op.port, handler, data);
    if (rc < 0) {
        evtchn_close(op.port);
        return rc;
    }
    return (int)op.port;
}

/* Named as upstream Mini-OS's evtchn_alloc_unbound(), which also takes a
 * handler and data and binds the new port at once; this one only asks Xen
 * for the port (bind it with bind_evtchn() when wanted). */
int evtchn_alloc_unbound(domid_t remote_dom, evtchn_port_t *port)
{
    struct evtchn_alloc_unbound op = {.dom = DOMID_SELF,
                                      .remote_dom = remote_dom};
    int rc = (int)HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &op);

    if (rc == 0)
        *port = op.port;
    return rc;
}

int evtchn_bind_interdomain(domid_t remote_dom, evtchn_port_t remote_port,
                            evtchn_port_t *local_port)
{
    struct evtchn_bind_interdomain op = {.remote_dom = remote_dom,
                                         .remote_port = remote_port};
    int rc = (int)HYPERVISOR_event_channel_op(EVTCHNOP_bind_interdomain, &op);

    if (rc == 0)
        *local_port = op.local_port;
    return rc;
}

int notify_remote_via_evtchn(evtchn_port_t port)
{
    struct evtchn_send op = {.port = port};

    return (int)HYPERVISOR_event_channel_op(EVTCHNOP_send, &op);
}

int evtchn_close(evtchn_port_t port)
{
    struct evtchn_close op = {.port = port};

    return (int)HYPERVISOR_event_channel_op(EVTCHNOP_close, &op);
}

/* --- the interrupt flag: evtchn_upcall_mask ------------------------------
 *
 * Only this vCPU writes its own upcall_mask, so plain stores suffice; the
 * compiler barriers keep the critical section's accesses between the two
 * stores. Xen's side needs no stronger fence: when it raises an event it
 * sets upcall_pending and kicks the vCPU, and re-checks the mask on the way
 * back in, so an enable that races with a raise still gets its upcall.
 */

void force_evtchn_callback(void)
{
    /* Any hypercall returns through Xen's "deliver pending events" path.
     * xen_version(XENVER_version) is the cheapest one with no effect. */
    (void)HYPERVISOR_xen_version(XENVER_version, NULL);
}

void local_irq_disable(void)
{
    vcpu0_info()->evtchn_upcall_mask = 1;
    barrier();
}

void local_irq_enable(void)
{
    vcpu_info_t *v = vcpu0_info();

    /* BEGIN SOLUTION */
    barrier();
    v->evtchn_upcall_mask = 0;
    barrier();
    /* Raised while we had them off: Xen waited for us; ask for it now. */
    if (v->evtchn_upcall_pending)
        force_evtchn_callback();
    /* END SOLUTION */
}

unsigned long local_irq_save(void)
{
    vcpu_info_t *v = vcpu0_info();
    unsigned long flags = v->evtchn_upcall_mask;

    v->evtchn_upcall_mask = 1;
    barrier();
    return flags;
}

void local_irq_restore(unsigned long flags)
{
    BUG_ON(flags > 1);
    if (flags == 0)
        local_irq_enable();
    else
        local_irq_disable();
}

bool irqs_disabled(void)
{
    return vcpu0_info()->evtchn_upcall_mask != 0;
}
