/*
 * Console output: printk() and the back-end that carries its text out.
 *
 * A PV guest has two ways to print, and which one it may use depends on
 * who it is:
 *
 *   - dom0 hands each piece of text straight to Xen with the console_io
 *     hypercall, and Xen prints it on its own serial console. A release
 *     build of Xen refuses console_io from any other domain.
 *   - a domU writes into its console ring, a page it shares with the
 *     console daemon in dom0 (xenconsoled), and kicks an event channel
 *     (kernel/console_ring.c).
 *
 * The back-end is a function pointer, chosen at run time at start of day
 * (console_init(), kernel/console_ring.c) from start_info's flags, not by
 * #ifdef: the same image runs as dom0 and as a domU. Until a ring is
 * attached, and always as dom0, it is console_io_write().
 *
 * printk() formats into a stack buffer with the kernel's vsnprintf() and
 * writes it out; longer text is cut at the buffer size.
 */
#include <minios/console.h>
#include <minios/hypervisor.h>
#include <minios/printf.h>

#define CONSOLE_LINE_MAX 512

void console_io_write(const char *text, size_t len)
{
    HYPERVISOR_console_io(CONSOLEIO_write, (int)len, text);
}

/* Never NULL: console_set_output(NULL) means console_io_write(). */
static console_output_t console_output = console_io_write;

void console_set_output(console_output_t out)
{
    console_output = out != NULL ? out : console_io_write;
}

bool console_uses_hypercall(void)
{
    return console_output == console_io_write;
}

void console_write(const char *text, size_t len)
{
    console_output(text, len);
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

/* The C library's name for printk: the same function, not a copy. */
int printf(const char *fmt, ...) __attribute__((alias("printk")));
