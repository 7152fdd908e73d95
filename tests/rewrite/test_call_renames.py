"""rules/linen_functions.toml [call_renames]: Linen functions whose NNX counterpart needs
extra keyword arguments. Partitioning is the case in point: Linen records axis names and
shards nothing; flax 0.12's nnx.with_partitioning shards eagerly and raises without a mesh
unless told `eager_sharding=False`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from nnx_migrate.equivalence.loading import load_python_file
from nnx_migrate.rewrite import rewrite_source
from nnx_migrate.rewrite.rules import load_rules

RULES = load_rules()
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "modules" / "partitioning"


def _resolve(qualified: str):
    module, _, name = qualified.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


PARTITIONING = sorted(name for name in RULES.call_renames if "partitioning" in name)


def test_every_call_rename_is_proven_here():
    assert set(RULES.call_renames) == {*PARTITIONING, "flax.linen.dot_product_attention"}


@pytest.mark.parametrize("linen_name", PARTITIONING)
def test_the_nnx_call_with_the_added_keywords_records_the_names_without_a_mesh(linen_name):
    nnx_name, added, _ = RULES.call_renames[linen_name]
    assert callable(_resolve(linen_name))
    keywords = {key: eval(value) for key, value in added.items()}  # literals from our rules file
    init = _resolve(nnx_name)(nnx.initializers.ones, ("embed", "mlp"), **keywords)
    layer = nnx.Linear(2, 3, kernel_init=init, rngs=nnx.Rngs(0))
    assert layer.kernel.get_metadata()["out_sharding"] == ("embed", "mlp")


def test_without_the_added_keyword_nnx_would_raise_where_linen_does_not():
    """Why the rule exists: if flax stops sharding eagerly by default, this fails and the
    added keyword can go."""
    init = nnx.with_partitioning(nnx.initializers.ones, ("embed", "mlp"))
    with pytest.raises(ValueError, match="mesh"):
        nnx.Linear(2, 3, kernel_init=init, rngs=nnx.Rngs(0))
    linen_init = nn.with_logical_partitioning(nn.initializers.ones, ("embed", "mlp"))
    nn.Dense(3, kernel_init=linen_init).init(jax.random.key(0), jnp.ones((1, 2)))


def test_converted_module_keeps_linen_axis_names_per_parameter():
    linen = load_python_file(FIXTURE.with_suffix(".in.py"), "fixture_partitioning_in")
    ported = load_python_file(FIXTURE.with_suffix(".out.py"), "fixture_partitioning_out")
    variables = linen.ShardedMLP().init(jax.random.key(0), jnp.ones((2, 5)))
    linen_specs = nn.get_partition_spec(variables)["params"]
    model = ported.ShardedMLP(in_features=5, rngs=nnx.Rngs(0))
    assert model.dense_0.kernel.get_metadata()["out_sharding"] == tuple(linen_specs["Dense_0"]["kernel"])
    assert model.dense_0.bias.get_metadata()["out_sharding"] == tuple(linen_specs["Dense_0"]["bias"])
    assert model.dense_1.kernel.get_metadata()["out_sharding"] == tuple(linen_specs["Dense_1"]["kernel"])
    assert model.offset.get_metadata()["out_sharding"] == tuple(linen_specs["offset"])


def test_only_calls_are_renamed_and_the_keyword_is_not_added_twice():
    result = rewrite_source(textwrap.dedent("""
        import flax.linen as nn

        a = nn.with_partitioning(nn.initializers.ones, ('x',), eager_sharding=True)
        b = nn.with_logical_partitioning
        """), "case.py")
    assert "a = nnx.with_partitioning(nnx.initializers.ones, ('x',), eager_sharding=True)" in result.new_text
    assert "b = nn.with_logical_partitioning" in result.new_text
    assert [t.line for t in result.todos] == [5]


def test_a_call_with_linen_axis_rules_or_a_mesh_stays_linen_and_is_reported():
    """`rules=` maps Linen's logical names to mesh axes; passed on to nnx.with_partitioning it
    would become meaningless metadata."""
    result = rewrite_source(textwrap.dedent("""
        import flax.linen as nn

        a = nn.with_logical_partitioning(nn.initializers.ones, ('embed',), rules=(('embed', 'data'),))
        """), "case.py")
    assert "a = nn.with_logical_partitioning(nnx.initializers.ones, ('embed',), rules=(('embed', 'data'),))" in result.new_text
    assert [t.line for t in result.todos] == [4]


def test_dot_product_attention_computes_what_linen_computes():
    """The positional arguments agree (query, key, value, bias, mask, broadcast_dropout,
    dropout_rng, dropout_rate, deterministic, dtype, precision), so a call converts by name."""
    keys = jax.random.split(jax.random.key(0), 5)
    q, k, v = (jax.random.normal(key, (2, 5, 3, 4)) for key in keys[:3])
    bias = jax.random.normal(keys[3], (2, 3, 5, 5))
    mask = nn.make_causal_mask(jnp.ones((2, 5)))
    nnx_name, added, unsupported = RULES.call_renames["flax.linen.dot_product_attention"]
    assert added == {}
    linen_fn, nnx_fn = nn.dot_product_attention, _resolve(nnx_name)
    for args, kwargs in [((q, k, v), {}), ((q, k, v, bias, mask), {}),
                         ((q, k, v), {"mask": mask, "dropout_rng": keys[4], "dropout_rate": 0.3, "deterministic": False})]:
        assert jnp.array_equal(linen_fn(*args, **kwargs), nnx_fn(*args, **kwargs))
    import inspect

    linen_params = list(inspect.signature(linen_fn).parameters)
    nnx_params = list(inspect.signature(nnx_fn).parameters)
    assert linen_params[:linen_params.index("module") + 1] == nnx_params[:nnx_params.index("module") + 1]
    assert set(unsupported) == set(linen_params) - set(nnx_params)


def test_dot_product_attention_with_a_linen_only_keyword_stays_linen_and_is_reported():
    result = rewrite_source(textwrap.dedent("""
        import flax.linen as nn

        a = nn.dot_product_attention(q, k, v, mask=m)
        b = nn.dot_product_attention(q, k, v, force_fp32_for_softmax=True)
        """), "case.py")
    assert "a = nnx.dot_product_attention(q, k, v, mask=m)" in result.new_text
    assert "b = nn.dot_product_attention(q, k, v, force_fp32_for_softmax=True)" in result.new_text
    assert [t.line for t in result.todos] == [5]
