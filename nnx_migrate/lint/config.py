"""`[tool.nnx-migrate]` settings from pyproject.toml, merged under the command line.

The nearest pyproject.toml with a `[tool.nnx-migrate]` table, searched from the common
folder of the linted paths upwards, wins (as black and ruff find theirs).

    [tool.nnx-migrate]
    select = ["NNX"]          # code prefixes to run (default: every rule)
    ignore = ["NNX004"]       # code prefixes to skip
    unsafe-fixes = false      # apply unsafe fixes with --fix
    exclude = ["third_party"] # path parts (folder or file names, glob patterns) to skip
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SECTION = "nnx-migrate"


class ConfigError(Exception):
    """The configuration file is not valid; the message names it."""


@dataclass(frozen=True)
class LintConfig:
    select: tuple[str, ...] = ("NNX",)
    ignore: tuple[str, ...] = ()
    unsafe_fixes: bool = False
    exclude: tuple[str, ...] = ()
    source: Path | None = None  # the pyproject.toml it came from

    def excludes(self, path: Path) -> bool:
        return any(fnmatch.fnmatch(part, pattern) for part in path.parts for pattern in self.exclude)


def find_config(paths: Sequence[str | os.PathLike[str]], explicit: str | None = None) -> LintConfig:
    if explicit is not None:
        return _load(Path(explicit), required=True)
    resolved = [Path(p).resolve() for p in paths] or [Path.cwd()]
    start = Path(os.path.commonpath([str(p if p.is_dir() else p.parent) for p in resolved]))
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            config = _load(candidate, required=False)
            if config is not None:
                return config
    return LintConfig()


def _load(path: Path, *, required: bool) -> LintConfig | None:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    table = data.get("tool", {}).get(SECTION)
    if table is None:
        if required:
            raise ConfigError(f"{path}: no [tool.{SECTION}] table")
        return None
    known = {"select", "ignore", "unsafe-fixes", "exclude"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{path}: unknown [tool.{SECTION}] keys: {', '.join(sorted(unknown))}")

    def strings(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: [tool.{SECTION}] {key} must be a list of strings")
        return tuple(value)

    unsafe = table.get("unsafe-fixes", False)
    if not isinstance(unsafe, bool):
        raise ConfigError(f"{path}: [tool.{SECTION}] unsafe-fixes must be true or false")
    return LintConfig(
        select=strings("select", LintConfig.select),
        ignore=strings("ignore", ()),
        unsafe_fixes=unsafe,
        exclude=strings("exclude", ()),
        source=path,
    )
