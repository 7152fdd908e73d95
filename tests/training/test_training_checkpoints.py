"""Checkpoint calls of a training program (fixtures/training/checkpoint_resume_dropout):
the converted program resumes from the Linen program's checkpoint in every format and
trains on as the resumed Linen program does (dropout off: losses, eval loss and step
agree to float32 round-off, so Adam's moments, the step and the BatchNorm statistics came
across), and resumes from its own checkpoints exactly (dropout on: the RNG state came
across too). Each converted program runs in NNX's graph and tree mode (`nnx_mode`)."""

from __future__ import annotations

import numpy as np
import pytest

from training_programs import FIXTURES, STYLES, load_module, output_path

CASE = "checkpoint_resume_dropout"
TRAINED, RESUMED = 2, 2  # steps before the checkpoint, steps after it
LEARNING_RATE = 0.05
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def linen_run(tmp_path_factory):
    """The Linen program trained TRAINED steps (dropout off) and saved in every format; the
    losses, eval loss and step of the Linen program resumed from its checkpoint."""
    import jax

    program = load_module(FIXTURES / f"{CASE}.in.py", "checkpoint_linen")
    root = tmp_path_factory.mktemp("linen")
    batches = program.synthetic_batches(jax.random.key(1), TRAINED + RESUMED)
    state, _ = program.train(program.create_train_state(jax.random.key(0), LEARNING_RATE, 0.0), batches[:TRAINED], jax.random.key(2))
    for fmt in program.FORMATS:
        program.save(fmt, str(root / fmt), state)
    # (every format restores the same values in Linen; each new state would compile the step again)
    fresh = program.create_train_state(jax.random.key(7), LEARNING_RATE, 0.0)
    final, losses = program.train(program.restore("standard", str(root / "standard"), fresh), batches[TRAINED:], jax.random.key(3))
    return program.FORMATS, root, batches, (losses, program.evaluate(final, batches), int(final.step))


@pytest.mark.parametrize("style", list(STYLES))
def test_converted_program_resumes_from_linen_and_from_its_own_checkpoints(linen_run, tmp_path, style, nnx_mode):
    import jax

    formats, root, batches, (linen_losses, linen_eval, linen_step) = linen_run
    program = load_module(output_path(CASE, style), f"checkpoint_{style.replace('-', '_')}_{nnx_mode}")
    # One fresh state for every restore: flat-state's static part (graphdef, with the optax
    # transformation) is new with each state built, and a new one compiles the step again.
    fresh = program.create_train_state(jax.random.key(7), LEARNING_RATE, 0.0)
    for fmt in formats:
        final, losses = program.train(program.restore(fmt, str(root / fmt), fresh), batches[TRAINED:], jax.random.key(3))
        np.testing.assert_allclose(losses, linen_losses, rtol=RTOL, atol=ATOL, err_msg=fmt)
        np.testing.assert_allclose(program.evaluate(final, batches), linen_eval, rtol=RTOL, atol=ATOL, err_msg=fmt)
        assert int(final.optimizer.step[...]) == linen_step == TRAINED + RESUMED

    # what `nnx-migrate convert-checkpoint` wrote from the Linen checkpoint resumes it too
    from nnx_migrate.checkpoint import convert_checkpoint

    convert_checkpoint(root / "standard", tmp_path / "converted", program.Classifier, kwargs={"dropout_rate": 0.0},
                       inputs=[np.ones((1, 4), np.float32)])
    _, losses = program.train(program.restore("standard", str(tmp_path / "converted"), fresh), batches[TRAINED:], jax.random.key(3))
    np.testing.assert_allclose(losses, linen_losses, rtol=RTOL, atol=ATOL)

    # dropout on: a run resumed from its own checkpoint repeats the straight run exactly,
    # to the last bit of every variable (RNG keys and counts, Adam's moments, the step)
    half, straight = program.train(program.create_train_state(jax.random.key(0), LEARNING_RATE), batches[:TRAINED], jax.random.key(2))
    for fmt in formats:
        program.save(fmt, str(tmp_path / fmt), half)
    straight_state, more = program.train(half, batches[TRAINED:], jax.random.key(2))
    expected = _values(straight_state)
    other = program.create_train_state(jax.random.key(9), LEARNING_RATE)  # other weights, other dropout stream
    for fmt in formats:
        final, losses = program.train(program.restore(fmt, str(tmp_path / fmt), other), batches[TRAINED:], jax.random.key(2))
        assert losses == more, fmt
        assert _values(final).keys() == expected.keys(), fmt
        for path, value in _values(final).items():
            np.testing.assert_array_equal(value, expected[path], err_msg=f"{fmt}: {path}")


def _values(state) -> dict:
    """Every variable of the state's model and optimizer by path, RNG keys as their data."""
    import jax
    from flax import nnx

    flat = nnx.to_flat_state(nnx.state(state.merge()))
    return {path: np.asarray(jax.random.key_data(v.get_value()) if jax.dtypes.issubdtype(v.get_value().dtype, jax.dtypes.prng_key) else v.get_value())
            for path, v in flat}


# custom_fields_trainstate with a checkpoint: its TrainState subclass's own fields (an
# array, a typed RNG key, a counter; a static one) go into the checkpoint and come back.
FIELDS_CASE = "custom_fields_trainstate"
FIELDS_CHECKPOINTS = '''

def save(path, state):
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path, state)
  checkpointer.wait_until_finished()


def restore(path, state):
  return ocp.StandardCheckpointer().restore(path, state)


def save_and_restore(path, key):
  state = create_train_state(key, 0.05)
  save(path, state)
  return restore(path, state)
'''


@pytest.fixture(scope="module")
def fields_run(tmp_path_factory):
    """The Linen program with checkpoint functions, trained 2 steps and saved, then resumed
    for 2 more; and its conversions (style -> path)."""
    import jax

    from nnx_migrate.rewrite import rewrite_source

    folder = tmp_path_factory.mktemp("fields")
    source = (FIXTURES / f"{FIELDS_CASE}.in.py").read_text().replace("import optax\n", "import optax\nimport orbax.checkpoint as ocp\n", 1)
    source += FIELDS_CHECKPOINTS
    (folder / "linen.py").write_text(source)
    paths = {}
    for style in STYLES:
        result = rewrite_source(source, "fields.py", train_style=style)
        assert result.todos == [] and "checkpoint_tree(state)" in result.new_text
        paths[style] = folder / f"{style.replace('-', '_')}.py"
        paths[style].write_text(result.new_text)

    linen = load_module(folder / "linen.py", "fields_linen")
    batches = linen.synthetic_batches(jax.random.key(1), 4)
    state = linen.create_train_state(jax.random.key(0), 0.05)
    for batch in batches[:2]:
        state, _ = linen.train_step(state, batch)
    linen.save(str(folder / "checkpoint"), state)
    resumed, losses = linen.restore(str(folder / "checkpoint"), linen.create_train_state(jax.random.key(5), 0.05)), []
    for batch in batches[2:]:
        resumed, metrics = linen.train_step(resumed, batch)
        losses.append(float(metrics["loss"]))
    return paths, folder / "checkpoint", batches, resumed, losses


@pytest.mark.parametrize("style", list(STYLES))
def test_a_train_state_s_own_fields_are_restored_from_linen_checkpoints(fields_run, style, nnx_mode):
    import jax

    paths, checkpoint, batches, linen_final, linen_losses = fields_run
    program = load_module(paths[style], f"fields_{style.replace('-', '_')}_{nnx_mode}")
    state, losses = program.restore(str(checkpoint), program.create_train_state(jax.random.key(5), 0.05)), []
    for batch in batches[2:]:
        state, metrics = program.train_step(state, batch)
        losses.append(float(metrics["loss"]))
    np.testing.assert_allclose(losses, linen_losses, rtol=RTOL, atol=ATOL)
    assert int(state.seen) == int(linen_final.seen) == 32 and state.avg_decay == linen_final.avg_decay
    np.testing.assert_allclose(float(state.loss_avg), float(linen_final.loss_avg), rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(jax.random.key_data(state.noise_key), jax.random.key_data(linen_final.noise_key))


def test_a_checkpoint_that_does_not_fit_is_refused_with_every_problem_and_nothing_changed(linen_run):
    """A missing layer, a changed width, an extra entry: one ValueError lists them all."""
    import jax
    from flax import serialization

    _, root, _, _ = linen_run
    program = load_module(output_path(CASE, "flat-state"), "checkpoint_wrong")
    tree = serialization.msgpack_restore((root / "bytes").read_bytes())
    del tree["params"]["Dense_1"]
    tree["batch_stats"]["BatchNorm_0"]["mean"] = np.zeros(5, np.float32)
    tree["params"]["Extra_0"] = {"kernel": np.zeros((2, 2), np.float32)}
    fresh = program.create_train_state(jax.random.key(7), LEARNING_RATE)
    before = _values(fresh)
    with pytest.raises(ValueError) as error:
        program.restored_from_checkpoint(fresh, tree)
    message = str(error.value)
    assert "model dense_1/kernel: not in the checkpoint" in message
    assert "batch_stats/BatchNorm_0/mean: shape (5,) in the checkpoint, (8,) here" in message
    assert "checkpoint value params/Extra_0/kernel: no place for it in the model" in message
    assert "optimizer opt_state/0/mu/dense_1/kernel" not in message  # the optimizer's part fits
    after = _values(fresh)
    assert all(np.array_equal(after[path], value) for path, value in before.items())
