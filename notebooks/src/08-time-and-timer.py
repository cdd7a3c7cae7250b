# %% [markdown]
# # 08 · Time and the timer
#
# **What you will do.** Read the time record that Xen keeps for each vCPU,
# turn TSC ticks into nanoseconds with the kernel's own 64×32-bit
# multiply, play Xen rewriting the record *while* the kernel reads it,
# then run the kernel's timer: a virtual interrupt, re-armed on every
# tick, with a guest that sleeps in between. Last, boot the guest on real
# Xen and plot when its ticks really came.
#
# **What you will learn.** How a PV guest tells the time without a clock
# chip; fixed-point scaling without overflow; the version protocol (a
# seqlock) that keeps a reader from seeing half an update; the wall clock;
# `VIRQ_TIMER`, one-shot and periodic timers, and why an idle guest must
# use the one-shot; how to block without losing a wake-up.
#
# **What you need.** Chapters 01 (start of day) and 07 (events: ports,
# `bind_virq`, the upcall, `local_irq_disable()`).
#
# ## No clock chip: a record and the TSC
#
# Xen does not emulate a timer chip for a PV guest. It keeps, per vCPU, a
# small record in `shared_info` and rewrites it now and then:

# %%
from minios_lab.notebook.source import show, show_xen
show_xen("xen.h", "vcpu_time_info")

# %% [markdown]
# The record says: *when the TSC read `tsc_timestamp`, it was
# `system_time` ns since Xen booted*. To know the time now, the guest reads
# the TSC itself and extrapolates, turning the TSC ticks elapsed since the
# stamp into nanoseconds with `tsc_to_system_mul` and `tsc_shift`. The
# kernel's `monotonic_clock()` is exactly the formula of the comment above:

# %%
show("time.c", "monotonic_clock")

# %% [markdown]
# In this notebook Python plays Xen. A `Clock` owns a page that stands for
# `shared_info`, writes the record into it as Xen does, and moves the
# TSC only when told (the host build's `rdtsc()` reads a variable).
# Here the TSC runs at 2.1 GHz, a round figure chosen for the lesson, and
# system time starts at 1 s. (A real guest's TSC frequency is whatever
# Xen measures: under QEMU's software emulation the guest's TSC follows
# the host's, so a boot reports this machine's own frequency, which is
# why the real boot below does not print it.)

# %%
from minios_lab.time import Clock
clock = Clock(tsc_hz=2_100_000_000, system_time=10**9)
clock.record

# %%
clock.advance_tsc(2_100_000)          # 1 ms of ticks
clock.monotonic_clock()

# %% [markdown]
# One nanosecond short of 1 001 000 000: the scale is a 32-bit fraction,
# and the kernel rounds down.
#
# ## scale_delta: a 96-bit product in 64-bit pieces
#
# `tsc_to_system_mul` is a 0.32 fixed-point *fraction*: a 32-bit number
# read as `mul / 2³²`, always below 1. It is applied after the tick count
# has been shifted by `tsc_shift` (left if positive, right if negative):
# nanoseconds = ((ticks << shift) × mul) >> 32. Since a fraction cannot
# exceed 1, the shift does the coarse scaling (a power of two) and `mul`
# the fine one. Xen picks the shift that puts `mul` in [2³¹, 2³²), so that
# it keeps 31 significant bits whatever the frequency:

# %%
import numpy as np
from minios_lab.viz.time import plot_mul_shift, plot_scale_steps
fig = plot_mul_shift(np.geomspace(1e8, 2e10, 400).astype(int).tolist())

# %% [markdown]
# The product of a 64-bit tick count and a 32-bit `mul` needs 96 bits.
# C has no 96-bit integer, so the kernel splits the delta into two 32-bit
# halves, multiplies each (each product fits in 64 bits) and adds them
# at the right offset. Bits below 32 are dropped, as the `>> 32` says:

# %%
show("time.c", "scale_delta")

# %%
from minios_lab.time import scale_steps
r = clock.record
fig = plot_scale_steps(scale_steps(10**13, r.mul, r.shift))

# %% [markdown]
# `scale_delta_reference()` says in exact Python integers what the C must
# return; the tests compare the two on thousands of random inputs, every
# shift an `int8_t` can hold included:

# %%
from minios_lab.time import scale_delta_reference
cases = [(2**64 - 1, 2**32 - 1, 0), (2**64 - 1, 2**32 - 1, 31), (123456789, 0xF3CF4EC1, -1)]
[(clock.scale_delta(*c), scale_delta_reference(*c)) for c in cases]

# %% [markdown]
# ## The version protocol
#
# Xen rewrites the record while the guest may be reading it: every time
# it schedules the vCPU, and on its own calibration ticks. A reader that
# copies `system_time` from one update and `tsc_timestamp` from the next
# gets a time that is wrong by the whole gap between them. So Xen
# increments `version` before it writes (making it odd) and again after
# (even), and the reader checks:

# %%
show("time.c", "read_time_info")

# %% [markdown]
# `shared_read_u32()` is a plain load in the guest. In the host build it
# also calls Python after each load of a version, so Python's Xen can write
# *between* the kernel's loads. Here an update is in progress and stays so
# for three of the kernel's loads:

# %%
from minios_lab.time import TimeRecord
clock.log.clear()
clock.hold_odd(3)
snap = clock.read()
print(f"retries: {snap.retries}, version read: {snap.version}")
for event in clock.log:
    print(f"kernel loaded version {event.loaded}; then Xen wrote {event.steps}")

# %% [markdown]
# A worse case: right after the kernel's first load (an even version),
# Xen starts an update and writes two fields; the kernel copies a record
# that is half old and half new, a *torn* read. The second load sees the
# version has changed, so the copy is thrown away:

# %%
old = clock.record
new = TimeRecord(old.system_time + 5000, clock.tsc, old.mul - 1000, old.shift)
clock.log.clear()
clock.tear_next_read(new)
snap = clock.read()
print(f"retries: {snap.retries}, got the new record: {snap.record == new}")
for event in clock.log:
    print(f"kernel loaded version {event.loaded}; then Xen wrote {event.steps}")

# %% [markdown]
# The tests let Hypothesis run Xen's steps at every possible point between
# the kernel's loads, and check that what comes back is always one whole
# record with its own version.
#
# ## A clock made of records
#
# Xen stamps a fresh record each time it schedules the vCPU, and adjusts
# `mul` as it calibrates the TSC against its platform timer. System time
# is then a line per record, each starting where the last one got to.
#
# Drawn as such, system time against the TSC is a straight line to the
# eye: the changes are tiny. They are counted in *ppm*, parts per million:
# a record whose `mul` is 200 ppm larger makes system time run 200 ns
# faster per millisecond (0.02 %). Here Python's Xen re-stamps every
# 10 samples (1 ms of TSC) and changes `mul` by 0, +200, −300, +100, +50
# and −100 ppm in turn (made-up figures, of the size a calibration
# makes). So the plot shows the *differences*: on top, each record's rate
# against the first record's, in ppm (the changes add up: +200 then −300
# is −100 against the first); below, how many nanoseconds
# `monotonic_clock()` has run ahead of the first record's rate. That curve
# bends at each stamp but never jumps: each record starts where the last
# one got to.

# %%
from minios_lab.time import trace_clock
from minios_lab.viz.time import plot_clock_trace
trace = trace_clock(Clock(tsc_hz=2_100_000_000), 210_000, 60, 10,
                    drift_ppm=[0, 200, -300, 100, 50, -100])
fig = plot_clock_trace(trace)

# %% [markdown]
# ## The wall clock
#
# `shared_info` also holds the date at which system time was 0, in
# `wc_sec`, `wc_nsec` and (for dates past 2106) `wc_sec_hi`, under its own
# version counter `wc_version`. The date now is that plus system time:

# %%
show("time.c", "wallclock_now")

# %%
clock.set_wallclock(1_700_000_000, 500_000_000)
now = clock.wallclock()
now, now.datetime

# %% [markdown]
# The kernel has no C library with `gmtime()`; `date_from_unix()` walks
# whole years and months:

# %%
clock.date(now.sec), clock.date(951782400)

# %% [markdown]
# ## The timer: VIRQ_TIMER
#
# Xen delivers time events as a *virtual interrupt*: `VIRQ_TIMER`, bound
# to an event channel with `bind_virq()` like any port of chapter 07. Two
# hypercalls make it fire: `VCPUOP_set_periodic_timer` (every period; a PV
# vCPU starts with one at 100 Hz) and `set_timer_op(deadline)`, a one-shot
# at an absolute system time. Which one suits a guest that sleeps between
# ticks? The kernel's design comment says, from Xen 4.17's scheduler:

# %%
from minios_lab.notebook.source import file_comment
print(file_comment("timer.c"))

# %% [markdown]
# `scripts/periodic_timer_experiment.py` checks the claim on real Xen: with
# the periodic timer and the same blocking loop the guest counts no tick
# at all and the boot runs into its time-out; with a loop that spins
# instead of blocking, the periodic ticks arrive. So the handler re-arms
# the one-shot, one period after the last deadline:

# %%
show("timer.c", "timer_handler")

# %%
show("timer.c", "next_deadline")

# %% [markdown]
# And the idle loop. Events are masked *before* the check, so a tick that
# arrives between the check and the block is not lost: Xen's
# `SCHEDOP_block` re-enables events and looks for pending ones atomically.

# %%
show("timer.c", "timer_wait")

# %% [markdown]
# ## Ticks with Python as Xen
#
# `TimerHypervisor` serves these hypercalls. When the kernel blocks, Python
# moves the TSC to the deadline plus some lateness, re-stamps the record,
# raises `VIRQ_TIMER` and runs the kernel's upcall, which calls the tick
# handler. 2500 ticks of 1 ms, each up to 0.4 ms late (a fixed random
# seed), print the system time every 1000 ticks as the original Mini-OS
# did:

# %%
import random
from minios_lab.time import run_timer
rng = random.Random(8)
run = run_timer(clock, tick_us=1000, ticks=2500,
                latency=lambda wake: int(rng.expovariate(1 / 100_000)) % 400_000)
print("\n".join(l for l in run.console.splitlines() if "intervals_us" not in l))

# %%
print(run.calls[:6], "...", len(run.calls), "hypercalls")

# %%
from minios_lab.viz.time import plot_tick_intervals
fig = plot_tick_intervals(run.report.intervals_us, 1000, "Python as Xen: 2500 ticks")

# %% [markdown]
# A late tick makes the next interval shorter: the deadlines are absolute,
# so the mean stays at the period. And if the kernel blocked with nothing
# armed, nothing would ever wake it. Python's Xen says so rather than
# hanging:

# %% tags=["raises-exception"]
t = clock.ffi.addressof(clock.lib, "timer_state")
clock.kernel.timer_reset(t, 1_000_000, 1)
clock.kernel.timer_wait(t)

# %% [markdown]
# ## The real thing
#
# The guest's "time" chapter reads the record and the wall clock on real
# Xen, checks that 10 000 reads of `monotonic_clock()` never go back, then
# ticks as the command line says. 2000 ticks of 1 ms (this boot takes a
# few seconds more than the others):

# %% tags=["nbval-ignore-output"]
from minios_lab.guest.boot import boot
from minios_lab.time import parse_time_section
result = boot("tick_us=1000 ticks=2000")
print(result)
machine = ("intervals_us", "record version", "tsc_khz")   # this machine's
print("\n".join(l for l in result.section("time") if not l.startswith(tuple(f"time: {m}" for m in machine))))

# %% [markdown]
# The lines left out above are the record Xen wrote and the TSC frequency
# it measured: under QEMU they are this machine's (and every interval
# between ticks, plotted below). The Python parser reads all the lines
# back: the record, the TSC frequency, the wall clock (QEMU starts its
# clock chip at the host's time) and every interval.

# %%
real = parse_time_section(result.section("time"))
print(len(real.intervals_us), "intervals; the record, the TSC frequency and",
      "the wall clock were read:", bool(real.record and real.tsc_khz and real.wallclock))
print("the guest's own verdict on its time chapter:", result.chapters.get("time"))

# %% tags=["nbval-ignore-output"]
fig = plot_tick_intervals(real.intervals_us, 1000, "real Xen in QEMU: 2000 ticks")

# %% [markdown]
# Under QEMU's software emulation, waking a sleeping guest is slow and
# irregular, the more so when the host machine is busy: ticks come late,
# sometimes by several periods, and the deadlines missed meanwhile fire at
# once, in a burst of short intervals. The mean interval still matches the
# period closely, because every deadline is one period after the last.
#
# ## Exercises
#
# 1. **Frequency.** From `mul` and `shift` alone, compute in Python the
#    TSC frequency in kHz that `clock.record` stands for, and store it in
#    `khz`. (The header's comment gives the formula.)
# 2. **Exactly two retries.** With a fresh `Clock()`, use
#    `interleave(steps_per_read, [record])` so that the kernel's next
#    `read()` retries exactly twice; store that snapshot in `twice`.
# 3. **A slower tick.** Boot the guest with a 4 ms tick and 250 ticks and
#    store the parsed report in `slow`.
# 4. *(C)* In `timer_wait()`, what goes wrong if `local_irq_disable()` is
#    moved after the `if`? Which tick is lost, and why does the guest then
#    hang?
#
# <details><summary>Hint 1</summary>
#
# One tick is `mul / 2^32` ns after a shift by `shift`, so one ns is
# `2^32 / mul` ticks before it. Compare with `clock.tsc_khz()`, the
# kernel's answer.
# </details>
# <details><summary>Hint 2</summary>
#
# Each number in `steps_per_read` is how many of Xen's six steps (version
# odd, four fields, version even) run right after each of the kernel's
# version loads. A retry happens when the first load is odd, or when the
# second differs from the first. Print `clock.log` to see what you did.
# </details>
# <details><summary>Hint 3</summary>
#
# `boot("tick_us=... ticks=...")`, then `parse_time_section()` of its
# `section("time")`.
# </details>
# <details><summary>Hint 4 (for the C question)</summary>
#
# The handler does not re-arm after the last tick. What wakes the guest if
# that last tick is handled after the check but before the block?
# </details>

# %%
### BEGIN SOLUTION
r = clock.record
per_ms = (10**6 << 32) // r.mul       # ticks per ms, before the shift
khz = per_ms >> r.shift if r.shift >= 0 else per_ms << -r.shift
### END SOLUTION
assert khz == clock.tsc_khz(), f"{khz} kHz, the kernel says {clock.tsc_khz()}"
assert abs(khz - 2_100_000) <= 1, f"{khz} kHz is not the clock's 2.1 GHz"
print("check passed")

# %%
### BEGIN SOLUTION
fresh = Clock()
fresh.interleave([1, 0, 5], [TimeRecord(42, 0, fresh.record.mul, fresh.record.shift)])
twice = fresh.read()
### END SOLUTION
assert twice.retries == 2, f"{twice.retries} retries, not 2: print(fresh.log)"
assert twice.record.system_time == 42, "the read did not return the record you wrote"
print("check passed")

# %%
### BEGIN SOLUTION
slow = parse_time_section(boot("tick_us=4000 ticks=250").section("time"))
### END SOLUTION
assert slow.tick_us == 4000, f"tick_us is {slow.tick_us}, not 4000"
assert len(slow.intervals_us) == 250, f"{len(slow.intervals_us)} intervals, not 250"
assert abs(sum(slow.intervals_us) / 250 - 4000) < 1000, "the mean interval is far from 4 ms"
assert slow.passed, "the guest's own time checks failed"
print("check passed")

# %% [markdown]
# <details><summary>Answer (4)</summary>
#
# Then the check "has the last tick come?" runs with events enabled. If
# the last tick arrives just after the check said "not yet" and before
# events are masked, its handler runs at once, counts it, and (being the
# last) arms no further timer. The loop then masks events and blocks
# waiting for a tick that has already been handled: no timer is armed,
# nothing will ever wake the vCPU, and the guest hangs. Masking *before*
# the check closes the window: a tick that comes after the check stays
# pending, and `SCHEDOP_block`, which re-enables events and looks for
# pending ones in one step, returns at once.
# </details>

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/time.c` and `kernel/timer.c`, are `scale_delta`, `read_time_info`, `next_deadline`, `timer_wait`:
# the code between `BEGIN` and `END` markers that your own copy (made by
# `minios-lab start`, see chapter 00) leaves for you to write. For each
# region, its task comes first: what to write, the difficulty, the points
# and what the grader checks. The cell after it runs that region's graded
# checks (the ones `make grade` runs) on your kernel, host build and real
# boot, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("scale_delta")

# %%
check_region("scale_delta")

# %%
show_task("read_time_info")

# %%
check_region("read_time_info")

# %%
show_task("next_deadline")

# %%
check_region("next_deadline")

# %%
show_task("timer_wait")

# %%
check_region("timer_wait")

# %% [markdown]
# ## Further reading
#
# * `xen/xen.h`: the comments on `struct vcpu_time_info` and
#   `struct shared_info` (the wall clock); `xen/vcpu.h` on the periodic and
#   single-shot timers; `xen/sched.h` on `SCHEDOP_block`.
# * Xen's `xen/common/sched/core.c`: `sched_context_switch()` stops the
#   periodic timer of the vCPU it switches away from.
# * Linux, `arch/x86/kernel/pvclock.c`: the same version protocol, shared
#   with KVM's clock.

# %% [markdown]
# ## What you learned
#
# * A PV guest tells the time from a record Xen keeps in `shared_info`
#   and the TSC: system time = `system_time` + the scaled TSC ticks since
#   `tsc_timestamp`.
# * Scaling is fixed point: shift by `tsc_shift`, multiply by the 0.32
#   fraction `tsc_to_system_mul`, a 96-bit product made of 64-bit pieces.
# * The version protocol (odd while Xen writes) keeps a reader from using
#   a torn record.
# * The timer is `VIRQ_TIMER`, armed one-shot with `set_timer_op` and
#   re-armed on every tick; the idle loop masks events, checks, then
#   blocks, so that no wake-up is lost.
#
# Chapter 09 builds on every chapter: it links them all into one guest
# image and boots it on Xen.
#
# Next: [09 · Build and boot](09-build-and-boot.ipynb).
