/*
 * Event channels: how a PV guest gets interrupts from Xen.
 *
 * A PV guest may not touch the IDT or the interrupt flag. Instead Xen keeps
 * two bitmaps in the shared_info page, one bit per event channel port:
 * evtchn_pending (set by Xen when the port fires) and evtchn_mask (set by
 * the guest to hold a port back). A third word per vCPU, evtchn_pending_sel,
 * says which words of evtchn_pending may hold news, and the byte
 * evtchn_upcall_pending says that the selector does. The byte
 * evtchn_upcall_mask is the guest's "interrupt flag": while it is set, Xen
 * does not call the guest's event callback.
 *
 * kernel/hypervisor.c maps shared_info and holds the upcall,
 * do_hypervisor_callback(), which the assembly stub hypervisor_callback
 * (kernel/arch/x86_64/entry.S) calls with the saved registers.
 * kernel/events.c holds the per-port handler table, binding, masking and
 * the local_irq_*() family.
 */
#ifndef MINIOS_EVENTS_H
#define MINIOS_EVENTS_H

#include <minios/xen.h>

struct pt_regs;

/* Every port the 2-level ABI can name: 64 words of 64 bits. */
#define NR_EVTCHN_PORTS EVTCHN_2L_NR_CHANNELS
#define EVTCHN_WORD_BITS (sizeof(xen_ulong_t) * 8)
#define NR_EVTCHN_WORDS (NR_EVTCHN_PORTS / EVTCHN_WORD_BITS)

/* cffi: begin */

typedef void (*evtchn_handler_t)(evtchn_port_t port, struct pt_regs *regs,
                                 void *data);

/* --- shared_info (kernel/hypervisor.c) ---------------------------------- */

/* The shared_info page, or NULL before it is set; used by events and time. */
extern shared_info_t *HYPERVISOR_shared_info;

/* Counts the calls of set_shared_info(): a new count is a new page, so a
 * new clock (monotonic_clock() starts its clamp over). */
extern unsigned long shared_info_generation;

/* Use s as shared_info (the guest's mapping, or a page Python provides). */
void set_shared_info(shared_info_t *s);
/* Guest: map the machine page shared_info_ma (from start_info) onto a page
 * of .bss and set it. Returns 0 or Xen's negative error. Idempotent. */
long map_shared_info(unsigned long shared_info_ma);
/* vCPU 0's vcpu_info in shared_info: this kernel runs on one vCPU. */
vcpu_info_t *vcpu0_info(void);

/* The event upcall: entered from entry.S with events masked by Xen. */
void do_hypervisor_callback(struct pt_regs *regs);

struct upcall_stats {
    unsigned long upcalls;   /* do_hypervisor_callback() entries */
    unsigned long words;     /* selector bits taken */
    unsigned long events;    /* handlers called */
    unsigned long spurious;  /* upcalls that found nothing to deliver */
    unsigned long unhandled; /* pending, unmasked ports with no handler */
};

extern struct upcall_stats upcall_stats;

/* --- ports (kernel/events.c) --------------------------------------------- */

/* Forget every binding and mask every port; the start state of the chapter */
void init_events(void);
/* Call handler(port, regs, data) when port fires; unmasks the port. A
 * port already pending is delivered then (nothing is lost). Returns 0 or
 * -XEN_EBUSY if the port has a handler, -XEN_EINVAL if out of range. */
int bind_evtchn(evtchn_port_t port, evtchn_handler_t handler, void *data);
/* Ask Xen for a port carrying virq on vCPU 0 and bind it; returns the port
 * or Xen's negative error. */
int bind_virq(uint32_t virq, evtchn_handler_t handler, void *data);
/* Mask, clear, drop the handler and close the port with Xen. */
int unbind_evtchn(evtchn_port_t port);
/* Port-level masking. unmask_evtchn() re-raises the upcall if the port was
 * pending while masked: no event raised while masked is lost. */
void mask_evtchn(evtchn_port_t port);
void unmask_evtchn(evtchn_port_t port);
void clear_evtchn(evtchn_port_t port);
bool evtchn_is_bound(evtchn_port_t port);
/* Write up to max bound ports, lowest first, to out; return how many. */
unsigned int evtchn_list_bound(evtchn_port_t *out, unsigned int max);
unsigned long evtchn_count(evtchn_port_t port);
/* Called by the upcall for each candidate port: if it is still pending
 * and unmasked, clear it and run its handler. True if a handler ran. */
bool evtchn_deliver(evtchn_port_t port, struct pt_regs *regs);

/* Hypercalls on ports: return 0 (or a port) or Xen's negative error. */
int evtchn_alloc_unbound(domid_t remote_dom, evtchn_port_t *port);
int evtchn_bind_interdomain(domid_t remote_dom, evtchn_port_t remote_port,
                            evtchn_port_t *local_port);
int notify_remote_via_evtchn(evtchn_port_t port);
int evtchn_close(evtchn_port_t port);

/* --- the guest's interrupt flag (kernel/events.c) ------------------------ */

void local_irq_disable(void);
void local_irq_enable(void);
unsigned long local_irq_save(void);
void local_irq_restore(unsigned long flags);
bool irqs_disabled(void);
/* Make Xen look at evtchn_upcall_pending now: any hypercall will do. */
void force_evtchn_callback(void);

/* --- the chapter (kernel/events_demo.c) ---------------------------------- */

/* The demonstration on a loopback channel; needs shared_info set and the
 * event callback registered. Prints its section; returns 0 if all pass. */
int events_selftest(void);
/* The guest's chapter: map shared_info, then events_selftest(). */
int chapter_events(void);
/* cffi: end */

#endif
