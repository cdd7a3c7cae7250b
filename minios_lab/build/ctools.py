"""Running the C toolchain for host builds, and reading what it says.

Every way a tool can fail that is not the learner's C (no compiler, ``CC``
naming something that is not one, Python's headers missing, binutils
missing, a full disk) becomes a :class:`~minios_lab.errors.ToolchainError`
whose message names the cause and the one fix. gcc's warnings on kernel
code are parsed into plain records (file, line, flag, text) that cbuild
stores beside the built module and shows as CompileWarning.
"""
from __future__ import annotations

import os
import re
import subprocess
import sysconfig
from functools import lru_cache
from pathlib import Path

from minios_lab.errors import ToolchainError

COMPILER_FIX = ("install gcc: sudo apt-get install -y gcc libc6-dev "
                "(or set CC to a C compiler)")
BINUTILS_FIX = "install binutils: sudo apt-get install -y binutils"
PYTHON_DEV_FIX = "sudo apt-get install -y python3-dev"
DISK_FIX = ("free some space, or set MINIOS_LAB_CACHE to a folder on "
            "another disk")
_DISK_FULL = re.compile(r"No space left on device|File too large|"
                        r"File size limit exceeded|"
                        r"Disk quota exceeded", re.IGNORECASE)


def compiler() -> str:
    """The C compiler the kit uses: $CC (may carry options), else gcc."""
    return os.environ.get("CC", "").strip() or "gcc"


def compiler_argv() -> list[str]:
    return compiler().split()


@lru_cache(maxsize=None)
def _identity(cc: str) -> tuple[str, str]:
    argv = cc.split()
    try:
        version = subprocess.run([*argv, "--version"], capture_output=True,
                                 text=True, timeout=60)
        include = subprocess.run([*argv, "-print-file-name=include"],
                                 capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ToolchainError(f"C compiler not found: CC={cc}. "
                             f"Fix: {COMPILER_FIX}") from None
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolchainError(f"CC={cc} cannot be run ({err}). "
                             f"Fix: {COMPILER_FIX}") from None
    folder = include.stdout.strip()
    if version.returncode or include.returncode or \
            not (Path(folder) / "stddef.h").is_file():
        raise ToolchainError(
            f"CC={cc} is not a C compiler the kit can use: it did not name "
            f"its own header folder (`{cc} -print-file-name=include` gave "
            f"{folder or 'nothing'!r}). Fix: {COMPILER_FIX}")
    return version.stdout, folder


def compiler_identity(cc: str) -> tuple[str, str]:
    """(version text, the compiler's own include folder); ToolchainError
    when cc is missing or is no C compiler."""
    return _identity(cc)


def python_include_dirs() -> list[str]:
    """Folders holding Python.h and pyconfig.h, which every cffi module
    includes; ToolchainError naming the package when they are missing."""
    paths = sysconfig.get_paths()
    dirs = list(dict.fromkeys([paths["include"], paths["platinclude"]]))
    missing = [name for name in ("Python.h", "pyconfig.h")
               if not any((Path(d) / name).is_file() for d in dirs)]
    if missing:
        raise ToolchainError(
            f"the Python headers are missing ({', '.join(missing)} not in "
            f"{paths['include']}): host builds of kernel code need them. "
            f"Fix: {PYTHON_DEV_FIX}")
    return dirs


def run_tool(cmd: list[str], workdir: Path, what: str,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run one build tool in workdir (its temporary files too).

    A missing tool or a full disk is a ToolchainError, with the tool's own
    words; so is any other failure when `check` (the caller handles
    failures of the learner's code itself).
    """
    env = dict(os.environ, TMPDIR=str(workdir))
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True,
                              text=True, env=env)
    except FileNotFoundError:
        fix = COMPILER_FIX if "compiler" in what else BINUTILS_FIX
        raise ToolchainError(f"{what} not found: {cmd[0]}. Fix: {fix}") \
            from None
    except OSError as err:
        raise ToolchainError(f"{what} ({cmd[0]}) cannot be run: {err}. "
                             f"Fix: {COMPILER_FIX}") from None
    said = (proc.stderr + proc.stdout).strip()
    if proc.returncode != 0 and _DISK_FULL.search(said):
        raise ToolchainError(
            f"{what} failed, the disk is full: {_tail(said)} "
            f"(building in {workdir.parent}). Fix: {DISK_FIX}")
    if check and proc.returncode != 0:
        raise ToolchainError(f"{what} failed: {_tail(said)}. "
                             f"Fix: run `minios-lab doctor`")
    return proc


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- gcc's warnings ------------------------------------------------------------

_DIAG = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?:\d+:)? "
                   r"(?P<kind>warning|error|note|fatal error): (?P<msg>.*)$")
_CONTEXT = re.compile(r"^[^:\s]+: (?:In function|In member|At top level)|"
                      r"^In file included from|^\s+from ")
_FLAG = re.compile(r"\[(-W[^\]]+)\]\s*$")


def warnings_in(stderr: str) -> list[dict]:
    """gcc's warnings on kernel/ files: [{file, line, flag, text}], where
    text is the whole diagnostic (message, source line, caret, notes)."""
    found: list[dict] = []
    current: dict | None = None
    for line in stderr.splitlines():
        match = _DIAG.match(line)
        if match and match["kind"] == "warning":
            flag = _FLAG.search(line)
            current = {"file": match["file"], "line": int(match["line"]),
                       "flag": flag.group(1) if flag else "", "text": line}
            if match["file"].startswith("kernel/"):
                found.append(current)
        elif match and match["kind"] == "note" and current is not None:
            current["text"] += "\n" + line
        elif match or _CONTEXT.match(line):
            current = None
        elif current is not None:
            current["text"] += "\n" + line
    return found
