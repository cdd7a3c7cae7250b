/*
 * The console ring: a domU's console, the first PV device.
 *
 * A domU may not print with console_io (a release Xen refuses it). Its
 * console is a page it shares with xenconsoled in dom0, holding struct
 * xencons_interface (<xen/io/console.h>), plus an event channel; both come
 * in start_info.console.domU. As dom0 those fields mean something else
 * (console.dom0 overlays them), so console_ring_setup() looks at them only
 * when SIF_INITDOMAIN is clear; dom0 keeps console_io.
 *
 * Finding the page. start_info gives a machine frame (mfn). Xen's m2p
 * (machine_to_phys_mapping, read-only in every PV guest) turns it into our
 * pseudo-physical frame, which the p2m (start_info.mfn_list) must map
 * back to the same mfn: that proves the frame is ours. The kernel is
 * linked at 0 and the domain builder places the console page with
 * start_info, before the initial page tables, inside the area Xen maps at
 * virtual = pfn << PAGE_SHIFT, writable: no new mapping is needed.
 *
 * Writing. out[] is a byte ring of 2048 bytes; out_prod and out_cons are
 * free-running 32-bit counters, and MASK_XENCONS_IDX(i) = i mod 2048 is
 * the slot. Because 2048 divides 2^32, the slots stay right when the
 * counters wrap, and prod - cons in unsigned arithmetic is always the
 * number of bytes waiting (0 <= prod - cons <= 2048: the invariant).
 * Producer, for each chunk that fits:
 *
 *   1. read out_cons once (another domain writes it) and check it;
 *   2. mb(): the slots it frees are reused only after it was read;
 *   3. copy bytes to out[MASK(prod++)];
 *   4. wmb(): the bytes are visible before the index that publishes them;
 *   5. store out_prod, then notify: EVTCHNOP_send on the port.
 *
 * A full ring. The writer notifies, then yields the CPU (SCHEDOP_yield)
 * and looks again, until out_cons has moved. Yield, not block or poll:
 * it works with events disabled (the ring is written with events off, so
 * an event handler's printk cannot interleave its bytes with ours), it
 * needs no handler on the port, and it does not rely on xenconsoled
 * kicking us back after it consumed. The price is spinning through the
 * scheduler while dom0 is slow; text is never dropped, and a dead
 * xenconsoled hangs the writer (a boot harness sees a timeout).
 *
 * A lost notification costs time, not text: every chunk notifies, and the
 * wait loop notifies again before each yield, so the next write or the
 * next round of the wait wakes xenconsoled, which then takes all that
 * is waiting (it reads up to out_prod, not one chunk per kick).
 *
 * A broken invariant here cannot panic through the ring it found broken:
 * RING_BUG_ON() switches the console back to console_io first.
 */
#include <arch/cpu.h>
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/console_ring.h>
#include <minios/events.h>
#include <minios/hypervisor.h>

#define RING_SIZE sizeof(((struct xencons_interface *)0)->out)

#define RING_BUG_ON(cond)                                                     \
    do {                                                                      \
        if (cond) {                                                           \
            console_set_output(NULL);                                         \
            PANIC("BUG_ON(%s) in %s()", #cond, __func__);                     \
        }                                                                     \
    } while (0)

struct console_ring_stats console_ring_stats;

/* Attached: ring != NULL and page aligned; then printk() may use it. */
static struct xencons_interface *ring;
static evtchn_port_t ring_port;

/* Bytes free in out[]; out_cons read once, checked against out_prod. */
static size_t ring_free(void)
{
    XENCONS_RING_IDX cons = shared_read_u32(&ring->out_cons);
    XENCONS_RING_IDX used = ring->out_prod - cons;

    RING_BUG_ON(used > RING_SIZE);
    return RING_SIZE - used;
}

static void ring_notify(void)
{
    notify_remote_via_evtchn(ring_port);
    console_ring_stats.notifies++;
}

/* Copy what fits of text into out[] and publish it; the bytes copied. */
static size_t ring_put(const char *text, size_t len)
{
    size_t n = 0;

    /* BEGIN SOLUTION ring-put stub: return 0; */
    XENCONS_RING_IDX cons = shared_read_u32(&ring->out_cons);
    XENCONS_RING_IDX prod = ring->out_prod;

    RING_BUG_ON(prod - cons > RING_SIZE);
    mb();
    while (n < len && prod - cons < RING_SIZE)
        ring->out[MASK_XENCONS_IDX(prod++, ring->out)] = text[n++];
    wmb();
    ring->out_prod = prod;
    /* END SOLUTION */
    return n;
}

/* Until xenconsoled frees a byte: kick it, give it the CPU, look again. */
static void ring_wait_for_space(void)
{
    /* BEGIN SOLUTION ring-wait stub: return; */
    while (ring_free() == 0) {
        ring_notify();
        HYPERVISOR_sched_op(SCHEDOP_yield, NULL);
        console_ring_stats.yields++;
    }
    /* END SOLUTION */
}

void console_ring_write(const char *text, size_t len)
{
    BUG_ON(ring == NULL);
    console_ring_stats.writes++;
    while (len > 0) {
        size_t n;

        if (ring_free() == 0)
            ring_wait_for_space();
        RING_BUG_ON(ring_free() == 0);
        n = ring_put(text, len);
        RING_BUG_ON(n == 0 || n > len);
        console_ring_stats.bytes += n;
        ring_notify();
        text += n;
        len -= n;
    }
}

/* Events off while writing, once there is an event callback to hold off
 * (shared_info mapped); before that no handler can run. */
static unsigned long ring_lock(void)
{
    return HYPERVISOR_shared_info != NULL ? local_irq_save() : 1;
}

static void ring_unlock(unsigned long flags)
{
    if (HYPERVISOR_shared_info != NULL)
        local_irq_restore(flags);
}

/* The printk() back-end: each "\n" goes out as "\r\n". */
static void ring_console_output(const char *text, size_t len)
{
    unsigned long flags = ring_lock();

    while (len > 0) {
        size_t n = 0;

        while (n < len && text[n] != '\n')
            n++;
        if (n > 0)
            console_ring_write(text, n);
        if (n < len) {
            console_ring_write("\r\n", 2);
            n++;
        }
        text += n;
        len -= n;
    }
    ring_unlock(flags);
}

void console_ring_attach(struct xencons_interface *intf, evtchn_port_t port)
{
    BUG_ON(intf == NULL || ((unsigned long)intf & ~PAGE_MASK) != 0);
    ring = intf;
    ring_port = port;
    console_ring_stats = (struct console_ring_stats){0};
    console_set_output(ring_console_output);
}

void console_ring_detach(void)
{
    console_set_output(NULL);
    ring = NULL;
}

struct xencons_interface *console_ring_interface(void)
{
    return ring;
}

unsigned long console_ring_pfn(const unsigned long *m2p,
                               unsigned long m2p_entries,
                               const unsigned long *p2m,
                               unsigned long nr_pages, unsigned long mfn)
{
    unsigned long pfn;

    if (m2p == NULL || p2m == NULL || mfn >= m2p_entries)
        return CONSOLE_RING_NO_PFN;
    pfn = m2p[mfn];
    if (pfn >= nr_pages || p2m[pfn] != mfn)
        return CONSOLE_RING_NO_PFN;
    return pfn;
}

enum console_backend console_ring_setup(const start_info_t *si,
                                        const unsigned long *m2p,
                                        unsigned long m2p_entries,
                                        char *mem_base)
{
    const unsigned long *p2m = (const unsigned long *)si->mfn_list;
    unsigned long mfn = si->console.domU.mfn;
    unsigned long pfn;

    if (si->flags & SIF_INITDOMAIN)
        return CONSOLE_BACKEND_HYPERCALL;
    pfn = console_ring_pfn(m2p, m2p_entries, p2m, si->nr_pages, mfn);
    if (pfn == CONSOLE_RING_NO_PFN) {
        printk("console: domU, but console mfn %#lx is not ours: "
               "writing with console_io\n",
               mfn);
        return CONSOLE_BACKEND_HYPERCALL;
    }
    console_ring_attach((struct xencons_interface *)((unsigned long)mem_base +
                                                     (pfn << PAGE_SHIFT)),
                        si->console.domU.evtchn);
    printk("console: domU: ring at pfn %#lx (mfn %#lx), event channel %u\n",
           pfn, mfn, si->console.domU.evtchn);
    return CONSOLE_BACKEND_RING;
}

enum console_backend console_init(const start_info_t *si)
{
    BUG_ON(si == NULL);
    return console_ring_setup(si, machine_to_phys_mapping,
                              MACH2PHYS_NR_ENTRIES, NULL);
}
