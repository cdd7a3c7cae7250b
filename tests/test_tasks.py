"""Task statements: a region without one is named clearly."""
from __future__ import annotations


def test_a_region_without_statement_names_the_tasks_file(monkeypatch) -> None:
    from minios_lab.classroom import tasks
    monkeypatch.setattr(tasks, "statements", lambda: {})
    try:
        tasks.tasks()
    except ValueError as error:
        assert "has no task statement in" in str(error)
        assert "tasks.toml" in str(error)
    else:
        raise AssertionError("a region without a statement was accepted")
