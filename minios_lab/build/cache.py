"""The build cache: publish a built file once, find it again intact.

:func:`published` returns a cached file if it is there and intact, else
builds it under a file lock in a private temporary folder (always removed,
also when the build fails) and publishes it with an atomic rename. Beside
each file, ``<name>.json`` keeps its size, its SHA-256 and the compiler's
warnings. A file that no longer matches (truncated, overwritten by another
program) is deleted and rebuilt, with a
:class:`~minios_lab.errors.CacheWarning`: loading it could crash the
process (a truncated shared library faults with SIGBUS while it is mapped).

The cache stays bounded. Every edit of a kernel file adds a module, so a
grader's machine would otherwise fill its disk. A hit marks its entry used
(the record's mtime), and each new entry is followed by :func:`sweep`: the
least recently used entries go until the folder is within
``$MINIOS_LAB_BUILD_CACHE_MB`` (1024 by default). An entry used in the last
ten minutes, one being built (its lock held), the entry just published and
the guard runtime every module links stay. A module already loaded keeps
working when its file goes: the process has it mapped.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from minios_lab.errors import CacheWarning, ToolchainError
from minios_lab.build.ctools import DISK_FIX

Builder = Callable[[Path], "tuple[Path, list[dict]]"]

LIMIT_ENV = "MINIOS_LAB_BUILD_CACHE_MB"
DEFAULT_LIMIT_MB = 1024
RECENT_S = 600.0             # used this recently: never evicted
KEPT_PREFIXES = ("libminios_guard_",)   # every module links it by name


@dataclass
class Published:
    """A file in the cache, verified, and the warnings of its build."""

    path: Path
    warnings: list[dict] = field(default_factory=list)

    def discard(self) -> None:
        for path in (self.path, _meta(self.path)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _meta(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def disk_faults(path: Path) -> Iterator[None]:
    """OSError while writing the cache -> ToolchainError naming the fix."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise ToolchainError(f"the disk holding {path} is full "
                                 f"({err.strerror}). Fix: {DISK_FIX}") \
                from None
        raise ToolchainError(f"cannot write the build cache {path} "
                             f"({err.strerror or err}). Fix: set "
                             f"MINIOS_LAB_CACHE to a writable folder") \
            from None


def _intact(target: Path) -> Published | None | bool:
    """The entry if intact; None if absent; False if damaged."""
    if not target.exists():
        return None
    try:
        meta = json.loads(_meta(target).read_text())
        if target.stat().st_size == meta["size"] and \
                _sha256(target) == meta["sha256"]:
            return Published(target, list(meta.get("warnings", [])))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return False


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _publish(target: Path, builder: Builder) -> Published:
    workdir = Path(tempfile.mkdtemp(prefix=target.name + "-",
                                    dir=target.parent))
    try:
        built, found = builder(workdir)
        meta = {"size": built.stat().st_size, "sha256": _sha256(built),
                "warnings": found}
        staged = workdir / "meta.json"
        staged.write_text(json.dumps(meta, indent=1))
        os.replace(staged, _meta(target))
        os.replace(built, target)
        return Published(target, found)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def touch(path: Path) -> None:
    """Mark a cached file used now (a read-only cache is left as it is)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def published(target: Path, builder: Builder) -> Published:
    """The intact cached `target`, built by `builder(workdir)` (which
    returns the built file and its warnings) if absent or damaged."""
    limit = limit_bytes()
    with disk_faults(target.parent):
        entry = _intact(target)
        if entry:
            touch(_meta(target))
            return entry
        with _locked(target):
            entry = _intact(target)
            if entry:
                return entry
            if entry is False:
                warnings.warn(CacheWarning(
                    f"the built file {target.name} in the cache was damaged "
                    f"(truncated or changed since it was built); it was "
                    f"deleted and is being rebuilt"), stacklevel=3)
                Published(target).discard()
            entry = _publish(target, builder)
        sweep(target.parent, limit, protect=target)
        return entry


# --- keeping the cache bounded ---------------------------------------------

def limit_bytes() -> int:
    """$MINIOS_LAB_BUILD_CACHE_MB in bytes (a whole number of MiB, 0 or
    more), else the default."""
    text = os.environ.get(LIMIT_ENV)
    if text is None:
        return DEFAULT_LIMIT_MB << 20
    if not text.strip().isdigit():
        raise ToolchainError(f"{LIMIT_ENV}={text!r} is not a whole number "
                             f"of MiB. Fix: set it to, say, "
                             f"{DEFAULT_LIMIT_MB}, or unset it")
    return int(text) << 20


def usage(folder: Path) -> str:
    """What `minios-lab doctor` says of the cache: size and limit."""
    limit = limit_bytes()
    held = sum(e.size for e in _entries(folder).values()) \
        if folder.is_dir() else 0
    return (f"{held >> 20} MiB of {limit >> 20} MiB in {folder} "
            f"({LIMIT_ENV})")


@dataclass
class _Entry:
    """One cached thing: a built file with its record and lock, a kept
    header, or what a killed build left (a work folder, a partial file)."""

    name: str
    paths: list[Path] = field(default_factory=list)
    size: int = 0
    used: float = 0.0          # the latest mtime among its paths


def _entries(folder: Path) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for path in folder.iterdir():
        name = path.name
        for suffix in (".json", ".lock"):
            name = name.removesuffix(suffix)
        entry = entries.setdefault(name, _Entry(name))
        with contextlib.suppress(OSError):
            inside = list(path.rglob("*")) if path.is_dir() else []
            for part in (path, *inside):
                stat = part.lstat()
                entry.size += stat.st_size
                entry.used = max(entry.used, stat.st_mtime)
            entry.paths.append(path)
    return entries


def _remove(entry: _Entry) -> bool:
    """Delete the entry unless a build holds its lock. True if deleted."""
    lock = next((p for p in entry.paths if p.name.endswith(".lock")), None)
    with contextlib.ExitStack() as held:
        if lock:
            handle = held.enter_context(open(lock, "a"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        for path in sorted(entry.paths, key=lambda p: p == lock):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    return True


def _leftover(entry: _Entry) -> bool:
    """What a killed build left: its work folder (mkdtemp in _publish) or
    a half-written kept header (cdef-<digest>.h.<pid>)."""
    return any(p.is_dir() for p in entry.paths) or \
        entry.name.rpartition(".")[2].isdigit()


def sweep(folder: Path, limit: int, protect: Path | None = None) -> list[str]:
    """Delete least recently used entries of `folder` until it holds at most
    `limit` bytes, and any leftover of a killed build; returns the names
    deleted, oldest first. Never deletes `protect`, the guard runtime, an
    entry used in the last RECENT_S seconds or one whose lock is held."""
    removed: list[str] = []
    with contextlib.suppress(OSError):      # a read-only cache stays as is
        entries = _entries(folder)
        total = sum(e.size for e in entries.values())
        recent = time.time() - RECENT_S
        for entry in sorted(entries.values(), key=lambda e: e.used):
            if entry.used > recent:
                break
            if (protect and entry.name == protect.name) or \
                    entry.name.startswith(KEPT_PREFIXES) or \
                    (total <= limit and not _leftover(entry)):
                continue
            if _remove(entry):
                total -= entry.size
                removed.append(entry.name)
    return removed
