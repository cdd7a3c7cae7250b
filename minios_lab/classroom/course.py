"""The course: its chapters, and small helpers the notebooks share."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minios_lab.build.toolchain import doctor


@dataclass(frozen=True)
class Chapter:
    """One chapter: its notebook and the kernel files its exercises are in."""

    number: str
    title: str
    notebook: str
    kernel_files: tuple[str, ...] = ()  # relative to kernel/


CHAPTERS: list[Chapter] = [
    Chapter("00", "Welcome", "00-welcome.ipynb"),
    Chapter("01", "Start of day", "01-start-of-day.ipynb", ("start_of_day.c",)),
    Chapter("02", "A minimal libc", "02-minimal-libc.ipynb",
            ("lib/printf.c", "lib/string.c")),
    Chapter("03", "The page allocator", "03-page-allocator.ipynb",
            ("mm/page_alloc.c",)),
    Chapter("04", "xmalloc", "04-xmalloc.ipynb", ("mm/xmalloc.c",)),
    Chapter("05", "Page tables", "05-page-tables.ipynb", ("mm/pagetable.c",)),
    Chapter("06", "Exceptions", "06-exceptions.ipynb", ("traps.c",)),
    Chapter("07", "Events", "07-events.ipynb", ("events.c", "hypervisor.c")),
    Chapter("08", "Time and the timer", "08-time-and-timer.ipynb",
            ("time.c", "timer.c")),
    Chapter("09", "Build and boot", "09-build-and-boot.ipynb"),
    Chapter("10", "Inside the running guest", "10-inside-the-guest.ipynb"),
    Chapter("11", "A guest among guests: the console ring",
            "11-console-ring.ipynb", ("console_ring.c",)),
]


def chapter_by_number(number: str) -> Chapter:
    number = number.zfill(2)
    for chapter in CHAPTERS:
        if chapter.number == number:
            return chapter
    raise ValueError(f"no chapter {number}; chapters are "
                     f"{', '.join(c.number for c in CHAPTERS)}")


def doctor_summary() -> str:
    """One line: how many of doctor's checks pass, and which do not."""
    checks = doctor()
    missing = [c.name for c in checks if not c.ok]
    if not missing:
        return f"all {len(checks)} checks pass"
    return f"{len(checks) - len(missing)} of {len(checks)} checks pass; " \
           f"missing: {', '.join(missing)} (run `minios-lab doctor`)"


def doctor_table() -> str:
    """doctor's checks as aligned text (paths and versions of this machine)."""
    checks = doctor()
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{'ok' if c.ok else 'MISSING':7} {c.name:<{width}}  "
                     f"{c.detail}" for c in checks)


# --- task statements (the data; minios_lab.classroom.tasks joins them to checks) ----

TASKS_FILE = Path(__file__).resolve().parent / "tasks.toml"
DIFFICULTIES = ("easy", "moderate", "hard")


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:          # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    with open(path, "rb") as f:
        return tomllib.load(f)


def statements(path: Path = TASKS_FILE) -> dict[str, dict]:
    """{region id: its entry in tasks.toml}; checked for shape."""
    found: dict[str, dict] = {}
    for entry in _read_toml(path).get("task", []):
        missing = {"id", "chapter", "difficulty", "statement"} - set(entry)
        if missing:
            raise ValueError(f"{path}: task {entry.get('id')!r} lacks "
                             f"{', '.join(sorted(missing))}")
        if entry["difficulty"] not in DIFFICULTIES:
            raise ValueError(f"{path}: task {entry['id']}: difficulty must "
                             f"be one of {', '.join(DIFFICULTIES)}")
        if entry["id"] in found:
            raise ValueError(f"{path}: task {entry['id']} given twice")
        found[entry["id"]] = entry
    return found
