# %% [markdown]
# # 00 · Welcome to minios-lab
#
# **What you will do.** Check that the kit is ready, then boot a real
# paravirtualized (PV) guest kernel on the real Xen 4.17 hypervisor,
# inside QEMU, in about a second, and read what it printed.
#
# **What you will learn.** How the course is laid out; what "one kernel, two
# builds" means; how the notebooks run real kernel C from Python.
#
# **What you need.** Nothing yet: `make lab` set everything up.
#
# ## The course
#
# Mini-OS is the small PV guest kernel that ships with Xen. It shows what
# any guest operating system must set up when it runs on Xen without
# hardware virtualization: it cannot touch the interrupt table, the
# interrupt flag or the page tables directly, so it asks Xen, through
# *hypercalls*. This kit contains its own small kernel in the same shape, in
# `kernel/`, and one notebook per subsystem:
#
# | notebook | subsystem | kernel files |
# |---|---|---|
# | 00 welcome | the kit, a first boot | |
# | 01 start of day | what Xen hands a PV guest: `start_info` | `start_of_day.c` |
# | 02 minimal libc | printing with no C library | `lib/printf.c`, `lib/string.c` |
# | 03 page allocator | bitmap and buddy lists | `mm/page_alloc.c` |
# | 04 xmalloc | small objects on top of pages | `mm/xmalloc.c` |
# | 05 page tables | 4-level tables, updated through Xen | `mm/pagetable.c` |
# | 06 exceptions | the virtual exception table | `traps.c`, `arch/x86_64/entry.S` |
# | 07 events | event channels, masking | `events.c`, `hypervisor.c` |
# | 08 time and timer | system time, the timer interrupt | `time.c` |
# | 09 build and boot | the whole guest on Xen | everything |
#
# ## One kernel, two builds
#
# Every chapter compiles the **real C source** of its subsystem into a
# Python extension (the *host build*). There, each hypercall lands in a
# Python object that plays Xen's part for the lesson and records the call.
# The same files, linked with a little assembly, make the *guest build*: an
# ELF image that Xen boots as its first domain (dom0).
#
# First, is everything in place?

# %%
from minios_lab.classroom.course import doctor_summary, doctor_table
doctor_summary()

# %% [markdown]
# The details differ from machine to machine (paths, versions):

# %% tags=["nbval-ignore-output"]
print(doctor_table())

# %% [markdown]
# ## A first boot
#
# `boot()` builds the guest image with `make -C kernel`, starts QEMU with
# Xen as the "kernel" and our image as Xen's first module, and collects the
# serial console. The words you pass become the guest's command line.

# %%
from minios_lab.guest.boot import boot
result = boot("name=learner")
print(result)

# %% [markdown]
# Xen prints a lot while it boots (lines starting with `(XEN)`). The guest's
# own lines are separated out. It starts with a banner and a start-of-day
# report (chapter 01 explains every field), including its command line
# split into words:

# %%
print("\n".join(result.opening))

# %% [markdown]
# Then each chapter runs on real Xen, and prints its own section ending in
# a verdict line; the last line says whether every chapter passed:

# %%
print("\n".join(line for line in result.guest_lines if line.startswith(("chapter ", "minios-lab:"))))

# %% [markdown]
# Then the guest asked Xen to shut the machine down, and QEMU exited.
# How did Xen's boot end? (`stable_xen_lines` leaves out the lines whose
# numbers differ between Xen builds and machines, such as how many kB of
# init memory Xen freed; `result.xen_lines` has them all.)

# %%
from minios_lab.notebook.text import stable_xen_lines
print("\n".join(stable_xen_lines(result.xen_lines)[-2:]))

# %% [markdown]
# ## When things go wrong
#
# Kernel bugs are part of the course. They never hang a cell: a guest that
# crashes is reported with the faulting function, one that hangs is stopped
# after a timeout. This guest is told to dereference a bad pointer on
# purpose:

# %%
from minios_lab.notebook.text import crash_place
crashed = boot("crash=1")
print(crashed.outcome, "in", crash_place(crashed.crash))

# %% [markdown]
# ## Exercises
#
# 1. Boot the guest with a command line of your own, with at least two
#    `key=value` words, and check that the guest's report lists them.
# 2. Boot it with `memory_mb=32` and find the line that changed.
#
# <details><summary>Hint 1</summary>
#
# `boot()` takes the command line as its first argument and the memory size
# as `memory_mb=`.
# </details>
# <details><summary>Hint 2</summary>
#
# The report's `arg key = value` lines echo the command line; a page is
# 4 KiB, so 32 MiB is 8192 pages.
# </details>

# %%
### BEGIN SOLUTION
mine = boot("course=minios lab=00", memory_mb=32)
### END SOLUTION
assert mine.succeeded, mine.report()
assert "  arg course = minios" in mine.guest_lines
assert "  arg lab = 00" in mine.guest_lines
assert any(line.startswith("  nr_pages       8192") for line in mine.guest_lines)
print("check passed")

# %% [markdown]
# ## Your progress
#
# Each chapter's exercises are checked by graded checks (the same ones an
# instructor's `minios-lab grade` runs). This table shows which chapters pass
# in your copy of the kernel; `minios-lab progress` prints it in a terminal.

# %%
from minios_lab.classroom.grading import progress, progress_text
print(progress_text(progress()))

# %% [markdown]
# ## Further reading
#
# * Xen's public headers, `xen/xen.h`: the hypercall numbers and `start_info`.
# * The Xen Project wiki, "Mini-OS" and "X86 Paravirtualised Memory Management".
# * David Chisnall, *The Definitive Guide to the Xen Hypervisor* (2007),
#   chapters 2 and 3.
#
# Next: [01 · Start of day](01-start-of-day.ipynb).
