/*
 * BUG(), BUG_ON() and ASSERT(): a broken invariant stops the kernel.
 *
 * panic() records what went wrong in panic_info, prints it on the console
 * and asks Xen to crash the domain. In the guest that is the end. In the
 * host build the "Xen" that receives the crash is Python, which unwinds back
 * to the caller and raises KernelPanic with the same message and file:line.
 */
#ifndef MINIOS_BUG_H
#define MINIOS_BUG_H

#include <minios/types.h>

/* cffi: begin */

struct panic_info {
    const char *file;
    int line;
    char message[256];
};

extern struct panic_info panic_info;
/* cffi: end */

__attribute__((noreturn, format(printf, 3, 4))) void
panic(const char *file, int line, const char *fmt, ...);

#define PANIC(...) panic(__FILE__, __LINE__, __VA_ARGS__)
#define BUG() PANIC("BUG in %s()", __func__)
#define BUG_ON(cond)                                                          \
    do {                                                                      \
        if (cond)                                                             \
            PANIC("BUG_ON(%s) in %s()", #cond, __func__);                     \
    } while (0)
#define ASSERT(cond)                                                          \
    do {                                                                      \
        if (!(cond))                                                          \
            PANIC("ASSERT(%s) failed in %s()", #cond, __func__);              \
    } while (0)

#endif
