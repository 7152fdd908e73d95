"""Progress display for long runs: a bar on stderr, only when stderr is a terminal.

CI logs and pipes get nothing, so machine-readable stdout stays clean. rich is imported
only when a bar is really shown.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

# Below this many files a run is quick enough that a bar is only flicker.
MIN_FILES_FOR_PROGRESS = 20


@contextlib.contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[], None]]:
    """Yields `advance()`; shows a bar on stderr when stderr is a TTY and the run is long."""
    if total < MIN_FILES_FOR_PROGRESS or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
