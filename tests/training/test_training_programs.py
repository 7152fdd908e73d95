"""The Linen program and its conversion, run from the same initial weights: the loss at
every step, the optimizer step count, BatchNorm statistics and every parameter after
training, and the deterministic eval step agree to float32 round-off. Dropout gets the
same masks on both sides (the harness's `identical_dropout`). The converted program runs
in NNX's graph mode and in its tree mode (`nnx_mode`)."""

from __future__ import annotations

import numpy as np
import pytest

from training_programs import (
    FIXTURES,
    linen_variables,
    load_module,
    output_path,
    own_fields,
    runnable_pairs,
    start_from_linen_weights,
)

STEPS = 6
LEARNING_RATE = 0.05
RTOL, ATOL = 1e-5, 1e-6
PAIRS = runnable_pairs()


def _train_args(case):
    import jax

    return (jax.random.key(2),) if "dropout" in case else ()


@pytest.fixture(scope="module")
def linen_runs():
    """Each Linen program trained once (shared by both styles' comparisons)."""
    import jax

    from nnx_migrate.equivalence.identical_dropout import identical_dropout

    runs = {}

    def get(case):
        if case not in runs:
            program = load_module(FIXTURES / f"{case}.in.py", f"training_in_{case}")
            initial = program.create_train_state(jax.random.key(0), LEARNING_RATE)
            batches = program.synthetic_batches(jax.random.key(1), STEPS)
            with identical_dropout("linen"):
                final, losses = program.train(initial, batches, *_train_args(case))
            runs[case] = (initial, final, losses, program.evaluate(final, batches), batches)
        return runs[case]

    return get


@pytest.mark.parametrize("case,style", PAIRS, ids=[f"{c}:{s}" for c, s in PAIRS])
def test_converted_program_trains_like_linen(linen_runs, case, style, nnx_mode):
    import jax

    from nnx_migrate.equivalence import map_weights
    from nnx_migrate.equivalence.identical_dropout import identical_dropout

    linen_initial, linen_final, linen_losses, linen_eval, batches = linen_runs(case)
    program = load_module(output_path(case, style), f"training_out_{case}_{style.replace('-', '_')}_{nnx_mode}")
    state, _ = start_from_linen_weights(program.create_train_state(jax.random.key(0), LEARNING_RATE), linen_initial)
    with identical_dropout("nnx"):
        state, losses = program.train(state, batches, *_train_args(case))

    np.testing.assert_allclose(losses, linen_losses, rtol=RTOL, atol=ATOL, err_msg="loss per step")
    assert len(set(np.round(losses, 4))) > 1, "the loss must change from step to step"
    model, optimizer = state.merge()
    assert int(optimizer.step[...]) == int(linen_final.step) == STEPS

    final = linen_variables(linen_final)
    weight_map = map_weights(final, model, match="names")
    assert weight_map.complete, weight_map.problems()
    kinds = {pair.collection for pair in weight_map.pairs}
    assert "params" in kinds and (("batch_stats" in kinds) == ("batch_stats" in final))
    for pair in weight_map.pairs:
        np.testing.assert_allclose(np.asarray(pair.variable[...]), np.asarray(pair.linen_value(final)), rtol=1e-4, atol=1e-5, err_msg=pair.linen_name)

    np.testing.assert_allclose(program.evaluate(state, batches), linen_eval, rtol=RTOL, atol=ATOL, err_msg="eval step")

    # The Linen TrainState subclass's own fields, carried by the converted state.
    for name in own_fields(linen_final):
        _assert_same_tree(getattr(state, name), getattr(linen_final, name), name)


def _assert_same_tree(converted, linen, name):
    import jax

    def plain(leaf):  # typed RNG keys compare by their data
        return np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key) else leaf)

    assert jax.tree.structure(converted) == jax.tree.structure(linen), name
    for a, b in zip(jax.tree.leaves(converted), jax.tree.leaves(linen), strict=True):
        np.testing.assert_allclose(plain(a), plain(b), rtol=RTOL, atol=ATOL, err_msg=name)


def test_carried_fields_are_compared():
    """The comparison above covers a fixture's own TrainState fields (not a vacuous loop)."""
    import jax

    program = load_module(FIXTURES / "custom_fields_trainstate.in.py", "training_in_fields_listing")
    state = program.create_train_state(jax.random.key(0), LEARNING_RATE)
    assert own_fields(state) == ["loss_avg", "noise_key", "loss_scaler", "seen", "avg_decay"]


@pytest.mark.parametrize("style", ["flat-state", "nnx-jit"])
def test_carried_fields_hold_pytrees_and_replicate(style):
    """A carried field holding a pytree (a DynamicScale where the fixture has None) goes
    through the jitted step and `replace`; the flat-state state replicates over devices
    (jax_utils.replicate, as the pmapped corpus programs do) with its fields."""
    import jax
    from flax import jax_utils
    from flax.training import dynamic_scale as dynamic_scale_lib

    program = load_module(output_path("custom_fields_trainstate", style), f"training_fields_{style.replace('-', '_')}")
    state = program.create_train_state(jax.random.key(0), LEARNING_RATE)
    state = state.replace(loss_scaler=dynamic_scale_lib.DynamicScale(scale=8.0))
    batches = program.synthetic_batches(jax.random.key(1), 2)
    state, metrics = program.train_step(state, batches[0])
    assert float(metrics["scale"]) == 8.0 and int(state.seen) == 8
    assert float(state.loss_avg) == pytest.approx(0.3 * float(metrics["loss"]), rel=1e-6)
    if style == "flat-state":
        replicated = jax_utils.replicate(state)
        assert replicated.loss_avg.shape == (1,) and replicated.loss_scaler.scale.shape == (1,) and replicated.avg_decay == 0.7
        back = jax_utils.unreplicate(replicated)
        assert float(back.loss_avg) == float(state.loss_avg) and int(back.optimizer.step[...]) == 1


@pytest.mark.parametrize("style", ["flat-state", "nnx-jit"])
def test_dropout_draws_a_fresh_mask_every_step(style):
    """Where Linen passed a key per step, the converted step draws another mask each step:
    with the learning rate 0 and the same batch, only the masks change the loss, so four
    steps give four losses (the model's RNG count, advanced inside the gradient of a loss
    that merges the state, reaches the returned state)."""
    import jax

    program = load_module(output_path("lambda_grad_dropout", style), f"training_masks_{style.replace('-', '_')}")
    state = program.create_train_state(jax.random.key(0), 0.0)
    x, y = program.synthetic_batches(jax.random.key(1), 1)[0]
    key, losses = jax.random.key(2), []
    for _ in range(4):
        key, step_key = jax.random.split(key)
        state, loss = program.aux_step(state, x, y, step_key)
        losses.append(float(loss))
    assert len(set(losses)) == 4, losses
