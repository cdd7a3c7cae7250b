/*
 * The console ring: how a domU prints (kernel/console_ring.c).
 *
 * The ring is struct xencons_interface from Xen's <xen/io/console.h>: two
 * byte rings in one page shared with xenconsoled in dom0, out[] (guest to
 * console) and in[] (keyboard to guest, unused here), each with a
 * free-running 32-bit producer and consumer index. The guest produces
 * out[] and owns out_prod; xenconsoled consumes it and owns out_cons.
 * start_info.console.domU names the page (a machine frame) and the event
 * channel that both sides kick when they moved an index.
 */
#ifndef MINIOS_CONSOLE_RING_H
#define MINIOS_CONSOLE_RING_H

#include <minios/xen.h>

/* clang-format off */
#include <xen/io/console.h>
/* clang-format on */

/* console_ring_pfn(): the machine frame is not one of this domain's. */
#define CONSOLE_RING_NO_PFN (~0UL)

/* cffi: begin */
/* What console_ring_setup() chose. */
enum console_backend {
    CONSOLE_BACKEND_HYPERCALL = 0, /* console_io: dom0, or no usable ring */
    CONSOLE_BACKEND_RING = 1,      /* the ring of start_info.console.domU */
};

struct console_ring_stats {
    unsigned long writes;   /* console_ring_write() calls */
    unsigned long bytes;    /* bytes put into out[] */
    unsigned long notifies; /* EVTCHNOP_send on the ring's port */
    unsigned long yields;   /* SCHEDOP_yield while out[] was full */
};

extern struct console_ring_stats console_ring_stats;

/* The pseudo-physical frame of machine frame mfn, found with the m2p and
 * checked against the p2m (nr_pages entries): CONSOLE_RING_NO_PFN unless
 * the frame is this domain's own. */
unsigned long console_ring_pfn(const unsigned long *m2p,
                               unsigned long m2p_entries,
                               const unsigned long *p2m,
                               unsigned long nr_pages, unsigned long mfn);
/* Start of day: keep console_io for dom0 (SIF_INITDOMAIN), else attach
 * the ring of si->console.domU, which lies at mem_base + (pfn <<
 * PAGE_SHIFT) (mem_base is 0 in the guest; the guest memory buffer in
 * the host build). Prints what it chose, except as dom0. */
enum console_backend console_ring_setup(const start_info_t *si,
                                        const unsigned long *m2p,
                                        unsigned long m2p_entries,
                                        char *mem_base);
/* Use the ring at intf (a page) with event channel port for printk(),
 * which then ends each line with "\r\n", as a terminal expects. */
void console_ring_attach(struct xencons_interface *intf, evtchn_port_t port);
/* Back to console_io; the ring is left as it is. */
void console_ring_detach(void);
/* The attached ring, or NULL. */
struct xencons_interface *console_ring_interface(void);
/* Put len bytes, as they are, into out[], notifying the port; wait (yield)
 * while out[] is full. Needs a ring attached. */
void console_ring_write(const char *text, size_t len);
/* cffi: end */

/* The guest's start of day: console_ring_setup() with Xen's m2p (mapped
 * in every PV guest, not in the host build). Call it first thing, before
 * any printk(): a domU's console_io goes nowhere. */
enum console_backend console_init(const start_info_t *si);

#endif
