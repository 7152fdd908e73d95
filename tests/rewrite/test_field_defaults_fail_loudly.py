"""Sizes the rewrite takes from a field's default (an activation that keeps the feature
axis, a layer factory) hold for other values that keep the same contract; a value that
breaks it fails at once in NNX, never computes different numbers silently."""

from __future__ import annotations

import pytest

from rewrite_fixture_models import FIXTURES, load_module


def test_an_activation_that_changes_the_size_fails_at_the_next_layer():
    import jax
    from flax import nnx

    module = load_module(FIXTURES / "activation_field.out.py", "fixture_out_activation_field_loud")
    x = jax.numpy.ones((2, 3))
    keeps = module.Mlp(hidden=4, out=2, activation=nnx.relu, in_features=3, rngs=nnx.Rngs(0))
    assert keeps(x).shape == (2, 2)
    halves = module.Mlp(hidden=4, out=2, activation=lambda h: h[..., :2], in_features=3, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError):
        halves(x)
