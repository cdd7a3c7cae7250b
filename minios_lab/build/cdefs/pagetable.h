/* cffi declarations for the page-table unit (kernel/mm/pagetable.c,
 * kernel/mm/pagetable_boot.c). Layouts marked "..." come from the real
 * headers; constants are resolved from <minios/pagetable.h> and Xen's. */

#define PAGE_SHIFT ...
#define PT_LEVELS ...
#define PT_ENTRIES ...
#define PT_BATCH ...
#define PT_VA_LIMIT ...
#define PT_NO_FRAME ...
#define PT_MAGIC ...
#define PT_DATA_FLAGS ...
#define PT_TABLE_FLAGS ...
#define BOOTSTRAP_ALIGN ...
#define BOOTSTRAP_PADDING ...
#define MMU_NORMAL_PT_UPDATE ...
#define MMU_MACHPHYS_UPDATE ...
#define MMU_PT_UPDATE_PRESERVE_AD ...
#define MMUEXT_PIN_L1_TABLE ...
#define MMUEXT_PIN_L4_TABLE ...
#define MMUEXT_UNPIN_TABLE ...
#define MMUEXT_TLB_FLUSH_LOCAL ...
#define MMUEXT_INVLPG_LOCAL ...
#define UVMF_NONE ...
#define UVMF_TLB_FLUSH ...
#define UVMF_INVLPG ...
#define UVMF_FLUSHTYPE_MASK ...
#define DOMID_SELF ...

typedef uint64_t pgentry_t;

typedef struct mmu_update {
    uint64_t ptr;
    uint64_t val;
} mmu_update_t;

struct mmuext_op {
    unsigned int cmd;
    ...;
};

struct pt_setup {
    unsigned long pt_base;
    unsigned long nr_pt_frames;
    unsigned long nr_pages;
    const unsigned long *p2m;
    const unsigned long *m2p;
    unsigned long m2p_entries;
    unsigned long mem_base;
};

struct pt_bootstrap {
    unsigned long pt_first_pfn;
    unsigned long stack_pfn;
    unsigned long first_free_pfn;
    unsigned long mapped_end_pfn;
};

struct pagetables {
    unsigned long magic;
    struct pt_setup setup;
    struct pt_bootstrap boot;
    unsigned long l4_mfn;
    unsigned long next_free_pfn;
    unsigned long new_tables[...];
    unsigned long xen_mapped;
    unsigned long mmu_update_calls;
    unsigned long entries_written;
    unsigned long va_update_calls;
    unsigned long tlb_flushes;
    unsigned long rejected;
    long last_error;
    bool need_tlb_flush;
    unsigned int nr_pending;
    ...;
};

struct pt_step {
    int level;
    unsigned int index;
    unsigned long table_mfn;
    pgentry_t entry;
};

struct pt_walk {
    unsigned long va;
    int depth;
    bool present;
    unsigned long mfn;
    unsigned long pfn;
    struct pt_step step[...];
};

void pt_bootstrap_layout(unsigned long pt_base, unsigned long nr_pt_frames,
                         struct pt_bootstrap *out);
void pt_init(const struct pt_setup *setup);
void pt_set_page_source(unsigned long (*alloc_page)(void));
long pt_map(unsigned long va, unsigned long pfn, unsigned long count,
            unsigned long flags);
long pt_map_mfn(unsigned long va, unsigned long mfn, unsigned long flags);
long pt_unmap(unsigned long va, unsigned long count);
long pt_map_all(void);
void pt_walk(unsigned long va, struct pt_walk *walk);
unsigned long pt_count_mapped(unsigned long va, unsigned long count);
unsigned long pt_mfn_to_pfn(unsigned long mfn);
void pt_print_walk(const struct pt_walk *walk);
void pt_print_summary(void);
struct pagetables *pt_current(void);
struct pagetables *pt_select(struct pagetables *tables);
