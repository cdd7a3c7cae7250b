"""The memory chapters of the real guest, booted on Xen in QEMU.

One boot per memory size (32, 64, 256 MiB), shared by the checks of that
size. Skipped when QEMU or Xen cannot be found (see `minios-lab doctor`).
"""
from __future__ import annotations

from typing import Any

import pytest

from minios_lab.guest.boot import BootResult
from minios_lab.pagetable import (RW, Step, Walk, parse_guest_report,
                                  parse_guest_walk)

SIZES = [32, 64, 256]


@pytest.fixture(scope="module", params=SIZES, ids=[f"{m}MiB" for m in SIZES])
def booted(request, shared_boot) -> tuple[int, BootResult, dict[str, Any]]:
    result = shared_boot("", request.param)
    assert result.outcome == "shutdown", result.report()
    report = parse_guest_report(result.section("pagetables")
                                + result.section("mm"))
    return request.param * 256, result, report


def test_both_chapters_pass(booted) -> None:
    _, result, _ = booted
    assert result.chapters.get("pagetables") == "PASS", result.report()
    assert result.chapters.get("mm") == "PASS", result.report()
    names = list(result.chapters)
    assert names[:3] == ["libc", "pagetables", "mm"]


def test_every_page_is_mapped(booted) -> None:
    nr_pages, _, report = booted
    xen_mapped, mapped, total = report["mapped"]
    # Every page but page 0, which start of day unmapped (the NULL guard).
    assert mapped == total == nr_pages - 1
    assert report["summary"][0] == nr_pages - 1
    assert report["checked"] == (0, 0)         # right frames, tables r/o
    assert xen_mapped == report["bootstrap"][3] - 1


def test_page_zero_unmapped_and_code_read_only(booted) -> None:
    _, result, _ = booted
    assert ("pagetables: page 0 is not mapped (the NULL guard); 0 pages of "
            "kernel code and read-only data are writable"
            in result.section("pagetables"))


def test_bootstrap_area_follows_xens_rule(booted) -> None:
    _, _, report = booted
    first_table, last_table, stack, mapped_end, first_free = \
        report["bootstrap"]
    assert stack == last_table + 1 and first_free == stack + 1
    assert mapped_end % 1024 == 0                  # a 4 MiB boundary
    assert mapped_end - first_free >= 128          # >= 512 KiB spare


def test_new_tables_are_what_the_memory_needs(booted) -> None:
    nr_pages, _, report = booted
    l3, l2, l1, start, end = report["new_tables"]
    xen_l1 = report["bootstrap"][3] // 512
    # One L1 per 2 MiB beyond Xen's, plus the alias at 512 GiB, which
    # needs one table of each level.
    assert (l3, l2, l1) == (1, 1, nr_pages // 512 - xen_l1 + 1)
    assert start == report["bootstrap"][4] and end - start == l3 + l2 + l1


def test_xen_refused_a_writable_page_table(booted) -> None:
    _, _, report = booted
    l4_pfn, rc = report["refused"]
    assert l4_pfn == report["bootstrap"][0]
    assert rc == -16                                # EBUSY


def test_free_pages_are_memory_minus_what_is_used(booted) -> None:
    nr_pages, _, report = booted
    pool_start, pool_end, pool_pages = report["pool"]
    mapped, start, end, meta, free = report["summary"]
    assert (start, end) == (pool_start, pool_end) == \
        (report["new_tables"][4], nr_pages)
    assert free == pool_pages - meta == nr_pages - pool_start - meta
    assert free > 0.9 * nr_pages
    chunks = report["chunks"]
    assert sum(n << order for order, n in chunks.items()) == free


def test_selftests_pass(booted) -> None:
    _, result, _ = booted
    mm = result.section("mm")
    assert "mm: selftest PASS" in mm and "xmalloc: selftest PASS" in mm
    assert any("pages free as before: yes" in line for line in mm)


def test_the_walks_printed_agree_with_the_mapping(booted) -> None:
    nr_pages, _, report = booted
    walks = {w.va: w for w in report["walks"]}
    first_table = report["bootstrap"][0] << 12
    assert not walks[0].present                        # the NULL guard
    assert walks[first_table].present and not walks[first_table].writable
    assert not walks[nr_pages << 12].present           # just past memory
    last = walks[(nr_pages - 1) << 12]
    assert last.pfn == nr_pages - 1 and len(last.steps) == 4
    for walk in walks.values():
        for upper, lower in zip(walk.steps, walk.steps[1:]):
            assert lower.table_mfn == upper.mfn


def test_parse_guest_walk_reads_a_line() -> None:
    line = ("pagetables: walk 0x3c120 from L4 mfn 0xf063: L4[0]=0xf066067 "
            "L3[0]=0xf065067 L2[0]=0xf064067 L1[60]=0x1000000f03c067 -> "
            "mfn 0xf03c pfn 0x3c rw")
    walk = parse_guest_walk(line)
    assert walk == Walk(0x3c120, (Step(4, 0, 0xF063, 0xF066067),
                                  Step(3, 0, 0xF066, 0xF065067),
                                  Step(2, 0, 0xF065, 0xF064067),
                                  Step(1, 60, 0xF064, 0x1000000F03C067)),
                        True, 0xF03C, 0x3C)
    assert walk.steps[-1].entry & RW
    absent = parse_guest_walk("pagetables: walk 0x4000000 from L4 mfn "
                              "0xf063: L4[0]=0xf066067 L3[0]=0xf065067 "
                              "L2[32]=0 not present")
    assert not absent.present and len(absent.steps) == 3
    assert parse_guest_walk("mm: selftest PASS") is None


def test_parse_guest_report_reads_the_numbers() -> None:
    lines = [
        "pagetables: Xen's tables: pfn 0x63-0x67, boot stack pfn 0x68, "
        "mapping to pfn 0x400; first free pfn 0x69",
        "pagetables: Xen had mapped 1024 pages; pages mapped 16384 of 16384 "
        "(64 MiB)",
        "pagetables: new tables L3 1 L2 1 L1 31 in pfns 0x69-0x8a",
        "mm: summary: pages mapped 16384, pool pfns 0x8a-0x4000, allocator "
        "metadata 1 pages, free pages 16245; chunks per order: 0:1 2:1 4:1",
    ]
    report = parse_guest_report(lines)
    assert report["bootstrap"] == (0x63, 0x67, 0x68, 0x400, 0x69)
    assert report["mapped"] == (1024, 16384, 16384)
    assert report["new_tables"] == (1, 1, 31, 0x69, 0x8A)
    assert report["summary"] == (16384, 0x8A, 0x4000, 1, 16245)
    assert report["chunks"] == {0: 1, 2: 1, 4: 1}
    assert report["walks"] == [] and "refused" not in report
