"""Where a run may write besides its sources: the report files and `--output-dir`.

Both are checked before anything is written, so that a bad path is a usage error that
leaves every file as it was, not a traceback after `--write` has converted the tree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from nnx_migrate.files import LOCK_NAME, SKIPPED_DIRS, TEMPORARY_SUFFIX
from nnx_migrate.files import is_virtualenv as _is_virtualenv


class TargetError(Exception):
    """A report or output path that cannot be used; the message says why."""


def report_files(report: str) -> tuple[Path, Path]:
    """`FILE.json` and `FILE.md` for `--report FILE` (a `.json`/`.md` suffix is dropped),
    checked: a file name in an existing folder this process can write in."""
    base = Path(report)
    if base.is_dir() or report.endswith(("/", os.sep)) or not base.name or base.name in (".", ".."):
        raise TargetError(f"--report {report}: is a folder; give a file name, e.g. {base / 'nnx-migrate-report'}")
    stem = base.with_suffix("") if base.suffix in (".json", ".md") else base
    targets = (stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md"))
    folder = stem.parent
    if not folder.is_dir():
        raise TargetError(f"--report {report}: the folder {folder} does not exist")
    for target in targets:
        if target.is_dir():
            raise TargetError(f"--report {report}: {target} is a folder")
    _probe_writable(folder, f"--report {report}")
    return targets


def _probe_writable(folder: Path, what: str) -> None:
    # os.access answers for the real user id and ignores read-only mounts; creating a
    # file is the only sure test.
    try:
        fd, probe = tempfile.mkstemp(prefix=".nnx-migrate-probe.", dir=folder)
    except OSError as exc:
        raise TargetError(f"{what}: cannot write in {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def check_output_dir(output_dir: str, roots: Iterable[Path]) -> None:
    """Refuses an output folder that would write into the input: inside a folder being
    converted (or that folder itself), or one whose copy of a root would land on it
    (`--output-dir . src` copies `src` to `./src`)."""
    out = Path(os.path.realpath(output_dir))
    for root in roots:
        real = Path(os.path.realpath(root))
        if real.is_dir() and (out == real or real in out.parents):
            raise TargetError(
                f"--output-dir {output_dir} is inside the input tree {root}: the converted copy would "
                "mix with the sources (and be converted again by the next run); choose a folder outside it"
            )
        if out / real.name == real:
            raise TargetError(
                f"--output-dir {output_dir} would write {root}'s copy over {root} itself; choose another folder"
            )
    if out.exists() and not out.is_dir():
        raise TargetError(f"--output-dir {output_dir} is a file")
    existing = next(folder for folder in (out, *out.parents) if folder.exists())
    if not existing.is_dir():
        raise TargetError(f"--output-dir {output_dir}: {existing} is a file")
    _probe_writable(existing, f"--output-dir {output_dir}")


def _ignored(folder: str, names: list[str]) -> set[str]:
    here = Path(folder)
    return {
        name
        for name in names
        if name in SKIPPED_DIRS
        or name.endswith(".egg-info")
        or name.endswith(TEMPORARY_SUFFIX)
        or name == LOCK_NAME
        or _is_virtualenv(here / name)
    }


def copy_inputs(roots: Iterable[Path], output_dir: Path) -> list[tuple[str, str]]:
    """Copies every root (folders whole, minus the folders a walk skips) under
    `output_dir`, so that the converted files written over the copy make a tree that
    runs on its own. Links are copied as links. Returns (path, why) for what could not
    be copied; the rest is copied."""
    problems: list[tuple[str, str]] = []
    output_dir.mkdir(parents=True, exist_ok=True)
    for root in roots:
        real = Path(os.path.realpath(root))
        target = output_dir / real.name
        try:
            if real.is_dir():
                shutil.copytree(real, target, symlinks=True, ignore=_ignored, dirs_exist_ok=True)
            else:
                shutil.copy2(real, target)
        except shutil.Error as exc:
            for item in exc.args[0]:
                source, _, why = item if isinstance(item, tuple) and len(item) == 3 else (str(item), "", "")
                problems.append((str(source), f"cannot copy: {why}"))
        except OSError as exc:
            problems.append((str(exc.filename or root), f"cannot copy: {exc.strerror or exc}"))
    return problems
