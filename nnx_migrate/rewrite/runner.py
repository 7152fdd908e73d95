"""Many files: read, rewrite (in parallel), collect results in a stable order.

An own process pool rather than LibCST's `parallel_exec_transform_with_prettyprint`:
that runner prints diffs and returns only counts, while the command needs each file's
result (new text, per-class outcome, TODO sites) for the report, `--output-dir` and exit
codes. Workers get paths, not texts, so only results cross process boundaries.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from nnx_migrate.files import SourceError, read_source
from nnx_migrate.rewrite.report import FileResult
from nnx_migrate.rewrite.training.run import DEFAULT_TRAIN_STYLE
from nnx_migrate.rewrite.transform import rewrite_source


def rewrite_file(path: str, train_style: str = DEFAULT_TRAIN_STYLE) -> FileResult:
    try:
        source = read_source(Path(path))
    except SourceError as exc:
        return FileResult(path=path, status="failed", error=str(exc))
    try:
        return rewrite_source(source.text, path, train_style)
    except Exception as exc:  # never let one file stop a repository run
        return FileResult(path=path, status="failed", old_text=source.text, error=f"internal error: {type(exc).__name__}: {exc}")


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def rewrite_files(paths: Iterable[Path], jobs: int = 1, advance: Callable[[], None] = lambda: None, train_style: str = DEFAULT_TRAIN_STYLE) -> list[FileResult]:
    names = [str(p) for p in paths]
    convert = functools.partial(rewrite_file, train_style=train_style)
    results: list[FileResult] = []
    if jobs <= 1 or len(names) < 2:
        for name in names:
            results.append(convert(name))
            advance()
        return results
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for result in pool.map(convert, names, chunksize=max(1, min(16, len(names) // (jobs * 4) or 1))):
            results.append(result)
            advance()
    return results
