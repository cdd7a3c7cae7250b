"""What notebook 10 shows of the running guest, as tested functions.

Each function takes a stopped :class:`~minios_lab.guest.live.LiveGuest` and
returns plain data or a short text whose every number is one that does
not change from machine to machine (addresses that move with the size of
the kernel image are printed with the names the notebooks' sanitize file
knows: ``start_info``, ``pt_base``, ``mfn_list``, ``shared_info``).

* :func:`host_parse` runs chapter 01's host-built parser on the start_info
  page Xen wrote; :func:`start_info_report` compares it, field by field,
  with what the guest's own parse left in ``boot_info``.
* :func:`trap_table` reads the guest's ``trap_table`` into chapter 06's
  :class:`~minios_lab.traps.TrapEntry` list, for ``plot_trap_table``.
* :func:`pt_regs` reads a ``struct pt_regs`` (the exception frame entry.S
  built); :func:`fault_report` says what a stop in ``do_page_fault`` sees.
* :func:`summary_agreement` holds a live PoolSnapshot against the guest's
  printed ``mm: summary`` line.
* :func:`location` finds the line of a function that holds some text, for
  ``run_to`` (so notebooks do not carry line numbers).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from minios_lab.guest import boot
from minios_lab.guest.live.qemu import GdbError, LiveError
from minios_lab.mm import PoolSnapshot
from minios_lab.pagetable import parse_guest_report
from minios_lab.start_of_day import BootInfo, StartOfDay
from minios_lab.traps import TI_DPL_MASK, TI_MASK_EVENTS, TrapEntry

if TYPE_CHECKING:
    from minios_lab.guest.live import LiveGuest

BOOT_FIELDS = ("nr_pages", "shared_info_ma", "flags", "pt_base",
               "nr_pt_frames", "mfn_list", "mod_start", "mod_len",
               "first_p2m_pfn", "nr_p2m_frames")
HEX_FIELDS = {"shared_info_ma", "flags", "pt_base", "mfn_list", "mod_start"}
LABELS = {"shared_info_ma": "shared_info"}   # the sanitize file's name
PF_BITS = ((1, "protection violation", "not-present page"),
           (2, "write", "read"), (4, "user mode", "kernel mode"))


def host_parse(raw: bytes) -> BootInfo:
    """Chapter 01's parser, host-built, on a start_info page's bytes."""
    sod = StartOfDay()
    size = sod.ffi.sizeof("start_info_t")
    if len(raw) < size:
        raise ValueError(f"a start_info page has {size} bytes, not "
                         f"{len(raw)}")
    si = sod.ffi.new("start_info_t *")
    sod.ffi.memmove(si, raw[:size], size)
    return sod.parse(si)


def _guest_parse(guest: "LiveGuest") -> Optional[dict[str, int]]:
    """boot_info's fields, or None before the guest parsed start_info."""
    if guest.value("boot_info.si") == 0:
        return None
    return {f: guest.value(f"boot_info.{f}") for f in BOOT_FIELDS}


def _shown(field: str, value: int) -> str:
    return f"{value:#x}" if field in HEX_FIELDS else str(value)


def start_info_report(guest: "LiveGuest") -> str:
    """start_info as Xen wrote it, as the host build parses it and as the
    guest parsed it (once it has: stop after start_of_day())."""
    from minios_lab.guest.live.snap import start_info_address

    address = start_info_address(guest)
    host = host_parse(guest.read(address, 4096))
    mine = _guest_parse(guest)
    lines = [f"{'start_info':<15}{address:#x}",
             f"{'field':<15}{'host parse':<14}guest's own parse"]
    for field in BOOT_FIELDS:
        value = getattr(host, field)
        if mine is None:
            verdict = "(not parsed yet)"
        else:
            verdict = "same" if mine[field] == value else \
                f"DIFFERS: {_shown(field, mine[field])}"
        lines.append(f"{LABELS.get(field, field):<15}"
                     f"{_shown(field, value):<14}{verdict}")
    return "\n".join(lines)


def _string(guest: "LiveGuest", expression: str) -> str:
    """A char * expression's text ('0x3a2b "#DE"' -> '#DE')."""
    found = re.search(r'"(.*)"', guest.eval(expression))
    return found.group(1) if found else "?"


def trap_table(guest: "LiveGuest") -> list[TrapEntry]:
    """The guest's trap_table up to its sentinel, named from trap_descs."""
    count = guest.value("sizeof(trap_table) / sizeof(trap_table[0])")
    raw = guest.read("trap_table", 16 * count)
    entries = []
    for i in range(count):
        vector, flags = raw[16 * i], raw[16 * i + 1]
        cs = int.from_bytes(raw[16 * i + 2:16 * i + 4], "little")
        address = int.from_bytes(raw[16 * i + 8:16 * i + 16], "little")
        if address == 0:
            break
        desc = f"trap_descs[{i}]"
        entries.append(TrapEntry(
            vector, _string(guest, f"{desc}.mnemonic"),
            _string(guest, f"{desc}.name"), flags & TI_DPL_MASK,
            bool(flags & TI_MASK_EVENTS), cs,
            _string(guest, f"{desc}.entry_name"), address))
    return entries


def pt_regs(guest: "LiveGuest", expression: str = "regs") -> dict[str, int]:
    """The struct pt_regs that `expression` points at, field by field."""
    script = ("t = gdb.lookup_type('struct pt_regs'); "
              "print(' '.join(f'{f.name}:{f.bitpos // 8}' "
              "for f in t.fields()))")
    layout = [item.split(":") for item in guest.cli(f"python {script}")
              .split()]
    data = guest.read(guest.address(expression), 8 * len(layout))
    return {name: int.from_bytes(data[int(at):int(at) + 8], "little")
            for name, at in layout}


def _error_code_words(code: int) -> str:
    return ", ".join(yes if code & bit else no for bit, yes, no in PF_BITS)


def _function_of(guest: "LiveGuest", address: int) -> str:
    """The function holding a code address, with its file."""
    symbols = boot.load_symbols(guest.elf)
    name = symbols.resolve(address) if symbols else None
    source = symbols.source_line(address) if symbols else None
    where = name.split("+")[0] if name else f"{address:#x}"
    return f"{where} ({source.split(':')[0]})" if source else where


def fault_report(guest: "LiveGuest") -> str:
    """What the page-fault handler sees, stopped in do_page_fault."""
    try:
        frame = pt_regs(guest, "regs")
    except GdbError as err:
        raise LiveError("stop in do_page_fault first "
                        "(run_to('do_page_fault'))") from err
    cr2 = guest.value("trap_vcpu->arch.cr2")
    hardware = guest.registers(["cr2"])["cr2"]
    return "\n".join([
        f"vector         {frame['vector']}",
        f"cr2            {cr2:#x} (vcpu_info.arch.cr2, where Xen put it)",
        f"CPU's cr2      {hardware:#x}",
        f"error code     {frame['error_code']:#x}: "
        f"{_error_code_words(frame['error_code'])}",
        f"faulting rip   in {_function_of(guest, frame['rip'])}"])


def summary_agreement(snap: PoolSnapshot, console: list[str]) -> str:
    """The live snapshot held against the guest's own mm summary line."""
    printed = parse_guest_report(console)
    if "summary" not in printed:
        raise LiveError("the guest has not printed its mm summary yet: "
                        "stop after mm_chapter (run_to, then finish)")
    _, first, end, meta, free = printed["summary"]
    chunks = {k: len(p) for k, p in snap.free_chunks.items() if p}
    checks = [("pool pages", (snap.reserved, snap.nr_pages) == (first, end)),
              ("allocator's own pages", snap.meta_pages == meta),
              ("free pages", snap.free_pages == free),
              ("free chunks per order", chunks == printed["chunks"])]
    return "\n".join(f"{name:<24}{'same' if ok else 'DIFFERENT'}"
                     for name, ok in checks)


def location(file: str, function: str, text: str) -> str:
    """'file:line' of the first line of `function` in kernel/`file` that
    contains `text`."""
    lines = (boot.KERNEL_DIR / file).read_text().splitlines()
    start = next((i for i, line in enumerate(lines)
                  if re.match(rf"^\w.*\b{re.escape(function)}\(", line)),
                 None)
    if start is None:
        raise LookupError(f"no function {function} in kernel/{file}")
    for i in range(start, len(lines)):
        if text in lines[i]:
            return f"{file}:{i + 1}"
        if i > start and lines[i].startswith("}"):
            break
    raise LookupError(f"{text!r} is not in {function}() of kernel/{file}")
