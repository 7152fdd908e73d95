"""A model built in one file (main.py, no Linen import) and initialized in another
(lib.py: an `init` helper that returns the variables, then `TrainState.create`): the run
makes the build site a factory and the helper builds the NNX model, and the converted
program trains like the Linen one from the same weights."""

from __future__ import annotations

import numpy as np

from nnx_migrate.rewrite.runner import rewrite_files

from training_programs import FIXTURES, linen_variables, program_folder, start_from_linen_weights

SPLIT_INIT = FIXTURES / "split_init_program"
STEPS = 5


def test_split_init_program_rewrites_to_golden_output():
    results = rewrite_files(sorted((SPLIT_INIT / "in").glob("*.py")))
    for result in results:
        assert result.todos == [] and result.error is None, result.path
        assert result.new_text == (SPLIT_INIT / "out" / result.path.rsplit("/", 1)[1]).read_text(), result.path
    out = {p.name: p.read_text() for p in (SPLIT_INIT / "out").glob("*.py")}
    assert "functools.partial(models.Net, features=12)" in out["main.py"]
    assert "model = model(in_features=5, rngs=nnx.Rngs(key))" in out["lib.py"]
    # a second run over the output changes nothing
    again = rewrite_files(sorted((SPLIT_INIT / "out").glob("*.py")))
    assert all(r.new_text in (None, out[r.path.rsplit("/", 1)[1]]) for r in again)


def test_split_init_program_trains_like_linen():
    import jax

    with program_folder(SPLIT_INIT / "in", "main") as linen:
        linen_state = linen.create_train_state(jax.random.key(0), 0.01)
        batches = linen.lib.synthetic_batches(jax.random.key(1), STEPS)
        linen_final, linen_losses = linen.lib.train(linen_state, batches)
        linen_eval = linen.lib.evaluate(linen_final, batches)
    with program_folder(SPLIT_INIT / "out", "main") as converted:
        state, _ = start_from_linen_weights(converted.create_train_state(jax.random.key(0), 0.01), linen_state)
        state, losses = converted.lib.train(state, batches)
        nnx_eval = converted.lib.evaluate(state, batches)

    np.testing.assert_allclose(losses, linen_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nnx_eval, linen_eval, rtol=1e-5, atol=1e-6)
    from nnx_migrate.equivalence import map_weights

    final = linen_variables(linen_final)
    weight_map = map_weights(final, state.merge()[0], match="names")
    assert weight_map.complete and any(p.collection == "batch_stats" for p in weight_map.pairs)
    for pair in weight_map.pairs:
        np.testing.assert_allclose(np.asarray(pair.variable[...]), np.asarray(pair.linen_value(final)), rtol=1e-4, atol=1e-5, err_msg=pair.linen_name)
