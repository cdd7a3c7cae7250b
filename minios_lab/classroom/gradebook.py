"""Grading a class: many student trees at once, one gradebook.

:func:`grade_many` runs one ``minios-lab grade`` process per student, N at
a time, each with a time limit of its own. A student whose grading crashes
or hangs gets a JSON saying so and a row with zero points; the batch goes
on. Results: ``OUT/<student>.json`` (the shape of ``grade --json``) and
``OUT/gradebook.csv``, one row per student, one column per chapter, the
total and a status column.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Optional

from minios_lab.classroom.course import CHAPTERS


def student_ids(trees: list[Path]) -> list[str]:
    """Folder names, made unique with -2, -3, ... where two are equal."""
    ids: list[str] = []
    for tree in trees:
        base = Path(tree).resolve().name or "student"
        name, n = base, 1
        while name in ids:
            n += 1
            name = f"{base}-{n}"
        ids.append(name)
    return ids


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the grader cleans up), then SIGKILL if it does not end."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _failed_report(student: str, tree: Path, why: str, log: str) -> dict:
    from minios_lab.classroom.grading import CHECKS, load_checks
    load_checks()
    return {"student": student, "tree": str(tree), "error": why,
            "earned": 0, "total": sum(c.points for c in CHECKS),
            "chapters": {}, "checks": [], "log": log[-4000:]}


def grade_one(tree: Path, student: str, out: Path, chapter: Optional[str],
              limit: float, timeout: float) -> dict:
    """Grade one tree in a process of its own; its report as a dict."""
    target = out / f"{student}.json"
    target.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "minios_lab.cli", "grade", "--student",
           str(tree), "--student-id", student, "--json", str(target),
           "--limit", str(limit)]
    if chapter:
        cmd += ["--chapter", chapter]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=out)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        data = _failed_report(student, tree,
                              f"grading did not finish in {timeout:g} s", "")
    else:
        try:
            data = json.loads(target.read_text())
            data["tree"] = str(tree)
        except (OSError, ValueError):
            data = _failed_report(student, tree, f"the grader failed (exit "
                                  f"{proc.returncode})", log or "")
    target.write_text(json.dumps(data, indent=2) + "\n")
    return data


def write_gradebook(reports: list[dict], path: Path) -> None:
    """One row per student: points per chapter, total, status."""
    chapters = [c.number for c in CHAPTERS
                if any(c.number in r.get("chapters", {}) for r in reports)]
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["student", *[f"ch{n}" for n in chapters], "total",
                      "out_of", "status"])
        for r in sorted(reports, key=lambda r: r["student"]):
            row = [r["student"]]
            row += [r.get("chapters", {}).get(n, {}).get("earned", 0)
                    for n in chapters]
            row += [r["earned"], r["total"], r.get("error", "graded")]
            out.writerow(row)


def grade_many(trees: list[Path], out: Path, jobs: Optional[int] = None,
               chapter: Optional[str] = None, limit: float = 10.0,
               student_timeout: float = 900.0) -> int:
    """Grade every tree, `jobs` at a time; 0 if every tree was graded."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    ids = student_ids(trees)
    reports: list[dict] = []
    lock, t0 = threading.Lock(), time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(grade_one, Path(tree).resolve(), sid, out,
                               chapter, limit, student_timeout)
                   for tree, sid in zip(trees, ids)]
        for future in as_completed(futures):
            data = future.result()
            with lock:
                reports.append(data)
                done = len(reports)
                bar = "#" * (20 * done // len(ids))
                print(f"[{bar:<20}] {done}/{len(ids)} {data['student']}: "
                      f"{data['earned']}/{data['total']}"
                      f"{'  (' + data['error'] + ')' if 'error' in data else ''}"
                      f"  {time.monotonic() - t0:.0f} s", flush=True)
    write_gradebook(reports, out / "gradebook.csv")
    print(f"wrote {len(reports)} reports and {out / 'gradebook.csv'}")
    return 0 if not any("error" in r for r in reports) else 1
