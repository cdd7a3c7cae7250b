# %% [markdown]
# # 11 · A guest among guests: the console ring
#
# **What you will do.** Run the kernel's console-ring driver, the C that a
# domU prints with, while Python plays the two parties on the other side:
# Xen (event channels, the scheduler) and xenconsoled, dom0's console
# daemon. Watch the producer and consumer indexes move as the guest
# writes, fill the ring until the writer has to wait, wrap the 32-bit
# indexes, and lose a notification on purpose.
#
# **What you will learn.** How an unprivileged guest talks to a device
# backend in another domain: a shared page holding a ring, free-running
# indexes, the barrier between writing data and publishing the index, an
# event channel to say "look", and what the writer does when the reader
# is slow or a notification goes missing. The console is the first and
# simplest split driver of Xen; the disk and network rings work the same
# way.
#
# **What you need.** Chapters 01 (start of day: `start_info`, machine
# frames and the p2m) and 07 (event channels).
#
# ## Why dom0's console does not do for a domU
#
# Up to now the guest booted as dom0 and printed with the `console_io`
# hypercall: Xen wrote its text on the serial line. A release build of Xen
# refuses that hypercall from any other domain. A domU's console is a
# page it shares with dom0, which Xen's toolstack set up when it built the
# domain, plus an event channel; both are named in `start_info`:

# %%
from minios_lab.notebook.source import show, show_xen
show_xen("xen.h", "start_info")

# %% [markdown]
# `console.domU.mfn` is the machine frame of the page, `console.domU.evtchn`
# the port. As dom0 the same bytes mean something else (`console.dom0`),
# so the guest must look at `flags` first: `SIF_INITDOMAIN` says "you are
# dom0". The page holds one structure, from Xen's `<xen/io/console.h>`:

# %%
show_xen("io/console.h", "xencons_interface")

# %% [markdown]
# Two byte rings: `in` (keyboard to guest, not used by this kernel) and
# `out` (guest to console), each with a *producer* and a *consumer*
# index. For `out` the guest produces and owns `out_prod`; xenconsoled in
# dom0 consumes and owns `out_cons`. Each side only ever writes its own
# index.
#
# ## Start of day picks the back-end
#
# The kernel's console (`kernel/console.c`) carries printk's text out
# through a back-end function. Which one is decided at run time from
# `start_info`, not by `#ifdef`, so the same image runs as dom0 and as a
# domU:

# %%
show("console_ring.c", "console_ring_setup")

# %% [markdown]
# A PV guest cannot use a machine frame number directly. Xen's read-only
# *m2p* table turns it into the guest's own pseudo-physical frame, and the
# guest's *p2m* (`start_info.mfn_list`) must map that frame back to the
# same machine frame: that proves the page is the domain's own.

# %%
show("console_ring.c", "console_ring_pfn")

# %% [markdown]
# ## Python plays the toolstack, Xen and xenconsoled
#
# `ConsoleRing` builds `kernel/console_ring.c` with cffi. Python, as the
# toolstack, makes a small domU: eight pages of "memory" with shuffled
# machine frame numbers, a p2m and an m2p, and a `start_info` whose console
# is at pseudo-physical frame 5 with event channel 2. Then the kernel's
# own start of day runs on it. As Xen, Python serves `EVTCHNOP_send` (a
# notification kicks xenconsoled) and `SCHEDOP_yield` (the guest gives its
# CPU away, so dom0 may run). As xenconsoled, Python reads the ring, but
# only when it has been kicked and gets to run: here, when the guest
# yields or when we say so.

# %%
from minios_lab.console_ring import ConsoleRing
ring = ConsoleRing()
print("back-end:", ring.backend)
print("written to console_io:", repr(ring.xen.console_text))
snap = ring.snapshot()
print("waiting in the ring:", snap.pending())

# %% [markdown]
# The first line the guest printed went into the ring, not to Xen: it
# waits there until xenconsoled runs. Let it run:

# %%
taken = ring.run_consoled()
print(taken, "bytes read:", ring.output)

# %% [markdown]
# The ring ends each line with `\r\n`: xenconsoled passes bytes to a
# terminal in raw mode, which does not turn `\n` into a new line by itself.
# As dom0, the same start of day keeps `console_io` and prints nothing of
# its own:

# %%
dom0 = ConsoleRing(dom0=True)
print("back-end:", dom0.backend)
dom0.print("hello from dom0\n")
print("written to console_io:", repr(dom0.xen.console_text))

# %% [markdown]
# ## Producing: data first, then the index
#
# Here is how the guest puts bytes into `out`:

# %%
show("console_ring.c", "ring_put")

# %% [markdown]
# The indexes are *free-running*: they only ever grow (modulo 2^32) and
# `MASK_XENCONS_IDX` takes them modulo the ring's size, 2048, to find a
# slot. So `out_prod - out_cons`, computed in unsigned 32-bit arithmetic,
# is always the number of bytes waiting, between 0 and 2048, even when the
# counters wrap. Two barriers matter:
#
# * `wmb()` between copying the bytes and storing `out_prod`: xenconsoled,
#   on another CPU, must never see the new index before the bytes it
#   publishes.
# * `mb()` after reading `out_cons`: the slots it frees are overwritten
#   only after xenconsoled said it has finished reading them.
#
# `out_cons` is written by another domain, so the guest reads it once and
# checks it before trusting it. Write something and look at the ring:

# %%
ring.write("Hello, dom0! ")
ring.write("A domU writes its console through a shared page.")
snap = ring.snapshot()
print(f"out_prod {snap.prod}  out_cons {snap.cons}  waiting {snap.waiting}")
print(snap.pending())

# %%
from minios_lab.viz.console_ring import plot_indexes, plot_ring
fig = plot_ring(snap)

# %% [markdown]
# Grey slots hold bytes xenconsoled has read already (the ring is never
# cleared; only the indexes say what is valid), orange the bytes waiting.
# The blue box is where xenconsoled reads next (`out_cons`), the red one
# where the guest writes next (`out_prod`).
#
# After each chunk the guest notifies the port: one `EVTCHNOP_send`.

# %%
print(ring.stats())
for call in ring.xen.calls[-2:]:
    print(call.name, "EVTCHNOP_send ->", call.result, "#", call.note)

# %% [markdown]
# ## Wrapping at 2^32
#
# A console that runs long enough wraps its 32-bit indexes. Start both
# indexes 100 bytes before the wrap and write 150 bytes:

# %%
wrap = ConsoleRing(start_index=2**32 - 100 - 62)
print("start-of-day line:", wrap.run_consoled(), "bytes")
wrap.write(bytes(range(65, 65 + 50)) * 3)
w = wrap.snapshot()
print(f"out_cons {w.cons:#010x} (slot {w.slot(w.cons)})")
print(f"out_prod {w.prod:#010x} (slot {w.slot(w.prod)})")
print("waiting:", w.waiting, "bytes; out_prod - out_cons as unsigned 32-bit:",
      (w.prod - w.cons) % 2**32)

# %% [markdown]
# `out_prod` is now numerically smaller than `out_cons`, and nothing
# cares: the difference is still 150, and since 2048 divides 2^32 the slot
# of index 2^32 is slot 0, right after the slot of 2^32 - 1. The bytes come
# out in order:

# %%
wrap.run_consoled()
print(wrap.output[-150:] == bytes(range(65, 115)) * 3)

# %% [markdown]
# ## A full ring: the writer waits
#
# The ring holds 2048 bytes. When xenconsoled is slow, the guest fills it
# and must wait for `out_cons` to move. How it waits:

# %%
show("console_ring.c", "ring_wait_for_space")

# %% [markdown]
# Notify, then yield the CPU (`SCHEDOP_yield`) and look again. Why yield
# and not block (`SCHEDOP_block`) until an event comes? The driver writes
# with events disabled (so that an event handler's `printk` cannot mix
# its bytes into ours), and blocking enables events; blocking would also
# need a handler on the port and xenconsoled to kick back after reading.
# Yielding needs none of that. The price: a dead xenconsoled hangs the
# writer; the driver never drops text. `console_ring_write()` ties the
# pieces together:

# %%
show("console_ring.c", "console_ring_write")

# %% [markdown]
# Let xenconsoled be busy for the guest's next three yields, then write
# 3000 bytes at once:

# %%
full = ConsoleRing()
full.run_consoled()
full.daemon.stall(3)
full.write(b"#" * 3000)
print(full.stats())
for event in full.history[-9:]:
    print(f"{event.op:8} prod {event.prod:5}  cons {event.cons:5}  {event.note}")

# %% [markdown]
# The guest put 2048 bytes, notified, found the ring full and yielded
# three times for nothing, notifying again before each yield; at the
# fourth yield xenconsoled ran, took all 2048 bytes, and the guest put the
# rest. The indexes over the whole story:

# %%
fig = plot_indexes(full.snapshot(), title="3000 bytes into a 2048-byte ring")

# %% [markdown]
# `out_prod` (red) never goes above the dashed line, `out_cons` plus the
# ring's size: the writer never overwrites a byte xenconsoled has not read.
#
# What if xenconsoled never runs again? On real Xen the guest would yield
# for ever. Python counts the yields that free nothing and, after 1000,
# stops the guest with an error instead of hanging your notebook:

# %%
from minios_lab.console_ring import ConsoleStalled
stuck = ConsoleRing()
stuck.daemon.stall(10**6)
try:
    stuck.write(b"." * 5000)
except ConsoleStalled as error:
    print("ConsoleStalled:", error)
print("waiting:", stuck.snapshot().waiting)

# %% [markdown]
# ## A lost notification
#
# An event channel carries one bit, not a queue, and here we make Xen lose
# the next notification outright. The guest writes one line; xenconsoled
# runs, but was never kicked, so it does not look at the ring:

# %%
lost = ConsoleRing()
lost.run_consoled()
lost.daemon.drop_notifications(1)
lost.write(b"line one\r\n")
print("xenconsoled took", lost.run_consoled(), "bytes; waiting:",
      lost.snapshot().pending())

# %% [markdown]
# The text is late, not lost: it stays in the ring, and the next write
# notifies again. xenconsoled reads up to `out_prod`, not one chunk per
# kick, so one kick delivers both lines:

# %%
lost.write(b"line two\r\n")
lost.run_consoled()
print(lost.output)
print("notifications received:", lost.daemon.notifications,
      "lost:", lost.daemon.dropped)

# %% [markdown]
# The dangerous case is a lost kick when the ring is full: if the writer
# only notified once and then waited, it would wait for a reader that was
# never woken. That is why `ring_wait_for_space()` notifies again before
# every yield:

# %%
lost_full = ConsoleRing()
lost_full.run_consoled()
lost_full.daemon.drop_notifications(1)
lost_full.write(b"=" * 2500)
print(lost_full.stats(), "lost:", lost_full.daemon.dropped)
fig = plot_indexes(lost_full.snapshot(),
                   title="a full ring with its first notification lost")

# %% [markdown]
# ## A ring you cannot trust
#
# `out_cons` belongs to another domain. A buggy (or hostile) dom0 could
# write anything there. The guest checks `out_prod - out_cons <= 2048`
# before using it, and panics otherwise, after switching its console back
# to `console_io`, so that the panic is not written into the broken ring:

# %%
from minios_lab.errors import KernelPanic
bad = ConsoleRing()
bad.daemon.ring.out_cons = bad.daemon.ring.out_prod + 5
try:
    bad.write(b"x")
except KernelPanic as panic:
    print("KernelPanic:", panic.message)
print("console back on console_io:", bad.uses_hypercall)

# %% [markdown]
# ## The same C on a real Xen
#
# `start_kernel()` calls `console_init()` first thing, so the guest image
# of chapter 09 runs as a domU too: `minios-lab boot --domu -- ticks=0`
# (in Python `boot("ticks=0", domu=True)`) starts Xen with a Linux dom0
# in QEMU, which runs xenconsoled and `xl create -c kernel/domain_config`.
# Every line the guest prints then crosses this ring, starting with
# `console: domU: ring at pfn ... (mfn ...), event channel ...` (the
# numbers are the real domain builder's). As dom0 the same image still
# prints with `console_io`.

# %% [markdown]
# ## Exercises
#
# 1. **Count the yields.** Predict how many times the guest yields when
#    xenconsoled is stalled for 5 rounds and the guest writes 5000 bytes
#    into a ring it starts with empty (read the start-of-day line first).
#    Check with a fresh `ConsoleRing`; store the count in `yields`.
# 2. **Late, not lost.** With a fresh `ConsoleRing` (start-of-day line
#    read), lose the next two notifications, write `b"a"`, `b"b"`, `b"c"`
#    (one write each), and let xenconsoled run after each write. Store in
#    `seen` the list of `len(ring.output)` after each run.
# 3. **Across the wrap.** Start the indexes at `2**32 - 10` (that is, the
#    start-of-day line starts there), read that line, write 30 bytes, and
#    store the slot of `out_prod` in `slot`.
# 4. *(C)* Remove the `wmb()` in `ring_put()`. Why does nothing in this
#    notebook fail? What could xenconsoled see on a real machine, and on
#    which CPUs more easily than on x86?
#
# <details><summary>Hint 1</summary>
#
# The first 2048 bytes go in at once; then each yield frees the whole
# ring when xenconsoled runs. `ring.stats()["yields"]`.
# </details>
# <details><summary>Hint 2</summary>
#
# A write with a lost notification leaves xenconsoled unkicked; the next
# write that is not lost kicks it, and it reads everything waiting.
# </details>
# <details><summary>Hint 3</summary>
#
# The start-of-day line is 62 bytes; `snap.slot(snap.prod)`.
# </details>
# <details><summary>Hint 4 (for the C question)</summary>
#
# Here the "other CPU" is Python, which runs only between the kernel's
# calls. x86 keeps stores in order; the compiler need not, and ARM does
# not.
# </details>

# %%
### BEGIN SOLUTION
r = ConsoleRing()
r.run_consoled()
r.daemon.stall(5)
r.write(b"y" * 5000)
yields = r.stats()["yields"]
### END SOLUTION
assert yields == 7, f"{yields} yields: 5 stalled, then one per full ring"
print("check passed")

# %%
### BEGIN SOLUTION
r = ConsoleRing()
r.run_consoled()
r.daemon.output.clear()
r.daemon.drop_notifications(2)
seen = []
for part in (b"a", b"b", b"c"):
    r.write(part)
    r.run_consoled()
    seen.append(len(r.output))
### END SOLUTION
assert seen == [0, 0, 3], f"bytes read after each run: {seen}"
print("check passed")

# %%
### BEGIN SOLUTION
r = ConsoleRing(start_index=2**32 - 10)
r.run_consoled()
r.write(b"z" * 30)
snap = r.snapshot()
slot = snap.slot(snap.prod)
### END SOLUTION
assert slot == (2**32 - 10 + 62 + 30) % 2048, f"out_prod in slot {slot}"
print("check passed")

# %% [markdown]
# <details><summary>Answer (4)</summary>
#
# Nothing here runs beside the kernel: Python, playing xenconsoled, reads
# the ring only between the kernel's calls, when every store the kernel
# made is long done, in any order. On a real machine xenconsoled runs on
# another CPU at the same time. Without `wmb()` the compiler may move the
# store to `out_prod` before the stores of the bytes (nothing tells it
# that another CPU reads them), and a CPU with a weaker memory order than
# x86 (ARM, POWER) may make the stores visible in another order even when
# the compiler kept them. xenconsoled could then see the new `out_prod`,
# read slots that still hold old bytes, and print stale text. x86 keeps
# stores in program order, so there only the compiler can break it.
# </details>

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/console_ring.c`, are
# `ring-put` and `ring-wait`: the code between `BEGIN` and `END` markers
# that your own copy (made by `minios-lab start`, see chapter 00) leaves
# for you to write. For each region, its task comes first: what to write,
# the difficulty, the points and what the grader checks. The cell after it
# runs that region's graded checks (the ones `make grade` runs) on your
# kernel's host build, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("ring-put")

# %%
check_region("ring-put")

# %%
show_task("ring-wait")

# %%
check_region("ring-wait")

# %% [markdown]
# ## Further reading
#
# * `xen/io/console.h` and `xen/io/ring.h`: the console ring and the
#   general ring macros of the other split drivers (block, network).
# * Xen's `tools/console/daemon/io.c`: xenconsoled's side of the ring.
# * Linux, `drivers/tty/hvc/hvc_xen.c`: the same driver in Linux.

# %% [markdown]
# ## What you learned
#
# * A domU's console is a page shared with dom0 plus an event channel,
#   both named in `start_info.console.domU`; dom0's `console_io` is not
#   for it. The guest picks its back-end at start of day from
#   `SIF_INITDOMAIN`, at run time.
# * A machine frame becomes a guest address through the m2p, checked
#   against the p2m.
# * A ring with free-running 32-bit indexes: `prod - cons` is what waits,
#   the slot is the index modulo the size, and both stay right across the
#   wrap because the size divides 2^32.
# * Publish after the data (`wmb()`), reuse after the consumer's index
#   (`mb()`), and only ever write your own index; check the other side's.
# * A full ring makes the writer wait; notifying again before each wait
#   makes a lost notification cost time, never text.
