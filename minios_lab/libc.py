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
library; ``plot_buffers()`` draws byte buffers (for notebook 02's memmove).
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence, Union

Text = Union[bytes, bytearray, str]

# flags, width, precision, length modifier, conversion: as parse_spec() reads
_DIRECTIVE = re.compile(
    rb"%(?P<flags>[-0+ #]*)(?P<width>\*|[0-9]*)(?:\.(?P<precision>\*|[0-9]*))?"
    rb"(?P<length>hh|h|ll|l|z)?(?P<conversion>.?)", re.DOTALL)

_SIGNED_TYPES = {"": "int", "hh": "int", "h": "int", "l": "long",
                 "ll": "long long", "z": "ssize_t"}
_UNSIGNED_TYPES = {"": "unsigned int", "hh": "unsigned int",
                   "h": "unsigned int", "l": "unsigned long",
                   "ll": "unsigned long long", "z": "size_t"}
KNOWN_CONVERSIONS = "diuxXocsp%"


@dataclass(frozen=True)
class Directive:
    """One ``%...`` directive of a format, split as printf.c splits it."""

    text: str            # as written, e.g. "%-08.3lx"
    flags: str
    width: str           # "", digits or "*"
    precision: str | None  # None without a '.'; else "", digits or "*"
    length: str          # "", "hh", "h", "l", "ll" or "z"
    conversion: str      # one character; "" if the format ended

    @property
    def star_count(self) -> int:
        """How many int arguments the '*' fields take."""
        return (self.width == "*") + (self.precision == "*")

    def argument_type(self) -> str | None:
        """The C type of the value argument, or None if it takes none."""
        conv = self.conversion
        if conv and conv in "di":
            return _SIGNED_TYPES[self.length]
        if conv and conv in "uxXo":
            return _UNSIGNED_TYPES[self.length]
        return {"c": "int", "s": "char *", "p": "void *"}.get(conv)


def _to_bytes(value: Text, what: str) -> bytes:
    __tracebackhide__ = True
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{what}: {value!r} has characters outside "
                             "latin-1; pass bytes instead") from None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"{what}: expected bytes or str, got "
                    f"{type(value).__name__}")


def parse_format(fmt: Text) -> list[bytes | Directive]:
    """Split a format into text and directives, up to its first NUL."""
    raw = _to_bytes(fmt, "format").split(b"\0", 1)[0]
    parts: list[bytes | Directive] = []
    pos = 0
    while (start := raw.find(b"%", pos)) >= 0:
        if start > pos:
            parts.append(raw[pos:start])
        m = _DIRECTIVE.match(raw, start)
        g = {k: (v.decode("latin-1") if v is not None else None)
             for k, v in m.groupdict().items()}
        parts.append(Directive(m.group(0).decode("latin-1"), g["flags"],
                               g["width"], g["precision"], g["length"] or "",
                               g["conversion"]))
        pos = m.end()
    if pos < len(raw):
        parts.append(raw[pos:])
    return parts


def directives(fmt: Text) -> list[Directive]:
    """The directives of a format, in order."""
    return [p for p in parse_format(fmt) if isinstance(p, Directive)]


# --- turning Python values into C arguments ----------------------------------

def _integer(value: Any, where: str) -> int:
    __tracebackhide__ = True
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise TypeError(f"{where} needs an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{where} needs an integer, got "
                        f"{type(value).__name__}") from None


def _check_range(value: int, low: int, high: int, where: str,
                 ctype: str) -> int:
    __tracebackhide__ = True
    if not low <= value <= high:
        raise ValueError(f"{where}: {value} does not fit in {ctype} "
                         f"({low}..{high})")
    return value


def _int_argument(ffi, value: Any, ctype: str, where: str, signed: bool):
    __tracebackhide__ = True
    number = _integer(value, where)
    bits = 8 * ffi.sizeof(ctype)
    high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    _check_range(number, -(1 << (bits - 1)), high, where, ctype)
    return ffi.cast(ctype, number)  # wraps modulo 2**bits, as C converts


def _char_argument(ffi, value: Any, where: str):
    __tracebackhide__ = True
    if isinstance(value, (str, bytes, bytearray)):
        if len(value) != 1:
            raise ValueError(f"{where} needs one character, got {value!r}")
        value = _to_bytes(value, where)[0]
    return _int_argument(ffi, value, "int", where, signed=True)


def _pointer_argument(ffi, value: Any, where: str):
    __tracebackhide__ = True
    if value is None:
        return ffi.NULL
    number = _integer(value, where)
    _check_range(number, 0, (1 << (8 * ffi.sizeof("void *"))) - 1, where,
                 "void *")
    return ffi.cast("void *", number)


def _value_argument(ffi, directive: Directive, value: Any, where: str):
    __tracebackhide__ = True
    ctype = directive.argument_type()
    if ctype == "char *":
        if value is None:
            return ffi.NULL
        return ffi.new("char[]", _to_bytes(value, where))
    if ctype == "void *":
        return _pointer_argument(ffi, value, where)
    if directive.conversion == "c":
        return _char_argument(ffi, value, where)
    return _int_argument(ffi, value, ctype, where,
                         signed=directive.conversion in "di")


def c_arguments(ffi, fmt: Text, args: Sequence[Any]) -> list:
    """The cdata arguments for snprintf(buf, size, fmt, ...), type-checked."""
    __tracebackhide__ = True
    out, queue = [], list(args)

    def take(where: str) -> Any:
        __tracebackhide__ = True
        if not queue:
            raise TypeError(f"not enough arguments for format: {where} "
                            f"has none ({len(args)} given)")
        return queue.pop(0)

    for n, d in enumerate(directives(fmt), 1):
        for field in ("width", "precision"):
            if getattr(d, field) == "*":
                where = f"the '*' {field} of directive {n} ({d.text})"
                out.append(_int_argument(ffi, take(where), "int", where,
                                         signed=True))
        if d.argument_type() is not None:
            where = f"directive {n} ({d.text})"
            out.append(_value_argument(ffi, d, take(where), where))
    if queue:
        raise TypeError(f"not all arguments converted: {len(queue)} "
                        f"left over of {len(args)}")
    return out


def call_snprintf(snprintf: Callable[..., int], ffi, fmt: Text,
                  args: Sequence[Any]) -> bytes:
    """Format with any C snprintf (the kernel's, or glibc's for comparison).

    Called twice: with size 0 to learn the length, then with room for it.
    """
    __tracebackhide__ = True
    raw = _to_bytes(fmt, "format")
    c_fmt = ffi.new("char[]", raw)
    c_args = c_arguments(ffi, raw, args)
    length = snprintf(ffi.NULL, 0, c_fmt, *c_args)
    if length < 0:
        raise ValueError(f"snprintf returned {length}: the format was "
                         "refused, or the output is longer than INT_MAX")
    buf = ffi.new("char[]", length + 1)
    written = snprintf(buf, length + 1, c_fmt, *c_args)
    if written != length:
        raise RuntimeError(f"snprintf returned {length}, then {written}")
    return ffi.unpack(buf, length)


# --- the host's glibc, for comparison ----------------------------------------

_GLIBC_CDEF = "int snprintf(char *buf, size_t size, const char *fmt, ...);"


@lru_cache(maxsize=None)
def _glibc() -> tuple[Any, Any]:
    import cffi
    ffi = cffi.FFI()
    ffi.cdef(_GLIBC_CDEF)
    return ffi, ffi.dlopen(None)  # the C library this Python runs on


def glibc_sprintf_bytes(fmt: Text, *args: Any) -> bytes:
    """The same formatting done by the host's C library (glibc), as bytes.

    Arguments get exactly the C types the kernel's sprintf gives them, so
    the two outputs can be compared byte for byte.
    """
    ffi, glibc = _glibc()
    return call_snprintf(glibc.snprintf, ffi, fmt, args)


def glibc_sprintf(fmt: Text, *args: Any) -> str:
    return glibc_sprintf_bytes(fmt, *args).decode("latin-1")


# --- the kernel's libc -------------------------------------------------------

MAX_BUFFER = 1 << 24   # the largest buffer snprintf() makes for a test


class Libc:
    """The kernel's libc functions, called through a built ``libc`` unit."""

    def __init__(self, kernel: Any):
        self.kernel = kernel  # a KernelLib (or any object with .ffi)
        self.ffi = kernel.ffi

    @classmethod
    def load(cls, kernel_dir=None) -> "Libc":
        """Build (if needed) and load the libc unit from kernel_dir."""
        from minios_lab.build.cbuild import load
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
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"snprintf: size must be an integer, not "
                            f"{type(size).__name__}")
        if not 0 <= size <= MAX_BUFFER:
            raise ValueError(f"snprintf: size must be 0 .. {MAX_BUFFER} "
                             f"(a buffer Python makes), not {size}")
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


# --- a picture of buffers ----------------------------------------------------

def plot_buffers(rows: Sequence[tuple[str, Text]],
                 source: range = range(0), dest: range = range(0),
                 title: str = ""):
    """One row of byte cells per (label, buffer), for showing a copy.

    The first row is the buffer before, with the `source` cells shaded
    blue; the next rows are results, with the `dest` cells shaded orange.
    Returns a Figure.
    """
    import matplotlib.pyplot as plt
    width = max(len(_to_bytes(data, "row")) for _, data in rows)
    fig, ax = plt.subplots(figsize=(0.45 * width + 3.5,
                                    0.5 * len(rows) + 0.8))
    for y, (label, data) in enumerate(rows):
        for x, byte in enumerate(_to_bytes(data, "row")):
            shade = "#E8EEF7"
            if x in (dest if y else source):
                shade = "#DD8452" if y else "#8FB3DE"
            ax.add_patch(plt.Rectangle((x, -y - 0.8), 0.95, 0.7, color=shade))
            text = chr(byte) if 0x20 < byte < 0x7F else f"{byte:02x}"
            ax.text(x + 0.47, -y - 0.45, text, ha="center", va="center",
                    family="monospace", fontsize=10)
        ax.text(-0.3, -y - 0.45, label, ha="right", va="center", fontsize=9)
    ax.set_xlim(-0.2, width)
    ax.set_ylim(-len(rows) - 0.1, 0.1)
    ax.set_xticks([i + 0.47 for i in range(width)], range(width), fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
