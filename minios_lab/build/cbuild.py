"""Compile a set of kernel sources for the host, as a CPython extension.

The kernel's portable C is built here exactly as it is for the guest
(freestanding, no libc headers), plus ``kernel/host/`` where the guest build
has ``kernel/arch/x86_64/``. Then:

1. The objects are merged (``ld -r``) and every kernel symbol is made local
   except the ones the unit's cdef exports. A kernel function whose name
   clashes with the C library (``strlen``, ``snprintf``) is exported as
   ``minios_strlen``. So inside the extension the kernel always calls its
   own ``memcpy``, and the cffi glue always calls glibc's.
2. cffi (API mode) links that object into an extension. Each exported
   function is called through a *guard* (:mod:`minios_lab.build.cglue`), so that
   a panic, a fault or an interrupt comes back to Python. The guard's
   runtime is one shared library, built once and linked by every unit.

gcc's warnings on kernel code are kept beside the built module and shown
as :class:`~minios_lab.errors.CompileWarning` whenever a process first
loads it; the bug-prone ones (WERROR) stop the build as CompileError.

The cdef itself is generated from the marked parts of the kernel headers
(:mod:`minios_lab.build.cdefgen`); ``cdefs/`` keeps only Python's side.

The module name carries a hash of every input (sources, headers, cdef,
flags, this file, compiler, cffi and Python versions): an edited C file
loads fresh inside a running Jupyter kernel, an unchanged one is not
compiled again. Builds take a file lock, work in a private temporary
directory and publish the result with an atomic rename, so concurrent
builds of the same unit cannot corrupt each other. A published module
comes with its size and SHA-256; one that no longer matches (truncated,
overwritten) or fails to load is deleted and rebuilt once, with a warning.
"""
from __future__ import annotations

import minios_lab

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import io
import os
import re
import shutil
import sys
import sysconfig
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import cffi

from minios_lab.build import cglue

from minios_lab.build import toolchain
from minios_lab.build.cache import Published, disk_faults, published, touch
from minios_lab.errors import CacheWarning, CompileError, ToolchainError
from minios_lab.build.ctools import (compiler, compiler_argv, compiler_identity, python_include_dirs, run_tool,
                     warnings_in)

PACKAGE_DIR = minios_lab.PACKAGE_DIR
REPO_DIR = minios_lab.REPO_DIR
KERNEL_DIR = REPO_DIR / "kernel"
CDEF_DIR = cglue.CDEF_DIR
EXPORT_PREFIX = cglue.EXPORT_PREFIX

# Linked into every unit: the hypervisor boundary, panic, console, libc.
BASE_SOURCES = (
    "host/hypercall.c",
    "host/tsc.c",
    "panic.c",
    "console.c",
    "lib/printf.c",
    "lib/string.c",
)

# Warnings that are nearly always bugs in a learner's code stop the build.
WERROR = (
    "parentheses",
    "return-type",
    "uninitialized",
    "implicit-function-declaration",
    "implicit-int",
    "incompatible-pointer-types",
    "int-conversion",
)

KERNEL_CFLAGS = (
    "-std=gnu11",
    "-O2",
    "-g",
    "-fPIC",
    "-ffreestanding",
    "-fno-builtin",
    "-nostdinc",
    "-fno-stack-protector",
    "-fno-tree-loop-distribute-patterns",
    "-fno-strict-aliasing",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    *(f"-Werror={name}" for name in WERROR),
)

RUNTIME_CFLAGS = ("-O2", "-g", "-fPIC", "-shared", "-Wall", "-Wextra",
                  "-Werror", "-pthread")


@dataclass(frozen=True)
class Unit:
    """A named set of kernel sources built together into one extension.

    ``sources`` are relative to ``kernel/`` and are added to BASE_SOURCES;
    ``cdef`` names a file in ``minios_lab/build/cdefs/``; ``headers`` are the
    kernel headers the glue includes so that cffi can check types.
    """

    sources: tuple[str, ...]
    cdef: str
    headers: tuple[str, ...] = ()
    extra_cdefs: tuple[str, ...] = field(default=("host.h",))


def include_flags(kernel_dir: Path) -> list[str]:
    _, gcc_include = compiler_identity(compiler())
    return [
        "-isystem", gcc_include,
        "-I", str(kernel_dir / "include"),
        "-I", str(kernel_dir / "host" / "include"),
        "-I", str(toolchain.xen_include_dir()),
    ]


# Where the headers of a unit's glue (and cdef) live; what reads them.
CDEF_HEADERS = ("include", "host/include")
CDEFGEN = Path(__file__).with_name("cdefgen.py")


def _python_cdef(unit: Unit) -> str:
    """What only Python declares: cdefs/ (constants, callbacks, hooks)."""
    names = (*unit.extra_cdefs, unit.cdef)
    return "\n".join((CDEF_DIR / name).read_text() for name in names)


def _cdef_text(unit: Unit, kernel_dir: Path,
               defined: set[str] | None = None) -> str:
    """The unit's cdef: the marked declarations of its kernel headers and
    the types they use (cdefgen), then the Python side. `defined` (the
    symbols the unit's objects define) leaves out the functions and
    variables of other units; without it, the text is kept in the cache
    under a digest of everything it comes from (a new process need not
    parse the headers again)."""
    python = _python_cdef(unit)
    includes = tuple(cglue.includes(unit.headers))
    files = [(str(p.relative_to(kernel_dir)), p) for sub in CDEF_HEADERS
             for p in sorted((kernel_dir / sub).rglob("*.h"))]
    version, _ = compiler_identity(compiler())
    stamp = _digest([version, " ".join(KERNEL_CFLAGS), python,
                     str(toolchain.xen_include_dir()), repr(includes),
                     CDEFGEN.read_text(), cffi.__version__], files)
    kept = build_dir() / f"cdef-{stamp}.h"
    if defined is None and kept.exists():
        touch(kept)
        return kept.read_text()
    from minios_lab.build import cdefgen   # pycparser: only when needed
    ast, marked = _parsed_headers(includes, kernel_dir, stamp)
    chosen = cdefgen.select(ast, marked, cdefgen.requests_in(python))
    prefixed = {str(kernel_dir / "include" / h)
                for h in cdefgen.LIBC_HEADERS}
    shown = {path: m.path for path, m in marked.items()}
    text = "\n".join([cdefgen.cdef_text(chosen, shown, defined, prefixed),
                      cdefgen.PYTHON_SIDE, python])
    if defined is None:
        with disk_faults(kept):
            partial = kept.with_name(f"{kept.name}.{os.getpid()}")
            partial.write_text(text)
            os.replace(partial, kept)
    return text


@lru_cache(maxsize=16)
def _parsed_headers(includes: tuple[str, ...], kernel_dir: Path,
                    stamp: str) -> tuple[object, dict]:
    """cdefgen.read_headers, memoised on the headers' digest `stamp`."""
    from minios_lab.build import cdefgen
    cc = (*compiler_argv(), *KERNEL_CFLAGS, *include_flags(kernel_dir))
    return cdefgen.read_headers(cc, includes, kernel_dir, build_dir(),
                                lambda stderr: _diagnostics(stderr,
                                                            kernel_dir))


def _input_files(unit: Unit, kernel_dir: Path) -> list[Path]:
    files = [kernel_dir / s for s in BASE_SOURCES + unit.sources]
    for sub in ("include", "host"):
        files += sorted(p for p in (kernel_dir / sub).rglob("*") if p.is_file())
    return files


def _digest(items: list[str], files: list[tuple[str, Path]]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode() + b"\0")
    for name, path in files:
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def unit_hash(name: str, unit: Unit, kernel_dir: Path) -> str:
    """A digest of everything that decides what the extension contains."""
    version, _ = compiler_identity(compiler())
    items = [name, repr(unit), version, sys.version, cffi.__version__,
             " ".join(KERNEL_CFLAGS), str(toolchain.xen_include_dir()),
             _cdef_text(unit, kernel_dir), Path(__file__).read_text(),
             CDEFGEN.read_text(),
             Path(cglue.__file__).read_text(), runtime_library().name]
    files = [(str(p.relative_to(kernel_dir)), p)
             for p in _input_files(unit, kernel_dir)]
    return _digest(items, files)


def build_dir() -> Path:
    path = toolchain.cache_dir() / "cbuild"
    with disk_faults(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


# --- compiling the kernel objects -------------------------------------------

_LOCATION = re.compile(r"^(kernel/[^:\s]+):(\d+):(?:\d+:)? (?:fatal )?error")


def _diagnostics(stderr: str, kernel_dir: Path) -> CompileError:
    text = stderr.replace(str(kernel_dir) + "/", "kernel/")
    locations = [(m.group(1), int(m.group(2)))
                 for m in map(_LOCATION.match, text.splitlines()) if m]
    return CompileError(text.strip(), locations)


def compile_kernel_objects(sources: list[str], kernel_dir: Path,
                           workdir: Path) -> tuple[list[Path], list[dict]]:
    """Compile each kernel source to an object in workdir; return the
    objects and gcc's warnings (see tools.warnings_in)."""
    cc = compiler_argv()
    flags = list(KERNEL_CFLAGS) + include_flags(kernel_dir) + [
        f"-ffile-prefix-map={kernel_dir}=kernel"]
    objects, found = [], []
    for index, source in enumerate(sources):
        obj = workdir / f"{index:02d}-{Path(source).stem}.o"
        proc = run_tool([*cc, *flags, "-c", str(kernel_dir / source), "-o",
                         str(obj)], workdir, "the C compiler", check=False)
        stderr = proc.stderr.replace(str(kernel_dir) + "/", "kernel/")
        if proc.returncode != 0:
            raise _diagnostics(proc.stderr or proc.stdout, kernel_dir)
        found += warnings_in(stderr)
        objects.append(obj)
    return objects, found


def _defined_symbols(obj: Path, workdir: Path) -> set[str]:
    out = run_tool(["nm", "--defined-only", "-g", str(obj)], workdir,
                   "nm (binutils)").stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def merge_kernel_objects(objects: list[Path], workdir: Path) -> Path:
    """One relocatable object of the unit's kernel code."""
    merged = workdir / "kernel-merged.o"
    run_tool(["ld", "-r", "-o", str(merged), *map(str, objects)], workdir,
             "the linker (ld)")
    return merged


def link_kernel_object(merged: Path, defined: set[str], exports: set[str],
                       workdir: Path) -> Path:
    """Keep only `exports` of the merged object global, renaming libc
    clashes (`defined`: its global symbols)."""
    cmd = ["objcopy"]
    for name in sorted(exports):
        plain = name[len(EXPORT_PREFIX):]
        if (name.startswith(EXPORT_PREFIX) and name not in defined
                and plain in defined):
            cmd += ["--redefine-sym", f"{plain}={name}"]
        cmd += ["--keep-global-symbol", name]
    final = workdir / "kernel.o"
    run_tool([*cmd, str(merged), str(final)], workdir, "objcopy (binutils)")
    return final


# --- the guard runtime ---------------------------------------------------------

def runtime_hash() -> str:
    version, _ = compiler_identity(compiler())
    return _digest([version, sys.version, " ".join(RUNTIME_CFLAGS)],
                   [(p.name, p) for p in cglue.runtime_sources()])


def _build_runtime(workdir: Path, target_name: str) -> tuple[Path, list]:
    source, _ = cglue.runtime_sources()
    target = workdir / target_name
    proc = run_tool([*compiler_argv(), *RUNTIME_CFLAGS,
                     *(f"-I{d}" for d in python_include_dirs()),
                     str(source), "-o", str(target)], workdir,
                    "the C compiler", check=False)
    if proc.returncode != 0:
        raise ToolchainError(f"the guard runtime {source} did not build:\n"
                             f"{proc.stderr.strip()}")
    return target, []


@lru_cache(maxsize=None)
def runtime_library() -> Path:
    """The guard runtime's shared library, built once per cache."""
    name = f"libminios_guard_{runtime_hash()}.so"
    return published(build_dir() / name,
                     lambda workdir: _build_runtime(workdir, name)).path


# --- the cffi extension ----------------------------------------------------------

def build_extension(name: str, unit: Unit, kernel_dir: Path,
                    module_name: str, workdir: Path) -> tuple[Path, list]:
    """Compile everything in workdir; return the .so and gcc's warnings."""
    sources = list(dict.fromkeys(BASE_SOURCES + unit.sources))
    objects, found = compile_kernel_objects(sources, kernel_dir, workdir)
    merged = merge_kernel_objects(objects, workdir)
    defined = _defined_symbols(merged, workdir)
    ffi = cffi.FFI()
    from minios_lab.build.cdefgen import declare   # pycparser: cold only
    declare(ffi, _cdef_text(unit, kernel_dir, defined))
    functions, variables = cglue.exported_names(ffi)
    ffi.cdef(cglue.variadic_cdefs(functions))
    kernel_obj = link_kernel_object(merged, defined,
                                    set(functions) | variables, workdir)
    ffi.set_source(module_name, cglue.glue_source(unit.headers, functions))
    glue_c = workdir / f"{module_name}.c"
    with contextlib.redirect_stdout(io.StringIO()):  # cffi says "generating"
        ffi.emit_c_code(str(glue_c))
    return link_extension(glue_c, kernel_obj, kernel_dir, module_name,
                          workdir), found


def link_extension(glue_c: Path, kernel_obj: Path, kernel_dir: Path,
                   module_name: str, workdir: Path) -> Path:
    """Compile the cffi glue with the host's headers and link the module
    against the guard runtime (found beside it: rpath $ORIGIN)."""
    cc = compiler_argv()
    glue_o = workdir / "glue.o"
    python = [f"-I{d}" for d in python_include_dirs()]
    shutil.copy(cglue.RUNTIME_HEADER, workdir / "guard.h")  # "guard.h"
    proc = run_tool([*cc, "-O2", "-fPIC", "-w", *python,
                     "-I", str(kernel_dir / "include"),
                     "-I", str(kernel_dir / "host" / "include"),
                     "-I", str(toolchain.xen_include_dir()),
                     "-c", str(glue_c), "-o", str(glue_o)], workdir,
                    "the C compiler", check=False)
    if proc.returncode != 0:
        raise _diagnostics(proc.stderr or proc.stdout, kernel_dir)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = workdir / (module_name + suffix)
    runtime = runtime_library()
    run_tool([*cc, "-shared", "-Wl,-Bsymbolic", str(glue_o), str(kernel_obj),
              f"-L{runtime.parent}", f"-l:{runtime.name}",
              "-Wl,-rpath,$ORIGIN", "-o", str(target)], workdir,
             "the linker")
    return target


# --- loading -------------------------------------------------------------------

_shown: set[str] = set()


def _import(module_name: str, path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path,
                                                  loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[module_name] = module
    return module


_registered: set[str] = set()


def register_code(module: ModuleType) -> None:
    """Tell the guard runtime where this module's code (and its own) is
    mapped: SIGINT only jumps out of those (cdefs/guard.c)."""
    paths = {os.path.realpath(module.__file__),
             os.path.realpath(runtime_library())} - _registered
    if not paths:
        return
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and "x" in fields[1] and \
                    os.path.realpath(fields[5]) in paths:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                module.lib.host_register_code(start, end)
    _registered.update(paths)


def show_warnings(module_name: str, found: list[dict]) -> None:
    """Each gcc warning as a CompileWarning at kernel/file.c:line, once per
    module per process."""
    from minios_lab.errors import CompileWarning
    if module_name in _shown:
        return
    _shown.add(module_name)
    for w in found:
        warnings.warn_explicit(CompileWarning(w["text"], w["file"], w["line"],
                                              w.get("flag", "")),
                               CompileWarning, w["file"], w["line"])


def build(name: str, unit: Unit, kernel_dir: Path | None = None) -> ModuleType:
    """Build (or find already built) unit `name`; return the cffi module."""
    kernel_dir = (kernel_dir or KERNEL_DIR).resolve()
    module_name = f"_minios_{name}_{unit_hash(name, unit, kernel_dir)}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = build_dir() / (module_name + suffix)
    builder = (lambda workdir: build_extension(name, unit, kernel_dir,
                                               module_name, workdir))
    entry: Published = published(target, builder)
    try:
        module = _import(module_name, entry.path)
    except ImportError as err:
        warnings.warn(CacheWarning(
            f"the built module {target.name} could not be loaded ({err}); "
            f"it was deleted and is being rebuilt"), stacklevel=2)
        entry.discard()
        entry = published(target, builder)
        try:
            module = _import(module_name, entry.path)
        except ImportError as again:
            entry.discard()
            raise ToolchainError(
                f"the freshly built module {target.name} cannot be loaded "
                f"({again}). Fix: run `minios-lab doctor`; check that the "
                f"compiler and Python belong together (CC, python3-dev)"
            ) from None
    register_code(module)
    show_warnings(module_name, entry.warnings)
    return module

