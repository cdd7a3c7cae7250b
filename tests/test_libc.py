"""The kernel's minimal libc (kernel/lib/printf.c, kernel/lib/string.c).

snprintf is checked differentially against the host's glibc over generated
formats, and on a table of edge cases with the expected text written out.
The string functions are checked against Python and glibc. One test proves
that the code under test is the kernel's and not glibc's.
"""
from __future__ import annotations

import re

import cffi
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from conftest import edit
from minios_lab import libc
from minios_lab.libc import MAX_BUFFER, Libc, c_arguments, directives

GLIBC_FFI = cffi.FFI()
GLIBC_FFI.cdef("""
    int snprintf(char *buf, size_t size, const char *fmt, ...);
    unsigned long strtoul(const char *s, char **end, int base);
    int strcmp(const char *a, const char *b);
    int strncmp(const char *a, const char *b, size_t n);
""")
GLIBC = GLIBC_FFI.dlopen(None)

ULONG_MAX = 2**64 - 1
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def k() -> Libc:
    return Libc.load()


glibc_sprintf = libc.glibc_sprintf_bytes


def raw_snprintf(function, ffi, size: int, fmt: bytes, args) -> tuple:
    """(return value, the whole buffer) for a buffer of size + 4 bytes
    pre-filled with 0xAA, so that bytes written past `size` would show."""
    buf = ffi.new("char[]", b"\xaa" * (size + 4))
    n = function(buf, size, ffi.new("char[]", fmt),
                 *c_arguments(ffi, fmt, args))
    return n, ffi.unpack(buf, size + 4)


# --- generated formats -------------------------------------------------------

BITS = {"": 32, "hh": 32, "h": 32, "l": 64, "ll": 64, "z": 64}  # as passed
NARROW_BITS = {"hh": 8, "h": 16}  # what printf then converts them to


def edges(bits: int) -> list[int]:
    """The limits of a `bits`-wide type, signed and unsigned, and beyond."""
    half = 2 ** (bits - 1)
    return [-half, -half + 1, half - 1, half, 2**bits - 1, 2**bits, -1, 0, 1]


def int_values(length: str, signed: bool):
    bits = BITS[length]
    lo = -(2 ** (bits - 1))
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    special = [v for v in edges(bits) + edges(NARROW_BITS.get(length, bits))
               if lo <= v <= hi]
    return st.one_of(st.sampled_from(special), st.integers(lo, hi))


def value_for(conversion: str, length: str):
    if conversion in "di":
        return int_values(length, signed=True)
    if conversion in "uxXo":
        return int_values(length, signed=False)
    if conversion == "c":
        return int_values("", signed=True)
    if conversion == "s":
        return st.one_of(st.none(), st.binary(max_size=20).map(
            lambda b: b.replace(b"\0", b"@")))
    return st.one_of(st.none(), st.just(0), st.integers(1, ULONG_MAX),
                     st.sampled_from([1, ULONG_MAX]))


@st.composite
def directive_with_args(draw) -> tuple[str, list]:
    """One random directive and the arguments it consumes."""
    conversion = draw(st.sampled_from(list("diuxXocsp%")))
    flags = "".join(draw(st.lists(st.sampled_from("-0+ #"), max_size=4)))
    args: list = []
    width = draw(st.sampled_from(["", "digits", "*"]))
    if width == "digits":
        width = str(draw(st.integers(0, 40)))
    elif width == "*":
        args.append(draw(st.integers(-40, 40)))
    precision = draw(st.sampled_from(["", ".", ".digits", ".*"]))
    if precision == ".digits":
        precision = "." + str(draw(st.integers(0, 30)))
    elif precision == ".*":
        args.append(draw(st.integers(-10, 30)))
    length = ""
    if conversion in "diuxXo":
        length = draw(st.sampled_from(["", "hh", "h", "l", "ll", "z"]))
    if conversion != "%":
        args.append(draw(value_for(conversion, length)))
    return f"%{flags}{width}{precision}{length}{conversion}", args


LITERAL = st.text(st.characters(min_codepoint=1, max_codepoint=255,
                                blacklist_characters="%"), max_size=6)


@st.composite
def formats(draw) -> tuple[bytes, list]:
    fmt, args = draw(LITERAL), []
    for _ in range(draw(st.integers(1, 4))):
        text, more = draw(directive_with_args())
        fmt += text + draw(LITERAL)
        args += more
    return fmt.encode("latin-1"), args


@settings(max_examples=500, deadline=None)
@given(formats())
@example((b"%c", [0]))
@example((b"%#.0o|%#x|%.0d", [0, 0, 0]))
@example((b"%lld|%llu", [-(2**63), 2**64 - 1]))
@example((b"% 0+#-*.*hhd", [-40, -5, -128]))
def test_sprintf_matches_glibc(k, case):
    fmt, args = case
    assert k.sprintf_bytes(fmt, *args) == glibc_sprintf(fmt, *args)


@settings(max_examples=200, deadline=None)
@given(formats(), st.integers(0, 80))
def test_truncation_matches_glibc(k, case, size):
    fmt, args = case
    ours = raw_snprintf(k.kernel.snprintf, k.ffi, size, fmt, args)
    assert ours == raw_snprintf(GLIBC.snprintf, GLIBC_FFI, size, fmt, args)


@SETTINGS
@given(st.text("%-0+ #*.12hlzdxck|", max_size=14))
def test_python_reads_formats_as_the_kernel_does(k, fmt):
    """Any format, even a malformed one: the Python side must hand over
    exactly the arguments the kernel takes, or the sentinel at the end
    would come out wrong. (Only int-typed directives, so a disagreement
    would give a wrong number, not a crash.)"""
    assume(not re.search(r"[0-9]{3}", fmt))  # no huge widths
    count = sum(d.star_count + (d.argument_type() is not None)
                for d in directives(fmt + "|%d"))
    out = k.sprintf(fmt + "|%d", *[7] * (count - 1), 123456789)
    assert out.endswith("|123456789")


# --- edge cases, written out -------------------------------------------------

EDGE_CASES = [
    ("%d", [0], "0"),
    ("%.0d", [0], ""),
    ("%5.0d|", [0], "     |"),
    ("%+.0d", [0], "+"),
    ("%#o", [0], "0"),
    ("%#.0o", [0], "0"),
    ("%#o", [8], "010"),
    ("%#.3o", [8], "010"),
    ("%#5.0o", [0], "    0"),
    ("%#x", [0], "0"),
    ("%#.0x", [0], ""),
    ("%#x", [255], "0xff"),
    ("%#X", [255], "0XFF"),
    ("%#06x", [1], "0x0001"),
    ("%08.3d", [-5], "    -005"),
    ("%-08d|", [5], "5       |"),
    ("%+05d", [3], "+0003"),
    ("%+d", [0], "+0"),
    ("% d", [5], " 5"),
    ("%+ d", [5], "+5"),
    ("%+u % x", [5, 5], "5 5"),
    ("%d", [-(2**31)], "-2147483648"),
    ("%u", [-1], "4294967295"),
    ("%x", [-1], "ffffffff"),
    ("%lld", [-(2**63)], "-9223372036854775808"),
    ("%llu", [2**64 - 1], "18446744073709551615"),
    ("%llo", [2**64 - 1], "1777777777777777777777"),
    ("%lx", [2**64 - 1], "ffffffffffffffff"),
    ("%hhd", [255], "-1"),
    ("%hhd", [300], "44"),
    ("%hhu", [-1], "255"),
    ("%hd", [32768], "-32768"),
    ("%hu", [-1], "65535"),
    ("%zu", [2**64 - 1], "18446744073709551615"),
    ("%zd", [-1], "-1"),
    ("%i", [-7], "-7"),
    ("%p", [None], "(nil)"),
    ("%10p|%-6p|", [None, None], "     (nil)|(nil) |"),
    ("%.2p", [None], "(nil)"),
    ("%p", [0xDEADBEEF], "0xdeadbeef"),
    ("%+p", [1], "+0x1"),
    ("%010p", [0x1234], "0x00001234"),
    ("%.6p", [0x1234], "0x001234"),
    ("%s", [None], "(null)"),
    ("%.5s|", [None], "|"),
    ("%.6s", [None], "(null)"),
    ("%8s", [None], "  (null)"),
    ("%.2s", ["abc"], "ab"),
    ("%5.1s|", ["abc"], "    a|"),
    ("%-4s|", ["a"], "a   |"),
    ("%05s", ["a"], "    a"),
    ("%s", [""], ""),
    ("%*d", [-4, 1], "1   "),
    ("%-*d|", [-4, 1], "1   |"),
    ("%.*d", [-1, 0], "0"),
    ("%.*d", [0, 0], ""),
    ("%.*s", [-1, "abc"], "abc"),
    ("%%", [], "%"),
    ("%5%|%-05%|%.3%", [], "%|%|%"),
    ("%*%%d", [7, 42], "%42"),
    ("%c", ["x"], "x"),
    ("%3c|%-3c|", [65, 65], "  A|A  |"),
    ("%05c", ["z"], "    z"),
    ("%c", [0x141], "A"),
    ("plain text", [], "plain text"),
    ("", [], ""),
]


@pytest.mark.parametrize("fmt, args, expected", EDGE_CASES)
def test_edge_case(k, fmt, args, expected):
    assert k.sprintf(fmt, *args) == expected
    assert glibc_sprintf(fmt, *args).decode("latin-1") == expected


UNKNOWN = [  # the kernel copies these as written; glibc differs or fails
    ("%k", [], "%k"),
    ("%-5.3k", [], "%-5.3k"),
    ("%+#y", [], "%+#y"),
    ("%*k|%d", [5, 1], "%*k|1"),   # the * still takes its int; glibc: "%5k"
    ("%lk", [], "%lk"),            # glibc: "%k"
    ("%Lf", [], "%Lf"),
    ("abc%", [], "abc%"),          # glibc: -1
    ("%-5", [], "%-5"),
    ("%.*", [3], "%.*"),
]


@pytest.mark.parametrize("fmt, args, expected", UNKNOWN)
def test_unknown_conversion_is_copied_literally(k, fmt, args, expected):
    assert k.sprintf(fmt, *args) == expected


def test_format_stops_at_nul(k):
    assert k.sprintf(b"ab\0%d") == "ab"


def test_percent_c_of_zero_writes_a_counted_nul(k):
    assert k.sprintf_bytes("a%cb", 0) == b"a\0b"
    assert k.sprintf("%c", 0) == "\0"
    assert k.snprintf(8, "%c%c", 0, "x") == (2, b"\0x\0\0\0\0\0\0")


def test_return_value_is_full_length_and_buffer_always_terminated(k):
    fmt = b"hello %d"
    for size, stored in [(1, b""), (3, b"he"), (8, b"hello 4"),
                         (9, b"hello 42"), (20, b"hello 42")]:
        n, buf = raw_snprintf(k.kernel.snprintf, k.ffi, size, fmt, [42])
        assert n == 8
        assert buf == stored + b"\0" + b"\xaa" * (size + 3 - len(stored))


def test_size_zero_writes_nothing(k):
    n, buf = raw_snprintf(k.kernel.snprintf, k.ffi, 0, b"hello", [])
    assert (n, buf) == (5, b"\xaa" * 4)
    abc = k.ffi.new("char[]", b"abc")
    assert k.kernel.snprintf(k.ffi.NULL, 0, b"%s", abc) == 3


def test_huge_width_is_counted_without_being_written(k):
    n, buf = raw_snprintf(k.kernel.snprintf, k.ffi, 4, b"%1000000d", [1])
    assert (n, buf) == (1000000, b"   \0" + b"\xaa" * 4)
    assert raw_snprintf(k.kernel.snprintf, k.ffi, 0, b"%2147483647d%d",
                        [1, 2])[0] == -1
    # a '*' width of INT_MIN means '-' and the largest width there is
    n, buf = raw_snprintf(k.kernel.snprintf, k.ffi, 4, b"%*d", [-(2**31), 1])
    assert (n, buf) == (2**31 - 1, b"1  \0" + b"\xaa" * 4)


def test_sprintf_refuses_to_make_gigabytes_of_text(k):
    with pytest.raises(ValueError, match=r"would be 2147483647 bytes"):
        k.sprintf("%*d", 2**31 - 1, 1)
    assert k.sprintf("%*d", 5, 1) == "    1"      # the kernel is still fine
    assert len(k.sprintf("%*d", MAX_BUFFER - 1, 1)) == MAX_BUFFER - 1


# --- the Python face: argument types and errors ------------------------------

def test_directives_are_split_like_printf_c():
    (d,) = directives("x%-08.3lxy")
    assert (d.text, d.flags, d.width, d.precision, d.length,
            d.conversion) == ("%-08.3lx", "-0", "8", "3", "l", "x")
    (d,) = directives("%*.*hhd")
    assert (d.star_count, d.argument_type()) == (2, "int")
    assert directives("%zu")[0].argument_type() == "size_t"
    assert directives("%zd")[0].argument_type() == "ssize_t"
    assert directives("%%")[0].argument_type() is None
    assert directives("%")[0].conversion == ""


@pytest.mark.parametrize("fmt, args, ctypes", [
    ("%d %ld %lld %hhd %hd %zd", [1] * 6,
     ["int", "long", "long long", "int", "int", "ssize_t"]),
    ("%u %lx %llo %hhX %hu %zu", [1] * 6,
     ["unsigned int", "unsigned long", "unsigned long long", "unsigned int",
      "unsigned int", "size_t"]),
    ("%c %s %p %*.*d", ["a", b"b", None, 1, 2, 3],
     ["int", "char *", "void *", "int", "int", "int"]),
])
def test_argument_c_types(k, fmt, args, ctypes):
    ffi = k.ffi
    got = c_arguments(ffi, fmt, args)
    want = [ffi.typeof(t if t != "char *" else "char[]") for t in ctypes]
    assert [ffi.typeof(a) for a in got] == want


@pytest.mark.parametrize("fmt, args, error, words", [
    ("%d", [], TypeError, "not enough arguments"),
    ("%d", [1, 2], TypeError, "not all arguments converted"),
    ("%*d", [1], TypeError, "not enough arguments"),
    ("%d", ["1"], TypeError, "needs an integer"),
    ("%d", [1.5], TypeError, "needs an integer"),
    ("%*d", ["x", 1], TypeError, "'*' width"),
    ("%s", [3], TypeError, "expected bytes or str"),
    ("%s", ["\u20ac"], ValueError, "latin-1"),
    ("%d", [2**31], ValueError, "does not fit in int"),
    ("%u", [2**32], ValueError, "does not fit in unsigned int"),
    ("%u", [-(2**31) - 1], ValueError, "does not fit"),
    ("%lld", [2**63], ValueError, "does not fit in long long"),
    ("%p", [-1], ValueError, "does not fit in void *"),
    ("%c", ["ab"], ValueError, "one character"),
])
def test_bad_arguments_raise_before_c_runs(k, fmt, args, error, words):
    with pytest.raises(error, match=words.replace("*", r"\*")):
        k.sprintf(fmt, *args)


def test_module_level_shortcuts():
    assert libc.sprintf("%05.1f|%s", "x") == "%05.1f|x"
    assert libc.strlen(b"abc") == 3
    assert libc.strtoul("ff", 16) == (255, 2)


# --- string functions --------------------------------------------------------

def c_string(b: bytes) -> bytes:
    return b.split(b"\0", 1)[0]


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


SMALL_BYTES = st.binary(max_size=12).map(lambda b: bytes(
    c % 4 * 0x3f + 0x21 if c > 8 else c for c in b))  # few distinct bytes


@SETTINGS
@given(SMALL_BYTES)
@example(b"")
@example(b"\0abc")
def test_strlen_strnlen(k, s):
    assert k.strlen(s) == len(c_string(s))
    for limit in (0, 1, 5, 100):
        assert k.strnlen(s, limit) == min(limit, len(c_string(s)))


@SETTINGS
@given(SMALL_BYTES, SMALL_BYTES, st.integers(0, 14))
@example(b"a", b"\x80", 1)
@example(b"", b"", 0)
@example(b"abc", b"abd", 2)
def test_comparisons_match_python_and_glibc(k, a, b, n):
    ca, cb = c_string(a), c_string(b)
    assert sign(k.strcmp(a, b)) == sign((ca > cb) - (ca < cb))
    assert sign(k.strcmp(a, b)) == sign(GLIBC.strcmp(a, b))
    assert sign(k.strncmp(a, b, n)) == sign(GLIBC.strncmp(a, b, n))
    m = min(n, len(a), len(b))
    assert sign(k.memcmp(a, b, m)) == sign((a[:m] > b[:m]) - (a[:m] < b[:m]))


@SETTINGS
@given(SMALL_BYTES, SMALL_BYTES)
@example(b"", b"")
@example(b"abc", b"")
@example(b"", b"a")
@example(b"aab", b"ab")
def test_strstr(k, haystack, needle):
    index = c_string(haystack).find(c_string(needle))
    assert k.strstr(haystack, needle) == (None if index < 0 else index)


@SETTINGS
@given(SMALL_BYTES, st.integers(0, 511))
@example(b"abc", 0)
@example(b"", 0)
@example(b"abca", ord("a") + 256)
def test_strchr_strrchr(k, s, c):
    text, byte = c_string(s), c % 256
    if byte == 0:
        first = last = len(text)  # the terminating NUL is found
    else:
        first, last = text.find(bytes([byte])), text.rfind(bytes([byte]))
    assert k.strchr(s, c) == (None if first < 0 else first)
    assert k.strrchr(s, c) == (None if last < 0 else last)


def test_memmove_overlap_both_directions(k):
    buf = bytearray(b"0123456789")
    k.memmove(buf, 2, 0, 5)
    assert buf == bytearray(b"0101234789")
    buf = bytearray(b"0123456789")
    k.memmove(buf, 0, 2, 5)
    assert buf == bytearray(b"2345656789")
    k.memmove(buf, 3, 3, 4)
    assert buf == bytearray(b"2345656789")


@SETTINGS
@given(st.binary(min_size=1, max_size=24), st.data())
def test_memmove_is_python_slice_assignment(k, data, draw):
    size = len(data)
    n = draw.draw(st.integers(0, size))
    src, dst = (draw.draw(st.integers(0, size - n)) for _ in range(2))
    expected = bytearray(data)
    expected[dst:dst + n] = expected[src:src + n]
    buf = bytearray(data)
    k.memmove(buf, dst, src, n)
    assert buf == expected


def test_memcpy_is_a_forward_loop(k):
    """Overlap is undefined for memcpy in C; notebook 02 shows what this
    kernel's plain forward loop does with it."""
    buf = bytearray(b"0123456789")
    p = k.ffi.from_buffer("char[]", buf)
    k.kernel.memcpy(p + 2, p, 5)
    assert buf == bytearray(b"0101010789")


def test_plot_buffers_draws_one_cell_per_byte():
    import matplotlib.pyplot as plt
    from minios_lab.viz.libc import plot_buffers
    fig = plot_buffers([("a", b"0123"), ("b", b"\0\x01zz")],
                       source=range(0, 2), dest=range(1, 3), title="t")
    (ax,) = fig.axes
    assert len(ax.patches) == 8
    assert [t.get_text() for t in ax.texts][:5] == ["0", "1", "2", "3", "a"]
    assert "00" in [t.get_text() for t in ax.texts]
    plt.close(fig)


def test_memcpy_memset(k):
    buf = bytearray(b"..........")
    k.memcpy(buf, 2, b"ab\0c")
    assert buf == bytearray(b"..ab\0c....")
    k.memset(buf, 7, 0x141, 3)  # c is converted to unsigned char
    assert buf == bytearray(b"..ab\0c.AAA")
    k.memset(buf, 0, 0, 0)
    assert buf == bytearray(b"..ab\0c.AAA")


def test_strcpy_and_strncpy_padding(k):
    buf = bytearray(b"X" * 10)
    k.strcpy(buf, 1, b"hi\0there")
    assert buf == bytearray(b"Xhi\0XXXXXX")
    buf = bytearray(b"X" * 10)
    k.strncpy(buf, 1, b"ab", 6)  # padded with NULs up to n
    assert buf == bytearray(b"Xab\0\0\0\0XXX")
    buf = bytearray(b"X" * 10)
    k.strncpy(buf, 0, b"abcdef", 3)  # truncated, and not terminated
    assert buf == bytearray(b"abcXXXXXXX")
    k.strncpy(buf, 0, b"", 0)
    assert buf == bytearray(b"abcXXXXXXX")


def test_writers_refuse_to_overflow(k):
    buf = bytearray(4)
    with pytest.raises(ValueError, match="overflows"):
        k.strcpy(buf, 1, b"abc")
    with pytest.raises(ValueError, match="overflows"):
        k.memmove(buf, 0, 2, 3)
    with pytest.raises(TypeError, match="bytearray"):
        k.memset(b"abcd", 0, 0, 1)


STRTOUL_CASES = [
    ("0", 10, 0, 1), ("", 10, 0, 0), ("  +", 10, 0, 0), ("-", 0, 0, 0),
    ("\t\n\v\f\r 7", 10, 7, 7), ("-1", 10, ULONG_MAX, 2), ("-0", 10, 0, 2),
    ("+42abc", 10, 42, 3), ("0x", 16, 0, 1), ("0xg", 0, 0, 1),
    ("0X1f", 16, 31, 4), ("0x1f", 0, 31, 4), ("0x1f", 10, 0, 1),
    ("017", 0, 15, 3), ("019", 0, 1, 2), ("z", 36, 35, 1), ("Zz", 36, 1295, 2),
    ("101", 2, 5, 3), ("0b101", 0, 0, 1),  # no C23 0b prefix
    ("18446744073709551615", 10, ULONG_MAX, 20),
    ("18446744073709551616", 10, ULONG_MAX, 20),
    ("99999999999999999999999x", 10, ULONG_MAX, 23),
    ("-18446744073709551615", 10, 1, 21),
    ("-18446744073709551616", 10, ULONG_MAX, 21),
    ("ffffffffffffffff", 16, ULONG_MAX, 16),
    ("12", 1, 0, 0), ("12", 37, 0, 0), ("12", -1, 0, 0),  # invalid bases
]


@pytest.mark.parametrize("s, base, value, consumed", STRTOUL_CASES)
def test_strtoul_edge_cases(k, s, base, value, consumed):
    assert k.strtoul(s, base) == (value, consumed)


def glibc_strtoul(s: bytes, base: int) -> tuple[int, int]:
    cs = GLIBC_FFI.new("char[]", s)
    end = GLIBC_FFI.new("char **", cs)
    value = GLIBC.strtoul(cs, end, base)
    return value, end[0] - cs


@SETTINGS
@given(st.text(" \t+-0123456789abcdefxXzZ", max_size=24),
       st.one_of(st.sampled_from([0, 2, 8, 10, 16, 36]), st.integers(2, 36)))
def test_strtoul_matches_glibc(k, s, base):
    raw = s.encode()
    assert k.strtoul(raw, base) == glibc_strtoul(raw, base)


# --- proof that the kernel's code runs, not glibc's --------------------------

def test_the_kernels_own_strlen_runs(kernel_copy):
    """Break strlen in a copy of the kernel: both the direct call and %s
    (which measures its string with strlen when no precision is given)
    must show the breakage, while glibc's strlen is unaffected."""
    edit(kernel_copy / "lib" / "string.c",
         "    while (s[n] != '\\0')\n        n++;\n    return n;\n",
         "    while (s[n] != '\\0')\n        n++;\n    return n / 2;\n")
    broken = Libc.load(kernel_dir=kernel_copy)
    assert broken.strlen(b"abcdef") == 3
    assert broken.sprintf("[%s]", "abcdef") == "[abc]"
    assert broken.sprintf("[%.6s]", "abcdef") == "[abcdef]"  # uses strnlen
    assert GLIBC_FFI.string(GLIBC_FFI.new("char[]", b"abcdef")) == b"abcdef"
    assert Libc.load().strlen(b"abcdef") == 6
