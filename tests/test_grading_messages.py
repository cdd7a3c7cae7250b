"""What the grader shows when a check fails: the compiler's error rather
than make's chatter, the console lines around a missing line, the
student's own line numbers, the temporary tree's paths gone."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from minios_lab.classroom.trees import LineMap, compiler_error
from minios_lab.classroom.checking import CheckFailed, Context

MAKE_LOG = """\
make: Entering directory '/tmp/minios-grade-1-x/place/kernel'
gcc -O2 -ffreestanding -c start_of_day.c -o build/start_of_day.o
gcc -O2 -ffreestanding -c mm/xmalloc.c -o build/mm/xmalloc.o
mm/xmalloc.c: In function 'place':
mm/xmalloc.c:118:5: error: expected ';' before 'return'
  118 |     return at
      |     ^~~~~~
make: *** [Makefile:40: build/mm/xmalloc.o] Error 1
make: Leaving directory '/tmp/minios-grade-1-x/place/kernel'
"""


def test_a_failed_guest_build_shows_the_compilers_error():
    first, context = compiler_error(MAKE_LOG)
    assert first == "mm/xmalloc.c:118:5: error: expected ';' before 'return'"
    assert "  118 |     return at" in context
    assert not any("Entering directory" in line or line.startswith("gcc ")
                   for line in context)


def test_a_log_without_error_lines_shows_its_end():
    first, context = compiler_error("line 1\nline 2\nld: out of disk\n")
    assert first == "ld: out of disk" and context[-1] == "ld: out of disk"


def test_line_numbers_and_paths_are_the_students():
    tree = Path("/tmp/minios-grade-1-x/place/kernel")
    lines = LineMap(tree, "kernel/mm/xmalloc.c", shift=-4)
    message = lines(f"{tree}/mm/xmalloc.c:118:5: error: expected ';'")
    assert message == "kernel/mm/xmalloc.c:114:5: error: expected ';'"
    assert lines("  118 |     return at") == "  114 |     return at"
    assert lines("PANIC at kernel/mm/page_alloc.c:118: BUG") == \
        "PANIC at kernel/mm/page_alloc.c:118: BUG"     # another file: as is
    assert lines("xmalloc.c:118 in mm/xmalloc.c:118") == \
        "xmalloc.c:118 in kernel/mm/xmalloc.c:114"


def test_a_missing_line_shows_the_lines_around_where_it_was_expected():
    ctx = Context(Path("."))
    section = [f"mm: step {n}" for n in range(20)]
    section[12] = "xmalloc: selftest FAIL (2 blocks overlap)"
    with pytest.raises(CheckFailed) as failed:
        ctx.expect_line(section, r"^xmalloc: selftest PASS$", "xmalloc")
    context = [line.strip() for line in failed.value.context]
    assert "xmalloc: selftest FAIL (2 blocks overlap)" in context
    assert context[0] == "mm: step 9" and context[-1] == "mm: step 15"


def test_a_chapter_that_never_ran_says_why():
    ctx = Context(Path("."))
    ctx.last_boot = SimpleNamespace(
        outcome="crash", crash="page fault at 0x0 in new_table+0x2a",
        guest_lines=["== chapter pagetables ==", "pagetables: mapping"])
    with pytest.raises(CheckFailed, match="the guest crashed: page fault") \
            as failed:
        ctx.expect_line([], r"^mm: selftest PASS$", "mm_selftest()")
    assert failed.value.context[-1].strip() == "pagetables: mapping"


def test_a_guest_that_hung_says_how_long_it_had():
    ctx = Context(Path("."))
    ctx.last_boot = SimpleNamespace(outcome="timeout", crash=None,
                                    guest_lines=["== chapter time =="])
    ctx.last_timeout = 60
    with pytest.raises(CheckFailed, match="did not finish in 60 s"):
        ctx.expect_line([], r"^time: PASS", "ticks")
