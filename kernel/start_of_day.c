/*
 * Start of day: reading what Xen hands a PV guest.
 *
 * A PV guest has no firmware and no boot loader. Xen builds the domain
 * itself: it loads the ELF image, builds initial page tables that map the
 * kernel, a stack and some room after it, and writes a start_info page whose
 * virtual address it leaves in %rsi. Everything the kernel knows about its
 * world comes from that page: how much memory it has (nr_pages), where its
 * page tables are (pt_base, nr_pt_frames), the pseudo-physical to machine
 * frame table (mfn_list), the machine address of shared_info, the initial
 * module and the command line.
 *
 * parse_start_info() trusts nothing: it checks the magic, bounds the
 * numbers and refuses a command line with no terminating NUL. It then
 * splits the command line into key=value words for later chapters.
 */
#include <minios/bug.h>
#include <minios/console.h>
#include <minios/start_of_day.h>
#include <minios/string.h>

#define START_INFO_MAGIC "xen-3.0-x86_64"
/* 2^28 pages is 1 TiB: far more than any guest of this kit gets. */
#define NR_PAGES_MAX (1UL << 28)

struct boot_info boot_info;

static int fail(struct boot_info *bi, const char *why)
{
    size_t len = strnlen(why, BOOT_ERROR_MAX - 1);

    memcpy(bi->error, why, len);
    bi->error[len] = '\0';
    return -1;
}

static bool copy_word(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size)
        return false;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

/* Store one command-line word: "key=value", or "key" meaning "key=1". */
static int add_arg(struct boot_info *bi, const char *word, size_t len)
{
    struct boot_arg *arg;
    const char *eq = word;

    if (bi->nr_args == BOOT_ARGS_MAX)
        return fail(bi, "cmd_line has too many words");
    while (eq < word + len && *eq != '=')
        eq++;
    arg = &bi->args[bi->nr_args];
    if (eq == word ||
        !copy_word(arg->key, sizeof(arg->key), word, (size_t)(eq - word)))
        return fail(bi, "cmd_line has an empty or too long key");
    if (eq == word + len)
        strcpy(arg->value, "1");
    else if (!copy_word(arg->value, sizeof(arg->value), eq + 1,
                        (size_t)(word + len - eq - 1)))
        return fail(bi, "cmd_line has a too long value");
    bi->nr_args++;
    return 0;
}

static int parse_cmdline(struct boot_info *bi, const char *line)
{
    /* BEGIN SOLUTION cmdline-words stub: printk("TODO: %s() not written: command line ignored\n", __func__); return 0; */
    while (*line) {
        const char *end;

        while (*line == ' ')
            line++;
        end = line;
        while (*end && *end != ' ')
            end++;
        if (end > line && add_arg(bi, line, (size_t)(end - line)) < 0)
            return -1;
        line = end;
    }
    return 0;
    /* END SOLUTION */
}

int parse_start_info(const start_info_t *si, struct boot_info *bi)
{
    memset(bi, 0, sizeof(*bi));
    if (si == NULL)
        return fail(bi, "start_info pointer is NULL");
    /* BEGIN SOLUTION start-info-checks stub: printk("TODO: %s() not written: start_info unchecked\n", __func__); */
    if (strncmp(si->magic, START_INFO_MAGIC, sizeof(si->magic)) != 0)
        return fail(bi, "bad magic: not a start_info page for x86_64 PV");
    if (si->nr_pages == 0 || si->nr_pages > NR_PAGES_MAX)
        return fail(bi, "absurd nr_pages");
    /* END SOLUTION */
    if (si->nr_pt_frames == 0 || si->pt_base == 0)
        return fail(bi, "no initial page tables (pt_base, nr_pt_frames)");
    if (strnlen((const char *)si->cmd_line, MAX_GUEST_CMDLINE) ==
        MAX_GUEST_CMDLINE)
        return fail(bi, "cmd_line is not NUL-terminated");

    bi->si = si;
    bi->nr_pages = si->nr_pages;
    bi->shared_info_ma = si->shared_info;
    bi->flags = si->flags;
    bi->pt_base = si->pt_base;
    bi->nr_pt_frames = si->nr_pt_frames;
    bi->mfn_list = si->mfn_list;
    bi->mod_start = si->mod_start;
    bi->mod_len = si->mod_len;
    bi->first_p2m_pfn = si->first_p2m_pfn;
    bi->nr_p2m_frames = si->nr_p2m_frames;
    return parse_cmdline(bi, (const char *)si->cmd_line);
}

const char *boot_arg(const struct boot_info *bi, const char *key)
{
    int i;

    for (i = 0; i < bi->nr_args; i++)
        if (strcmp(bi->args[i].key, key) == 0)
            return bi->args[i].value;
    return NULL;
}

unsigned long boot_arg_ulong(const struct boot_info *bi, const char *key,
                             unsigned long fallback)
{
    const char *value = boot_arg(bi, key);
    char *end;
    unsigned long n;

    if (value == NULL)
        return fallback;
    n = strtoul(value, &end, 0);
    return (*value && *end == '\0') ? n : fallback;
}

static void print_flags(unsigned long flags)
{
    printk("  %-14s 0x%lx%s%s%s%s\n", "flags", flags,
           (flags & SIF_PRIVILEGED) ? " privileged" : "",
           (flags & SIF_INITDOMAIN) ? " initdomain" : "",
           (flags & SIF_MULTIBOOT_MOD) ? " multiboot_mod" : "",
           (flags & SIF_MOD_START_PFN) ? " mod_start_pfn" : "");
}

void print_start_of_day(const struct boot_info *bi)
{
    int i;

    printk("start_info: magic %s\n", bi->si->magic);
    printk("  %-14s %p\n", "start_info", (const void *)bi->si);
    printk("  %-14s %lu (%lu MiB)\n", "nr_pages", bi->nr_pages,
           bi->nr_pages >> (20 - PAGE_SHIFT));
    printk("  %-14s 0x%lx\n", "shared_info", bi->shared_info_ma);
    print_flags(bi->flags);
    printk("  %-14s 0x%lx\n", "pt_base", bi->pt_base);
    printk("  %-14s %lu\n", "nr_pt_frames", bi->nr_pt_frames);
    printk("  %-14s 0x%lx\n", "mfn_list", bi->mfn_list);
    printk("  %-14s 0x%lx\n", "mod_start", bi->mod_start);
    printk("  %-14s %lu\n", "mod_len", bi->mod_len);
    printk("  %-14s %lu\n", "first_p2m_pfn", bi->first_p2m_pfn);
    printk("  %-14s %lu\n", "nr_p2m_frames", bi->nr_p2m_frames);
    printk("  %-14s \"%s\"\n", "cmd_line", (const char *)bi->si->cmd_line);
    for (i = 0; i < bi->nr_args; i++)
        printk("  arg %s = %s\n", bi->args[i].key, bi->args[i].value);
}

void start_of_day(const start_info_t *si)
{
    if (parse_start_info(si, &boot_info) < 0)
        PANIC("start_of_day: %s", boot_info.error);
    print_start_of_day(&boot_info);
}
