"""The host build: compile errors, panics, caching, concurrent builds."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import edit
from minios_lab.build import cbuild
from minios_lab.errors import CompileError, KernelPanic
from minios_lab.start_of_day import StartOfDay, StartInfoError
from minios_lab.build.units import UNITS, load


def test_compile_error_names_kernel_file_and_line(kernel_copy):
    line = edit(kernel_copy / "start_of_day.c",
                "    bi->nr_args++;", "    bi->nr_args++ oops;")
    with pytest.raises(CompileError) as info:
        load("start_of_day", kernel_dir=kernel_copy)
    err = info.value
    assert ("kernel/start_of_day.c", line) in err.locations
    assert f"kernel/start_of_day.c:{line}:" in str(err)
    assert str(kernel_copy) not in str(err)   # no private paths, only kernel/...
    assert "Traceback" not in str(err)


def test_compile_error_in_header_is_reported(kernel_copy):
    edit(kernel_copy / "include" / "minios" / "start_of_day.h",
         "struct boot_info {", "struct boot_info { int missing_semicolon")
    with pytest.raises(CompileError) as info:
        load("start_of_day", kernel_dir=kernel_copy)
    assert any(f == "kernel/include/minios/start_of_day.h"
               for f, _ in info.value.locations)


def test_panic_becomes_kernel_panic_and_process_survives():
    sod = StartOfDay()
    with pytest.raises(KernelPanic) as info:
        sod.kernel.start_of_day(sod.make_start_info(magic=b"not-xen"))
    panic = info.value
    assert panic.file == "kernel/start_of_day.c"
    assert panic.line > 0
    assert "bad magic" in panic.message
    assert "PANIC at kernel/start_of_day.c" in panic.console
    # The kernel is still callable afterwards, and works.
    assert sod.parse(sod.make_start_info("x=1")).args == {"x": "1"}


def test_panic_from_nested_guard_unwinds_to_innermost_call():
    sod = StartOfDay()
    for _ in range(3):  # repeated panics leave no stale unwind target
        with pytest.raises(KernelPanic):
            sod.kernel.start_of_day(sod.make_start_info(nr_pages=0))
    assert sod.kernel.lib.host_take_outcome(sod.kernel.ffi.NULL) == 0


def test_edited_source_loads_fresh_in_same_process(kernel_copy):
    first = load("start_of_day", kernel_dir=kernel_copy)
    edit(kernel_copy / "start_of_day.c", '"absurd nr_pages"',
         '"nr_pages makes no sense"')
    second = load("start_of_day", kernel_dir=kernel_copy)
    assert first.module.__name__ != second.module.__name__
    for kernel, expected in ((first, "absurd"), (second, "makes no sense")):
        si = kernel.ffi.new("start_info_t *")
        kernel.ffi.memmove(si.magic, b"xen-3.0-x86_64", 14)
        bi = kernel.ffi.new("struct boot_info *")
        assert kernel.parse_start_info(si, bi) == -1
        assert expected in kernel.ffi.string(bi.error).decode()


def test_unchanged_unit_is_not_recompiled(kernel_copy, monkeypatch):
    module = cbuild.build("start_of_day", UNITS["start_of_day"], kernel_copy)
    del sys.modules[module.__name__]

    def refuse(*args, **kwargs):
        raise AssertionError("an unchanged unit was compiled again")

    monkeypatch.setattr(cbuild, "compile_kernel_objects", refuse)
    again = cbuild.build("start_of_day", UNITS["start_of_day"], kernel_copy)
    assert again.__name__ == module.__name__


def test_concurrent_builds_of_same_unit(kernel_copy):
    script = textwrap.dedent(f"""
        from pathlib import Path
        from minios_lab.start_of_day import parse
        from minios_lab.build.units import load
        k = load("start_of_day", kernel_dir=Path({str(kernel_copy)!r}))
        print(k.module.__name__)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert len({out.strip() for out, _ in outs}) == 1


def test_kernel_symbols_are_not_exported():
    module = load("libc").module
    dynsyms = subprocess.run(["nm", "-D", "--defined-only", module.__file__],
                             capture_output=True, text=True,
                             check=True).stdout.split()
    for name in ("memcpy", "strlen", "snprintf", "vsnprintf", "printf",
                 "panic", "console_write", "hypercall"):
        assert name not in dynsyms


def test_start_info_error_is_not_a_panic():
    sod = StartOfDay()
    with pytest.raises(StartInfoError, match="bad magic"):
        sod.parse(sod.make_start_info(magic=b"xen-3.0-x86_32p"))


# --- cffi's declarations come from the marked kernel headers ------------------

def test_syntax_error_in_marked_header_names_header_and_line(kernel_copy):
    line = edit(kernel_copy / "include" / "minios" / "mm.h",
                "unsigned long mm_free_page_count(void);",
                "unsigned long mm_free_page_count(void)")
    with pytest.raises(CompileError) as info:
        load("mm", kernel_dir=kernel_copy)
    files = {f for f, _ in info.value.locations}
    assert files == {"kernel/include/minios/mm.h"}
    assert any(abs(n - line) <= 2 for _, n in info.value.locations)
    assert str(kernel_copy) not in str(info.value)


def test_unbalanced_marker_names_header_and_line(kernel_copy):
    header = kernel_copy / "include" / "minios" / "mm.h"
    line = edit(header, "/* cffi: end */", "/* (no end) */")
    with pytest.raises(CompileError) as info:
        load("mm", kernel_dir=kernel_copy)
    begin = header.read_text().splitlines().index("/* cffi: begin */") + 1
    assert info.value.locations == [("kernel/include/minios/mm.h", begin)]
    assert "without" in str(info.value) and line > begin


def test_declaration_added_to_marked_header_reaches_python(kernel_copy):
    """A learner declares a function and a struct field once, in the
    header: Python sees both, and a declared but undefined function is
    left out instead of breaking the build."""
    edit(kernel_copy / "include" / "minios" / "mm.h",
         "void mm_check(void);",
         "void mm_check(void);\nunsigned long mm_answer(void);\n"
         "void mm_nowhere(void);")
    edit(kernel_copy / "include" / "minios" / "mm.h",
         "    unsigned long merges; /* buddies joined by free_pages() */",
         "    unsigned long merges;\n    unsigned long extra_counter;")
    with (kernel_copy / "mm" / "page_alloc.c").open("a") as source:
        source.write("\nunsigned long mm_answer(void)\n{\n    return 42;\n}\n")
    kernel = load("mm", kernel_dir=kernel_copy)
    assert kernel.mm_answer() == 42
    assert kernel.ffi.new("struct mm_stats *").extra_counter == 0
    assert not hasattr(kernel.lib, "mm_nowhere")


def test_generated_cdef_is_in_the_cache_key(kernel_copy, monkeypatch):
    """The generated cdef holds Xen's layouts (taken from Xen's headers,
    not a copy) and the marked declarations; it is part of the key."""
    unit = UNITS["traps"]
    text = cbuild._cdef_text(unit, kernel_copy)
    assert "struct trap_info\n{" in text and "/* xen/arch-x86/" in text
    assert "void do_exception(struct pt_regs *regs);" in text
    before = cbuild.unit_hash("traps", unit, kernel_copy)
    monkeypatch.setattr(cbuild, "_cdef_text",
                        lambda *args: text.replace("cr2", "cr3"))
    assert cbuild.unit_hash("traps", unit, kernel_copy) != before


def test_declaration_cffi_cannot_read_names_header_and_line(kernel_copy):
    """gcc takes it, cffi does not: still a CompileError at the header's
    line, not cffi's bare exception."""
    line = edit(kernel_copy / "include" / "minios" / "mm.h",
                "void mm_check(void);",
                "unsigned __int128 mm_wide(void);\nvoid mm_check(void);")
    with (kernel_copy / "mm" / "page_alloc.c").open("a") as source:
        source.write("\nunsigned __int128 mm_wide(void)\n{\n    return 1;\n}\n")
    with pytest.raises(CompileError) as info:
        load("mm", kernel_dir=kernel_copy)
    assert info.value.locations == [("kernel/include/minios/mm.h", line)]
    assert "__int128" in str(info.value)
