/* cffi declarations for the events unit, beyond those in xen_shared.h
 * (shared_info, the upcall, ports, masking, the interrupt flag): the
 * chapter's self-test (kernel/events_demo.c).
 *
 * host_evtchn_handler is not kernel code: it is an extern "Python"
 * function whose address Python passes to bind_evtchn(), so that the
 * kernel's handler call lands in Python (minios_lab/events.py). */

extern "Python" void host_evtchn_handler(evtchn_port_t port,
                                         struct pt_regs *regs, void *data);

/* kernel/events_demo.c */
int events_selftest(void);
