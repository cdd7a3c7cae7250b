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
# Xen's domain builder does not look at the ELF entry point or at any
# section names. It reads the notes named `Xen`: where to enter the kernel,
# which page to fill with hypercall stubs, where the kernel wants to live.
# The note names below are read from Xen's own `xen/elfnote.h`:

# %%
from minios_lab.guest.final import notes_table, sections_table
elf = "../kernel/build/fresh/minios.elf"
print(notes_table(elf))

# %% [markdown]
# The notes are written together in the entry file:

# %%
from minios_lab.notebook.source import show
show("arch/x86_64/head.S", "_start")

# %% [markdown]
# `HYPERCALL_PAGE` names an address inside the image: a page of zeros
# (`int3` bytes, in fact) that Xen overwrites with 32-byte stubs, one per
# hypercall, before the kernel runs. The sections, in the order they are
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
# Most of `.bss` is the boot stack and page-sized buffers (the shared_info
# page, the hypercall page is in `.text`).
#
# ## Booting it
#
# Every chapter runs in order: start of day, libc, page tables, memory,
# the trap table, events, time and the timer. The guest prints a section
# per chapter and a `chapter NAME: PASS` line for each. `echo` streams the
# guest's lines as they arrive (the numbers in them change from boot to
# boot: machine frames, times):

# %% tags=["nbval-ignore-output"]
from minios_lab.guest.boot import boot
from minios_lab.guest.final import echo_guest
result = boot("tick_us=1000 ticks=1000", echo=echo_guest)

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
from minios_lab.guest.image import symbol, xen_notes
big = boot("ticks=10", memory_mb=128)
hypercall_page = {n.name: n.value for n in xen_notes(elf)}["HYPERCALL_PAGE"]
### END SOLUTION
assert big.succeeded and set(big.chapters.values()) == {"PASS"}, big.report()
assert hypercall_page == symbol(elf, "hypercall_page") and hypercall_page % 4096 == 0
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
