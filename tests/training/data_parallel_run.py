"""Run by test_training_data_parallel.py in ONE subprocess with 4 forced CPU devices
(`XLA_FLAGS` must be set before jax is imported, and the pytest process has 1 device):
each data-parallel case's Linen pmap program and its conversions (the default pmap form
and the `--pmap jit` forms, in NNX's graph and tree mode) train from the same initial
weights; prints one JSON object: {case: {program: {mode: {"losses": [...], "eval": x,
"devices": n, "batch_devices": n}}}} and the device count."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

STEPS = 4
LEARNING_RATE = 0.1


def _devices_of(tree) -> int:
    """How many devices the first array leaf of `tree` is spread over."""
    import jax

    leaf = jax.tree.leaves(tree)[0]
    return len(leaf.sharding.device_set)


def run_linen(program):
    import jax

    initial = program.create_train_state(jax.random.key(0), LEARNING_RATE)
    batches = program.synthetic_batches(jax.random.key(1), STEPS)
    final, losses = program.train(initial, batches)
    return initial, {"losses": losses, "eval": program.evaluate(final, batches)}


def run_converted(program, linen_initial, graph: bool):
    import jax
    from flax import nnx

    from training_programs import start_from_linen_weights

    with nnx.set_graph_mode(graph), nnx.set_graph_updates(graph):
        state, _ = start_from_linen_weights(program.create_train_state(jax.random.key(0), LEARNING_RATE), linen_initial)
        batches = program.synthetic_batches(jax.random.key(1), STEPS)
        seen = {}
        step = program.train_step

        def watching(state, batch, *args):  # where the step's inputs live
            seen.setdefault("state_devices", _devices_of(state))
            seen.setdefault("batch_devices", _devices_of(batch))
            return step(state, batch, *args)

        program.train_step = watching
        try:
            final, losses = program.train(state, batches)
        finally:
            program.train_step = step
        return {"losses": losses, "eval": program.evaluate(final, batches), **seen}


def main(cases: list[str]) -> None:
    import jax

    from training_programs import FIXTURES, load_module

    out = {"devices": jax.device_count()}
    for case in cases:
        linen = load_module(FIXTURES / f"{case}.in.py", f"dp_in_{case}")
        initial, row = run_linen(linen)
        runs = {"linen": {"-": row}}
        for suffix in (".out.py", ".pmap_jit.out.py", ".nnx_jit.pmap_jit.out.py"):
            path = FIXTURES / f"{case}{suffix}"
            program = load_module(path, f"dp_out_{case}_{suffix.replace('.', '_')}")
            runs[suffix] = {mode: run_converted(program, initial, mode == "graph") for mode in ("graph", "tree")}
        out[case] = runs
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
