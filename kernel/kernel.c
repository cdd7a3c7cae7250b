/*
 * start_kernel(): the C side of the guest's life, from entry to shutdown.
 *
 * head.S enters here on the boot stack with Xen's start_info. We print a
 * banner, run the start of day (check start_info, parse the command line,
 * report), then print one result line in a fixed form that the boot
 * harness (minios_lab/guest/boot.py) looks for:
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
 * Right after the start of day, setup_safety_net() (kernel/setup.c)
 * installs the trap table and callbacks, unmaps page 0 and makes the
 * kernel's code read-only: a fault in any chapter is the guest's own
 * page-fault report, not Xen's.
 *
 * only=NAME runs one chapter alone after the start of day (NAME is a name
 * of the table below: libc, pagetables, mm, traps, events, time): it prints
 * "only=NAME: ..." once, then that chapter's section and verdict line as
 * usual; the other chapters print nothing at all, so a parser sees exactly
 * one "chapter NAME: PASS|FAIL" line, and the result line is that
 * chapter's. The grader boots so when a learner's tree has no reference
 * code to splice in, so that one chapter's stub cannot fail another's
 * check. only= is read from the raw command line here, not through the
 * chapter 01 parser, which is still a stub in a fresh hand-out. Run
 * alone, mm gets only the pages of Xen's bootstrap mapping (no
 * pagetables chapter maps the rest; see run_only()). An unknown NAME
 * prints "only=NAME: no such chapter ..." and the result is FAILURE.
 *
 * Command-line switches for testing the harness and the safety net:
 *   crash=1     write to an address that is never mapped (PT_UNMAPPED_VA)
 *   crash=null  read through a NULL pointer (page 0 is unmapped)
 *   crash=text  write into the kernel's own code (mapped read-only)
 *   hang=1      spin forever (the harness must time out)
 *   poweroff=1  end with a poweroff request instead of a reboot (Xen
 *               halts; QEMU has to be stopped by the harness)
 *   probe=iret  call hypercall(__HYPERVISOR_iret) and print what it
 *               returns: hypercall() refuses it (iret is jumped to, never
 *               called)
 *   forever=1   after the result line, keep the timer running and print
 *               the system time every 1000 ticks until QEMU is stopped, or
 *               for ticks=N more ticks (time_run_on(), kernel/time_demo.c);
 *               not with chapters=0, which stops after the start of day
 * Each crash prints the guest's page-fault line and a PANIC. Later
 * chapters add their steps between the start of day and the result line.
 */
#include <arch/cpu.h>
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/console_ring.h>
#include <minios/events.h>
#include <minios/hypervisor.h>
#include <minios/memory_chapters.h>
#include <minios/pagetable.h>
#include <minios/printf.h>
#include <minios/setup.h>
#include <minios/start_of_day.h>
#include <minios/string.h>
#include <minios/time.h>
#include <minios/traps.h>

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

/* mm needs page tables set up. Alone, without the pagetables chapter (and
 * its exercise code), it takes Xen's tables as they are: memory is mapped
 * only as far as Xen's bootstrap mapping goes, so that is all the
 * allocator is given. */
static void tables_as_xen_left_them(void)
{
    struct pt_setup setup;
    struct pt_bootstrap boot;

    pt_bootstrap_layout(boot_info.pt_base, boot_info.nr_pt_frames, &boot);
    memset(&setup, 0, sizeof(setup));
    setup.pt_base = boot_info.pt_base;
    setup.nr_pt_frames = boot_info.nr_pt_frames;
    setup.nr_pages = boot.mapped_end_pfn;
    setup.p2m = (const unsigned long *)boot_info.mfn_list;
    setup.m2p = machine_to_phys_mapping;
    setup.m2p_entries = MACH2PHYS_NR_ENTRIES;
    pt_init(&setup);
    printk("only=mm: no pagetables chapter: the allocator gets Xen's "
           "bootstrap mapping, pfns %#lx-%#lx\n",
           boot.first_free_pfn, boot.mapped_end_pfn);
}

/* The value of the word only=NAME of the raw command line, copied to buf;
 * NULL if there is none. Plain loops: the course's own string functions
 * may be a learner's stubs. */
static const char *raw_only(const start_info_t *si, char *buf,
                            unsigned long size)
{
    const char *p = (const char *)si->cmd_line;
    const char *end = p + sizeof(si->cmd_line);
    unsigned long n = 0;

    BUG_ON(size == 0);
    while (p + 5 < end && *p) {
        if ((p == (const char *)si->cmd_line || p[-1] == ' ') && p[0] == 'o' &&
            p[1] == 'n' && p[2] == 'l' && p[3] == 'y' && p[4] == '=')
            break;
        p++;
    }
    if (p + 5 >= end || !*p)
        return NULL;
    for (p += 5; p < end && *p && *p != ' ' && n + 1 < size; p++)
        buf[n++] = *p;
    buf[n] = '\0';
    return buf;
}

/* only=NAME: run that chapter alone; nonzero if it failed or is unknown. */
static int run_only(const char *name)
{
    unsigned int i;
    int rc;

    for (i = 0; i < ARRAY_SIZE(chapters); i++)
        if (strcmp(chapters[i].name, name) == 0)
            break;
    if (i == ARRAY_SIZE(chapters)) {
        printk("only=%s: no such chapter (libc, pagetables, mm, traps, "
               "events or time)\n",
               name);
        return -1;
    }
    printk("only=%s: running this chapter alone\n", name);
    if (chapters[i].run == mm_chapter)
        tables_as_xen_left_them();
    printk("== chapter %s ==\n", chapters[i].name);
    rc = chapters[i].run();
    printk("chapter %s: %s\n", chapters[i].name, rc == 0 ? "PASS" : "FAIL");
    return rc != 0;
}

/* Pointers the compiler cannot see through (it must emit the access), and
 * where the NULL read goes (so that it is a statement of its own). */
static const volatile unsigned long *volatile null_pointer;
static volatile unsigned char *volatile text_pointer;
static volatile unsigned long crash_sink;

static void crash_if_asked(void)
{
    const char *how = boot_arg(&boot_info, "crash");

    if (how == NULL || strcmp(how, "0") == 0)
        return;
    if (strcmp(how, "null") == 0) {
        printk("crash=null: reading through a NULL pointer\n");
        crash_sink = *null_pointer;
        printk("crash=null: the read came back: page 0 is mapped!\n");
    } else if (strcmp(how, "text") == 0) {
        text_pointer = (volatile unsigned char *)(unsigned long)start_kernel;
        printk("crash=text: writing into the code of start_kernel\n");
        *text_pointer = 0xcc;
        printk("crash=text: the kernel's code is writable!\n");
    } else if (boot_arg_ulong(&boot_info, "crash", 0) != 0) {
        printk("crash=%s: writing to unmapped address %#lx\n", how,
               PT_UNMAPPED_VA);
        *(volatile unsigned long *)PT_UNMAPPED_VA = 1;
    } else {
        printk("crash=%s: unknown, ignored (crash=1, crash=null or "
               "crash=text)\n",
               how);
    }
}

static void probe_if_asked(void)
{
    const char *what = boot_arg(&boot_info, "probe");

    if (what == NULL || strcmp(what, "iret") != 0)
        return;
    printk("probe=iret: hypercall(__HYPERVISOR_iret) returned %ld\n",
           hypercall(__HYPERVISOR_iret, 0, 0, 0, 0, 0));
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
    char only_buf[16];
    const char *only;
    bool failed = false;

    console_init(si); /* dom0 keeps console_io; a domU writes its ring */
    printk("minios-lab guest: Mini-OS course kernel\n");
    start_of_day(si);
    setup_safety_net();

    crash_if_asked();
    hang_if_asked();
    probe_if_asked();

    only = raw_only(si, only_buf, sizeof(only_buf));
    if (!boot_arg_ulong(&boot_info, "chapters", 1))
        printk("chapters=0: skipping the chapters\n");
    else if (only != NULL)
        failed = run_only(only) != 0;
    else if (run_chapters() != 0)
        failed = true;
    printk("minios-lab: RESULT: %s\n", failed ? "FAILURE" : "SUCCESS");
    if (boot_arg_ulong(&boot_info, "chapters", 1))
        time_run_on();
    if (boot_arg_ulong(&boot_info, "poweroff", 0))
        hypervisor_shutdown(SHUTDOWN_poweroff);
    hypervisor_shutdown(SHUTDOWN_reboot);
}
