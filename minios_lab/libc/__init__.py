"""Python face of the kernel's minimal libc (kernel/lib/printf.c, string.c).

Two layers:

* ``sprintf(fmt, *args)`` formats with the *kernel's* ``snprintf``. C cannot
  tell what types its variadic arguments have, so this module reads the
  format first, exactly as ``kernel/lib/printf.c`` will, and gives each
  argument the C type its directive asks for (``%ld`` -> ``long``, ``%zu`` ->
  ``size_t``, ``%s`` -> ``char *``, a ``*`` width -> ``int``...). A Python
  value that does not fit raises ``TypeError`` or ``ValueError`` before any C
  runs, instead of the undefined behaviour C would give.
* Thin 1:1 wrappers of the string functions (``strlen``, ``strcmp``,
  ``memmove``...). Strings go in as ``bytes`` (or ``str``, encoded latin-1);
  the C function sees them up to their first NUL, as C would. Functions that
  write take a ``bytearray`` and offsets into it, and refuse to write past
  its end. Functions that return a pointer return an index, or ``None`` for
  NULL.

How C types are chosen for sprintf (``hh`` and ``h`` values travel as
``int``, as C's argument promotion does; the kernel narrows them):

==========  =============================================================
directive   C type of the argument, Python values accepted
==========  =============================================================
d i         int / long / long long / ssize_t (``z``): that type's range
u x X o     unsigned int / unsigned long / unsigned long long / size_t:
            from the signed minimum to the unsigned maximum; negative
            values wrap as C's conversion to unsigned does (``%x`` of -1)
c           int: an int, or a str/bytes of length 1
s           char *: bytes, str (latin-1) or None (prints "(null)")
p           void *: an int from 0 to 2**64-1, or None (prints "(nil)")
``*``       int, for a width or precision
==========  =============================================================

Directives printf.c does not know (``%k``, ``%Lf``...) are printed as written
and take no argument except for their ``*`` fields, just as in the kernel.

For comparison, ``glibc_sprintf()`` formats the same way with the host's C
library. The format reading lives in minios_lab.libc.format; the picture of
byte buffers (notebook 02's memmove) in minios_lab.viz.libc.
"""
from __future__ import annotations

import operator
from typing import Any, Callable

from minios_lab.build.units import load
from minios_lab.errors import checked_int
from minios_lab.libc.format import (KNOWN_CONVERSIONS, Directive, Text,  # noqa: F401
                                    MAX_BUFFER, _to_bytes, c_arguments,
                                    call_snprintf,
                                    directives, glibc_sprintf,
                                    glibc_sprintf_bytes, parse_format)


# --- the kernel's libc -------------------------------------------------------


class Libc:
    """The kernel's libc functions, called through a built ``libc`` unit."""

    def __init__(self, kernel: Any):
        self.kernel = kernel  # a KernelLib (or any object with .ffi)
        self.ffi = kernel.ffi

    @classmethod
    def load(cls, kernel_dir=None) -> "Libc":
        """Build (if needed) and load the libc unit from kernel_dir."""
        return cls(load("libc", kernel_dir=kernel_dir))

    # -- formatted output -----------------------------------------------------
    def sprintf_bytes(self, fmt: Text, *args: Any) -> bytes:
        """The kernel's snprintf output, as bytes (NULs from %c included)."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        return call_snprintf(self.kernel.snprintf, self.ffi, fmt, args)

    def sprintf(self, fmt: Text, *args: Any) -> str:
        """The kernel's snprintf output, decoded as latin-1."""
        __tracebackhide__ = True  # IPython: show the cell, not this
        return self.sprintf_bytes(fmt, *args).decode("latin-1")

    def snprintf(self, size: int, fmt: Text,
                 *args: Any) -> tuple[int, bytes]:
        """snprintf into a buffer of `size` bytes: (return value, buffer).

        Shows the truncation rules: the return value is the full length,
        the buffer holds at most size - 1 bytes and a NUL.
        """
        checked_int(size, "snprintf: size", 0, MAX_BUFFER,
                    " (a buffer Python makes)")
        raw = _to_bytes(fmt, "format")
        buf = self.ffi.new("char[]", max(size, 1))
        target = buf if size > 0 else self.ffi.NULL
        n = self.kernel.snprintf(target, size, self.ffi.new("char[]", raw),
                                 *c_arguments(self.ffi, raw, args))
        return n, self.ffi.unpack(buf, size)

    # -- string functions -----------------------------------------------------
    def _cstr(self, value: Text, what: str):
        return self.ffi.new("char[]", _to_bytes(value, what))

    def _index(self, result, base) -> int | None:
        return None if result == self.ffi.NULL else result - base

    def strlen(self, s: Text) -> int:
        return self.kernel.strlen(self._cstr(s, "strlen"))

    def strnlen(self, s: Text, maxlen: int) -> int:
        return self.kernel.strnlen(self._cstr(s, "strnlen"), maxlen)

    def strcmp(self, a: Text, b: Text) -> int:
        return self.kernel.strcmp(self._cstr(a, "strcmp"),
                                  self._cstr(b, "strcmp"))

    def strncmp(self, a: Text, b: Text, n: int) -> int:
        return self.kernel.strncmp(self._cstr(a, "strncmp"),
                                   self._cstr(b, "strncmp"), n)

    def memcmp(self, a: Text, b: Text, n: int) -> int:
        a, b = _to_bytes(a, "memcmp"), _to_bytes(b, "memcmp")
        if n > min(len(a), len(b)):
            raise ValueError(f"memcmp: n={n} is beyond the end of an operand")
        return self.kernel.memcmp(self._cstr(a, "memcmp"),
                                  self._cstr(b, "memcmp"), n)

    def strchr(self, s: Text, c: int | Text) -> int | None:
        """Index of the first c in s (the NUL at the end counts), or None."""
        cs = self._cstr(s, "strchr")
        return self._index(self.kernel.strchr(cs, _char_code(c)), cs)

    def strrchr(self, s: Text, c: int | Text) -> int | None:
        cs = self._cstr(s, "strrchr")
        return self._index(self.kernel.strrchr(cs, _char_code(c)), cs)

    def strstr(self, haystack: Text, needle: Text) -> int | None:
        hs = self._cstr(haystack, "strstr")
        found = self.kernel.strstr(hs, self._cstr(needle, "strstr"))
        return self._index(found, hs)

    def strtoul(self, s: Text, base: int = 10) -> tuple[int, int]:
        """(value, bytes consumed); consumed is 0 when nothing was parsed."""
        cs = self._cstr(s, "strtoul")
        end = self.ffi.new("char **")
        value = self.kernel.strtoul(cs, end, base)
        return value, end[0] - cs

    # -- functions that write into a bytearray --------------------------------
    def _target(self, buf: bytearray, offset: int, count: int, what: str):
        if not isinstance(buf, bytearray):
            raise TypeError(f"{what}: the destination must be a bytearray")
        if offset < 0 or count < 0 or offset + count > len(buf):
            raise ValueError(f"{what}: writing {count} bytes at offset "
                             f"{offset} overflows a buffer of {len(buf)}")
        return self.ffi.from_buffer("char[]", buf) + offset

    def memmove(self, buf: bytearray, dst_off: int, src_off: int,
                n: int) -> None:
        """Move n bytes inside buf from src_off to dst_off (may overlap)."""
        dst = self._target(buf, dst_off, n, "memmove")
        src = self._target(buf, src_off, n, "memmove (source)")
        self.kernel.memmove(dst, src, n)

    def memcpy(self, buf: bytearray, dst_off: int, src: Text) -> None:
        """Copy all of src into buf at dst_off."""
        data = _to_bytes(src, "memcpy")
        dst = self._target(buf, dst_off, len(data), "memcpy")
        self.kernel.memcpy(dst, self._cstr(data, "memcpy"), len(data))

    def memset(self, buf: bytearray, offset: int, c: int, n: int) -> None:
        self.kernel.memset(self._target(buf, offset, n, "memset"), c, n)

    def strcpy(self, buf: bytearray, dst_off: int, src: Text) -> None:
        """Copy src up to and including its NUL into buf at dst_off."""
        data = _to_bytes(src, "strcpy")
        count = len(data.split(b"\0", 1)[0]) + 1
        dst = self._target(buf, dst_off, count, "strcpy")
        self.kernel.strcpy(dst, self._cstr(data, "strcpy"))

    def strncpy(self, buf: bytearray, dst_off: int, src: Text,
                n: int) -> None:
        """Exactly n bytes into buf at dst_off: src, then NUL padding."""
        dst = self._target(buf, dst_off, n, "strncpy")
        self.kernel.strncpy(dst, self._cstr(src, "strncpy"), n)


def _char_code(c: int | Text) -> int:
    if isinstance(c, (str, bytes, bytearray)):
        if len(c) != 1:
            raise ValueError(f"expected one character, got {c!r}")
        return _to_bytes(c, "character")[0]
    return operator.index(c)


# --- module-level shortcuts on the kernel's own tree -------------------------

_default: Libc | None = None


def default() -> Libc:
    """The Libc of kernel/, built on first use."""
    global _default
    if _default is None:
        _default = Libc.load()
    return _default


def sprintf(fmt: Text, *args: Any) -> str:
    """Format like C, with the kernel's snprintf; returns a str (latin-1)."""
    __tracebackhide__ = True
    return default().sprintf(fmt, *args)


def sprintf_bytes(fmt: Text, *args: Any) -> bytes:
    """Format like C, with the kernel's snprintf; returns bytes."""
    __tracebackhide__ = True
    return default().sprintf_bytes(fmt, *args)


def _shortcut(name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        __tracebackhide__ = True
        return getattr(default(), name)(*args)
    call.__name__ = name
    call.__doc__ = getattr(Libc, name).__doc__
    return call


strlen = _shortcut("strlen")
strnlen = _shortcut("strnlen")
strcmp = _shortcut("strcmp")
strncmp = _shortcut("strncmp")
memcmp = _shortcut("memcmp")
strchr = _shortcut("strchr")
strrchr = _shortcut("strrchr")
strstr = _shortcut("strstr")
strtoul = _shortcut("strtoul")
memmove = _shortcut("memmove")
memcpy = _shortcut("memcpy")
memset = _shortcut("memset")
strcpy = _shortcut("strcpy")
strncpy = _shortcut("strncpy")
