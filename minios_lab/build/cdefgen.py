"""A unit's cffi declarations, taken from the kernel's own headers.

A declaration is written once, in the kernel header. The part of a header
that Python may see lies between two marker comments:

    /* cffi: begin */
    struct mm_stats { ... };
    void mm_get_stats(struct mm_stats *stats);
    /* cffi: end */

For a unit, :func:`read_headers` preprocesses the headers its glue
includes (``gcc -E`` with the host build's include paths, so every macro is
expanded and every ``#include``/``#ifdef`` is resolved) and parses the
result with pycparser (the C parser cffi itself uses); :func:`select`
keeps, in source order:

* the declarations between markers; a function or variable only if the
  unit defines it (``defined``), so a header shared by several units can
  mark everything its sources provide;
* every type those declarations use, wherever it is defined: a kernel
  header or Xen's public headers (``struct shared_info``, ``start_info_t``);
* the types a cdef file asks for by name with a forward declaration
  (``struct evtchn_bind_virq;``): Python reads them, no kernel function
  names them.

What cffi cannot read is left out or rewritten by :func:`for_cffi`: inline
function bodies, static asserts, attributes (removed by the preprocessor),
functions taking a ``va_list``, and array sizes it cannot compute
(``[...]``: the compiler gives them). Functions declared in the kernel's
libc headers are renamed ``minios_<name>`` (glibc has the same names; see
cbuild). What is Python's own stays in ``cdefs/<unit>.h``: constants to
resolve (``#define X ...``), ``extern "Python"`` callbacks, host hooks.

:func:`cdef_text` writes each kept declaration after a comment naming its
origin (``/* kernel/include/minios/mm.h:42 */``). A header that is not C,
or that cffi cannot read, raises CompileError naming ``kernel/<file>:line``
(:func:`read_headers`, :func:`declare`). cbuild drives all this.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cffi
import cffi.commontypes
import cffi.model
from pycparser import c_ast, c_generator, c_parser

from minios_lab.build.ctools import run_tool
from minios_lab.errors import CompileError

BEGIN, END = "/* cffi: begin */", "/* cffi: end */"
# Declared in these headers, a function has a glibc namesake.
LIBC_HEADERS = ("minios/string.h", "minios/printf.h")
EXPORT_PREFIX = "minios_"
# Only for reading the declarations: pycparser knows no GNU extensions.
PARSE_DEFINES = ("-D__attribute__(x)=", "-D__extension__=",
                 "-D__asm__(x)=", "-D__inline=inline",
                 "-D__builtin_va_list=int")
VA_LIST = ("va_list", "__gnuc_va_list")
# Types cffi knows without a declaration (stdint, stddef, bool).
KNOWN_TYPES = (set(cffi.model.PrimitiveType.ALL_PRIMITIVE_TYPES)
               | set(cffi.commontypes.COMMON_TYPES))
_REQUEST = re.compile(r"^\s*(struct|union)\s+(\w+)\s*;", re.MULTILINE)


@dataclass(frozen=True)
class Marked:
    """The marked line ranges (begin, end) of one header."""

    path: str
    ranges: tuple[tuple[int, int], ...]

    def holds(self, line: int) -> bool:
        return any(begin < line < end for begin, end in self.ranges)


def marked_ranges(path: Path, shown: str) -> Marked:
    """The cffi-visible ranges of a header; unbalanced markers are an
    error at the marker's line (`shown` is the name used in messages)."""
    ranges, begin = [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if text == BEGIN and begin is None:
            begin = number
        elif text == END and begin is not None:
            ranges.append((begin, number))
            begin = None
        elif text in (BEGIN, END):
            raise _error(shown, number, f"'{text}' without its "
                         f"{'end' if begin is not None else 'begin'}")
    if begin is not None:
        raise _error(shown, begin, f"'{BEGIN}' without '{END}'")
    return Marked(shown, tuple(ranges))


def _error(shown: str, line: int, why: str) -> CompileError:
    return CompileError(f"{shown}:{line}: error: cffi cannot read this "
                        f"header: {why}", [(shown, line)])


def parse(preprocessed: str, shown: dict[str, str]) -> c_ast.FileAST:
    """Parse gcc -E output (with line markers); `shown` maps real header
    paths to the names used in error messages."""
    try:
        return c_parser.CParser().parse(preprocessed, "<unit>")
    except c_parser.ParseError as err:
        where = re.match(r"(.+?):(\d+)(?::\d+)?: (.*)", str(err), re.S)
        if not where:
            raise CompileError(f"cffi cannot read the headers: {err}", [])
        path = shown.get(where.group(1), where.group(1))
        raise _error(path, int(where.group(2)), where.group(3)) from None


def read_headers(cc: tuple[str, ...], includes: tuple[str, ...],
                 kernel_dir: Path, workdir: Path,
                 diagnose: Callable[[str], CompileError]
                 ) -> tuple[c_ast.FileAST, dict[str, Marked]]:
    """Preprocess `includes` with the compiler command `cc` (flags and
    include paths of the host build), parse them, and find the marked
    ranges of the kernel headers among them. A header that is not C
    raises gcc's own diagnostics (`diagnose`: stderr -> CompileError);
    one that is C but that cffi cannot read, a CompileError at its line."""
    def run(*args: str) -> str:
        proc = run_tool([*cc, *args, *(a for h in includes
                                       for a in ("-include", h)),
                         "-x", "c", os.devnull], workdir, "the C compiler",
                        check=False)
        if proc.returncode != 0:
            raise diagnose(proc.stderr)
        return proc.stdout

    preprocessed = run("-E", *PARSE_DEFINES)
    shown = {str(p): "kernel/" + str(p.relative_to(kernel_dir))
             for p in kernel_dir.rglob("*.h")}
    try:
        ast = parse(preprocessed, shown)
    except CompileError:
        run("-fsyntax-only")          # gcc's words first, if it objects
        raise
    files = {n.coord.file for n in ast.ext if n.coord} & set(shown)
    return ast, {f: marked_ranges(Path(f), shown[f]) for f in files}


# --- which declarations: the marked ones and the types they use --------------

def _defines(node: c_ast.Node) -> list[str]:
    """Names a top-level node defines: 'typedef X', 'struct X', ..."""
    names: list[str] = []
    if not isinstance(node, (c_ast.Typedef, c_ast.Decl)):
        return names
    if isinstance(node, c_ast.Typedef):
        names.append(f"typedef {node.name}")
    inner = node.type
    while isinstance(inner, (c_ast.TypeDecl, c_ast.PtrDecl, c_ast.ArrayDecl)):
        inner = inner.type
    if isinstance(inner, (c_ast.Struct, c_ast.Union)) and \
            inner.name and inner.decls is not None:
        names.append(f"{type(inner).__name__.lower()} {inner.name}")
    if isinstance(inner, c_ast.Enum) and inner.name and inner.values:
        names.append(f"enum {inner.name}")
    return names


class _Uses(c_ast.NodeVisitor):
    """The typedef names and struct/union/enum tags a node uses."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_IdentifierType(self, node: c_ast.IdentifierType) -> None:
        self.names.update(f"typedef {n}" for n in node.names)

    def _tagged(self, node: c_ast.Node) -> None:
        if node.name:
            self.names.add(f"{type(node).__name__.lower()} {node.name}")
        self.generic_visit(node)

    visit_Struct = visit_Union = visit_Enum = _tagged


def _uses(node: c_ast.Node) -> set[str]:
    visitor = _Uses()
    visitor.visit(node)
    return {n for n in visitor.names
            if n.partition(" ")[2] not in KNOWN_TYPES}


def select(ast: c_ast.FileAST, marked: dict[str, Marked],
           requests: set[str]) -> list[tuple[c_ast.Node, str]]:
    """The marked top-level nodes and the definitions of every type they
    (and `requests`, e.g. 'struct shared_info') use, in source order,
    each with the header it comes from."""
    where: dict[str, int] = {}
    for index, node in enumerate(ast.ext):
        for name in _defines(node):
            where.setdefault(name, index)
    chosen = {i for i, node in enumerate(ast.ext)
              if node.coord and node.coord.file in marked
              and marked[node.coord.file].holds(node.coord.line)}
    todo = [n for i in chosen for n in _uses(ast.ext[i])] + list(requests)
    while todo:
        index = where.get(todo.pop())
        if index is not None and index not in chosen:
            chosen.add(index)
            todo += _uses(ast.ext[index])
    return [(ast.ext[i], ast.ext[i].coord.file if ast.ext[i].coord else "")
            for i in sorted(chosen)]


# --- what cffi can read -------------------------------------------------------

def _value(expr: c_ast.Node) -> int | None:
    """An integer constant expression's value, or None."""
    if isinstance(expr, c_ast.Constant) and re.fullmatch(
            r"(0[xX][0-9a-fA-F]+|0|[1-9]\d*)[uUlL]*", expr.value):
        return int(expr.value.rstrip("uUlL"), 0)
    if isinstance(expr, c_ast.UnaryOp) and expr.op in ("-", "~", "+"):
        inner = _value(expr.expr)
        return None if inner is None else \
            {"-": -inner, "~": ~inner, "+": inner}[expr.op]
    if isinstance(expr, c_ast.BinaryOp):
        left, right = _value(expr.left), _value(expr.right)
        if left is None or right is None:
            return None
        ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__,
               "<<": int.__lshift__, ">>": int.__rshift__,
               "|": int.__or__, "&": int.__and__, "^": int.__xor__}
        if expr.op in ops:
            return ops[expr.op](left, right)
        if expr.op in ("/", "%") and right:
            return left // right if expr.op == "/" else left % right
    return None


class _ForCffi(c_ast.NodeVisitor):
    """Array sizes and enum values as plain numbers, or '...'. The length
    of an array member of a struct is always '...', taken from the
    compiler: cffi's check of it would write `struct boot_arg(*p)[32]`,
    which the guard macro of function boot_arg() (cglue) would expand."""

    def visit_Decl(self, node: c_ast.Decl) -> None:
        self.generic_visit(node)
        if self.in_struct and isinstance(node.type, c_ast.ArrayDecl):
            node.type.dim = c_ast.Constant("int", "...")

    def _members(self, node: c_ast.Node) -> None:
        outer, self.in_struct = self.in_struct, True
        self.generic_visit(node)
        self.in_struct = outer

    in_struct = False
    visit_Struct = visit_Union = _members

    def visit_ArrayDecl(self, node: c_ast.ArrayDecl) -> None:
        if node.dim is not None:
            value = _value(node.dim)
            node.dim = c_ast.Constant("int", "..." if value is None
                                      else str(value))
        self.generic_visit(node)

    def visit_Enumerator(self, node: c_ast.Enumerator) -> None:
        if node.value is not None:
            value = _value(node.value)
            node.value = c_ast.Constant("int", "..." if value is None
                                        else str(value))


def _takes_va_list(func: c_ast.FuncDecl) -> bool:
    return bool(func.args) and any(
        n.partition(" ")[2] in VA_LIST for n in _uses(func.args))


def for_cffi(node: c_ast.Node, defined: set[str] | None,
             prefix: bool) -> str | None:
    """The C text cffi reads for one top-level node, or None to leave it
    out: inline functions, static asserts, functions taking a va_list,
    and functions or variables the unit does not define."""
    if isinstance(node, (c_ast.FuncDef, c_ast.StaticAssert, c_ast.Pragma)):
        return None
    if isinstance(node, c_ast.Typedef) and (node.name in KNOWN_TYPES
                                            or node.name in VA_LIST):
        return None
    node = copy.deepcopy(node)
    if isinstance(node, c_ast.Decl) and node.name:
        if "static" in node.storage or "inline" in node.funcspec:
            return None
        name = EXPORT_PREFIX + node.name if prefix else node.name
        if defined is not None and node.name not in defined \
                and name not in defined:
            return None
        if isinstance(node.type, c_ast.FuncDecl) and \
                _takes_va_list(node.type):
            return None
        _rename(node, name)
    _ForCffi().visit(node)
    return c_generator.CGenerator().visit(node) + ";"


def _rename(decl: c_ast.Decl, name: str) -> None:
    decl.name = name
    inner = decl.type
    while not isinstance(inner, c_ast.TypeDecl):
        inner = inner.type
    inner.declname = name


def cdef_text(chosen: list[tuple[c_ast.Node, str]], shown: dict[str, str],
              defined: set[str] | None, prefixed: set[str]) -> str:
    """The chosen nodes as cffi's C, each after a comment saying where it
    comes from (kernel/include/minios/mm.h:42, xen/xen.h:608)."""
    lines = []
    for node, path in chosen:
        text = for_cffi(node, defined, path in prefixed)
        if text is not None:
            name = shown.get(path) or path.rpartition("/include/")[2]
            lines.append(f"/* {name}:{node.coord.line} */\n{text}")
    return "\n".join(lines) + "\n"


_ORIGIN = re.compile(r"^/\* (\S+):(\d+) \*/$", re.MULTILINE)
# Between the generated declarations and the cdefs/ files.
PYTHON_SIDE = "/* Python's side: minios_lab/build/cdefs/ */"


def declare(ffi: cffi.FFI, text: str) -> None:
    """ffi.cdef(text); if cffi refuses it, a CompileError at the header
    line of the first declaration it refuses (found one by one)."""
    try:
        ffi.cdef(text)
        return
    except (cffi.CDefError, cffi.FFIError) as err:
        first = err
    python = text.find(PYTHON_SIDE)
    starts = [m.start() for m in _ORIGIN.finditer(text)] + \
        [len(text) if python < 0 else python]
    alone = cffi.FFI()
    for begin, end in zip(starts, starts[1:]):
        try:
            alone.cdef(text[begin:end])
        except (cffi.CDefError, cffi.FFIError) as err:
            file, line = _ORIGIN.match(text, begin).groups()
            raise _error(file, int(line), str(err)) from None
    raise CompileError(f"cffi cannot read the unit's declarations: {first}",
                       [])


def requests_in(cdef_text: str) -> set[str]:
    """Types a cdef file asks for by forward declaration: 'struct X'."""
    return {f"{kind} {name}" for kind, name in _REQUEST.findall(cdef_text)}
