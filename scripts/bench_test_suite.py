"""Measure the wall time of `make test` once set-up is done. Prints the
measured number; asserts nothing.

    .venv/bin/python scripts/bench_test_suite.py

Runs `make setup` first (untimed), then times `make test` as a whole and
reports its exit status with the time.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    subprocess.run(["make", "-C", str(REPO), "setup"], check=True,
                   capture_output=True)
    start = time.perf_counter()
    proc = subprocess.run(["make", "-C", str(REPO), "test"],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    summary = [line for line in proc.stdout.splitlines() if " in " in line
               and ("passed" in line or "failed" in line)]
    for line in summary:
        print(line.strip("= "))
    print(f"make test: exit {proc.returncode}, {elapsed:.0f} s wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
