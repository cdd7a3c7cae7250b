"""minios_lab.notebook.source: the code shown in notebooks is the code in kernel/."""
from __future__ import annotations

import pytest

from minios_lab.notebook.source import KERNEL_DIR, extract, file_comment, show, show_xen


def test_function_is_found_with_its_lines():
    snippet = show("start_of_day.c", "parse_start_info")
    lines = (KERNEL_DIR / "start_of_day.c").read_text().splitlines()
    assert snippet.path == "kernel/start_of_day.c"
    assert lines[snippet.first_line - 1] == "int parse_start_info(const start_info_t *si, struct boot_info *bi)"
    assert lines[snippet.last_line - 1] == "}"
    assert snippet.text.count("\n") == snippet.last_line - snippet.first_line + 1


def test_comment_above_function_is_included():
    snippet = show("start_of_day.c", "add_arg")
    assert snippet.text.startswith("/* Store one command-line word")
    assert "static int add_arg(" in snippet.text


def test_struct_macro_and_xen_header():
    assert show("include/minios/start_of_day.h", "boot_info").text.rstrip().endswith("};")
    assert "do {" in show("include/minios/bug.h", "BUG_ON").text
    xen = show_xen("xen.h", "start_info")
    assert xen.path == "include/xen/xen.h" and "nr_pages" in xen.text


def test_html_and_text_reprs():
    snippet = show("console.c", "printk")
    assert "kernel/console.c:" in str(snippet)
    html = snippet._repr_html_()
    assert "<span" in html and "printk" in html


def test_missing_names_and_files_are_clear_errors():
    with pytest.raises(LookupError, match="no function, struct or macro named 'nope'"):
        extract("console.c", "nope")
    with pytest.raises(FileNotFoundError, match="kernel/nope.c"):
        show("nope.c", "x")


def test_file_comment():
    assert file_comment("console.c").startswith("Console output: printk() and the back-end")
