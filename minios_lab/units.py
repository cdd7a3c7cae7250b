"""The host-built kernel units: which sources each lesson compiles together.

Every unit also gets cbuild.BASE_SOURCES (the hypervisor boundary, panic,
console and the libc), so any unit can print and panic.
"""
from __future__ import annotations

from pathlib import Path

from .cbuild import Unit, build
from .host import Hypervisor, KernelLib

UNITS: dict[str, Unit] = {
    "libc": Unit(sources=(), cdef="libc.h"),
    "start_of_day": Unit(sources=("start_of_day.c",), cdef="start_of_day.h",
                         headers=("minios/start_of_day.h",)),
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
