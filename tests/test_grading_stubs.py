"""An exercise left as the hand-out's stub is recognised without a run."""
from __future__ import annotations

from pathlib import Path

from minios_lab.classroom import trees
from minios_lab.classroom.handout import all_regions, make_assignment

REPO = Path(__file__).resolve().parent.parent


def test_fresh_handout_regions_are_all_untouched_stubs(tmp_path: Path) -> None:
    student = tmp_path / "lab"
    make_assignment(student, ["03"])
    regions = [r for r in all_regions(REPO) if r.file.startswith("kernel/mm/page_")]
    assert regions, "chapter 03 has exercise regions"
    ids = {r.region_id for r in regions}
    assert trees.untouched_stubs(student, regions, REPO) == ids


def test_written_code_or_reference_is_not_a_stub(tmp_path: Path) -> None:
    student = tmp_path / "lab"
    make_assignment(student, ["03"])
    region = next(r for r in all_regions(REPO) if r.region_id == "split_chunk")
    path = student / region.file
    text = path.read_text()
    # A comment changed inside the stub still counts as untouched.
    path.write_text(text.replace("Replace the line below.",
                                 "Replace the line below (I will).", 1))
    assert trees.untouched_stubs(student, [region], REPO) == {region.region_id}
    # One line of code of the learner's own is not a stub any more.
    lines = path.read_text().splitlines()
    begin = next(i for i, line in enumerate(lines)
                 if "BEGIN EXERCISE split_chunk" in line)
    end = next(i for i in range(begin, len(lines))
               if lines[i].strip() == "/* END EXERCISE */")
    lines.insert(end, "    int tried = 1; (void)tried;")
    path.write_text("\n".join(lines) + "\n")
    assert trees.untouched_stubs(student, [region], REPO) == set()
    # The reference tree itself has no stubs.
    assert trees.untouched_stubs(REPO, [region], REPO) == set()


def test_a_region_whose_markers_are_gone_is_not_called_a_stub(tmp_path):
    student = tmp_path / "lab"
    make_assignment(student, ["03"])
    region = next(r for r in all_regions(REPO) if r.region_id == "split_chunk")
    path = student / region.file
    path.write_text(path.read_text().replace("BEGIN EXERCISE split_chunk",
                                             "BEGIN split_chunk"))
    assert trees.untouched_stubs(student, [region], REPO) == set()
