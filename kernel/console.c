/*
 * Console output for a PV dom0.
 *
 * A domU would write into a shared ring and kick an event channel; dom0 has
 * no ring. It hands each piece of text straight to Xen with the console_io
 * hypercall, and Xen prints it on its own serial console. printk() formats
 * into a stack buffer with the kernel's vsnprintf() and writes it out;
 * longer text is cut at the buffer size.
 */
#include <minios/console.h>
#include <minios/hypervisor.h>
#include <minios/printf.h>

#define CONSOLE_LINE_MAX 512

void console_write(const char *text, size_t len)
{
    HYPERVISOR_console_io(CONSOLEIO_write, (int)len, text);
}

int vprintk(const char *fmt, va_list ap)
{
    char buf[CONSOLE_LINE_MAX];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n;

    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    console_write(buf, len);
    return n;
}

int printk(const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vprintk(fmt, ap);
    va_end(ap);
    return n;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vprintk(fmt, ap);
    va_end(ap);
    return n;
}
