"""The `minios-lab` command line: doctor, setup, build, boot, lab, test,
assignment, grade, progress."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print every check, and the one fix for each that failed."""
    from . import toolchain
    try:
        checks = toolchain.doctor(look_for_newer=True)
    except TypeError:   # a doctor without the option (tests replace it)
        checks = toolchain.doctor()
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = "ok     " if check.ok else \
            ("absent " if check.optional else "MISSING")
        print(f"{mark} {check.name:<{width}}  {check.detail}")
        if not check.ok and check.fix:
            print(f"{'':8}{'':<{width}}  fix: {check.fix}")
    return 0 if all(c.ok or c.optional for c in checks) else 1


def cmd_setup(args: argparse.Namespace) -> int:
    """Fetch what is missing; a fault is one message with its fix."""
    from .errors import ToolchainError
    from .toolchain import setup
    try:
        setup()
    except ToolchainError as err:
        print(f"minios-lab setup: {err}", file=sys.stderr)
        return 1
    return cmd_doctor(args)


def cmd_build(args: argparse.Namespace) -> int:
    from .boot import build_image
    print(build_image())
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    from .boot import main_boot
    return main_boot(args.rest)


def lab_command() -> list[str]:
    """JupyterLab on localhost only, token authentication left on."""
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter), "lab", "--ip=127.0.0.1",
           f"--notebook-dir={REPO_DIR / 'notebooks'}"]
    if os.geteuid() == 0:  # Jupyter refuses root unless told
        cmd.append("--allow-root")
    return cmd


def cmd_lab(args: argparse.Namespace) -> int:
    return subprocess.call(lab_command())


def cmd_assignment(args: argparse.Namespace) -> int:
    from .classroom import make_assignment
    chapters = args.chapters.split(",") if args.chapters else None
    removed = make_assignment(Path(args.out_dir), chapters)
    print(f"wrote a student hand-out to {args.out_dir}: "
          f"{len(removed)} exercise regions stubbed")
    for region in removed:
        print(f"  {region.file}:{region.first_line}  {region.region_id} "
              f"in {region.function}()")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .grading import grade
    report = grade(Path(args.student), args.chapter)
    print(report.text())
    if args.json:
        Path(args.json).write_text(report.to_json() + "\n")
    return 0 if report.earned == report.total else 1


def cmd_progress(args: argparse.Namespace) -> int:
    from .grading import progress, progress_text
    print(progress_text(progress(Path(args.repo))))
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    return subprocess.call(["make", "-C", str(REPO_DIR), "test"],
                           env=os.environ.copy())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["boot"]:  # boot has options of its own (boot --help)
        from .boot import main_boot
        return main_boot(argv[1:])
    parser = argparse.ArgumentParser(prog="minios-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="what is present, what is missing, the fix")
    sub.add_parser("setup", help="fetch QEMU, Xen and Xen's headers")
    sub.add_parser("build", help="build the guest image kernel/build/minios.elf")
    boot = sub.add_parser("boot", help="build and boot the guest on Xen in QEMU")
    boot.add_argument("rest", nargs=argparse.REMAINDER,
                      help="options of the boot command (see boot --help)")
    sub.add_parser("lab", help="start JupyterLab on notebooks/")
    sub.add_parser("test", help="run every test (make test)")
    assignment = sub.add_parser(
        "assignment", help="write a student hand-out without the solutions")
    assignment.add_argument("out_dir")
    assignment.add_argument("--chapters", help="e.g. 03,05 (default: all)")
    grade = sub.add_parser(
        "grade", help="grade a student's tree with this kit's own checks")
    grade.add_argument("--student", default=".",
                       help="the student's repository (default: here)")
    grade.add_argument("--chapter", help="grade one chapter, e.g. 03")
    grade.add_argument("--json", help="also write the result as JSON here")
    prog = sub.add_parser("progress", help="which chapters pass in a tree")
    prog.add_argument("repo", nargs="?", default=str(REPO_DIR))
    args = parser.parse_args(argv)
    handler = {"doctor": cmd_doctor, "setup": cmd_setup, "build": cmd_build,
               "boot": cmd_boot, "lab": cmd_lab, "test": cmd_test,
               "assignment": cmd_assignment, "grade": cmd_grade,
               "progress": cmd_progress}
    return handler[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
