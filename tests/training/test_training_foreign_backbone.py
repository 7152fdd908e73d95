"""A Linen backbone from another package (fixtures/training/foreign_backbone/lib, never
given to the rewrite) held by a converted class: kept as Linen inside `nnx.bridge.ToNNX`,
reported with a TODO naming it, its variables made by `nnx.bridge.lazy_init` where the
model is built; the converted program trains like the Linen one from the same weights."""

from __future__ import annotations

import sys

import numpy as np

from nnx_migrate.rewrite.runner import rewrite_files

from training_programs import FIXTURES, linen_variables, program_folder, start_from_linen_weights

FOREIGN = FIXTURES / "foreign_backbone"
STEPS = 4


def test_foreign_backbone_rewrites_to_golden_output_with_one_todo_naming_it():
    results = rewrite_files(sorted((FOREIGN / "in").glob("*.py")))
    assert len(results) == 1 and results[0].error is None
    [todo] = results[0].todos
    assert "`backbone_lib.Backbone`" in todo.why and "nnx.bridge.ToNNX" in todo.why and todo.line == 19
    text = (FOREIGN / "out" / "train.py").read_text()
    assert results[0].new_text == text
    assert "self.backbone_0 = nnx.bridge.ToNNX(Backbone(features=8), rngs=rngs)\n" in text
    assert "model = nnx.bridge.lazy_init(Classifier(in_features=5, rngs=nnx.Rngs(key)), jnp.ones((1, 5)))\n" in text
    assert "linen" not in text


def test_foreign_backbone_trains_like_linen(nnx_mode):
    import jax

    from nnx_migrate.equivalence import map_weights

    sys.path.insert(0, str(FOREIGN / "lib"))
    try:
        with program_folder(FOREIGN / "in") as linen:
            linen_state = linen.create_train_state(jax.random.key(0), 0.01)
            batches = linen.synthetic_batches(jax.random.key(1), STEPS)
            linen_final, linen_losses = linen.train(linen_state, batches)
            linen_eval = linen.evaluate(linen_final, batches)
        with program_folder(FOREIGN / "out") as converted:
            state, weight_map = start_from_linen_weights(converted.create_train_state(jax.random.key(0), 0.01), linen_state)
            state, losses = converted.train(state, batches)
            nnx_eval = converted.evaluate(state, batches)
    finally:
        sys.path.remove(str(FOREIGN / "lib"))
    # the backbone's weights were copied and trained: they are parameters of the NNX model
    assert any(pair.linen_name.startswith("params/Backbone_0/") for pair in weight_map.pairs), [p.linen_name for p in weight_map.pairs]
    np.testing.assert_allclose(losses, linen_losses, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(losses, 4))) > 1
    np.testing.assert_allclose(nnx_eval, linen_eval, rtol=1e-5, atol=1e-6)
    final = linen_variables(linen_final)
    weight_map = map_weights(final, state.merge()[0], match="names")
    assert weight_map.complete, weight_map.problems()
    for pair in weight_map.pairs:
        np.testing.assert_allclose(np.asarray(pair.variable[...]), np.asarray(pair.linen_value(final)), rtol=1e-4, atol=1e-5, err_msg=pair.linen_name)


def test_weight_surgery_on_init_variables_is_reported_naming_the_foreign_class():
    """Loading a pretrained backbone into `init`'s variables has no NNX form the tool can
    write (the weights live in the model): the site is marked and names the wrapped class."""
    from nnx_migrate.rewrite import rewrite_source

    source = (FOREIGN / "in" / "train.py").read_text().replace(
        "    return train_state.TrainState.create(apply_fn=model.apply, params=variables['params'], tx=optax.adam(learning_rate))\n",
        "    params = dict(variables['params'])\n    params['Backbone_0'] = pretrained_backbone()\n"
        "    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(learning_rate))\n")
    result = rewrite_source(source, str(FOREIGN / "in" / "train.py"))
    notes = [t for t in result.todos if "`backbone_lib.Backbone` sits in nnx.bridge.ToNNX" in t.why]
    assert [t.construct for t in notes] == ["def create_train_state"]
    assert "# TODO(nnx-migrate): " + notes[0].why in result.new_text
    assert any(t.construct == "TrainState.create" for t in result.todos)
