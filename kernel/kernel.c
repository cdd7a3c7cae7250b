/*
 * start_kernel(): the C side of the guest's life, from entry to shutdown.
 *
 * head.S enters here on the boot stack with Xen's start_info. We print a
 * banner, run the start of day (check start_info, parse the command line,
 * report), then print one result line in a fixed form that the boot
 * harness (minios_lab/boot.py) looks for:
 *
 *     minios-lab: RESULT: SUCCESS
 *
 * and ask Xen to reboot. As dom0, a reboot request makes Xen reset the
 * machine, and QEMU started with -no-reboot then exits by itself.
 *
 * Between the two, the chapters run in the order the course teaches them,
 * each from the table below. Every chapter prints its own section and
 * returns 0 on success; start_kernel() prints one parseable line per
 * chapter ("chapter NAME: PASS" or "FAIL") and the result line says
 * SUCCESS only if every chapter passed.
 *
 * Three command-line switches exist for testing the harness: crash=1
 * writes through a pointer to unmapped memory (no trap table is installed
 * yet, so Xen crashes the domain and prints the registers), hang=1 spins
 * forever (the harness must time out), poweroff=1 ends with a poweroff
 * request instead of a reboot (Xen halts; QEMU has to be stopped by the
 * harness). Later chapters add their steps between the start of day and
 * the result line.
 */
#include <arch/cpu.h>
#include <minios/console.h>
#include <minios/events.h>
#include <minios/hypervisor.h>
#include <minios/memory_chapters.h>
#include <minios/printf.h>
#include <minios/start_of_day.h>
#include <minios/string.h>
#include <minios/time.h>
#include <minios/traps.h>

/* Far above any memory a course guest gets, and never mapped. */
#define UNMAPPED_ADDRESS 0xdead0000UL

void start_kernel(start_info_t *si);

struct chapter {
    const char *name;
    int (*run)(void);
};

/* The libc has no state to set up; this checks it formats as C says. */
static int chapter_libc(void)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%-6s|%+05d|%#x|%.3s", "ab", 42, 255,
                     "abcdef");

    printk("libc: snprintf gave \"%s\" (%d chars)\n", buf, n);
    return strcmp(buf, "ab    |+0042|0xff|abc") == 0 && n == 21 ? 0 : -1;
}

/* One line per chapter, in the order the course teaches them. */
/* clang-format off */
static const struct chapter chapters[] = {
    {"libc", chapter_libc},
    {"pagetables", pagetables_chapter},
    {"mm", mm_chapter},
    {"traps", traps_chapter},
    {"events", chapter_events},
    {"time", chapter_time},
};
/* clang-format on */

static int run_chapters(void)
{
    unsigned int i;
    int failed = 0;

    for (i = 0; i < ARRAY_SIZE(chapters); i++) {
        int rc;

        printk("== chapter %s ==\n", chapters[i].name);
        rc = chapters[i].run();
        printk("chapter %s: %s\n", chapters[i].name,
               rc == 0 ? "PASS" : "FAIL");
        failed += rc != 0;
    }
    return failed;
}

static void crash_if_asked(void)
{
    if (!boot_arg_ulong(&boot_info, "crash", 0))
        return;
    printk("crash=1: writing to unmapped address %#lx\n", UNMAPPED_ADDRESS);
    *(volatile unsigned long *)UNMAPPED_ADDRESS = 1;
}

static void hang_if_asked(void)
{
    if (!boot_arg_ulong(&boot_info, "hang", 0))
        return;
    printk("hang=1: spinning forever\n");
    for (;;)
        cpu_relax();
}

void start_kernel(start_info_t *si)
{
    bool failed = false;

    printk("minios-lab guest: Mini-OS course kernel\n");
    start_of_day(si);

    crash_if_asked();
    hang_if_asked();

    if (!boot_arg_ulong(&boot_info, "chapters", 1))
        printk("chapters=0: skipping the chapters\n");
    else if (run_chapters() != 0)
        failed = true;
    printk("minios-lab: RESULT: %s\n", failed ? "FAILURE" : "SUCCESS");
    if (boot_arg_ulong(&boot_info, "poweroff", 0))
        hypervisor_shutdown(SHUTDOWN_poweroff);
    hypervisor_shutdown(SHUTDOWN_reboot);
}
