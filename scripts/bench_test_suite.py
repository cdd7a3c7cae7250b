"""Measure `make test` once set-up is done: its wall time, and the time of
each of its two pytest runs (the unit tests, and nbval over every notebook
beside them: scripts/run_tests.py) as pytest itself reports it; then
`make test-notebooks`, nbval alone. Prints the measured numbers and the
README's Numbers row; asserts nothing.

    .venv/bin/python scripts/bench_test_suite.py [--log make-test.log]

(`PYTEST_ARGS=--durations=40` in the environment reaches both pytest runs,
and --log keeps make's output, to see where the time goes.)

Runs `make setup` first (untimed), then times `make test` as a whole. The
load average before and after is printed too: the figures mean little on
a machine busy with other work.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# pytest's last line: "=== 1074 passed, 2 xfailed in 95.32s (0:01:35) ==="
# (without the "=" under -q).
SUMMARY = re.compile(r"^=*\s*(?P<counts>\d+ [a-z]+(, \d+ [a-z]+)*) "
                     r"in (?P<seconds>[\d.]+)s\b")
ITEMS = ("passed", "failed", "skipped", "xfailed", "xpassed", "error",
         "errors")


@dataclass
class Run:
    counts: str       # "1074 passed, 2 xfailed"
    seconds: float

    @property
    def items(self) -> int:
        return sum(int(n) for n, word in
                   re.findall(r"(\d+) (\w+)", self.counts) if word in ITEMS)


def pytest_runs(output: str) -> list[Run]:
    """Every pytest summary line of `output`, in order."""
    found = []
    for line in output.splitlines():
        match = SUMMARY.match(line.strip())
        if match:
            found.append(Run(match["counts"], float(match["seconds"])))
    return found


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 \
        else f"{whole} s"


def workers(variable: str) -> str:
    """The xdist worker count the Makefile gives `variable` (e.g. "3")."""
    match = re.search(rf"^{variable} := -n (\d+)", (REPO / "Makefile")
                      .read_text(), re.MULTILINE)
    return match.group(1) if match else "?"


def main(argv: list[str]) -> int:
    subprocess.run(["make", "-C", str(REPO), "setup"], check=True,
                   capture_output=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(["make", "-C", str(REPO), "test"],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    if argv[:1] == ["--log"] and len(argv) == 2:
        Path(argv[1]).write_text(proc.stdout + proc.stderr)
    runs = pytest_runs(proc.stdout)
    names = ["unit tests", "nbval beside them"]
    for name, run in zip(names, runs):
        print(f"{name}: {run.counts} in {run.seconds:.0f} s")
    print(f"make test: exit {proc.returncode}, {elapsed:.0f} s wall time "
          f"(load average {load_before:.1f} before, {load_after:.1f} after)")
    alone = pytest_runs(subprocess.run(
        ["make", "-C", str(REPO), "test-notebooks"], capture_output=True,
        text=True).stdout)
    if alone:
        print(f"nbval alone (make test-notebooks): {alone[-1].counts} in "
              f"{alone[-1].seconds:.0f} s")
    if len(runs) == 2 and proc.returncode == 0 and alone:
        unit, nb = runs
        print("README row:")
        print(f"| `make test` after set-up: {unit.items} tests "
              f"({workers('UNIT_WORKERS')} workers) and, beside them, nbval "
              f"over every notebook ({nb.items} cells, "
              f"{workers('NB_BESIDE_WORKERS')} workers) | {minutes(elapsed)} "
              f"(unit tests {unit.seconds:.0f} s, nbval {nb.seconds:.0f} s "
              f"beside them; nbval alone, {workers('NB_WORKERS')} workers: "
              f"{alone[-1].seconds:.0f} s) | dev, "
              f"load average {load_before:.1f} | "
              f"`scripts/bench_test_suite.py` |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
