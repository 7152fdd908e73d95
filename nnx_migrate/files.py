"""Finding, reading and safely writing the Python files a command works on.

Shared by every subcommand, so that `lint` and `rewrite` walk a repository the same way
and a crash in the middle of a run never leaves a half-written file behind.
"""

from __future__ import annotations

import io
import os
import tempfile
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Folders that hold no project code: VCS data, virtual environments, caches and build
# output. Walking them is slow and linting them reports someone else's code.
SKIPPED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", ".tox", ".nox",
        "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
        "build", "dist", "node_modules", ".eggs",
    }
)


def _is_virtualenv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


def iter_python_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Yields every `.py` file under `paths`, in a stable order.

    A path named explicitly is always yielded (even in a skipped folder); folders are
    walked skipping `SKIPPED_DIRS`, `*.egg-info` and virtual environments. A path that
    does not exist raises FileNotFoundError, which callers report as a usage error.
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(str(path))
        if path.is_file():
            candidates: Iterable[Path] = [path]
        else:
            candidates = _walk(path)
        for file in candidates:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                yield file


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIPPED_DIRS
            and not d.endswith(".egg-info")
            and not _is_virtualenv(here / d)
        )
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield here / name


class SourceError(Exception):
    """A file that cannot be read as UTF-8 Python source; the message says why."""


@dataclass(frozen=True)
class Source:
    path: Path
    text: str
    encoding: str = "utf-8"  # as Python reads the file: a PEP 263 cookie or a BOM


def read_source(path: Path) -> Source:
    """Reads a Python file as Python does (UTF-8, or its PEP 263 coding cookie).

    Line endings are kept byte for byte (no newline translation), so a fix keeps them.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from exc
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        declaration_error = None
    except SyntaxError as exc:  # an unknown codec, or undecodable bytes in line 1-2
        encoding, declaration_error = "utf-8", exc
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SourceError(f"not valid {encoding} (byte {exc.start}): {exc.reason}") from exc
    if declaration_error is not None:
        raise SourceError(f"bad encoding declaration: {declaration_error}")
    return Source(path, text, encoding)


def atomic_write(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Replaces `path` with `text` so that readers see the old or the new file, never half.

    Writes a temporary file in the same folder (same file system, so the rename is
    atomic), keeps the original's permission bits, then renames it over the original.
    """
    path = Path(path)
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nnx-migrate.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            pass  # a new file (e.g. under --output-dir) keeps mkstemp's mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
