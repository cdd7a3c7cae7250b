"""Start of day from Python: build a start_info page, run the kernel's parser.

In the host build Python plays Xen: :func:`make_start_info` fills a real
``start_info_t`` (layout from Xen's headers) the way Xen's domain builder
would, and :class:`StartOfDay` runs kernel/start_of_day.c on it. The result
comes back as a :class:`BootInfo`; bad input raises :class:`StartInfoError`
with the kernel's own words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minios_lab.errors import MiniosLabError
from minios_lab.build.units import load

# What Xen 4.17 gave this kit's guest as a 64 MiB dom0 in QEMU (read off a
# real boot's report). Addresses are virtual, the kernel being linked at 0,
# except shared_info, a machine address. flags 0x303: privileged, initial
# domain, and power-management bits 8-15.
DEFAULTS = dict(
    magic=b"xen-3.0-x86_64",
    nr_pages=16384,
    shared_info=0xFDBA000,
    flags=0x303,
    pt_base=0x38000,
    nr_pt_frames=5,
    mfn_list=0x17000,
    mod_start=0x0,
    mod_len=0,
    first_p2m_pfn=1024,
    nr_p2m_frames=0,
)


class StartInfoError(MiniosLabError):
    """The kernel refused a start_info page; the message says why."""


@dataclass
class BootInfo:
    """What parse_start_info() extracted, as plain Python data."""

    nr_pages: int
    shared_info_ma: int
    flags: int
    pt_base: int
    nr_pt_frames: int
    mfn_list: int
    mod_start: int
    mod_len: int
    first_p2m_pfn: int
    nr_p2m_frames: int
    args: dict[str, str] = field(default_factory=dict)

    @property
    def memory_mib(self) -> int:
        return self.nr_pages * 4096 // (1 << 20)


_FIELDS = [f for f in BootInfo.__dataclass_fields__ if f != "args"]


class StartOfDay:
    """The kernel's start-of-day code, host-built, with Python as Xen."""

    def __init__(self) -> None:
        self.kernel = load("start_of_day")
        self.ffi = self.kernel.ffi

    def make_start_info(self, cmd_line: str | bytes = "", **fields: Any):
        """A start_info_t filled as Xen would; any field can be overridden.

        ``cmd_line`` may be raw bytes of up to MAX_GUEST_CMDLINE (1024)
        bytes; exactly 1024 non-NUL bytes make an unterminated line.
        """
        si = self.ffi.new("start_info_t *")
        values = {**DEFAULTS, **fields}
        magic = values.pop("magic")
        self.ffi.memmove(si.magic, magic[:32], min(len(magic), 32))
        for name, value in values.items():
            try:
                setattr(si, name, value)
            except OverflowError:
                raise ValueError(f"{name}={value} does not fit the field "
                                 f"start_info.{name}") from None
            except AttributeError:
                raise TypeError(f"start_info has no field {name!r}") \
                    from None
        raw = cmd_line.encode() if isinstance(cmd_line, str) else cmd_line
        limit = self.kernel.MAX_GUEST_CMDLINE
        if len(raw) > limit:
            raise ValueError(f"cmd_line is longer than {limit} bytes")
        self.ffi.memmove(si.cmd_line, raw, len(raw))
        return si

    def parse(self, si) -> BootInfo:
        """Run parse_start_info() on `si`; raise StartInfoError if refused."""
        bi = self.ffi.new("struct boot_info *")
        if self.kernel.parse_start_info(si, bi) != 0:
            raise StartInfoError(self.ffi.string(bi.error).decode())
        args = {self.ffi.string(bi.args[i].key).decode("latin-1"):
                self.ffi.string(bi.args[i].value).decode("latin-1")
                for i in range(bi.nr_args)}
        return BootInfo(**{f: getattr(bi, f) for f in _FIELDS}, args=args)

    def report(self, si) -> str:
        """The start-of-day report the kernel prints for `si`."""
        hv = self.kernel.hypervisor
        hv.console.clear()
        self.kernel.start_of_day(si)
        return hv.console_text


def parse(cmd_line: str = "", **fields: Any) -> BootInfo:
    """Shortcut: build a start_info with these fields and parse it."""
    sod = StartOfDay()
    return sod.parse(sod.make_start_info(cmd_line, **fields))


_REPORT_LINE = re.compile(r'^\s+(\w+)\s+("[^"]*"|\S+)')
_ARG_LINE = re.compile(r"^\s+arg (\S+) = (.*)$")


def parse_report(lines: list[str]) -> dict[str, Any]:
    """Read a start-of-day report (host or guest console) back into a dict.

    Numbers become ints; the command-line words go under "args".
    """
    found: dict[str, Any] = {"args": {}}
    for line in lines:
        arg = _ARG_LINE.match(line)
        if arg:
            found["args"][arg.group(1)] = arg.group(2)
            continue
        m = _REPORT_LINE.match(line)
        if m and m.group(1) in _FIELDS + ["shared_info", "cmd_line",
                                          "start_info"]:
            text = m.group(2)
            found[m.group(1)] = int(text, 0) if re.fullmatch(
                r"0x[0-9a-f]+|\d+", text) else text.strip('"')
    return found


def boot_layout(report: dict[str, Any], image_end: int) -> list:
    """The regions of the initial mapping that Xen built, from a report.

    ``report`` is :func:`parse_report` of a real boot's console and
    ``image_end`` the kernel's ``_end`` symbol. Xen lays out, upwards from
    the kernel: the p2m list (one 8-byte machine frame number per page),
    the start_info page and the bootstrap page tables.
    """
    from minios_lab.viz import Region

    page = 4096
    regions = [Region("kernel image", 0, image_end)]
    p2m_end = report["mfn_list"] + report["nr_pages"] * 8
    regions.append(Region("p2m list (mfn_list)", report["mfn_list"], p2m_end))
    si = report.get("start_info")
    if isinstance(si, int):
        regions.append(Region("start_info", si, si + page))
    pt_end = report["pt_base"] + report["nr_pt_frames"] * page
    regions.append(Region("page tables", report["pt_base"], pt_end))
    return regions


def symbol_address(elf: str | Path, name: str) -> int:
    """The address of symbol `name` in an ELF image (e.g. "_end")."""
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        for sym in symtab.get_symbol_by_name(name) or []:
            return sym["st_value"]
    raise LookupError(f"no symbol {name!r} in {elf}")
