# %% [markdown]
# # 01 · Start of day
#
# **What you will do.** Read the `start_info` page that Xen gives a PV
# guest, fill one yourself in Python (playing Xen), run the kernel's real
# parser on it, feed it bad pages, and compare with what real Xen handed
# the guest in a real boot.
#
# **What you will learn.** How a PV guest starts with no firmware and no
# boot loader; what `start_info` holds; why pseudo-physical and machine
# frames differ; how a kernel should treat its very first input.
#
# **What you need.** Chapter 00.
#
# ## What Xen hands the guest
#
# Xen builds a PV domain itself. It loads our ELF image at the virtual
# address its notes ask for, maps it with initial page tables, puts a stack
# after it, and enters the kernel in 64-bit mode with `%rsi` pointing at a
# `start_info` page. Its layout comes from Xen's public header:

# %%
from minios_lab.notebook.source import show, show_xen
show_xen("xen.h", "start_info")

# %% [markdown]
# Two kinds of address meet here. `pt_base`, `mfn_list` and `mod_start` are
# *virtual* addresses the guest can use at once. `shared_info` is a
# *machine* address: the guest must map it before use (chapter 07). The
# guest sees its memory as pages `0 .. nr_pages-1` (*pseudo-physical* frame
# numbers, pfns), while the real frames (*machine* frame numbers, mfns) are
# scattered; `mfn_list` is the table from one to the other.
#
# ## The kernel's parser
#
# `parse_start_info()` trusts nothing: it checks the magic string, bounds
# the numbers, insists that the command line ends with a NUL, then splits
# it into `key=value` words.

# %%
show("start_of_day.c", "parse_start_info")

# %% [markdown]
# In this notebook Python plays Xen. `make_start_info()` fills a real
# `start_info_t` (its layout taken from the header above) with the values
# that Xen gave this kit's guest in a 64 MiB boot:

# %%
from minios_lab.start_of_day import StartOfDay
sod = StartOfDay()
si = sod.make_start_info("ticks=3000 name=lab verbose")
sod.parse(si)

# %% [markdown]
# A word with no `=` counts as `=1`. The kernel prints its report through
# the console hypercall, which Python serves here:

# %%
print(sod.report(si))

# %%
calls = sod.kernel.hypervisor.calls
print(calls[0].name, calls[0].args[:2])
print(len(calls), "calls for", len(sod.report(si).splitlines()), "lines;",
      "all console_io(CONSOLEIO_write, ...):",
      all(c.name == "console_io" and c.args[0] == 0 for c in calls))

# %% [markdown]
# Each line was one `console_io(CONSOLEIO_write, length, text)` hypercall
# (`CONSOLEIO_write` is 0): the first line, `start_info: magic
# xen-3.0-x86_64` and its newline, is 33 bytes. (The lengths of the lines
# holding host addresses differ from machine to machine, so only the first
# is shown.)
#
# ## Bad pages
#
# What if the page is not what the kernel expects? The parser refuses it
# with a reason, and nothing is lost:

# %%
from minios_lab.start_of_day import StartInfoError
for bad in [dict(magic=b"xen-3.0-x86_32p"), dict(nr_pages=0),
            dict(cmd_line=b"x" * 1024)]:
    try:
        sod.parse(sod.make_start_info(**bad))
    except StartInfoError as error:
        print(f"{list(bad)[0]:10} -> {error}")

# %% [markdown]
# `start_of_day()` in the guest cannot go on without a good page, so it
# panics. In the host build the panic comes back as a Python exception,
# `KernelPanic`, with the kernel's file and line; this notebook keeps
# running:

# %% tags=["raises-exception"]
sod.kernel.start_of_day(sod.make_start_info(magic=b"not a start_info page"))

# %% [markdown]
# ## The real thing
#
# Now the same code in the guest, booted on Xen. The report is read back
# into a dictionary:

# %%
from minios_lab.guest.boot import boot
from minios_lab.start_of_day import parse_report
result = boot("ticks=3000 name=lab verbose")
real = parse_report(result.guest_lines)
real

# %% [markdown]
# Xen placed everything just after our kernel image: the p2m list, the
# `start_info` page, the page tables it built for us. (`first_p2m_pfn` and
# `nr_p2m_frames` describe a p2m list that Xen maps in an area of its own,
# away from the kernel. It does so only when the kernel asks for it, with
# the `XEN_ELFNOTE_INIT_P2M` note giving the virtual address it wants, as
# Linux does so that a large guest's p2m list need not fit in the initial
# mapping. Our kernel has no such note, so the p2m list is in the initial
# mapping, at `mfn_list`, and `nr_p2m_frames` is 0.)

# %%
from minios_lab.start_of_day import boot_layout, symbol_address
from minios_lab.viz import plot_regions
image_end = symbol_address("../kernel/build/minios.elf", "_end")
fig = plot_regions(boot_layout(real, image_end), "the guest's first virtual addresses")

# %% [markdown]
# ## Exercises
#
# 1. **Command line round trip.** Build a `start_info` whose command line is
#    `tick_us=500 ticks=10 name=you`, parse it with the kernel, and store the
#    parsed words in `words`.
# 2. **Memory size.** Xen gives dom0 exactly the memory asked for with
#    `dom0_mem`. Boot with `memory_mb=32` and store the guest's `nr_pages`
#    in `pages_32`.
# 3. *(C)* `boot_arg_ulong()` accepts `0x` hexadecimal values. Read it in
#    `kernel/start_of_day.c` and explain what it does with `ticks=12x`.
#
# <details><summary>Hint 1</summary>
#
# `sod.make_start_info(cmd_line)` builds the page and `sod.parse(si)` returns
# a `BootInfo` whose `.args` is a dictionary.
# </details>
# <details><summary>Hint 2</summary>
#
# `parse_report(boot("", memory_mb=32).guest_lines)` reads the guest's
# report back into a dictionary.
# </details>
# <details><summary>Hint 3 (for the C question)</summary>
#
# `strtoul()` stops at the first character that is not a digit and tells
# where through its `end` pointer; look at what `boot_arg_ulong()` does when
# `*end` is not the end of the string.
# </details>

# %%
### BEGIN SOLUTION
words = sod.parse(sod.make_start_info("tick_us=500 ticks=10 name=you")).args
### END SOLUTION
assert words == {"tick_us": "500", "ticks": "10", "name": "you"}, \
    f"the kernel parsed {words!r}"
print("check passed")

# %%
### BEGIN SOLUTION
pages_32 = parse_report(boot("", memory_mb=32).guest_lines)["nr_pages"]
### END SOLUTION
assert pages_32 == 32 * 1024 * 1024 // 4096, \
    f"32 MiB is 8192 pages of 4 KiB, not {pages_32}"
print("check passed")

# %% [markdown]
# <details><summary>Answer (3)</summary>
#
# `strtoul("12x", &end, 0)` reads `12` and stops at the `x`, so `end`
# points at `"x"`, not at the end of the string. `boot_arg_ulong()` accepts
# a number only when the whole value was read (`*end == '\0'`) and the
# value was not empty, so for `ticks=12x` it returns the fallback, as if
# `ticks` had not been given: a half-read number is refused, never taken
# as 12.
# </details>

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/start_of_day.c`, are `start-info-checks`, `cmdline-words`:
# the code between `BEGIN` and `END` markers that your own copy (made by
# `minios-lab start`, see chapter 00) leaves for you to write. For each
# region, its task comes first: what to write, the difficulty, the points
# and what the grader checks. The cell after it runs that region's graded
# checks (the ones `make grade` runs) on your kernel, host build and real
# boot, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("start-info-checks")

# %%
check_region("start-info-checks")

# %%
show_task("cmdline-words")

# %%
check_region("cmdline-words")

# %% [markdown]
# ## Further reading
#
# * `xen/xen.h`, the comment above `struct start_info`, and `xen/elfnote.h`.
# * The Xen Project wiki, "X86 Paravirtualised Memory Management":
#   pseudo-physical memory and the p2m/m2p tables.

# %% [markdown]
# ## What you learned
#
# * A PV guest starts with no firmware and no boot loader: Xen loads the
#   ELF image where its notes say, builds the first page tables, and enters
#   the kernel with `%rsi` pointing at `start_info`.
# * `start_info` gives the memory size (`nr_pages`), the machine address
#   of `shared_info`, the bootstrap page tables, the p2m list (`mfn_list`)
#   and the command line.
# * A guest's memory is pseudo-physical: pfns `0 .. nr_pages-1`, mapped to
#   scattered machine frames (mfns) by the p2m list.
# * A kernel checks its first input like any other: bad pages are refused
#   with a reason, and in the host build a panic is a Python exception.
#
# Chapter 02 builds on the console hypercall you saw here: before the
# kernel can print a report, it needs its own `snprintf`, with no C
# library under it.
#
# Next: [02 · A minimal libc](02-minimal-libc.ipynb).
