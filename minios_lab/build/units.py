"""The host-built kernel units: which sources each lesson compiles together.

Every unit also gets cbuild.BASE_SOURCES (the hypervisor boundary, panic,
console and the libc), so any unit can print and panic.
"""
from __future__ import annotations

from pathlib import Path

from minios_lab.build.cbuild import Unit, build
from minios_lab.xen.hypervisor import Hypervisor
from minios_lab.build.kernellib import KernelLib

UNITS: dict[str, Unit] = {
    "libc": Unit(sources=(), cdef="libc.h",
                 headers=("minios/string.h", "minios/printf.h")),
    "start_of_day": Unit(sources=("start_of_day.c",), cdef="start_of_day.h",
                         headers=("minios/start_of_day.h",)),
    "traps": Unit(sources=("traps.c", "host/trap_entry.c"), cdef="traps.h",
                  headers=("minios/traps.h",)),
    "mm": Unit(sources=("mm/page_alloc.c", "mm/page_check.c", "mm/xmalloc.c",
                        "mm/xmalloc_check.c", "mm/selftest.c"),
               cdef="mm.h", headers=("minios/mm.h",)),
    "pagetable": Unit(sources=("mm/pagetable.c", "mm/pagetable_boot.c"),
                      cdef="pagetable.h", headers=("minios/pagetable.h",)),
    "events": Unit(sources=("hypervisor.c", "events.c", "events_demo.c",
                            "start_of_day.c"),
                   cdef="events.h", headers=("minios/events.h",),
                   extra_cdefs=("host.h", "xen_shared.h")),
    "time": Unit(sources=("time.c", "timer.c", "hypervisor.c", "events.c",
                          "host/shared_read.c"),
                 cdef="time.h",
                 headers=("minios/events.h", "minios/time.h"),
                 extra_cdefs=("host.h", "xen_shared.h")),
    "console_ring": Unit(sources=("console_ring.c", "hypervisor.c",
                                  "events.c", "host/shared_read.c"),
                         cdef="console_ring.h",
                         headers=("minios/console.h",
                                  "minios/console_ring.h")),
}


def load(unit_name: str, kernel_dir: Path | None = None,
         hypervisor: Hypervisor | None = None) -> KernelLib:
    """Build (if needed) and load a unit; `kernel_dir` defaults to kernel/."""
    try:
        unit = UNITS[unit_name]
    except KeyError:
        raise ValueError(f"no kernel unit {unit_name!r}; "
                         f"known: {', '.join(sorted(UNITS))}") from None
    return KernelLib(build(unit_name, unit, kernel_dir), hypervisor)
