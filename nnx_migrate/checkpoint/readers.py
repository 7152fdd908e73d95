"""Reading a Linen checkpoint, whichever API wrote it, into one nested dict.

Recognised by what is on disk:
- a directory holding an orbax item (`_METADATA`, or the older `checkpoint` file):
  written by `orbax.checkpoint.StandardCheckpointer` / `PyTreeCheckpointer`, or by
  `flax.training.checkpoints.save_checkpoint` (which writes orbax since flax 0.7);
- a step directory of a `CheckpointManager` (`_CHECKPOINT_METADATA` and one item folder
  per saved item, `default` when there is one item);
- a folder of steps (a `CheckpointManager` root: `3/`, `10/`; `flax.training.checkpoints`:
  `checkpoint_3`, `checkpoint_10`): the highest step, or the one asked for;
- a file: `flax.serialization.to_bytes` output (msgpack), also what
  `flax.training.checkpoints` wrote before orbax.

Whatever the writer, the result is the same tree: dicts with string keys (a tuple or
list of optimizer states becomes {'0': ..., '1': ...}, as msgpack writes it); empty
states (`optax.EmptyState`, None) are dropped, since they hold nothing to carry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnx_migrate.checkpoint.errors import CheckpointError

_STEP_NAME = re.compile(r"^(?:(?P<prefix>.*?)_)?(?P<step>\d+)$")
# item folder names tried, in order, when a CheckpointManager step holds several items
_STATE_ITEMS = ("default", "state", "train_state", "model")


@dataclass
class RawCheckpoint:
    tree: dict[str, Any]
    source: str  # what was read, for the report: "orbax item /ckpt/3/default"


def read_checkpoint(path: str | Path, step: int | None = None) -> RawCheckpoint:
    """The checkpoint at `path` as nested dicts (see the module docstring)."""
    path = Path(path)
    if path.is_file():
        return RawCheckpoint(_read_msgpack(path), f"msgpack file {path}")
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such file or directory")
    if _is_orbax_item(path):
        return RawCheckpoint(_read_orbax(path), f"orbax checkpoint {path}")
    items = [child for child in sorted(path.iterdir()) if child.is_dir() and _is_orbax_item(child)]
    if items:
        return _read_item(path, items)
    steps = _steps(path)
    if not steps:
        raise CheckpointError(
            f"{path}: not a checkpoint (no orbax item, no CheckpointManager steps, no "
            f"checkpoint_<step> entries)")
    if step is None:
        step = max(steps)
    if step not in steps:
        raise CheckpointError(f"{path}: no step {step} (steps there: {', '.join(map(str, sorted(steps)))})")
    inner = read_checkpoint(steps[step])
    return RawCheckpoint(inner.tree, f"{inner.source} (step {step} of {len(steps)} in {path})")


def _read_item(step_dir: Path, items: list[Path]) -> RawCheckpoint:
    by_name = {item.name: item for item in items}
    chosen = next((by_name[name] for name in _STATE_ITEMS if name in by_name), None)
    if chosen is None and len(items) == 1:
        chosen = items[0]
    if chosen is None:
        raise CheckpointError(
            f"{step_dir}: a CheckpointManager step with several items "
            f"({', '.join(by_name)}); give the item folder itself, e.g. {items[0]}")
    return RawCheckpoint(_read_orbax(chosen), f"orbax item {chosen}")


def _is_orbax_item(path: Path) -> bool:
    return (path / "_METADATA").is_file() or (path / "checkpoint").is_file()


def _steps(path: Path) -> dict[int, Path]:
    steps: dict[int, Path] = {}
    for child in path.iterdir():
        match = _STEP_NAME.match(child.name)
        if match is not None and not child.name.endswith(".tmp"):
            steps[int(match["step"])] = child
    return steps


def _read_orbax(path: Path) -> dict[str, Any]:
    """Every array as a host numpy array: nothing is put on a device (a large model's
    checkpoint need not fit there twice) and no sharding has to be guessed."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    checkpointer = ocp.PyTreeCheckpointer()
    try:
        metadata = checkpointer.metadata(path.resolve()).item_metadata.tree
        as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
        tree = checkpointer.restore(path.resolve(), args=ocp.args.PyTreeRestore(restore_args=as_numpy))
    except Exception as exc:
        raise CheckpointError(f"{path}: orbax could not read it: {type(exc).__name__}: {exc}") from exc
    return _as_tree(tree, path)


def _read_msgpack(path: Path) -> dict[str, Any]:
    from flax import serialization

    try:
        tree = serialization.msgpack_restore(path.read_bytes())
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a flax.serialization (msgpack) checkpoint: {type(exc).__name__}: {exc}") from exc
    return _as_tree(tree, path)


def _as_tree(tree: Any, path: Path) -> dict[str, Any]:
    normal = normalize(tree)
    if not isinstance(normal, dict) or not normal:
        raise CheckpointError(f"{path}: holds no named arrays (got {type(tree).__name__})")
    return normal


def normalize(tree: Any) -> Any:
    """Dicts with string keys all the way down; sequences keyed by position; empty dropped."""
    if isinstance(tree, Mapping) or hasattr(tree, "_fields") or isinstance(tree, (list, tuple)):
        if isinstance(tree, Mapping):
            items = tree.items()
        elif hasattr(tree, "_fields"):
            items = zip(tree._fields, tree, strict=False)
        else:
            items = enumerate(tree)
        out = {}
        for key, value in items:
            value = normalize(value)
            if value is None or (isinstance(value, dict) and not value):
                continue
            out[str(key)] = value
        return out
    return tree
