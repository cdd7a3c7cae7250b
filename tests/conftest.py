"""Shared fixtures: a private copy of kernel/ that a test may edit; the
guest image, built once per session; results made once per test run and
shared by the xdist workers (made_once): booted guests that tests only
read (one boot per configuration), a hand-out and its grade."""
from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

import pytest

if TYPE_CHECKING:
    from minios_lab.guest.boot import BootResult

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")
KERNEL = REPO / "kernel"

# Modules whose tests share a costly fixture that lives in one process
# (JupyterLab with Chromium: ~10 s to start). They are collected first:
# xdist's worksteal scheduling gives each worker one consecutive slice of
# the tests to start with, so they all land on one worker and it starts
# once.
COLLECTED_FIRST = ("test_notebook_metadata.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in COLLECTED_FIRST)


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal or Jupyter has it: Python's own handler. Run as
    a background job (`make test &`), pytest and its workers inherit SIGINT
    ignored; the guard then rightly leaves it so, and the interrupt tests
    would wait for ever. Children started from here then begin with the
    default action (a caught signal is reset by exec; an ignored one is
    not)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    """Close the figures a test made (pyplot keeps every one open)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture
def kernel_copy(tmp_path: Path) -> Path:
    """A copy of kernel/ (sources and headers, no build output).

    A unique marker comment makes its build hash differ from every other
    copy, so each test really compiles (for tests of the build itself).
    """
    dst = _copy_kernel(tmp_path)
    marker = dst / "host" / "marker.h"
    marker.write_text(f"/* test copy {uuid.uuid4()} */\n")
    return dst


@pytest.fixture
def cached_copy(tmp_path: Path) -> Path:
    """A copy of kernel/ whose host builds the build cache finds again by
    content: a unit the test leaves alone is the reference build, and an
    edit made the same way (by this test in an earlier run, or by another
    test) is not compiled again. For tests of what the C does, not of how
    it is built."""
    return _copy_kernel(tmp_path)


def _copy_kernel(tmp_path: Path) -> Path:
    dst = tmp_path / "kernel"
    shutil.copytree(KERNEL, dst, ignore=shutil.ignore_patterns("build"))
    return dst


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


@pytest.fixture
def image(guest_image: Path) -> Path:
    """The guest image, for tests that boot it or read its symbols."""
    return guest_image


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run, shared by its xdist workers."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:                     # one process: its own base folder
        return tmp_path_factory.mktemp("shared")
    folder = tmp_path_factory.getbasetemp().parent / f"shared-{run}"
    folder.mkdir(exist_ok=True)
    return folder


def made_once(folder: Path, key: str, make: Callable[[Path], T]) -> T:
    """make(a fresh folder) once per test run (folder: run_folder): the
    first xdist worker to ask makes it while the others wait, then they
    read its pickled result."""
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    stored = folder / f"{name}.pickle"
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stored.exists():
            found_key, result = pickle.loads(stored.read_bytes())
            assert found_key == key, (found_key, key)
            return result
        work = folder / name
        work.mkdir()
        result = make(work)
        stored.write_bytes(pickle.dumps((key, result)))
        return result


@pytest.fixture(scope="session")
def shared_boot(guest_image: Path, run_folder: Path
                ) -> Callable[..., "BootResult"]:
    """shared_boot(cmdline, memory_mb=64, timeout=120): the result of
    booting the session's guest image with that command line, booted once
    per test run (across xdist workers too).

    Only for tests that read the result: the same BootResult (or, on
    another worker, a copy of it) goes to every test that asks for the same
    configuration. Never for tests that kill, interrupt, echo or time a boot.
    """
    from minios_lab.guest.boot import boot
    cache: dict[tuple[str, int, float], "BootResult"] = {}

    def get(cmdline: str = "", memory_mb: int = 64,
            timeout: float = 120) -> "BootResult":
        key = (cmdline, memory_mb, timeout)
        if key not in cache:
            cache[key] = made_once(
                run_folder, f"boot {memory_mb} MiB {timeout:g} s: {cmdline}",
                lambda _: boot(cmdline, memory_mb=memory_mb, timeout=timeout,
                               build=False))
        return cache[key]
    return get


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
