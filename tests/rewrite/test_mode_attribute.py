"""`self.is_mutable_collection('batch_stats')` becomes the module's mode attribute.

The harness compares a class without a mode flag as Linen runs it in `init` and training
(every collection mutable) against NNX's default mode, training; this file proves the
other half: Linen's evaluation apply (batch statistics immutable) equals NNX after
`model.eval()`, with the same weights and statistics, and `model.train()` switches back.
"""

from __future__ import annotations

import pytest

from rewrite_fixture_models import FIXTURES, load_module


@pytest.fixture(scope="module")
def pair():
    return (
        load_module(FIXTURES / "mutable_mode.in.py", "mode_fixture_in"),
        load_module(FIXTURES / "mutable_mode.out.py", "mode_fixture_out"),
    )


@pytest.mark.parametrize("class_name,fields", [("NormedDense", {"features": 5}), ("Tower", {"hidden": 6})])
def test_eval_mode_is_linen_apply_without_mutable(pair, class_name, fields):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from nnx_migrate.equivalence.construction import build_from_linen
    from nnx_migrate.equivalence.weight_mapping import map_weights

    linen_mod, nnx_mod = pair
    x = jax.random.normal(jax.random.key(1), (4, 3))
    linen = getattr(linen_mod, class_name)(**fields)
    variables = linen.init(jax.random.key(0), x)
    # statistics that are not the initial ones, so evaluation really reads them
    _, updates = linen.apply(variables, x * 3.0 + 1.0, mutable=["batch_stats"])
    variables = {**variables, **updates}

    model = build_from_linen(getattr(nnx_mod, class_name), linen, [x])
    weights = map_weights(variables, model, match="names")
    assert weights.complete, weights.problems()
    weights.load(variables)

    linen_eval = linen.apply(variables, x)  # batch_stats immutable: Linen's evaluation
    linen_train, _ = linen.apply(variables, x, mutable=["batch_stats"])
    assert not np.allclose(linen_eval, linen_train)  # the mode matters for these inputs

    model.eval()
    stats_before = jax.tree.map(jnp.copy, nnx.state(model, nnx.BatchStat))
    np.testing.assert_allclose(model(x), linen_eval, rtol=1e-6, atol=1e-6)
    stats_after = nnx.state(model, nnx.BatchStat)
    assert all(jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(stats_before), jax.tree.leaves(stats_after), strict=True))

    model.train()
    np.testing.assert_allclose(model(x), linen_train, rtol=1e-6, atol=1e-6)


def test_other_collections_are_reported():
    from nnx_migrate.rewrite import rewrite_source

    source = (
        "import flax.linen as nn\n\n\nclass M(nn.Module):\n  @nn.compact\n  def __call__(self, x):\n"
        "    if self.is_mutable_collection('cache'):\n      x = x + 1\n    return nn.Dense(2)(x)\n"
    )
    result = rewrite_source(source, "m.py")
    assert [t.construct for t in result.todos] == ["self.is_mutable_collection()"]
    assert "self.use_running_average" not in result.new_text


def test_a_field_of_that_name_is_reported():
    from nnx_migrate.rewrite import rewrite_source

    source = (
        "import flax.linen as nn\n\n\nclass M(nn.Module):\n  use_running_average: bool = False\n\n  @nn.compact\n"
        "  def __call__(self, x):\n    x = nn.Dense(2)(x)\n"
        "    return nn.BatchNorm(use_running_average=not self.is_mutable_collection('batch_stats'))(x)\n"
    )
    result = rewrite_source(source, "m.py")
    assert [t.construct for t in result.todos] == ["self.is_mutable_collection()"]
