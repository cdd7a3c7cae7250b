/* cffi declarations for the events unit: shared_info and the upcall
 * (kernel/hypervisor.c), ports, masking and the interrupt flag
 * (kernel/events.c) and the chapter's self-test (kernel/events_demo.c).
 * Struct layouts marked "..." are taken from Xen's headers.
 *
 * host_evtchn_handler is not kernel code: it is an extern "Python"
 * function whose address Python passes to bind_evtchn(), so that the
 * kernel's handler call lands in Python (minios_lab/events.py). */

#define NR_EVTCHN_PORTS ...
#define EVTCHN_WORD_BITS ...
#define NR_EVTCHN_WORDS ...
#define XEN_LEGACY_MAX_VCPUS ...
#define DOMID_SELF ...
#define VIRQ_TIMER ...
#define VIRQ_DEBUG ...
#define XENVER_version ...
#define EVTCHNOP_bind_interdomain ...
#define EVTCHNOP_bind_virq ...
#define EVTCHNOP_close ...
#define EVTCHNOP_send ...
#define EVTCHNOP_alloc_unbound ...
#define EVTCHNOP_unmask ...

typedef uint32_t evtchn_port_t;
typedef uint16_t domid_t;

typedef struct vcpu_info {
    uint8_t evtchn_upcall_pending;
    uint8_t evtchn_upcall_mask;
    unsigned long evtchn_pending_sel;
    ...;
} vcpu_info_t;

typedef struct shared_info {
    vcpu_info_t vcpu_info[...];
    unsigned long evtchn_pending[...];
    unsigned long evtchn_mask[...];
    ...;
} shared_info_t;

struct evtchn_alloc_unbound {
    domid_t dom, remote_dom;
    evtchn_port_t port;
};
struct evtchn_bind_interdomain {
    domid_t remote_dom;
    evtchn_port_t remote_port;
    evtchn_port_t local_port;
};
struct evtchn_bind_virq {
    uint32_t virq;
    uint32_t vcpu;
    evtchn_port_t port;
};
struct evtchn_close {
    evtchn_port_t port;
};
struct evtchn_send {
    evtchn_port_t port;
};
struct evtchn_unmask {
    evtchn_port_t port;
};

struct pt_regs;
typedef void (*evtchn_handler_t)(evtchn_port_t port, struct pt_regs *regs,
                                 void *data);
extern "Python" void host_evtchn_handler(evtchn_port_t port,
                                         struct pt_regs *regs, void *data);

/* kernel/hypervisor.c */
extern shared_info_t *HYPERVISOR_shared_info;
void set_shared_info(shared_info_t *s);
vcpu_info_t *vcpu0_info(void);
void do_hypervisor_callback(struct pt_regs *regs);

struct upcall_stats {
    unsigned long upcalls;
    unsigned long words;
    unsigned long events;
    unsigned long spurious;
    unsigned long unhandled;
};
extern struct upcall_stats upcall_stats;

/* kernel/events.c */
void init_events(void);
int bind_evtchn(evtchn_port_t port, evtchn_handler_t handler, void *data);
int bind_virq(uint32_t virq, evtchn_handler_t handler, void *data);
int unbind_evtchn(evtchn_port_t port);
void mask_evtchn(evtchn_port_t port);
void unmask_evtchn(evtchn_port_t port);
void clear_evtchn(evtchn_port_t port);
bool evtchn_is_bound(evtchn_port_t port);
unsigned int evtchn_list_bound(evtchn_port_t *out, unsigned int max);
unsigned long evtchn_count(evtchn_port_t port);
int evtchn_alloc_unbound(domid_t remote_dom, evtchn_port_t *port);
int evtchn_bind_interdomain(domid_t remote_dom, evtchn_port_t remote_port,
                            evtchn_port_t *local_port);
int notify_remote_via_evtchn(evtchn_port_t port);
int evtchn_close(evtchn_port_t port);
void local_irq_disable(void);
void local_irq_enable(void);
unsigned long local_irq_save(void);
void local_irq_restore(unsigned long flags);
bool irqs_disabled(void);
void force_evtchn_callback(void);

/* kernel/events_demo.c */
int events_selftest(void);
