"""Graded checks of chapter 02: memmove with overlap, strstr."""
from __future__ import annotations

from minios_lab.classroom.checking import CheckFailed, Context, check
from minios_lab.libc import Libc


@check("02", "memmove-overlap", 5, "memmove copes with overlap both ways")
def memmove_overlap(ctx: Context) -> None:
    libc = Libc(ctx.unit("libc"))
    for dst, src, n in ((2, 0, 8), (0, 2, 8), (3, 3, 4), (0, 5, 0)):
        expected = bytearray(b"0123456789abcdef")
        expected[dst:dst + n] = expected[src:src + n]
        buf = bytearray(b"0123456789abcdef")
        libc.memmove(buf, dst, src, n)
        if buf != expected:
            raise CheckFailed(f"memmove(dst+{dst}, src+{src}, {n}) gave "
                              f"{bytes(buf)!r}, expected {bytes(expected)!r}")


@check("02", "strstr-search", 5, "strstr finds the first occurrence")
def strstr_search(ctx: Context) -> None:
    libc = Libc(ctx.unit("libc"))
    cases = [(b"hello world", b"o", 4), (b"hello world", b"world", 6),
             (b"aaab", b"aab", 1), (b"abc", b"", 0), (b"abc", b"abcd", None),
             (b"", b"", 0), (b"", b"a", None)]
    for hay, needle, expected in cases:
        got = libc.strstr(hay, needle)
        if got != expected:
            raise CheckFailed(f"strstr({hay!r}, {needle!r}) gave {got}, "
                              f"expected {expected}")
