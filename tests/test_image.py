"""minios_lab.guest.image: the guest image carries the notes Xen needs."""
from __future__ import annotations

import pytest

from minios_lab.guest.boot import build_image
from minios_lab.guest.image import note_names, sections, symbol, xen_notes


@pytest.fixture(scope="module")
def elf():
    return build_image()


def test_note_names_come_from_xen_header():
    names = note_names()
    assert names[1] == "ENTRY" and names[2] == "HYPERCALL_PAGE"
    assert names[6] == "GUEST_OS"


def test_image_has_the_notes_a_pv64_kernel_needs(elf):
    notes = {n.name: n.value for n in xen_notes(elf)}
    for needed in ("GUEST_OS", "XEN_VERSION", "LOADER", "ENTRY",
                   "HYPERCALL_PAGE", "VIRT_BASE"):
        assert needed in notes
    assert notes["XEN_VERSION"] == "xen-3.0"
    assert notes["LOADER"] == "generic"
    assert notes["ENTRY"] == symbol(elf, "_start")
    assert notes["HYPERCALL_PAGE"] == symbol(elf, "hypercall_page")
    assert notes["HYPERCALL_PAGE"] % 4096 == 0


def test_sections_are_sorted_and_text_is_executable(elf):
    secs = sections(elf)
    assert [s.address for s in secs] == sorted(s.address for s in secs)
    text = next(s for s in secs if s.name == ".text")
    assert "X" in text.flags and "W" not in text.flags
    with pytest.raises(LookupError):
        symbol(elf, "no_such_symbol")


def test_layout_lets_start_of_day_protect_the_code(elf):
    # kernel/setup.c unmaps page 0 and maps [4096, _erodata) read-only:
    # page 0 must hold nothing but _start, and the writable data must begin
    # on a page of its own after the read-only data.
    assert symbol(elf, "_text") == symbol(elf, "_start") == 0
    assert symbol(elf, "hypercall_page") == 4096
    assert symbol(elf, "_etext") <= symbol(elf, "_rodata")
    assert symbol(elf, "_erodata") <= symbol(elf, "_data")
    assert symbol(elf, "_data") % 4096 == 0
    writable = [s for s in sections(elf) if "W" in s.flags]
    assert writable and min(s.address for s in writable) >= \
        symbol(elf, "_data")
