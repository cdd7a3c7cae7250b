"""The guest that runs on after its chapters, as Mini-OS does: forever=1.

With forever=1 the guest starts its timer again after the result line and
prints "timer: tick N at system time S s" every 1000 ticks, until QEMU is
stopped or for ticks=N more ticks (kernel/time_demo.c, time_run_on). boot()
in Python never adds the word, so its boots end by themselves; `minios-lab
boot` (what `make boot` runs) adds it, streams the console and stops QEMU
cleanly on Ctrl-C. Real boots on Xen in QEMU, like tests/test_boot.py.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from minios_lab.guest import boot as bootmod
from minios_lab.guest import qemu as qemu_proc
from minios_lab.guest.boot import BootResult, boot

REPO = Path(__file__).resolve().parent.parent
TICK_LINE = re.compile(r"^timer: tick (\d+) at system time (\d+)\.(\d{9}) s$")
RESULT = "minios-lab: RESULT: SUCCESS"


def _qemu_gone(pid: int) -> bool:
    """No QEMU with this pid is alive (the pid may have been reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return b"qemu" not in cmdline


def _after_result(result: BootResult) -> list[str]:
    """The guest's lines after its RESULT line: the run-on."""
    lines = result.guest_lines
    assert RESULT in lines, result.report()
    return lines[lines.index(RESULT) + 1:]


def _ticks(lines: list[str]) -> list[tuple[int, int]]:
    """(tick, system time in ns) of each tick report line."""
    found = []
    for line in lines:
        match = TICK_LINE.match(line.strip())
        if match:
            found.append((int(match.group(1)),
                          int(match.group(2)) * 10**9 + int(match.group(3))))
    return found


def test_without_the_word_the_guest_ends_after_its_result(shared_boot):
    result = shared_boot("ticks=20")
    assert result.succeeded, result.report()
    assert _after_result(result) == []


def test_a_bounded_run_on_reports_every_1000_ticks_and_ends(guest_image):
    result = boot("ticks=2000 forever=1", build=False, timeout=120)
    assert result.outcome == "shutdown", result.report()
    assert result.succeeded, result.report()
    run_on = _after_result(result)
    assert run_on[0].startswith("forever=1: the timer runs on for "
                                "ticks=2000 ticks of 1000 us"), run_on
    ticks = _ticks(run_on)
    assert [tick for tick, _ in ticks] == [1000, 2000], run_on
    # Deadlines are absolute: tick 2000 comes 2000 periods or more after
    # the timer started again (which is after the chapter's last tick),
    # give or take the 10 us the time chapter allows for early ticks.
    (_, first), (_, second) = ticks
    assert second > first
    chapter_ticks = _ticks(result.section("time"))
    assert chapter_ticks and first > chapter_ticks[-1][1]
    assert second - chapter_ticks[-1][1] >= 2000 * 10**6 - 10**4
    assert re.match(r"forever: 2000 ticks, \d+ deadlines", run_on[-1]), run_on
    assert _qemu_gone(result.qemu_pid)


def test_an_unbounded_run_on_goes_on_until_stopped(guest_image, monkeypatch):
    # ticks=0 skips the chapter's timer and leaves the run-on unbounded: the
    # guest never ends by itself; the caller stops it after two reports.
    pids: list[int] = []
    real_spawn = qemu_proc.spawn

    def spawn(*args, **kwargs):
        proc = real_spawn(*args, **kwargs)
        pids.append(proc.pid)
        return proc

    class Enough(Exception):
        pass

    seen: list[str] = []

    def echo(line: str) -> None:
        seen.append(line)
        if len(_ticks(seen)) == 2:
            raise Enough

    monkeypatch.setattr(bootmod.qemu_proc, "spawn", spawn)
    with pytest.raises(Enough):
        boot("ticks=0 forever=1", build=False, timeout=300, echo=echo)
    assert any(line.startswith("forever=1: the timer runs on, ticks of 1000 "
                               "us") and "until QEMU is stopped" in line
               for line in seen)
    assert [tick for tick, _ in _ticks(seen)] == [1000, 2000]
    assert RESULT in seen
    assert len(pids) == 1 and _qemu_gone(pids[0])


def test_chapters_0_does_not_run_on(guest_image):
    result = boot("chapters=0 forever=1", build=False, timeout=60)
    assert result.succeeded, result.report()
    assert _after_result(result) == []


@pytest.mark.parametrize("argv, cmdline, runs_on", [
    ([], "forever=1", True),
    (["ticks=3000", "name=me"], "ticks=3000 name=me forever=1", True),
    (["forever=0"], "forever=0", False),
    (["--once", "ticks=5"], "ticks=5", False),
])
def test_the_cli_adds_the_word_unless_told(argv, cmdline, runs_on):
    args = bootmod._parse_boot_args(argv)
    assert bootmod._cli_cmdline(list(args.cmdline), args.once) == (cmdline,
                                                                   runs_on)


def _qemu_children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if not _qemu_gone(int(child)):
                found.append(int(child))
    return found


def test_ctrl_c_stops_the_cli_and_qemu_cleanly(guest_image):
    proc = subprocess.Popen(
        [sys.executable, "-m", "minios_lab.cli", "boot", "--no-build",
         "--guest-only", "ticks=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        start_new_session=True)   # SIGINT: conftest.pytest_configure
    guard = threading.Timer(240, proc.kill)   # never hang the test run
    guard.start()
    lines: list[str] = []
    qemus: list[int] = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if TICK_LINE.match(line.strip()):
                break
        assert _ticks(lines), "\n".join(lines)
        qemus = _qemu_children(proc.pid)
        assert len(qemus) == 1
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        guard.cancel()
        proc.kill()
        proc.wait()
    assert proc.returncode == bootmod.INTERRUPTED, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert err.strip().splitlines() == [
        "minios-lab boot: interrupted (Ctrl-C); QEMU is stopped"]
    assert any("forever=1: the timer runs on" in line for line in lines)
    assert _qemu_gone(qemus[0])
