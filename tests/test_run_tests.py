"""scripts/run_tests.py, what `make test` runs: two commands side by side,
the second's output after the first's, the status of whichever failed,
and Ctrl-C that stops both."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "run_tests.py"


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _run(first: list[str], second: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *first, "---",
                           *second], capture_output=True, text=True,
                          timeout=60)


def test_second_output_follows_the_first_and_both_pass():
    proc = _run(_py("print('unit says hi')"), _py("print('nbval says hi')"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "exit 0:" in line)
    assert lines.index("unit says hi") < header
    assert lines[header + 1:] == ["nbval says hi"]


def test_they_run_at_the_same_time(tmp_path):
    flag = tmp_path / "nbval-started"
    waits = ("import pathlib, sys, time\n"
             f"for _ in range(200):\n"
             f"    if pathlib.Path({str(flag)!r}).exists(): sys.exit(0)\n"
             f"    time.sleep(0.05)\n"
             f"sys.exit(9)")
    starts = f"import pathlib; pathlib.Path({str(flag)!r}).touch()"
    assert _run(_py(waits), _py(starts)).returncode == 0


def test_a_failing_unit_run_gives_its_status_and_still_shows_nbval():
    proc = _run(_py("import sys; sys.exit(3)"), _py("print('cells ok')"))
    assert proc.returncode == 3 and "cells ok" in proc.stdout


def test_a_failing_nbval_run_fails_the_whole():
    proc = _run(_py("pass"), _py("import sys; print('cell 4 differs'); "
                                 "sys.exit(1)"))
    assert proc.returncode == 1
    assert "exit 1:" in proc.stdout and "cell 4 differs" in proc.stdout


def test_without_the_separator_it_says_how_to_call_it():
    proc = subprocess.run([sys.executable, str(SCRIPT), "true"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "---" in proc.stderr


def test_ctrl_c_stops_both_runs(tmp_path):
    pids = tmp_path / "pids"
    sleeper = _py(f"import os, time; open({str(pids)!r}, 'a')"
                  f".write(f'{{os.getpid()}}\\n'); time.sleep(60)")
    runner = subprocess.Popen([sys.executable, str(SCRIPT), *sleeper, "---",
                               *sleeper], start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        for _ in range(200):                  # both children are up
            if pids.exists() and len(pids.read_text().split()) == 2:
                break
            time.sleep(0.05)
        os.killpg(runner.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    assert runner.returncode == 130 and "interrupted" in err
    for pid in map(int, pids.read_text().split()):
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
