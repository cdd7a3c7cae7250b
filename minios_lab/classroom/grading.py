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

import tempfile
from pathlib import Path
from typing import Optional

from minios_lab.classroom import handout as classroom

from minios_lab.classroom import trees as grade_tree
from minios_lab.classroom.course import CHAPTERS, chapter_by_number
from minios_lab.classroom.checking import (CHECKS, CheckFailed,  # noqa: F401
                                           _load_checks, check, load_checks)
from minios_lab.classroom.report import CheckResult, GradeReport

REPO_DIR = minios_lab.REPO_DIR
STUB_MESSAGE = ("not written yet: this exercise is still the hand-out's stub "
                "(`minios-lab tasks` says what to write)")
DEFAULT_LIMIT = 10.0     # seconds of a check's own time (builds excluded)

__all__ = ["CheckFailed", "CheckResult", "GradeReport", "check", "grade",
           "progress", "progress_text", "check_region", "CHECKS"]




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
        stubs = grade_tree.untouched_stubs(student, [regions[r] for r in lost],
                                           reference)
        for region_id in lost:      # again, each region alone
            indexes = [i for i in chosen if CHECKS[i].region == region_id]
            if region_id in stubs:  # it failed above: no need to run it again
                found.update((i, _lost(i, STUB_MESSAGE)) for i in indexes)
                continue
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
