"""Small helpers shared by several test files (fixtures live in conftest.py)."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import pytest


def named_cases(table: Sequence[tuple]) -> pytest.MarkDecorator:
    """Parametrize over rows (name, misuse, message), each row named by its
    first field."""
    return pytest.mark.parametrize("name, misuse, message", table,
                                   ids=[row[0] for row in table])


def refused(error: type[BaseException], message: str,
            misuse: Callable[..., Any], *args: Any) -> BaseException:
    """misuse(*args) must raise `error` matching `message`: the exception."""
    with pytest.raises(error, match=message) as info:
        misuse(*args)
    return info.value


@contextmanager
def after(seconds: float, action: Callable[..., Any], *args: Any
          ) -> Iterator[None]:
    """Run action(*args) on a timer thread `seconds` from now, unless the
    block has ended by then."""
    timer = threading.Timer(seconds, action, args)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
