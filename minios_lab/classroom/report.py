"""What a grade says: per check results, per chapter sums, the run's facts.

A :class:`GradeReport` prints as xv6's ``make grade`` does (GOOD/BAD per
check, points per chapter, a score), and writes JSON of two shapes: the
kit's own (student, commit, times, grader version, every check with its
status) and Gradescope's autograder ``results.json``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from minios_lab.classroom.course import chapter_by_number

STATUSES = ("passed", "failed", "crashed", "timed out")


def grader_version() -> str:
    try:
        from importlib.metadata import version
        return version("minios-lab")
    except Exception:  # noqa: BLE001 - not installed: still a version
        return "unknown"


@dataclass
class CheckResult:
    chapter: str
    region: str
    name: str
    points: int
    earned: int
    message: str = ""
    context: list[str] = field(default_factory=list)
    status: str = "passed"     # one of STATUSES

    @property
    def good(self) -> bool:
        return self.earned == self.points


@dataclass
class GradeReport:
    results: list[CheckResult]
    student: str = ""
    commit: Optional[str] = None
    started: str = ""           # ISO 8601, UTC
    elapsed: float = 0.0        # seconds
    version: str = field(default_factory=grader_version)
    _t0: float = 0.0

    @classmethod
    def start(cls, student: Path) -> "GradeReport":
        from minios_lab.classroom.trees import git_commit
        return cls([], student=Path(student).resolve().name,
                   commit=git_commit(Path(student)),
                   started=datetime.now(timezone.utc).isoformat(
                       timespec="seconds"),
                   _t0=time.monotonic())

    def finish(self, results: list[CheckResult]) -> "GradeReport":
        self.results = results
        self.elapsed = round(time.monotonic() - self._t0, 2)
        return self

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

    def data(self) -> dict:
        checks = [asdict(r) for r in self.results]
        return {"student": self.student, "commit": self.commit,
                "started": self.started, "elapsed_s": self.elapsed,
                "grader_version": self.version,
                "earned": self.earned, "total": self.total,
                "chapters": {k: {"earned": g, "total": t}
                             for k, (g, t) in self.by_chapter().items()},
                "checks": checks}

    def to_json(self) -> str:
        return json.dumps(self.data(), indent=2)

    def to_gradescope(self) -> str:
        """Gradescope's autograder results.json."""
        tests = []
        for r in self.results:
            output = "" if r.good else "\n".join([r.message, *r.context])
            tests.append({"name": f"{r.chapter} {r.region}: {r.name}",
                          "score": r.earned, "max_score": r.points,
                          "status": "passed" if r.good else "failed",
                          "output": output, "visibility": "visible"})
        return json.dumps({"score": self.earned,
                           "execution_time": round(self.elapsed),
                           "output": f"minios-lab grader {self.version}: "
                                     f"{self.earned}/{self.total}",
                           "tests": tests}, indent=2)
