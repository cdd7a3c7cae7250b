"""The Debian packages the kit needs before its virtual environment exists.

``make`` runs this first, with the system ``python3`` and before ``.venv``
is made, so it uses the standard library only::

    python3 -m minios_lab.build.sysdeps            # install what is missing
    python3 -m minios_lab.build.sysdeps --check    # only say what is missing

Each need is tested by what the kit really uses (``ensurepip`` for the
virtual environment, ``Python.h`` and ``pyconfig.h`` for cffi builds, a
program on PATH for the tools), not by package name, so a machine whose
tools came from elsewhere is not asked to install them again. As root,
what is missing is installed with apt-get, after ``apt-get update`` when
the package lists are missing, older than a day or lack a needed package.
Not as root, nothing happens but one message naming the one command to run.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

APT_LISTS = Path("/var/lib/apt/lists")
LISTS_MAX_AGE = 24 * 3600.0   # seconds: older lists are refreshed first


@dataclass(frozen=True)
class Need:
    """One Debian package, and how to tell that what it gives is present."""

    package: str
    why: str
    present: Callable[[], bool]


def python_headers_present() -> bool:
    """Python.h and pyconfig.h of the running Python (cffi needs both)."""
    paths = sysconfig.get_paths()
    dirs = {Path(paths["include"]), Path(paths["platinclude"])}
    found = {name for d in dirs for name in ("Python.h", "pyconfig.h")
             if (d / name).is_file()}
    return found == {"Python.h", "pyconfig.h"}


def _program(name: str, env: str = "") -> Callable[[], bool]:
    """A test that the program (or the one $env names) is on PATH."""
    def present() -> bool:
        chosen = (os.environ.get(env) if env else None) or name
        return shutil.which(chosen) is not None
    return present


NEEDS: tuple[Need, ...] = (
    Need("python3-venv", "python3 -m venv (the kit's .venv)",
         lambda: importlib.util.find_spec("ensurepip") is not None),
    Need("python3-dev", "Python.h, pyconfig.h (cffi host builds)",
         python_headers_present),
    Need("gcc", "the C compiler", _program("gcc")),
    Need("libc6-dev", "the C library headers (host builds)",
         lambda: Path("/usr/include/stdio.h").is_file()),
    Need("binutils", "ld, nm (the guest image)", _program("ld")),
    Need("qemu-system-x86", "QEMU, which runs Xen",
         _program("qemu-system-x86_64", "MINIOS_QEMU")),
    Need("gdb", "the debugger (minios-lab debug)", _program("gdb")),
    Need("clang-format", "make format / format-check",
         _program("clang-format", "CLANG_FORMAT")),
    Need("chromium", "the browser the site test opens pages in",
         _program("chromium")),
    Need("chromium-driver", "chromedriver (the site test drives chromium)",
         _program("chromedriver")),
)


def missing(needs: tuple[Need, ...] | None = None) -> list[Need]:
    """The needs not met on this machine (all of NEEDS by default)."""
    return [need for need in (NEEDS if needs is None else needs)
            if not need.present()]


def is_root() -> bool:
    return os.geteuid() == 0


def _apt(args: list[str], quiet: bool = False) -> int:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(["apt-get", *args], env=env, stdout=out,
                          check=False).returncode


def lists_stale(packages: list[str], lists: Path = APT_LISTS,
                now: float | None = None) -> bool:
    """True when apt's lists are missing, older than a day or lack one of
    packages (then ``apt-get update`` must run before install/download)."""
    indexes = [p for p in lists.glob("*_Packages*")] if lists.is_dir() else []
    if not indexes:
        return True
    newest = max(p.stat().st_mtime for p in indexes)
    if (now if now is not None else time.time()) - newest > LISTS_MAX_AGE:
        return True
    return bool(packages) and not candidates_known(packages)


def candidates_known(packages: list[str]) -> bool:
    """Does apt have an installable version of every package? (One
    ``apt-cache policy`` call: it reads the lists once.)"""
    try:
        out = subprocess.run(["apt-cache", "policy", *packages],
                             capture_output=True, text=True,
                             check=False).stdout
    except OSError:
        return False
    known, current = set(), None
    for line in out.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif line.strip().startswith("Candidate:") and current:
            if line.split(":", 1)[1].strip() != "(none)":
                known.add(current)
    return known >= set(packages)


def update_lists_if_stale(packages: list[str]) -> None:
    """As root, ``apt-get update`` when the lists are stale for packages."""
    if is_root() and shutil.which("apt-get") and lists_stale(packages):
        print("minios-lab: refreshing apt's package lists (apt-get update)",
              file=sys.stderr)
        _apt(["update", "-q"], quiet=True)


def install_command(packages: list[str], update: bool) -> str:
    """The one command a non-root user runs to get packages."""
    install = ("sudo apt-get install -y --no-install-recommends "
               + " ".join(packages))
    return f"sudo apt-get update && {install}" if update else install


def _not_debian_python_note() -> str:
    if sys.prefix.startswith("/usr") and not sys.prefix.startswith(
            "/usr/local"):
        return ""
    return (f"\n(This python3 is {sys.executable}, not Debian's: if the "
            "message is about python3-venv or python3-dev, run make with "
            "PYTHON=/usr/bin/python3 instead.)")


def message(needed: list[Need], update: bool) -> str:
    names = [n.package for n in needed]
    lines = [f"  {n.package:<16} {n.why}" for n in needed]
    return ("minios-lab needs Debian packages that are not installed:\n"
            + "\n".join(lines)
            + "\nRun this once (as root or with sudo), then make again:\n    "
            + install_command(names, update) + _not_debian_python_note())


def ensure(check_only: bool = False) -> int:
    """Install what is missing (root), else print the command; exit status."""
    needed = missing()
    if not needed:
        return 0
    names = [n.package for n in needed]
    if check_only or not is_root() or shutil.which("apt-get") is None:
        stale = shutil.which("apt-get") is not None and lists_stale(names)
        print(message(needed, stale), file=sys.stderr)
        return 1
    update_lists_if_stale(names)
    print("minios-lab: installing " + " ".join(names), file=sys.stderr)
    if _apt(["install", "-y", "-q", "--no-install-recommends", *names]) != 0:
        print("minios-lab: apt-get install failed (see above). Fix, then "
              "make again.", file=sys.stderr)
        return 1
    still = missing()
    if still:
        print(message(still, False), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(ensure(check_only="--check" in sys.argv[1:]))
