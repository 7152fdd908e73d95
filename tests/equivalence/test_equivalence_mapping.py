"""The weight mapping: exact for rewrite output, structural for hand ports, never a guess."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from nnx_migrate.equivalence import (
    AmbiguousMappingError,
    EquivalenceSetupError,
    compare,
    map_weights,
)

X = jnp.ones((2, 4))


class TwinDense(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(nn.Dense(4)(x))


class TwinPort(nnx.Module):
    def __init__(self, rngs):
        self.first = nnx.Linear(4, 4, rngs=rngs)
        self.second = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x):
        return self.second(self.first(x))


@pytest.fixture(scope="module")
def twin_variables():
    return TwinDense().init(jax.random.key(0), X)


def test_equal_shapes_are_ambiguous_and_the_error_names_every_candidate(twin_variables):
    with pytest.raises(AmbiguousMappingError) as error:
        map_weights(twin_variables, TwinPort(nnx.Rngs(0)))
    message = str(error.value)
    assert "Dense_0" in message and "first" in message and "second" in message
    assert "mapping=" in message


def test_an_override_resolves_the_ambiguity(twin_variables):
    weight_map = map_weights(twin_variables, TwinPort(nnx.Rngs(0)), overrides={"Dense_0": "second", "Dense_1": "first"})
    assert weight_map.complete
    pairs = {p.linen_name: p.nnx_name for p in weight_map.pairs}
    assert pairs["params/Dense_0/kernel"] == "second.kernel"
    assert pairs["params/Dense_1/bias"] == "first.bias"


def test_names_mode_never_falls_back_to_shapes(twin_variables):
    weight_map = map_weights(twin_variables, TwinPort(nnx.Rngs(0)), match="names")
    assert not weight_map.complete
    assert len(weight_map.unplaced) == 4
    assert len(weight_map.unfilled) == 4
    assert any("no NNX submodule at Dense_0, dense_0, Dense[0]" in item for item in weight_map.unplaced)


def test_two_name_candidates_on_the_nnx_side_is_an_error(twin_variables):
    class BothSpellings(nnx.Module):
        def __init__(self, rngs):
            self.Dense_0 = nnx.Linear(4, 4, rngs=rngs)
            self.dense_0 = nnx.Linear(4, 4, rngs=rngs)
            self.dense_1 = nnx.Linear(4, 4, rngs=rngs)

    with pytest.raises(AmbiguousMappingError, match=r"Dense_0.*by name: Dense_0, dense_0"):
        map_weights(twin_variables, BothSpellings(nnx.Rngs(0)), match="names")


def test_extra_nnx_param_is_reported_unfilled(twin_variables):
    class Extra(nnx.Module):
        def __init__(self, rngs):
            self.dense_0 = nnx.Linear(4, 4, rngs=rngs)
            self.dense_1 = nnx.Linear(4, 4, rngs=rngs)
            self.gate = nnx.Param(jnp.ones((4,)))
            self.steps = nnx.Variable(jnp.zeros(()))

    weight_map = map_weights(twin_variables, Extra(nnx.Rngs(0)))
    assert weight_map.unfilled == ["gate (Param, shape (4,))"]
    assert not weight_map.complete
    # a non-weight variable without Linen counterpart is only noted
    assert any("steps" in note for note in weight_map.notes)


def test_kind_mismatch_is_reported(twin_variables):
    class StatsNotParams(nnx.Module):
        def __init__(self, rngs):
            self.dense_0 = nnx.Linear(4, 4, rngs=rngs)
            self.dense_1 = nnx.Linear(4, 4, rngs=rngs)
            self.dense_1.bias = nnx.BatchStat(jnp.zeros((4,)))

    weight_map = map_weights(twin_variables, StatsNotParams(nnx.Rngs(0)))
    assert weight_map.mismatched == [
        "params/Dense_1/bias: NNX dense_1.bias is a BatchStat, expected the type for the Linen collection 'params'"]


def test_bad_override_paths_are_setup_errors(twin_variables):
    with pytest.raises(EquivalenceSetupError, match="no Linen submodule or variable"):
        map_weights(twin_variables, TwinPort(nnx.Rngs(0)), overrides={"Dense_9": "first"})
    with pytest.raises(EquivalenceSetupError, match="nothing at nowhere"):
        map_weights(twin_variables, TwinPort(nnx.Rngs(0)), overrides={"Dense_0": "nowhere", "Dense_1": "first"})


def test_rewrite_class_with_required_argument_it_cannot_fill(linen):
    class NeedsDepth(nnx.Module):
        def __init__(self, features, depth, *, rngs):
            pass

    with pytest.raises(EquivalenceSetupError, match="required argument.*depth"):
        compare(linen.MLP(), NeedsDepth, X)


def test_linen_submodule_fields_are_reported_not_converted(linen):
    class WrapperRewrite(nnx.Module):
        def __init__(self, inner, *, in_features, rngs):
            self.inner = inner

    with pytest.raises(EquivalenceSetupError, match="inner.*Linen submodules"):
        compare(linen.Wrapper(inner=linen.MLP()), WrapperRewrite, X)


def test_not_an_nnx_target_is_a_setup_error(linen):
    with pytest.raises(EquivalenceSetupError, match="nnx.Module instance or class"):
        compare(linen.MLP(), object(), X)


def test_raw_params_in_a_setup_list_map_to_list_elements():
    class Scales(nn.Module):
        def setup(self):
            self.w = [self.param(f"w_{i}", nn.initializers.normal(), (4,)) for i in range(2)]

        def __call__(self, x):
            return x * self.w[0] + self.w[1]

    class ScalesRewrite(nnx.Module):
        def __init__(self, *, rngs):
            self.w = nnx.List([nnx.Param(jnp.zeros((4,))) for _ in range(2)])

        def __call__(self, x):
            return x * self.w[0][...] + self.w[1][...]

    result = compare(Scales(), ScalesRewrite, X)
    assert result.ok, str(result)
    assert [p.nnx_name for p in result.weight_map.pairs] == ["w[0]", "w[1]"]


def test_structure_matching_recurses_through_renamed_blocks():
    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.LayerNorm()(nn.Dense(6)(x))

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(Block()(x))

    class HandBlock(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(4, 6, rngs=rngs)
            self.norm = nnx.LayerNorm(6, rngs=rngs)

    class HandNet(nnx.Module):
        def __init__(self, rngs):
            self.body = HandBlock(rngs)
            self.out = nnx.Linear(6, 2, rngs=rngs)

    variables = Net().init(jax.random.key(0), X)
    weight_map = map_weights(variables, HandNet(nnx.Rngs(0)))
    assert weight_map.complete, weight_map.problems()
    pairs = {p.linen_name: p.nnx_name for p in weight_map.pairs}
    assert pairs["params/Block_0/Dense_0/kernel"] == "body.fc.kernel"
    assert pairs["params/Block_0/LayerNorm_0/scale"] == "body.norm.scale"
    assert pairs["params/Dense_0/bias"] == "out.bias"
