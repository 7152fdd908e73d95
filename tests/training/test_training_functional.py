"""Plain optax loops in the functional form (training/functional.py), run side by side
with their Linen originals from the same weights: the loss at every step, every
parameter pytree after training (a target network's too) and the eval agree to float32
round-off, with identical Dropout masks; and each step's key draws its own mask."""

from __future__ import annotations

import numpy as np
import pytest

from training_programs import FIXTURES, functional_cases, load_module, output_path

STEPS = 5
RTOL, ATOL = 1e-5, 1e-6
CASES = functional_cases()


def _linen_and_converted(case, style="flat-state"):
    """Both programs, the converted one's module-level params set to the Linen weights
    (copied into each model through the harness's weight map, then split again)."""
    from flax import nnx

    from nnx_migrate.equivalence import map_weights

    linen = load_module(FIXTURES / f"{case}.in.py", f"functional_in_{case}")
    converted = load_module(output_path(case, style), f"functional_out_{case}_{style.replace('-', '_')}")
    for model_name, variables_name in linen.PAIRS:
        variables = _as_variables(getattr(linen, variables_name))
        model = getattr(converted, model_name)
        weight_map = map_weights(variables, model, match="names")
        assert weight_map.complete, weight_map.problems()
        weight_map.load(variables)
        setattr(converted, variables_name, nnx.state(model, nnx.Param))
    return linen, converted


def _as_variables(tree):
    """Linen's variables dict, for a program that keeps `init(...)['params']`."""
    return tree if "params" in tree else {"params": tree}


def test_every_form_has_a_fixture():
    assert {"script_optax_apply_value", "actor_critic_target", "pmap_partial_optax"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_functional_program_trains_like_linen(case):
    import jax
    from flax import nnx

    from nnx_migrate.equivalence import map_weights
    from nnx_migrate.equivalence.identical_dropout import identical_dropout

    linen, converted = _linen_and_converted(case)
    batches = linen.synthetic_batches(jax.random.key(1), STEPS)
    with identical_dropout("linen"):
        linen_losses, linen_final = linen.train(batches, jax.random.key(2))
    with identical_dropout("nnx"):
        losses, final = converted.train(batches, jax.random.key(2))
    np.testing.assert_allclose(losses, linen_losses, rtol=RTOL, atol=ATOL, err_msg="loss per step")
    assert len(set(np.round(np.asarray(losses), 4))) > 1, "the loss must change from step to step"
    # every final pytree (a target network's included) against Linen's, through the model
    # whose layout it has (same structure as that model's variables)
    for linen_tree, tree in zip(linen_final, final, strict=True):
        owner = next(m for m, v in linen.PAIRS if jax.tree.structure(getattr(linen, v)) == jax.tree.structure(linen_tree))
        model = getattr(converted, owner)
        nnx.update(model, tree)
        weight_map = map_weights(_as_variables(linen_tree), model, match="names")
        assert weight_map.complete, weight_map.problems()
        for pair in weight_map.pairs:
            np.testing.assert_allclose(np.asarray(pair.variable[...]), np.asarray(pair.linen_value(_as_variables(linen_tree))), rtol=1e-4, atol=1e-5, err_msg=pair.linen_name)
    np.testing.assert_allclose(converted.evaluate(final, batches), linen.evaluate(linen_final, batches), rtol=RTOL, atol=ATOL, err_msg="eval")


def test_each_step_key_draws_a_fresh_dropout_mask():
    """As in Linen: another key, another mask; the same key, the same mask (no harness)."""
    import jax

    linen, converted = _linen_and_converted("script_optax_apply_value")
    for program, apply in ((linen, linen.model.apply), (converted, converted.model_apply)):
        batch = program.synthetic_batches(jax.random.key(1), 1)[0]
        losses = [float(program.loss_of(apply, program.params, batch, jax.random.key(k))) for k in range(4)]
        assert len(set(losses)) == 4, losses
        assert float(program.loss_of(apply, program.params, batch, jax.random.key(0))) == losses[0]
    # over the steps of a loop: each step's key gives its own mask
    batch = converted.synthetic_batches(jax.random.key(1), 1)[0]
    step = jax.jit(lambda p, k: converted.model_apply(p, batch["x"], train=True, rngs={"dropout": k}))
    key, masks = jax.random.key(2), set()
    for _ in range(6):
        key, step_key = jax.random.split(key)
        masks.add(tuple(np.asarray(step(converted.params, step_key)).ravel().round(5)))
    assert len(masks) == 6


def test_functional_program_trains_in_tree_mode():
    """The emitted form in NNX's tree mode (NNX_GRAPH_MODE=false NNX_GRAPH_UPDATES=false,
    here set around the import and the run, as the `nnx_mode` fixture does): the same
    losses as in graph mode (it differentiates the params state only; a merged model's
    dropout streams are reseeded inside the trace). Each program is imported fresh per
    mode, in this process (no interpreter and jax import per mode)."""
    import jax
    from flax import nnx

    out = {}
    for mode, graph in (("graph", True), ("tree", False)):
        losses = []
        with nnx.set_graph_mode(graph), nnx.set_graph_updates(graph):
            for case in CASES:
                program = load_module(output_path(case, "flat-state"), f"functional_{mode}_mode_{case}")
                run, _ = program.train(program.synthetic_batches(jax.random.key(1), 3), jax.random.key(2))
                losses += [float(loss) for loss in run]
        out[mode] = losses
    assert len(out["graph"]) == 3 * len(CASES)
    np.testing.assert_allclose(out["tree"], out["graph"], rtol=1e-6)
