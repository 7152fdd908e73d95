"""The user's examples file (TOML), read when a check runs and when the rewrite emits it.

    "models/cnn.py::CNN" = { kwargs = { features = 32 }, inputs = ["float32[4,28,28,1]"] }
    "models/lm.py::Decoder" = { inputs = ["int32[2,16]:0..1000"], call = { train = false } }

Keys are `PATH::Class` of the Linen original, PATH absolute or relative to the examples
file; `inputs` uses the SPEC syntax of `nnx-migrate check --input`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path


class ExamplesFileError(ValueError):
    pass


def read_examples(path: Path) -> dict[tuple[str, str], dict]:
    """(resolved source path, class name) -> {"kwargs", "inputs", "call"}; {} when the file
    does not exist."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExamplesFileError(f"{path}: not valid TOML: {exc}") from exc
    out = {}
    for key, entry in data.items():
        source, sep, name = key.rpartition("::")
        if not sep or not source or not name or not isinstance(entry, dict):
            raise ExamplesFileError(f'{path}: {key!r}: expected "PATH::Class" = {{ kwargs = {{...}}, inputs = [...] }}')
        unknown = set(entry) - {"kwargs", "inputs", "call"}
        inputs = entry.get("inputs")
        if unknown or not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            raise ExamplesFileError(f"{path}: {key!r}: needs inputs = [\"float32[4,10]\", ...] and at most kwargs and call"
                                    + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
        resolved = os.path.normpath((path.parent / source).resolve())
        out[(resolved, name)] = {"kwargs": dict(entry.get("kwargs", {})), "inputs": list(inputs), "call": dict(entry.get("call", {}))}
    return out


def example_line(examples_path: Path, source: Path, name: str) -> str:
    """The line to add to the examples file for `source::name`."""
    try:
        key = os.path.relpath(Path(source).resolve(), Path(examples_path).resolve().parent)
    except ValueError:  # another drive
        key = str(Path(source).resolve())
    key = key.replace(os.sep, "/")
    return f'"{key}::{name}" = {{ kwargs = {{}}, inputs = ["float32[1,16]"], call = {{}} }}'
