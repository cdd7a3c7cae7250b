"""The host build cache stays bounded: least recently used entries go.

Every edit of a kernel file, by a learner or a grader's hand-out, adds a
built module to the cache. Without a limit an instructor's grading machine
fills its disk. These tests drive minios_lab.build.cache with small fake
entries; the last one builds real units in a child process.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from minios_lab.build import cache, toolchain
from minios_lab.errors import ToolchainError

KB = 1024
HOUR = 3600.0


def make_entry(folder: Path, name: str, size: int, age: float) -> Path:
    """A published entry as cache.published leaves it: the file, its
    record and its lock, last used `age` seconds ago."""
    target = folder / name
    target.write_bytes(b"x" * size)
    for path in (target, folder / f"{name}.json", folder / f"{name}.lock"):
        if not path.exists():
            path.write_text("{}")
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
    return target


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_least_recently_used_entries_go_until_under_the_limit(tmp_path):
    entries = [make_entry(tmp_path, f"_unit_{i}.so", 100 * KB,
                          age=(5 - i) * HOUR) for i in range(5)]
    removed = cache.sweep(tmp_path, limit=250 * KB)
    assert removed == [e.name for e in entries[:3]]     # oldest first
    assert names(tmp_path) == {f"{e.name}{s}" for e in entries[3:]
                               for s in ("", ".json", ".lock")}


def test_nothing_goes_while_under_the_limit(tmp_path):
    for i in range(3):
        make_entry(tmp_path, f"_unit_{i}.so", 10 * KB, age=HOUR)
    before = names(tmp_path)
    assert cache.sweep(tmp_path, limit=1024 * KB) == []
    assert names(tmp_path) == before


def test_a_recently_used_entry_stays_even_over_the_limit(tmp_path):
    old = make_entry(tmp_path, "_unit_old.so", 100 * KB, age=HOUR)
    new = make_entry(tmp_path, "_unit_new.so", 100 * KB, age=5.0)
    assert cache.sweep(tmp_path, limit=0) == [old.name]
    assert new.exists()


def test_an_entry_being_built_is_left_alone(tmp_path):
    busy = make_entry(tmp_path, "_unit_busy.so", 100 * KB, age=2 * HOUR)
    idle = make_entry(tmp_path, "_unit_idle.so", 100 * KB, age=HOUR)
    with open(f"{busy}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)       # as published() holds it
        assert cache.sweep(tmp_path, limit=0) == [idle.name]
    assert busy.exists()


def test_the_guard_runtime_and_the_protected_entry_stay(tmp_path):
    guard = make_entry(tmp_path, "libminios_guard_0123.so", 100 * KB,
                       age=9 * HOUR)
    fresh = make_entry(tmp_path, "_unit_fresh.so", 100 * KB, age=8 * HOUR)
    assert cache.sweep(tmp_path, limit=0, protect=fresh) == []
    assert guard.exists() and fresh.exists()


def test_leftovers_of_a_killed_build_go_when_old_under_any_limit(tmp_path):
    workdir = tmp_path / "_unit_0.so-abcd1234"       # mkdtemp of _publish
    workdir.mkdir()
    (workdir / "glue.o").write_bytes(b"x" * KB)
    partial = tmp_path / "cdef-0123.h.4242"          # half-written header
    partial.write_text("struct")
    young = tmp_path / "_unit_1.so-efgh5678"         # a build under way
    young.mkdir()
    for path in (workdir / "glue.o", workdir, partial):
        os.utime(path, (time.time() - HOUR, time.time() - HOUR))
    removed = cache.sweep(tmp_path, limit=1 << 30)      # far under it
    assert sorted(removed) == sorted([workdir.name, partial.name])
    assert names(tmp_path) == {young.name}


def test_a_hit_marks_the_entry_used(tmp_path):
    def builder(workdir: Path):
        built = workdir / "out"
        built.write_bytes(b"module")
        return built, []

    target = tmp_path / "_unit_0.so"
    cache.published(target, builder)
    old = time.time() - HOUR
    os.utime(f"{target}.json", (old, old))
    assert cache.published(target, builder).path == target
    assert time.time() - os.stat(f"{target}.json").st_mtime < 60


def test_publishing_over_the_limit_sweeps_the_oldest(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.LIMIT_ENV, "1")              # MiB
    old = make_entry(tmp_path, "_unit_old.so", 700 * KB, age=2 * HOUR)
    kept = make_entry(tmp_path, "_unit_kept.so", 200 * KB, age=HOUR)

    def builder(workdir: Path):
        built = workdir / "out"
        built.write_bytes(b"y" * 300 * KB)
        return built, []

    new = cache.published(tmp_path / "_unit_new.so", builder)
    assert not old.exists() and not Path(f"{old}.json").exists()
    assert kept.exists() and new.path.read_bytes() == b"y" * 300 * KB


@pytest.mark.parametrize("value", ["lots", "-5", "1.5", ""])
def test_a_bad_limit_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(cache.LIMIT_ENV, value)
    with pytest.raises(ToolchainError, match=cache.LIMIT_ENV):
        cache.limit_bytes()


def test_the_default_limit(monkeypatch):
    monkeypatch.delenv(cache.LIMIT_ENV, raising=False)
    assert cache.limit_bytes() == cache.DEFAULT_LIMIT_MB * 1024 * KB


def test_doctor_reports_the_cache_size_and_a_bad_limit(tmp_path,
                                                     monkeypatch):
    from minios_lab.build.toolchain import doctor
    monkeypatch.setenv("MINIOS_LAB_CACHE", str(tmp_path))
    (tmp_path / "cbuild").mkdir()
    make_entry(tmp_path / "cbuild", "_unit_0.so", 3 << 20, age=HOUR)
    monkeypatch.setenv(cache.LIMIT_ENV, "40")
    line = next(c for c in doctor() if c.name == "build cache")
    assert line.ok and line.detail.startswith("3 MiB of 40 MiB"), line
    monkeypatch.setenv(cache.LIMIT_ENV, "big")
    line = next(c for c in doctor() if c.name == "build cache")
    assert not line.ok and cache.LIMIT_ENV in line.detail
    assert "unset it" in line.fix


CHILD = """
import sys
from minios_lab.build import cbuild, units
lib = units.load(sys.argv[1])
print(sys.argv[1], "loaded", flush=True)
"""


def test_real_units_evicted_and_built_again(tmp_path):
    """In a cache limited to 0 MiB (only the entry just built and the guard
    runtime stay), loading a second unit evicts the first, last used an
    hour ago; loading the first again builds it again, and it loads."""
    env = {**os.environ, "MINIOS_LAB_CACHE": str(tmp_path),
           cache.LIMIT_ENV: "0",
           "MINIOS_XEN_INCLUDE": str(toolchain.xen_include_dir())}

    def load(unit: str) -> set[str]:
        proc = subprocess.run([sys.executable, "-c", CHILD, unit], env=env,
                              cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"{unit} loaded" in proc.stdout
        return {p.name for p in (tmp_path / "cbuild").glob("*.so")}

    first = load("console_ring")
    assert any(n.startswith("_minios_console_ring_") for n in first)
    for path in (tmp_path / "cbuild").iterdir():     # used an hour ago
        os.utime(path, (time.time() - HOUR, time.time() - HOUR))
    second = load("libc")
    assert any(n.startswith("_minios_libc_") for n in second)
    assert not any(n.startswith("_minios_console_ring_") for n in second)
    assert any(n.startswith("libminios_guard_") for n in second)
    third = load("console_ring")
    assert any(n.startswith("_minios_console_ring_") for n in third)
