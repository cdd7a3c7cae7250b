"""Find, and on first use fetch, the tools the kit needs.

Everything fetched lands in one cache folder, ``$MINIOS_LAB_CACHE``
(default ``~/.cache/minios-lab``)::

    xen-4.17/root/usr/include/xen/...   Xen's public headers (libxen-dev)
    xen-4.17/xen-4.17-amd64            the hypervisor, gunzipped
    xen-4.17/VERSION                   which Debian versions were fetched

The Xen parts need no root: ``apt-get download`` fetches the Debian package
into a scratch directory and ``dpkg-deb -x`` unpacks it. Each fetch holds a
file lock and publishes its result with an atomic rename, so two processes
fetching at once (parallel tests, two notebooks) neither corrupt nor
duplicate the work. QEMU and clang-format are system packages: installed
with apt-get when running as root, otherwise the error says the command.

Every tool can be overridden by an environment variable: ``MINIOS_QEMU``,
``MINIOS_XEN``, ``MINIOS_XEN_INCLUDE``, ``CC``.

The Xen build is chosen deliberately: as root, apt's lists are refreshed
before a fetch when they are older than a day, so the newest 4.17 build
Debian has is taken, and ``setup()`` replaces a cached build when a newer
one is available. :func:`xen_versions` says which Debian versions are in
use; ``minios-lab doctor`` shows them. Every fault (a missing or broken
tool, an unwritable cache, a full disk) is a ``ToolchainError`` naming the
cause and its fix (see :mod:`minios_lab.build.toolcheck`).
"""
from __future__ import annotations

import minios_lab

import gzip
import importlib.util
import os
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minios_lab.build import cache, sysdeps
from minios_lab.build.debfetch import (SETUP_COMMAND, XEN_SERIES, cache_dir, candidate,
                       fetch_package, is_root, locked, record_version,
                       recorded_versions, run, xen_dir)
from minios_lab.errors import ToolchainError
from minios_lab.build.toolcheck import (cache_faults, check_compiler, compiler,
                        python_include_dir, writable_dir, xen_image_problem)

__all__ = ["cache_dir", "check_compiler", "compiler", "doctor",
           "formatter", "newer_xen_build", "python_include_dir",
           "qemu_binary", "record_version", "setup", "xen_binary",
           "xen_include_dir", "xen_versions"]

KERNEL_BUILD = minios_lab.KERNEL_DIR / "build"
HEADERS_PACKAGE = "libxen-dev"
HYPERVISOR_PACKAGE = f"xen-hypervisor-{XEN_SERIES}-amd64"
HYPERVISOR_NAME = f"xen-{XEN_SERIES}-amd64"
QEMU_NAME = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"
FORMATTER = "clang-format"
PYTHON_PACKAGES = {"cffi": "cffi", "matplotlib": "matplotlib",
                   "pyelftools": "elftools", "jupyterlab": "jupyterlab",
                   "pygdbmi": "pygdbmi"}


@dataclass
class Check:
    """One line of ``minios-lab doctor``.

    ``fix`` is the one command (or setting) that makes ``ok`` true;
    ``optional`` checks are worth a warning, not a failure.
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False


def xen_versions() -> dict[str, str]:
    """Which Xen build is in use: Debian package name -> version.

    ``{"xen-hypervisor-4.17-amd64": "4.17.5+72-g01140da4e8-1",
    "libxen-dev": "..."}`` as fetched into the cache (from its ``VERSION``
    file); a part overridden by ``MINIOS_XEN``/``MINIOS_XEN_INCLUDE`` says
    so instead, and a part not fetched yet is absent.
    """
    versions = recorded_versions()
    for package, env in ((HYPERVISOR_PACKAGE, "MINIOS_XEN"),
                         (HEADERS_PACKAGE, "MINIOS_XEN_INCLUDE")):
        if os.environ.get(env):
            versions[package] = f"{env}={os.environ[env]}"
    return {p: versions[p] for p in (HYPERVISOR_PACKAGE, HEADERS_PACKAGE)
            if p in versions}


# --- Xen headers and hypervisor ----------------------------------------------

def _headers_ok(include: Path) -> bool:
    return (include / "xen" / "xen.h").is_file()


def _fetch_headers(root: Path) -> None:
    """Unpack libxen-dev into a scratch dir, then rename it to root."""
    with cache_faults(xen_dir()):
        scratch = Path(tempfile.mkdtemp(prefix=".root-", dir=xen_dir()))
    try:
        fetch_package(HEADERS_PACKAGE, scratch)
        old = scratch.with_name(scratch.name + ".old")
        with cache_faults(root):
            if root.exists():   # broken (no xen.h) or an older build:
                os.replace(root, old)   # out of the way in one rename
            os.replace(scratch, root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(scratch.with_name(scratch.name + ".old"),
                      ignore_errors=True)


def xen_include_dir(fetch: bool = True) -> Path:
    """Directory holding xen/xen.h: $MINIOS_XEN_INCLUDE, else the cache."""
    env = os.environ.get("MINIOS_XEN_INCLUDE")
    if env:
        path = Path(env).expanduser()
        if not _headers_ok(path):
            raise ToolchainError(f"MINIOS_XEN_INCLUDE={env}: no xen/xen.h. "
                                 "Fix: unset MINIOS_XEN_INCLUDE, or point "
                                 "it at the folder holding xen/xen.h")
        return path
    root = xen_dir() / "root"
    include = root / "usr" / "include"
    if _headers_ok(include):
        return include
    if not fetch:
        raise ToolchainError(f"Xen headers not in {include}. Fix: "
                             f"{SETUP_COMMAND}")
    with locked("headers"):
        if not _headers_ok(include):
            _fetch_headers(root)
    return include


def _gunzip_hypervisor(unpacked: Path, target: Path) -> None:
    matches = sorted(unpacked.glob(f"boot/{HYPERVISOR_NAME}*.gz"))
    if not matches:
        raise ToolchainError(f"{HYPERVISOR_PACKAGE} holds no "
                             f"boot/{HYPERVISOR_NAME}.gz")
    tmp = target.with_name(target.name + ".tmp")
    try:
        with gzip.open(matches[0]) as src, cache_faults(tmp), \
                open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (gzip.BadGzipFile, EOFError) as err:
        tmp.unlink(missing_ok=True)
        raise ToolchainError(f"{matches[0].name} in {HYPERVISOR_PACKAGE} is "
                             f"not a valid gzip file ({err}); run "
                             f"{SETUP_COMMAND} again") from err
    except ToolchainError:
        tmp.unlink(missing_ok=True)
        raise
    problem = xen_image_problem(tmp)
    if problem:
        tmp.unlink(missing_ok=True)
        raise ToolchainError(f"{HYPERVISOR_PACKAGE}: {problem}")
    with cache_faults(target):
        os.replace(tmp, target)


def _fetch_hypervisor(target: Path) -> None:
    with cache_faults(xen_dir()), \
            tempfile.TemporaryDirectory(prefix=".hv-", dir=xen_dir()) as tmp:
        fetch_package(HYPERVISOR_PACKAGE, Path(tmp))
        _gunzip_hypervisor(Path(tmp), target)


def xen_binary(fetch: bool = True) -> Path:
    """The gunzipped Xen 4.17 (a multiboot ELF): $MINIOS_XEN, else cache."""
    env = os.environ.get("MINIOS_XEN")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ToolchainError(f"MINIOS_XEN={env}: no such file. Fix: "
                                 "unset MINIOS_XEN, or point it at a "
                                 "gunzipped Xen 4.17 hypervisor")
        problem = xen_image_problem(path)
        if problem:
            raise ToolchainError(f"MINIOS_XEN={env}: {problem}. Fix: unset "
                                 "MINIOS_XEN, or point it at a gunzipped "
                                 "Xen 4.17 hypervisor (boot/xen-*.gz)")
        return path
    target = xen_dir() / HYPERVISOR_NAME
    if target.is_file():
        problem = xen_image_problem(target)
        if problem is None:
            return target
        if not fetch:
            raise ToolchainError(f"the cached Xen is broken: {problem}. "
                                 f"Fix: {SETUP_COMMAND}")
    if not fetch:
        raise ToolchainError(f"Xen hypervisor not in {target}. Fix: "
                             f"{SETUP_COMMAND}")
    with locked("hypervisor"):
        if not target.is_file() or xen_image_problem(target):
            _fetch_hypervisor(target)
    return target


def newer_xen_build() -> dict[str, str]:
    """package -> a newer version than the cached one that apt offers."""
    newer = {}
    for package, version in recorded_versions().items():
        offered = candidate(package)
        if offered and offered != version and run(
                ["dpkg", "--compare-versions", offered, "gt",
                 version]).returncode == 0:
            newer[package] = offered
    return newer


def _refresh_xen() -> None:
    """Replace cached Xen parts by the newest 4.17 build apt offers."""
    if os.environ.get("MINIOS_XEN") and os.environ.get("MINIOS_XEN_INCLUDE"):
        return
    sysdeps.update_lists_if_stale([HYPERVISOR_PACKAGE, HEADERS_PACKAGE])
    newer = newer_xen_build()
    if HYPERVISOR_PACKAGE in newer and not os.environ.get("MINIOS_XEN"):
        with locked("hypervisor"):
            _fetch_hypervisor(xen_dir() / HYPERVISOR_NAME)
    if HEADERS_PACKAGE in newer and not os.environ.get("MINIOS_XEN_INCLUDE"):
        with locked("headers"):
            _fetch_headers(xen_dir() / "root")


# --- system packages: QEMU, clang-format -------------------------------------

def _apt(args: list[str]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", *args], capture_output=True, text=True,
                          env=env, check=False)
    return proc.returncode == 0


def _apt_install(package: str) -> bool:
    """apt-get install package (root only); update lists and retry once."""
    install = ["install", "-y", "--no-install-recommends", package]
    if _apt(install):
        return True
    _apt(["update"])
    return _apt(install)


def _install_hint(package: str) -> str:
    return f"sudo apt-get install -y --no-install-recommends {package}"


def _find_program(env_var: str, default: str) -> Path | None:
    name = os.environ.get(env_var) or default
    found = shutil.which(name)
    return Path(found) if found else None


def qemu_binary(install: bool = True) -> Path:
    """qemu-system-x86_64: $MINIOS_QEMU, else PATH (apt-installed if root)."""
    found = _find_program("MINIOS_QEMU", QEMU_NAME)
    if found:
        return found
    if os.environ.get("MINIOS_QEMU"):
        raise ToolchainError(f"MINIOS_QEMU={os.environ['MINIOS_QEMU']}: "
                             "not found or not executable")
    if install and is_root() and shutil.which("apt-get"):
        _apt_install(QEMU_PACKAGE)
        found = _find_program("MINIOS_QEMU", QEMU_NAME)
        if found:
            return found
    raise ToolchainError(f"{QEMU_NAME} not found. Install it with: "
                         f"{_install_hint(QEMU_PACKAGE)} (or set MINIOS_QEMU)")


def formatter(install: bool = False) -> Path | None:
    """clang-format, or None (it is optional: only `make format` needs it)."""
    found = _find_program("CLANG_FORMAT", FORMATTER)
    if found or not install:
        return found
    if is_root() and shutil.which("apt-get") and _apt_install(FORMATTER):
        return _find_program("CLANG_FORMAT", FORMATTER)
    return None


def setup(refresh: bool = True) -> dict[str, Path | None]:
    """Make sure every tool is present; fetch or install what is missing.

    With refresh (and apt), a cached Xen build older than the newest 4.17
    build apt offers (lists refreshed first when root) is replaced.
    """
    if refresh and shutil.which("apt-get"):
        _refresh_xen()
    tools: dict[str, Path | None] = {
        "xen_include": xen_include_dir(),
        "xen": xen_binary(),
        "qemu": qemu_binary(),
        "clang-format": formatter(install=True),
    }
    if tools["clang-format"] is None:
        warnings.warn(f"{FORMATTER} not found: `make -C kernel format` will "
                      f"not work. Install it with: {_install_hint(FORMATTER)}")
    return tools


# --- doctor ------------------------------------------------------------------

def _check(name: str, probe: Callable[[], str], fix: str = "",
           optional: bool = False) -> Check:
    """Run one probe; any failure (never a crash) becomes a failed Check."""
    try:
        return Check(name, True, probe(), optional=optional)
    except ToolchainError as err:
        text = str(err)
        cause, _, said_fix = text.partition(" Fix: ")
        return Check(name, False, cause.strip(), fix or said_fix.strip() or
                     SETUP_COMMAND, optional=optional)
    except Exception as err:  # doctor reports; it must not crash
        return Check(name, False, f"{type(err).__name__}: {err}",
                     fix or SETUP_COMMAND, optional=optional)


def _compiler_probe() -> str:
    path = check_compiler()
    first = run([path, "--version"]).stdout.partition("\n")[0]
    return f"{compiler()}: {first or path} (compiles C)"


def _python_package_probe(module: str) -> Callable[[], str]:
    def probe() -> str:
        if importlib.util.find_spec(module) is None:
            raise ToolchainError("not installed")
        return "importable"
    return probe


def _xen_probe(look_for_newer: bool) -> str:
    path = xen_binary(fetch=False)
    version = xen_versions().get(HYPERVISOR_PACKAGE, "version not recorded")
    newer = newer_xen_build().get(HYPERVISOR_PACKAGE) if look_for_newer \
        else None
    note = f"; newer build {newer} available: {SETUP_COMMAND}" if newer \
        else ""
    return f"{path} (Debian {version}, multiboot ELF){note}"


def _headers_probe() -> str:
    path = xen_include_dir(fetch=False)
    version = xen_versions().get(HEADERS_PACKAGE, "version not recorded")
    return f"{path} (Debian {version})"


def _program_probe(name: str, find: Callable[[], Path | None],
                   package: str) -> Callable[[], str]:
    def probe() -> str:
        path = find()
        if path is None:
            raise ToolchainError(f"{name} not found. Fix: "
                                 f"{_install_hint(package)}")
        return str(path)
    return probe


def doctor(look_for_newer: bool = False) -> list[Check]:
    """What the build needs, what is missing, the one fix for each.

    Never raises: every probe's failure is reported as a failed Check.
    look_for_newer also asks apt whether a newer Xen build is offered
    (a few seconds: `minios-lab doctor` does, notebooks do not).
    """
    pip_fix = "make setup (or .venv/bin/pip install -e '.[test]')"
    checks = [
        _check("C compiler", _compiler_probe),
        _check("Python headers", lambda: str(python_include_dir())),
        _check("cache dir writable", lambda: str(writable_dir(cache_dir()))),
        _check("build cache", lambda: cache.usage(cache_dir() / "cbuild")),
        _check("guest build dir writable", lambda: str(writable_dir(
            KERNEL_BUILD, "make the repository writable (chown/chmod), or "
            "work in a copy you own"))),
    ]
    checks += [_check(f"Python package {dist}", _python_package_probe(mod),
                      pip_fix) for dist, mod in PYTHON_PACKAGES.items()]
    checks += [
        _check("QEMU", lambda: str(qemu_binary(install=False)),
               f"{_install_hint(QEMU_PACKAGE)} (or set MINIOS_QEMU)"),
        _check("Xen hypervisor", lambda: _xen_probe(look_for_newer)),
        _check("Xen headers", _headers_probe),
        _check("gdb", _program_probe("gdb", lambda: _find_program(
            "MINIOS_GDB", "gdb"), "gdb"), optional=True),
        _check(FORMATTER, _program_probe(FORMATTER, formatter, FORMATTER),
               optional=True),
    ]
    return checks


if __name__ == "__main__":
    for tool, where in setup().items():
        print(f"{tool}: {where}")
