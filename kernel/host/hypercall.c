/*
 * hypercall() for the host build: the call goes to Python.
 *
 * In the guest, hypercall() jumps into the page of stubs that Xen wrote;
 * here the same arguments go to host_hypercall(), which Python serves. The
 * only extra rule: HOST_UNWIND means "this domain no longer runs", and the
 * kernel must not continue, so we unwind to Python instead of returning.
 * And a Ctrl-C that came while Python was serving the call, and that
 * Python did not turn into an exception, stops the kernel here
 * (host_check_interrupt(), see minios_lab/build/cdefs/guard.c).
 *
 * __HYPERVISOR_iret is refused with -ENOSYS before Python sees it, as the
 * guest's hypercall() refuses it (kernel/arch/x86_64/hypercall.S): iret is
 * jumped to with an iret frame on the stack, never called.
 */
#include <host/host.h>
#include <minios/hypervisor.h>

#define HOST_ENOSYS 38

long hypercall(unsigned int nr, unsigned long a1, unsigned long a2,
               unsigned long a3, unsigned long a4, unsigned long a5)
{
    long rc;

    if (nr == __HYPERVISOR_iret)
        return -HOST_ENOSYS;
    rc = host_hypercall(nr, a1, a2, a3, a4, a5);

    if (rc == HOST_UNWIND)
        host_unwind();
    host_check_interrupt();
    return rc;
}
