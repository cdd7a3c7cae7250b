"""Hand-outs and grading: the full tree scores 100%, a fresh hand-out 0,
restoring one region gives exactly its points, the grader ignores the
student's own copy of the checks."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nbformat
import pytest

from conftest import made_once
from minios_lab.classroom.handout import (MarkerError, _chapter_files, _spans,
                                  _tracked_files, all_regions, leaks,
                                  leaks_c, make_assignment, region_bodies,
                                  restore_region, solution_lines, splice,
                                  strip_c, strip_cell)
from minios_lab.classroom.course import CHAPTERS
from minios_lab.classroom.grading import (_load_checks, CHECKS, default_tree, grade,
                                progress)
from minios_lab.classroom.tasks import show_task, tasks

REPO = Path(__file__).resolve().parent.parent


def test_regions_are_balanced_unique_and_graded():
    regions = all_regions()
    ids = [r.region_id for r in regions]
    assert len(ids) == len(set(ids)), "region ids must be unique"
    _load_checks()
    graded = {c.region for c in CHECKS}
    assert graded <= set(ids), f"checks for unknown regions: {graded - set(ids)}"
    assert set(ids) <= graded, f"regions without checks: {set(ids) - graded}"


def test_each_chapter_with_exercises_has_two_to_five_regions():
    for chapter in CHAPTERS:
        files = [f"kernel/{f}" for f in chapter.kernel_files]
        count = sum(1 for r in all_regions() if r.file in files)
        written = any((REPO / f).exists() for f in files)
        if written:
            assert 2 <= count <= 5, f"chapter {chapter.number} has {count}"


def test_default_stub_compiles_where_it_is_used():
    for region in all_regions():
        text = (REPO / region.file).read_text()
        if "stub:" not in text.splitlines()[region.first_line - 1]:
            assert "#include <minios/bug.h>" in text, region.file


def test_strip_and_splice_round_trip():
    text = ("int f(int x)\n{\n    /* BEGIN SOLUTION add */\n    return x + 1;\n"
            "    /* END SOLUTION */\n}\n")
    handout = strip_c(text, "f.c")
    assert "return x + 1" not in handout
    assert "/* BEGIN EXERCISE add */" in handout and "TODO(add)" in handout
    assert 'PANIC("not implemented: %s", __func__);' in handout
    restored = splice(handout, text, "add")
    assert region_bodies(restored)["add"] == ["    return x + 1;"]
    assert restored.count("BEGIN EXERCISE add") == 1


def test_unbalanced_markers_are_reported():
    with pytest.raises(MarkerError, match="without END"):
        strip_c("void f(void)\n{\n    /* BEGIN SOLUTION */\n}\n", "f.c")
    with pytest.raises(MarkerError):
        strip_cell("### BEGIN SOLUTION\nx = 1\n")


def test_notebook_cell_stub():
    source, found = strip_cell("a = 1\n### BEGIN SOLUTION\nb = a + 1\n"
                               "### END SOLUTION\nassert b == 2")
    assert found and "b = a + 1" not in source
    assert "raise NotImplementedError" in source and "assert b == 2" in source


@pytest.fixture(scope="module")
def handout(run_folder) -> Path:
    """A full hand-out, made once per test run (xdist workers share it:
    tests only read it)."""
    def make(folder: Path) -> Path:
        make_assignment(folder / "lab")
        return folder / "lab"
    return made_once(run_folder, "a full hand-out", make)


def test_handout_has_no_solutions_and_is_a_repo(handout):
    for region in all_regions():
        text = (handout / region.file).read_text()
        assert "SOLUTION" not in text
        assert f"TODO({region.region_id})" in text
    assert (handout / ".git").is_dir()
    for chapter in CHAPTERS:
        nb = nbformat.read(handout / "notebooks" / chapter.notebook, 4) \
            if (handout / "notebooks" / chapter.notebook).exists() else None
        for cell in (nb.cells if nb else []):
            if "NotImplementedError" in cell.source:
                assert cell.outputs == [] and cell.execution_count is None
            assert "### BEGIN SOLUTION" not in cell.source


def test_handout_builds(handout):
    proc = subprocess.run(["make", "-C", str(handout / "kernel")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def handout_grade(handout, run_folder):
    """Its grade, graded once per test run."""
    return made_once(run_folder, "the full hand-out's grade",
                     lambda _: grade(handout))


def test_full_tree_scores_everything():
    report = grade(REPO)
    assert report.total > 0
    assert report.earned == report.total, report.text()


def test_fresh_handout_scores_zero_on_every_check(handout_grade):
    assert handout_grade.total > 0
    assert [r for r in handout_grade.results if r.earned] == [], \
        handout_grade.text()
    assert "BAD" in handout_grade.text()


@pytest.mark.parametrize("region_id", ["cmdline-words", "memmove-overlap"])
def test_restoring_one_region_gives_exactly_its_points(tmp_path, region_id):
    student = tmp_path / "lab"
    make_assignment(student)
    restore_region(student, region_id)
    report = grade(student)
    _load_checks()
    expected = {c.region: 0 for c in CHECKS}      # every graded region
    expected[region_id] = sum(c.points for c in CHECKS if c.region == region_id)
    assert report.by_region() == expected, report.text()


def test_grader_ignores_the_students_copy_of_the_checks(tmp_path):
    student = tmp_path / "lab"
    make_assignment(student, ["02"])
    fake = student / "minios_lab" / "classroom" / "checks" / "ch02_libc.py"
    fake.write_text(fake.read_text().replace("raise CheckFailed(", "print("))
    report = grade(student, chapter="02")
    assert report.earned == 0, report.text()


def test_json_report_and_progress(handout_grade, tmp_path):
    data = json.loads(handout_grade.to_json())
    assert data["earned"] == 0 and data["total"] == handout_grade.total
    assert set(data["chapters"]) == {r.chapter for r in handout_grade.results}
    table = progress(REPO)
    assert all(passed == total for passed, total in table.values())


def test_handout_of_one_chapter_leaves_the_others_whole(tmp_path):
    student = tmp_path / "lab"
    removed = make_assignment(student, ["02"])
    assert {r.file for r in removed} == {"kernel/lib/string.c"}
    assert grade(student, chapter="02").earned == 0
    other = grade(student, chapter="01")
    assert other.earned == other.total > 0, other.text()


def test_every_file_with_solutions_belongs_to_a_chapter():
    kernel_files, _ = _chapter_files(CHAPTERS)
    for rel in _tracked_files(REPO):
        if rel.startswith("kernel/") and rel.endswith((".c", ".h", ".S")):
            spans = _spans((REPO / rel).read_text().splitlines(), rel)
            assert not spans or rel in kernel_files, \
                f"{rel} has solution regions but is in no chapter"


def test_full_handout_shows_no_line_of_any_solution(handout):
    """Every file of the hand-out, notebooks' sources and stored outputs
    included: no line of a solution region (blank lines, lone braces and
    lines found outside solutions in the kernel aside)."""
    kernel_files, _ = _chapter_files(CHAPTERS)
    secrets = solution_lines(REPO, kernel_files)
    assert len(secrets) > 50
    # The check itself must see a solution where there is one.
    assert leaks_c((REPO / "kernel/mm/page_alloc.c").read_text(), secrets)
    assert leaks((REPO / "notebooks/03-page-allocator.ipynb").read_text(),
                 secrets)
    found = {}
    for rel in _tracked_files(handout):
        try:
            text = (handout / rel).read_text()
        except UnicodeDecodeError:
            continue
        hit = leaks_c(text, secrets) if rel.startswith("kernel/") \
            else leaks(text, secrets)
        if hit:
            found[rel] = hit[:3]
    assert found == {}


def test_stored_verdicts_are_cleared_in_the_handout(handout):
    for chapter in CHAPTERS:
        nb = nbformat.read(handout / "notebooks" / chapter.notebook, 4)
        for cell in nb.cells:
            if cell.cell_type == "code" and ("check_region(" in cell.source
                                             or "progress(" in cell.source):
                assert cell.outputs == [], (chapter.notebook, cell.source)


def test_every_region_has_a_task_and_points_add_up(handout_grade):
    listed = tasks()
    assert [t.id for t in listed] == [r.region_id for r in all_regions()]
    for task in listed:
        assert task.difficulty in ("easy", "moderate", "hard")
        assert task.points > 0 and len(task.statement) > 80, task.id
        assert task.chapter == next(
            c.number for c in CHAPTERS
            if task.file in {f"kernel/{f}" for f in c.kernel_files})
    assert sum(t.points for t in listed) == handout_grade.total
    assert sum(t.points for t in tasks("03")) == \
        sum(r.points for r in handout_grade.results if r.chapter == "03")


def test_tasks_are_shown_in_stubs_cli_and_notebooks(handout, capsys):
    from minios_lab import cli
    task = next(t for t in tasks() if t.id == "split_chunk")
    stub = (handout / task.file).read_text()
    assert f"TODO({task.id})" in stub
    first_words = " ".join(task.statement.split()[:6])
    assert first_words in " ".join(stub.replace("*", " ").split())
    assert cli.main(["tasks", "--chapter", "03", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["id"] for d in data} == {"split_chunk", "merge_with_buddies"}
    assert set(data[0]) >= {"chapter", "id", "file", "function",
                            "difficulty", "points", "statement"}
    md = show_task("split_chunk").data
    assert task.statement in md and f"{task.points} points" in md
    with pytest.raises(ValueError, match="no task"):
        show_task("no-such-task")


def test_the_tree_you_stand_in_is_the_default(handout, monkeypatch):
    monkeypatch.chdir(handout / "notebooks")
    assert default_tree() == handout.resolve()
    monkeypatch.chdir("/")
    assert default_tree() == REPO


def test_handout_has_make_grade(handout):
    proc = subprocess.run(["make", "-n", "-C", str(handout), "grade-03"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "minios-lab grade --chapter 03" in proc.stdout


def test_start_makes_a_copy_and_says_what_next(tmp_path, capsys):
    from minios_lab import cli
    out = tmp_path / "my-lab"
    assert cli.main(["start", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"cd {out}" in said and "make lab" in said and "make grade" in said
    assert (out / ".git").is_dir()
    for region in all_regions():
        assert f"TODO({region.region_id})" in (out / region.file).read_text()


def test_progress_of_a_chapter_is_not_hurt_by_later_stubs(tmp_path):
    """Chapter 03 solved, 05 (whose stub panics in the guest before the
    mm chapter runs) not: 03 is done all the same."""
    student = tmp_path / "lab"
    make_assignment(student)
    rel = "kernel/mm/page_alloc.c"        # both regions of chapter 03
    (student / rel).write_text(strip_c((REPO / rel).read_text(), rel,
                                       keep={"split_chunk",
                                             "merge_with_buddies"}))
    table = progress(student)
    assert table["03"] == (4, 4), table
    assert table["05"][0] == 0 and table["02"][0] == 0, table
