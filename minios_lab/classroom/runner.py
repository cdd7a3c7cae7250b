"""Running graded checks isolated from the grader, with a time limit.

The grader never runs a learner's C in its own process. For each kernel
tree (one per exercise region when grading) it starts a *worker*: a fresh
Python (``python -m minios_lab.classroom.runner``) that runs the checks of that
tree one after the other and reports on a pipe, one JSON object a line:

* ``{"start": i}``: check number i (an index into ``checking.CHECKS``) began;
* ``{"pause": what}`` / ``{"resume": what}``: a build or a guest boot, which
  have limits of their own, so the check's clock stops meanwhile;
* ``{"result": {...}}``: the check's :class:`~minios_lab.classroom.report.CheckResult`.

The parent (:func:`run_isolated`) gives each check ``limit`` seconds of its
own time. A check that takes longer is killed with its process group (QEMU
included) and reported "did not finish in N s"; a worker that dies by a
signal (SIGSEGV in kernel C the host build could not turn into a
``KernelFault``) costs the check it was running, reported with the signal
and the last lines the worker wrote. Either way a new worker takes the
remaining checks, so one crash loses one check's points, never more. After
a check that crashed *inside* the worker (a panic, a caught fault), the
worker exits too: the kernel's state there is not to be trusted.
"""
from __future__ import annotations

import minios_lab

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from minios_lab.classroom import checking
from minios_lab.classroom.checking import CHECKS
from minios_lab.classroom.report import CheckResult

PACKAGE_ROOT = minios_lab.REPO_DIR
BUILD_LIMIT = 600.0     # seconds for a build or a boot (they time out too)
CRASHED_STATUSES = ("crashed",)


@dataclass
class Job:
    """Checks (indexes into checking.CHECKS) to run on one kernel tree."""

    kernel_dir: Path
    checks: list[int]
    # Turns a raw message or context line into the learner's terms
    # (temporary paths gone, line numbers the student's own).
    clean: Callable[[str], str] = field(default=lambda text: text)
    # Boot each chapter alone (only=NAME): no reference code to splice in.
    alone: bool = False


# --- the parent side ---------------------------------------------------------

def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _tail(path: Path, count: int = 10) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class _Worker:
    """One worker process and the events it sends."""

    def __init__(self, job: Job, checks: list[int], workdir: Path):
        self.log = workdir / f"worker-{os.getpid()}-{time.monotonic_ns()}.log"
        read_fd, write_fd = os.pipe()
        spec = json.dumps({"kernel_dir": str(job.kernel_dir), "fd": write_fd,
                           "alone": job.alone,
                           "checks": [[i, CHECKS[i].region, CHECKS[i].name]
                                      for i in checks]})
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(PACKAGE_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONFAULTHANDLER"] = "1"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "minios_lab.classroom.runner", spec],
                cwd=workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env,
                start_new_session=True)
        os.close(write_fd)
        self.pipe = os.fdopen(read_fd, "rb", buffering=0)
        self.buffer = b""

    def events(self, timeout: float) -> Optional[list[dict]]:
        """Events that arrived within `timeout` s; [] if none; None at EOF."""
        ready, _, _ = select.select([self.pipe], [], [], max(timeout, 0))
        if not ready:
            return []
        chunk = self.pipe.read(65536)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        _kill(self.proc)
        self.pipe.close()
        self.log.unlink(missing_ok=True)


def _lost(check, status: str, message: str, context: list[str]):
    return CheckResult(check.chapter, check.region, check.name, check.points,
                       0, message, context, status=status)


def _run_worker(job: Job, todo: list[int], workdir: Path, limit: float,
                results: dict[int, object]) -> None:
    """Run one worker until it ends or is killed; fill `results`."""
    worker = _Worker(job, todo, workdir)
    current: Optional[int] = None
    deadline: Optional[float] = None
    paused_left: Optional[float] = None
    depth = 0                      # nested pauses (a boot builds, too)
    heard = time.monotonic()       # when the worker last said something
    try:
        while True:
            wait = 1.0 if deadline is None else deadline - time.monotonic()
            events = worker.events(min(wait, 1.0))
            if events is None:
                break
            if events:
                heard = time.monotonic()
            elif current is None and time.monotonic() - heard > BUILD_LIMIT:
                _kill(worker.proc)       # stuck between checks: start anew
                for i in todo:
                    results.setdefault(i, _lost(
                        CHECKS[i], "crashed", f"the grader's worker did not "
                        f"answer for {BUILD_LIMIT:g} s", _tail(worker.log)))
                return
            for event in events:
                if "start" in event:
                    current, depth = event["start"], 0
                    deadline = time.monotonic() + limit
                elif "pause" in event:
                    depth += 1
                    if depth == 1 and deadline is not None:
                        paused_left = deadline - time.monotonic()
                        deadline = time.monotonic() + BUILD_LIMIT
                elif "resume" in event:
                    depth = max(0, depth - 1)
                    if depth == 0 and paused_left is not None:
                        deadline = time.monotonic() + paused_left
                        paused_left = None
                elif "result" in event:
                    results[event["result"]["index"]] = CheckResult(
                        **{k: v for k, v in event["result"].items()
                           if k != "index"})
                    current, deadline = None, None
            if (current is not None and deadline is not None
                    and time.monotonic() > deadline):
                _kill(worker.proc)
                what = (f"a build or a boot did not finish in "
                        f"{BUILD_LIMIT:g} s" if depth else
                        f"did not finish in {limit:g} s (an endless loop?)")
                results[current] = _lost(
                    CHECKS[current], "timed out", what,
                    [job.clean(line) for line in _tail(worker.log, 6)])
                return
        returncode = worker.proc.wait()
        if current is not None and current not in results:
            if returncode < 0:
                how = f"crashed: {_signal_name(returncode)}"
            else:
                how = f"crashed: the check's process exited ({returncode})"
            results[current] = _lost(
                CHECKS[current], "crashed",
                f"{how} while running kernel code",
                [job.clean(line) for line in _tail(worker.log)])
        elif not any(i in results for i in todo):
            for i in todo:
                results[i] = _lost(
                    CHECKS[i], "crashed",
                    f"the grader's worker failed (exit {returncode})",
                    _tail(worker.log))
    finally:
        worker.close()


def run_isolated(job: Job, workdir: Path, limit: float = 10.0) -> list:
    """CheckResults of `job`'s checks, each run isolated with `limit` s."""
    results: dict[int, object] = {}
    while True:
        todo = [i for i in job.checks if i not in results]
        if not todo:
            break
        _run_worker(job, todo, workdir, limit, results)
    return [results[i] for i in job.checks]


# --- the worker side ---------------------------------------------------------

class _Reporter:
    def __init__(self, fd: int):
        self.stream = os.fdopen(fd, "w", buffering=1)

    def __call__(self, **event) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()


def _pause_in_builds(notify) -> None:
    """Builds have their own limits: the check's clock stops meanwhile.
    A unit that failed to build fails again at once for the next check."""
    from minios_lab.build import units
    original, failed = units.build, {}

    def build(name, unit, directory):
        key = (name, str(directory))
        if key in failed:
            raise failed[key]
        notify(pause="build")
        try:
            return original(name, unit, directory)
        except Exception as err:  # noqa: BLE001 - the check reports it
            failed[key] = err
            raise
        finally:
            notify(resume="build")
    units.build = build


def _die_with_parent() -> None:
    """Linux: SIGKILL when the grader dies, so no worker outlives it."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)        # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main(spec: dict) -> int:
    from dataclasses import asdict
    _die_with_parent()
    notify = _Reporter(spec["fd"])
    checking.set_notifier(notify)
    kernel_dir = Path(spec["kernel_dir"])
    checking.load_checks()
    _pause_in_builds(notify)
    ctx = checking.Context(kernel_dir, alone=spec.get("alone", False))
    by_name = {(c.region, c.name): c for c in checking.CHECKS}
    for index, region, name in spec["checks"]:
        notify(start=index)
        result = checking.run_check(by_name[region, name], ctx)
        notify(result={"index": index, **asdict(result)})
        if result.status in CRASHED_STATUSES:
            return 0     # the kernel's state is not to be trusted: start anew
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(json.loads(sys.argv[1])))
