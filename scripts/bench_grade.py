"""Measure batch grading: seconds per student and students per hour.

    .venv/bin/python scripts/bench_grade.py [--students 4] [--jobs 2]
        [--kit DIR]

Makes one hand-out of every chapter (`minios-lab assignment`) and copies
it: `--students` fresh copies (every region a stub) and `--students`
solved copies (every region restored from the reference code with
classroom.restore_region). Then each kind is graded as an instructor does,
`minios-lab grade --students ... --jobs N --out ...`, in a process of its
own, timed from its start to its exit. Prints, per kind: the wall time,
seconds per student (wall time / students: what a class costs at this
parallelism), students per hour, the mean of each student's own grading
time (`elapsed_s` of its JSON: N students share the cores), and the
points, so a run that did not grade is seen. Also the load average before
and after (the machine may be shared), cores, and the Xen build.

`--kit DIR` grades with another copy of the kit (a `git archive` of a
commit, say), so that editing the working tree meanwhile changes nothing.
Asserts nothing; prints measured numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def kit_python(kit: Path, code: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(kit)}
    subprocess.run([sys.executable, "-c", code], cwd=kit, env=env,
                   check=True)


def make_students(kit: Path, work: Path, count: int) -> dict[str, list[Path]]:
    """`count` fresh and `count` solved copies of one full hand-out."""
    fresh, solved = work / "handout-fresh", work / "handout-solved"
    kit_python(kit, "import sys; from pathlib import Path\n"
               "from minios_lab.classroom.handout import make_assignment, "
               "restore_region, all_regions\n"
               f"make_assignment(Path({str(fresh)!r}))\n")
    shutil.copytree(fresh, solved, symlinks=True)
    kit_python(kit, "from pathlib import Path\n"
               "from minios_lab.classroom.handout import restore_region, all_regions\n"
               "for r in all_regions():\n"
               f"    restore_region(Path({str(solved)!r}), r.region_id)\n")
    kinds: dict[str, list[Path]] = {"solved": [], "fresh": []}
    for kind, source in (("solved", solved), ("fresh", fresh)):
        for i in range(count):
            copy = work / "subs" / f"{kind}-{i}"
            shutil.copytree(source, copy, symlinks=True)
            kinds[kind].append(copy)
    return kinds


def grade_batch(kit: Path, trees: list[Path], jobs: int,
                out: Path) -> tuple[float, list[dict]]:
    env = {**os.environ, "PYTHONPATH": str(kit)}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "minios_lab.cli", "grade", "--students",
         *map(str, trees), "--jobs", str(jobs), "--out", str(out)],
        cwd=kit, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if not (out / "gradebook.csv").exists():
        raise SystemExit(f"grading failed ({proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    return wall, reports


def xen_build(kit: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(kit)}
    proc = subprocess.run(
        [sys.executable, "-c", "from minios_lab.build.toolchain import "
         "xen_versions; print(xen_versions())"],
        cwd=kit, env=env, capture_output=True, text=True)
    return proc.stdout.strip() or proc.stderr.strip()[-200:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=4,
                        help="students of each kind (solved, fresh)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--kit", type=Path, default=REPO,
                        help="the kit tree that grades (default: this one)")
    args = parser.parse_args()
    kit = args.kit.resolve()
    print(f"cores {os.cpu_count()}, load average before "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"kit {kit}; Xen: {xen_build(kit)}")
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        kinds = make_students(kit, Path(tmp), args.students)
        for kind, trees in kinds.items():
            wall, reports = grade_batch(kit, trees, args.jobs,
                                        Path(tmp) / f"out-{kind}")
            own = [r.get("elapsed_s", 0.0) for r in reports]
            points = sorted({f"{r['earned']}/{r['total']}" for r in reports})
            print(f"{kind}: {len(trees)} students, --jobs {args.jobs}: "
                  f"{wall:.1f} s wall, {wall / len(trees):.1f} s per student, "
                  f"{3600 * len(trees) / wall:.0f} students per hour; each "
                  f"student's own time mean {sum(own) / len(own):.1f} s "
                  f"(min {min(own):.1f}, max {max(own):.1f}); points "
                  f"{', '.join(points)}", flush=True)
    print(f"load average after "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
