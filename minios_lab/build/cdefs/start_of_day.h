/* cffi declarations for the start-of-day unit (kernel/start_of_day.c).
 * Struct layouts marked "..." are taken from the real headers. */

#define MAX_GUEST_CMDLINE ...
#define SIF_PRIVILEGED ...
#define SIF_INITDOMAIN ...
#define BOOT_ARGS_MAX ...

typedef struct start_info {
    char magic[32];
    unsigned long nr_pages;
    unsigned long shared_info;
    uint32_t flags;
    unsigned long pt_base;
    unsigned long nr_pt_frames;
    unsigned long mfn_list;
    unsigned long mod_start;
    unsigned long mod_len;
    int8_t cmd_line[...];
    unsigned long first_p2m_pfn;
    unsigned long nr_p2m_frames;
    ...;
} start_info_t;

struct boot_arg {
    char key[...];
    char value[...];
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
    struct boot_arg args[...];
    char error[...];
};

extern struct boot_info boot_info;

int parse_start_info(const start_info_t *si, struct boot_info *bi);
void print_start_of_day(const struct boot_info *bi);
const char *boot_arg(const struct boot_info *bi, const char *key);
unsigned long boot_arg_ulong(const struct boot_info *bi, const char *key,
                             unsigned long fallback);
void start_of_day(const start_info_t *si);
