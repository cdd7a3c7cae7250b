/* Python's side of the events unit (beyond xen_shared.h).
 *
 * host_evtchn_handler is not kernel code: it is an extern "Python"
 * function whose address Python passes to bind_evtchn(), so that the
 * kernel's handler call lands in Python (minios_lab/events.py). */

extern "Python" void host_evtchn_handler(evtchn_port_t port,
                                         struct pt_regs *regs, void *data);
