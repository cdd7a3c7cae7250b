"""Grading for a class: the JSON's facts, Gradescope's results.json, and a
batch of students in parallel where one student's crash or hang never
stops the others. Chapter 02 only (host checks), to stay fast."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

from minios_lab import cli
from minios_lab.classroom.gradebook import grade_many, student_ids

from test_grading_faults import FAULTS, LIMIT, _student

REPO = Path(__file__).resolve().parent.parent


def _git_tree(path: Path) -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=path, check=True,
                              capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    return git("rev-parse", "HEAD")


def test_json_records_who_what_when(tmp_path):
    student = _student(tmp_path, FAULTS["wrong result"])
    commit = _git_tree(student)
    out = tmp_path / "r.json"
    assert cli.main(["grade", "--student", str(student), "--chapter", "02",
                     "--student-id", "alice", "--json", str(out),
                     "--limit", str(LIMIT)]) == 1
    data = json.loads(out.read_text())
    assert data["student"] == "alice" and data["commit"] == commit
    assert data["started"].endswith("+00:00") and data["elapsed_s"] > 0
    assert data["grader_version"]
    statuses = {c["region"]: c["status"] for c in data["checks"]}
    assert statuses == {"memmove-overlap": "passed",
                        "strstr-search": "failed"}
    for c in data["checks"]:
        assert set(c) >= {"chapter", "region", "name", "points", "earned",
                          "status", "message", "context"}


def test_gradescope_results(tmp_path):
    student = _student(tmp_path, FAULTS["BUG"])
    out = tmp_path / "results.json"
    cli.main(["grade", "--student", str(student), "--chapter", "02",
              "--format", "gradescope", "--json", str(out),
              "--limit", str(LIMIT)])
    data = json.loads(out.read_text())
    assert data["score"] == 5 and isinstance(data["execution_time"], int)
    assert "5/10" in data["output"]
    by_name = {t["name"].split(":")[0]: t for t in data["tests"]}
    bad = by_name["02 strstr-search"]
    assert bad["score"] == 0 and bad["max_score"] == 5
    assert bad["status"] == "failed" and "kernel panic" in bad["output"]
    good = by_name["02 memmove-overlap"]
    assert good["status"] == "passed" and good["visibility"] == "visible"


def test_student_ids_are_unique():
    assert student_ids([Path("a/x"), Path("b/x"), Path("c/y")]) == \
        ["x", "x-2", "y"]


def test_a_batch_survives_crashes_and_hangs(tmp_path):
    trees = []
    for name, fault in (("ann", "wrong result"), ("bob", "segfault"),
                        ("cyd", "endless loop")):
        trees.append(_student(tmp_path / name, FAULTS[fault]))
        trees[-1] = trees[-1].rename(tmp_path / name / name)
    out = tmp_path / "results"
    # cyd's endless loop has 60 s per check but only 10 s in all: the
    # student's time limit stops that grading, not the batch. (ann's and
    # bob's gradings take about 3 s each; the loop spins a core throughout,
    # so the limit is no longer than they need on a loaded machine.)
    status = grade_many(trees, out, jobs=2, chapter="02", limit=60,
                        student_timeout=10)
    assert status == 1                      # one student could not be graded
    rows = {r["student"]: r for r in csv.DictReader(
        open(out / "gradebook.csv"))}
    assert set(rows) == {"ann", "bob", "cyd"}
    assert rows["ann"]["ch02"] == "5" and rows["ann"]["total"] == "5"
    assert rows["bob"]["ch02"] == "5"       # the segfault cost one check
    assert rows["cyd"]["total"] == "0"
    assert "did not finish in 10 s" in rows["cyd"]["status"]
    bob = json.loads((out / "bob.json").read_text())
    assert [c["status"] for c in bob["checks"]].count("crashed") == 1
    assert json.loads((out / "cyd.json").read_text())["error"]


def test_a_missing_tree_is_graded_zero_with_a_reason(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli.main(["grade", "--student", str(tmp_path / "nobody"),
                     "--chapter", "02", "--json", str(out)]) == 1
    data = json.loads(out.read_text())
    assert data["earned"] == 0 and data["total"] == 10
    assert all("no kernel/ folder" in c["message"] for c in data["checks"])
    assert cli.main(["grade", "--region", "no-such-region"]) == 2
    assert "no graded checks for region" in capsys.readouterr().err
