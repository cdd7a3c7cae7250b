/*
 * Formatted output into a buffer (kernel/lib/printf.c). printk() and
 * printf() in console.c are built on vsnprintf().
 *
 * Conversions: d i u x X o c s p %. Flags: - 0 + space #. Width and
 * precision, including *. Length modifiers: hh h l ll z.
 */
#ifndef MINIOS_PRINTF_H
#define MINIOS_PRINTF_H

#include <minios/types.h>

/* cffi: begin */

__attribute__((format(printf, 3, 0))) int
vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) int snprintf(char *buf, size_t size,
                                                   const char *fmt, ...);
/* cffi: end */

#endif
