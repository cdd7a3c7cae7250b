/*
 * panic(): the kernel's last words.
 *
 * The message and its origin go into panic_info first, so that whoever looks
 * at the wreck (a debugger, or Python in the host build) finds them without
 * parsing the console. Then the message is printed and Xen is asked to crash
 * the domain. If Xen ever returns, we spin: a panic never returns.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/hypervisor.h>
#include <minios/printf.h>

struct panic_info panic_info;

void panic(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(panic_info.message, sizeof(panic_info.message), fmt, ap);
    va_end(ap);
    panic_info.file = file;
    panic_info.line = line;

    printk("PANIC at %s:%d: %s\n", file, line, panic_info.message);
    for (;;)
        hypervisor_shutdown(SHUTDOWN_crash);
}
