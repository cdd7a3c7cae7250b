"""The minios-lab command line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import edit
from minios_lab import cli
from minios_lab.build.toolchain import Check


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minios_lab.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_doctor_reports_every_check_and_succeeds_here():
    proc = run("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("C compiler", "QEMU", "Xen hypervisor", "Xen headers"):
        assert name in proc.stdout


def test_doctor_fails_and_shows_fix_when_something_is_missing(monkeypatch, capsys):
    checks = [Check("QEMU", False, "not found", "apt-get install qemu-system-x86"),
              Check("C compiler", True, "gcc", "")]
    monkeypatch.setattr("minios_lab.build.toolchain.doctor", lambda: checks)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "MISSING QEMU" in out and "fix: apt-get install qemu-system-x86" in out


def test_boot_help_and_unknown_command():
    proc = run("boot", "--help")
    assert proc.returncode == 0 and "--memory" in proc.stdout
    with pytest.raises(SystemExit):
        cli.main(["no-such-command"])


def test_boot_command_boots_and_exits_zero():
    proc = run("boot", "--guest-only", "chapters=0", "who=cli")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "arg who = cli" in proc.stdout
    assert "RESULT: SUCCESS" in proc.stdout


def test_lab_listens_on_localhost_with_token_auth():
    cmd = cli.lab_command()
    assert "--ip=127.0.0.1" in cmd
    assert not any("token" in part or "password" in part for part in cmd)
    assert cmd[-1].endswith("--allow-root") == (__import__("os").geteuid() == 0)


def test_setup_fault_is_one_message_with_its_fix(monkeypatch, capsys):
    from minios_lab.errors import ToolchainError

    def broken_setup():
        raise ToolchainError("/x/sub is not a writable folder (Not a "
                             "directory). Fix: set MINIOS_LAB_CACHE to a "
                             "writable folder")
    monkeypatch.setattr("minios_lab.build.toolchain.setup", broken_setup)
    assert cli.main(["setup"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Fix: set MINIOS_LAB_CACHE" in err


def test_setup_builds_the_image_and_every_unit_once(monkeypatch):
    """So that the first notebook starts warm, as in the container image."""
    from minios_lab.build.units import UNITS
    built = []
    monkeypatch.setattr("minios_lab.build.toolchain.setup", lambda: {})
    monkeypatch.setattr("minios_lab.guest.dom0.prepare", lambda: None)
    monkeypatch.setattr(cli, "cmd_doctor", lambda args, look_for_newer=True: 0)
    monkeypatch.setattr("minios_lab.guest.boot.build_image",
                        lambda kernel_dir: built.append("image"))
    monkeypatch.setattr("minios_lab.build.units.load",
                        lambda name, kernel_dir=None: built.append(name))
    assert cli.main(["setup"]) == 0
    assert built == ["image", *UNITS]


def test_setup_is_not_stopped_by_a_learners_broken_c(cached_copy, capsys):
    """A kernel that does not compile is the notebooks' to report: setup
    (and so `make lab`) goes on, and says once where the first error is."""
    line = edit(cached_copy / "include" / "minios" / "console.h",
                "#include", "int broken(void) { return }\n#include")
    assert cli.warm_builds(cached_copy) is False
    err = capsys.readouterr().err
    assert err.count("minios-lab setup:") == 1, err
    assert "the guest image" in err and "libc" in err and "mm" in err
    assert f"include/minios/console.h:{line}" in err, err
    assert "error" in err and "notebook" in err


def test_doctor_with_broken_tools_reports_and_never_crashes(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {**__import__("os").environ, "CC": "/bin/true",
           "MINIOS_XEN": "/etc/hostname",
           "MINIOS_LAB_CACHE": str(blocker / "sub")}
    proc = subprocess.run([sys.executable, "-m", "minios_lab.cli", "doctor"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    for needle in ("MISSING C compiler", "MISSING Xen hypervisor",
                   "MISSING cache dir writable", "fix: unset MINIOS_XEN",
                   "fix: set MINIOS_LAB_CACHE"):
        assert needle in proc.stdout, proc.stdout


def test_cli_and_grader_worker_start_without_the_notebook_stack():
    """nbformat (with jsonschema's format checkers) takes about a second to
    import; the CLI and every grader worker, started once per crashed
    check, must not pay it. Only hand-outs of notebooks need it."""
    code = ("import sys, minios_lab.cli, minios_lab.classroom.runner, "
            "minios_lab.classroom.grading\n"
            "from minios_lab.classroom import checking\n"
            "checking.load_checks()\n"
            "print(sorted(m for m in ('nbformat', 'jsonschema', 'matplotlib')"
            " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
