"""Build a Linux dom0 with Xen's toolstack from Debian's packages, no root.

To run the guest as an unprivileged domain (a domU), Xen needs a dom0 that
runs ``xenstored``, ``xenconsoled`` and ``xl``. The kit makes one from
Debian 12's own packages, fetched with ``apt-get download`` and unpacked
with ``dpkg-deb -x`` (:mod:`minios_lab.build.debfetch`, as for Xen itself),
into the cache::

    xen-4.17/dom0/stage-<key>/      what the initramfs is made of:
        vmlinux                     the dom0 kernel, uncompressed
        tree/                       toolstack, busybox, libraries, modules
        VERSIONS                    "package version", one line each
    xen-4.17/dom0/initrd-<key>.cpio the initramfs (newc cpio)

* The kernel: Debian's ``vmlinuz`` is a bzImage whose payload is xz; Xen
  unpacking it under QEMU's software emulation costs seconds, so the xz
  stream is found by its magic and unpacked here with :mod:`lzma` into the
  plain ELF ``vmlinux`` that Xen loads as is.
* The tree: the Xen programs the init script runs, busybox (the shell and
  every small command), the five Xen kernel modules, and the shared
  libraries the programs need, found by following each ELF's ``DT_NEEDED``
  entries (plus ``libgcc_s.so.1``, which glibc loads by hand for threads).
  Library symlinks are followed, so each library is one file under its
  soname. The tree is laid out merged-/usr (``/lib`` -> ``usr/lib``).
* The initramfs: a newc cpio (:mod:`minios_lab.guest.cpio`), with
  ``/dev/console`` as a device node (no root needed inside an archive)
  and ``/init``, the busybox script :data:`INIT_SCRIPT`.

Both are cached by their inputs: the stage by the package list and what is
taken from it; the initramfs by the stage's package versions, the init
script and the builder's own code (this file and the cpio writer). A
change to any of them makes a new file; an unchanged input reuses the old
one. Each is made in a scratch folder under a file lock and published by
one rename, so parallel boots neither corrupt nor duplicate the work. To
take newer Debian builds of the packages, remove ``<cache>/xen-4.17/dom0``:
the next domU boot fetches them again.

The guest (its image, ``domain_config`` and command line) is not part of
this initramfs: each boot appends a small second archive of its own
(:func:`guest_archive`); Linux unpacks concatenated archives in order.
"""
from __future__ import annotations

import hashlib
import io
import lzma
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from minios_lab.build import debfetch
from minios_lab.build.toolcheck import cache_faults
from minios_lab.errors import ToolchainError
from minios_lab.guest.cpio import CpioWriter, add_tree

KERNEL_META = "linux-image-amd64"    # depends on today's linux-image-6.1.*
XEN_LIBEXEC = "usr/lib/xen-4.17/bin"
XEN_PROGRAMS = ("xl", "xenstored", "xenconsoled", "xenconsole",
                "xen-init-dom0")
XENSTORE_PROGRAM = "usr/bin/xenstore"      # multi-call: xenstore-exists...
XENSTORE_LINKS = ("xenstore-exists", "xenstore-read", "xenstore-ls")
BUSYBOX = "bin/busybox"
XEN_MODULES = ("xen-privcmd", "xenfs", "xen-evtchn", "xen-gntdev",
               "xen-gntalloc")                # insmod order: xenfs needs
                                              # xen-privcmd
PACKAGES = ("xen-utils-4.17", "xenstore-utils", "busybox-static",
            "libxencall1", "libxenevtchn1", "libxenforeignmemory1",
            "libxengnttab1", "libxenmisc4.17", "libxenstore4",
            "libxentoollog1", "libxentoolcore1", "libxendevicemodel1",
            "libxenhypfs1", "libyajl2", "libc6", "liblzma5", "libzstd1",
            "zlib1g", "libuuid1", "libgcc-s1")
EXTRA_LIBS = ("libgcc_s.so.1",)            # dlopen()ed by glibc
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu",
            "usr/lib/xen-4.17/lib")
LOADER = "lib64/ld-linux-x86-64.so.2"
XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"

# The dom0's /init (busybox sh). Its own lines start with "dom0:"; the
# guest's console, as `xl create -c` shows it, is copied line by line with
# GUEST_MARK in front, so the harness can tell the two apart on the one
# serial line. The guest's files are in /kernel (guest_archive()).
GUEST_MARK = "domU| "
# How the boot shows the dom0's own lines (minios_lab.guest.domu).
DOM0_PREFIX = "(dom0) "
XL_CONF = ("# minios-lab dom0: dom0_mem is fixed (max:), nothing to "
           "balloon\nautoballoon=\"off\"\n")
MOUNT_POINTS = ("dev", "proc", "sys", "run", "tmp", "var")
INIT_SCRIPT = r"""#!/bin/busybox sh
# minios-lab dom0: start Xen's toolstack, run the guest with
# `xl create -c domain_config`, print xl's account of its end, power off.
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs run /run
# xenconsole needs /var/lock (without it xl never unpauses the domain);
# xl needs /var/run/xen to destroy a domain.
mkdir -p /var/lock /var/run/xen /var/log/xen /var/lib/xen /var/lib/xenstored
for m in MODULES; do
    insmod /lib/modules/xen/$m.ko || echo "dom0: insmod $m failed"
done
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /var/run/xenstored.pid
n=0
until xenstore-exists / 2>/dev/null; do
    n=$((n + 1))
    [ $n -gt 100 ] && echo "dom0: xenstored did not start" && break
    sleep 0.1
done
xen-init-dom0 >/dev/null || echo "dom0: xen-init-dom0 failed"
xenconsoled --log=none
echo "dom0: toolstack ready"
cd /kernel
extra=$(cat extra)
{ xl create -c domain_config "extra=\"$extra\"" "memory=$(cat memory)"
  echo $? > /run/xl.status; } | while IFS= read -r line || [ -n "$line" ]; do
    printf 'MARK%s\n' "$line"
done
echo "dom0: xl create exited with status $(cat /run/xl.status)"
# xl's daemon writes the domain's end to its log; wait until it is done.
n=0
while pidof xl >/dev/null && [ $n -lt 50 ]; do n=$((n + 1)); sleep 0.1; done
for log in /var/log/xen/xl-*.log; do
    [ -f "$log" ] && sed 's/^/dom0: xl: /' "$log"
done
echo "dom0: powering off"
echo o > /proc/sysrq-trigger
sleep 10
""".replace("MODULES", " ".join(XEN_MODULES)).replace("MARK", GUEST_MARK)


@dataclass
class Dom0:
    """A dom0 ready to boot: kernel, initramfs, package versions."""

    vmlinux: Path
    initramfs: Path
    versions: dict[str, str]


# --- the kernel --------------------------------------------------------------

def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The ELF kernel inside a bzImage whose payload is xz-compressed."""
    at = vmlinuz.find(XZ_MAGIC)
    while at >= 0:
        try:
            elf = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(
                vmlinuz[at:])
        except lzma.LZMAError:
            elf = b""
        if elf.startswith(ELF_MAGIC):
            return elf
        at = vmlinuz.find(XZ_MAGIC, at + 1)
    raise ToolchainError("the Debian kernel image holds no xz-compressed "
                         "ELF kernel (has Debian changed its compression?)")


# --- the stage: what the initramfs is made of --------------------------------

def _inside(root: Path, path: PurePosixPath, hops: int = 0) -> Path:
    """path (relative to root, or absolute meaning root) with every symlink
    followed inside root, never onto the host."""
    if hops > 40:
        raise ToolchainError(f"symlink loop at {path} in {root}")
    parts = [p for p in path.parts if p not in ("/", "")]
    here = root
    for i, part in enumerate(parts):
        step = here / part
        if step.is_symlink():
            target = PurePosixPath(os.readlink(step))
            rest = PurePosixPath(*parts[i + 1:]) if i + 1 < len(parts) \
                else PurePosixPath()
            base = PurePosixPath("/") if target.is_absolute() else \
                PurePosixPath(here.relative_to(root).as_posix())
            return _inside(root, base / target / rest, hops + 1)
        here = step
    return here


def _needed(elf: Path) -> list[str]:
    """The DT_NEEDED sonames of an ELF file."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as f:
        return [tag.needed for section in ELFFile(f).iter_sections()
                if isinstance(section, DynamicSection)
                for tag in section.iter_tags() if tag.entry.d_tag ==
                "DT_NEEDED"]


def _find_library(unpacked: Path, soname: str) -> Path:
    for folder in LIB_DIRS:
        found = _inside(unpacked, PurePosixPath(folder) / soname)
        if found.is_file():
            return found
    raise ToolchainError(f"{soname} is in none of the dom0 packages "
                         f"({', '.join(PACKAGES)}): add its package")


def _library_closure(unpacked: Path, programs: list[Path]) -> dict[str, Path]:
    """soname -> file, for everything the programs load."""
    found: dict[str, Path] = {}
    todo = [*EXTRA_LIBS]
    for program in programs:
        todo += _needed(program)
    while todo:
        soname = todo.pop()
        if soname in found:
            continue
        found[soname] = _find_library(unpacked, soname)
        todo += _needed(found[soname])
    return found


def _merged(path: str) -> str:
    """Debian paths in the merged-/usr layout of the initramfs."""
    for top in ("bin/", "sbin/", "lib/", "lib64/"):
        if path.startswith(top):
            return "usr/" + path
    return path


def _copy(src: Path, tree: Path, name: str, mode: int = 0o755) -> None:
    dest = tree / _merged(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def _select(unpacked: Path, kernel_version: str, tree: Path) -> None:
    """Copy what the dom0 runs from the unpacked packages into tree."""
    programs = [_inside(unpacked, PurePosixPath(XEN_LIBEXEC) / p)
                for p in XEN_PROGRAMS]
    programs.append(_inside(unpacked, PurePosixPath(XENSTORE_PROGRAM)))
    for program in programs:
        _copy(program, tree, program.relative_to(unpacked).as_posix())
    for link in XENSTORE_LINKS:
        (tree / "usr/bin" / link).symlink_to("xenstore")
    _copy(_inside(unpacked, PurePosixPath(BUSYBOX)), tree, BUSYBOX)
    for soname, path in _library_closure(unpacked, programs).items():
        _copy(path, tree, f"lib/x86_64-linux-gnu/{soname}")
    _copy(_inside(unpacked, PurePosixPath(LOADER)), tree, LOADER)
    drivers = unpacked / "lib/modules" / kernel_version / "kernel/drivers/xen"
    for module in XEN_MODULES:
        found = sorted(drivers.rglob(f"{module}.ko"))
        if not found:
            raise ToolchainError(f"{module}.ko not in the Debian kernel "
                                 f"{kernel_version}")
        _copy(found[0], tree, f"lib/modules/xen/{module}.ko", 0o644)
    for top in ("bin", "sbin", "lib", "lib64"):
        (tree / f"usr/{top}").mkdir(parents=True, exist_ok=True)
        (tree / top).symlink_to(f"usr/{top}")


def kernel_package() -> str:
    """The versioned kernel package linux-image-amd64 names today."""
    proc = debfetch.run(["apt-cache", "depends", KERNEL_META])
    for line in proc.stdout.splitlines():
        word = line.strip().split(":", 1)
        if word[0] == "Depends" and word[1].strip().startswith(
                "linux-image-"):
            return word[1].strip()
    raise ToolchainError(f"apt does not know {KERNEL_META}:"
                         f" {proc.stderr.strip()} (sudo apt-get update?)")


def _kernel_version(unpacked: Path) -> str:
    images = sorted((unpacked / "boot").glob("vmlinuz-*"))
    if not images:
        raise ToolchainError("the Debian kernel package holds no "
                             "boot/vmlinuz-*")
    return images[0].name[len("vmlinuz-"):]


def _build_stage(stage: Path, kernel: str) -> None:
    """Fetch every package, unpack, take what the dom0 needs into stage."""
    with tempfile.TemporaryDirectory(prefix=".unpack-",
                                     dir=stage.parent) as tmp:
        unpacked = Path(tmp)
        # record=False: the stage's VERSIONS keeps these versions, not
        # the Xen pieces' VERSION file that `doctor` checks against apt
        versions = {p: debfetch.fetch_package(p, unpacked, record=False)
                    for p in (kernel, *PACKAGES)}
        version = _kernel_version(unpacked)
        vmlinuz = (unpacked / "boot" / f"vmlinuz-{version}").read_bytes()
        (stage / "vmlinux").write_bytes(extract_vmlinux(vmlinuz))
        _select(unpacked, version, stage / "tree")
    (stage / "VERSIONS").write_text("".join(
        f"{p} {v}\n" for p, v in sorted(versions.items())))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def stage_key() -> str:
    """What the stage holds depends on these lists only (a new Debian
    build of a package does not change it)."""
    return _digest("stage 1", KERNEL_META, *PACKAGES, *XEN_PROGRAMS,
                   XENSTORE_PROGRAM, *XENSTORE_LINKS, BUSYBOX, *XEN_MODULES,
                   *EXTRA_LIBS, LOADER)


def dom0_dir() -> Path:
    path = debfetch.xen_dir() / "dom0"
    with cache_faults(path):
        path.mkdir(exist_ok=True)
    return path


def _stage_ok(stage: Path) -> bool:
    return (stage / "VERSIONS").is_file() and (stage / "vmlinux").is_file()


def stage(fetch: bool = True) -> Path:
    """The stage folder, fetched and built on first use."""
    folder = dom0_dir() / f"stage-{stage_key()}"
    if _stage_ok(folder):
        return folder
    if not fetch:
        raise ToolchainError(f"no dom0 in {folder}. Fix: minios-lab boot "
                             "--domu (fetches it)")
    with debfetch.locked("dom0"):
        if _stage_ok(folder):
            return folder
        print("minios-lab: fetching a Linux dom0 and Xen's tools for domU "
              "boots (once: about 70 MB in the cache)", file=sys.stderr,
              flush=True)
        kernel = kernel_package()
        with cache_faults(dom0_dir()):
            scratch = Path(tempfile.mkdtemp(prefix=".stage-",
                                            dir=dom0_dir()))
        try:
            with cache_faults(scratch):
                _build_stage(scratch, kernel)
                _publish_folder(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _publish_folder(scratch: Path, folder: Path) -> None:
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(scratch, folder)
    shutil.rmtree(old, ignore_errors=True)


def versions(stage_dir: Path) -> dict[str, str]:
    pairs = (line.split(" ", 1) for line in
             (stage_dir / "VERSIONS").read_text().splitlines() if " " in line)
    return {p: v.strip() for p, v in pairs}


# --- the initramfs -----------------------------------------------------------

def builder_source() -> str:
    """The builder's own code (this module and the cpio writer): a change
    to it makes a new initramfs."""
    from minios_lab.guest import cpio
    return Path(__file__).read_text() + Path(cpio.__file__).read_text()


def initramfs_key(stage_dir: Path, init_script: str = INIT_SCRIPT) -> str:
    return _digest("initramfs 1", (stage_dir / "VERSIONS").read_text(),
                   init_script, builder_source())


def build_initramfs(stage_dir: Path, out_dir: Path,
                    init_script: str = INIT_SCRIPT) -> Path:
    """initrd-<key>.cpio in out_dir from the stage's tree and the init
    script; made once per key (under a lock, published by a rename)."""
    target = out_dir / f"initrd-{initramfs_key(stage_dir, init_script)}.cpio"
    if target.is_file():
        return target
    with debfetch.locked("dom0-initrd"):
        if target.is_file():
            return target
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with cache_faults(tmp), open(tmp, "wb") as out:
                writer = CpioWriter(out)
                add_tree(writer, stage_dir / "tree")
                for folder in MOUNT_POINTS:
                    writer.directory(folder)
                writer.char_device("dev/console", 5, 1)   # for /init
                writer.file("init", init_script.encode(), executable=True)
                writer.directory("etc")
                writer.directory("etc/xen")
                writer.file("etc/xen/xl.conf", XL_CONF.encode())
                writer.close()
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def prepare(fetch: bool = True) -> Dom0:
    """The dom0 kernel and initramfs, fetched and built as needed."""
    stage_dir = stage(fetch)
    initrd = build_initramfs(stage_dir, dom0_dir())
    return Dom0(stage_dir / "vmlinux", initrd, versions(stage_dir))


def guest_archive(out: io.BufferedIOBase, image: Path, domain_config: str,
                  cmdline: str, memory_mb: int) -> None:
    """The per-boot archive: /kernel/build/minios.elf, /kernel/domain_config
    /kernel/extra (the guest's command line) and /kernel/memory (MiB), laid
    out as in the
    repository, so that `cd /kernel; xl create -c domain_config` finds
    the image as `kernel = "build/minios.elf"` says."""
    writer = CpioWriter(out)
    writer.directory("kernel")
    writer.directory("kernel/build")
    writer.file("kernel/build/minios.elf", image.read_bytes())
    writer.file("kernel/domain_config", domain_config.encode())
    writer.file("kernel/extra", cmdline.encode())
    writer.file("kernel/memory", f"{memory_mb}".encode())
    writer.close()


def boot_initramfs(dom0: Dom0, image: Path, domain_config: str,
                   cmdline: str, memory_mb: int, folder: Path) -> Path:
    """dom0's initramfs with the guest's archive after it, in folder."""
    path = folder / "initrd.cpio"
    with open(path, "wb") as out:
        with open(dom0.initramfs, "rb") as base:
            shutil.copyfileobj(base, out)
        guest_archive(out, image, domain_config, cmdline, memory_mb)
    return path
