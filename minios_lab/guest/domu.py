"""Boot the guest as an unprivileged domain (domU) beside a Linux dom0.

This is how the guest is meant to run on a Xen host: ``xl create -c
domain_config``. Inside QEMU, Xen starts a Debian Linux dom0 built by
:mod:`minios_lab.guest.dom0` (kernel, then an initramfs with Xen's
toolstack); its ``/init`` starts ``xenstored`` and ``xenconsoled``, then
runs, from a folder laid out like the repository's ``kernel/``::

    cd /kernel
    xl create -c domain_config "extra=\\"<command line>\\"" memory=<MiB>

with ``kernel/domain_config`` and the guest image exactly as they are in
the tree, and powers the machine off when ``xl`` is done.

Everything arrives on the one serial line, sorted here by
:class:`DomuWatch`:

* ``(XEN)`` lines are Xen's, as for dom0;
* the guest's console, as ``xl create -c`` shows it (the console ring that
  xenconsoled serves), comes with ``domU| `` in front, set by /init;
* everything else is the dom0's: Linux, /init (``dom0: ...``), xl's
  errors and, at the end, xl's log (``dom0: xl: ...``). These go to
  ``dom0_lines``, and to ``lines`` as ``(dom0) ...``, never to
  ``guest_lines``.

The end is read from xl's log, which says "Domain 1 has shut down, reason
code N": 0 poweroff, 1 reboot (outcome "shutdown"), 3 crash (outcome
"crash": a panic, or Xen killing the domain with its "d1v0 Unhandled"
register dump; the report is made as for dom0, by :mod:`crash`).
The time limit is the guest's: ``timeout`` seconds counted from when the
dom0's toolstack is ready, so a slow dom0 start on a busy machine does not
eat into it (the dom0 itself has DOM0_START_LIMIT seconds for that). No
reason before the deadline is a "timeout"; a dom0 that fails (xl
refuses the configuration, Linux or Xen crashes) is an "error" that says
why. QEMU is started and always stopped as for dom0 (:mod:`qemu`).
"""
from __future__ import annotations

import minios_lab

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from minios_lab.build import toolchain
from minios_lab.guest import dom0 as dom0_builder
from minios_lab.guest import qemu as qemu_proc
from minios_lab.guest.result import (BootResult, BuildError, result_line,
                                     xen_version)
from minios_lab.guest.console import (CRASH_GRACE, REBOOT_GRACE, Echo,
                                      split_console_line)
from minios_lab.guest.crash import (LAST_LINES, XEN_PREFIX, CrashReport,
                                    load_symbols, make_crash_report)

DOMU_TIMEOUT = 120.0       # seconds the guest may run (the full guest: ~3 s)
DOM0_START_LIMIT = 120.0   # seconds for the dom0 to be ready (~6 s idle)
KERNEL_DIR = minios_lab.KERNEL_DIR
QEMU_MEMORY_MB = 1536
DOM0_CMDLINE = "console=hvc0 quiet"
# bootscrub=0: Xen would clear the free RAM (about 1 GiB here) in its idle
# loop while the dom0 waits; QEMU's RAM is new and zero, and under TCG the
# clearing cost 1-2 s of CPU per boot (7.2-8.3 s against 6.2 s, measured).
XEN_ARGS = ("console=com1", "dom0_mem=512M,max:512M", "dom0_max_vcpus=1",
            "bootscrub=0", "loglvl=all", "guest_loglvl=all")
DOM0_PREFIX = dom0_builder.DOM0_PREFIX
GUEST_MARK = dom0_builder.GUEST_MARK
READY = "dom0: toolstack ready"
POWEROFF = "dom0: powering off"
SHUTDOWN_RE = re.compile(r"Domain (\d+) has shut down, reason code (\d+)")
XL_STATUS_RE = re.compile(r"dom0: xl create exited with status (\d+)")
# <xen/sched.h> SHUTDOWN_*, as xl reports them
REASONS = {0: "poweroff", 1: "reboot", 2: "suspend", 3: "crash",
           4: "watchdog", 5: "soft_reset"}
CRASHED = 3
BAD_CMDLINE_CHARS = '"\\\n'


_Run = qemu_proc.QemuRun   # what one QEMU run gave (console: a DomuWatch)


# --- the result --------------------------------------------------------------

@dataclass(repr=False)
class DomuBootResult(BootResult):
    """A BootResult of a domU boot: the dom0's own lines besides, and what
    went wrong on the dom0's side (``problem``) when the outcome is
    "error"."""

    dom0_lines: list[str] = field(default_factory=list)
    problem: Optional[str] = None

    def _qemu_said(self) -> str:
        if self.problem:
            return self.problem
        return super()._qemu_said()

    def report(self) -> str:
        out = [super().report()]
        if self.outcome in ("error", "timeout"):
            out.append("dom0's last lines:")
            out += [f"  {line}" for line in self.dom0_lines[-LAST_LINES:]]
        return "\n".join(out)


# --- the console -------------------------------------------------------------

class DomuWatch:
    """Sorts the serial line into Xen's, the guest's and the dom0's lines
    and reads the end of the run (see the module's docstring)."""

    def __init__(self, echo: Echo, guest_timeout: Optional[float] = None):
        self.echo = echo
        self.guest_timeout = guest_timeout  # counted from `ready`
        self.lines: list[str] = []
        self.guest: list[str] = []
        self.xen: list[str] = []
        self.dom0: list[str] = []
        self.domu: list[str] = []     # Xen's and the guest's while the
                                      # guest runs (for a crash report)
        self.ready = False                # the dom0's toolstack is up
        self.ready_time = 0.0
        self.reason: Optional[int] = None
        self.xl_status: Optional[int] = None
        self.event: Optional[str] = None  # "poweroff", "xen panic",
        self.event_time = 0.0             # "dom0 crash"
        self.done = False

    def add(self, line: str) -> None:
        if line.startswith(GUEST_MARK):
            parts = split_console_line(line[len(GUEST_MARK):])
        else:
            parts = [("dom0" if s == "guest" else s, t)
                     for s, t in split_console_line(line)]
        for source, text in parts:
            self._add(source, text)

    def _add(self, source: str, text: str) -> None:
        shown = DOM0_PREFIX + text if source == "dom0" else text
        self.lines.append(shown)
        if self.echo:
            self.echo(shown)
        {"guest": self.guest, "xen": self.xen, "dom0": self.dom0}[
            source].append(text)
        if self.ready and self.reason is None and source != "dom0":
            self.domu.append(text)
        if source == "dom0":
            self._watch_dom0(text)
        elif source == "xen":
            self._watch_xen(text)

    def _watch_dom0(self, text: str) -> None:
        shutdown = SHUTDOWN_RE.search(text)
        status = XL_STATUS_RE.search(text)
        if text.startswith(READY):
            self.ready, self.ready_time = True, time.monotonic()
        elif shutdown and self.reason is None:
            self.reason = int(shutdown.group(2))
        elif status:
            self.xl_status = int(status.group(1))
        elif text.startswith(POWEROFF) and self.event is None:
            self._set_event("poweroff")

    def _watch_xen(self, text: str) -> None:
        if "Panic on CPU" in text:
            self._set_event("xen panic")
        elif "Hardware Dom0 crashed" in text and self.event is None:
            self._set_event("dom0 crash")
        if self.event in ("xen panic", "dom0 crash") and any(
                m in text for m in ("Manual reset required", "not rebooting",
                                    "Hardware Dom0 crashed")):
            self.done = True

    def _set_event(self, event: str) -> None:
        self.event = event
        self.event_time = time.monotonic()

    def wait_until(self, deadline: float) -> float:
        if self.ready and self.guest_timeout is not None:
            deadline = min(deadline, self.ready_time + self.guest_timeout)
        if self.event == "poweroff":
            return min(deadline, self.event_time + REBOOT_GRACE)
        if self.event is not None:
            return min(deadline, self.event_time + CRASH_GRACE)
        return deadline


# --- running -----------------------------------------------------------------

def check_cmdline(cmdline: str) -> None:
    """xl's configuration strings cannot hold these: refuse them."""
    bad = sorted({c for c in cmdline if c in BAD_CMDLINE_CHARS})
    if bad:
        raise ValueError(f"a domU's command line goes into xl's extra=\"...\""
                         f" and cannot hold {', '.join(map(repr, bad))}")


def qemu_command(dom0: dom0_builder.Dom0, initrd: Path,
                 xen_args: str = "") -> list[str]:
    for path in (dom0.vmlinux, initrd):
        if any(c.isspace() for c in str(path)):
            raise ValueError(f"QEMU cannot take a module path with spaces: "
                             f"{path} (set MINIOS_LAB_CACHE or TMPDIR)")
    modules = f"{dom0.vmlinux} {DOM0_CMDLINE}".replace(",", ",,") + "," + \
        str(initrd).replace(",", ",,")
    return [str(toolchain.qemu_binary()), "-cpu", "qemu64,+rdrand",
            "-m", str(QEMU_MEMORY_MB), "-display", "none", "-no-reboot",
            "-nic", "none", "-serial", "stdio", "-monitor", "none",
            "-kernel", str(toolchain.xen_binary()), "-initrd", modules,
            "-append", " ".join([*XEN_ARGS, xen_args]).strip()]


# --- the result --------------------------------------------------------------

def _dom0_said(console: DomuWatch, count: int = 4) -> str:
    quiet = ("dom0: powering off", "sysrq", "reboot: Power down")
    said = [line for line in console.dom0
            if line.strip() and not any(q in line for q in quiet)]
    return " | ".join(said[-count:]) or "nothing"


def _outcome(run: _Run) -> tuple[str, Optional[str]]:
    """(outcome, problem): problem says why an "error" is one."""
    console = run.console
    if console.event == "xen panic":
        return "crash", None
    if console.reason is not None:
        return ("crash" if console.reason == CRASHED else "shutdown"), None
    if console.event == "dom0 crash":
        return "error", "the dom0 (Linux) crashed before the guest ended; " \
            f"its last lines: {_dom0_said(console)}"
    if not run.ended and console.event is None:
        return "timeout", None
    if not console.xen:
        return "error", None     # QEMU's own complaint, as for dom0
    if console.xl_status:
        return "error", f"xl create failed (status {console.xl_status}): " \
            f"{_dom0_said(console)}"
    return "error", "the dom0 ended without a shutdown reason from xl; " \
        f"its last lines: {_dom0_said(console)}"


def _make_result(cmd: list[str], elf: Path, run: _Run) -> DomuBootResult:
    console = run.console
    outcome, problem = _outcome(run)
    result = DomuBootResult(
        outcome, console.lines, console.guest, console.xen, run.elapsed,
        run.returncode, result_line(console.guest), command=cmd,
        qemu_stderr=run.stderr, qemu_pid=run.pid,
        xen_version=xen_version(console.xen), dom0_lines=console.dom0,
        problem=problem)
    if outcome == "shutdown":
        result.shutdown_reason = REASONS.get(console.reason or 0,
                                             f"code {console.reason}")
    if outcome == "crash":
        kind = "xen panic" if console.event == "xen panic" else "domU crash"
        result.crash = _crash_report(kind, console, elf)
    return result


def _crash_report(kind: str, console: DomuWatch, elf: Path) -> CrashReport:
    """As for dom0 (crash.make_crash_report), from the guest's lines and
    Xen's while the guest ran. The guest's lines come through the dom0
    (xenconsoled, xl), so they may reach the serial line after Xen's
    register dump; make_crash_report takes the dump from after the guest's
    last line, so Xen's lines are handed over after all of the guest's (an
    empty guest line standing for a guest that said nothing: it would
    otherwise get only Xen's last 15 lines)."""
    guest = console.guest or [""]
    xen = [line for line in console.domu if line.startswith(XEN_PREFIX)]
    report = make_crash_report(kind, [*guest, *xen], guest,
                               load_symbols(elf))
    report.last_lines = console.guest[-LAST_LINES:]
    return report


def boot_domu(elf: Path, cmdline: str = "", memory_mb: int = 64,
              timeout: float = DOMU_TIMEOUT, xen_args: str = "",
              echo: Echo = None,
              kernel_dir: Path = KERNEL_DIR) -> DomuBootResult:
    """Run elf as domU 1 under `xl create -c domain_config` (the file in
    kernel_dir, as it is) with extra="cmdline" and memory=memory_mb, in a
    dom0 on Xen in QEMU. The dom0 is fetched and built on first use."""
    check_cmdline(cmdline)
    if not elf.is_file():
        return DomuBootResult("error", [], [], [], 0.0, None,
                              problem=f"no guest image {elf} (make -C "
                              f"{kernel_dir}, or boot with build=True)")
    config = kernel_dir / "domain_config"
    try:
        config_text = config.read_text()
    except OSError as err:
        raise BuildError(f"cannot read the xl configuration {config}: "
                         f"{err.strerror}") from err
    dom0 = dom0_builder.prepare()
    with tempfile.TemporaryDirectory(prefix="minios-lab-domu-") as tmp:
        initrd = dom0_builder.boot_initramfs(dom0, elf, config_text, cmdline,
                                             memory_mb, Path(tmp))
        cmd = qemu_command(dom0, initrd, xen_args)
        try:
            run = qemu_proc.run(cmd, DOM0_START_LIMIT + timeout,
                                DomuWatch(echo, timeout))
        except OSError as err:
            return DomuBootResult("error", [], [], [], 0.0, None,
                                  command=cmd, qemu_stderr=f"cannot start "
                                  f"QEMU: {err}")
    return _make_result(cmd, elf, run)
