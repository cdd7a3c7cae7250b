/* cffi declarations shared by the units built on shared_info and event
 * channels (events, time): Xen's structures and constants, with layouts
 * marked "..." taken from Xen's headers, and what kernel/hypervisor.c and
 * kernel/events.c provide. */

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
#define NR_EVTCHN_PORTS ...
#define EVTCHN_WORD_BITS ...
#define NR_EVTCHN_WORDS ...

typedef uint32_t evtchn_port_t;
typedef uint16_t domid_t;
typedef unsigned long xen_ulong_t;

struct vcpu_time_info {
    uint32_t version;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags;
    ...;
};
typedef struct vcpu_time_info vcpu_time_info_t;

struct vcpu_info {
    uint8_t evtchn_upcall_pending;
    uint8_t evtchn_upcall_mask;
    xen_ulong_t evtchn_pending_sel;
    struct vcpu_time_info time;
    ...;
};
typedef struct vcpu_info vcpu_info_t;

struct shared_info {
    struct vcpu_info vcpu_info[...];
    xen_ulong_t evtchn_pending[...];
    xen_ulong_t evtchn_mask[...];
    uint32_t wc_version;
    uint32_t wc_sec;
    uint32_t wc_nsec;
    uint32_t wc_sec_hi;
    ...;
};
typedef struct shared_info shared_info_t;

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
