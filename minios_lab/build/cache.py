"""The build cache: publish a built file once, find it again intact.

:func:`published` returns a cached file if it is there and intact, else
builds it under a file lock in a private temporary folder (always removed,
also when the build fails) and publishes it with an atomic rename. Beside
each file, ``<name>.json`` keeps its size, its SHA-256 and the compiler's
warnings. A file that no longer matches (truncated, overwritten by another
program) is deleted and rebuilt, with a
:class:`~minios_lab.errors.CacheWarning`: loading it could crash the
process (a truncated shared library faults with SIGBUS while it is mapped).
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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from minios_lab.errors import CacheWarning, ToolchainError
from minios_lab.build.ctools import DISK_FIX

Builder = Callable[[Path], "tuple[Path, list[dict]]"]


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


def published(target: Path, builder: Builder) -> Published:
    """The intact cached `target`, built by `builder(workdir)` (which
    returns the built file and its warnings) if absent or damaged."""
    with disk_faults(target.parent):
        entry = _intact(target)
        if entry:
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
            return _publish(target, builder)
