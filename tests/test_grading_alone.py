"""Chapters booted alone (the guest word only=NAME): the guest runs one
chapter, and the grader uses it on a learner's tree, where no reference
code can be spliced in, so one chapter's stub cannot fail another's
guest check."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minios_lab.guest import boot as boot_module
from minios_lab.classroom import trees as grade_tree
from minios_lab.guest.boot import boot
from minios_lab.classroom.handout import make_assignment, restore_region
from minios_lab.classroom.checking import Context

REPO = Path(__file__).resolve().parent.parent


def test_only_mm_runs_just_the_mm_chapter():
    result = boot("ticks=0 only=mm", timeout=120)
    assert result.outcome == "shutdown", result.report()
    assert result.result == "SUCCESS", result.report()
    assert result.chapters == {"mm": "PASS"}
    headers = [line for line in result.guest_lines
               if line.startswith("== chapter ")]
    assert headers == ["== chapter mm =="]
    assert "mm: selftest PASS" in result.section("mm")
    assert "xmalloc: selftest PASS" in result.section("mm")


def test_only_with_an_unknown_chapter_fails_clearly():
    result = boot("ticks=0 only=nosuch", timeout=120)
    assert result.outcome == "shutdown", result.report()
    assert result.result == "FAILURE"
    assert result.chapters == {}
    assert any(line.startswith("only=nosuch: no such chapter")
               for line in result.guest_lines), result.guest_lines


class _FakeBoot:
    def __init__(self, cmdline: str):
        self.cmdline = cmdline

    def section(self, chapter: str) -> list[str]:
        return [f"{chapter} from {self.cmdline}"]


@pytest.mark.parametrize("alone", [False, True])
def test_sections_share_one_boot_per_configuration(monkeypatch, tmp_path,
                                                   alone):
    booted: list[str] = []

    def fake_boot(cmdline, **kwargs):
        booted.append(cmdline)
        return _FakeBoot(cmdline)
    monkeypatch.setattr(boot_module, "boot", fake_boot)
    ctx = Context(tmp_path, alone=alone)
    for chapter in ("mm", "mm", "traps", "mm", "traps"):
        ctx.section(chapter)
    ctx.section("time", "tick_us=1000 ticks=100")
    if alone:
        assert booted == ["ticks=0 only=mm", "ticks=0 only=traps",
                          "tick_us=1000 ticks=100 only=time"]
    else:
        assert booted == ["ticks=0", "tick_us=1000 ticks=100"]
    assert ctx.section("mm") == [f"mm from {booted[0]}"]


def test_a_handout_is_not_all_reference_code(tmp_path):
    student = tmp_path / "lab"
    make_assignment(student, ["03"])
    assert grade_tree.has_solutions(student)        # other chapters kept
    assert not grade_tree.all_reference(student)
    assert grade_tree.all_reference(REPO)


def test_handout_progress_not_hurt_by_a_later_chapters_stub(tmp_path):
    """In a hand-out (no reference code to splice in), chapter 03 solved
    and chapter 05 stubbed (its pt_walk panics in the guest's pagetables
    chapter, before mm): `progress` of the hand-out's own kit says 03 is
    done."""
    student = tmp_path / "lab"
    make_assignment(student, ["03", "05"])
    for region in ("split_chunk", "merge_with_buddies"):
        restore_region(student, region)
    # The whole guest, as it was booted before only=: 05's stub kills it.
    whole = boot("ticks=0", kernel_dir=student / "kernel", timeout=120)
    assert whole.outcome == "crash" and "mm" not in whole.chapters
    env = {**os.environ, "PYTHONPATH": str(student)}
    proc = subprocess.run(
        [sys.executable, "-c", "import json; from minios_lab.classroom.grading import "
         "progress; print(json.dumps(progress()))"],
        cwd=student, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads(proc.stdout.strip().splitlines()[-1])
    assert table["03"] == [4, 4], table
    assert table["04"][0] == table["04"][1] > 0, table
    assert table["05"][0] == 0, table
