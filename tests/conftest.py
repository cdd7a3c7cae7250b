"""Shared fixtures: a private copy of kernel/ that a test may edit; the
guest image, built once per session; booted guests shared by the tests
that only read what a boot printed (one boot per configuration per
session, across xdist workers too)."""
from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pytest

if TYPE_CHECKING:
    from minios_lab.guest.boot import BootResult

REPO = Path(__file__).resolve().parent.parent
KERNEL = REPO / "kernel"


@pytest.fixture
def kernel_copy(tmp_path: Path) -> Path:
    """A copy of kernel/ (sources and headers, no build output).

    A unique marker comment makes its build hash differ from every other
    copy, so each test really compiles.
    """
    dst = tmp_path / "kernel"
    shutil.copytree(KERNEL, dst, ignore=shutil.ignore_patterns("build"))
    marker = dst / "host" / "marker.h"
    marker.write_text(f"/* test copy {uuid.uuid4()} */\n")
    return dst


# Module-scoped fixtures that cost seconds to make (a graded hand-out, a
# live guest under gdb, a built site, a running JupyterLab). The tests of
# one module that use one of them run on one xdist worker (the Makefile
# runs `pytest -n 2 --dist loadgroup`), so each is made once, not once per
# worker. Boots are shared across workers by shared_boot instead.
EXPENSIVE_MODULE_FIXTURES = {"handout", "handout_grade", "after_mm",
                             "built", "browser", "lab", "lab_page"}


@pytest.hookimpl(tryfirst=True)     # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if EXPENSIVE_MODULE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def edit(path: Path, old: str, new: str) -> int:
    """Replace `old` (which must occur once) by `new`; return its line."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {path}"
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new))
    return line


@pytest.fixture(scope="session")
def guest_image() -> Path:
    """The guest image, built once per session.

    QEMU, Xen and its headers must be present: `make test` installs them,
    so a missing tool is a failure here, never a skip.
    """
    from minios_lab.build import toolchain
    from minios_lab.guest.boot import build_image
    toolchain.qemu_binary(install=False)
    toolchain.xen_binary()
    toolchain.xen_include_dir()
    return build_image()


BootKey = tuple[str, int]


@pytest.fixture(scope="session")
def shared_boot(guest_image: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Callable[..., "BootResult"]:
    """shared_boot(cmdline, memory_mb=64): the result of booting the
    session's guest image with that command line, booted once per session.

    Only for tests that read the result: the same BootResult object (or,
    on another xdist worker, a copy of it) goes to every test that asks
    for the same configuration. Under xdist the first worker to ask boots
    while the others wait for the result in a folder of this test run.
    """
    from minios_lab.guest.boot import boot
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    folder = None
    if run:
        folder = tmp_path_factory.getbasetemp().parent / f"boots-{run}"
        folder.mkdir(exist_ok=True)
    cache: dict[BootKey, "BootResult"] = {}

    def get(cmdline: str = "", memory_mb: int = 64) -> "BootResult":
        key = (cmdline, memory_mb)
        if key not in cache:
            cache[key] = _boot_once(folder, key, lambda: boot(
                cmdline, memory_mb=memory_mb, timeout=120, build=False))
        return cache[key]
    return get


def _boot_once(folder: Path | None, key: BootKey,
               boot: Callable[[], "BootResult"]) -> "BootResult":
    """boot(), or the result another worker of this run stored for `key`."""
    if folder is None:
        return boot()
    name = f"{hashlib.sha256(key[0].encode()).hexdigest()[:16]}-{key[1]}"
    stored = folder / f"{name}.pickle"
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stored.exists():
            found_key, result = pickle.loads(stored.read_bytes())
            if found_key == key:
                return result
        result = boot()
        stored.write_bytes(pickle.dumps((key, result)))
        return result


# The start of a child Python that boots and prints QEMU's pid as soon as
# QEMU is spawned (tests that kill or interrupt the child look for it).
PRINT_QEMU_PID = """
from minios_lab.guest import boot as b
from minios_lab.guest import qemu as qemu_proc
real_spawn = qemu_proc.spawn
def spawn(*args, **kwargs):
    proc = real_spawn(*args, **kwargs)
    print("qemu pid", proc.pid, flush=True)
    return proc
qemu_proc.spawn = spawn
"""


@contextmanager
def child_booting(script: str, prelude: str = ""
                  ) -> Iterator[tuple[subprocess.Popen, int]]:
    """A child Python that runs `prelude`, then boots with `script`:
    (the child, its QEMU's pid) once QEMU is spawned. The child is killed
    and reaped on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-c", prelude + PRINT_QEMU_PID + script],
        stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        first = proc.stdout.readline()
        assert first.startswith("qemu pid"), first
        yield proc, int(first.split()[2])
    finally:
        proc.kill()
        proc.wait()
