"""The NNX checkpoint: an orbax directory holding `{'model': ..., 'optimizer': ...}`.

The layout is what `orbax.checkpoint.StandardCheckpointer().save(path, tree)` writes for
`tree = {'model': nnx.state(model), 'optimizer': nnx.state(optimizer)}` (the optimizer
part only when there is optimizer state), so plain orbax restores it, the way Flax's
checkpointing guide shows:

    model = Model(..., rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    target = {'model': nnx.state(model), 'optimizer': nnx.state(optimizer)}
    restored = ocp.StandardCheckpointer().restore(path, target)
    nnx.update(model, restored['model']); nnx.update(optimizer, restored['optimizer'])

Restoring INTO a state (concrete or from `nnx.eval_shape`) keeps typed RNG keys
(`key<fry>`) and integer keys (`layers[0]`); restoring without a target gives plain dicts
whose integer keys are strings (flax #4308), so always pass one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flax import nnx

from nnx_migrate.checkpoint.errors import CheckpointError


def save_nnx_checkpoint(path: str | Path, model: nnx.Module, optimizer: nnx.Optimizer | None = None, *,
                        force: bool = False) -> None:
    """Writes `model` (and `optimizer`) as an orbax checkpoint at `path`."""
    tree: dict[str, Any] = {"model": nnx.state(model)}
    if optimizer is not None:
        tree["optimizer"] = nnx.state(optimizer)
    write_tree(path, tree, force=force)


def restore_nnx_checkpoint(path: str | Path, model: nnx.Module, optimizer: nnx.Optimizer | None = None) -> None:
    """Restores a checkpoint written by `save_nnx_checkpoint` (or `convert-checkpoint`)
    into `model` (and `optimizer`), in place."""
    import orbax.checkpoint as ocp

    target: dict[str, Any] = {"model": nnx.state(model)}
    if optimizer is not None:
        target["optimizer"] = nnx.state(optimizer)
    try:
        # partial: a model alone restores from a checkpoint that also holds optimizer state
        restored = ocp.PyTreeCheckpointer().restore(Path(path).resolve(), args=ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True))
    except Exception as exc:
        raise CheckpointError(f"{path}: orbax could not restore it into the model: "
                              f"{type(exc).__name__}: {exc}") from exc
    nnx.update(model, restored["model"])
    if optimizer is not None:
        nnx.update(optimizer, restored["optimizer"])


def state_tree(flat: Mapping[tuple, Any]) -> dict:
    """{('opt_state', 0, 'mu', 'dense_0', 'kernel'): array} as the nesting orbax writes for
    an nnx.State holding those variables (each leaf under its Variable's 'value')."""
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node["value"] = value
    return tree


def write_tree(path: str | Path, tree: Mapping[str, Any], *, force: bool = False) -> None:
    import orbax.checkpoint as ocp

    path = Path(path).resolve()
    if path.exists() and not force:
        raise CheckpointError(f"{path} already exists (overwrite with force=True, CLI: --force)")
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(path, dict(tree), force=force)
        checkpointer.wait_until_finished()
    except Exception as exc:
        raise CheckpointError(f"{path}: orbax could not write it: {type(exc).__name__}: {exc}") from exc
