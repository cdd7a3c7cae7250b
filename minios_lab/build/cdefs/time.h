/* cffi declarations for the time unit: the clock (kernel/time.c) and the
 * timer (kernel/timer.c). What they stand on (shared_info, the upcall,
 * event channels) is declared in xen_shared.h. */

#define VCPUOP_set_periodic_timer ...
#define VCPUOP_stop_periodic_timer ...
#define NSEC_PER_SEC ...
#define TIMER_SAMPLES_MAX ...
#define TICKS_PER_REPORT ...

struct vcpu_set_periodic_timer {
    uint64_t period_ns;
};

/* kernel/host/shared_read.c: called after each load of a version. */
extern void (*host_shared_read_hook)(const volatile void *address);

/* kernel/time.c */
struct time_snapshot {
    uint32_t version;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint64_t tsc;
    unsigned int retries;
};
struct wallclock {
    uint64_t sec;
    uint32_t nsec;
};
struct date {
    unsigned int year, month, day;
    unsigned int hour, min, sec;
};
struct time_stats {
    unsigned long reads;
    unsigned long retries;
    unsigned long wc_reads;
    unsigned long wc_retries;
};
extern struct time_stats time_stats;

uint64_t scale_delta(uint64_t delta, uint32_t mul, int shift);
unsigned int read_time_info(const volatile struct vcpu_time_info *src,
                            struct time_snapshot *snap);
uint64_t snapshot_system_time(const struct time_snapshot *snap);
uint64_t monotonic_clock(void);
unsigned int read_wallclock_base(const volatile shared_info_t *s,
                                 struct wallclock *base);
void wallclock_add(const struct wallclock *base, uint64_t system_ns,
                   struct wallclock *out);
void wallclock_now(struct wallclock *now);
int date_from_unix(uint64_t sec, struct date *d);
uint64_t tsc_khz(uint32_t mul, int shift);

/* kernel/timer.c */
struct timer_state {
    uint64_t period_ns;
    unsigned long target, ticks, extra, missed, backwards;
    uint64_t start_ns, deadline, last_ns;
    uint64_t iv_min_ns, iv_max_ns;
    int64_t late_min_ns, late_max_ns, late_sum_ns;
    int port;
    unsigned long nr_samples;
    uint32_t interval_ns[...];
};
extern struct timer_state timer_state;

void timer_reset(struct timer_state *t, uint64_t period_ns,
                 unsigned long target);
uint64_t timer_tick(struct timer_state *t, uint64_t now);
int timer_start(uint64_t period_ns, unsigned long target);
void timer_wait(struct timer_state *t);
void timer_stop(void);
void timer_report(const struct timer_state *t);
