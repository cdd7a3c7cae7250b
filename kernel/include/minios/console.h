/*
 * The console. printk() formats; a back-end carries the text out: the
 * console_io hypercall (dom0, and every domain until start of day picks)
 * or the console ring shared with xenconsoled (a domU,
 * <minios/console_ring.h>).
 */
#ifndef MINIOS_CONSOLE_H
#define MINIOS_CONSOLE_H

#include <minios/types.h>

/* cffi: begin */
typedef void (*console_output_t)(const char *text, size_t len);

/* Write len bytes of text through the current back-end. */
void console_write(const char *text, size_t len);
/* The console_io back-end: HYPERVISOR_console_io(CONSOLEIO_write, ...). */
void console_io_write(const char *text, size_t len);
/* Make out the back-end; NULL means console_io_write(). */
void console_set_output(console_output_t out);
/* True while the back-end is console_io_write(). */
bool console_uses_hypercall(void);
/* cffi: end */

__attribute__((format(printf, 1, 2))) int printk(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) int printf(const char *fmt, ...);
__attribute__((format(printf, 1, 0))) int vprintk(const char *fmt, va_list ap);

#endif
