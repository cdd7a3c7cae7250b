"""Student hand-outs: the same tree with the exercise solutions taken out.

Solutions are marked in the instructor's tree:

* in C (kernel/)::

      /* BEGIN SOLUTION buddy-split */
      ... the code a student should write ...
      /* END SOLUTION */

  An optional stub follows the id: ``/* BEGIN SOLUTION id stub: return -1; */``.
  Without one, the stub panics with "not implemented: <function>". Either
  way the hand-out gets a TODO comment naming the exercise and code that
  compiles and fails loudly.

* in notebooks: ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` inside a
  code cell; the hand-out raises NotImplementedError there, and the outputs
  of that cell (which would give the answer away) are cleared.

:func:`make_assignment` copies the tracked files of the repository (so the
hand-out is a working repo: ``make lab`` and ``make test`` work in it) and
rewrites the marked regions of the chosen chapters.
"""
from __future__ import annotations

import minios_lab

import html
import re
import shutil
import textwrap
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from minios_lab.classroom.course import CHAPTERS, Chapter, chapter_by_number, statements

if TYPE_CHECKING:       # nbformat takes ~1 s to import (its JSON schema
    import nbformat     # checkers): only the hand-out's notebooks need it

REPO_DIR = minios_lab.REPO_DIR

C_BEGIN = re.compile(
    r"^(?P<indent>[ \t]*)/\* BEGIN (?P<kind>SOLUTION|EXERCISE)"
    r"(?: (?P<id>[\w-]+))?(?: stub: (?P<stub>.*?))? \*/\s*$")
C_END = re.compile(r"^[ \t]*/\* END (?:SOLUTION|EXERCISE) \*/\s*$")
PY_BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\s*$")
PY_END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
FUNCTION = re.compile(r"^[A-Za-z_][\w \*]*?\b(\w+)\(")


@dataclass(frozen=True)
class Region:
    """One marked solution: where it is and what replaces it."""

    file: str        # relative to the repository
    region_id: str
    function: str    # the enclosing C function
    first_line: int  # of the BEGIN marker, 1-based
    last_line: int   # of the END marker


class MarkerError(ValueError):
    """A BEGIN without END (or the reverse) or a nested region."""


def _enclosing_function(lines: list[str], index: int) -> str:
    for line in reversed(lines[:index]):
        m = FUNCTION.match(line)
        if m and not line.rstrip().endswith(";"):
            return m.group(1)
    return "this function"


@dataclass(frozen=True)
class _Span:
    region_id: str
    function: str
    begin: int  # index of the BEGIN line
    end: int    # index of the END line
    match: re.Match


def _spans(lines: list[str], rel: str) -> list[_Span]:
    """The marked regions of a C file, checked for balance.

    A region without an id is named after its function (with -2, -3, ...
    for a second or third region in the same function).
    """
    spans: list[_Span] = []
    open_at = None
    for i, line in enumerate(lines):
        if C_BEGIN.match(line):
            if open_at is not None:
                raise MarkerError(f"{rel}:{i + 1}: nested BEGIN SOLUTION")
            open_at = i
        elif C_END.match(line):
            if open_at is None:
                raise MarkerError(f"{rel}:{i + 1}: END SOLUTION without BEGIN")
            m = C_BEGIN.match(lines[open_at])
            function = _enclosing_function(lines, open_at)
            region_id = m.group("id") or _unique(function, spans)
            spans.append(_Span(region_id, function, open_at, i, m))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{rel}:{open_at + 1}: BEGIN SOLUTION without END")
    return spans


def _unique(function: str, spans: list[_Span]) -> str:
    taken = {s.region_id for s in spans}
    name, n = function, 1
    while name in taken:
        n += 1
        name = f"{function}-{n}"
    return name


def c_regions(path: Path, rel: str) -> list[Region]:
    """The solution regions of one C file."""
    return [Region(rel, s.region_id, s.function, s.begin + 1, s.end + 1)
            for s in _spans(path.read_text().splitlines(), rel)]


def _rewrite(text: str, rel: str, replace) -> str:
    """`text` with each region's lines (markers included) replaced by
    replace(span, lines_of_region) -> new lines."""
    lines = text.splitlines()
    out, last = [], 0
    for span in _spans(lines, rel):
        out.extend(lines[last:span.begin])
        out.extend(replace(span, lines[span.begin:span.end + 1]))
        last = span.end + 1
    out.extend(lines[last:])
    return "\n".join(out) + "\n"


def strip_c(text: str, rel: str, keep: set[str] = frozenset(),
            statements: dict[str, str] | None = None) -> str:
    """C source with every solution region (except ids in `keep`) stubbed;
    `statements` ({region id: task statement}) go into the stub comments."""
    statements = statements or {}
    return _rewrite(text, rel, lambda span, lines: lines
                    if span.region_id in keep
                    else _c_stub(span, statements.get(span.region_id, "")))


def _c_stub(span: _Span, statement: str = "") -> list[str]:
    """The hand-out's version of a region: markers kept (with the id), so
    the grader can find the student's code; a TODO with the task's
    statement; a stub that compiles and fails loudly."""
    indent, region_id = span.match.group("indent"), span.region_id
    stub = span.match.group("stub") or 'PANIC("not implemented: %s", __func__);'
    task = [f"{indent} * {line}".rstrip() for line in
            textwrap.wrap(" ".join(statement.split()).replace("*/", "* /"),
                          max(40, 74 - len(indent)))]
    if task:
        task = [f"{indent} *"] + task + [f"{indent} *"]
    return [f"{indent}/* BEGIN EXERCISE {region_id} */",
            f"{indent}/* TODO({region_id}): write this part of "
            f"{span.function}().",
            *task,
            f"{indent} * Replace the line below. Keep your code between",
            f"{indent} * the BEGIN and END EXERCISE lines: that is what the",
            f"{indent} * grader takes. `minios-lab tasks` lists every task. */",
            f"{indent}{stub}",
            f"{indent}/* END EXERCISE */"]


def region_bodies(text: str, rel: str = "") -> dict[str, list[str]]:
    """{region id: the lines between its BEGIN and END markers}."""
    lines = text.splitlines()
    return {s.region_id: lines[s.begin + 1:s.end] for s in _spans(lines, rel)}


def splice(reference: str, student: str, region_id: str) -> str:
    """`reference` with region `region_id`'s body taken from `student`.

    Raises KeyError if the student's file lost the region's markers.
    """
    body = region_bodies(student)[region_id]
    return _rewrite(reference, "", lambda span, lines:
                    [lines[0], *body, lines[-1]]
                    if span.region_id == region_id else lines)


def strip_cell(source: str) -> tuple[str, bool]:
    """A notebook cell with its solution replaced; and whether it had one."""
    lines = source.splitlines()
    out, inside, found = [], False, False
    for line in lines:
        begin = PY_BEGIN.match(line)
        if begin:
            inside, found = True, True
            indent = begin.group("indent")
            out.append(f"{indent}# TODO: your code here")
            out.append(f"{indent}raise NotImplementedError("
                       f"\"exercise: write this cell's solution\")")
        elif PY_END.match(line):
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError("### BEGIN SOLUTION without ### END SOLUTION")
    return "\n".join(out), found


# Cells whose stored output is a verdict on the instructor's code.
VERDICT_CALLS = ("check_region(", "progress(", "grade(")


def strip_notebook(path: Path, secrets: frozenset[str] = frozenset(),
                   solutions: bool = True) -> nbformat.NotebookNode:
    """A hand-out notebook: solution cells stubbed; outputs cleared where
    they would give an answer away (a solution cell, a stored verdict, or
    any output that shows a line of a solution region, `secrets`)."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        found = False
        if solutions:
            cell.source, found = strip_cell(cell.source)
        verdict = any(call in cell.source for call in VERDICT_CALLS)
        if found or verdict or _shows(cell.outputs, secrets):
            cell.outputs, cell.execution_count = [], None
    return nb


def _output_text(output) -> str:
    parts = [output.get("text", "")]
    for value in output.get("data", {}).values():
        parts.append(value if isinstance(value, str) else str(value))
    parts += output.get("traceback", [])
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def flat(text: str) -> str:
    """Text as code shows through any rendering: HTML tags and entities
    and all white space gone (a highlighted show() puts every token in a
    tag of its own, and line numbers in front)."""
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]*>", "", text)))


LEAK_MIN = 16   # shorter lines ("order++;") say too little to count


def leaks(text: str, secrets: frozenset[str]) -> list[str]:
    """The solution lines of `secrets` that `text` shows, in any rendering
    (in a string, highlighted, reflowed): all but the shortest."""
    shown = flat(text)
    return sorted(line for line in secrets
                  if len(flat(line)) >= LEAK_MIN and flat(line) in shown)


def leaks_c(text: str, secrets: frozenset[str]) -> list[str]:
    """The solution lines of `secrets` that C source `text` has as lines."""
    return sorted({line.strip() for line in text.splitlines()} & secrets)


def _shows(outputs, secrets: frozenset[str]) -> bool:
    if not secrets:
        return False
    return bool(leaks("\n".join(_output_text(o) for o in outputs), secrets))


def trivial(line: str) -> bool:
    """A line that gives nothing away: blank, a lone brace, a marker."""
    return line.strip() in ("", "{", "}", "};", "} else {", "else") or \
        bool(C_BEGIN.match(line) or C_END.match(line))


def solution_lines(repo: Path, files: set[str]) -> frozenset[str]:
    """The lines (stripped) of the solution regions in `files` that appear
    nowhere else in the kernel: what a hand-out must not contain."""
    inside: set[str] = set()
    outside: set[str] = set()
    for rel in _tracked_files(repo):
        if not rel.startswith("kernel/") or not rel.endswith((".c", ".h",
                                                               ".S")):
            continue
        lines = (repo / rel).read_text().splitlines()
        spans = _spans(lines, rel)
        marked = {i for sp in spans for i in range(sp.begin, sp.end + 1)}
        for i, line in enumerate(lines):
            if trivial(line):
                continue
            (inside if i in marked and rel in files else outside).add(
                line.strip())
    return frozenset(inside - outside)


def _tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if (repo / line).is_file()]


def _chapter_files(chapters: list[Chapter]) -> tuple[set[str], set[str]]:
    kernel = {f"kernel/{f}" for ch in chapters for f in ch.kernel_files}
    notebooks = {f"notebooks/{ch.notebook}" for ch in chapters}
    notebooks |= {f"notebooks/src/{Path(ch.notebook).stem}.py"
                  for ch in chapters}
    return kernel, notebooks


def make_assignment(out_dir: Path, chapters: list[str] | None = None,
                    repo: Path = REPO_DIR) -> list[Region]:
    """Write a student copy of `repo` into `out_dir`; return what was taken out.

    `chapters` ("03", "05", ...) limits the stripping to those chapters;
    the other chapters keep their solutions.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty")
    chosen = [chapter_by_number(n) for n in chapters] if chapters else CHAPTERS
    kernel_files, notebook_files = _chapter_files(chosen)
    removed: list[Region] = []
    texts = {k: v["statement"] for k, v in statements().items()}
    secrets = solution_lines(repo, kernel_files)
    left_out: list[str] = []
    for rel in _tracked_files(repo):
        src, dst = repo / rel, out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if rel in kernel_files and rel.endswith((".c", ".h", ".S")):
            removed += c_regions(src, rel)
            dst.write_text(strip_c(src.read_text(), rel, statements=texts))
        elif rel.endswith(".ipynb") and (rel in notebook_files or secrets):
            import nbformat
            nbformat.write(strip_notebook(src, secrets,
                                          rel in notebook_files), dst)
        elif rel in notebook_files and rel.endswith(".py"):
            dst.write_text(strip_percent_source(src.read_text()))
        elif not rel.startswith("kernel/") and _leaky(src, secrets):
            left_out.append(rel)     # e.g. a test that edits a solution
        else:
            shutil.copy2(src, dst)
    if left_out:
        (out_dir / "LEFT-OUT.txt").write_text(
            "Files of the instructor's tree left out of this hand-out "
            "because they show solution code:\n" +
            "".join(f"  {rel}\n" for rel in left_out))
    _init_git(out_dir)
    return removed


def _leaky(path: Path, secrets: frozenset[str]) -> bool:
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return False
    return bool(leaks(text, secrets))


def strip_percent_source(text: str) -> str:
    """A notebooks/src/*.py file with its solutions replaced."""
    stripped, _ = strip_cell(text)
    return stripped + "\n"


def _init_git(out_dir: Path) -> None:
    """The hand-out is a repository of its own, with one commit."""
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=out_dir, check=True,
                       capture_output=True)
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=minios-lab", "-c", "user.email=lab@localhost",
        "commit", "-q", "-m", "minios-lab student hand-out")


def all_regions(repo: Path = REPO_DIR) -> list[Region]:
    """Every C solution region of the chapters, in chapter order."""
    found = []
    for chapter in CHAPTERS:
        for f in chapter.kernel_files:
            path = repo / "kernel" / f
            if path.exists():
                found += c_regions(path, f"kernel/{f}")
    return found


def restore_region(handout: Path, region_id: str,
                   repo: Path = REPO_DIR) -> None:
    """Put one region's solution back into a hand-out (for tests); the
    other regions of the file stay as they are (restores add up)."""
    for region in all_regions(repo):
        if region.region_id == region_id:
            target = handout / region.file
            target.write_text(splice(target.read_text(),
                                     (repo / region.file).read_text(),
                                     region_id))
            return
    raise KeyError(region_id)
