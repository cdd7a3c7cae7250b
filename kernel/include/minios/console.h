/*
 * The console. As dom0 the guest writes with
 * HYPERVISOR_console_io(CONSOLEIO_write, ...); there is no console ring.
 */
#ifndef MINIOS_CONSOLE_H
#define MINIOS_CONSOLE_H

#include <minios/types.h>

void console_write(const char *text, size_t len);
__attribute__((format(printf, 1, 2))) int printk(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) int printf(const char *fmt, ...);
__attribute__((format(printf, 1, 0))) int vprintk(const char *fmt, va_list ap);

#endif
