/*
 * The host build's seam for memory that Xen writes while the guest reads.
 *
 * In the guest, Xen may update a time record on another CPU between any two
 * loads of the kernel. In the host nothing runs beside the kernel, so
 * shared_read_u32() (kernel/host/include/arch/cpu.h) calls this hook after
 * each load of a version counter, and Python, playing Xen, may write the
 * page at that moment: start an update (odd version), finish one, or leave
 * it half done. NULL means no Xen is watching: a plain load.
 */
#include <arch/cpu.h>

void (*host_shared_read_hook)(const volatile void *address);
