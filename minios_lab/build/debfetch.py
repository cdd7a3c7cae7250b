"""Fetch Debian packages into the kit's cache, without root.

The cache folder is ``$MINIOS_LAB_CACHE`` (default ``~/.cache/minios-lab``).
``apt-get download`` fetches a package into a scratch folder, ``dpkg-deb
-x`` unpacks it, and ``<cache>/xen-4.17/VERSION`` records which Debian
version of each package was taken (one ``package version`` line each).
Callers hold a file lock (:func:`locked`) and publish results with an
atomic rename, so two processes fetching at once neither corrupt nor
duplicate the work. As root, apt's lists are refreshed first when stale, so
the newest build Debian offers is taken. Every OSError while writing is a
``ToolchainError`` naming the cause and its fix.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from minios_lab.build import sysdeps
from minios_lab.errors import ToolchainError
from minios_lab.build.toolcheck import cache_faults

XEN_SERIES = "4.17"
SETUP_COMMAND = "minios-lab setup"

# --- the cache ---------------------------------------------------------------

def _cache_path() -> Path:
    env = os.environ.get("MINIOS_LAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache/minios-lab"


def cache_dir() -> Path:
    """The kit's cache folder, created if missing (ToolchainError if not
    possible: a file in the way, no permission, a full disk)."""
    path = _cache_path()
    with cache_faults(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def xen_dir() -> Path:
    path = cache_dir() / f"xen-{XEN_SERIES}"
    with cache_faults(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock on <cache>/xen-4.17/<name>.lock."""
    path = xen_dir() / f".{name}.lock"
    with cache_faults(path):
        lock = open(path, "w")
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_root() -> bool:
    return os.geteuid() == 0


def run(cmd: list[str],
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          check=False)


# --- fetching Debian packages without root -----------------------------------

def _give_to_apt(path: Path) -> None:
    """Let apt's sandbox user write into path (only possible as root)."""
    if not is_root():
        return
    try:
        user = pwd.getpwnam("_apt")
        os.chown(path, user.pw_uid, user.pw_gid)
    except (KeyError, OSError):
        pass  # apt then downloads "unsandboxed" as root, with a warning


def _apt_download(package: str, workdir: Path) -> Path:
    """apt-get download package into workdir; return the .deb."""
    if shutil.which("apt-get") is None:
        raise ToolchainError(
            f"cannot fetch {package}: apt-get not found (not a Debian-like "
            "system). Set MINIOS_XEN / MINIOS_XEN_INCLUDE to a Xen 4.17 "
            "hypervisor and its public headers.")
    _give_to_apt(workdir)
    sysdeps.update_lists_if_stale([package])   # root only: newest build
    proc = run(["apt-get", "download", package], cwd=workdir)
    if proc.returncode != 0 and is_root():
        run(["apt-get", "update"])
        proc = run(["apt-get", "download", package], cwd=workdir)
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not debs:
        hint = "" if is_root() else " (if apt has no package lists yet: " \
            "sudo apt-get update)"
        raise ToolchainError(
            f"apt-get download {package} failed{hint}:\n"
            f"{proc.stdout}{proc.stderr}")
    return debs[0]


def _deb_version(deb: Path) -> str:
    proc = run(["dpkg-deb", "-f", str(deb), "Version"])
    return proc.stdout.strip() or "unknown"


def _extract(deb: Path, dest: Path) -> None:
    proc = run(["dpkg-deb", "-x", str(deb), str(dest)])
    if proc.returncode != 0:
        full = "No space left" in proc.stderr
        fix = ("free some space, or set MINIOS_LAB_CACHE to a folder on "
               "another disk") if full else f"rm -rf {xen_dir()}, then " \
            f"{SETUP_COMMAND}"
        raise ToolchainError(f"dpkg-deb -x {deb.name} into {dest} failed"
                             f"{' (disk full)' if full else ''}:\n"
                             f"{proc.stderr.strip()}\nFix: {fix}")


def record_version(package: str, version: str) -> None:
    """Note package=version in <cache>/xen-4.17/VERSION (under a lock)."""
    path = xen_dir() / "VERSION"
    with locked("VERSION"), cache_faults(path):
        lines = path.read_text().splitlines() if path.exists() else []
        lines = [ln for ln in lines if not ln.startswith(package + " ")]
        lines.append(f"{package} {version}")
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(sorted(lines)) + "\n")
        os.replace(tmp, path)


def recorded_versions() -> dict[str, str]:
    path = _cache_path() / f"xen-{XEN_SERIES}" / "VERSION"
    try:
        text = path.read_text()
    except OSError:
        return {}
    pairs = (line.split(" ", 1) for line in text.splitlines() if " " in line)
    return {package: version.strip() for package, version in pairs}


def fetch_package(package: str, dest: Path, record: bool = True) -> str:
    """Download package and unpack it into dest; return its version.

    `record` notes the version among the Xen pieces that `doctor` compares
    with what apt offers (the hypervisor and its headers); other packages
    (the domU path's dom0) keep their versions themselves."""
    with cache_faults(Path(tempfile.gettempdir()),
                      "free space in /tmp (or set TMPDIR)"), \
            tempfile.TemporaryDirectory(prefix="minios-lab-apt-") as tmp:
        deb = _apt_download(package, Path(tmp))
        version = _deb_version(deb)
        with cache_faults(dest):
            _extract(deb, dest)
    if record:
        record_version(package, version)
    return version


def candidate(package: str) -> str:
    """The version apt would fetch now ("" when unknown)."""
    proc = run(["apt-cache", "policy", package]) if shutil.which(
        "apt-cache") else None
    for line in (proc.stdout if proc else "").splitlines():
        if line.strip().startswith("Candidate:"):
            found = line.split(":", 1)[1].strip()
            return "" if found == "(none)" else found
    return ""
