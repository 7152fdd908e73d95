"""One writing run per tree: a lock file at the top of the tree, held with `flock`.

A run that writes (`rewrite --write`, `lint --fix`) takes `.nnx-migrate.lock` in the top
folder of each tree it walks: the repository's top (the nearest folder with `.git`), or
the folder given when it is in no repository. The kernel holds the lock, not the file:
when a run is killed, its lock goes with its process, and the next run takes the file
over. A run also refuses to start while a live run holds a lock in a folder above its
tree (a run over `repo/` after one over `repo/sub/` started outside any repository), and
stops before writing when its walk meets a held lock inside its tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nnx_migrate.files import LOCK_NAME


class TreeLocked(Exception):
    """Another live run writes the same tree; the message says which and where."""


@dataclass
class RunLocks:
    held: list[tuple[Path, int]] = field(default_factory=list)  # (lock file, fd)
    taken_over: list[str] = field(default_factory=list)  # locks left by runs that died
    warnings: list[str] = field(default_factory=list)

    def owns(self, path: Path) -> bool:
        return any(os.path.realpath(path) == os.path.realpath(p) for p, _ in self.held)


def tree_top(path: Path) -> Path:
    start = Path(os.path.realpath(path))
    if not start.is_dir():
        start = start.parent
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def _owner(path: Path) -> str:
    try:
        text = path.read_text("utf-8", errors="replace").strip()
    except OSError:
        return "another run"
    return f"another nnx-migrate run ({text})" if text else "another nnx-migrate run"


def is_held(path: Path) -> bool:
    """Whether a live process holds the lock file `path` (never blocks)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _message(path: Path) -> str:
    return (
        f"{_owner(path)} is writing this tree (lock file {path}); wait for it to finish. "
        "A lock whose run has ended is taken over by the next run."
    )


def _acquire(path: Path, locks: RunLocks) -> None:
    for _ in range(5):
        existed = path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            locks.warnings.append(
                f"cannot create the lock file {path} ({exc.strerror or exc}): "
                "nothing stops a second run on this tree"
            )
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TreeLocked(_message(path)) from None
        # The file may have been removed (a run ending) between open and flock: then the
        # lock is on a file nobody else sees; take the one at the path again.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        if existed:
            before = os.read(fd, 200).decode("utf-8", errors="replace").strip()
            locks.taken_over.append(f"took over the lock file {path} of a run that ended" + (f" ({before})" if before else ""))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()}: nnx-migrate {' '.join(sys.argv[1:5])}".encode())
        locks.held.append((path, fd))
        return
    raise TreeLocked(_message(path))


def _release(locks: RunLocks) -> None:
    for path, fd in reversed(locks.held):
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still holding it: a waiting opener retries (inode check)
        os.close(fd)
    locks.held.clear()


@contextlib.contextmanager
def tree_locks(paths: Iterable[str | os.PathLike[str]]) -> Iterator[RunLocks]:
    """Holds the lock of every tree under `paths` for the `with` body.

    Raises TreeLocked (before anything is written) when a live run holds one of them, or
    a lock in a folder above one of them.
    """
    tops = sorted({tree_top(Path(p)) for p in paths})
    locks = RunLocks()
    try:
        for top in tops:
            for folder in top.parents:
                if is_held(folder / LOCK_NAME):
                    raise TreeLocked(_message(folder / LOCK_NAME))
            _acquire(top / LOCK_NAME, locks)
        yield locks
    finally:
        _release(locks)


def check_inner_locks(lock_files: Iterable[Path], locks: RunLocks) -> None:
    """Raises TreeLocked for a live run's lock met inside the walked tree."""
    for path in lock_files:
        if not locks.owns(path) and is_held(path):
            raise TreeLocked(_message(path))
