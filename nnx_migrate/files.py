"""Finding, reading and safely writing the Python files a command works on.

Shared by every subcommand, so that `lint` and `rewrite` walk a repository the same way
and a crash in the middle of a run never leaves a half-written file behind.
"""

from __future__ import annotations

import errno
import io
import os
import re
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


def is_virtualenv(path: Path) -> bool:
    try:
        return (path / "pyvenv.cfg").is_file()
    except OSError:  # an unreadable folder: the walk reports it when it tries to list it
        return False


# A folder's temporary files (`atomic_write`) and a run's lock file carry these names.
TEMPORARY_SUFFIX = ".nnx-migrate.tmp"
LOCK_NAME = ".nnx-migrate.lock"


@dataclass(frozen=True)
class WalkProblem:
    """A path the walk could not take: an error (an unreadable folder: exit bit 2) or a
    warning (a symbolic link that is skipped)."""

    path: str
    message: str
    error: bool


class TreeWalk:
    """The `.py` files under `paths`, in a stable order, and what the walk met on the way.

    A path named explicitly is always taken (even in a skipped folder, even a symbolic
    link: its target is the file named); folders are walked skipping `SKIPPED_DIRS`,
    `*.egg-info` and virtual environments, never following a linked folder (so a link
    loop is never entered). A linked file inside a folder stands for its target: the
    target is taken once, under its own path, when it lies under one of `paths`; a link
    to a file elsewhere (or a broken or looping link) is skipped with a warning, so a
    write never replaces a link by a regular file nor edits a file outside the run. A
    folder that cannot be listed is an error in `problems`; the walk goes on. A path
    that does not exist raises FileNotFoundError, which callers report as a usage error.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self.paths = [Path(p) for p in paths]
        self.problems: list[WalkProblem] = []
        self.temporaries: list[Path] = []  # `*.nnx-migrate.tmp` files met in walked folders
        self.lock_files: list[Path] = []  # other runs' lock files met in walked folders
        for path in self.paths:
            if not os.path.lexists(path):
                raise FileNotFoundError(str(path))
        self._roots = [(p, Path(os.path.realpath(p))) for p in self.paths]

    def __iter__(self) -> Iterator[Path]:
        seen: set[Path] = set()
        for path in self.paths:
            if path.is_dir():
                candidates: Iterable[Path] = self._walk(path)
            elif path.exists():
                candidates = [Path(os.path.realpath(path)) if path.is_symlink() else path]
            else:
                self._warn(path, "broken symbolic link: skipped")
                continue
            for file in candidates:
                key = Path(os.path.realpath(file))
                if key not in seen:
                    seen.add(key)
                    yield file

    def _warn(self, path: Path, message: str) -> None:
        self.problems.append(WalkProblem(str(path), message, error=False))

    def _walk(self, root: Path) -> Iterator[Path]:
        def unreadable(exc: OSError) -> None:
            where = exc.filename or str(root)
            self.problems.append(WalkProblem(str(where), f"cannot read folder: {exc.strerror or exc}", error=True))

        for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d not in SKIPPED_DIRS
                and not d.endswith(".egg-info")
                and not is_virtualenv(here / d)
            )
            for name in sorted(filenames):
                if name.endswith(".py"):
                    file = self._through_link(here / name)
                    if file is not None:
                        yield file
                elif name.endswith(TEMPORARY_SUFFIX):
                    self.temporaries.append(here / name)
                elif name == LOCK_NAME:
                    self.lock_files.append(here / name)

    def _through_link(self, path: Path) -> Path | None:
        """`path`, or for a symbolic link its target's path under the run's roots."""
        if not path.is_symlink():
            return path
        try:
            target = Path(os.path.realpath(path, strict=True))
        except OSError as exc:
            loop = exc.errno == errno.ELOOP
            self._warn(path, "symbolic link loop: skipped" if loop else "broken symbolic link: skipped")
            return None
        for given, real in self._roots:
            if target == real:
                return given
            try:
                return given / target.relative_to(real)
            except ValueError:
                continue
        self._warn(path, f"symbolic link to {target}, outside the paths given: skipped (name the target to convert it)")
        return None


def iter_python_files(
    paths: Iterable[str | os.PathLike[str]], problems: list[WalkProblem] | None = None
) -> Iterator[Path]:
    """Yields every `.py` file under `paths`, in a stable order (see `TreeWalk`); what
    the walk could not take is appended to `problems` when given."""
    walk = TreeWalk(paths)
    yield from walk
    if problems is not None:
        problems.extend(walk.problems)


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
    if path.is_symlink():  # edit the link's target; the link stays a link
        path = Path(os.path.realpath(path))
    directory = path.parent
    # The writer's process id is in the name, so a later run can tell the temporary file
    # of a killed run (removed: `remove_stale_temporaries`) from a live run's.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMPORARY_SUFFIX, dir=directory)
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


_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+" + re.escape(TEMPORARY_SUFFIX) + "$")


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(temporaries: Iterable[Path]) -> list[Path]:
    """Removes the `atomic_write` temporary files whose writer is no longer running
    (a killed run's); returns those removed. A live run's files are left alone."""
    removed = []
    for tmp in temporaries:
        match = _TEMPORARY.match(tmp.name)
        if match is not None and process_alive(int(match["pid"])):
            continue
        try:
            tmp.unlink()
        except OSError:
            continue  # an unwritable folder: the run reports its files when it writes them
        removed.append(tmp)
    return removed
