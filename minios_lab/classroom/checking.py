"""Graded checks: how they are declared, and how one runs on a kernel tree.

A chapter's module in classroom/checks declares its checks with
``@check(chapter, region, points, name)``; each gets a :class:`Context`
(the tree to build and boot, cached builds and boots) and fails by raising
:class:`CheckFailed` with the console lines to show. :func:`run_check`
turns any outcome (a failed match, a compile error, a panic, a crash)
into a :class:`CheckResult`. Grading a tree (classroom.grading) and the
worker processes (classroom.runner) both use this module.
"""
from __future__ import annotations

import difflib
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from minios_lab import errors
from minios_lab.classroom import trees as grade_tree
from minios_lab.classroom.report import CheckResult

class CheckFailed(AssertionError):
    """A graded check failed; `context` holds console lines to show."""

    def __init__(self, message: str, context: Iterable[str] = ()):
        super().__init__(message)
        self.context = list(context)


@dataclass(frozen=True)
class GradedCheck:
    chapter: str
    region: str
    name: str
    points: int
    run: Callable[["Context"], None]


CHECKS: list[GradedCheck] = []
_notify: Callable[..., None] = lambda **event: None


def set_notifier(notify: Callable[..., None]) -> None:
    """Called by a grading worker: builds and boots pause the check's clock."""
    global _notify
    _notify = notify


def check(chapter: str, region: str, points: int, name: str):
    """Register a graded check (decorator)."""
    def register(fn: Callable[["Context"], None]):
        CHECKS.append(GradedCheck(chapter, region, name, points, fn))
        return fn
    return register


def guest_check(chapter: str, region: str, points: int, name: str,
                section: str, *expected: tuple[str, str],
                cmdline: str = "ticks=0") -> None:
    """Register a check on the real guest: boot it (`cmdline`) and find,
    in the console lines of its chapter `section`, each (pattern, what)."""
    def run(ctx: "Context") -> None:
        lines = ctx.section(section, cmdline)
        for pattern, what in expected:
            ctx.expect_line(lines, pattern, what)
    run.__name__ = run.__qualname__ = f"guest_{region}"
    CHECKS.append(GradedCheck(chapter, region, name, points, run))


class Context:
    """What a check may use: host units and guest boots of one kernel tree.

    `alone`: boot each chapter on its own (the guest word only=NAME), for a
    tree with no reference code to splice in (a learner's hand-out), so a
    stub in one chapter cannot fail another chapter's guest check. Boots
    are shared either way: one per command line (so one per chapter when
    alone, one for all chapters otherwise).
    """

    def __init__(self, kernel_dir: Path, alone: bool = False):
        self.kernel_dir = kernel_dir
        self.alone = alone
        self._boots: dict[tuple, object] = {}
        self.last_boot = None
        self.last_timeout: float = 0

    def unit(self, name: str):
        from minios_lab.build.units import load
        _notify(pause="build")
        try:
            return load(name, kernel_dir=self.kernel_dir)
        finally:
            _notify(resume="build")

    def boot(self, cmdline: str = "", memory_mb: int = 64, timeout: int = 60):
        from minios_lab.guest.boot import boot
        key = (cmdline, memory_mb)
        if key not in self._boots:
            _notify(pause="boot")
            try:
                self._boots[key] = boot(cmdline, memory_mb=memory_mb,
                                        timeout=timeout,
                                        kernel_dir=self.kernel_dir)
            finally:
                _notify(resume="boot")
        self.last_boot, self.last_timeout = self._boots[key], timeout
        return self.last_boot

    def section(self, chapter: str, cmdline: str = "ticks=0") -> list[str]:
        """The guest's lines of one chapter (its name in kernel/kernel.c's
        table), from a boot with `cmdline` (alone: plus only=chapter)."""
        if self.alone:
            cmdline = f"{cmdline} only={chapter}"
        return self.boot(cmdline).section(chapter)

    def expect_line(self, lines: list[str], pattern: str,
                    what: str) -> re.Match:
        """The first line matching `pattern`, or CheckFailed with the lines
        around where it was expected."""
        regex = re.compile(pattern)
        for line in lines:
            m = regex.search(line)
            if m:
                return m
        message = f"{what}: no console line matches {pattern!r}"
        if not lines and self.last_boot is not None:
            return self._guest_stopped(message)
        raise CheckFailed(message, [f"  {line}" for line in
                                    _around(lines, pattern)]
                          or ["  (no output)"])

    def _guest_stopped(self, message: str):
        result = self.last_boot
        why = {"timeout": f"the guest did not finish in "
                          f"{self.last_timeout:g} s",
               "crash": "the guest crashed",
               "error": "QEMU failed"}.get(result.outcome, "")
        if result.crash is not None:
            why = f"the guest crashed: {result.crash}"
        context = [f"  {line}" for line in result.guest_lines[-10:]]
        raise CheckFailed(f"{message} ({why or 'the chapter never ran'})",
                          context or ["  (no output)"])


def _around(lines: list[str], pattern: str, radius: int = 3) -> list[str]:
    """The lines nearest to what `pattern` expects: the most similar line
    and `radius` lines on each side (the last lines if none is similar)."""
    if not lines:
        return []
    literal = re.sub(r"\\.|[\^\$\(\)\[\]\*\+\?\{\}\|]", "", pattern)
    scores = [difflib.SequenceMatcher(None, literal, line).ratio()
              for line in lines]
    best = max(range(len(lines)), key=scores.__getitem__)
    if scores[best] < 0.3:
        return lines[-2 * radius - 2:]
    return lines[max(0, best - radius):best + radius + 1]


def _first_line(err: BaseException) -> str:
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    return last.splitlines()[0][:300]


def run_check(c: GradedCheck, ctx: Context) -> CheckResult:
    """Run one check in this process; the outcome as a CheckResult."""
    def lost(status: str, message: str, context: Iterable[str] = ()):
        return CheckResult(c.chapter, c.region, c.name, c.points, 0,
                           message, list(context), status=status)
    from minios_lab.guest.boot import BuildError
    fault = getattr(errors, "KernelFault", None)
    try:
        c.run(ctx)
    except CheckFailed as failed:
        return lost("failed", str(failed), failed.context)
    except (errors.CompileError, BuildError) as err:
        first, lines = grade_tree.compiler_error(str(err))
        return lost("failed", f"does not compile: {first}", lines)
    except errors.KernelPanic as err:
        if str(err.message).startswith("not implemented"):  # a fresh stub
            return lost("failed", f"not written yet: {err}")
        return lost("crashed", f"crashed: kernel panic: {err}",
                    str(err.console).splitlines()[-8:])
    except Exception as err:  # noqa: BLE001 - every fault is the check's
        if fault is not None and isinstance(err, fault):
            return lost("crashed", f"crashed: {err}")
        return lost("failed", _first_line(err), str(err).splitlines()[1:12])
    return CheckResult(c.chapter, c.region, c.name, c.points, c.points,
                       status="passed")


def load_checks() -> None:
    """Import the modules that register checks (once)."""
    from minios_lab.classroom import checks  # noqa: F401


_load_checks = load_checks   # the old name
