"""Linen checkpoints into converted NNX models: read, map, write.

    from nnx_migrate.checkpoint import load_linen_checkpoint
    model = MyModel(..., rngs=nnx.Rngs(0))              # the class `nnx-migrate rewrite` wrote
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)  # the Linen program's tx
    load_linen_checkpoint('ckpts/linen', model, optimizer)

Modules: `readers` (every format Linen programs save), `layout` (TrainState, variables or
params), `mapping` (leaf placement by the harness's naming convention, optimizer state
renaming), `writing` (the NNX checkpoint), `api` (the functions below). Imports jax,
flax and orbax: only the `convert-checkpoint` command and user code load it.
"""

from nnx_migrate.checkpoint.api import (
    LoadReport,
    build_model,
    convert_checkpoint,
    load_linen_checkpoint,
)
from nnx_migrate.checkpoint.errors import CheckpointError, CheckpointMismatchError
from nnx_migrate.checkpoint.readers import read_checkpoint
from nnx_migrate.checkpoint.writing import restore_nnx_checkpoint, save_nnx_checkpoint

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "LoadReport",
    "build_model",
    "convert_checkpoint",
    "load_linen_checkpoint",
    "read_checkpoint",
    "restore_nnx_checkpoint",
    "save_nnx_checkpoint",
]
