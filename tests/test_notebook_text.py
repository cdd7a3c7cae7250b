"""What notebooks print about a boot: stable words, no offsets or sizes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hypothesis import given, strategies as st

from minios_lab.guest.image import Section
from minios_lab.notebook.text import (crash_place, file_of, function_of,
                                      sections_overview, stable_xen_lines)


@dataclass
class Crash:
    symbol: Optional[str]
    source: Optional[str]


def test_function_and_file_without_offset_or_line() -> None:
    assert function_of("start_kernel+0x51") == "start_kernel"
    assert function_of("trap_demo_read+0x0") == "trap_demo_read"
    assert function_of("start_kernel") == "start_kernel"
    assert function_of(None) == "?"
    assert file_of("kernel/kernel.c:94") == "kernel/kernel.c"
    assert file_of("kernel/kernel.c") == "kernel/kernel.c"
    assert file_of("") == "?"


def test_crash_place() -> None:
    crash = Crash("start_kernel+0x51", "kernel/kernel.c:94")
    assert crash_place(crash) == "start_kernel, in kernel/kernel.c"
    assert crash_place(Crash("f+0x3", None)) == "f"
    assert crash_place(None) == "no crash report"


names = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)


@given(name=names, offset=st.integers(0, 1 << 20), line=st.integers(1, 9999),
       path=st.from_regex(r"kernel/([a-z_]+/)?[a-z_]+\.[cS]", fullmatch=True))
def test_two_builds_of_the_same_crash_read_the_same(
        name: str, offset: int, line: int, path: str) -> None:
    """Only offset and line differ between builds: the words do not."""
    one = Crash(f"{name}+{offset:#x}", f"{path}:{line}")
    other = Crash(f"{name}+{offset + 8:#x}", f"{path}:{line + 3}")
    assert crash_place(one) == crash_place(other) == f"{name}, in {path}"


def test_xen_lines_that_vary_are_dropped() -> None:
    lines = ["(XEN) *** Serial input to DOM0 (type 'CTRL-a' three times "
             "to switch input)",
             "(XEN) Freed 656kB init memory",
             "(XEN) Xen version 4.17.5 (Debian 4.17.5+72-1) (gcc 12.2.0)",
             "(XEN)  Dom0 alloc.:   0000000010000000->0000000014000000",
             "(XEN) Hardware Dom0 shutdown: rebooting machine"]
    assert stable_xen_lines(lines) == [lines[0], lines[-1]]


@given(kb=st.integers(1, 100000))
def test_any_freed_size_is_dropped(kb: int) -> None:
    assert stable_xen_lines([f"(XEN) Freed {kb}kB init memory"]) == []


def test_sections_overview_has_no_sizes_or_addresses() -> None:
    small = [Section(".text", 0, 46003, "AX"), Section(".data", 0x10000, 184,
                                                        "AW")]
    large = [Section(".text", 0, 52000, "AX"), Section(".data", 0x11000, 190,
                                                        "AW")]
    text = sections_overview(small)
    assert text == sections_overview(large)
    assert ".text" in text and "AX" in text and "46003" not in text
    shifted = [Section(".data", 0x10010, 184, "AW")]
    assert sections_overview(shifted).splitlines()[1].endswith("no")


def _sanitize(text: str) -> str:
    """Apply tests/nbval_sanitize.cfg as nbval does (each rule in order)."""
    import configparser
    import re
    from pathlib import Path
    config = configparser.ConfigParser()
    config.read(Path(__file__).with_name("nbval_sanitize.cfg"))
    for section in config.sections():
        text = re.sub(config[section]["regex"], config[section]["replace"],
                      text)
    return text


def test_sanitize_makes_two_builds_read_the_same() -> None:
    pairs = [("crash in start_kernel+0x51 kernel/kernel.c:94",
              "crash in start_kernel+0x6d kernel/kernel.c:101"),
             ("// kernel/mm/page_alloc.c:182-205",
              "// kernel/mm/page_alloc.c:190-215"),
             ("KernelPanic: bad magic (at kernel/start_of_day.c:176)",
              "KernelPanic: bad magic (at kernel/start_of_day.c:180)"),
             ("(XEN) Freed 656kB init memory", "(XEN) Freed 668kB init memory"),
             ("  start_info     0x55c4bbfaab40", "  start_info     0x1e4f2a0"),
             ('<span style="color: inherit; background-color: transparent; '
              'padding-left: 5px; padding-right: 5px;"> 9</span>{',
              '<span style="color: inherit; background-color: transparent; '
              'padding-left: 5px; padding-right: 5px;">192</span>{')]
    for one, other in pairs:
        assert _sanitize(one) == _sanitize(other), (one, other)


def test_sanitize_leaves_what_is_stable() -> None:
    for text in ("[%+p]      [1]          kernel [+0x1]       glibc [+0x1]",
                 "mfn 0xb7ff pfn 0x3fff rw", "chapter mm: PASS",
                 "do_trap: unhandled #UD invalid opcode at rip 0x2000",
                 "// kernel/mm/page_alloc.c", "trap_demo_read"):
        assert _sanitize(text) == text
    assert "start_kernel" in _sanitize("start_kernel+0x51")
    assert "kernel/kernel.c" in _sanitize("kernel/kernel.c:94")
