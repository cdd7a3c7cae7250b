"""Helpers of the final notebook: build log, image tables, chapter table."""
from __future__ import annotations

import subprocess
from pathlib import Path

from minios_lab.guest.boot import KERNEL_DIR, BootResult, image_path, load_symbols
from minios_lab.guest.image import sections, symbol, xen_notes


def build_log(kernel_dir: Path = KERNEL_DIR, build: str = "build/fresh") -> str:
    """Build the image from scratch in its own folder; return make's output.

    A separate build folder leaves the image the other notebooks use alone.
    """
    make = ["make", "--no-print-directory", "-C", str(kernel_dir),
            f"BUILD={build}"]
    subprocess.run([*make, "clean"], capture_output=True, check=True)
    proc = subprocess.run(make, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return proc.stdout


def notes_table(elf: Path) -> str:
    rows = [f"{'note':<16} value"]
    for note in xen_notes(elf):
        value = note.value if isinstance(note.value, str) else f"{note.value:#x}"
        rows.append(f"{note.name:<16} {value}")
    return "\n".join(rows)


def sections_table(elf: Path) -> str:
    rows = [f"{'section':<12} {'address':>10} {'size':>9}  flags"]
    for s in sections(elf):
        rows.append(f"{s.name:<12} {s.address:>#10x} {s.size:>9}  {s.flags}")
    rows.append(f"{'_end':<12} {symbol(elf, '_end'):>#10x}")
    return "\n".join(rows)


def chapter_table(result: BootResult) -> str:
    """One row per chapter the guest ran: PASS/FAIL and how many lines."""
    rows = [f"{'chapter':<12} {'result':<6} {'lines':>5}"]
    for name, verdict in result.chapters.items():
        rows.append(f"{name:<12} {verdict:<6} {len(result.section(name)):>5}")
    rows.append(f"guest result: {result.result}")
    return "\n".join(rows)


def echo_guest(line: str) -> None:
    """For boot(echo=...): print the guest's lines as they come, not Xen's."""
    if not line.startswith("(XEN)"):
        print(line, flush=True)


def crash_summary(result: BootResult, kernel_dir: Path = KERNEL_DIR) -> str:
    """What a crashed boot says, without what varies from one build to the
    next (addresses in the code are shown by name, offsets are left out):

        outcome   crash (dom0 crash)
        fault     read, not present, kernel
        address   0x0 (cr2)
        function  start_kernel
        source    kernel/kernel.c:111
    """
    crash = result.crash
    if crash is None:
        return f"outcome   {result.outcome} (no crash)"
    rows = [f"outcome   {result.outcome} ({crash.kind})"]
    if crash.fault:
        rows.append(f"fault     {crash.fault}")
    if crash.cr2 is not None:
        symbols = load_symbols(image_path(kernel_dir))
        in_page_0 = crash.cr2 < 4096       # unmapped: a NULL pointer
        named = symbols.resolve(crash.cr2) \
            if symbols and not in_page_0 else None
        where = f"{named} (in the kernel's code)" if named \
            else f"{crash.cr2:#x}"
        rows.append(f"address   {where} (cr2)")
    if crash.symbol:
        rows.append(f"function  {crash.symbol.split('+')[0]}")
    if crash.source:
        rows.append(f"source    {crash.source}")
    return "\n".join(rows)
