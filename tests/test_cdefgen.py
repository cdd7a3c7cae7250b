"""cdefgen: which declarations of the kernel headers cffi reads, and how."""
from __future__ import annotations

import cffi
import pytest
from pycparser import c_parser

from minios_lab.build import cdefgen, cglue
from minios_lab.errors import CompileError

HEADER = """\
struct used_only_by_pointer;
typedef unsigned int port_t;
struct inner { port_t port; int more[2 * 3 + 1]; };
struct unused { int x; };
typedef struct inner inner_t;
/* cffi: begin */
struct outer { inner_t in; char name[8 << 2]; };
enum kind { KIND_A, KIND_B = 1 << 4 };
static inline int helper(int x) { return x + 1; }
_Static_assert(sizeof(struct outer) > 0, "size");
typedef int __gnuc_va_list;
int vformat(const char *fmt, __gnuc_va_list ap);
int format(const char *fmt, ...);
int defined_here(struct outer *o, struct used_only_by_pointer *p);
int not_defined_here(void);
extern struct outer outer_instance;
/* cffi: end */
struct requested { long a; };
"""


def _cdef(defined: set[str] | None = None, requests: set[str] = set(),
          prefix: bool = False) -> str:
    preprocessed = HEADER.replace(cdefgen.BEGIN, "").replace(cdefgen.END, "")
    ast = c_parser.CParser().parse(preprocessed, "x.h")
    lines = HEADER.splitlines()
    span = (lines.index(cdefgen.BEGIN) + 1, lines.index(cdefgen.END) + 1)
    marked = {"x.h": cdefgen.Marked("x.h", (span,))}
    chosen = cdefgen.select(ast, marked, requests)
    prefixed = {"x.h"} if prefix else set()
    return cdefgen.cdef_text(chosen, {"x.h": "x.h"}, defined, prefixed)


def test_marked_declarations_and_the_types_they_use_in_source_order():
    text = _cdef()
    assert text.index("typedef unsigned int port_t") < \
        text.index("struct inner") < text.index("struct outer")
    assert "struct unused" not in text and "struct requested" not in text
    assert "KIND_B = 16" in text
    assert "more[...]" in text and "name[...]" in text


def test_what_cffi_cannot_read_is_left_out():
    text = _cdef()
    assert "helper" not in text            # an inline function
    assert "Static" not in text            # a static assert
    assert "vformat" not in text           # takes a va_list
    assert "__gnuc_va_list" not in text
    assert "int format(const char *fmt, ...);" in text


def test_only_what_the_unit_defines_is_declared():
    text = _cdef(defined={"defined_here", "format", "outer_instance"})
    assert "defined_here" in text and "outer_instance" in text
    assert "not_defined_here" not in text


def test_requests_pull_their_definitions_and_libc_names_get_a_prefix():
    text = _cdef(requests=cdefgen.requests_in("struct requested;\n"),
                 prefix=True)
    assert "struct requested\n{\n  long a;\n};" in text
    assert "int minios_format(const char *fmt, ...);" in text


def test_generated_text_is_read_by_cffi():
    ffi = cffi.FFI()
    ffi.cdef(_cdef())
    functions, variables = cglue.exported_names(ffi)
    assert set(functions) == {"format", "defined_here", "not_defined_here"}
    assert "outer_instance" in variables


def test_unbalanced_markers_name_the_line(tmp_path):
    header = tmp_path / "h.h"
    header.write_text("int a;\n/* cffi: end */\n")
    with pytest.raises(CompileError) as info:
        cdefgen.marked_ranges(header, "kernel/include/minios/h.h")
    assert info.value.locations == [("kernel/include/minios/h.h", 2)]
    header.write_text("/* cffi: begin */\nint a;\n/* cffi: begin */\n")
    with pytest.raises(CompileError) as info:
        cdefgen.marked_ranges(header, "h.h")
    assert info.value.locations == [("h.h", 3)]


def test_parse_error_names_the_header_as_shown():
    text = '# 1 "/abs/kernel/include/minios/x.h"\nint a b;\n'
    with pytest.raises(CompileError) as info:
        cdefgen.parse(text, {"/abs/kernel/include/minios/x.h":
                             "kernel/include/minios/x.h"})
    assert info.value.locations == [("kernel/include/minios/x.h", 1)]


def test_declare_names_the_declaration_cffi_refuses():
    text = ("/* kernel/include/minios/a.h:3 */\nint ok(void);\n"
            "/* kernel/include/minios/a.h:7 */\nunsigned __int128 wide(void);\n"
            f"{cdefgen.PYTHON_SIDE}\n#define X ...\n")
    with pytest.raises(CompileError) as info:
        cdefgen.declare(cffi.FFI(), text)
    assert info.value.locations == [("kernel/include/minios/a.h", 7)]
    python_wrong = (f"/* k.h:1 */\nint ok(void);\n{cdefgen.PYTHON_SIDE}\n"
                    "typedef int T;\ntypedef long T;\n")
    with pytest.raises(CompileError) as info:
        cdefgen.declare(cffi.FFI(), python_wrong)
    assert info.value.locations == []
    ffi = cffi.FFI()
    cdefgen.declare(ffi, text.replace("unsigned __int128", "long"))
    assert "wide" in cglue.exported_names(ffi)[0]
