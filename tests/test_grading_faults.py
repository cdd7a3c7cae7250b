"""The grader under a learner's wrong code: each injected fault in one
region costs that region's checks only, with a message saying what
happened, and the report and the JSON are always written.

The faults are injected into a copy of the kernel (a fixture), never into
kernel/. Chapter 02 (two host-only regions in kernel/lib/string.c) keeps
these tests fast; the time limit is short.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from minios_lab import cli
from minios_lab.classroom.grading import grade

REPO = Path(__file__).resolve().parent.parent
STRING_C = "kernel/lib/string.c"
LIMIT = 4.0

FAULTS = {
    "segfault": "*(volatile unsigned char *)16 = 1;\nreturn NULL;",
    "endless loop": "for (;;)\n    ;",
    "BUG": "BUG();\nreturn NULL;",
    "compile error": "return no_such_variable;",
    "wrong result": "return (char *)haystack;",
    # The whole process dies by a signal no handler can catch.
    "signal death": "extern int getpid(void);\nextern int kill(int, int);\n"
                    "kill(getpid(), 9);\nreturn NULL;",
}


def _student(tmp_path: Path, body: str, region: str = "strstr-search",
             pad: int = 0) -> Path:
    """A student tree: the kernel with `region`'s body replaced by `body`
    and `pad` comment lines added at the top of string.c."""
    student = tmp_path / "student"
    shutil.copytree(REPO / "kernel", student / "kernel",
                    ignore=shutil.ignore_patterns("build"))
    path = student / STRING_C
    lines = path.read_text().splitlines()
    begin = next(i for i, line in enumerate(lines)
                 if f"BEGIN SOLUTION {region}" in line)
    end = next(i for i in range(begin, len(lines))
               if "END SOLUTION" in lines[i])
    body_lines = [f"    {line}" for line in body.splitlines()]
    lines[begin + 1:end] = body_lines
    lines[0:0] = [f"/* padding {n} */" for n in range(pad)]
    path.write_text("\n".join(lines) + "\n")
    return student


def _by_region(report):
    return {r.region: r for r in report.results}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_costs_only_its_region(tmp_path, fault):
    student = _student(tmp_path, FAULTS[fault])
    report = grade(student, chapter="02", limit=LIMIT)
    results = _by_region(report)
    assert results["memmove-overlap"].good, report.text()
    bad = results["strstr-search"]
    assert bad.earned == 0 and bad.status != "passed", report.text()
    expected = {"segfault": ("crashed", r"crashed: (SIGSEGV|.*segmentation)"),
                "endless loop": ("timed out", r"did not finish in 4 s"),
                "BUG": ("crashed", r"crashed: kernel panic"),
                "compile error": ("failed", r"does not compile: .*"
                                  r"no_such_variable"),
                "wrong result": ("failed", r"strstr\(.*gave"),
                "signal death": ("crashed", r"crashed: SIGKILL")}[fault]
    assert bad.status == expected[0], report.text()
    assert re.search(expected[1], bad.message, re.IGNORECASE), bad.message


def test_compile_error_names_the_students_own_line(tmp_path):
    student = _student(tmp_path, FAULTS["compile error"], pad=7)
    wrong_line = next(n for n, line in enumerate(
        (student / STRING_C).read_text().splitlines(), 1)
        if "no_such_variable" in line)
    report = grade(student, region="strstr-search", limit=LIMIT)
    text = "\n".join([report.results[0].message,
                      *report.results[0].context])
    assert f"{STRING_C}:{wrong_line}:" in text, text
    assert "minios-grade-" not in text, text


def test_panic_names_the_students_own_line(tmp_path):
    student = _student(tmp_path, FAULTS["BUG"], pad=5)
    bug_line = next(n for n, line in enumerate(
        (student / STRING_C).read_text().splitlines(), 1) if "BUG();" in line)
    report = grade(student, region="strstr-search", limit=LIMIT)
    assert f"{STRING_C}:{bug_line}" in report.results[0].message, \
        report.text()


def test_cli_writes_report_and_json_and_says_points_were_lost(
        tmp_path, capsys):
    student = _student(tmp_path, FAULTS["segfault"])
    out = tmp_path / "grade.json"
    status = cli.main(["grade", "--student", str(student), "--chapter", "02",
                       "--limit", str(LIMIT), "--json", str(out)])
    assert status == 1
    printed = capsys.readouterr().out
    assert "Score: 5/10" in printed
    data = json.loads(out.read_text())
    assert data["earned"] == 5 and data["total"] == 10
    crashed = [c for c in data["checks"] if c["status"] == "crashed"]
    assert [c["region"] for c in crashed] == ["strstr-search"]


def test_region_exit_status(tmp_path):
    student = _student(tmp_path, FAULTS["wrong result"])
    args = ["grade", "--student", str(student), "--limit", str(LIMIT),
            "--region"]
    assert cli.main(args + ["strstr-search"]) == 1
    assert cli.main(args + ["memmove-overlap"]) == 0


def _private_tmp(tmp_path: Path, monkeypatch) -> Path:
    """A TMPDIR of this test's own: other graders may run beside it."""
    import tempfile
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return private


def test_no_grade_directories_are_left(tmp_path, monkeypatch):
    private = _private_tmp(tmp_path, monkeypatch)
    student = _student(tmp_path, FAULTS["segfault"])
    report = grade(student, region="strstr-search", limit=1.0)
    assert report.results[0].status == "crashed"
    assert list(private.iterdir()) == []


def test_no_grade_directories_are_left_when_the_grader_is_killed(
        tmp_path, monkeypatch):
    """SIGTERM to a grading process (e.g. a batch's time limit) still
    removes its temporary tree and stops its worker."""
    import subprocess
    import sys
    import time
    private = _private_tmp(tmp_path, monkeypatch)
    student = _student(tmp_path, FAULTS["endless loop"])
    proc = subprocess.Popen([sys.executable, "-m", "minios_lab.cli", "grade",
                             "--student", str(student), "--region",
                             "strstr-search", "--limit", "120"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)
    worker_log = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker_log is None:
        worker_log = next(private.glob("minios-grade-*/worker-*.log"), None)
        time.sleep(0.2)
    assert worker_log is not None, "the grader never started its worker"
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    assert list(private.iterdir()) == []
