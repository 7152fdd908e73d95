"""A program split over two files (model in models.py, training loop in train.py) converts
consistently as one run: the loop builds the model with the constructor the model file's
rewrite emits, and the converted pair trains like the Linen pair from the same weights."""

from __future__ import annotations

import numpy as np

from nnx_migrate.rewrite.runner import rewrite_files

from training_programs import SPLIT, linen_variables, program_folder, start_from_linen_weights

STEPS = 5


def test_split_program_rewrites_to_golden_output():
    sources = sorted((SPLIT / "in").glob("*.py"))
    results = rewrite_files(sources)
    for result in results:
        assert result.todos == [] and result.error is None, result.path
        assert result.new_text == (SPLIT / "out" / result.path.rsplit("/", 1)[1]).read_text(), result.path
    assert "models.Net(features=12, in_features=5, rngs=nnx.Rngs(key))" in (SPLIT / "out" / "train.py").read_text()


def test_split_program_trains_like_linen():
    import jax

    from nnx_migrate.equivalence import map_weights

    with program_folder(SPLIT / "in") as linen:
        linen_state = linen.create_train_state(jax.random.key(0), 0.01)
        batches = linen.synthetic_batches(jax.random.key(1), STEPS)
        linen_final, linen_losses = linen.train(linen_state, batches)
        linen_eval = linen.evaluate(linen_final, batches)
    with program_folder(SPLIT / "out") as converted:
        state, _ = start_from_linen_weights(converted.create_train_state(jax.random.key(0), 0.01), linen_state)
        state, losses = converted.train(state, batches)
        nnx_eval = converted.evaluate(state, batches)

    np.testing.assert_allclose(losses, linen_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nnx_eval, linen_eval, rtol=1e-5, atol=1e-6)
    final = linen_variables(linen_final)
    weight_map = map_weights(final, state.merge()[0], match="names")
    assert weight_map.complete and any(p.collection == "batch_stats" for p in weight_map.pairs)
    for pair in weight_map.pairs:
        np.testing.assert_allclose(np.asarray(pair.variable[...]), np.asarray(pair.linen_value(final)), rtol=1e-4, atol=1e-5, err_msg=pair.linen_name)
