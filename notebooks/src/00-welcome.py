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
# hardware virtualization. It runs in ring 3, so it cannot load the
# interrupt table or write its page tables itself: it asks Xen, through
# *hypercalls*. Nor does it touch the CPU's interrupt flag: to hold off
# Xen's virtual interrupts (events) it sets `evtchn_upcall_mask`, a byte in
# the `shared_info` page that it shares with Xen, which Xen reads before it
# delivers an event (chapter 07). This kit contains its own small kernel in
# the same shape, in `kernel/`, and one notebook per subsystem:
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
# ## Learning alone: make your own copy first
#
# This folder is the *reference* tree: every exercise is already solved in
# it. To take the course, make your own copy with the answers taken out,
# and work there. In a terminal, in this folder:
#
# ```
# .venv/bin/minios-lab start ../my-minios-lab
# cd ../my-minios-lab
# make lab
# ```
#
# `minios-lab start` copies the kit, replaces the code of every exercise
# region with a stub marked `TODO(id)` and its task statement, and makes
# the copy a git repository of its own, so you can commit as you go. `make
# lab` in the copy sets up the copy's own environment and opens *its*
# notebooks: from then on every notebook builds and boots the copy's
# kernel, the one you edit. When you think a chapter works, grade it in
# the copy, as an instructor would:
#
# ```
# make grade-03     # one chapter
# make grade        # every chapter
# ```
#
# `minios-lab tasks` lists every exercise with its statement, difficulty
# and points; each chapter's notebook shows its tasks before their check
# cells.
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
# 2. Boot it with `memory_mb=32`, store the result in `small`, and find the
#    line of the report that changed.
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

# %% [markdown]
# Exercise 1: your own command line. Put your words in the dictionary
# `my_words` and the boot in `mine`.

# %%
### BEGIN SOLUTION
my_words = {"course": "minios", "lab": "00"}
mine = boot(" ".join(f"{key}={value}" for key, value in my_words.items()))
### END SOLUTION
assert len(my_words) >= 2, "use at least two key=value words"
assert mine.succeeded, mine.report()
missing = [key for key, value in my_words.items()
           if f"  arg {key} = {value}" not in mine.guest_lines]
assert not missing, f"the guest's report does not list {missing}"
print("check passed")

# %% [markdown]
# Exercise 2: 32 MiB. Store the boot in `small`.

# %%
### BEGIN SOLUTION
small = boot("", memory_mb=32)
### END SOLUTION
assert small.succeeded, small.report()
assert any(line.startswith("  nr_pages       8192") for line in small.guest_lines), \
    "with 32 MiB the guest should report nr_pages 8192 (32 MiB / 4 KiB)"
print("check passed")

# %% [markdown]
# ## Your progress
#
# Each chapter's exercises are checked by graded checks (the same ones an
# instructor's `minios-lab grade` runs). This table shows which chapters pass
# in the tree the notebook runs in; `minios-lab progress` prints it in a
# terminal. Stored here, in the reference tree, it shows every chapter
# done, because every answer is in place. In your own copy (made by
# `minios-lab start`) it starts with every chapter at zero, and fills up as
# you write the exercises.

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
