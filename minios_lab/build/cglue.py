"""The C glue between Python and host-built kernel code.

* :func:`glue_source` writes the cffi module's C: the kernel headers, and a
  *guard* around each exported kernel function. The guard pushes a
  ``struct host_guard`` (cdefs/guard.h) and records a ``sigsetjmp`` point,
  so that a panic, a fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL) or Jupyter's
  Interrupt (SIGINT) comes back to this call instead of killing the process.
* :func:`runtime_sources` is the guard's runtime (cdefs/guard.c): the
  signal handlers and the thread-local chain of guards. cbuild builds it
  once into a shared library of its own that every unit links, so one
  process has one set of handlers however many units it loads.
"""
from __future__ import annotations

from pathlib import Path

import cffi

CDEF_DIR = Path(__file__).resolve().parent / "cdefs"
RUNTIME_SOURCE = CDEF_DIR / "guard.c"
RUNTIME_HEADER = CDEF_DIR / "guard.h"
EXPORT_PREFIX = "minios_"

GLUE_PROLOGUE = r"""
#include <setjmp.h>
#include <string.h>
#include "guard.h"
"""


def runtime_sources() -> tuple[Path, Path]:
    return RUNTIME_SOURCE, RUNTIME_HEADER


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


def _guarded_function(head: str, tp, body: list[str]) -> list[str]:
    """C function `head` that runs `body` (lines that set `result` unless
    the function is void) under a guard: any early exit (panic, fault,
    interrupt) comes back here, with the outcome in the guard."""
    is_void = tp.result.get_c_name("") == "void"
    return [
        f"static {head}",
        "{",
        "    struct host_guard guard;",
        *([] if is_void else [f"    {tp.result.get_c_name(' result')};",
                              "    memset(&result, 0, sizeof(result));"]),
        "    if (sigsetjmp(guard.env, 0) == 0) {",
        "        host_guard_push(&guard);",
        *body,
        "    }",
        "    host_guard_pop(&guard);",
        "    return" + ("" if is_void else " result") + ";",
        "}",
    ]


def _call(tp, call: str) -> str:
    """`call;` or `result = call;`, by the function's return type."""
    is_void = tp.result.get_c_name("") == "void"
    return f"{call};" if is_void else f"result = {call};"


def _fixed(tp) -> tuple[list[str], list[str]]:
    params = [arg.get_c_name(f" a{i}") for i, arg in enumerate(tp.args)]
    return params, [f"a{i}" for i in range(len(tp.args))]


def guard_source(name: str, tp) -> str:
    """A wrapper around kernel function `name` that any early exit (panic,
    fault, interrupt) brings back to, with the outcome in the guard."""
    params, names = _fixed(tp)
    head = tp.result.get_c_name(
        f" host_guard_{name}({', '.join(params) or 'void'})")
    call = f"{name}({', '.join(names)})"
    body = [f"        {_call(tp, call)}"]
    return "\n".join(_guarded_function(head, tp, body) + [
        f"#define {name}(...) host_guard_{name}(__VA_ARGS__)"])


MAX_VARIADIC_WORDS = 32


def variadic_guard_cdef(name: str, tp) -> str:
    """The cdef of the guarded entry of variadic kernel function `name`:
    its fixed parameters, then the variadic ones as 64-bit words."""
    params, _ = _fixed(tp)
    params += ["unsigned long nwords", "const unsigned long *words"]
    return tp.result.get_c_name(
        f" host_vguard_{name}({', '.join(params)})") + ";"


def variadic_guard_source(name: str, tp) -> str:
    """A guard for a variadic function, which C cannot wrap generically:
    it takes the variadic arguments as words and calls `name` with as many
    (the x86_64 ABI passes integers and pointers in 64-bit slots, which is
    all the kernel's printf reads)."""
    _, names = _fixed(tp)
    cases = []
    for n in range(MAX_VARIADIC_WORDS + 1):
        args = ", ".join(names + [f"words[{i}]" for i in range(n)])
        cases.append(f"        case {n}: {_call(tp, f'{name}({args})')} break;")
    body = ["        switch (nwords) {", *cases, "        default: break;",
            "        }"]
    head = variadic_guard_cdef(name, tp)[:-1]
    return "\n".join(_guarded_function(head, tp, body))


def includes(headers: tuple[str, ...]) -> list[str]:
    """The kernel headers a unit's glue includes: those every unit needs,
    then the unit's own. cffi's declarations come from the same ones."""
    return ["host/host.h", "minios/xen.h", "minios/bug.h", "arch/cpu.h",
            *headers]


def glue_source(headers: tuple[str, ...], functions: dict) -> str:
    """C source of the cffi module: headers, prototypes, guards.

    Functions named host_* belong to the runtime or to Python (extern
    "Python") and get no guard.
    """
    lines = [GLUE_PROLOGUE] + [f"#include <{h}>" for h in includes(headers)]
    for name, tp in sorted(functions.items()):
        if name.startswith("host_"):
            continue
        if name.startswith(EXPORT_PREFIX):
            lines.append(tp.as_raw_function().get_c_name(f" {name}") + ";")
        if tp.ellipsis:
            lines.append(variadic_guard_source(name, tp))
        else:
            lines.append(guard_source(name, tp))
    return "\n".join(lines) + "\n"


def variadic_cdefs(functions: dict) -> str:
    """cdef lines for the guarded entries of the variadic functions."""
    return "\n".join(variadic_guard_cdef(name, tp)
                     for name, tp in sorted(functions.items())
                     if tp.ellipsis and not name.startswith("host_"))
