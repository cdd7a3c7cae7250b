"""Reading a printf format as kernel/lib/printf.c does, and typing arguments.

:func:`parse_format` splits a format into literal bytes and
:class:`Directive` s; :func:`c_arguments` gives each Python value the C
type its directive asks for (or raises TypeError/ValueError before any C
runs); :func:`glibc_sprintf` formats the same way with the host's C library,
for comparison. The table of types is in the docstring of minios_lab.libc.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence, Union

Text = Union[bytes, bytearray, str]


_DIRECTIVE = re.compile(
    rb"%(?P<flags>[-0+ #]*)(?P<width>\*|[0-9]*)(?:\.(?P<precision>\*|[0-9]*))?"
    rb"(?P<length>hh|h|ll|l|z)?(?P<conversion>.?)", re.DOTALL)

_SIGNED_TYPES = {"": "int", "hh": "int", "h": "int", "l": "long",
                 "ll": "long long", "z": "ssize_t"}
_UNSIGNED_TYPES = {"": "unsigned int", "hh": "unsigned int",
                   "h": "unsigned int", "l": "unsigned long",
                   "ll": "unsigned long long", "z": "size_t"}
KNOWN_CONVERSIONS = "diuxXocsp%"
MAX_BUFFER = 1 << 24   # the largest buffer Python makes for formatted text


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
    if length >= MAX_BUFFER:
        raise ValueError(f"the output would be {length} bytes; Python makes "
                         f"buffers of fewer than {MAX_BUFFER} (snprintf(size,"
                         f" ...) shows the length without the text)")
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
