# %% [markdown]
# # 07 · Event channels
#
# **What you will do.** Play Xen: set bits in a real `shared_info` page and
# deliver the event upcall to the kernel's own C code. Watch the two-level
# scan find the ports, hold events back by masking a port or disabling
# events, and check that nothing raised meanwhile is lost. Then run the same
# checks on a real Xen, on a channel the guest connects to itself.
#
# **What you will learn.** How Xen tells a PV guest that something happened
# without any interrupt controller: the `evtchn_pending` and `evtchn_mask`
# bitmaps, the selector word, `evtchn_upcall_pending`; what "disabling
# interrupts" means in a PV guest (`evtchn_upcall_mask`); why unmasking a
# port and enabling events must each look for work that waited.
#
# **What you need.** Chapters 01 (start of day: `shared_info` is a machine
# address) and 06 (the event callback is registered with the trap table).
#
# ## Two bitmaps, a selector and two flags
#
# An *event channel* is a port number, 0 to 4095, that Xen and the guest
# agree on: a device backend, a timer, another domain can each "raise" a
# port. Xen keeps one bit per port in the `shared_info` page, which it
# shares with the guest:

# %%
from minios_lab.notebook.source import show, show_xen
show_xen("xen.h", "vcpu_info")

# %% [markdown]
# Besides the `vcpu_info` above, `shared_info` holds
# `evtchn_pending[64]` and `evtchn_mask[64]`: 64 words of 64 bits, one bit
# per port. When port *p* fires, Xen
#
# 1. sets bit *p* of `evtchn_pending` (if it was set already, that is all:
#    events *coalesce*, a bit is not a counter);
# 2. if bit *p* of `evtchn_mask` is clear, sets bit *p / 64* of the vCPU's
#    `evtchn_pending_sel` (the *selector*: which words to look at), and if
#    that bit was new, sets `evtchn_upcall_pending`;
# 3. on its way back to the guest, if `evtchn_upcall_pending` is set and
#    `evtchn_upcall_mask` is clear, enters the guest's *event callback*
#    with `evtchn_upcall_mask` set.
#
# So there are two ways to hold events back: mask one port, or set
# `evtchn_upcall_mask`, the PV guest's interrupt flag. (The design comment
# at the top of `kernel/hypervisor.c` says the same, in C terms.)
#
# ## Mapping shared_info
#
# `start_info` gives the *machine* address of `shared_info` (chapter 01).
# The guest reserves a page of its own `.bss` and asks Xen to point that
# page's entry at Xen's frame:

# %%
show("hypervisor.c", "map_shared_info")

# %% [markdown]
# In this notebook there is no Xen frame to map: Python allocates a page
# and hands it to `set_shared_info()`, the same function the guest's
# mapping ends with. Every other line of the event code is the same C.
#
# ## Python plays Xen
#
# `EventChannels` builds `kernel/hypervisor.c` and `kernel/events.c`,
# gives the kernel a fresh `shared_info` page and runs `init_events()`,
# which masks every port: a port with no handler must never fire. Xen
# starts a PV guest with events disabled (`evtchn_upcall_mask` = 1), and so
# does this Xen.

# %%
from minios_lab.events import EventChannels
ev = EventChannels()
snap = ev.snapshot()
print("upcall_mask", snap.upcall_mask, "| masked ports", len(snap.masked_ports()))

# %% [markdown]
# `bind()` is the kernel's `bind_evtchn()`: it puts a handler in the port's
# slot of the table and unmasks the port. Here each handler is a Python
# function (the kernel calls it through a trampoline). Bind a few ports in
# different words, mask one of them again, and let "Xen" raise some ports,
# including 1000, which nobody bound:

# %%
for port in [1, 3, 64, 70, 130, 200]:
    ev.bind(port, lambda port: print("handler of port", port))
ev.mask(70)
for port in [200, 3, 64, 1, 130, 70, 1000]:
    ev.raise_event(port)
before = ev.snapshot()
print("pending    ", before.pending_ports())
print("deliverable", before.deliverable_ports())
print(f"selector    {before.selector:#b}, upcall_pending {before.upcall_pending}")

# %% [markdown]
# Ports 70 and 1000 are pending but masked, so Xen set no selector bit for
# them (1000 is the only port of word 15). The picture: one column per
# word, bit 0 at the top, and the selector above its words.

# %%
from minios_lab.viz.events import plot_bitmaps, plot_scan_order, plot_timeline
fig = plot_bitmaps(before, words=range(16), title="after the raises (words 0-15)")

# %% [markdown]
# Nothing ran yet: events are disabled. Xen would deliver on its next
# return to the guest; `deliver()` is that return, and with events disabled
# it does nothing:

# %%
ev.deliver()

# %% [markdown]
# ## The upcall: a two-level scan
#
# When Xen does enter the callback, the assembly stub of chapter 06 saves
# the registers and calls `do_hypervisor_callback()`:

# %%
show("hypervisor.c", "do_hypervisor_callback")

# %% [markdown]
# It clears `evtchn_upcall_pending` *first*, then takes the selector with an
# atomic exchange, so that anything Xen raises from then on sets both again
# and causes another upcall. For each selector bit, lowest first, it scans
# one word:

# %%
show("hypervisor.c", "scan_word")

# %% [markdown]
# `evtchn_deliver()` checks each candidate again (a handler earlier in the
# scan may have masked or cleared it), clears its pending bit *before* the
# handler runs, and calls the handler:

# %%
show("events.c", "evtchn_deliver")

# %% [markdown]
# Enable events now. `local_irq_enable()` sees `evtchn_upcall_pending` and
# makes a hypercall; on its way back Xen enters the callback:

# %%
ev.enable()
got = [d for d in ev.log if d.upcall == 1]
[(d.port, d.during) for d in got]

# %% [markdown]
# Every bound, unmasked, pending port ran once, lowest word first and
# lowest bit first, all in one upcall. Ports 70 (masked) and 1000 (masked,
# unbound) are still pending:

# %%
fig = plot_scan_order(before, got)
print("still pending", ev.snapshot().pending_ports())

# %% [markdown]
# The order is simple and predictable, but not fair: a low port that fires
# all the time is always served first. Linux starts each scan where the
# previous one stopped for that reason.
#
# ## Masking a port
#
# Port 70 was raised while masked, so Xen set no selector bit for it. When
# the kernel unmasks it, nobody would ever look at word 1 again, so
# `unmask_evtchn()` does Xen's part itself:

# %%
show("events.c", "unmask_evtchn")

# %%
ev.unmask(70)
[(d.port, d.during) for d in ev.log[len(got):]]

# %% [markdown]
# ## Disabling events
#
# `local_irq_disable()` sets `evtchn_upcall_mask`; Xen then keeps the
# upcall pending and does not enter the callback. `local_irq_enable()`
# clears it and, if an upcall waited, asks for it at once:

# %%
show("events.c", "local_irq_enable")

# %%
show("events.c", "force_evtchn_callback")

# %% [markdown]
# Any hypercall would do: Xen checks for pending events on every return
# to the guest. Here is the one `enable()` made above, as Python's Xen
# recorded it:

# %%
call = next(c for c in ev.xen.calls if c.name == "xen_version")
print(call.name, "->", hex(call.result), "#", call.note)

# %% [markdown]
# A timeline of a few operations on two ports shows both kinds of waiting.
# Grey: the port is masked; blue: events are disabled; orange: an event
# waiting from its raise to its delivery.

# %%
ev = EventChannels()
ev.bind(1)
ev.bind(2)
ev.enable()
ev.raise_event(1)
ev.deliver()
ev.mask(2)
ev.raise_event(2)
ev.raise_event(1)
ev.deliver()
ev.disable()
ev.raise_event(1)
ev.raise_event(1)
ev.deliver()
ev.unmask(2)
ev.enable()
snap = ev.snapshot()
fig = plot_timeline(snap.trace, snap.deliveries, [1, 2])
print("handler runs:", snap.counts)

# %% [markdown]
# Port 1 was raised twice while events were disabled and ran once: the two
# raises coalesced into one pending bit. Port 2, raised while masked, ran
# when events came back, not at its unmask: events were still disabled
# then, so `unmask_evtchn()` only set the selector bit and
# `evtchn_upcall_pending`.
#
# ## No lost event, exactly once
#
# The rule the code keeps: *a port that is pending and unmasked has its
# selector bit set, and a set selector bit has `evtchn_upcall_pending`
# set* (or an upcall is scanning it right now). `tests/test_events.py`
# checks it with hypothesis: random sequences of raise, mask, unmask,
# disable, enable, save, restore and deliver against a model made of two
# sets and a flag. Every raise on a bound, unmasked port is delivered
# exactly once, in the scan order above, and never while masked or
# disabled.
#
# ## A channel to ourselves
#
# On real Xen, a domain can connect an event channel to itself:
# `EVTCHNOP_alloc_unbound` with `remote_dom = DOMID_SELF` gives a port A
# that waits for a binding, and `EVTCHNOP_bind_interdomain` to
# (`DOMID_SELF`, A) gives its other end B. Sending on A raises B:

# %%
show("events_demo.c", "open_loopback")

# %% [markdown]
# Xen sets a freshly bound interdomain port pending (in case the other side
# sent before the binding existed), which is why the guest clears B before
# it starts. Python's Xen does the same:

# %%
ev = EventChannels()
a, b = ev.open_loopback()
print("A", a, "B", b, "| pending", ev.snapshot().pending_ports())
for c in ev.xen.calls:
    print(c.name, "#", c.note)

# %% [markdown]
# The guest's chapter runs its checks on such a channel. The same C runs
# here against Python's Xen:

# %%
ok, text = EventChannels().selftest()
print(text)

# %% [markdown]
# ## The real thing
#
# Now on Xen 4.17 in QEMU: the guest maps `shared_info`, opens the
# loopback channel and runs the same checks. The events section of its
# console:

# %%
from minios_lab.guest.boot import boot
result = boot("ticks=0")
for line in result.section("events")[1:]:
    print(line)
print("chapter events:", result.chapters["events"])

# %% [markdown]
# Four upcalls: one at the `enable` after two sends, one at the unmask,
# one for both ends at once (lowest port first), one at the outer
# `local_irq_restore()`.
#
# ## Exercises
#
# 1. **Coalescing.** With a fresh `EventChannels`, bind port 5, raise it
#    three times while events are disabled, then enable. Store the number
#    of handler runs in `runs`.
# 2. **Scan order.** With events enabled, bind ports 130, 2, 64 and 1, raise
#    them in that order and deliver. Store the delivered ports, in order,
#    in `order`.
# 3. **Held by a handler.** Bind port 1 with a handler that masks port 2
#    (`ev.kernel.mask_evtchn(2)`), bind port 2, raise both with events
#    disabled, enable. Store the ports delivered so far in `first`; then
#    unmask 2 and store all ports delivered in `then`.
# 4. *(C)* In `unmask_evtchn()`, what goes wrong if the selector bit is
#    set but `force_evtchn_callback()` is not called when events are
#    enabled? Which test of `tests/test_events.py` would catch it?
#
# <details><summary>Hint 1</summary>
#
# `ev.disable()`, `ev.raise_event(5)` three times, `ev.enable()`, then
# `ev.count(5)`.
# </details>
# <details><summary>Hint 2</summary>
#
# `ev.deliver()` returns the deliveries it caused; each has a `.port`.
# </details>
# <details><summary>Hint 3</summary>
#
# `evtchn_deliver()` re-checks the mask of each candidate, so port 2 stays
# pending; `unmask()` delivers it.
# </details>
# <details><summary>Hint 4 (for the C question)</summary>
#
# With events enabled, nothing else returns to the guest soon: the event
# would wait for the next unrelated hypercall or interrupt.
# </details>

# %%
### BEGIN SOLUTION
ev = EventChannels()
ev.bind(5)
ev.disable()
for _ in range(3):
    ev.raise_event(5)
ev.enable()
runs = ev.count(5)
### END SOLUTION
assert runs == 1, f"the handler ran {runs} times: three raises of a pending port are one event"
print("check passed")

# %%
### BEGIN SOLUTION
ev = EventChannels()
ev.enable()
for port in [130, 2, 64, 1]:
    ev.bind(port)
    ev.raise_event(port)
order = [d.port for d in ev.deliver()]
### END SOLUTION
assert order == [1, 2, 64, 130], f"delivered in the order {order}"
print("check passed")

# %%
### BEGIN SOLUTION
ev = EventChannels()
ev.bind(1, lambda port: ev.kernel.mask_evtchn(2))
ev.bind(2)
ev.raise_event(1)
ev.raise_event(2)
ev.enable()
first = [d.port for d in ev.log]
ev.unmask(2)
then = [d.port for d in ev.log]
### END SOLUTION
assert first == [1], f"before the unmask, delivered {first}"
assert then == [1, 2], f"after the unmask, delivered {then}"
print("check passed")

# %% [markdown]
# <details><summary>Answer (4)</summary>
#
# The port would be pending, unmasked, with its selector bit and
# `evtchn_upcall_pending` set, and yet nothing would run its handler now.
# Xen looks at `evtchn_upcall_pending` only when it returns to the guest
# (from a hypercall, an interrupt, a reschedule). With events enabled the
# guest has no reason to enter Xen soon, so the event waits for the next
# unrelated entry into Xen, which may be long or never in a guest that
# spins. `force_evtchn_callback()` is that entry, made at once: a cheap
# hypercall whose return delivers the event. In `tests/test_events.py`,
# `test_masked_port_waits_and_unmask_delivers_once` catches it: it
# expects the event to be delivered *during* the `unmask`.
# </details>

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/hypervisor.c` and `kernel/events.c`, are `scan_word`, `do_hypervisor_callback`, `unmask_evtchn`, `local_irq_enable`:
# the code between `BEGIN` and `END` markers that your own copy (made by
# `minios-lab start`, see chapter 00) leaves for you to write. For each
# region, its task comes first: what to write, the difficulty, the points
# and what the grader checks. The cell after it runs that region's graded
# checks (the ones `make grade` runs) on your kernel, host build and real
# boot, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("scan_word")

# %%
check_region("scan_word")

# %%
show_task("do_hypervisor_callback")

# %%
check_region("do_hypervisor_callback")

# %%
show_task("unmask_evtchn")

# %%
check_region("unmask_evtchn")

# %%
show_task("local_irq_enable")

# %%
check_region("local_irq_enable")

# %% [markdown]
# ## Further reading
#
# * `xen/event_channel.h`: every `EVTCHNOP_*` operation and its rules;
#   `xen/xen.h`: the comments on `vcpu_info` and `shared_info`.
# * David Chisnall, *The Definitive Guide to the Xen Hypervisor*, chapter 7
#   (events).
# * Linux, `drivers/xen/events/events_2l.c`: the same two-level scan, with
#   a rotating start for fairness.

# %% [markdown]
# ## What you learned
#
# * Event channels are a PV guest's interrupts: Xen sets a bit in
#   `evtchn_pending` of `shared_info`, a bit in the selector word and
#   `evtchn_upcall_pending`, then enters the event callback.
# * The upcall scans two levels: the selector, then each word it names,
#   and calls each pending, unmasked port's handler once.
# * "Disabling interrupts" is setting `evtchn_upcall_mask`, a byte in
#   shared memory; a port is held back by its bit in `evtchn_mask`.
# * Unmasking a port and enabling events must look for work that waited
#   and make Xen deliver it: no event is lost, none is delivered twice.
#
# Chapter 08 builds on this: the timer is a virtual interrupt,
# `VIRQ_TIMER`, bound to an event channel, and the idle loop relies on
# masking events before it blocks.
#
# Next: [08 · Time and the timer](08-time-and-timer.ipynb).
