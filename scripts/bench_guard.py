"""Per-call cost of entering host-built kernel code from Python.

Times three ways of calling the kernel's strnlen(buf, 0) (a function that
returns at once), so that what is measured is the entry path:

* raw:      module.lib.minios_strnlen: cffi + the C guard around the call
* kernel:   KernelLib.minios_strnlen: the same plus the Python face's
            bookkeeping (hypervisor routing, outcome check, lock)
* baseline: a cffi call of a C function without any guard (the glue's own
            host_take_outcome / host_take_unwound), for reference

Prints the best of 7 runs of 200000 calls each, in ns per call, timed
with the calling thread's CPU time (time.thread_time), so that other
processes on a shared machine do not inflate it.
"""
from __future__ import annotations

import time
import timeit

from minios_lab.build.units import load


def best_ns(stmt, number: int = 200_000, repeat: int = 7) -> float:
    timer = timeit.Timer(stmt, timer=time.thread_time)
    return min(timer.repeat(number=number, repeat=repeat)) / number * 1e9


def main() -> None:
    kernel = load("libc")
    lib = kernel.lib
    buf = kernel.ffi.new("char[]", b"x")
    raw = lib.minios_strnlen
    face = kernel.minios_strnlen
    take = getattr(lib, "host_take_outcome", None)
    if take is not None:
        probe = kernel.ffi.NULL
        base = best_ns(lambda: take(probe))
    else:
        base = best_ns(lib.host_take_unwound)
    print(f"baseline (unguarded cffi call): {base:6.0f} ns")
    print(f"raw (cffi + guard):             {best_ns(lambda: raw(buf, 0)):6.0f} ns")
    print(f"kernel (KernelLib face):        {best_ns(lambda: face(buf, 0)):6.0f} ns")


if __name__ == "__main__":
    main()
