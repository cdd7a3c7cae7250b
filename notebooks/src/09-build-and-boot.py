# %% [markdown]
# # 09 · Build and boot the whole guest
#
# **What you will do.** Build the guest image from every chapter's C, look
# inside it the way Xen's loader does, boot it on the real Xen 4.17
# hypervisor in QEMU, turn its console into a table of chapter results,
# plot the timer ticks it measured, and see what a crash and a hang look
# like to the harness.
#
# **What you will learn.** What makes an ELF file a PV kernel (the Xen ELF
# notes, the hypercall page); the order in which a PV guest sets itself up;
# how to read a boot when it goes wrong.
#
# **What you need.** Chapters 01 to 08: this notebook runs all of them.
#
# ## Building the image
#
# `make -C kernel` compiles the same portable files the other notebooks
# built for the host, plus `kernel/arch/x86_64/` (entry, ELF notes,
# hypercalls, exception stubs), and links them at virtual address 0. Here
# the image is built from scratch in its own folder:

# %%
from minios_lab.guest.final import build_log
print(build_log())

# %% [markdown]
# ## Inside the image
#
# Xen's domain builder (its `libelf`) learns how to load a PV kernel from
# ELF *notes* named `Xen`: where to enter the kernel, which page to fill
# with hypercall stubs, where the kernel wants to live. It looks for them
# in the `PT_NOTE` program headers first, then in any `SHT_NOTE` section;
# only for old-style guests with no notes at all does it read the
# `__xen_guest` section, a string of `KEY=value` pairs. Where a note is
# missing it falls back on the ELF header: with no `XEN_ELFNOTE_ENTRY` it
# enters the kernel at `e_entry`. The note names below are read from
# Xen's own `xen/elfnote.h`:

# %%
from minios_lab.guest.final import notes_table, sections_table
elf = "../kernel/build/fresh/minios.elf"
print(notes_table(elf))

# %% [markdown]
# `LOADER generic` and `XEN_VERSION xen-3.0` are what `libelf` insists on
# before it loads anything. `FEATURES` is a string of Xen feature names
# (those of `xen/features.h`) that the kernel supports; one prefixed with
# `!` is *required*, and Xen refuses a kernel that requires a feature it
# lacks. Ours names one feature, `dom0`: this kernel may run as the first,
# privileged domain, as it does here. Xen 4.17's dom0 builder checks that
# declaration only for a kernel that also carries the binary
# `XEN_ELFNOTE_SUPPORTED_FEATURES` note: such a kernel without the `dom0`
# feature (in either note) is refused with "Kernel does not support Dom0
# operation". Ours has no such note, so Xen would build dom0 from it
# either way; the word states what the kernel is written for.
#
# The notes are written together in the entry file:

# %%
from minios_lab.notebook.source import show
show("arch/x86_64/head.S", "_start")

# %% [markdown]
# `HYPERCALL_PAGE` names an address inside the image: a page filled with
# `int3` bytes (`0xcc`, so that a slot Xen did not fill traps if it is
# ever reached) that Xen overwrites with 32-byte stubs, one per hypercall,
# before the kernel runs. The sections, in the order they are
# loaded, with their flags (`A` loaded, `W` writable, `X` executable);
# each kind starts on its own page, so that its pages can be mapped
# read-only or not executable:

# %%
from minios_lab.guest.image import sections
from minios_lab.notebook.text import sections_overview
print(sections_overview(sections(elf)))

# %% [markdown]
# Their addresses and sizes change with every edit of the kernel and with
# the compiler's version, so this cell's output is not compared by the
# tests:

# %% tags=["nbval-ignore-output"]
print(sections_table(elf))

# %% [markdown]
# Most of `.bss` is the 64 KiB boot stack and the table of event-channel
# bindings (one entry per port); the page at which the kernel maps
# `shared_info` is there too. The hypercall page is not: Xen fills it with
# code, so it lives in `.text`.
#
# ## Booting it
#
# Every chapter runs in order: start of day, libc, page tables, memory,
# the trap table, events, time and the timer. The guest prints a section
# per chapter and a `chapter NAME: PASS` line for each. At the keyboard,
# `boot(..., echo=echo_guest)` (from `minios_lab.guest.final`) prints the
# guest's lines as they arrive; here, where a thousand ticks' worth of
# lines would fill the page, only the summary is kept (its time changes
# from boot to boot):

# %% tags=["nbval-ignore-output"]
from minios_lab.guest.boot import boot
result = boot("tick_us=1000 ticks=1000")
print(result)

# %% [markdown]
# The harness parsed the console into a result:

# %%
from minios_lab.guest.final import chapter_table
print(chapter_table(result))

# %% [markdown]
# ## What the boot measured
#
# The time chapter asked Xen for a timer event every millisecond (a one-shot
# `set_timer_op` re-armed from the handler) and recorded when each tick
# came. Under QEMU's software emulation, on a shared machine, ticks come
# late and then catch up: the mean stays on the period, single intervals
# do not.

# %%
from minios_lab.time import parse_time_section
from minios_lab.viz.time import plot_tick_intervals
ticks = parse_time_section(result.section("time"))
fig = plot_tick_intervals(ticks.intervals_us, ticks.tick_us, "1000 ticks at 1000 us, real Xen in QEMU")

# %%
print(len(ticks.intervals_us), "intervals;", "all checks passed:", ticks.passed)

# %% [markdown]
# ## When it goes wrong
#
# The guest registers its trap table at start of day, before any chapter,
# leaves page 0 unmapped and maps its own code read-only. So a bad pointer
# is the guest's own page fault: its handler prints the faulting address
# (`cr2`), the decoded error code and the instruction, then panics; Xen
# ends the domain, and the harness names the function with the image's
# symbols and line table. `crash=1` writes to an unmapped address:

# %%
from minios_lab.notebook.text import crash_place
crashed = boot("crash=1")
print(crashed.outcome)
print("the crash is in", crash_place(crashed.crash))

# %% [markdown]
# The exact place, as an offset into the function and a source line,
# moves with the compiler and with any edit of the code around it:

# %% tags=["nbval-ignore-output"]
print(crashed.crash.symbol, crashed.crash.source)

# %% [markdown]
# `crash=null` reads through a NULL pointer, `crash=text` writes into the
# kernel's own code. `crash_summary` says what each did, naming addresses
# in the code by function (offsets and line numbers, which move, are
# left out of the comparison the tests make):

# %%
from minios_lab.guest.final import crash_summary
print(crash_summary(boot("crash=null")))

# %%
print(crash_summary(boot("crash=text")))

# %% [markdown]
# After the trap table is installed, a fault with no fix-up ends in the
# kernel's own `PANIC`, which the harness reports the same way
# (`trapfatal=1` asks the traps chapter for one):

# %%
fatal = boot("ticks=0 trapfatal=1")
print(fatal.outcome, "at", fatal.crash.symbol)

# %% [markdown]
# A guest that never ends is stopped at the timeout; QEMU does not survive
# it:

# %%
hung = boot("hang=1", timeout=5)
print(hung.outcome, "after the", 5, "second limit")

# %% [markdown]
# ## Exercises
#
# 1. Boot the whole guest with 128 MiB and check that every chapter passes.
# 2. From the image, find the address Xen fills with hypercall stubs and
#    store it in `hypercall_page`.
#
# <details><summary>Hint 1</summary>
#
# `boot(..., memory_mb=128)`; `result.chapters` is a dictionary.
# </details>
# <details><summary>Hint 2</summary>
#
# `minios_lab.guest.image.xen_notes(elf)` lists the notes; one is named
# `HYPERCALL_PAGE`. `minios_lab.guest.image.symbol(elf, "hypercall_page")` should
# agree.
# </details>

# %%
### BEGIN SOLUTION
big = boot("ticks=10", memory_mb=128)
### END SOLUTION
assert big.succeeded, big.report()
assert set(big.chapters.values()) == {"PASS"}, f"chapters: {big.chapters}"
print("check passed")

# %%
from minios_lab.guest.image import symbol, xen_notes
### BEGIN SOLUTION
hypercall_page = {n.name: n.value for n in xen_notes(elf)}["HYPERCALL_PAGE"]
### END SOLUTION
assert hypercall_page == symbol(elf, "hypercall_page"), \
    f"{hypercall_page:#x} is not the address of the symbol hypercall_page"
assert hypercall_page % 4096 == 0, "the hypercall page must start on a page"
print("check passed")

# %% [markdown]
# ## Running on a real Xen host
#
# `kernel/domain_config` starts the same image as an unprivileged guest
# (`xl create kernel/domain_config`). What differs there is described in
# the README: a domU's console is a shared ring, not `console_io`.
#
# ## Further reading
#
# * `xen/elfnote.h` and `xen/xen.h` (the hypercall page, `start_info`).
# * Xen's own test framework, XTF, boots its test kernels the same way.
# * The Mini-OS sources in the Xen project (`extras/mini-os`): the kernel
#   this course mirrors.

# %% [markdown]
# ## What you learned
#
# * An ELF file becomes a PV kernel through its `Xen` notes: the entry
#   point, the hypercall page Xen fills with stubs, the load address, what
#   the kernel supports (`FEATURES`).
# * The order in which a PV guest sets itself up: the trap table first,
#   so that any fault is reported, then the start of day, its page tables
#   and memory, `shared_info`, events, time and the timer.
# * How to read a boot: a table of chapter verdicts, the ticks the guest
#   measured, and what a crash (the guest's own page-fault report, a
#   `PANIC`) and a hang (the time-out) look like.
#
# ## The end of the course, and what lies beyond
#
# **What your guest now does.** Started by Xen with no firmware, it checks
# its `start_info`, prints with its own libc through `console_io`, installs
# a virtual exception table and survives faults, manages its memory with a
# buddy allocator and `xmalloc`, extends its page tables through
# hypercalls Xen validates, maps `shared_info`, takes event channels
# without losing one, tells the time from Xen's record and the TSC, sleeps
# between timer ticks, and shuts itself down. Each piece is C you have
# read, run from Python, and checked on the real hypervisor.
#
# **What Mini-OS does beyond it.** The real Mini-OS in the Xen tree goes
# on from where this kernel stops:
#
# * **xenbus and xenstore**: a domU finds its devices and configuration in
#   xenstore, a tree of keys kept by dom0, reached through a shared ring
#   page and an event channel named in `start_info` (`store_mfn`,
#   `store_evtchn`).
# * **PV front-ends**: `netfront`, `blkfront`, `pcifront` and others talk
#   to back-ends in dom0 through shared rings and *grant tables*, which let
#   a guest lend pages to another domain.
# * **The console as a domU**: an unprivileged guest may not use
#   `console_io`; it writes its console into a ring page shared with dom0's
#   console daemon (`start_info.console.domU`).
# * **Threads and a scheduler**: Mini-OS has cooperative threads, wait
#   queues, and blocks the vCPU when every thread sleeps.
# * **Networking and more**: it can link lwIP for a TCP/IP stack, a small C
#   library (newlib), and serves as the base of stub domains and unikernels.
#
# **Where to go next.**
#
# * Chapter 10 looks inside this running guest with gdb; chapter 11 runs
#   it as a domU beside a Linux dom0 and gives it its first PV device, the
#   console ring.
# * Xen's own documentation (`docs/` in the Xen tree and
#   xenbits.xen.org/docs): the hypercall interface, xenstore paths, the
#   PV drivers' protocols.
# * The Xen PV ABI itself: the public headers under `xen/include/public/`
#   (`xen.h`, `event_channel.h`, `grant_table.h`, `io/ring.h`,
#   `io/xs_wire.h`), which this kit already compiles against.
# * XTF, Xen's test framework: small kernels that each test one corner of
#   the hypervisor, booted the same way as ours.
# * The Mini-OS sources (`mini-os.git` on xenbits.xen.org):
#   `xenbus.c`, `netfront.c`, `blkfront.c`, `sched.c`, read with this
#   course's chapters in mind.
#
# Next: [10 · Inside the guest](10-inside-the-guest.ipynb).
