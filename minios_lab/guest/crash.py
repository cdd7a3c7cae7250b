"""Crash reports of the guest: who faulted, where, and why.

A guest crash is read from two sources, the best first:

* the guest's own last words. From start of day on, the guest's page-fault
  handler prints one line before it panics (kernel/traps.c)::

      page fault: cr2 0x0 (read, not present, kernel) at rip 0x33e4

  which gives the faulting address (cr2), the decoded error code and the
  faulting instruction; and every panic prints
  ``PANIC at kernel/file.c:line: message``.
* Xen's register dump, printed when Xen itself crashes the domain (a fault
  before the guest installed its trap table, or in its handlers): the RIP
  line, cr2, and the words of the guest's stack.

The rip is then named with the symbols and the DWARF line table of the
booted ELF: ``symbol`` (function+0xoff) and ``source`` (kernel/file.c:line).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

XEN_PREFIX = "(XEN)"
LAST_LINES = 15        # the guest lines a crash report keeps
RIP_RE = re.compile(r"RIP:\s+([0-9a-f]{4}):\[<([0-9a-f]+)>\]")
CR2_RE = re.compile(r"cr2: ([0-9a-f]+)")
HEX_WORDS_RE = re.compile(r"^\s*([0-9a-f]{16}\s*)+$")
GUEST_PANIC_RE = re.compile(r"PANIC at (kernel/\S+:\d+): (.*)$")
GUEST_RIP_RE = re.compile(r"\brip (?:0x)?([0-9a-f]{1,16})\b")
GUEST_PAGE_FAULT_RE = re.compile(
    r"page fault: cr2 0x([0-9a-f]+) \(([^)]*)\) at rip 0x([0-9a-f]+)")


# --- symbols -----------------------------------------------------------------

class Symbols:
    """Symbols of the guest ELF, to name addresses in its code."""

    KINDS = ("STT_FUNC", "STT_NOTYPE", "STT_OBJECT")

    def __init__(self, elf: Path):
        from elftools.elf.elffile import ELFFile

        entries: list[tuple[int, int, str]] = []
        self._objects: set[str] = set()   # data in .text: hypercall_page
        with open(elf, "rb") as f:
            elf_file = ELFFile(f)
            text = elf_file.get_section_by_name(".text")
            self._code = text.data() if text else b""
            self._code_start = text["sh_addr"] if text else 0
            symtab = elf_file.get_section_by_name(".symtab")
            for sym in symtab.iter_symbols() if symtab else []:
                if sym["st_info"]["type"] in self.KINDS and sym.name \
                        and sym["st_shndx"] != "SHN_UNDEF":
                    entries.append((sym["st_value"], sym["st_size"],
                                    sym.name))
                    if sym["st_info"]["type"] == "STT_OBJECT":
                        self._objects.add(sym.name)
        # At equal addresses the largest symbol (a sized function rather
        # than a label such as _text) sorts last and is the one chosen.
        entries.sort()
        self._elf = elf
        self._entries = entries
        self._starts = [e[0] for e in entries]
        self._etext = next((a for a, _, n in entries if n == "_etext"), None)

    def in_text(self, address: int) -> bool:
        return self._etext is not None and 0 <= address < self._etext

    def _containing(self, address: int) -> Optional[tuple[int, int, str]]:
        if not self.in_text(address):
            return None
        i = bisect.bisect_right(self._starts, address) - 1
        return self._entries[i] if i >= 0 else None

    def resolve(self, address: int) -> Optional[str]:
        """'function+0xoff' for an address in the kernel's code, or None."""
        entry = self._containing(address)
        if entry is None:
            return None
        start, _, name = entry
        return f"{name}+{address - start:#x}"

    def source_line(self, address: int) -> Optional[str]:
        """'kernel/kernel.c:37' for a code address, from the DWARF line
        table (for inlined code: the innermost function's line)."""
        entry = self._containing(address)
        if entry is None or entry[2] in self._objects:
            return None
        for rows, files in self._line_tables():
            for prev, row in zip(rows, rows[1:]):
                if prev.address <= address < row.address \
                        and not prev.end_sequence:
                    return f"{files(prev.file)}:{prev.line}"
        return None

    def _line_tables(self):
        with open(self._elf, "rb") as f:
            from elftools.elf.elffile import ELFFile

            elf = ELFFile(f)
            if not elf.has_dwarf_info():
                return
            dwarf = elf.get_dwarf_info()
            for cu in dwarf.iter_CUs():
                program = dwarf.line_program_for_CU(cu)
                if program is not None:
                    rows = [e.state for e in program.get_entries() if e.state]
                    yield rows, _file_namer(program.header)

    def _code_at(self, address: int, length: int) -> bytes:
        offset = address - self._code_start
        if offset < 0:
            return b""
        return self._code[offset:offset + length]

    def is_return_address(self, address: int) -> bool:
        """Does a call instruction end just before address? (A stack word
        that passes this test is probably a return address.)"""
        if not self.in_text(address):
            return False
        direct = self._code_at(address - 5, 1) == b"\xe8"  # call rel32
        indirect = self._code_at(address - 2, 2)           # call *%reg
        return direct or (len(indirect) == 2 and indirect[0] == 0xFF
                          and indirect[1] & 0xF8 == 0xD0)


def _file_namer(header) -> Callable[[int], str]:
    """file index -> 'dir/name' for one DWARF line program."""
    base = 0 if header.version >= 5 else 1   # DWARF 5 counts from 0
    dirs = [d.decode() for d in header.include_directory]

    def name(index: int) -> str:
        entry = header.file_entry[index - base]
        file = entry.name.decode()
        at = entry.dir_index - (0 if header.version >= 5 else 1)
        if file.startswith("/") or at <= 0 or at >= len(dirs):
            return file
        return f"{dirs[at]}/{file}"
    return name


def load_symbols(elf: Path) -> Optional[Symbols]:
    """Symbols of elf, or None if it is missing or not an ELF file."""
    from elftools.common.exceptions import ELFError

    try:
        return Symbols(elf)
    except (OSError, ELFError):
        return None


# --- crash reports -----------------------------------------------------------

@dataclass
class CrashReport:
    """What is known about a crash of the guest (or of Xen)."""

    kind: str                     # "dom0 crash", "xen panic", "reset"
    reason: str                   # Xen's (or the guest's) one-line cause
    last_lines: list[str]         # the guest's last console lines
    dump: list[str]               # Xen's lines after the guest's last one
    rip: Optional[int] = None     # faulting instruction, if Xen dumped it
    symbol: Optional[str] = None  # rip as function+0xoff
    source: Optional[str] = None  # rip as kernel/file.c:line
    cr2: Optional[int] = None     # faulting address of a page fault
    stack_symbols: list[str] = field(default_factory=list)  # callers?
    fault: Optional[str] = None   # "read, not present, kernel": the error
                                  # code, as the guest's handler decoded it

    def __str__(self) -> str:
        where = ""
        if self.rip is not None:
            line = f", {self.source}" if self.source else ""
            where = f" at {self.symbol or '?'} (rip {self.rip:#x}{line})"
        return f"{self.kind}{where}: {self.reason}"

    def report(self) -> str:
        out = [str(self)]
        if self.cr2 is not None:
            how = f" ({self.fault})" if self.fault else ""
            out.append(f"  page fault address (cr2): {self.cr2:#x}{how}")
        if self.stack_symbols:
            out.append("  return addresses on the guest stack: "
                       + ", ".join(self.stack_symbols))
        out.append("  last guest lines:")
        out += [f"    {line}" for line in self.last_lines] or ["    (none)"]
        return "\n".join(out)


def _strip_xen(line: str) -> str:
    return line[len(XEN_PREFIX):].strip()


def _panic_message(dump: list[str]) -> Optional[str]:
    for i, line in enumerate(dump):
        if "Panic on CPU" in line:
            rest = [_strip_xen(x) for x in dump[i + 1:]]
            words = [x for x in rest if x and not x.startswith("****")]
            return words[0] if words else "Xen panic"
    return None


def _crash_reason(dump: list[str], guest: list[str]) -> str:
    panic = _panic_message(dump)
    if panic:
        return panic
    for line in dump:
        text = _strip_xen(line)
        if "Unhandled" in text or "fault" in text.lower():
            return text
    for line in reversed(guest):
        if "PANIC" in line:
            return line.strip()
    crashed = [_strip_xen(x) for x in dump if "crashed" in x]
    return crashed[-1] if crashed else "crashed"


def _stack_words(dump: list[str]) -> list[int]:
    words: list[int] = []
    inside = False
    for line in dump:
        text = _strip_xen(line)
        if text.startswith("Guest stack trace"):
            inside = True
        elif inside and HEX_WORDS_RE.match(text):
            words += [int(w, 16) for w in text.split()]
        elif inside:
            break
    return words


def _crash_dump(lines: list[str], guest_count: int) -> list[str]:
    """Xen's lines after the guest's last line (or Xen's last lines)."""
    last_guest = -1
    for i, line in enumerate(lines):
        if not line.startswith(XEN_PREFIX):
            last_guest = i
    if guest_count == 0:
        return lines[-15:]
    return lines[last_guest + 1:][-80:]


def _from_guest_panic(report: CrashReport, guest: list[str]) -> None:
    """Fill where-from details from the guest's own PANIC line, if any: the
    kernel's file:line, and a rip the message names (a trap handler's)."""
    for line in reversed(guest):
        m = GUEST_PANIC_RE.search(line)
        if not m:
            continue
        report.source = report.source or m.group(1)
        rip = GUEST_RIP_RE.search(m.group(2))
        if rip and report.rip is None:
            report.rip = int(rip.group(1), 16)
        return


def _from_guest_page_fault(report: CrashReport, guest: list[str]) -> None:
    """cr2, rip and the decoded error code from the guest's own page-fault
    line (its last one: a fault in the handler would print a second)."""
    for line in reversed(guest):
        m = GUEST_PAGE_FAULT_RE.search(line)
        if m:
            report.cr2 = int(m.group(1), 16)
            report.fault = m.group(2)
            report.rip = int(m.group(3), 16)
            return


def make_crash_report(kind: str, lines: list[str], guest: list[str],
                      symbols: Optional[Symbols]) -> CrashReport:
    dump = _crash_dump(lines, len(guest))
    report = CrashReport(kind, _crash_reason(dump, guest),
                         guest[-LAST_LINES:], dump)
    _from_guest_page_fault(report, guest)
    for line in dump:
        rip, cr2 = RIP_RE.search(line), CR2_RE.search(line)
        if rip and report.rip is None:
            report.rip = int(rip.group(2), 16)
        if cr2 and report.cr2 is None:
            report.cr2 = int(cr2.group(1), 16)
    _from_guest_panic(report, guest)
    if symbols is not None:
        if report.rip is not None:
            report.symbol = symbols.resolve(report.rip)
            report.source = symbols.source_line(report.rip) or report.source
        report.stack_symbols = [symbols.resolve(w) or hex(w)
                                for w in _stack_words(dump)
                                if symbols.is_return_address(w)]
    return report

