# %% [markdown]
# # 10 · Inside the running guest
#
# **What you will do.** Stop the real guest on the real Xen 4.17, in QEMU,
# with gdb: at its first C line, in the middle of registering its trap
# table, after its memory chapter, and inside its page-fault handler. Read
# its variables and registers, and draw its page allocator and page tables
# with the same plots chapters 03 and 05 drew for the host build.
#
# **What you will learn.** How a debugger reaches a kernel that runs under
# a hypervisor (QEMU's gdb stub sees the whole machine: Xen and the
# guest); why the breakpoints are *hardware* breakpoints; that the host
# build and the real guest run the same code on the same data.
#
# **What you need.** Chapters 01, 03, 05, 06 and 09. In a terminal,
# `minios-lab debug` gives the same guest to gdb itself.
#
# ## A debugger on a PV guest
#
# QEMU can stop the emulated CPU and let gdb read and write its registers
# and memory through a small TCP server, its *gdb stub*. `LiveGuest()`
# builds the guest, starts Xen in QEMU with the stub on a free port of
# this machine (`-S`: stopped before the first instruction), and starts
# gdb on `kernel/build/minios.elf`, connected to it. The CPU has not run
# one instruction yet: it sits at the x86 reset vector, 0xfff0.

# %%
from minios_lab.guest.live import LiveGuest
g = LiveGuest("name=lab")
print(hex(g.registers(["rip"])["rip"]), g.console)

# %% [markdown]
# Xen is not even loaded yet, let alone the guest. A *software* breakpoint
# would be an `int3` byte that gdb writes into memory at `start_kernel`;
# Xen's loader would then copy the guest's image over it. A hardware
# breakpoint is a comparison the CPU makes on every instruction address,
# so it can be set now. `run_to` sets one (temporary) and runs:

# %%
stop = g.run_to("start_kernel")
print(stop)
print(stop.source)

# %% [markdown]
# Now the guest is loaded and stopped at its first C line, on Xen's
# initial page tables, with `%rsi` pointing at the `start_info` page
# (`si`, the argument). gdb evaluates C expressions with the kernel's own
# types. The code segment says ring 3: a 64-bit PV kernel does not run in
# ring 0, Xen does.

# %%
print(g.eval("si->nr_pages"), g.eval("si->magic"))
regs = g.registers()
print(regs["rsi"] == g.value("si"), hex(regs["cs"]), "ring", regs["cs"] & 3)

# %% [markdown]
# ## start_info, live and on the host
#
# Chapter 01 ran the kernel's parser on a page that Python filled. Here is
# the page Xen filled, read out of the running guest and given to the same
# parser, host-built. The guest has not parsed it yet:

# %%
from minios_lab.guest.live.views import start_info_report
print(start_info_report(g))

# %% [markdown]
# Run until the start of day has parsed it (into the global `boot_info`)
# and compare again, field by field:

# %%
g.run_to("setup_safety_net")
print(start_info_report(g))

# %% [markdown]
# ## Registering the trap table, step by step
#
# Right after the parse, the start of day installs its safety net: the
# trap table first (chapter 06), so that any later fault is the guest's
# own report, not Xen's. This is the function:

# %%
from minios_lab.notebook.source import show
show("traps.c", "traps_init")

# %% [markdown]
# Stop at its first line. The table is still empty: entry 14 (the page
# fault) is all zeros.

# %%
print(g.run_to("traps_init").source)
print(g.eval("trap_table[14]"))

# %% [markdown]
# `next` runs one source line, stepping over calls, as gdb's `next` does:

# %%
for _ in range(3):
    print(g.next().source)

# %% [markdown]
# Run on to where the kernel looks at Xen's answer (`location` finds the
# line in the source, so that this notebook carries no line numbers). Xen
# has copied the table into its virtual IDT for this vCPU and answered 0:

# %%
from minios_lab.guest.live.views import location, trap_table
print(g.run_to(location("traps.c", "traps_init", "if (rc != 0)")).source)
print("rc =", g.eval("rc"))

# %% [markdown]
# The table as the guest registered it on real Xen, drawn by chapter 06's
# plot. And the host build, where Python played Xen, registered exactly
# the same entries:

# %%
from minios_lab.viz.traps import plot_trap_table
live_table = trap_table(g)
fig = plot_trap_table(live_table)

# %%
from minios_lab.traps import Traps
print(len(live_table), "entries; the same as the host build's:", live_table == Traps().trap_table())

# %% [markdown]
# ## The page allocator, live
#
# Run to the memory chapter and let it finish: the page allocator has been
# set up on every page above the kernel, the page tables and Xen's
# bootstrap area, and its self-test has run. `finish` stops when the
# function returns to its caller:

# %%
g.run_to("mm_chapter")
print(g.finish())
print(g.backtrace())

# %% [markdown]
# `page_allocator()` reads the guest's `struct page_pool`, its bitmap and
# its free lists (walking the links through the free chunks) into the
# same `PoolSnapshot` that `PageAllocator.snapshot()` returns on the host,
# so chapter 03's plots draw the real guest's 64 MiB:

# %%
from minios_lab.viz import mm as viz_mm
snap = g.page_allocator()
fig = viz_mm.memory_map(snap, columns=128, title="the real guest's pages after its mm chapter")

# %%
fig = viz_mm.free_list_lengths(snap, title="the real guest's free lists")

# %% [markdown]
# The guest printed its own summary at the end of the chapter. The picture
# and the summary agree:

# %%
from minios_lab.guest.live.views import summary_agreement
print(summary_agreement(snap, g.console))

# %% [markdown]
# ## The page tables, live
#
# `page_tables()` follows the guest's tables from the L4 that Xen built
# (`start_info.pt_base`), reading each table through its 1:1 mapping, into
# chapter 05's `Snapshot`:

# %%
from minios_lab.viz import pagetable as vp
tables = g.page_tables()
fig = vp.tree(tables, title="the real guest's page tables")

# %% [markdown]
# Virtual pages in order, machine frames wherever Xen found them (compare
# with chapter 05's shuffled frames); the read-only runs are the tables
# and, since the safety net, the kernel's own code:

# %%
fig = vp.v2m(tables.mappings, "the real guest: virtual page -> machine frame")

# %% [markdown]
# A walk of one address, level by level, as the kernel's `pt_walk()` does
# it; the guest printed its own walk of the same address during the
# pagetables chapter:

# %%
from minios_lab.pagetable import parse_guest_walk
walk = g.walk(g.value("&boot_info"))
fig = vp.walk_figure(walk)
printed = [parse_guest_walk(line) for line in g.console if "walk" in line]
print("the guest's own walk of that address is the same:", walk in printed)

# %%
g.close()

# %% [markdown]
# ## Stopped in the page-fault handler
#
# `crash=null` makes the guest read through a NULL pointer right after its
# start of day. Page 0 is unmapped, so the CPU faults, Xen bounces the
# fault to the guest's handler, and the handler panics. Stop in the
# handler before it does:

# %%
g = LiveGuest("crash=null")
print(g.run_to("do_page_fault"))
print(g.backtrace())

# %% [markdown]
# The stack ends in `exception_common`, the entry stub that built the
# frame (`struct pt_regs`, chapter 06); the interrupted code is recorded
# in that frame. The faulting address is where Xen put it for the guest,
# in the vCPU's `arch.cr2`; the CPU's own `cr2` register says the same:

# %%
from minios_lab.guest.live.views import fault_report, pt_regs
print(fault_report(g))

# %%
frame = pt_regs(g, "regs")
print({name: hex(frame[name]) for name in ("vector", "error_code", "rflags", "ss")})

# %% [markdown]
# Let it go on: the handler finds no fix-up for this address and panics,
# the domain crashes, and the session ends with Xen's report, QEMU and
# gdb stopped:

# %%
from minios_lab.guest.live import GuestCrashed
try:
    g.cont()
except GuestCrashed as crashed:
    print(crashed.crash.kind, "in", crashed.crash.symbol.split("+")[0])
print(g)

# %% [markdown]
# ## When it goes wrong
#
# A breakpoint that is never reached ends at the time limit, with the
# guest's last lines; an interrupt (the stop button) ends the session the
# same way. Either way nothing is left running:

# %% tags=["raises-exception"]
g = LiveGuest("hang=1")
g.run_to("mm_chapter", timeout=5)

# %%
print(g)

# %% [markdown]
# ## From a terminal
#
# ```
# .venv/bin/minios-lab debug                     # gdb, interactive
# .venv/bin/minios-lab debug -- crash=null       # guest command line after --
# .venv/bin/minios-lab debug --batch -ex 'break start_kernel' -ex continue -ex 'print si->nr_pages'
# ```
#
# gdb starts connected, with the kernel's symbols and sources; `break`
# makes hardware breakpoints; the guest's console lines appear as they
# come; Ctrl-C stops the guest where it is. `make debug` runs the first.
#
# ## Exercises
#
# 1. **Page 0, before and after.** In a new `LiveGuest`, take the walk of
#    virtual address 0 at `start_kernel` (store it in `before`) and again
#    once `setup_safety_net` has returned (`after`). Which level's entry
#    changed?
# 2. **Two ways to a machine frame.** In the same guest, find the machine
#    frame of the page holding `boot_info` twice: from a walk, and from the
#    p2m list Xen wrote at `boot_info.mfn_list` (one 8-byte machine frame
#    number per page). Store them in `mfn_walk` and `mfn_p2m`. (Stop
#    the guest where exercise 1 did: `boot_info` is filled by then.)
#
# <details><summary>Hint 1</summary>
#
# `g.walk(0)` returns a `Walk`; `g.run_to("setup_safety_net")` then
# `g.finish()` stops right after it returns.
# </details>
# <details><summary>Hint 2</summary>
#
# The pfn of a virtual address is `va >> 12` (the kernel is linked at 0);
# `g.read_u64(address)` reads 64-bit words.
# </details>

# %%
### BEGIN SOLUTION
with LiveGuest() as mine:
    mine.run_to("start_kernel")
    before = mine.walk(0)
    mine.run_to("setup_safety_net")
    mine.finish()
    after = mine.walk(0)
### END SOLUTION
assert before.present, f"page 0 should be mapped at start_kernel: {before}"
assert not after.present, f"page 0 should be unmapped after setup_safety_net: {after}"
assert [s.level for s in after.steps][-1] == 1 and after.steps[-1].entry == 0, \
    "the walk after should end at an empty L1 entry"
assert before.steps[:3] == after.steps[:3], "the L4, L3 and L2 entries should not change"
print("check passed")

# %%
### BEGIN SOLUTION
with LiveGuest() as mine:
    mine.run_to("setup_safety_net")
    mine.finish()
    va = mine.value("&boot_info")
    mfn_walk = mine.walk(va).mfn
    mfn_p2m = mine.read_u64(mine.value("boot_info.mfn_list") + 8 * (va >> 12))[0]
### END SOLUTION
assert mfn_walk is not None, "the walk found no machine frame"
assert mfn_walk == mfn_p2m, f"the walk says {mfn_walk:#x}, the p2m list {mfn_p2m:#x}"
print("check passed")

# %% [markdown]
# ## What you learned
#
# * QEMU's gdb stub sees the whole machine; a hardware breakpoint on a
#   guest address works from the first instruction, before Xen has loaded
#   anything.
# * A PV kernel runs in ring 3; Xen leaves it the `start_info` page in
#   `%rsi`, and the host build parses the real page exactly as the guest
#   does.
# * The trap table the guest gives Xen, its allocator's pages and lists,
#   its page tables: the real guest's state drawn by the same plots, and
#   equal to what the guest says about itself.
# * A page fault in a PV guest: Xen writes the address into the vCPU's
#   `arch.cr2` and enters the guest's handler with a frame built by
#   `entry.S`.
#
# ## Further reading
#
# * The gdb manual, "Debugging remote programs" and "Breakpoints"
#   (`hbreak`); QEMU's documentation, "GDB usage".
# * xv6's `make qemu-gdb`: the same idea for a teaching kernel on bare
#   metal.
# * Xen's `xen/arch/x86/traps.c` (`pv_inject_page_fault`: where `arch.cr2`
#   is written).
