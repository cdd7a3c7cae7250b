"""The trees the grader builds, and its messages in the learner's terms.

For each exercise region the grader writes the reference kernel with the
student's code for that region spliced in (:func:`spliced_tree`). Messages
from that tree (compiler errors, panics, faults) name the temporary copy
and the *reference* file's line numbers; :class:`LineMap` turns them back
into ``kernel/file.c:line`` of the student's own file. :func:`compiler_error`
picks the compiler's error out of a make log.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from minios_lab.classroom import handout as classroom

ERROR_LINE = re.compile(r"\berror\b|undefined reference|\*\*\*|Error \d+",
                        re.IGNORECASE)
MAKE_NOISE = re.compile(r"^make(\[\d+\])?: (Entering|Leaving) directory")


class SpliceError(Exception):
    """The student's file cannot be spliced (missing file or markers)."""


LOCATION = re.compile(r"(?<![\w/.-])(?:kernel/)?((?:[\w.-]+/)*[\w.-]+\.[chS])"
                      r":(\d+)")
EXCERPT = re.compile(r"^(\s*)(\d+)( \| .*)$")


@dataclass
class LineMap:
    """Rewrites paths and line numbers of one spliced tree for the learner.

    `segments` maps a file ("kernel/...") to (first spliced line, shift)
    pairs, one per region spliced in, in order: a line of the spliced file
    is the student's line + the shift of the region at or above it. One
    region: `file` and `shift` say the same.
    """

    tree: Optional[Path] = None          # the temporary kernel/ copy
    file: str = ""                       # the region's file, "kernel/..."
    shift: int = 0                       # student line - spliced line
    extra_paths: list[Path] = field(default_factory=list)
    segments: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    _excerpt_file: str = ""

    def __post_init__(self) -> None:
        if self.file and not self.segments:
            self.segments = {self.file: [(0, self.shift)]}

    def student_line(self, file: str, line: int) -> int:
        entries = self.segments[file]
        shift = entries[0][1]
        for begin, entry_shift in entries:
            if begin <= line:
                shift = entry_shift
        return max(1, line + shift)

    def __call__(self, text: str) -> str:
        """`text` (a message, or context lines given in order) in the
        student's terms; gcc's source excerpts ("  129 | code") after a
        location in a spliced file get the student's numbers too."""
        for path in [self.tree, *self.extra_paths]:
            if path is not None:
                text = text.replace(f"{path}/", "kernel/")
        if not any(s for entries in self.segments.values()
                   for _, s in entries):
            return text
        return "\n".join(map(self._line, text.split("\n")))

    def _line(self, line: str) -> str:
        excerpt = EXCERPT.match(line)
        if excerpt and self._excerpt_file:
            number = self.student_line(self._excerpt_file,
                                       int(excerpt.group(2)))
            return f"{excerpt.group(1)}{number}{excerpt.group(3)}"
        found = list(LOCATION.finditer(line))
        if found:
            last = f"kernel/{found[-1].group(1)}"
            self._excerpt_file = last if last in self.segments else ""

        def mapped(m: re.Match) -> str:
            file = f"kernel/{m.group(1)}"
            if file not in self.segments:
                return m.group(0)
            return f"{file}:{self.student_line(file, int(m.group(2)))}"
        return LOCATION.sub(mapped, line)


def _marked_solutions(repo: Path) -> list[bool]:
    """Per exercise region of `repo`: whether it holds the reference code
    (BEGIN SOLUTION) rather than a learner's (BEGIN EXERCISE)."""
    return ["BEGIN SOLUTION" in (repo / region.file).read_text().splitlines()[
        region.first_line - 1] for region in classroom.all_regions(repo)]


def has_solutions(repo: Path) -> bool:
    """Whether `repo` holds the reference code (an instructor's tree)."""
    return any(_marked_solutions(repo))


def all_reference(repo: Path) -> bool:
    """Whether every exercise region of `repo` is the reference code (so
    one boot of every chapter cannot be hurt by a learner's stub)."""
    marks = _marked_solutions(repo)
    return bool(marks) and all(marks)


def _student_regions(student: Path, rel: str) -> dict:
    path = student / rel
    if not path.exists():
        raise SpliceError(f"{rel} is missing from the student's tree")
    try:
        return {r.region_id: r for r in classroom.c_regions(path, rel)}
    except (classroom.MarkerError, UnicodeDecodeError) as err:
        raise SpliceError(f"the exercise markers of {rel} are broken: "
                          f"{err}") from None


def _code_lines(body: list[str]) -> list[str]:
    """The code of a region's body: comments and blank lines dropped,
    spaces at line ends ignored."""
    text = re.sub(r"/\*.*?\*/", "", "\n".join(body), flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return [line.strip() for line in text.splitlines() if line.strip()]


def untouched_stubs(student: Path, regions: list, reference: Path) -> set[str]:
    """Ids of `regions` whose code in the student's tree is still exactly
    the hand-out's stub (comments aside): nothing has been written there."""
    found = set()
    for region in regions:
        try:
            theirs = classroom.region_bodies(
                (student / region.file).read_text(), region.file)
        except (OSError, UnicodeDecodeError, classroom.MarkerError):
            continue
        mine = theirs.get(region.region_id)
        if mine is None:
            continue
        stubbed = classroom.region_bodies(classroom.strip_c(
            (reference / region.file).read_text(), region.file),
            region.file).get(region.region_id)
        if stubbed is not None and _code_lines(mine) == _code_lines(stubbed):
            found.add(region.region_id)
    return found


def _splice_file(reference: Path, student: Path, rel: str,
                 wanted: set[str], errors: dict[str, str]) \
        -> tuple[str, list[tuple[int, int]]]:
    """The reference file with the student's body of each region in
    `wanted` (the others as they are); and its LineMap segments."""
    lines = (reference / rel).read_text().splitlines()
    try:
        theirs = _student_regions(student, rel)
        student_text = (student / rel).read_text().splitlines()
    except SpliceError as err:
        errors.update((rid, str(err)) for rid in wanted)
        theirs, student_text = {}, []
    out: list[str] = []
    segments: list[tuple[int, int]] = []
    last = 0
    for span in classroom._spans(lines, rel):
        out.extend(lines[last:span.begin])
        last = span.end + 1
        mine = theirs.get(span.region_id)
        if span.region_id not in wanted or mine is None:
            if span.region_id in wanted and span.region_id not in errors:
                errors[span.region_id] = (
                    f"the markers of exercise {span.region_id} are gone "
                    f"from {rel}")
            out.extend(lines[span.begin:last])
            continue
        segments.append((len(out) + 1, mine.first_line - (len(out) + 1)))
        out += [lines[span.begin],
                *student_text[mine.first_line:mine.last_line - 1],
                lines[span.end]]
    out.extend(lines[last:])
    return "\n".join(out) + "\n", segments


def spliced_tree(student: Path, regions: list, workdir: Path,
                 reference: Path, name: str) \
        -> tuple[Path, LineMap, dict[str, str]]:
    """The reference kernel with the student's code for `regions` (one, or
    many at once), in workdir/name; the map from its lines back to the
    student's files; and {region id: why it could not be spliced}."""
    tree = workdir / name / "kernel"
    shutil.copytree(reference / "kernel", tree,
                    ignore=shutil.ignore_patterns("build"))
    errors: dict[str, str] = {}
    segments: dict[str, list[tuple[int, int]]] = {}
    for rel in dict.fromkeys(r.file for r in regions):
        wanted = {r.region_id for r in regions if r.file == rel}
        text, segments[rel] = _splice_file(reference, student, rel, wanted,
                                           errors)
        (tree / Path(rel).relative_to("kernel")).write_text(text)
    return tree, LineMap(tree, segments={k: v for k, v in segments.items()
                                         if v}), errors


def compiler_error(log: str, limit: int = 14) -> tuple[str, list[str]]:
    """(first error line, the lines around every error) of a make log."""
    lines = [line for line in log.splitlines()
             if line.strip() and not MAKE_NOISE.match(line)]
    wanted: list[int] = []
    for i, line in enumerate(lines):
        if ERROR_LINE.search(line) and not line.lstrip().startswith(
                ("gcc ", "cc ", "clang ", "ld ")):
            wanted += [j for j in range(max(0, i - 1), min(len(lines), i + 4))
                       if j not in wanted]
    if not wanted:
        return (lines[-1] if lines else "the build failed"), lines[-limit:]
    first = next(lines[i] for i in wanted if ERROR_LINE.search(lines[i]))
    return first.strip(), [lines[i] for i in sorted(wanted)][:limit]


def git_commit(tree: Path) -> Optional[str]:
    """The tree's HEAD commit, or None if it is not a git repository."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree,
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def find_tree(start: Path) -> Optional[Path]:
    """The kit tree (a folder with kernel/Makefile and minios_lab/) that
    holds `start`, or None."""
    start = Path(start).resolve()
    for folder in [start, *start.parents]:
        if (folder / "kernel" / "Makefile").is_file() and \
                (folder / "minios_lab").is_dir():
            return folder
    return None


def workdir_prefix() -> str:
    """Temporary folders of this grader: the pid tells a stale one."""
    return f"minios-grade-{os.getpid()}-"


def sweep_stale(tmp: Optional[Path] = None) -> list[Path]:
    """Remove minios-grade-PID-* folders whose grader process is gone
    (killed before it could clean up); return what was removed."""
    tmp = Path(tmp or tempfile.gettempdir())
    removed = []
    for folder in tmp.glob("minios-grade-*"):
        match = re.match(r"minios-grade-(\d+)-", folder.name)
        if not match or not folder.is_dir():
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
            continue            # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue            # someone else's, alive
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
