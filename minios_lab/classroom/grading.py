"""Automatic grading: points per exercise region, GOOD/BAD per check.

Each graded check belongs to one chapter and one solution region (see
minios_lab.classroom.handout) and is worth some points. ``grade(student_dir)``:

* runs *these* checks, the grader's own copy, never the student's tests;
* takes only the student's code between the exercise markers, spliced
  into the reference kernel: first every region at once (one build, shared
  boots: a solved tree is graded in one pass), then each region that lost
  points there on its own, with the reference code everywhere else, so one
  unfinished exercise (of this chapter or another) cannot cost the points
  of another, and restoring one region's solution gives exactly that
  region's points;
* runs every check in a worker process with a time limit
  (minios_lab.classroom.runner): a region that crashes or loops loses that
  check's points, with a message saying so, and the grader goes on;
* prints GOOD/BAD per check, with the compiler's error or the console lines
  around a failed match, points per chapter and a total, like MIT's xv6
  `make grade`.

``progress(repo)`` runs the same checks on a learner's tree: which chapters
pass. Both default to the kit tree the current directory is in.
"""
from __future__ import annotations

import minios_lab

import difflib
import re
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from minios_lab import errors

from minios_lab.classroom import handout as classroom

from minios_lab.classroom import trees as grade_tree
from minios_lab.classroom.course import CHAPTERS, chapter_by_number
from minios_lab.classroom.report import CheckResult, GradeReport

REPO_DIR = minios_lab.REPO_DIR
DEFAULT_LIMIT = 10.0     # seconds of a check's own time (builds excluded)

__all__ = ["CheckFailed", "CheckResult", "GradeReport", "check", "grade",
           "progress", "progress_text", "check_region", "CHECKS"]


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
_notify: Callable[..., None] = lambda **event: None


def set_notifier(notify: Callable[..., None]) -> None:
    """Called by a grading worker: builds and boots pause the check's clock."""
    global _notify
    _notify = notify


def check(chapter: str, region: str, points: int, name: str):
    """Register a graded check (decorator)."""
    def register(fn: Callable[["Context"], None]):
        CHECKS.append(GradedCheck(chapter, region, name, points, fn))
        return fn
    return register


class Context:
    """What a check may use: host units and guest boots of one kernel tree.

    `alone`: boot each chapter on its own (the guest word only=NAME), for a
    tree with no reference code to splice in (a learner's hand-out), so a
    stub in one chapter cannot fail another chapter's guest check. Boots
    are shared either way: one per command line (so one per chapter when
    alone, one for all chapters otherwise).
    """

    def __init__(self, kernel_dir: Path, alone: bool = False):
        self.kernel_dir = kernel_dir
        self.alone = alone
        self._boots: dict[tuple, object] = {}
        self.last_boot = None
        self.last_timeout: float = 0

    def unit(self, name: str):
        from minios_lab.build.units import load
        _notify(pause="build")
        try:
            return load(name, kernel_dir=self.kernel_dir)
        finally:
            _notify(resume="build")

    def boot(self, cmdline: str = "", memory_mb: int = 64, timeout: int = 60):
        from minios_lab.guest.boot import boot
        key = (cmdline, memory_mb)
        if key not in self._boots:
            _notify(pause="boot")
            try:
                self._boots[key] = boot(cmdline, memory_mb=memory_mb,
                                        timeout=timeout,
                                        kernel_dir=self.kernel_dir)
            finally:
                _notify(resume="boot")
        self.last_boot, self.last_timeout = self._boots[key], timeout
        return self.last_boot

    def section(self, chapter: str, cmdline: str = "ticks=0") -> list[str]:
        """The guest's lines of one chapter (its name in kernel/kernel.c's
        table), from a boot with `cmdline` (alone: plus only=chapter)."""
        if self.alone:
            cmdline = f"{cmdline} only={chapter}"
        return self.boot(cmdline).section(chapter)

    def expect_line(self, lines: list[str], pattern: str,
                    what: str) -> re.Match:
        """The first line matching `pattern`, or CheckFailed with the lines
        around where it was expected."""
        regex = re.compile(pattern)
        for line in lines:
            m = regex.search(line)
            if m:
                return m
        message = f"{what}: no console line matches {pattern!r}"
        if not lines and self.last_boot is not None:
            return self._guest_stopped(message)
        raise CheckFailed(message, [f"  {line}" for line in
                                    _around(lines, pattern)]
                          or ["  (no output)"])

    def _guest_stopped(self, message: str):
        result = self.last_boot
        why = {"timeout": f"the guest did not finish in "
                          f"{self.last_timeout:g} s",
               "crash": "the guest crashed",
               "error": "QEMU failed"}.get(result.outcome, "")
        if result.crash is not None:
            why = f"the guest crashed: {result.crash}"
        context = [f"  {line}" for line in result.guest_lines[-10:]]
        raise CheckFailed(f"{message} ({why or 'the chapter never ran'})",
                          context or ["  (no output)"])


def _around(lines: list[str], pattern: str, radius: int = 3) -> list[str]:
    """The lines nearest to what `pattern` expects: the most similar line
    and `radius` lines on each side (the last lines if none is similar)."""
    if not lines:
        return []
    literal = re.sub(r"\\.|[\^\$\(\)\[\]\*\+\?\{\}\|]", "", pattern)
    scores = [difflib.SequenceMatcher(None, literal, line).ratio()
              for line in lines]
    best = max(range(len(lines)), key=scores.__getitem__)
    if scores[best] < 0.3:
        return lines[-2 * radius - 2:]
    return lines[max(0, best - radius):best + radius + 1]


def _first_line(err: BaseException) -> str:
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    return last.splitlines()[0][:300]


def run_check(c: GradedCheck, ctx: Context) -> CheckResult:
    """Run one check in this process; the outcome as a CheckResult."""
    def lost(status: str, message: str, context: Iterable[str] = ()):
        return CheckResult(c.chapter, c.region, c.name, c.points, 0,
                           message, list(context), status=status)
    from minios_lab.guest.boot import BuildError
    fault = getattr(errors, "KernelFault", None)
    try:
        c.run(ctx)
    except CheckFailed as failed:
        return lost("failed", str(failed), failed.context)
    except (errors.CompileError, BuildError) as err:
        first, lines = grade_tree.compiler_error(str(err))
        return lost("failed", f"does not compile: {first}", lines)
    except errors.KernelPanic as err:
        if str(err.message).startswith("not implemented"):  # a fresh stub
            return lost("failed", f"not written yet: {err}")
        return lost("crashed", f"crashed: kernel panic: {err}",
                    str(err.console).splitlines()[-8:])
    except Exception as err:  # noqa: BLE001 - every fault is the check's
        if fault is not None and isinstance(err, fault):
            return lost("crashed", f"crashed: {err}")
        return lost("failed", _first_line(err), str(err).splitlines()[1:12])
    return CheckResult(c.chapter, c.region, c.name, c.points, c.points,
                       status="passed")


def load_checks() -> None:
    """Import the modules that register checks (once)."""
    from minios_lab.classroom import checks  # noqa: F401


_load_checks = load_checks   # the old name


def selected(chapter: Optional[str] = None,
             region: Optional[str] = None) -> list[int]:
    """Indexes of the checks of one chapter or one region (or all)."""
    load_checks()
    if region is not None:
        chosen = [i for i, c in enumerate(CHECKS) if c.region == region]
        if not chosen:
            raise ValueError(f"no graded checks for region {region!r}")
        return chosen
    if chapter is None:
        return list(range(len(CHECKS)))
    number = chapter_by_number(chapter).number
    return [i for i, c in enumerate(CHECKS) if c.chapter == number]


def default_tree() -> Path:
    """The kit tree the current directory is in (else this package's)."""
    return grade_tree.find_tree(Path.cwd()) or REPO_DIR


def grade(student: Optional[Path] = None, chapter: Optional[str] = None,
          region: Optional[str] = None, limit: float = DEFAULT_LIMIT,
          reference: Path = REPO_DIR) -> GradeReport:
    """Grade a student's tree with the grader's own checks, region by region,
    each check isolated with a time limit of `limit` seconds."""
    student = Path(student) if student is not None else default_tree()
    report = GradeReport.start(student)
    chosen = selected(chapter, region)
    if not (student / "kernel").is_dir():
        return report.finish([_lost(i, f"no kernel/ folder in {student}")
                              for i in chosen])
    if student.resolve() == Path(reference).resolve() or \
            not grade_tree.has_solutions(reference):
        # A tree grading itself (or a hand-out, which has only itself):
        # each region spliced into the same tree is the tree itself, so
        # check it once, as it is, sharing builds and boots.
        return report.finish(_as_is(student, chosen, limit))
    regions = {r.region_id: r for r in classroom.all_regions(reference)}
    found: dict[int, CheckResult] = {}
    grade_tree.sweep_stale()
    with tempfile.TemporaryDirectory(prefix=grade_tree.workdir_prefix()) as tmp:
        lost = _together(student, chosen, regions, Path(tmp), reference,
                         limit, found)
        for region_id in lost:      # again, each region alone
            indexes = [i for i in chosen if CHECKS[i].region == region_id]
            _spliced_run(student, [regions[region_id]], indexes, Path(tmp),
                         reference, limit, found)
    return report.finish([found[i] for i in chosen])


def _spliced_run(student: Path, regions: list, indexes: list[int],
                 workdir: Path, reference: Path, limit: float,
                 found: dict[int, CheckResult]) -> None:
    """Run checks `indexes` on the reference kernel with the student's code
    for `regions`, each check isolated; results into `found`."""
    from minios_lab.classroom.runner import Job, run_isolated
    name = regions[0].region_id if len(regions) == 1 else "all-regions"
    tree, lines, errors = grade_tree.spliced_tree(student, regions, workdir,
                                                  reference, name)
    for i in indexes:
        if CHECKS[i].region in errors:
            found[i] = _lost(i, errors[CHECKS[i].region])
    runnable = [i for i in indexes if i not in found]
    if runnable:
        results = run_isolated(Job(tree, runnable, lines), workdir, limit)
        for i, result in zip(runnable, results):
            found[i] = _cleaned(result, lines)


def _together(student: Path, chosen: list[int], regions: dict,
              workdir: Path, reference: Path, limit: float,
              found: dict[int, CheckResult]) -> list[str]:
    """First pass: every chosen region of the student at once, in one tree
    (one build, shared boots). Regions that earn all their points there
    keep them; the others are returned, to be graded alone (so that one
    chapter's stub never costs another chapter's points)."""
    ids = list(dict.fromkeys(CHECKS[i].region for i in chosen))
    if len(ids) == 1:
        _spliced_run(student, [regions[ids[0]]], chosen, workdir, reference,
                     limit, found)
        return []
    first: dict[int, CheckResult] = {}
    _spliced_run(student, [regions[r] for r in ids], chosen, workdir,
                 reference, limit, first)
    lost = {CHECKS[i].region for i, r in first.items() if not r.good}
    found.update((i, r) for i, r in first.items()
                 if CHECKS[i].region not in lost)
    return [r for r in ids if r in lost]


def _lost(index: int, message: str) -> CheckResult:
    c = CHECKS[index]
    return CheckResult(c.chapter, c.region, c.name, c.points, 0, message,
                       status="failed")


def _cleaned(result: CheckResult, lines: grade_tree.LineMap) -> CheckResult:
    result.message = lines(result.message)
    result.context = [lines(line) for line in result.context]
    return result


def _as_is(repo: Path, indexes: list[int], limit: float) -> list[CheckResult]:
    """The checks run on a tree as it is (no splicing), isolated. A tree
    with a learner's code in it (a hand-out, even one restored region)
    boots each chapter alone."""
    from minios_lab.classroom.runner import Job, run_isolated
    kernel = Path(repo) / "kernel"
    alone = not grade_tree.all_reference(Path(repo))
    with tempfile.TemporaryDirectory(prefix=grade_tree.workdir_prefix()) as tmp:
        lines = grade_tree.LineMap(kernel)
        results = run_isolated(Job(kernel, indexes, lines, alone=alone),
                               Path(tmp), limit)
    return [_cleaned(r, lines) for r in results]


def progress(repo: Optional[Path] = None,
             limit: float = DEFAULT_LIMIT) -> dict[str, tuple[int, int]]:
    """{chapter: (checks passed, checks)} of a learner's tree.

    Where the grader has the reference code, each region is graded on its
    own (a later chapter's stub cannot fail an earlier chapter); otherwise
    the tree is checked as it is.
    """
    repo = Path(repo) if repo is not None else default_tree()
    if repo.resolve() != REPO_DIR.resolve() and \
            grade_tree.has_solutions(REPO_DIR):
        results = grade(repo, limit=limit).results
    else:
        results = _as_is(repo, selected(), limit)
    table: dict[str, tuple[int, int]] = {}
    for r in results:
        passed, total = table.get(r.chapter, (0, 0))
        table[r.chapter] = (passed + r.good, total + 1)
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


def check_region(region_id: str, repo: Optional[Path] = None,
                 limit: float = DEFAULT_LIMIT) -> None:
    """A notebook's check cell: run one exercise region's graded checks on
    the learner's tree as it is, each isolated (a crash or an endless loop
    in the learner's C never takes the notebook down); print GOOD/BAD;
    raise if any is BAD."""
    repo = Path(repo) if repo is not None else default_tree()
    results = _as_is(repo, selected(region=region_id), limit)
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
