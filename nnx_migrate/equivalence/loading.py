"""Loading `path/to/file.py::ClassName` for the `check` command."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from nnx_migrate.equivalence.errors import EquivalenceSetupError


def split_target(spec: str) -> tuple[Path, str]:
    """'models/mlp.py::MLP' -> (Path('models/mlp.py'), 'MLP')."""
    path, sep, name = spec.rpartition("::")
    if not sep or not path or not name:
        raise EquivalenceSetupError(f"{spec!r}: expected FILE.py::ClassName")
    return Path(path), name


def load_python_file(path: Path, module_name: str):
    """Imports the file `path` as a fresh module registered as `module_name`.

    The file's folder is on sys.path while it is imported, so it can import its
    neighbours as it would when run from there. Also used by the tests and benchmarks
    that run fixture and corpus files.
    """
    resolved = Path(path).resolve()
    spec_obj = importlib.util.spec_from_file_location(module_name, resolved)
    if spec_obj is None or spec_obj.loader is None:
        raise EquivalenceSetupError(f"{path}: not importable as Python")
    module = importlib.util.module_from_spec(spec_obj)
    sys.modules[module_name] = module
    sys.path.insert(0, str(resolved.parent))
    try:
        spec_obj.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise EquivalenceSetupError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(resolved.parent))
    return module


def load_target(spec: str) -> Any:
    """The object named `ClassName` in `FILE.py`, importing the file as a fresh module.

    The file's folder is on sys.path while it is imported, so it can import its
    neighbours as it would when run from there.
    """
    path, name = split_target(spec)
    if not path.is_file():
        raise EquivalenceSetupError(f"{path}: no such file")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    module_name = f"_nnx_migrate_check_{resolved.stem}_{digest}"
    module = sys.modules.get(module_name) or load_python_file(path, module_name)
    if not hasattr(module, name):
        available = sorted(n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == module_name)
        raise EquivalenceSetupError(
            f"{path}: no class {name!r} (classes defined there: {', '.join(available) or 'none'})"
        )
    return getattr(module, name)
