"""Show a function, struct or macro of kernel/ in a notebook, highlighted.

The text is read from the file when the cell runs, so the notebook always
shows the code that is compiled, never a stale copy.

    >>> from minios_lab.notebook.source import show
    >>> show("start_of_day.c", "parse_start_info")   # doctest: +SKIP
"""
from __future__ import annotations

import minios_lab

import html
import re
from dataclasses import dataclass
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import CLexer, GasLexer

KERNEL_DIR = minios_lab.KERNEL_DIR


@dataclass
class Snippet:
    """A piece of kernel source: where it is and what it says."""

    path: str  # relative to the repository, e.g. kernel/console.c
    first_line: int
    text: str

    @property
    def last_line(self) -> int:
        return self.first_line + self.text.count("\n") - 1

    @property
    def title(self) -> str:
        return f"{self.path}:{self.first_line}-{self.last_line}"

    def __str__(self) -> str:
        return f"// {self.title}\n{self.text}"

    def _repr_html_(self) -> str:
        lexer = GasLexer() if self.path.endswith(".S") else CLexer()
        body = highlight(self.text, lexer, HtmlFormatter(
            noclasses=True, linenos="inline", linenostart=self.first_line,
            style="default"))
        return (f"<div><code style='font-size:85%'>{html.escape(self.title)}"
                f"</code>{body}</div>")

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython text repr
        printer.text(str(self))


def _find_start(lines: list[str], name: str) -> int:
    """Index of the line that opens the definition of `name`."""
    patterns = [
        rf"^struct {re.escape(name)}\s*\{{",       # struct name {
        rf"^#define {re.escape(name)}\b",         # macro
        rf"^(?!\s)[^;#]*\b{re.escape(name)}\s*\(",  # function definition
        rf"^{re.escape(name)}:",                  # assembly label
    ]
    for pattern in patterns:
        for i, line in enumerate(lines):
            if re.match(pattern, line) and not lines[i].rstrip().endswith(";"):
                return i
    raise LookupError(name)


def _find_end(lines: list[str], start: int) -> int:
    """Index of the last line of the definition opened at `start`."""
    if lines[start].startswith("#define"):
        end = start
        while lines[end].rstrip().endswith("\\"):
            end += 1
        return end
    if re.match(r"^\w+:", lines[start]):  # assembly: up to a blank line
        end = start
        while end + 1 < len(lines) and lines[end + 1].strip():
            end += 1
        return end
    depth, seen = 0, False
    for i in range(start, len(lines)):
        depth += lines[i].count("{") - lines[i].count("}")
        seen = seen or "{" in lines[i]
        if seen and depth == 0:
            return i
    raise LookupError("unbalanced braces")


def _with_comment(lines: list[str], start: int) -> int:
    """Extend `start` upwards over the return type and a comment above it."""
    while start > 0 and re.match(r"^(static |const |unsigned |\w+ \*?$)",
                                 lines[start - 1]) and "(" not in lines[start - 1]:
        start -= 1
    if start > 0 and lines[start - 1].rstrip().endswith("*/"):
        while start > 0 and not lines[start - 1].lstrip().startswith("/*"):
            start -= 1
        start -= 1
    return start


def extract(path: str, name: str, root: Path = KERNEL_DIR,
            shown_as: str = "kernel") -> Snippet:
    """Find `name` (function, struct, macro, label) in `root`/`path`."""
    file = root / path
    if not file.is_file():
        raise FileNotFoundError(f"{shown_as}/{path} does not exist")
    lines = file.read_text().splitlines()
    try:
        start = _find_start(lines, name)
        end = _find_end(lines, start)
    except LookupError:
        raise LookupError(f"no function, struct or macro named {name!r} "
                          f"in {shown_as}/{path}") from None
    start = _with_comment(lines, start)
    return Snippet(f"{shown_as}/{path}", start + 1,
                   "\n".join(lines[start:end + 1]) + "\n")


def show_xen(header: str, name: str) -> Snippet:
    """Show `name` from one of Xen's public headers, e.g. ("xen.h", "start_info")."""
    from minios_lab.build.toolchain import xen_include_dir
    return extract(header, name, xen_include_dir() / "xen", "include/xen")


def show(path: str, name: str | None = None) -> Snippet:
    """Return (and so display) `name` from kernel/`path`, or the whole file."""
    if name is None:
        text = (KERNEL_DIR / path).read_text()
        return Snippet(f"kernel/{path}", 1, text)
    return extract(path, name)


def file_comment(path: str) -> str:
    """The design comment at the top of a kernel file, as plain text."""
    text = (KERNEL_DIR / path).read_text()
    m = re.match(r"\s*/\*(.*?)\*/", text, re.S)
    if not m:
        return ""
    return "\n".join(line.strip().lstrip("*").strip()
                     for line in m.group(1).splitlines()).strip()
