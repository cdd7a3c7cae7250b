"""Look inside the guest image: Xen's ELF notes, sections, symbols.

The note names are read from Xen's own <xen/elfnote.h> at run time, so
what the notebook prints is what Xen's loader will understand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elftools.elf.elffile import ELFFile

from minios_lab.build.toolchain import xen_include_dir


@dataclass(frozen=True)
class Note:
    kind: int
    name: str          # XEN_ELFNOTE_... without the prefix
    value: str | int   # text notes decoded, number notes as int


@dataclass(frozen=True)
class Section:
    name: str
    address: int
    size: int
    flags: str   # "A" alloc, "W" write, "X" exec


@lru_cache(maxsize=1)
def note_names() -> dict[int, str]:
    """{number: name} of the XEN_ELFNOTE_* types in Xen's header."""
    text = (xen_include_dir() / "xen" / "elfnote.h").read_text()
    return {int(num, 0): name for name, num in re.findall(
        r"#define XEN_ELFNOTE_(\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*$", text, re.M)}


def _decode(desc: bytes) -> str | int:
    if desc.endswith(b"\0") and desc[:-1].isascii() and \
            all(32 <= b < 127 for b in desc[:-1]):
        return desc[:-1].decode()
    return int.from_bytes(desc, "little")


def _parse_notes(data: bytes) -> list[tuple[str, int, bytes]]:
    """(name, type, descriptor) of each ELF note in a PT_NOTE segment.

    Parsed by hand: each note is namesz, descsz, type (4 bytes each), then
    the name and the descriptor, each padded to 4 bytes.
    """
    notes, at = [], 0
    while at + 12 <= len(data):
        namesz, descsz, kind = (int.from_bytes(data[at + i:at + i + 4],
                                               "little") for i in (0, 4, 8))
        at += 12
        name = data[at:at + namesz].rstrip(b"\0").decode("latin-1")
        at += (namesz + 3) & ~3
        notes.append((name, kind, data[at:at + descsz]))
        at += (descsz + 3) & ~3
    return notes


def xen_notes(elf: Path) -> list[Note]:
    """The notes named "Xen" in the image, in file order."""
    names, found = note_names(), []
    with open(elf, "rb") as f:
        for segment in ELFFile(f).iter_segments():
            if segment["p_type"] != "PT_NOTE":
                continue
            for name, kind, desc in _parse_notes(segment.data()):
                if name == "Xen":
                    found.append(Note(kind, names.get(kind, f"type {kind}"),
                                      _decode(desc)))
    return found


def sections(elf: Path) -> list[Section]:
    """The sections that take space in memory (SHF_ALLOC), by address."""
    out = []
    with open(elf, "rb") as f:
        for s in ELFFile(f).iter_sections():
            flags = s["sh_flags"]
            if not flags & 0x2 or s["sh_size"] == 0:
                continue
            text = "A" + ("W" if flags & 0x1 else "") + ("X" if flags & 0x4 else "")
            out.append(Section(s.name, s["sh_addr"], s["sh_size"], text))
    return sorted(out, key=lambda s: s.address)


def symbol(elf: Path, name: str) -> int:
    """The address of a symbol (e.g. "hypercall_page")."""
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        for sym in symtab.get_symbol_by_name(name) or []:
            return sym["st_value"]
    raise LookupError(f"no symbol {name!r} in {elf}")
