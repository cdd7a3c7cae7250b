"""The tasks of the course: one per C exercise region, stated in tasks.toml.

A task joins three sources that must agree: its statement (tasks.toml,
written once), its place in the tree (the solution region: file, function)
and its points (the graded checks of that region). ``minios-lab tasks``,
the hand-out's stub comments and the notebooks (:func:`show_task`) all
show tasks from here.
"""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from minios_lab.classroom.course import TASKS_FILE, chapter_by_number, statements
from minios_lab.classroom.grading import CHECKS, load_checks

@dataclass(frozen=True)
class Task:
    """One C exercise: a solution region and what the learner is told."""

    chapter: str
    id: str
    file: str
    function: str
    difficulty: str
    points: int
    statement: str
    checks: tuple[str, ...]    # what the grader runs, by name

    def markdown(self) -> str:
        checks = "\n".join(f"- {name}" for name in self.checks)
        return (f"**Task `{self.id}`** ({self.difficulty}, {self.points} "
                f"points): write the marked part of `{self.function}()` in "
                f"`{self.file}`.\n\n{self.statement}\n\n"
                f"The grader checks:\n\n{checks}\n\n"
                f"Check your work: `check_region(\"{self.id}\")` here, or "
                f"`minios-lab grade --region {self.id}` in a terminal.")

    def as_dict(self) -> dict:
        return {"chapter": self.chapter, "id": self.id, "file": self.file,
                "function": self.function, "difficulty": self.difficulty,
                "points": self.points, "statement": self.statement,
                "checks": list(self.checks)}


def tasks(chapter: Optional[str] = None, repo: Optional[Path] = None) -> \
        list[Task]:
    """The tasks of the course (or of one chapter), in chapter order; file
    and function from the tree, points and checks from the grader."""
    from minios_lab.classroom.handout import REPO_DIR, all_regions
    load_checks()
    texts = statements()
    number = chapter_by_number(chapter).number if chapter else None
    found = []
    for region in all_regions(repo or REPO_DIR):
        entry = texts.get(region.region_id)
        if entry is None:
            raise ValueError(f"exercise {region.region_id} has no task "
                             f"statement in {TASKS_FILE}")
        if number and entry["chapter"] != number:
            continue
        checks = [c for c in CHECKS if c.region == region.region_id]
        found.append(Task(entry["chapter"], region.region_id, region.file,
                          region.function, entry["difficulty"],
                          sum(c.points for c in checks),
                          " ".join(entry["statement"].split()),
                          tuple(c.name for c in checks)))
    return found


def show_task(task_id: str) -> Any:
    """A task as Markdown, for a notebook: ``show_task("split_chunk")``."""
    from IPython.display import Markdown
    for task in tasks():
        if task.id == task_id:
            return Markdown(task.markdown())
    raise ValueError(f"no task {task_id!r}; tasks are "
                     f"{', '.join(t.id for t in tasks())}")


def tasks_text(chosen: list[Task]) -> str:
    lines, chapter = [], None
    for task in chosen:
        if task.chapter != chapter:
            chapter = task.chapter
            lines.append(f"== chapter {chapter}: "
                         f"{chapter_by_number(chapter).title} ==")
        lines.append(f"{task.id} ({task.difficulty}, {task.points} points) "
                     f"{task.file}: {task.function}()")
        lines += [f"    {line}" for line in textwrap.wrap(task.statement, 74)]
    total = sum(t.points for t in chosen)
    lines.append(f"{len(chosen)} tasks, {total} points")
    return "\n".join(lines)


def tasks_json(chosen: list[Task]) -> str:
    return json.dumps([t.as_dict() for t in chosen], indent=2)


def start_message(out: Path, stubbed: int) -> str:
    """What a learner working alone does after `minios-lab start`."""
    return f"""\
Your own copy of the course is in {out}: the same kernel with the code of
{stubbed} exercises taken out (each marked TODO with its task), and its own
git repository, so you can commit as you go.

Next:
  cd {out}
  make lab                 # JupyterLab on notebook 00; chapters in order
  minios-lab tasks         # every exercise: what to write, points
  make grade-03            # grade one chapter (03) when you think it works
  make grade               # grade everything, like the instructor does
  minios-lab progress      # which chapters pass

Each chapter's notebook explains the mechanism, then states its tasks; its
check cells run on this copy's kernel. Stuck? Each task has hints in its
notebook."""
