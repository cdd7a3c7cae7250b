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
   function is called through a *guard* that records a ``setjmp`` point, so
   that a kernel panic can unwind back to Python (see kernel/host/host.h).

The module name carries a hash of every input (sources, headers, cdef,
flags, this file, compiler, cffi and Python versions): an edited C file
loads fresh inside a running Jupyter kernel, an unchanged one is not
compiled again. Builds take a file lock, work in a private temporary
directory and publish the result with an atomic rename, so concurrent
builds of the same unit cannot corrupt each other.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.machinery
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import cffi

from . import toolchain
from .errors import CompileError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
KERNEL_DIR = REPO_DIR / "kernel"
CDEF_DIR = PACKAGE_DIR / "cdefs"

# Linked into every unit: the hypervisor boundary, panic, console, libc.
BASE_SOURCES = (
    "host/hypercall.c",
    "host/tsc.c",
    "panic.c",
    "console.c",
    "lib/printf.c",
    "lib/string.c",
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
)

EXPORT_PREFIX = "minios_"


@dataclass(frozen=True)
class Unit:
    """A named set of kernel sources built together into one extension.

    ``sources`` are relative to ``kernel/`` and are added to BASE_SOURCES;
    ``cdef`` names a file in ``minios_lab/cdefs/``; ``headers`` are the
    kernel headers the glue includes so that cffi can check types.
    """

    sources: tuple[str, ...]
    cdef: str
    headers: tuple[str, ...] = ()
    extra_cdefs: tuple[str, ...] = field(default=("host.h",))


def _gcc_include_dir(cc: str) -> str:
    out = subprocess.run([cc, "-print-file-name=include"], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


@lru_cache(maxsize=None)
def _compiler_identity(cc: str) -> tuple[str, str]:
    """(compiler version text, its own include dir), cached per process."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                             check=True).stdout
    return version, _gcc_include_dir(cc)


def compiler() -> str:
    return os.environ.get("CC", "gcc")


def include_flags(kernel_dir: Path) -> list[str]:
    _, gcc_include = _compiler_identity(compiler())
    return [
        "-isystem", gcc_include,
        "-I", str(kernel_dir / "include"),
        "-I", str(kernel_dir / "host" / "include"),
        "-I", str(toolchain.xen_include_dir()),
    ]


def _cdef_text(unit: Unit) -> str:
    parts = [(CDEF_DIR / name).read_text() for name in unit.extra_cdefs]
    parts.append((CDEF_DIR / unit.cdef).read_text())
    return "\n".join(parts)


def _input_files(unit: Unit, kernel_dir: Path) -> list[Path]:
    files = [kernel_dir / s for s in BASE_SOURCES + unit.sources]
    for sub in ("include", "host"):
        files += sorted(p for p in (kernel_dir / sub).rglob("*") if p.is_file())
    return files


def unit_hash(name: str, unit: Unit, kernel_dir: Path) -> str:
    """A digest of everything that decides what the extension contains."""
    h = hashlib.sha256()
    version, _ = _compiler_identity(compiler())
    for item in (name, repr(unit), version, sys.version, cffi.__version__,
                 " ".join(KERNEL_CFLAGS), str(toolchain.xen_include_dir()),
                 _cdef_text(unit), Path(__file__).read_text()):
        h.update(item.encode() + b"\0")
    for path in _input_files(unit, kernel_dir):
        h.update(str(path.relative_to(kernel_dir)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_dir() -> Path:
    path = toolchain.cache_dir() / "cbuild"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- compiling the kernel objects -------------------------------------------

_LOCATION = re.compile(r"^(kernel/[^:\s]+):(\d+):(?:\d+:)? (?:fatal )?error")


def _diagnostics(stderr: str, kernel_dir: Path) -> CompileError:
    text = stderr.replace(str(kernel_dir) + "/", "kernel/")
    locations = [(m.group(1), int(m.group(2)))
                 for m in map(_LOCATION.match, text.splitlines()) if m]
    return CompileError(text.strip(), locations)


def _run(cmd: list[str], kernel_dir: Path, cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise _diagnostics(proc.stderr or proc.stdout, kernel_dir)


def compile_kernel_objects(sources: list[str], kernel_dir: Path,
                           workdir: Path) -> list[Path]:
    """Compile each kernel source to an object in workdir."""
    cc = compiler()
    flags = list(KERNEL_CFLAGS) + include_flags(kernel_dir) + [
        f"-ffile-prefix-map={kernel_dir}=kernel"]
    objects = []
    for index, source in enumerate(sources):
        obj = workdir / f"{index:02d}-{Path(source).stem}.o"
        _run([cc, *flags, "-c", str(kernel_dir / source), "-o", str(obj)],
             kernel_dir, workdir)
        objects.append(obj)
    return objects


def _defined_symbols(obj: Path) -> set[str]:
    out = subprocess.run(["nm", "--defined-only", "-g", str(obj)],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def link_kernel_object(objects: list[Path], exports: set[str],
                       workdir: Path) -> Path:
    """Merge objects; keep only `exports` global, renaming libc clashes."""
    merged = workdir / "kernel-merged.o"
    subprocess.run(["ld", "-r", "-o", str(merged), *map(str, objects)],
                   check=True, capture_output=True)
    defined = _defined_symbols(merged)
    cmd = ["objcopy"]
    for name in sorted(exports):
        plain = name[len(EXPORT_PREFIX):]
        if (name.startswith(EXPORT_PREFIX) and name not in defined
                and plain in defined):
            cmd += ["--redefine-sym", f"{plain}={name}"]
        cmd += ["--keep-global-symbol", name]
    final = workdir / "kernel.o"
    subprocess.run([*cmd, str(merged), str(final)], check=True,
                   capture_output=True)
    return final


# --- the cffi glue -----------------------------------------------------------

GLUE_PROLOGUE = r"""
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

/* Where a kernel panic unwinds to: the innermost guard still running. */
static jmp_buf *host_unwind_target;
static int host_unwound;

void host_unwind(void)
{
    if (host_unwind_target == NULL) {
        fputs("minios-lab: kernel unwound outside any guard\n", stderr);
        abort();
    }
    longjmp(*host_unwind_target, 1);
}

int host_take_unwound(void)
{
    int was = host_unwound;
    host_unwound = 0;
    return was;
}
"""


def _declarations(ffi: cffi.FFI) -> dict:
    return ffi._parser._declarations  # cffi's parsed cdef, by kind and name


def exported_names(ffi: cffi.FFI) -> tuple[dict[str, object], set[str]]:
    """(functions by name, global variable names) declared in a cdef."""
    functions, variables = {}, set()
    for key, (tp, _quals) in _declarations(ffi).items():
        kind, _, name = key.partition(" ")
        if kind == "function":
            functions[name] = tp
        elif kind in ("variable", "constant") and not name.startswith("_"):
            variables.add(name)
    return functions, variables


def _guard(name: str, tp) -> str:
    """A wrapper around kernel function `name` that a panic can unwind to."""
    params = [arg.get_c_name(f" a{i}") for i, arg in enumerate(tp.args)]
    call = f"{name}({', '.join(f'a{i}' for i in range(len(tp.args)))})"
    signature = tp.result.get_c_name(
        f" host_guard_{name}({', '.join(params) or 'void'})")
    is_void = tp.result.get_c_name("") == "void"
    body = [
        f"static {signature}",
        "{",
        "    jmp_buf here, *saved = host_unwind_target;",
        "" if is_void else f"    {tp.result.get_c_name(' result')};",
        "" if is_void else "    memset(&result, 0, sizeof(result));",
        "    if (setjmp(here)) {",
        "        host_unwind_target = saved;",
        "        host_unwound = 1;",
        "        return" + ("" if is_void else " result") + ";",
        "    }",
        "    host_unwind_target = &here;",
        f"    {call};" if is_void else f"    result = {call};",
        "    host_unwind_target = saved;",
        "    return" + ("" if is_void else " result") + ";",
        "}",
        f"#define {name}(...) host_guard_{name}(__VA_ARGS__)",
    ]
    return "\n".join(line for line in body if line)


def glue_source(unit: Unit, functions: dict) -> str:
    """C source of the cffi module: headers, prototypes, guards."""
    lines = [GLUE_PROLOGUE, "#include <string.h>", "#include <host/host.h>",
             "#include <minios/xen.h>", "#include <minios/bug.h>",
             "#include <arch/cpu.h>"]
    lines += [f"#include <{h}>" for h in unit.headers]
    for name, tp in sorted(functions.items()):
        if name == "host_take_unwound" or name.startswith("host_"):
            continue
        if name.startswith(EXPORT_PREFIX):
            lines.append(tp.as_raw_function().get_c_name(f" {name}") + ";")
        if not tp.ellipsis:
            lines.append(_guard(name, tp))
    return "\n".join(lines) + "\n"


def _host_flags(kernel_dir: Path) -> list[str]:
    return ["-I", str(kernel_dir / "include"),
            "-I", str(kernel_dir / "host" / "include"),
            "-I", str(toolchain.xen_include_dir())]


def build_extension(name: str, unit: Unit, kernel_dir: Path,
                    module_name: str, workdir: Path) -> Path:
    """Compile everything in workdir; return the path of the built .so."""
    ffi = cffi.FFI()
    ffi.cdef(_cdef_text(unit))
    functions, variables = exported_names(ffi)
    sources = list(dict.fromkeys(BASE_SOURCES + unit.sources))
    objects = compile_kernel_objects(sources, kernel_dir, workdir)
    kernel_obj = link_kernel_object(objects, set(functions) | variables,
                                    workdir)
    ffi.set_source(module_name, glue_source(unit, functions))
    glue_c = workdir / f"{module_name}.c"
    with contextlib.redirect_stdout(io.StringIO()):  # cffi says "generating"
        ffi.emit_c_code(str(glue_c))
    return link_extension(glue_c, kernel_obj, kernel_dir, module_name, workdir)


def link_extension(glue_c: Path, kernel_obj: Path, kernel_dir: Path,
                   module_name: str, workdir: Path) -> Path:
    """Compile the cffi glue with the host's headers and link the module."""
    cc = compiler()
    glue_o = workdir / "glue.o"
    python_include = sysconfig.get_paths()["include"]
    _run([cc, "-O2", "-fPIC", "-w", "-I", python_include,
          *_host_flags(kernel_dir), "-c", str(glue_c), "-o", str(glue_o)],
         kernel_dir, workdir)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = workdir / (module_name + suffix)
    _run([cc, "-shared", "-Wl,-Bsymbolic", str(glue_o), str(kernel_obj),
          "-o", str(target)], kernel_dir, workdir)
    return target


# --- loading -------------------------------------------------------------------

def _import(module_name: str, path: Path) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader = importlib.machinery.ExtensionFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path,
                                                  loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def build(name: str, unit: Unit, kernel_dir: Path | None = None) -> ModuleType:
    """Build (or find already built) unit `name`; return the cffi module."""
    kernel_dir = (kernel_dir or KERNEL_DIR).resolve()
    module_name = f"_minios_{name}_{unit_hash(name, unit, kernel_dir)}"
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = build_dir() / (module_name + suffix)
    if not target.exists():
        with open(build_dir() / (module_name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.exists():
                workdir = Path(tempfile.mkdtemp(prefix=module_name + "-",
                                                dir=build_dir()))
                try:
                    built = build_extension(name, unit, kernel_dir,
                                            module_name, workdir)
                    os.replace(built, target)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
    return _import(module_name, target)


def load(unit_name: str, kernel_dir: Path | None = None, hypervisor=None):
    """Build (if needed) and load a registered unit as a KernelLib."""
    from .units import load as load_unit  # units imports this module
    return load_unit(unit_name, kernel_dir, hypervisor)
