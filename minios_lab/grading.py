"""Automatic grading: points per exercise region, GOOD/BAD per check.

Each graded check belongs to one chapter and one solution region (see
minios_lab.classroom) and is worth some points. ``grade(student_dir)``:

* runs *these* checks, the grader's own copy, never the student's tests;
* grades each region in isolation: the student's code for that region is
  spliced into the reference kernel, so one unfinished exercise cannot cost
  the points of another, and restoring one region's solution gives exactly
  that region's points;
* prints GOOD/BAD per check, with the console lines around a failed match,
  points per chapter and a total, like MIT's xv6 `make grade`.

``progress(repo)`` runs the same checks on a learner's tree as it is (no
splicing, the learner has no reference): which chapters pass.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from . import classroom
from .course import CHAPTERS, chapter_by_number
from .errors import MiniosLabError

REPO_DIR = Path(__file__).resolve().parent.parent


class CheckFailed(AssertionError):
    """A graded check failed; `context` holds console lines to show."""

    def __init__(self, message: str, context: Iterable[str] = ()):
        super().__init__(message)
        self.context = list(context)


@dataclass(frozen=True)
class GradedCheck:
    chapter: str
    region: str
    name: str
    points: int
    run: Callable[["Context"], None]


CHECKS: list[GradedCheck] = []


def check(chapter: str, region: str, points: int, name: str):
    """Register a graded check (decorator)."""
    def register(fn: Callable[["Context"], None]):
        CHECKS.append(GradedCheck(chapter, region, name, points, fn))
        return fn
    return register


class Context:
    """What a check may use: host units and guest boots of one kernel tree."""

    def __init__(self, kernel_dir: Path):
        self.kernel_dir = kernel_dir
        self._boots: dict[tuple, object] = {}

    def unit(self, name: str):
        from .units import load
        return load(name, kernel_dir=self.kernel_dir)

    def boot(self, cmdline: str = "", memory_mb: int = 64):
        from .boot import boot
        key = (cmdline, memory_mb)
        if key not in self._boots:
            self._boots[key] = boot(cmdline, memory_mb=memory_mb, timeout=60,
                                    kernel_dir=self.kernel_dir)
        return self._boots[key]

    @staticmethod
    def expect_line(lines: list[str], pattern: str, what: str) -> re.Match:
        """The first line matching `pattern`, or CheckFailed with context."""
        regex = re.compile(pattern)
        for line in lines:
            m = regex.search(line)
            if m:
                return m
        tail = lines[-8:]
        raise CheckFailed(f"{what}: no console line matches {pattern!r}",
                          [f"  {line}" for line in tail] or ["  (no output)"])


@dataclass
class CheckResult:
    chapter: str
    region: str
    name: str
    points: int
    earned: int
    message: str = ""
    context: list[str] = field(default_factory=list)

    @property
    def good(self) -> bool:
        return self.earned == self.points


@dataclass
class GradeReport:
    results: list[CheckResult]

    @property
    def total(self) -> int:
        return sum(r.points for r in self.results)

    @property
    def earned(self) -> int:
        return sum(r.earned for r in self.results)

    def by_chapter(self) -> dict[str, tuple[int, int]]:
        table: dict[str, tuple[int, int]] = {}
        for r in self.results:
            got, out_of = table.get(r.chapter, (0, 0))
            table[r.chapter] = (got + r.earned, out_of + r.points)
        return table

    def by_region(self) -> dict[str, int]:
        table: dict[str, int] = {}
        for r in self.results:
            table[r.region] = table.get(r.region, 0) + r.earned
        return table

    def text(self) -> str:
        lines, chapter = [], None
        for r in self.results:
            if r.chapter != chapter:
                chapter = r.chapter
                lines.append(f"== chapter {chapter}: "
                             f"{chapter_by_number(chapter).title} ==")
            verdict = "GOOD" if r.good else "BAD "
            label = f"{r.region}: {r.name}"
            lines.append(f"  {label:<66} {verdict} {r.earned}/{r.points}")
            if not r.good:
                lines.append(f"      {r.message}")
                lines += [f"      {c}" for c in r.context]
        for number, (got, out_of) in self.by_chapter().items():
            lines.append(f"chapter {number}: {got}/{out_of}")
        lines.append(f"Score: {self.earned}/{self.total}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"earned": self.earned, "total": self.total,
                           "chapters": {k: {"earned": g, "total": t}
                                        for k, (g, t) in
                                        self.by_chapter().items()},
                           "checks": [asdict(r) for r in self.results]},
                          indent=2)


def _run_check(c: GradedCheck, ctx: Context) -> CheckResult:
    try:
        c.run(ctx)
    except CheckFailed as failed:
        return CheckResult(c.chapter, c.region, c.name, c.points, 0,
                           str(failed), failed.context)
    except (AssertionError, MiniosLabError, Exception) as err:  # noqa: BLE001
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        return CheckResult(c.chapter, c.region, c.name, c.points, 0,
                           last.splitlines()[0][:300],
                           str(err).splitlines()[1:12])
    return CheckResult(c.chapter, c.region, c.name, c.points, c.points)


def _selected(chapter: str | None) -> list[GradedCheck]:
    _load_checks()
    if chapter is None:
        return list(CHECKS)
    number = chapter_by_number(chapter).number
    return [c for c in CHECKS if c.chapter == number]


def _spliced_tree(student: Path, region: classroom.Region, workdir: Path,
                  reference: Path = REPO_DIR) -> Path:
    """The reference kernel with the student's code for one region."""
    tree = workdir / region.region_id / "kernel"
    if not tree.exists():
        shutil.copytree(reference / "kernel", tree,
                        ignore=shutil.ignore_patterns("build"))
        rel = Path(region.file).relative_to("kernel")
        student_file = student / region.file
        if not student_file.exists():
            raise CheckFailed(f"{region.file} is missing from the student's tree")
        try:
            text = classroom.splice((reference / region.file).read_text(),
                                    student_file.read_text(), region.region_id)
        except KeyError:
            raise CheckFailed(f"the markers of exercise {region.region_id} "
                              f"are gone from {region.file}") from None
        (tree / rel).write_text(text)
    return tree


def grade(student: Path, chapter: str | None = None) -> GradeReport:
    """Grade a student's tree with the grader's own checks, region by region."""
    regions = {r.region_id: r for r in classroom.all_regions(REPO_DIR)}
    results = []
    with tempfile.TemporaryDirectory(prefix="minios-grade-") as tmp:
        contexts: dict[str, Context] = {}
        for c in _selected(chapter):
            region = regions[c.region]
            try:
                tree = _spliced_tree(Path(student), region, Path(tmp))
            except CheckFailed as failed:
                results.append(CheckResult(c.chapter, c.region, c.name,
                                           c.points, 0, str(failed)))
                continue
            ctx = contexts.setdefault(c.region, Context(tree))
            results.append(_run_check(c, ctx))
    return GradeReport(results)


def progress(repo: Path = REPO_DIR) -> dict[str, tuple[int, int]]:
    """{chapter: (checks passed, checks)} on a learner's tree as it is."""
    ctx = Context(Path(repo) / "kernel")
    table: dict[str, tuple[int, int]] = {}
    for c in _selected(None):
        ok = _run_check(c, ctx).good
        passed, total = table.get(c.chapter, (0, 0))
        table[c.chapter] = (passed + ok, total + 1)
    return table


def progress_text(table: dict[str, tuple[int, int]]) -> str:
    lines = [f"{'chapter':<28} {'checks':>7}  status"]
    for chapter in CHAPTERS:
        if chapter.number not in table:
            continue
        passed, total = table[chapter.number]
        status = "done" if passed == total else (
            "to do" if passed == 0 else "in progress")
        lines.append(f"{chapter.number} {chapter.title:<25} "
                     f"{passed:>3}/{total:<3}  {status}")
    return "\n".join(lines)


def _load_checks() -> None:
    """Import the modules that register checks (once)."""
    from . import checks  # noqa: F401


def check_region(region_id: str, repo: Path = REPO_DIR) -> None:
    """A notebook's check cell: run one exercise region's graded checks on
    the learner's tree as it is; print GOOD/BAD; raise if any is BAD."""
    _load_checks()
    chosen = [c for c in CHECKS if c.region == region_id]
    if not chosen:
        raise ValueError(f"no graded checks for region {region_id!r}")
    ctx = Context(Path(repo) / "kernel")
    results = [_run_check(c, ctx) for c in chosen]
    for r in results:
        print(f"{'GOOD' if r.good else 'BAD '}  {r.region}: {r.name}")
        if not r.good:
            print(f"      {r.message}")
            for line in r.context:
                print(f"      {line}")
    bad = [r for r in results if not r.good]
    if bad:
        raise CheckFailed(f"{len(bad)} of {len(results)} checks of "
                          f"{region_id} failed")
