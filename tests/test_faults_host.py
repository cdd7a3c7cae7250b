"""Faults injected into host-built kernel code: each ends in a Python
exception, the test process lives on, other instances keep working.

Every fault is injected into a private copy of kernel/ (the kernel_copy
fixture), never into kernel/ itself.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from conftest import REPO, edit
from minios_lab.build import cbuild
from minios_lab.errors import (CompileError, CompileWarning, KernelFault,
                               KernelInterrupt, KernelPanic, KernelUnusable,
                               ToolchainError)
from minios_lab.xen.hypervisor import Hypervisor
from minios_lab.mm import Heap, PageAllocator
from minios_lab.build.units import UNITS, load

STRLEN = "    while (s[n] != '\\0')\n        n++;\n    return n;"
ALLOC_START = '    pool_check_ready("alloc_pages", order);'


def inject(kernel_dir: Path, file: str, old: str, new: str) -> int:
    """Replace `old` by `new` in kernel_dir/file; the line of the change."""
    return edit(kernel_dir / file, old, new)


def strlen_fault(kernel_dir: Path, code: str, arg: bytes):
    """Put `code` before strlen's loop, build libc from kernel_dir and call
    strlen(arg), which must fault: (the unit, the fault, code's line)."""
    line = inject(kernel_dir, "lib/string.c", STRLEN, code + STRLEN)
    libc = load("libc", kernel_dir=kernel_dir)
    with pytest.raises(KernelFault) as info:
        libc.strlen(arg)
    return libc, info.value, line


def still_alive() -> None:
    """The process and the reference units still work after a fault."""
    libc = load("libc")
    assert libc.strlen(b"alive") == 5
    pool = PageAllocator(32)
    pool.free(pool.alloc(1), 1)
    pool.check()


def assert_unusable(kernel) -> None:
    with pytest.raises(KernelUnusable, match="create a fresh one"):
        kernel.strlen(b"x")


def no_stale_entries() -> None:
    """Every published module in the cache is complete (size and digest)."""
    for meta in cbuild.build_dir().glob("*.so.json"):
        target = meta.with_name(meta.name[:-len(".json")])
        if target.exists():
            assert target.stat().st_size == json.loads(meta.read_text())[
                "size"]


# --- SIGSEGV, SIGBUS, SIGFPE, SIGILL in kernel code ----------------------------

def test_null_dereference_names_function_file_line_and_call():
    libc = load("libc")
    with pytest.raises(KernelFault) as info:
        libc.strlen(libc.ffi.NULL)
    fault = info.value
    assert fault.signal == "SIGSEGV"
    assert fault.address == 0 and fault.access == "read"
    assert "NULL pointer" in fault.reason
    assert fault.function == "strlen"
    assert fault.file == "kernel/lib/string.c"
    assert fault.line == 35          # while (s[n] != '\0')
    assert fault.call.startswith("strlen(<cdata")
    assert "test_faults_host.py" in fault.call
    assert "strlen+0x" in str(fault) and "kernel/lib/string.c:35" in str(fault)
    assert_unusable(libc)
    still_alive()


def test_other_instances_of_the_same_unit_keep_working():
    first, second = load("libc"), load("libc")
    assert first.module is second.module
    with pytest.raises(KernelFault):
        first.strlen(first.ffi.NULL)
    assert second.strlen(b"four") == 4
    assert_unusable(first)


def test_wild_write_to_unmapped_address(cached_copy):
    line = inject(cached_copy, "mm/page_alloc.c", ALLOC_START,
                  ALLOC_START + "\n    *(volatile unsigned long *)"
                  "0x7ead00001000UL = order;")
    kernel = load("mm", kernel_dir=cached_copy)
    with pytest.raises(KernelFault) as info:
        PageAllocator(64, kernel=kernel).alloc(0)
    fault = info.value
    assert (fault.address, fault.access) == (0x7EAD00001000, "write")
    assert fault.reason == "nothing is mapped there"
    assert (fault.function, fault.file, fault.line) == (
        "alloc_pages", "kernel/mm/page_alloc.c", line + 1)
    assert fault.call.startswith("alloc_pages(0)")
    still_alive()


def test_write_to_read_only_memory(cached_copy):
    _, fault, _ = strlen_fault(
        cached_copy, "    ((volatile char *)\"read-only\")[0] = s[0];\n", b"x")
    assert fault.access == "write"
    assert "mapped but not for this access" in fault.reason
    assert fault.function == "strlen"


def test_call_through_null_function_pointer(cached_copy):
    inject(cached_copy, "lib/string.c", STRLEN,
           "    if (s[0] == 'J') {\n"
           "        void (*volatile jump)(void) = 0;\n"
           "        jump();\n    }\n" + STRLEN)
    libc = load("libc", kernel_dir=cached_copy)
    assert libc.strlen(b"ok") == 2
    with pytest.raises(KernelFault) as info:
        libc.strlen(b"Jump")
    assert info.value.pc == 0 and info.value.access == "execute"
    assert "NULL pointer" in info.value.reason
    assert "pc 0x0" in str(info.value)


def test_division_by_zero_is_sigfpe(cached_copy):
    _, fault, line = strlen_fault(
        cached_copy, "    n = 100 / (*(volatile size_t *)&n);\n", b"x")
    assert fault.signal == "SIGFPE" and fault.address is None
    assert "division by zero" in fault.reason
    assert (fault.file, fault.line) == ("kernel/lib/string.c", line)


def test_builtin_trap_is_sigill(cached_copy):
    _, fault, _ = strlen_fault(
        cached_copy, "    if (s[0] == 'T')\n        __builtin_trap();\n",
        b"Trap")
    assert fault.signal == "SIGILL"
    assert fault.function == "strlen"


def test_wild_pointer_non_canonical_address(cached_copy):
    libc, fault, _ = strlen_fault(
        cached_copy, "    if (s[0] == 'W')\n        n = *(volatile size_t *)"
        "0x8000000000000000UL;\n", b"Wild")
    assert fault.signal in ("SIGSEGV", "SIGBUS")
    assert "wild pointer" in fault.reason
    assert libc.broken is fault


def test_endless_recursion_is_a_stack_overflow(cached_copy):
    _, fault, _ = strlen_fault(cached_copy,
                               "    volatile char frame[256];\n"
                               "    frame[0] = s[0];\n"
                               "    if (frame[0] == 'R')\n"
                               "        n = strlen(s) + frame[1];\n",
                               b"Recurse")
    assert "stack overflow" in fault.reason
    assert fault.function == "strlen"
    still_alive()
    with pytest.raises(KernelFault):   # the handler's own stack is reusable
        load("libc", kernel_dir=cached_copy).strlen(b"Recurse")


def test_use_after_the_pools_memory_is_unmapped():
    pa = PageAllocator(64)
    pfn = pa.alloc(0)
    pa.memory._finalizer()           # the pool's memory goes away
    with pytest.raises(KernelFault) as info:
        pa.alloc(0)
    fault = info.value
    assert fault.function == "page_pool_select"
    assert fault.address >= pa.memory.base
    with pytest.raises(KernelUnusable):
        pa.free(pfn, 0)
    still_alive()


def test_use_after_the_pool_object_is_collected():
    pa = PageAllocator(64)
    kernel = pa.kernel
    del pa
    gc.collect()
    with pytest.raises(KernelFault) as info:
        kernel.alloc_pages(0)
    assert info.value.function == "alloc_pages"


def test_heap_write_to_unmapped_memory_is_a_value_error():
    heap = Heap(16)
    with pytest.raises(ValueError, match="not mapped"):
        heap.write(0x10, b"boom")
    with pytest.raises(ValueError, match="not mapped"):
        heap.read(0x7EAD00000000, 8)
    address = heap.malloc(8)
    heap.write(address, b"12345678")
    assert heap.read(address, 8) == b"12345678"
    heap.check()


def test_fault_in_the_kernels_printf_through_variadic_snprintf(cached_copy):
    line = inject(cached_copy, "lib/printf.c",
                  "    va_copy(args, ap);\n    format_all(",
                  "    va_copy(args, ap);\n"
                  "    if (fmt[0] == '!')\n"
                  "        out.len = *(volatile size_t *)(size + 0xdead0000UL);\n"
                  "    format_all(")
    from minios_lab.libc import Libc
    libc = Libc(load("libc", kernel_dir=cached_copy))
    assert libc.sprintf("%d-%s", -7, "ok") == "-7-ok"
    with pytest.raises(KernelFault) as info:
        libc.sprintf("!%d", 1)
    fault = info.value
    assert (fault.function, fault.file, fault.line) == (
        "vsnprintf", "kernel/lib/printf.c", line + 2)
    assert fault.address == 0xDEAD0000 and fault.call.startswith("snprintf(")
    with pytest.raises(KernelUnusable):
        libc.sprintf("%d", 1)


def test_variadic_arguments_must_be_cdata():
    libc = load("libc")
    buf = libc.ffi.new("char[]", 16)
    with pytest.raises(TypeError, match="cdata"):
        libc.snprintf(buf, 16, b"%d", 5)
    assert libc.snprintf(buf, 16, b"%d", libc.ffi.cast("int", 5)) == 1


# --- panics and faults in nested calls and hypercalls --------------------------

def test_bug_in_a_nested_call_is_a_panic_and_the_instance_goes_on(cached_copy):
    line = inject(cached_copy, "lib/string.c", STRLEN,
                  "    BUG_ON(s[0] == '!');\n" + STRLEN)
    libc = load("libc", kernel_dir=cached_copy)
    buf = libc.ffi.new("char[]", 8)
    with pytest.raises(KernelPanic) as info:
        libc.strlen(b"!")
    assert (info.value.file, info.value.line) == ("kernel/lib/string.c", line)
    assert libc.broken is None and libc.strlen(b"ok") == 2
    assert libc.strcpy(buf, b"fine") == buf


class FaultingXen(Hypervisor):
    """A 'Xen' whose console handler calls back into kernel code that
    faults: a fault two guards deep."""

    victim = None

    def do_console_io(self, cmd, count, ptr, *rest):
        self.victim.strlen(self.victim.ffi.NULL)
        return 0


def test_fault_in_kernel_code_called_from_a_hypercall():
    inner = load("libc")
    xen = FaultingXen()
    xen.victim = inner
    outer = load("mm", hypervisor=xen)
    pa = PageAllocator(64, kernel=outer)
    with pytest.raises(KernelFault) as info:
        pa.summary()                        # printk -> console_io -> fault
    assert info.value.function == "strlen"
    assert outer.broken is info.value and inner.broken is info.value
    fresh = PageAllocator(64)
    assert "pages" in fresh.summary()


def test_bad_pointer_in_a_hypercall_is_efault_not_a_crash(cached_copy):
    inject(cached_copy, "console.c",
           "    HYPERVISOR_console_io(CONSOLEIO_write, (int)len, text);",
           "    HYPERVISOR_console_io(CONSOLEIO_write, (int)len,\n"
           "                          (const char *)0x10);")
    kernel = load("mm", kernel_dir=cached_copy)
    PageAllocator(64, kernel=kernel).summary()
    last = kernel.hypervisor.calls[-1]
    assert (last.name, last.result) == ("console_io", -14)
    assert "EFAULT" in last.note and kernel.broken is None


def test_bad_pointer_to_an_event_channel_op_is_efault(cached_copy):
    from minios_lab.events import EventChannels, EventError
    inject(cached_copy, "events.c",
           "HYPERVISOR_event_channel_op(EVTCHNOP_bind_virq, &op);",
           "HYPERVISOR_event_channel_op(EVTCHNOP_bind_virq,\n"
           "                                                 (void *)0x10);")
    events = EventChannels(kernel_dir=cached_copy)
    with pytest.raises(EventError) as info:
        events.bind_virq(events.lib.VIRQ_TIMER)
    assert info.value.errno == 14               # EFAULT, as Xen says
    assert "cannot write" in events.xen.calls[-1].note
    assert events.kernel.broken is None


# --- Interrupt (SIGINT) ------------------------------------------------------------

class _Killer:
    """SIGINT to this process after a delay, sent by another process, as
    Jupyter's Interrupt is (a Python thread could be starved of the GIL by
    a kernel loop that keeps calling into Python)."""

    def __init__(self, seconds: float):
        self.proc = subprocess.Popen(
            ["sh", "-c", f"sleep {seconds}; kill -INT {os.getpid()}"])

    def join(self) -> None:
        self.proc.wait(timeout=60)


def interrupt_main_thread_after(seconds: float) -> _Killer:
    return _Killer(seconds)


def test_endless_loop_is_interrupted(cached_copy):
    inject(cached_copy, "lib/string.c", STRLEN,
           "    while (s[0] == 'L')\n        n++;\n" + STRLEN)
    libc = load("libc", kernel_dir=cached_copy)
    timer = interrupt_main_thread_after(0.3)
    with pytest.raises(KeyboardInterrupt) as info:
        libc.strlen(b"Loop")
    timer.join()
    assert isinstance(info.value, KernelInterrupt)
    assert "strlen" in str(info.value) and "kernel/lib/string.c" in str(
        info.value)
    assert_unusable(libc)
    assert load("libc", kernel_dir=cached_copy).strlen(b"no loop") == 7
    still_alive()


@pytest.mark.parametrize("delay", [0.2, 0.35, 0.5])
def test_endless_loop_of_hypercalls_is_interrupted(cached_copy, delay):
    """The signal may land in kernel code, in Python serving the hypercall,
    or in between (Python taking the GIL): always a KeyboardInterrupt, and
    the instance is unusable."""
    inject(cached_copy, "lib/string.c", STRLEN,
           "    while (s[0] == 'P')\n        printk(\"again\\n\");\n"
           + STRLEN)
    edit(cached_copy / "lib" / "string.c", "#include <minios/string.h>",
         "#include <minios/string.h>\n#include <minios/console.h>")
    libc = load("libc", kernel_dir=cached_copy)
    # No garbage collection during the loop: a signal that lands in a
    # finalizer or a gc callback is printed by Python as ignored.
    gc.collect()
    gc.disable()
    try:
        timer = interrupt_main_thread_after(delay)
        with pytest.raises(KeyboardInterrupt):
            libc.strlen(b"Print")
        timer.join()
    finally:
        gc.enable()
    assert len(libc.hypervisor.console) > 10      # it did loop
    assert_unusable(libc)
    assert load("libc", kernel_dir=cached_copy).strlen(b"fresh") == 5


def test_interrupt_outside_kernel_code_is_pythons_own():
    load("libc").strlen(b"install the handler")
    timer = interrupt_main_thread_after(0.2)
    with pytest.raises(KeyboardInterrupt) as info:
        threading.Event().wait(30)
    timer.join()
    assert not isinstance(info.value, KernelInterrupt)


def test_interrupt_after_python_replaced_the_handler(cached_copy):
    """ipykernel re-installs Python's SIGINT handler for every cell."""
    inject(cached_copy, "lib/string.c", STRLEN,
           "    while (s[0] == 'L')\n        n++;\n" + STRLEN)
    libc = load("libc", kernel_dir=cached_copy)
    libc.strlen(b"x")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = interrupt_main_thread_after(0.3)
    with pytest.raises(KernelInterrupt):
        load("libc", kernel_dir=cached_copy).strlen(b"Loop")
    timer.join()


# --- threads -----------------------------------------------------------------------

def test_two_threads_two_pools_of_one_unit_are_serialized():
    pools = [PageAllocator(256), PageAllocator(256)]
    assert pools[0].kernel.lock is pools[1].kernel.lock
    errors: list[BaseException] = []

    def churn(pa: PageAllocator) -> None:
        try:
            for round_ in range(200):
                got = [pa.alloc(round_ % 3) for _ in range(5)]
                for pfn in got:
                    pa.free(pfn, round_ % 3)
            pa.check()
        except BaseException as err:   # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=churn, args=(pa,)) for pa in pools]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for pa in pools:
        assert pa.free_pages_count == pa.stats().free_pages
        assert pa.snapshot().free_pages == 256 - 1   # only the meta page


def test_fault_in_a_second_thread():
    libc = load("libc")
    caught: list[BaseException] = []

    def run() -> None:
        try:
            libc.strlen(libc.ffi.NULL)
        except KernelFault as err:
            caught.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert len(caught) == 1 and caught[0].function == "strlen"
    still_alive()


# --- faults outside kernel code are not ours ---------------------------------------

def test_a_fault_in_python_code_still_kills_the_process():
    script = textwrap.dedent("""
        import ctypes, faulthandler
        faulthandler.enable()
        from minios_lab.build.units import load
        load("libc").strlen(b"handlers installed")
        ctypes.string_at(0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGSEGV
    assert "Segmentation fault" in proc.stderr     # faulthandler still ran


# --- gcc's warnings and -Werror ------------------------------------------------------

def test_warning_is_a_compile_warning_at_kernel_file_line(kernel_copy):
    line = inject(kernel_copy, "lib/string.c", STRLEN,
                  "    int unused_here;\n" + STRLEN)
    with pytest.warns(CompileWarning) as record:
        load("libc", kernel_dir=kernel_copy)
    ours = [w for w in record if w.filename == "kernel/lib/string.c"]
    assert ours and ours[0].lineno == line
    assert ours[0].message.flag == "-Wunused-variable"
    assert "unused_here" in str(ours[0].message)


def test_warning_is_shown_again_from_the_cache(kernel_copy):
    line = inject(kernel_copy, "lib/string.c", STRLEN,
                  "    int unused_here;\n" + STRLEN)
    with pytest.warns(CompileWarning):
        load("libc", kernel_dir=kernel_copy)
    script = textwrap.dedent(f"""
        import warnings
        from pathlib import Path
        from minios_lab.build import cbuild
        from minios_lab.build.units import load
        cbuild.compile_kernel_objects = None     # must come from the cache
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            load("libc", kernel_dir=Path({str(kernel_copy)!r}))
        for w in seen:
            print(w.category.__name__, w.filename, w.lineno)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"CompileWarning kernel/lib/string.c {line}" in proc.stdout


def _own_leftovers(kernel_dir: Path, before: set[Path]) -> list[Path]:
    """Folders this test's build of the libc unit left in the cache. Only
    its own: the other pytest workers build in the same cache meanwhile."""
    name = f"_minios_libc_{cbuild.unit_hash('libc', UNITS['libc'], kernel_dir.resolve())}"
    return [p for p in set(cbuild.build_dir().iterdir()) - before
            if p.is_dir() and p.name.startswith(name)]


@pytest.mark.parametrize("flag, old, new", [
    ("parentheses", "    while (s[n] != '\\0')",
     "    if (n = 0)\n        n++;\n    while (s[n] != '\\0')"),
    ("return-type", "    return n;\n}\n\nsize_t strnlen",
     "    if (n)\n        return n;\n}\n\nsize_t strnlen"),
    ("implicit-function-declaration", "    return n;\n}\n\nsize_t strnlen",
     "    return n + no_such_function();\n}\n\nsize_t strnlen"),
    ("incompatible-pointer-types", "    size_t n = 0;\n\n    while (s[n]",
     "    size_t n = 0;\n    int *p = &n;\n\n    (void)p;\n    while (s[n]"),
    ("uninitialized", "    size_t n = 0;\n\n    while (s[n]",
     "    size_t n;\n\n    while (s[n]"),
])
def test_bug_prone_warnings_stop_the_build(kernel_copy, flag, old, new):
    line = inject(kernel_copy, "lib/string.c", old, new)
    before = set(cbuild.build_dir().iterdir())
    with pytest.raises(CompileError) as info:
        load("libc", kernel_dir=kernel_copy)
    err = info.value
    assert f"-Werror={flag}" in str(err)
    files = {f for f, _ in err.locations}
    assert files == {"kernel/lib/string.c"}
    assert all(line <= n <= line + 4 for _, n in err.locations)
    assert _own_leftovers(kernel_copy, before) == []   # no temporary folder


# --- the cache: damaged modules are rebuilt -------------------------------------

def _load_in_child(kernel_dir: Path) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        from pathlib import Path
        from minios_lab.build.units import load
        k = load("libc", kernel_dir=Path({str(kernel_dir)!r}))
        print("strlen", k.strlen(b"rebuilt"))
    """)
    return subprocess.run([sys.executable, "-W", "always", "-c", script],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def _built(kernel_dir: Path) -> Path:
    name = f"_minios_libc_{cbuild.unit_hash('libc', UNITS['libc'], kernel_dir)}"
    found = [p for p in cbuild.build_dir().glob(name + "*.so")]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "garbage"])
def test_damaged_module_is_deleted_and_rebuilt(kernel_copy, damage):
    load("libc", kernel_dir=kernel_copy.resolve())
    target = _built(kernel_copy.resolve())
    data = target.read_bytes()

    def damaged(content: bytes) -> None:
        # A new file in its place: the one this process has mapped must
        # stay whole (truncating a mapped library is SIGBUS on next use).
        staged = target.with_name(target.name + ".damaged")
        staged.write_bytes(content)
        os.replace(staged, target)

    if damage == "truncated":
        damaged(data[: len(data) // 3])
    elif damage == "overwritten":
        damaged(data[:4096] + bytes(len(data) - 4096))
    else:   # not an ELF at all, with a matching record: dlopen refuses it
        garbage = b"not a shared object\n" * 100
        damaged(garbage)
        meta = json.loads(Path(str(target) + ".json").read_text())
        import hashlib
        meta.update(size=len(garbage),
                    sha256=hashlib.sha256(garbage).hexdigest())
        Path(str(target) + ".json").write_text(json.dumps(meta))
    proc = _load_in_child(kernel_copy.resolve())
    assert proc.returncode == 0, proc.stderr
    assert "strlen 7" in proc.stdout
    assert "CacheWarning" in proc.stderr and "rebuilt" in proc.stderr
    assert target.read_bytes()[:4] == b"\x7fELF"
    no_stale_entries()


# --- the toolchain -------------------------------------------------------------------

@pytest.mark.parametrize("cc, said", [
    ("/nonexistent/gcc", "C compiler not found: CC=/nonexistent/gcc"),
    ("/bin/true", "CC=/bin/true is not a C compiler"),
    ("/bin/false", "CC=/bin/false is not a C compiler"),
])
def test_bad_compiler_is_a_toolchain_error(kernel_copy, monkeypatch, cc, said):
    monkeypatch.setenv("CC", cc)
    with pytest.raises(ToolchainError) as info:
        load("libc", kernel_dir=kernel_copy)
    assert said in str(info.value)
    assert "Fix: install gcc" in str(info.value)


def test_missing_python_headers_is_a_toolchain_error(kernel_copy, monkeypatch,
                                                     tmp_path):
    import sysconfig
    real = sysconfig.get_paths()
    fake = dict(real, include=str(tmp_path), platinclude=str(tmp_path))
    monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: fake)
    before = set(cbuild.build_dir().iterdir())
    with pytest.raises(ToolchainError) as info:
        load("libc", kernel_dir=kernel_copy)
    assert "Python headers are missing" in str(info.value)
    assert "python3-dev" in str(info.value)
    assert _own_leftovers(kernel_copy, before) == []


def test_full_disk_shows_the_tools_reason(kernel_copy, tmp_path):
    """A file-size limit makes every write past 64 KiB fail as on a full
    disk; the linker's own words must reach the learner."""
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import resource, signal
        from pathlib import Path
        from minios_lab.errors import ToolchainError
        from minios_lab.build.units import load
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            load("libc", kernel_dir=Path({str(kernel_copy)!r}))
        except ToolchainError as err:
            print("ToolchainError:", err)
    """)
    env = dict(os.environ, MINIOS_LAB_CACHE=str(cache))
    xen = cbuild.toolchain.xen_include_dir()
    env["MINIOS_XEN_INCLUDE"] = str(xen)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert "ToolchainError:" in proc.stdout, proc.stdout + proc.stderr
    assert "the disk is full" in proc.stdout
    assert "File size limit exceeded" in proc.stdout   # the tool's words
    assert "Fix: free some space" in proc.stdout
    leftovers = [p for p in (cache / "cbuild").iterdir() if p.is_dir()]
    assert leftovers == []


def test_linker_reason_is_shown_when_it_fails(kernel_copy, monkeypatch,
                                              tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "ld"
    fake.write_text("#!/bin/sh\necho 'ld: final link failed: No space left "
                    "on device' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    with pytest.raises(ToolchainError) as info:
        load("libc", kernel_dir=kernel_copy)
    text = str(info.value)
    assert "ld: final link failed: No space left on device" in text
    assert "the disk is full" in text and "MINIOS_LAB_CACHE" in text


def test_missing_binutils_is_a_toolchain_error(kernel_copy, monkeypatch,
                                               tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("gcc", "as"):
        (tools / name).symlink_to(shutil.which(name))
    monkeypatch.setenv("CC", shutil.which("gcc"))
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(ToolchainError, match="binutils"):
        load("libc", kernel_dir=kernel_copy)


# --- in a real Jupyter kernel ------------------------------------------------------

def test_jupyter_interrupt_and_fault_leave_the_kernel_alive(cached_copy):
    """What a learner does: a cell loops in kernel code, Interrupt; a cell
    faults; the next cell still runs in the same (live) Jupyter kernel."""
    jupyter_client = pytest.importorskip("jupyter_client")
    inject(cached_copy, "lib/string.c", STRLEN,
           "    while (s[0] == 'L')\n        n++;\n" + STRLEN)
    load("libc", kernel_dir=cached_copy)            # built before the clock
    km, kc = jupyter_client.manager.start_new_kernel(
        kernel_name="python3", cwd=str(REPO))
    try:
        def run(code: str, interrupt_after: float | None = None) -> dict:
            # stop_on_error=False: a request that comes while ipykernel is
            # still dropping what was queued behind an error is otherwise
            # "aborted", seen on a loaded machine
            msg_id = kc.execute(code, stop_on_error=False)
            if interrupt_after is not None:
                threading.Timer(interrupt_after, km.interrupt_kernel).start()
            reply = kc.get_shell_msg(timeout=120)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = kc.get_shell_msg(timeout=120)
            return reply["content"]

        setup = run(f"from pathlib import Path\n"
                    f"from minios_lab.build.units import load\n"
                    f"k = load('libc', kernel_dir=Path({str(cached_copy)!r}))\n"
                    f"k.strlen(b'warm')")
        assert setup["status"] == "ok", setup
        looped = run("k.strlen(b'Loop')", interrupt_after=1.0)
        assert looped["status"] == "error"
        assert looped["ename"] == "KernelInterrupt", looped
        faulted = run("load('libc').strlen(load('libc').ffi.NULL)")
        assert faulted.get("ename") == "KernelFault", faulted
        assert "NULL pointer dereference" in faulted["evalue"]
        again = run("assert load('libc').strlen(b'alive') == 5\n"
                    "k.strlen(b'x')")
        assert again.get("ename") == "KernelUnusable", again
        assert km.is_alive()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
