"""The `minios-lab` command line: doctor, setup, build, boot, lab, test,
assignment, start, grade, progress, tasks."""
from __future__ import annotations

import minios_lab

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO_DIR = minios_lab.REPO_DIR


def cmd_doctor(args: argparse.Namespace, look_for_newer: bool = True) -> int:
    """Print every check, and the one fix for each that failed."""
    from minios_lab.build import toolchain
    try:
        checks = toolchain.doctor(look_for_newer=look_for_newer)
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
    """Fetch what is missing; a fault is one message with its fix. The
    dom0 for domU boots (Debian's Linux and Xen's tools, built into an
    initramfs) is fetched once, then cached. Last, the guest image and
    every host unit are built, so the first notebook starts warm."""
    from minios_lab.errors import ToolchainError
    from minios_lab.build.toolchain import setup
    from minios_lab.guest import dom0
    try:
        setup()
        dom0.prepare()
        warm_builds(minios_lab.KERNEL_DIR)
    except ToolchainError as err:
        print(f"minios-lab setup: {err}", file=sys.stderr)
        return 1
    # setup() has just fetched any newer Xen build apt offers: asking apt
    # again would cost its two lookups (0.8 s here) and say nothing new
    return cmd_doctor(args, look_for_newer=False)


def warm_builds(kernel_dir: Path) -> bool:
    """Build the guest image and every host unit (once: both are cached).
    A learner's C that does not compile is the notebooks' to show: this
    says where the first error is and returns False, never raises."""
    from minios_lab.build import units
    from minios_lab.classroom.trees import compiler_error
    from minios_lab.errors import CompileError
    from minios_lab.guest import boot
    failed, first = [], ""
    try:
        boot.build_image(kernel_dir)
    except boot.BuildError as err:
        failed, (first, _) = ["the guest image"], compiler_error(str(err))
    for name in units.UNITS:
        try:
            units.load(name, kernel_dir=kernel_dir)
        except CompileError as err:
            failed.append(name)
            first = first or compiler_error(err.diagnostics)[0]
    if failed:
        print(f"minios-lab setup: not built now (a notebook or test builds "
              f"them when it needs them, and shows the whole error): "
              f"{', '.join(failed)}. The first error: {first}",
              file=sys.stderr)
    return not failed


def cmd_build(args: argparse.Namespace) -> int:
    from minios_lab.guest.boot import build_image
    print(build_image())
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    from minios_lab.guest.boot import main_boot
    return main_boot(args.rest)


def cmd_debug(args: argparse.Namespace) -> int:
    from minios_lab.guest.live.debug import main as main_debug
    return main_debug(args.rest)


def lab_command() -> list[str]:
    """JupyterLab on localhost only, token authentication left on."""
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter), "lab", "--ip=127.0.0.1",
           f"--notebook-dir={REPO_DIR / 'notebooks'}",
           # open on the first chapter, not the Launcher
           "--LabApp.default_url=/lab/tree/00-welcome.ipynb",
           # overrides.json there: no "Jupyter news?" pop-up, no update check
           f"--LabApp.app_settings_dir={Path(__file__).parent / 'notebook' / 'jupyterlab'}"]
    if os.geteuid() == 0:  # Jupyter refuses root unless told
        cmd.append("--allow-root")
    return cmd


def cmd_lab(args: argparse.Namespace) -> int:
    return subprocess.call(lab_command())


def cmd_assignment(args: argparse.Namespace) -> int:
    from minios_lab.classroom.handout import make_assignment
    chapters = args.chapters.split(",") if args.chapters else None
    removed = make_assignment(Path(args.out_dir), chapters)
    print(f"wrote a student hand-out to {args.out_dir}: "
          f"{len(removed)} exercise regions stubbed")
    for region in removed:
        print(f"  {region.file}:{region.first_line}  {region.region_id} "
              f"in {region.function}()")
    left_out = Path(args.out_dir) / "LEFT-OUT.txt"
    if left_out.exists():
        print(left_out.read_text().rstrip())
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from minios_lab.classroom.handout import make_assignment
    from minios_lab.classroom.tasks import start_message
    out = Path(args.out_dir)
    removed = make_assignment(out)
    print(start_message(out, len(removed)))
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C: workers stopped, temporary trees gone."""
    import signal

    def stop(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)


def cmd_grade(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    if args.students:
        from minios_lab.classroom.gradebook import grade_many
        return grade_many([Path(d) for d in args.students],
                          Path(args.out or "grades"), jobs=args.jobs,
                          chapter=args.chapter, limit=args.limit,
                          student_timeout=args.student_timeout)
    from minios_lab.classroom.grading import default_tree, grade
    student = Path(args.student) if args.student else default_tree()
    try:
        report = grade(student, args.chapter, region=args.region,
                       limit=args.limit)
    except ValueError as err:          # an unknown chapter or region
        print(f"minios-lab grade: {err}", file=sys.stderr)
        return 2
    if args.student_id:
        report.student = args.student_id
    print(report.text())
    if args.json:
        data = report.to_gradescope() if args.format == "gradescope" \
            else report.to_json()
        Path(args.json).write_text(data + "\n")
    return 0 if report.earned == report.total else 1


def cmd_progress(args: argparse.Namespace) -> int:
    from minios_lab.classroom.grading import progress, progress_text
    repo = Path(args.repo) if args.repo else None
    print(progress_text(progress(repo)))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from minios_lab.classroom.tasks import tasks, tasks_json, tasks_text
    chosen = tasks(args.chapter)
    print(tasks_json(chosen) if args.json else tasks_text(chosen))
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    return subprocess.call(["make", "-C", str(REPO_DIR), "test"],
                           env=os.environ.copy())


def _grade_parser(sub) -> None:
    from minios_lab.classroom.grading import DEFAULT_LIMIT
    grade = sub.add_parser(
        "grade", help="grade a student's tree with this kit's own checks")
    grade.add_argument("--student", default=None,
                       help="the student's tree (default: the one you are in)")
    grade.add_argument("--student-id", help="name in the JSON (default: "
                       "the folder's name)")
    grade.add_argument("--chapter", help="grade one chapter, e.g. 03")
    grade.add_argument("--region", help="grade one exercise region; exit "
                       "status 0 only if it earns all its points")
    grade.add_argument("--json", help="also write the result as JSON here")
    grade.add_argument("--format", choices=("minios-lab", "gradescope"),
                       default="minios-lab", help="shape of the --json file")
    grade.add_argument("--limit", type=float, default=DEFAULT_LIMIT,
                       help="seconds a check may run (builds and boots "
                       "have their own limits)")
    grade.add_argument("--students", nargs="+", metavar="DIR",
                       help="grade many trees in parallel (batch)")
    grade.add_argument("--jobs", type=int, default=None,
                       help="batch: students graded at once (default: cores)")
    grade.add_argument("--out", help="batch: folder for the JSON files and "
                       "gradebook.csv (default: grades)")
    grade.add_argument("--student-timeout", type=float, default=900.0,
                       help="batch: seconds for one student at most")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["boot"]:  # boot has options of its own (boot --help)
        from minios_lab.guest.boot import main_boot
        return main_boot(argv[1:])
    if argv[:1] == ["debug"]:  # debug too (-ex CMD, debug --help)
        from minios_lab.guest.live.debug import main as main_debug
        return main_debug(argv[1:])
    parser = argparse.ArgumentParser(prog="minios-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="what is present, what is missing, the fix")
    sub.add_parser("setup", help="fetch QEMU, Xen, Xen's headers and the "
                   "domU's dom0")
    sub.add_parser("build", help="build the guest image kernel/build/minios.elf")
    boot = sub.add_parser("boot", help="build and boot the guest on Xen in QEMU")
    boot.add_argument("rest", nargs=argparse.REMAINDER,
                      help="options of the boot command (see boot --help)")
    debug = sub.add_parser(
        "debug", help="gdb on the guest running on Xen in QEMU")
    debug.add_argument("rest", nargs=argparse.REMAINDER,
                       help="options of the debug command (see debug --help)")
    sub.add_parser("lab", help="start JupyterLab on notebooks/")
    sub.add_parser("test", help="run every test (make test)")
    assignment = sub.add_parser(
        "assignment", help="write a student hand-out without the solutions")
    assignment.add_argument("out_dir")
    assignment.add_argument("--chapters", help="e.g. 03,05 (default: all)")
    start = sub.add_parser(
        "start", help="learning alone: your own copy of the course, "
        "answers taken out, and what to do next")
    start.add_argument("out_dir", nargs="?", default="../my-minios-lab")
    _grade_parser(sub)
    prog = sub.add_parser("progress", help="which chapters pass in a tree")
    prog.add_argument("repo", nargs="?", default=None,
                      help="a kit tree (default: the one you are in)")
    tasks = sub.add_parser("tasks", help="the exercises: what to write, "
                           "difficulty, points")
    tasks.add_argument("--chapter", help="one chapter, e.g. 03")
    tasks.add_argument("--json", action="store_true", help="as JSON")
    args = parser.parse_args(argv)
    handler = {"doctor": cmd_doctor, "setup": cmd_setup, "build": cmd_build,
               "boot": cmd_boot, "debug": cmd_debug, "lab": cmd_lab, "test": cmd_test,
               "assignment": cmd_assignment, "grade": cmd_grade,
               "progress": cmd_progress, "start": cmd_start,
               "tasks": cmd_tasks}
    return handler[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
