"""Runs the `mesh_*` training fixtures, Linen and converted, on four forced CPU devices.

Run as a script (`python mesh_programs.py`) with
`XLA_FLAGS=--xla_force_host_platform_device_count=4` set before jax starts: a pytest
process has one device. Prints one JSON object: for every case, the Linen losses and the
PartitionSpec of every parameter (by Linen path) after creation and after training; for
every (case, style, NNX mode), the converted program's losses, started from Linen's initial
weights, and the PartitionSpec of the NNX parameter that each Linen path maps to.
test_training_mesh_programs.py compares them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

STEPS = 4
LEARNING_RATE = 0.05
MODES = {"graph": True, "tree": False}
# Compiling a sharded attention step costs ~8 s of CPU per program: the Transformer block
# runs in the default style and mode only (the MLP, ~1 s each, covers every combination).
DEFAULT_ONLY = ("mesh_transformer_trainstate",)


def configs(case: str, styles) -> list[tuple[str, str]]:
    """(train style, NNX mode) pairs the converted program of `case` is run in."""
    if case in DEFAULT_ONLY:
        return [("flat-state", "graph")]
    return [(style, mode) for style in styles for mode in MODES]


def spec(array) -> list:
    """The array's PartitionSpec, one entry per axis (trailing unsharded axes written out)."""
    entries = list(array.sharding.spec)
    return [list(e) if isinstance(e, tuple) else e for e in entries + [None] * (array.ndim - len(entries))]


def main() -> dict:
    import jax
    from flax import linen as nn
    from flax import nnx

    from nnx_migrate.equivalence import map_weights

    from training_programs import (
        FIXTURES,
        STYLES,
        linen_variables,
        load_module,
        mesh_cases,
        output_path,
        start_from_linen_weights,
    )

    assert len(jax.devices()) == 4, "set XLA_FLAGS=--xla_force_host_platform_device_count=4"
    result: dict = {"linen": {}, "nnx": []}
    for case in mesh_cases():
        program = load_module(FIXTURES / f"{case}.in.py", f"mesh_in_{case}")
        initial = program.create_train_state(jax.random.key(0), LEARNING_RATE)
        batches = program.synthetic_batches(jax.random.key(1), STEPS)
        final, losses = program.train(initial, batches)
        unboxed = initial.replace(params=nn.meta.unbox(initial.params))
        result["linen"][case] = {
            "losses": losses,
            "created": {"/".join(p): spec(a) for p, a in _flat(nn.meta.unbox(initial.params))},
            "trained": {"/".join(p): spec(a) for p, a in _flat(nn.meta.unbox(final.params))},
        }
        for style, mode in configs(case, STYLES):
            with nnx.set_graph_mode(MODES[mode]), nnx.set_graph_updates(MODES[mode]):
                converted = load_module(output_path(case, style), f"mesh_out_{case}_{style.replace('-', '_')}_{mode}")
                state = converted.create_train_state(jax.random.key(0), LEARNING_RATE)
                created = _specs_by_linen_path(state, linen_variables(unboxed), map_weights)
                state, _ = start_from_linen_weights(state, unboxed)
                state, nnx_losses = converted.train(state, batches)
                trained = _specs_by_linen_path(state, linen_variables(unboxed), map_weights)
            result["nnx"].append({"case": case, "style": style, "mode": mode, "losses": nnx_losses, "created": created, "trained": trained})
    return result


def _flat(tree):
    from flax.traverse_util import flatten_dict

    return sorted(flatten_dict(tree).items())


def _specs_by_linen_path(state, variables, map_weights) -> dict:
    model, _ = state.merge()
    weight_map = map_weights(variables, model, match="names")
    assert weight_map.complete, weight_map.problems()
    return {"/".join(pair.linen_path): spec(pair.variable.get_value()) for pair in weight_map.pairs if pair.collection == "params"}


if __name__ == "__main__":
    print(json.dumps(main()))
