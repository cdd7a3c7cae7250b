/* cffi declarations for the console_ring unit (kernel/console_ring.c,
 * kernel/console.c): the domU's console ring, with Python as xenconsoled
 * (minios_lab/console_ring.py). Layouts marked "..." are taken from Xen's
 * <xen/io/console.h> and <xen/xen.h>. */

#define SIF_INITDOMAIN ...
#define SIF_PRIVILEGED ...
#define EVTCHNOP_send ...
#define CONSOLE_RING_NO_PFN ...

typedef uint32_t evtchn_port_t;
typedef uint32_t XENCONS_RING_IDX;

struct xencons_interface {
    char in[...];
    char out[...];
    XENCONS_RING_IDX in_cons, in_prod;
    XENCONS_RING_IDX out_cons, out_prod;
    ...;
};

struct evtchn_send {
    evtchn_port_t port;
};

typedef struct start_info {
    char magic[32];
    unsigned long nr_pages;
    unsigned long shared_info;
    uint32_t flags;
    unsigned long mfn_list;
    /* exact layout: cffi cannot take a nameless struct from the header */
    union {
        struct {
            unsigned long mfn;
            uint32_t evtchn;
        } domU;
        struct {
            uint32_t info_off;
            uint32_t info_size;
        } dom0;
    } console;
    ...;
} start_info_t;

enum console_backend {
    CONSOLE_BACKEND_HYPERCALL,
    CONSOLE_BACKEND_RING,
    ...
};

struct console_ring_stats {
    unsigned long writes;
    unsigned long bytes;
    unsigned long notifies;
    unsigned long yields;
};
extern struct console_ring_stats console_ring_stats;

/* kernel/console_ring.c */
unsigned long console_ring_pfn(const unsigned long *m2p,
                               unsigned long m2p_entries,
                               const unsigned long *p2m,
                               unsigned long nr_pages, unsigned long mfn);
enum console_backend console_ring_setup(const start_info_t *si,
                                        const unsigned long *m2p,
                                        unsigned long m2p_entries,
                                        char *mem_base);
void console_ring_attach(struct xencons_interface *intf, evtchn_port_t port);
void console_ring_detach(void);
struct xencons_interface *console_ring_interface(void);
void console_ring_write(const char *text, size_t len);

/* kernel/console.c */
void console_write(const char *text, size_t len);
bool console_uses_hypercall(void);
