"""Build the guest image and boot it as dom0 of a real Xen, inside QEMU.

QEMU starts Xen's multiboot image with the guest ELF as the first module;
the words after the module's name become the guest's command line. Xen
builds a PV dom0 from the ELF and prints everything on its serial console,
which QEMU puts on its stdout (``-serial stdio``). A reader thread turns
that stream into lines; the main thread classifies them as they arrive
(:mod:`minios_lab.guest.console`):

* Xen's own lines begin with ``(XEN)``.
* What dom0 writes with ``HYPERVISOR_console_io`` is copied raw, with no
  prefix (a domU's would get ``(d1)``): every other line is the guest's. If
  the guest writes half a line and Xen then prints, the two share one line;
  it is split at ``(XEN)``.

The end of a boot is read from Xen's last words:

* ``Hardware Dom0 shutdown: rebooting machine``: the guest asked for a
  reboot; with ``-no-reboot`` QEMU exits by itself. Outcome "shutdown".
* ``Hardware Dom0 halted``: the guest asked for poweroff; Xen halts but
  QEMU would run on, so it is stopped. Outcome "shutdown".
* ``Hardware Dom0 crashed`` or ``Panic on CPU``: outcome "crash". Xen was
  started with ``noreboot`` and would wait forever, so QEMU is stopped once
  the report is complete. The crash report (:mod:`minios_lab.guest.crash`) reads
  the guest's own page-fault and PANIC lines first, then Xen's register
  dump, and names the faulting function and source line.
* Nothing of the above before the deadline: outcome "timeout".
* QEMU could not start, or ended without a word from Xen: outcome "error",
  with QEMU's own complaint (its stderr) in ``str(result)``.

QEMU runs in its own process group, which is always killed and reaped on the
way out, including when the caller is interrupted (a notebook's "interrupt
kernel" raises KeyboardInterrupt here), and it dies with the Python process
that started it (:mod:`minios_lab.guest.qemu`): no QEMU outlives a boot.
"""
from __future__ import annotations

import minios_lab

import argparse
import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from minios_lab.build import toolchain
from minios_lab.errors import MiniosLabError
from minios_lab.guest import qemu as qemu_proc
from minios_lab.guest.console import (ConsoleWatch, Echo,  # noqa: F401
                                      outcome_of, split_console_line)
from minios_lab.guest.crash import (LAST_LINES, XEN_PREFIX,  # noqa: F401
                                    CrashReport, Symbols, load_symbols,
                                    make_crash_report)
from minios_lab.guest.dom0 import DOM0_PREFIX
from minios_lab.guest.domu import DOMU_TIMEOUT, boot_domu
from minios_lab.guest.result import (CHAPTER_RE, RESULT_RE,  # noqa: F401
                                     XEN_VERSION_RE, BootResult, BuildError,
                                     result_line, xen_version)

REPO_DIR = minios_lab.REPO_DIR
KERNEL_DIR = REPO_DIR / "kernel"
XEN_MEMORY_MB = 192        # QEMU RAM on top of dom0's, for Xen itself
BUILD_TIMEOUT = 300.0      # seconds for `make -C kernel`
REAP_TIMEOUT = qemu_proc.REAP_TIMEOUT



def image_path(kernel_dir: Path = KERNEL_DIR) -> Path:
    return kernel_dir / "build" / "minios.elf"


def build_image(kernel_dir: Path = KERNEL_DIR) -> Path:
    """Run ``make -C kernel``; return the ELF. Raises BuildError."""
    if not (kernel_dir / "Makefile").is_file():
        raise BuildError(f"no Makefile in {kernel_dir}")
    include = toolchain.xen_include_dir()
    jobs = f"-j{min(os.cpu_count() or 1, 8)}"
    cmd = ["make", "-C", str(kernel_dir), jobs, f"XEN_INCLUDE={include}"]
    (kernel_dir / "build").mkdir(exist_ok=True)
    with open(kernel_dir / "build" / ".make.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one make per tree at a time
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  timeout=BUILD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as err:
            raise BuildError(f"make timed out after {BUILD_TIMEOUT} s") \
                from err
    if proc.returncode != 0:
        raise BuildError(proc.stdout)
    return image_path(kernel_dir)


# --- the QEMU command line ---------------------------------------------------

def qemu_module_arg(elf: Path, cmdline: str) -> str:
    """The -initrd value: "image args". QEMU splits modules at commas, so
    a literal comma is doubled."""
    module = f"{elf} {cmdline}".strip()
    return module.replace(",", ",,")


def xen_command_line(memory_mb: int, xen_args: str = "") -> str:
    words = ["console=com1", "noreboot", f"dom0_mem={memory_mb}M",
             "loglvl=all", "guest_loglvl=all", xen_args]
    return " ".join(w for w in words if w)


def qemu_command(elf: Path, cmdline: str, memory_mb: int,
                 xen_args: str = "") -> list[str]:
    """-mem-prealloc: QEMU backs all guest RAM before Xen starts. The
    guest's mm chapters write to every page it has, and under TCG a first
    write to RAM the host has not backed yet costs about 30 times a later
    one. Measured on the 2-core machine, every chapter at 4096 MiB: 4.4
    to 5.3 s with it, 7.2 to 12.6 s without (5 boots each); no change at
    64 MiB."""
    return [
        str(toolchain.qemu_binary()), "-mem-prealloc",
        "-m", str(memory_mb + XEN_MEMORY_MB),
        "-display", "none", "-no-reboot", "-nic", "none",
        "-serial", "stdio", "-monitor", "none",
        "-kernel", str(toolchain.xen_binary()),
        "-initrd", qemu_module_arg(elf, cmdline),
        "-append", xen_command_line(memory_mb, xen_args),
    ]


def _crash_kind(console: ConsoleWatch) -> str:
    if any("Panic on CPU" in line for line in console.xen):
        return "xen panic"
    return "dom0 crash" if console.event == "crash" else "reset"


def _make_result(cmd: list[str], elf: Path, run: qemu_proc.QemuRun) -> BootResult:
    console = run.console
    outcome = outcome_of(console, run.ended)
    result = BootResult(outcome, console.lines, console.guest, console.xen,
                        run.elapsed, run.returncode,
                        result_line(console.guest), command=cmd,
                        qemu_stderr=run.stderr, qemu_pid=run.pid)
    result.xen_version = xen_version(console.xen)
    if outcome == "shutdown":
        result.shutdown_reason = console.event
    if outcome == "crash":
        result.crash = make_crash_report(_crash_kind(console), console.lines,
                                         console.guest, load_symbols(elf))
    return result


MEMORY_MB_RANGE = (16, 4096)
CMDLINE_MAX = 1023   # start_info.cmd_line holds 1024 bytes with the NUL


def _check_boot_arguments(cmdline: str, memory_mb: int,
                          timeout: float) -> None:
    """Refuse what Xen would silently change (or what makes no sense)."""
    low, high = MEMORY_MB_RANGE
    if not isinstance(memory_mb, int) or not low <= memory_mb <= high:
        raise ValueError(f"memory_mb must be a whole number of MiB from {low} "
                         f"to {high}, not {memory_mb!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, "
                         f"not {timeout!r}")
    if len(cmdline.encode()) > CMDLINE_MAX:
        raise ValueError(f"the guest command line is {len(cmdline.encode())} "
                         f"bytes; start_info holds {CMDLINE_MAX} at most "
                         f"(Xen would cut it)")


def boot(cmdline: str = "", memory_mb: int = 64,
         timeout: Optional[float] = None,
         xen_args: str = "", build: bool = True, echo: Echo = None,
         kernel_dir: Path = KERNEL_DIR, domu: bool = False) -> BootResult:
    """Build (if asked) and boot the guest; return what happened.

    cmdline is the guest's command line, memory_mb its memory (dom0_mem),
    timeout the limit in seconds for the whole boot (default 30 s; for a
    domU, DOMU_TIMEOUT, counted once its dom0 is ready); xen_args are added
    to Xen's command line; echo, if given, is called with each console line
    as it arrives. domu runs the guest as an unprivileged domain instead, with
    `xl create -c kernel/domain_config` beside a Linux dom0
    (:mod:`minios_lab.guest.domu`: about 11 s; the result also has
    ``dom0_lines``).
    """
    if timeout is None:
        timeout = DOMU_TIMEOUT if domu else 30.0
    _check_boot_arguments(cmdline, memory_mb, timeout)
    elf = build_image(kernel_dir) if build else image_path(kernel_dir)
    if domu:
        return boot_domu(elf, cmdline, memory_mb, timeout, xen_args, echo,
                         kernel_dir)
    cmd = qemu_command(elf, cmdline, memory_mb, xen_args)
    try:
        run = qemu_proc.run(cmd, timeout, ConsoleWatch(echo))
    except OSError as err:
        return BootResult("error", [], [], [], 0.0, None, command=cmd,
                          qemu_stderr=f"cannot start QEMU: {err}")
    return _make_result(cmd, elf, run)


# --- command line ------------------------------------------------------------

# The guest word that keeps it running after the chapters (kernel/time_demo.c:
# time_run_on). `minios-lab boot` adds it unless told --once; boot() never
# does, so a boot from Python ends by itself.
FOREVER_WORD = "forever=1"
# "No limit" for a boot that runs until Ctrl-C: a year, in seconds (finite,
# since the console's queue waits take a timeout).
NO_TIMEOUT = 365 * 24 * 3600.0
CLI_TIMEOUT = 30.0   # the default limit of a boot that ends by itself
# ... and of a domU's (about 11 s alone, three times that on a loaded
# 2-core machine: Linux boots under software emulation first)
INTERRUPTED = 130    # exit status after Ctrl-C, as a shell reports SIGINT


def _parse_boot_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="minios-lab boot",
        description="Build the guest and boot it on Xen in QEMU, streaming "
        "its console. After the chapters the guest keeps its timer running "
        f"and prints the system time every 1000 ticks ({FOREVER_WORD} is "
        "added to its command line) until Ctrl-C, which stops QEMU, or "
        "until a ticks=N bound: N more ticks, then it shuts down.")
    parser.add_argument("cmdline", nargs="*",
                        help="guest command line words, e.g. ticks=3000")
    parser.add_argument("--memory", type=int, default=64,
                        help="guest memory in MiB (default 64)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before the boot is stopped (default: "
                        f"none while the guest runs on, {CLI_TIMEOUT:g} "
                        f"({DOMU_TIMEOUT:g} with --domu, from when the "
                        "dom0 is ready) "
                        "with --once)")
    parser.add_argument("--once", action="store_true",
                        help=f"do not add {FOREVER_WORD}: the guest shuts "
                        "down after the chapters, as boot() in Python")
    parser.add_argument("--xen-args", default="",
                        help="extra words for Xen's command line")
    parser.add_argument("--domu", action="store_true",
                        help="run the guest as an unprivileged domain: "
                        "`xl create -c kernel/domain_config` beside a Linux "
                        "dom0 built from Debian's packages (fetched once)")
    parser.add_argument("--no-build", action="store_true",
                        help="boot kernel/build/minios.elf as it is")
    parser.add_argument("--guest-only", action="store_true",
                        help="print only the guest's lines")
    return parser.parse_args(argv)


def _cli_cmdline(words: list[str], once: bool) -> tuple[str, bool]:
    """The guest's command line, and whether the guest runs on after the
    chapters (then the boot has no time limit unless --timeout says: it
    ends with Ctrl-C or the guest's ticks= bound)."""
    if not once and not any(w.startswith("forever=") for w in words):
        words = words + [FOREVER_WORD]
    return " ".join(words), FOREVER_WORD in words


def main_boot(argv: Optional[list[str]] = None) -> int:
    """`minios-lab boot`: stream the console; 0 iff RESULT: SUCCESS; 130
    (and one line, QEMU stopped) after Ctrl-C."""
    args = _parse_boot_args(sys.argv[1:] if argv is None else argv)
    cmdline, runs_on = _cli_cmdline(list(args.cmdline), args.once)
    timeout = args.timeout
    if timeout is None:
        timeout = NO_TIMEOUT if runs_on else \
            (DOMU_TIMEOUT if args.domu else CLI_TIMEOUT)

    def echo(line: str) -> None:
        if not (args.guest_only and line.startswith((XEN_PREFIX,
                                                     DOM0_PREFIX))):
            print(line, flush=True)

    try:
        result = boot(cmdline, args.memory, timeout, args.xen_args,
                      build=not args.no_build, echo=echo, domu=args.domu)
    except KeyboardInterrupt:
        print("minios-lab boot: interrupted (Ctrl-C); QEMU is stopped",
              file=sys.stderr, flush=True)
        return INTERRUPTED
    except (MiniosLabError, ValueError) as err:
        print(f"minios-lab boot: {err}", file=sys.stderr)
        return 1
    if result.crash:
        print(result.crash.report())
    if result.outcome == "error":
        print(result.qemu_stderr.rstrip(), file=sys.stderr)
    print(result)
    return 0 if result.succeeded else 1
