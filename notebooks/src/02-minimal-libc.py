# %% [markdown]
# # 02 · A minimal libc
#
# **What you will do.** Read the kernel's own `snprintf()` and string
# functions, call them from Python, compare them byte for byte with the C
# library of the machine you are sitting at, and poke at the corners where
# C's formatting rules surprise people.
#
# **What you will learn.** Why a kernel carries its own small libc; how
# `printf` reads its variadic arguments and why the format alone decides
# their types; the exact meaning of `snprintf`'s return value; why
# `memmove` exists next to `memcpy`; how `strtoul` reports what it read.
#
# **What you need.** Chapter 00. Some C.
#
# ## No C library under a kernel
#
# A PV guest runs on Xen with nothing beneath it: no glibc, no system
# calls, no `malloc`. Whatever the kernel needs from "the C library" it
# must bring itself. Mini-OS, like Linux, has its own `printk`,
# `vsnprintf`, `memcpy` and friends. Ours are in `kernel/lib/`. The console
# is their first user: `vprintk()` formats into a stack buffer and hands
# the text to Xen.

# %%
from minios_lab.notebook.source import file_comment, show
show("console.c", "vprintk")

# %% [markdown]
# The design of the formatter, in the words of its own file:

# %%
print(file_comment("lib/printf.c"))

# %% [markdown]
# ## Calling the kernel's snprintf
#
# `minios_lab.libc` builds `kernel/lib/*.c` into a Python extension (inside
# it, the kernel's functions are renamed `minios_snprintf`,
# `minios_strlen`, ... so that they never mix with the C library that
# Python itself uses). `sprintf()` calls the kernel's `snprintf` twice:
# once with size 0 to learn the length, then with a buffer just big enough.

# %%
from minios_lab import libc
from minios_lab.viz import libc as viz_libc
k = libc.Libc.load()
k.sprintf("[%5d] [%-5d] [%05d] [%+d] [%x] [%#o] [%s] [%p]",
          42, 42, 42, 42, 255, 8, "text", 0x1000)

# %% [markdown]
# C's `printf` cannot see the types of its arguments: after the format, it
# pulls raw values off the argument list with `va_arg(ap, T)`, and **the
# format alone** says what `T` is. Here is the parser that reads one
# directive; a `*` width takes an `int` argument right there.

# %%
show("lib/printf.c", "parse_spec")

# %% [markdown]
# Passing a `long` where the format says `int` is undefined behaviour in C.
# Python can do better: `minios_lab.libc` parses the format first, as the
# kernel will, and gives each Python value the C type its directive asks
# for, refusing what does not fit before any C runs.

# %%
from minios_lab.libc import directives
for d in directives("%-08.3lx %*d %hhu %zd %s %c %%"):
    print(f"{d.text:10} flags={d.flags!r:6} width={d.width!r:5} "
          f"precision={d.precision!r:6} length={d.length!r:5} "
          f"-> {d.argument_type()}")

# %% tags=["raises-exception"]
k.sprintf("%d apples", "42")

# %% [markdown]
# ## The same output as glibc, byte for byte
#
# The kit's tests generate thousands of random formats and compare the
# kernel with glibc. Here are the corners that most often catch people:
# precision 0 with the value 0 prints no digit at all; `#` asks octal for a
# leading 0 but gives hexadecimal 0 no `0x`; `hh` narrows the `int` it
# receives to a `char`; NULL strings and pointers get glibc's spellings.

# %%
cases = [("[%.0d]", 0), ("[%#.0o]", 0), ("[%#x]", 0), ("[%#x]", 255),
         ("[%hhd]", 300), ("[%u]", -1), ("[%08.3d]", -5), ("[%-+6d]", 7),
         ("[% d]", 7), ("[%.3s]", "abcdef"), ("[%s]", None), ("[%.3s]", None),
         ("[%p]", None), ("[%+p]", 1), ("[%05s]", "ab"), ("[%*d]", -4, 1)]
for fmt, *args in cases:
    ours, theirs = k.sprintf(fmt, *args), libc.glibc_sprintf(fmt, *args)
    print(f"{fmt:10} {str(args):12} kernel {ours:12} glibc {theirs:12}"
          f" {'same' if ours == theirs else 'DIFFERENT'}")

# %% [markdown]
# How a number is laid out: `[sign] [0x] [zeros] [digits]`, with the field
# padding on the left, on the right (`-`), or folded into the zeros (`0`,
# only without a precision, which is why `%08.3d` pads with spaces):

# %%
show("lib/printf.c", "out_number")

# %% [markdown]
# Where the kernel and glibc part ways on purpose: a conversion the kernel
# does not know is copied as written (glibc re-spells it, or gives up and
# returns -1, which `glibc_sprintf` turns into a `ValueError`).

# %%
for fmt in ["%k", "%-5.3k", "%lk", "100%"]:
    try:
        theirs = repr(libc.glibc_sprintf(fmt))
    except ValueError as error:
        theirs = str(error)
    print(f"{fmt:8} kernel {k.sprintf(fmt)!r:10} glibc {theirs}")

# %% [markdown]
# ## What snprintf returns
#
# `snprintf(buf, size, ...)` never writes more than `size` bytes, and
# always ends what it wrote with a NUL when `size > 0`. Yet it returns the
# length the *whole* output would have had. So a short buffer is detected
# by `return value >= size`, and size 0 is a legitimate way to ask "how
# long would it be?". The output helper counts every byte but stores only
# those that fit:

# %%
show("lib/printf.c", "out_storable")

# %%
show("lib/printf.c", "out_bytes")

# %%
for size in [0, 1, 4, 9, 12]:
    n, buf = k.snprintf(size, "hello %d", 42)
    print(f"size {size:2}: returns {n}, buffer {buf!r}")

# %% [markdown]
# `%c` of 0 writes a real NUL byte, and it counts: the output below is three
# bytes long, though C's `strlen` would see only one.

# %%
out = k.sprintf_bytes("a%cb", 0)
out, len(out), k.strlen(out)

# %% [markdown]
# ## memmove and memcpy
#
# Both copy `n` bytes. `memcpy` may assume that source and destination do
# not overlap; `memmove` may not. The kernel's `memcpy` is a plain forward
# loop, so copying a buffer onto itself two bytes further on reads bytes it
# has just written. `memmove` checks which way round the buffers are and
# copies backwards when the destination is above the source:

# %%
show("lib/string.c", "memmove")

# %%
before = bytearray(b"0123456789")
moved = bytearray(before)
k.memmove(moved, 2, 0, 5)             # the Python face: offsets in a bytearray
smeared = bytearray(before)
p = k.ffi.from_buffer("char[]", smeared)
k.kernel.memcpy(p + 2, p, 5)          # the raw C call, overlap and all
fig = viz_libc.plot_buffers([("before", before), ("memmove(2, 0, 5)", moved),
                              ("memcpy (forward loop)", smeared)],
                             source=range(0, 5), dest=range(2, 7),
                             title="copying bytes 0..4 to 2..6 in one buffer")

# %% [markdown]
# C leaves an overlapping `memcpy` undefined: glibc's may copy in any
# order, in any block size. Only `memmove` promises the result in the
# middle row.
#
# ## strtoul: a value and how far it read
#
# `strtoul` skips white space, takes a sign, a `0x` prefix when the base
# allows one, then digits up to the first byte that is not a digit. It
# reports where it stopped through its end pointer; the Python face
# returns that as a count. Nothing parsed means a count of 0, even after
# white space.

# %%
for s, base in [("  42 apples", 10), ("0x1f", 0), ("017", 0), ("0xg", 16),
                ("zz", 36), ("-1", 10), ("99999999999999999999", 10),
                ("   ", 10)]:
    print(f"{s!r:24} base {base:2} -> {k.strtoul(s, base)}")

# %% [markdown]
# `-1` gives 2**64 - 1: C negates in unsigned arithmetic. A number too big
# for `unsigned long` gives `ULONG_MAX`, but the end pointer still goes past
# all its digits.
#
# ## Exercises
#
# 1. **A hex dump line.** With the kernel's `sprintf`, format the address
#    `0x2a` as eight hex digits with leading zeros, then `": "`, then the
#    bytes `0xff` and `0x0` as two hex digits each, separated by a space.
#    Store the text in `line`.
# 2. **Ask first.** Without any buffer, find how many bytes
#    `"%-20s|%5d"` needs for `"name"` and `7` (not counting the NUL). Store
#    it in `needed`.
# 3. **Read a number.** Parse `"  0x1Fzz"` with base 0 and store the
#    `(value, consumed)` pair in `parsed`.
# 4. *(C)* Read `make_zeros()` in `kernel/lib/printf.c`. Why does `%#.0o`
#    of 0 print `0` while `%#.0x` of 0 prints nothing?
#
# <details><summary>Hint 1</summary>
#
# `%08x` pads with zeros to eight digits; `%02x` gives two. `sprintf` from `minios_lab.libc` takes the format and the values.
# </details>
#
# <details><summary>Hint 2</summary>
#
# snprintf with size 0 writes nothing and returns the length it would have written: `Libc.snprintf(0, fmt, ...)` shows it.
# </details>
#
# <details><summary>Hint 3</summary>
#
# `strtoul` with base 0 reads a `0x` prefix as hexadecimal and stops at the first character that is not a hex digit; `consumed` counts the spaces too.
# </details>

# %%
### BEGIN SOLUTION
line = k.sprintf("%08x: %02x %02x", 0x2A, 0xFF, 0x0)
### END SOLUTION
assert line == "0000002a: ff 00", f"got {line!r}, want '0000002a: ff 00'"
print("check passed")

# %%
### BEGIN SOLUTION
needed = k.snprintf(0, "%-20s|%5d", "name", 7)[0]
### END SOLUTION
assert needed == 26, f"got {needed}: 20 for the name, 1 for '|', 5 for the number"
print("check passed")

# %%
### BEGIN SOLUTION
parsed = k.strtoul("  0x1Fzz", 0)
### END SOLUTION
assert parsed == (31, 6), f"got {parsed}: 0x1F is 31, and the spaces count"
print("check passed")

# %% [markdown]
# <details><summary>Answer (4)</summary>
#
# The value 0 with precision 0 has no digits at all: C says that
# converting 0 with an explicit precision of 0 prints no characters. For
# `%#x` the `#` flag only adds the `0x` prefix to a *non-zero* value, so
# `%#.0x` of 0 prints nothing. For `%#o` the `#` flag means "the first digit
# is a 0": `make_zeros()` adds one zero when the precision did not already
# give one and the digits do not start with `0`, which is the case when
# there are no digits. So `%#.0o` of 0 prints `0`. Both match glibc, and
# the tests compare them byte for byte.
# </details>

# %% [markdown]
# ## Check your kernel
#
# The exercise regions of this chapter, in `kernel/lib/string.c`, are `strstr-search`, `memmove-overlap`:
# the code between `BEGIN` and `END` markers that your own copy (made by
# `minios-lab start`, see chapter 00) leaves for you to write. For each
# region, its task comes first: what to write, the difficulty, the points
# and what the grader checks. The cell after it runs that region's graded
# checks (the ones `make grade` runs) on your kernel, host build and real
# boot, and prints GOOD or BAD.

# %%
from minios_lab.classroom.grading import check_region
from minios_lab.classroom.tasks import show_task
show_task("strstr-search")

# %%
check_region("strstr-search")

# %%
show_task("memmove-overlap")

# %%
check_region("memmove-overlap")

# %% [markdown]
# ## Further reading
#
# * ISO C99, 7.19.6.1 (`fprintf`: flags, width, precision, conversions)
#   and 7.20.1.4 (`strtoul`).
# * `man 3 printf` on a Linux machine: glibc's reading of the standard,
#   including `(nil)` and `(null)`.
# * Mini-OS's `lib/printf.c` and `lib/string.c`, which this kernel's files
#   play the part of.

# %% [markdown]
# ## What you learned
#
# * A kernel has no C library: `printf`, `memmove`, `strstr`, `strtoul` are
#   its own, in `kernel/lib/`, and every line it prints goes out through a
#   hypercall.
# * `snprintf` never writes past its buffer and returns the length it
#   *would* have written, so a caller can ask first, then allocate.
# * `memmove` must copy overlapping ranges in the right direction;
#   `memcpy` need not.
# * `strtoul` says how far it read, which is how a caller refuses `12x`.
# * The same C is compared with glibc, byte for byte, on random formats.
#
# Chapter 03 goes from strings to memory: it manages the pages that
# `start_info` said the guest has, and sets up its bitmap with the
# kernel's own `memset`.
#
# Next: [03 · The page allocator](03-page-allocator.ipynb).
