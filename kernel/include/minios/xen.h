/*
 * The Xen ABI, from Xen's own public headers (Debian's libxen-dev).
 *
 * The interface version must be set before the first include: without it
 * the headers fall back to the legacy interface, where some hypercall
 * numbers silently mean their old compat versions.
 */
#ifndef MINIOS_XEN_H
#define MINIOS_XEN_H

#define __XEN_INTERFACE_VERSION__ 0x00040e00

#include <minios/types.h>

/* xen.h must come first: it defines the basic types the others use. */
/* clang-format off */
#include <xen/callback.h>
#include <xen/errno.h>
#include <xen/event_channel.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>
#include <xen/xen.h>
/* clang-format on */

#endif
