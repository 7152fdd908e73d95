"""`RunContext`: what one rewrite run shares between its files, and its only way to the
other files of the program.

A run (`runner.rewrite_files`, or one `rewrite_source` call) parses a file again and again:
the class pass, the training pass, the training pass of another file that reads this one's
model classes, a later round of the runner. The context keeps those results for the run and
drops them with it; nothing is kept between runs, and nothing lives in a module global.
The run's owner ends it with `close()` (or `with RunContext.on_disk() as context:`): some
kept results (another file's training analysis) hold the context itself, so without it the
run's trees would be a reference cycle that only a full cycle collection frees, after
scanning them all.

Files other than the one rewritten are read only through `context.files` (a `SiblingFiles`):
`RunContext()` reads nothing, so `rewrite_source(text, path)` is a function of its
arguments; `RunContext.on_disk()` (what the runner builds) reads the file's neighbours from
disk, taking the tree as fixed for the run.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import libcst as cst

from nnx_migrate.rewrite.lines import StatementTexts

T = TypeVar("T")

# Parses kept at a time (a run of a large package parses thousands of files; the rounds and
# the passes ask again for the few dozen in flight).
_PARSES_KEPT = 256


class SiblingFiles:
    """No other file: every question about one answers "none"."""

    def find_module(self, path: str, qualified_module: str) -> str | None:
        """`models` or `.models` imported by the file at `path` -> that local file, if any."""
        return None

    def version(self, file: str) -> tuple[int, int] | None:
        """(modification time, size) of a file, None where it cannot be read."""
        return None

    def read(self, file: str) -> str | None:
        """The file's text (UTF-8), None where it cannot be read."""
        return None

    def python_files_beside(self, file: str) -> list[str]:
        """The `.py` files of the folder holding `file`, sorted."""
        return []

    def resolve(self, file: str) -> str:
        """The file's absolute path, links resolved."""
        return file


class DiskFiles(SiblingFiles):
    """The files on disk."""

    def find_module(self, path: str, qualified_module: str) -> str | None:
        folder = Path(path).resolve().parent
        stripped = qualified_module.lstrip(".")
        ups = len(qualified_module) - len(stripped)
        for _ in range(max(0, ups - 1)):
            folder = folder.parent
        candidate = folder.joinpath(*stripped.split(".")).with_suffix(".py") if stripped else None
        return str(candidate) if candidate is not None and candidate.is_file() else None

    def version(self, file: str) -> tuple[int, int] | None:
        try:
            stat = Path(file).stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def read(self, file: str) -> str | None:
        try:
            return Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def python_files_beside(self, file: str) -> list[str]:
        return [str(p) for p in sorted(Path(file).parent.glob("*.py"))]

    def resolve(self, file: str) -> str:
        return str(Path(file).resolve())


class RunContext:
    """The caches of one run and its reader of other files (see the module docstring)."""

    def __init__(self, files: SiblingFiles | None = None):
        self.files = files if files is not None else SiblingFiles()
        self._parsed: dict[str, cst.Module] = {}
        self._ast: dict[str, ast.Module] = {}
        self._tables: dict[str, dict] = {}
        # the code of top-level statements, by node, for `lines.render` of whole modules
        self.statement_texts = StatementTexts()
        # files whose training analysis is being worked out (training/dataflow.py): a
        # sibling that imports one of them back learns only its functions' names
        self.in_progress: set[str] = set()

    @classmethod
    def on_disk(cls) -> RunContext:
        return cls(DiskFiles())

    def close(self) -> None:
        """Drops what the run kept (reference counting then frees it at once); the
        context can serve a new run afterwards."""
        self._parsed.clear()
        self._ast.clear()
        self._tables.clear()
        self.statement_texts = StatementTexts()
        self.in_progress.clear()

    def __enter__(self) -> RunContext:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def parse(self, text: str) -> cst.Module:
        return _remembered(self._parsed, text, cst.parse_module)

    def parse_ast(self, text: str) -> ast.Module:
        return _remembered(self._ast, text, ast.parse)

    def cached(self, table: str, key, make: Callable[[], T]) -> T:
        """`make()`, computed once per run for `key` in the named `table`."""
        values = self._tables.setdefault(table, {})
        try:
            return values[key]
        except KeyError:
            value = values[key] = make()
            return value

    def read(self, file: str) -> str | None:
        """Another file's text (None where it cannot be read), read once per run."""
        return self.cached("texts of files", file, lambda: self.files.read(file))

    def local_module_file(self, path: str, qualified_module: str) -> str | None:
        """`files.find_module`, asked once per (file, imported module) in a run (a run of a
        large package asks about a few dozen pairs some thousand times)."""
        if path.startswith("<"):
            return None
        return self.cached("local module files", (path, qualified_module), lambda: self.files.find_module(path, qualified_module))


def _remembered(cache: dict, text: str, make):
    """`make(text)`, kept for the rest of the run (at most `_PARSES_KEPT` texts at a time)."""
    value = cache.get(text)
    if value is None:
        value = make(text)
        if len(cache) > _PARSES_KEPT:
            cache.clear()
        cache[text] = value
    return value
