"""What the notebooks print about a boot, in words that do not change.

A notebook's stored output is compared by nbval on every machine, with
every Xen 4.17 build and with every correct solution a learner writes.
Offsets into functions (``start_kernel+0x51``), line numbers of compiled
code (``kernel/kernel.c:94``), section sizes and the sizes Xen prints
(``Freed 656kB init memory``) change with all three. These helpers print
the facts that do not: the function, the file, which sections exist and
what they hold. A notebook that wants the exact values shows them in a
separate cell that says they vary (tagged ``nbval-ignore-output``).
"""
from __future__ import annotations

import re
from typing import Iterable, Optional, Protocol, Sequence

_OFFSET = re.compile(r"\+0x[0-9a-fA-F]+$")
_LINE = re.compile(r":\d+(?:-\d+)?$")

# Xen's lines whose numbers depend on the build of Xen, the machine or the
# size of the guest image (memory sizes, addresses, times, versions).
_VARYING_XEN = re.compile(
    r"\d+\s*[kKMG]i?B\b|0x[0-9a-fA-F]{4,}|\b[0-9a-f]{8,}\b|\d+\.\d+"
    r"|[Vv]ersion|[Cc]ompiled|\bgcc\b|changeset|[Bb]uild")


class _Crash(Protocol):
    symbol: Optional[str]
    source: Optional[str]


def function_of(symbol: Optional[str]) -> str:
    """``start_kernel+0x51`` -> ``start_kernel`` ("?" when unknown)."""
    if not symbol:
        return "?"
    return _OFFSET.sub("", symbol.strip()) or "?"


def file_of(source: Optional[str]) -> str:
    """``kernel/kernel.c:94`` -> ``kernel/kernel.c`` ("?" when unknown)."""
    if not source:
        return "?"
    return _LINE.sub("", source.strip()) or "?"


def crash_place(crash: Optional[_Crash]) -> str:
    """Where a guest crashed, without offset or line: "f, in file.c"."""
    if crash is None:
        return "no crash report"
    function = function_of(crash.symbol)
    where = file_of(crash.source)
    return function if where == "?" else f"{function}, in {where}"


def stable_xen_lines(lines: Iterable[str]) -> list[str]:
    """Xen's lines that read the same on every Xen 4.17 build and machine.

    Drops the lines carrying sizes, addresses, times or versions (for
    example ``(XEN) Freed 656kB init memory``).
    """
    return [line for line in lines if not _VARYING_XEN.search(line)]


class _Section(Protocol):
    name: str
    address: int
    size: int
    flags: str


def _flags_text(flags: object) -> str:
    return flags if isinstance(flags, str) else str(flags)


def sections_overview(sections: Sequence[_Section],
                      page_size: int = 4096) -> str:
    """Sections in load order with their flags and page alignment: what
    stays true when the code grows (sizes and addresses do not)."""
    rows = [f"{'section':<14}  {'flags':<5}  starts on a page"]
    for sec in sections:
        aligned = "yes" if sec.address % page_size == 0 else "no"
        rows.append(f"{sec.name:<14}  {_flags_text(sec.flags):<5}  {aligned}")
    return "\n".join(rows)
