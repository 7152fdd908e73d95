"""The training pass of `nnx-migrate rewrite`: the code that creates, calls and trains
Linen modules becomes NNX (init/apply, TrainState, jitted train and eval steps).

Layout, one concern per module:
- `api_map`       the training API map, read from `rules/linen_training.toml`
- `models`        which names are converted model classes, and their input-size
                  parameters (this file and local modules it imports)
- `state_helper`  the small `TrainState` class emitted into converted programs, per
                  `--train-style`
- `steps`         the LibCST transform: init/apply, TrainState use, grad transforms, jit
- `run`           one file: `convert_training(text, path, style)`

The pass runs after the module-class rewrite on every file that mentions the training API.
It imports neither jax nor flax.
"""

from nnx_migrate.rewrite.training.run import DEFAULT_TRAIN_STYLE, TRAIN_STYLES, convert_training

__all__ = ["TRAIN_STYLES", "DEFAULT_TRAIN_STYLE", "convert_training"]
