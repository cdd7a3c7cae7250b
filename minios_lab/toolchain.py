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
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import ToolchainError

XEN_SERIES = "4.17"
HEADERS_PACKAGE = "libxen-dev"
HYPERVISOR_PACKAGE = f"xen-hypervisor-{XEN_SERIES}-amd64"
HYPERVISOR_NAME = f"xen-{XEN_SERIES}-amd64"
QEMU_NAME = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"
FORMATTER = "clang-format"
PYTHON_PACKAGES = {"cffi": "cffi", "matplotlib": "matplotlib",
                   "pyelftools": "elftools", "jupyterlab": "jupyterlab"}
SETUP_COMMAND = "minios-lab setup"


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


# --- the cache ---------------------------------------------------------------

def cache_dir() -> Path:
    """The kit's cache folder, created if missing."""
    env = os.environ.get("MINIOS_LAB_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache/minios-lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def xen_dir() -> Path:
    path = cache_dir() / f"xen-{XEN_SERIES}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock on <cache>/xen-4.17/<name>.lock."""
    with open(xen_dir() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is_root() -> bool:
    return os.geteuid() == 0


def _run(cmd: list[str],
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          check=False)


# --- fetching Debian packages without root -----------------------------------

def _give_to_apt(path: Path) -> None:
    """Let apt's sandbox user write into path (only possible as root)."""
    if not _is_root():
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
    proc = _run(["apt-get", "download", package], cwd=workdir)
    if proc.returncode != 0 and _is_root():
        _run(["apt-get", "update"])
        proc = _run(["apt-get", "download", package], cwd=workdir)
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not debs:
        hint = "" if _is_root() else " (if apt has no package lists yet: " \
            "sudo apt-get update)"
        raise ToolchainError(
            f"apt-get download {package} failed{hint}:\n"
            f"{proc.stdout}{proc.stderr}")
    return debs[0]


def _deb_version(deb: Path) -> str:
    proc = _run(["dpkg-deb", "-f", str(deb), "Version"])
    return proc.stdout.strip() or "unknown"


def _extract(deb: Path, dest: Path) -> None:
    proc = _run(["dpkg-deb", "-x", str(deb), str(dest)])
    if proc.returncode != 0:
        raise ToolchainError(f"dpkg-deb -x {deb.name} failed:\n{proc.stderr}")


def _record_version(package: str, version: str) -> None:
    """Note package=version in <cache>/xen-4.17/VERSION (under a lock)."""
    path = xen_dir() / "VERSION"
    with _locked("VERSION"):
        lines = path.read_text().splitlines() if path.exists() else []
        lines = [ln for ln in lines if not ln.startswith(package + " ")]
        lines.append(f"{package} {version}")
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(sorted(lines)) + "\n")
        os.replace(tmp, path)


def _fetch_package(package: str, dest: Path) -> str:
    """Download package and unpack it into dest; return its version."""
    with tempfile.TemporaryDirectory(prefix="minios-lab-apt-") as tmp:
        deb = _apt_download(package, Path(tmp))
        version = _deb_version(deb)
        _extract(deb, dest)
    _record_version(package, version)
    return version


# --- Xen headers and hypervisor ----------------------------------------------

def _headers_ok(include: Path) -> bool:
    return (include / "xen" / "xen.h").is_file()


def _fetch_headers(root: Path) -> None:
    """Unpack libxen-dev into a scratch dir, then rename it to root."""
    scratch = Path(tempfile.mkdtemp(prefix=".root-", dir=xen_dir()))
    try:
        _fetch_package(HEADERS_PACKAGE, scratch)
        if root.exists():
            shutil.rmtree(root)  # a broken earlier tree: xen.h is missing
        os.replace(scratch, root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def xen_include_dir(fetch: bool = True) -> Path:
    """Directory holding xen/xen.h: $MINIOS_XEN_INCLUDE, else the cache."""
    env = os.environ.get("MINIOS_XEN_INCLUDE")
    if env:
        path = Path(env).expanduser()
        if not _headers_ok(path):
            raise ToolchainError(f"MINIOS_XEN_INCLUDE={env}: no xen/xen.h")
        return path
    root = xen_dir() / "root"
    include = root / "usr" / "include"
    if _headers_ok(include):
        return include
    if not fetch:
        raise ToolchainError(f"Xen headers not in {include}; run: "
                             f"{SETUP_COMMAND}")
    with _locked("headers"):
        if not _headers_ok(include):
            _fetch_headers(root)
    return include


def _gunzip_hypervisor(unpacked: Path, target: Path) -> None:
    matches = sorted(unpacked.glob(f"boot/{HYPERVISOR_NAME}*.gz"))
    if not matches:
        raise ToolchainError(f"{HYPERVISOR_PACKAGE} holds no "
                             f"boot/{HYPERVISOR_NAME}.gz")
    tmp = target.with_name(target.name + ".tmp")
    with gzip.open(matches[0]) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(tmp, target)


def _fetch_hypervisor(target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=".hv-", dir=xen_dir()) as tmp:
        _fetch_package(HYPERVISOR_PACKAGE, Path(tmp))
        _gunzip_hypervisor(Path(tmp), target)


def xen_binary(fetch: bool = True) -> Path:
    """The gunzipped Xen 4.17 (a multiboot ELF): $MINIOS_XEN, else cache."""
    env = os.environ.get("MINIOS_XEN")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ToolchainError(f"MINIOS_XEN={env}: no such file")
        return path
    target = xen_dir() / HYPERVISOR_NAME
    if target.is_file():
        return target
    if not fetch:
        raise ToolchainError(f"Xen hypervisor not in {target}; run: "
                             f"{SETUP_COMMAND}")
    with _locked("hypervisor"):
        if not target.is_file():
            _fetch_hypervisor(target)
    return target


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
    if install and _is_root() and shutil.which("apt-get"):
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
    if _is_root() and shutil.which("apt-get") and _apt_install(FORMATTER):
        return _find_program("CLANG_FORMAT", FORMATTER)
    return None


def setup() -> dict[str, Path | None]:
    """Make sure every tool is present; fetch or install what is missing."""
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

def _check_compiler() -> Check:
    cc = os.environ.get("CC", "gcc")
    path = shutil.which(cc.split()[0]) if cc.strip() else None
    if not path:
        return Check("C compiler", False, f"{cc} not found",
                     _install_hint("gcc") + " (or set CC)")
    proc = _run([path, "--version"])
    first = proc.stdout.splitlines()[0] if proc.stdout else path
    return Check("C compiler", True, f"{cc}: {first}")


def _check_python_package(dist: str, module: str) -> Check:
    ok = importlib.util.find_spec(module) is not None
    detail = "importable" if ok else "not installed"
    return Check(f"Python package {dist}", ok, detail,
                 "" if ok else "pip install -e '.[test]'")


def _check_tool(name: str, find) -> Check:
    try:
        return Check(name, True, str(find()))
    except ToolchainError as err:
        return Check(name, False, str(err).splitlines()[0], SETUP_COMMAND)


def _check_qemu() -> Check:
    check = _check_tool("QEMU", lambda: qemu_binary(install=False))
    if not check.ok:
        check.fix = f"{_install_hint(QEMU_PACKAGE)} (or set MINIOS_QEMU)"
    return check


def _check_formatter() -> Check:
    path = formatter()
    if path:
        return Check(FORMATTER, True, str(path), optional=True)
    return Check(FORMATTER, False, "not found (optional: make format)",
                 _install_hint(FORMATTER), optional=True)


def _check_cache() -> Check:
    try:
        path = cache_dir()
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        return Check("cache dir writable", False, str(err),
                     "set MINIOS_LAB_CACHE to a writable folder")
    return Check("cache dir writable", True, str(path))


def doctor() -> list[Check]:
    """What is present, what is missing, and the command that fixes it."""
    checks = [_check_compiler()]
    checks += [_check_python_package(d, m) for d, m in PYTHON_PACKAGES.items()]
    checks += [
        _check_qemu(),
        _check_tool("Xen hypervisor", lambda: xen_binary(fetch=False)),
        _check_tool("Xen headers", lambda: xen_include_dir(fetch=False)),
        _check_formatter(),
        _check_cache(),
    ]
    return checks


if __name__ == "__main__":
    for tool, where in setup().items():
        print(f"{tool}: {where}")
