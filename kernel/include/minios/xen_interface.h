/*
 * The Xen interface version the kernel is written against, in one place.
 *
 * Xen's public headers read __XEN_INTERFACE_VERSION__ to choose which
 * version of the ABI they declare; without it they fall back to the legacy
 * interface, where some hypercall numbers silently mean their old compat
 * versions. It must be defined before the first Xen header is included:
 * <minios/xen.h> includes this first, and so does entry.S, which includes
 * <xen/xen.h> on its own. Only a #define, so the assembler can include it.
 */
#ifndef MINIOS_XEN_INTERFACE_H
#define MINIOS_XEN_INTERFACE_H

#define __XEN_INTERFACE_VERSION__ 0x00040e00 /* Xen 4.14's interface */

#endif
