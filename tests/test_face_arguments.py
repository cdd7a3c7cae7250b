"""Absurd arguments to the chapter faces: a clear error, never a crash.

Every public entry point below gets integers from the whole range
(negative, 2**31, 2**64, 2**80, ...). It may refuse them with ValueError
or TypeError, or the kernel may refuse them with its own panic or error
code (KernelPanic, EventError, XenRefused, ...): all of those say what was
wrong. A KernelFault (kernel code that touched memory because Python let
an absurd value through) or a dead process is a failure.
"""
from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minios_lab.errors import KernelFault, KernelUnusable, MiniosLabError

ABSURD = st.one_of(
    st.sampled_from([-1, -2, -(1 << 31), (1 << 31) - 1, 1 << 31, 1 << 32,
                     (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 64,
                     1 << 80, -(1 << 80), 0, 1, 4095, 4096]),
    st.integers())

CLEAR = (ValueError, TypeError, MiniosLabError)
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def refused_clearly(action) -> None:
    """Run `action`; it may succeed or fail clearly, never fault."""
    try:
        action()
    except (KernelFault, KernelUnusable):
        raise
    except CLEAR:
        pass


@functools.lru_cache(maxsize=None)
def faces() -> dict:
    from minios_lab.events import EventChannels
    from minios_lab.libc import Libc
    from minios_lab.mm import Heap, PageAllocator
    from minios_lab.pagetable import PageTables
    from minios_lab.start_of_day import StartOfDay
    from minios_lab.traps import Traps
    from minios_lab.build.units import load
    return {"libc": Libc(load("libc")), "pool": PageAllocator(256),
            "heap": Heap(64), "pt": PageTables(2048), "sod": StartOfDay(),
            "traps": Traps(), "events": EventChannels()}


CALLS = {
    "libc.strnlen": lambda f, n: f["libc"].strnlen(b"abc", n),
    "libc.strncmp": lambda f, n: f["libc"].strncmp(b"ab", b"ac", n),
    "libc.memcmp": lambda f, n: f["libc"].memcmp(b"ab", b"ab", n),
    "libc.strtoul base": lambda f, n: f["libc"].strtoul(b"12", n),
    "libc.strchr": lambda f, n: f["libc"].strchr(b"abc", n),
    "libc.memmove": lambda f, n: f["libc"].memmove(bytearray(8), n, 0, 2),
    "libc.memmove count": lambda f, n: f["libc"].memmove(bytearray(8), 0, 1,
                                                         n),
    "libc.memset": lambda f, n: f["libc"].memset(bytearray(8), 0, 1, n),
    "libc.memset offset": lambda f, n: f["libc"].memset(bytearray(8), n, 1,
                                                        1),
    "libc.strncpy": lambda f, n: f["libc"].strncpy(bytearray(8), 0, b"ab",
                                                   n),
    "libc.snprintf": lambda f, n: f["libc"].snprintf(n, "%d", 1),
    "libc.sprintf %d": lambda f, n: f["libc"].sprintf("%d", n),
    "libc.sprintf %*d": lambda f, n: f["libc"].sprintf("%*d", n, 1),
    "libc.sprintf %.*s": lambda f, n: f["libc"].sprintf("%.*s", n, "abc"),
    "pool.alloc": lambda f, n: f["pool"].alloc(n),
    "pool.free": lambda f, n: f["pool"].free(n, 0),
    "pool.free order": lambda f, n: f["pool"].free(8, n),
    "pool.free_address": lambda f, n: f["pool"].free_address(n, 0),
    "pool.page": lambda f, n: f["pool"].page(n),
    "heap.malloc": lambda f, n: f["heap"].malloc(n),
    "heap.malloc align": lambda f, n: f["heap"].malloc(8, n),
    "heap.free": lambda f, n: f["heap"].free(n),
    "heap.read": lambda f, n: f["heap"].read(n, 8),
    "pt.walk": lambda f, n: f["pt"].walk(n),
    "pt.map": lambda f, n: f["pt"].map(n, 1),
    "pt.map pfn": lambda f, n: f["pt"].map(0x40000000, n),
    "pt.map count": lambda f, n: f["pt"].map(0x40000000, 1, n),
    "pt.unmap": lambda f, n: f["pt"].unmap(n),
    "pt.count_mapped": lambda f, n: f["pt"].count_mapped(0, n),
    "pt.pfn_to_mfn": lambda f, n: f["pt"].pfn_to_mfn(n),
    "sod.nr_pages": lambda f, n: f["sod"].parse(
        f["sod"].make_start_info(nr_pages=n)),
    "sod.flags": lambda f, n: f["sod"].parse(
        f["sod"].make_start_info(flags=n)),
    "traps.raise_exception": lambda f, n: f["traps"].raise_exception(n, 0),
    "traps.has_error_code": lambda f, n: f["traps"].has_error_code(n),
    "traps.add_fixup": lambda f, n: (f["traps"].clear_fixups(),
                                     f["traps"].add_fixup(n, 1)),
    "events.mask": lambda f, n: f["events"].mask(n),
    "events.unmask": lambda f, n: f["events"].unmask(n),
    "events.notify": lambda f, n: f["events"].notify(n),
    "events.bind_virq": lambda f, n: f["events"].bind_virq(n),
    "events.raise_event": lambda f, n: f["events"].raise_event(n),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_absurd_integer_is_refused_clearly(name):
    call, built = CALLS[name], faces()    # building them must work

    @SETTINGS
    @given(ABSURD)
    def check(n):
        refused_clearly(lambda: call(built, n))

    check()


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("value", [1.5, "3", None, b"x"])
def test_wrong_type_is_a_type_error_or_clear(name, value):
    built = faces()
    refused_clearly(lambda: CALLS[name](built, value))


def test_a_fault_is_not_a_clear_refusal():
    libc = faces()["libc"]
    with pytest.raises(KernelFault):
        refused_clearly(lambda: libc.kernel.strlen(libc.ffi.NULL))
