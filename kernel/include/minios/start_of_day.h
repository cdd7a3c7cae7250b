/*
 * Start of day: what Xen hands a PV guest, checked and summarised.
 *
 * Xen enters the kernel with %rsi pointing at a start_info page
 * (<xen/xen.h>). parse_start_info() validates it and copies out what later
 * chapters need, including the command line split into key=value words.
 */
#ifndef MINIOS_START_OF_DAY_H
#define MINIOS_START_OF_DAY_H

#include <minios/xen.h>

#define BOOT_ARGS_MAX 32
#define BOOT_ARG_KEY_MAX 32
#define BOOT_ARG_VALUE_MAX 96
#define BOOT_ERROR_MAX 128

/* cffi: begin */

struct boot_arg {
    char key[BOOT_ARG_KEY_MAX];
    char value[BOOT_ARG_VALUE_MAX];
};

struct boot_info {
    const start_info_t *si;
    unsigned long nr_pages;
    unsigned long shared_info_ma;
    unsigned long flags;
    unsigned long pt_base;
    unsigned long nr_pt_frames;
    unsigned long mfn_list;
    unsigned long mod_start;
    unsigned long mod_len;
    unsigned long first_p2m_pfn;
    unsigned long nr_p2m_frames;
    int nr_args;
    struct boot_arg args[BOOT_ARGS_MAX];
    char error[BOOT_ERROR_MAX];
};

extern struct boot_info boot_info;

/* Validate *si and fill *bi. Returns 0, or -1 with bi->error set. */
int parse_start_info(const start_info_t *si, struct boot_info *bi);
/* Print the start-of-day report and the parsed command line. */
void print_start_of_day(const struct boot_info *bi);
/* The value of key=value on the command line, or NULL. */
const char *boot_arg(const struct boot_info *bi, const char *key);
unsigned long boot_arg_ulong(const struct boot_info *bi, const char *key,
                             unsigned long fallback);
/* Parse into the global boot_info (panic on bad input) and report. */
void start_of_day(const start_info_t *si);
/* cffi: end */

#endif
