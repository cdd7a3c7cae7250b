/*
 * The Xen ABI, from Xen's own public headers (Debian's libxen-dev).
 *
 * The interface version must be set before the first include: it comes
 * from <minios/xen_interface.h>, the one place it is defined.
 */
#ifndef MINIOS_XEN_H
#define MINIOS_XEN_H

#include <minios/xen_interface.h>

#include <minios/types.h>

/* xen.h first: it defines the basic types the others use (each of them
 * also includes it itself, so the order is for the reader). */
/* clang-format off */
#include <xen/xen.h>
#include <xen/callback.h>
#include <xen/errno.h>
#include <xen/event_channel.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/version.h>
/* clang-format on */

#endif
