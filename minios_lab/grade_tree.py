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

from . import classroom

ERROR_LINE = re.compile(r"\berror\b|undefined reference|\*\*\*|Error \d+",
                        re.IGNORECASE)
MAKE_NOISE = re.compile(r"^make(\[\d+\])?: (Entering|Leaving) directory")


class SpliceError(Exception):
    """The student's file cannot be spliced (missing file or markers)."""


@dataclass
class LineMap:
    """Rewrites paths and line numbers of one spliced tree for the learner."""

    tree: Optional[Path] = None          # the temporary kernel/ copy
    file: str = ""                       # the region's file, "kernel/..."
    shift: int = 0                       # student line - spliced line
    extra_paths: list[Path] = field(default_factory=list)

    def __call__(self, text: str) -> str:
        """`text` (a message, or context lines given in order) in the
        student's terms; gcc's source excerpts ("  129 | code") after a
        location in the region's file get the student's numbers too."""
        for path in [self.tree, *self.extra_paths]:
            if path is not None:
                text = text.replace(f"{path}/", "kernel/")
        if not self.file or not self.shift:
            return text
        return "\n".join(map(self._line, text.split("\n")))

    def _line(self, line: str) -> str:
        inner = re.escape(self.file[len("kernel/"):])
        location = re.compile(rf"(?<![\w/.-])(?:kernel/)?{inner}:(\d+)")
        if re.search(r"[\w/.-]+\.[chS]:\d+", line):
            self._in_region_file = bool(location.search(line))
        excerpt = re.match(r"^(\s*)(\d+)( \| .*)$", line)
        if excerpt and getattr(self, "_in_region_file", False):
            number = int(excerpt.group(2)) + self.shift
            return f"{excerpt.group(1)}{number}{excerpt.group(3)}"
        return location.sub(
            lambda m: f"{self.file}:{max(1, int(m.group(1)) + self.shift)}",
            line)


def has_solutions(repo: Path) -> bool:
    """Whether `repo` holds the reference code (an instructor's tree)."""
    for region in classroom.all_regions(repo):
        line = (repo / region.file).read_text().splitlines()[
            region.first_line - 1]
        if "BEGIN SOLUTION" in line:
            return True
    return False


def spliced_tree(student: Path, region: classroom.Region, workdir: Path,
                 reference: Path) -> tuple[Path, LineMap]:
    """The reference kernel with the student's code for one region, and
    the map from its lines back to the student's file."""
    tree = workdir / region.region_id / "kernel"
    student_file = student / region.file
    if not student_file.exists():
        raise SpliceError(f"{region.file} is missing from the student's tree")
    student_text = student_file.read_text(errors="replace")
    try:
        student_region = {r.region_id: r for r in classroom.c_regions(
            student_file, region.file)}[region.region_id]
        text = classroom.splice((reference / region.file).read_text(),
                                student_text, region.region_id)
    except (KeyError, classroom.MarkerError):
        raise SpliceError(f"the markers of exercise {region.region_id} are "
                          f"gone from {region.file} (or broken)") from None
    if not tree.exists():
        shutil.copytree(reference / "kernel", tree,
                        ignore=shutil.ignore_patterns("build"))
    (tree / Path(region.file).relative_to("kernel")).write_text(text)
    shift = student_region.first_line - region.first_line
    return tree, LineMap(tree, region.file, shift)


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
